//! The invariants of what is read back and fed onwards: reads (`port/reads.rs`), the
//! webhook outbox (`port/outbox.rs`) and the engine's operations (`port/operations.rs`).

use futures_util::future::BoxFuture;

use super::payments::{claim, event, paid, payment, refund};
use super::{Engine, fresh};
use crate::domain::records::{DeliveryState, EventRecord, OutboxRecord};
use crate::domain::state::PaymentStatus;
use crate::store::Begin;
use crate::store::port::Found;

pub(super) async fn run(engine: &dyn Engine) {
    type Check = for<'a> fn(&'a dyn Engine) -> BoxFuture<'a, ()>;
    let checks: &[(&str, Check)] = &[
        ("payments are found, and paged newest first", |e| {
            Box::pin(payments_are_found_and_paged(e))
        }),
        ("events are read back to a point in time", |e| {
            Box::pin(events_are_read_back_to_a_point_in_time(e))
        }),
        ("webhook events owe deliveries once the outbox is on", |e| {
            Box::pin(webhook_events_owe_deliveries(e))
        }),
        ("committed events reach the bus, with their object", |e| {
            Box::pin(committed_events_reach_the_bus(e))
        }),
    ];
    for (name, check) in checks {
        eprintln!("conformance (feeds): {name}");
        check(engine).await;
    }
}

async fn payments_are_found_and_paged(engine: &dyn Engine) {
    let (_place, store) = fresh(engine).await;
    for (n, merchant) in ["m_a", "m_b", "m_a", "m_b", "m_a"].iter().enumerate() {
        let id = format!("pay_{}", n + 1);
        let order = format!("order-{}", n + 1);
        let begun = store
            .begin_payment(
                &claim(&format!("k{n}"), "fp"),
                &payment(&id, merchant, Some(&order), 100 * (n as i64 + 1)),
                &event("payment.created", &id),
            )
            .await
            .unwrap();
        assert_eq!(begun, Begin::Created);
    }
    paid(store.as_ref(), "pay_9", 900).await;
    let refunded = store
        .begin_refund(
            &claim("kr", "fp"),
            &refund("re_1", "pay_9", 100),
            &event("refund.created", "re_1"),
        )
        .await
        .unwrap();
    assert_eq!(refunded, Begin::Created);

    let found = store.find_payment("pay_2").await.unwrap().unwrap();
    assert_eq!(
        (found.record.merchant_id.as_str(), found.archived),
        ("m_b", false)
    );
    assert_eq!(store.find_payment("pay_x").await.unwrap(), None);
    let refund_found = store.find_refund("re_1").await.unwrap().unwrap();
    assert_eq!(refund_found.record.payment_id, "pay_9");
    let of: Vec<_> = store
        .find_refunds_of("pay_9")
        .await
        .unwrap()
        .into_iter()
        .map(|f: Found<_>| f.record.id)
        .collect();
    assert_eq!(of, ["re_1"]);
    assert!(store.find_refunds_of("pay_1").await.unwrap().is_empty());

    let ids = |page: Vec<Found<crate::domain::records::PaymentRecord>>| {
        page.into_iter().map(|f| f.record.id).collect::<Vec<_>>()
    };
    // Newest first, at most limit + 1.
    let page = store.payments_page(None, None, 2, &|_| true).await.unwrap();
    assert_eq!(ids(page), ["pay_9", "pay_5", "pay_4"]);
    let page = store
        .payments_page(None, Some("pay_4"), 10, &|_| true)
        .await
        .unwrap();
    assert_eq!(ids(page), ["pay_3", "pay_2", "pay_1"]);
    let page = store
        .payments_page(Some("m_a"), None, 10, &|_| true)
        .await
        .unwrap();
    assert_eq!(ids(page), ["pay_9", "pay_5", "pay_3", "pay_1"]);
    let page = store
        .payments_page(Some("m_a"), Some("pay_5"), 10, &|p| p.amount_minor > 100)
        .await
        .unwrap();
    assert_eq!(ids(page), ["pay_3"]);

    let by_order = store.payment_by_order_id("m_b", "order-4").await.unwrap();
    assert_eq!(by_order.map(|p| p.id), Some("pay_4".to_owned()));
    assert_eq!(
        store.payment_by_order_id("m_a", "order-4").await.unwrap(),
        None,
        "another merchant's order id"
    );
    assert_eq!(store.pending_payment_count().await.unwrap(), 5);
}

async fn events_are_read_back_to_a_point_in_time(engine: &dyn Engine) {
    let (_place, store) = fresh(engine).await;
    paid(store.as_ref(), "pay_1", 100).await;
    for (n, at) in [5_000, 6_000, 7_000].into_iter().enumerate() {
        let id = format!("pay_{}", n + 2);
        let created = EventRecord {
            created_at_ms: at,
            ..event("payment.created", &id)
        };
        store
            .begin_payment(&claim(&id, "fp"), &payment(&id, "m_a", None, 100), &created)
            .await
            .unwrap();
    }
    let objects =
        |events: Vec<EventRecord>| events.into_iter().map(|e| e.object_id).collect::<Vec<_>>();
    // Oldest first, back to the first event older than the point.
    let (events, complete) = store.events_since(6_000, 100, &|_| true).await.unwrap();
    assert_eq!(
        (objects(events), complete),
        (vec!["pay_3".into(), "pay_4".into()], true)
    );
    let (events, complete) = store
        .events_since(0, 100, &|e| e.object_id != "pay_3")
        .await
        .unwrap();
    assert_eq!(
        (objects(events), complete),
        (
            vec![
                "pay_1".into(),
                "pay_1".into(),
                "pay_2".into(),
                "pay_4".into()
            ],
            true
        )
    );
    // The scan stops at its cap, and says so.
    let (events, complete) = store.events_since(0, 2, &|_| true).await.unwrap();
    assert_eq!(
        (objects(events), complete),
        (vec!["pay_3".into(), "pay_4".into()], false)
    );
}

async fn webhook_events_owe_deliveries(engine: &dyn Engine) {
    let (place, store) = fresh(engine).await;
    // Before the outbox is on, nothing is owed.
    paid(store.as_ref(), "pay_0", 100).await;
    assert_eq!(store.outbox_len().await.unwrap(), 0);
    store.enable_outbox();
    // payment.created owes nothing; payment.succeeded does, with its object.
    paid(store.as_ref(), "pay_1", 100).await;
    paid(store.as_ref(), "pay_2", 200).await;
    assert_eq!(store.outbox_len().await.unwrap(), 2);
    let taken = store.take_outbox(10, 60_000, i64::MAX).await.unwrap();
    let kinds: Vec<_> = taken
        .iter()
        .map(|e| (e.event.kind.as_str(), e.event.object_id.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("payment.succeeded", "pay_1"),
            ("payment.succeeded", "pay_2")
        ],
        "oldest first"
    );
    let object = taken[0].event.object.as_ref().expect("with its object");
    let record: crate::domain::records::PaymentRecord = object.read().unwrap();
    assert_eq!(record.status, PaymentStatus::Succeeded);
    assert_eq!(taken[0].delivery, OutboxRecord::default());
    // A delivery state is kept; a finished entry goes.
    let mut state = OutboxRecord::default();
    state.endpoints.insert(
        "erp".into(),
        DeliveryState {
            attempts: 1,
            next_attempt_ms: 9_000,
            finished: false,
            last_error: Some("answered 500".into()),
        },
    );
    assert!(store.set_outbox(&taken[0], Some(&state)).await.unwrap());
    assert!(store.set_outbox(&taken[1], None).await.unwrap());
    store.durable().await.unwrap();
    drop(store);
    let store = place.open().await.unwrap();
    assert_eq!(store.outbox_len().await.unwrap(), 1);
    let again = store.take_outbox(10, 60_000, i64::MAX).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event.object_id, "pay_1");
    assert_eq!(again[0].delivery, state);
}

async fn committed_events_reach_the_bus(engine: &dyn Engine) {
    let (_place, store) = fresh(engine).await;
    assert!(!store.describe().await.unwrap().is_empty());
    let mut bus = store.bus().subscribe();
    paid(store.as_ref(), "pay_1", 100).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let event = bus.recv().await.unwrap();
        assert!(event.object.is_some(), "{event:?}");
        seen.push(event.kind.as_str().to_owned());
    }
    assert_eq!(seen, ["payment.created", "payment.succeeded"]);
}
