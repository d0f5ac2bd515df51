//! Leases across daemons on one database: claims and the janitor's work, taken over once
//! they run out, and the late holder's writes refused by their fencing token. (Its claim,
//! payment and event fixtures serve the engine's other tests too.)

use std::sync::Arc;

use super::PgStore;
use super::testing::server;
use crate::domain::events::EventKind;
use crate::domain::records::{EventRecord, PaymentRecord};
use crate::domain::state::PaymentStatus;
use crate::store::{Begin, Claim, Fence, Leased, PaymentStore, Pending, StoreError};

pub(super) fn claim(key: &str) -> Claim {
    Claim {
        api_key_id: "key_pos".into(),
        key: key.into(),
        fingerprint: "fp".into(),
        lease: Default::default(),
    }
}

pub(super) fn payment(id: &str) -> PaymentRecord {
    serde_json::from_value(serde_json::json!({
        "id": id, "merchant_id": "m_a", "provider": "mock", "method": "barcode",
        "amount_minor": 1_000, "currency": "CNY", "status": "pending", "metadata": {},
        "created_at_ms": 1_000, "updated_at_ms": 1_000, "refund_reserved_minor": 0,
        "refunded_minor": 0, "provider_step": "not_sent", "api_key_id": "key_pos",
        "version": 0
    }))
    .unwrap()
}

pub(super) fn created(id: &str) -> EventRecord {
    EventRecord {
        id: format!("evt_{id}"),
        kind: EventKind::PaymentCreated,
        created_at_ms: 1_000,
        object_id: id.into(),
        data: serde_json::json!({}),
        object_version: 0,
        object: None,
    }
}

/// Ends every lease now, as if their holder had been paused past them.
async fn run_out(store: &PgStore) {
    let client = store.client().await.unwrap();
    client
        .batch_execute(
            "UPDATE idempotency_keys SET leased_until_ms = 0;
             UPDATE payments SET leased_until_ms = 0;
             UPDATE refunds SET leased_until_ms = 0;
             UPDATE leases SET leased_until_ms = 0;",
        )
        .await
        .unwrap();
}

async fn two_daemons() -> Option<(Arc<PgStore>, Arc<PgStore>)> {
    let server = server().await?;
    let settings = server.settings(&server.fresh_database().await);
    let a = PgStore::open(&settings).await.unwrap();
    let b = PgStore::open(&settings).await.unwrap();
    Some((Arc::new(a), Arc::new(b)))
}

fn step(p: &mut PaymentRecord) -> Option<Vec<EventRecord>> {
    p.updated_at_ms += 1;
    Some(Vec::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_in_progress_elsewhere_until_its_lease_runs_out_then_fenced() {
    let Some((a, b)) = two_daemons().await else {
        return;
    };
    let on_a = claim("k1");
    assert_eq!(
        a.begin_payment(&on_a, &payment("pay_a"), &created("pay_a"))
            .await
            .unwrap(),
        Begin::Created
    );
    assert_eq!(on_a.lease.token(), 1);
    // A retry on b while a works: in progress, whichever call it makes.
    let on_b = claim("k1");
    assert_eq!(
        b.begin_payment(&on_b, &payment("pay_b"), &created("pay_b"))
            .await
            .unwrap(),
        Begin::InProgress
    );
    assert_eq!(
        b.claim(&on_b, "pay_b", 1_000).await.unwrap(),
        Begin::InProgress
    );
    assert!(
        b.payment("pay_b").await.unwrap().is_none(),
        "nothing recorded"
    );
    // a renews while it works; the renewal does not hand the key to anyone else.
    assert!(a.renew_claim(&on_a, 30_000).await.unwrap());

    // a is paused past its lease: b takes the key over, resuming a's payment.
    run_out(&a).await;
    assert_eq!(
        b.begin_payment(&on_b, &payment("pay_b"), &created("pay_b"))
            .await
            .unwrap(),
        Begin::Resume {
            object_id: "pay_a".into()
        }
    );
    assert_eq!(on_b.lease.token(), 2);
    // a wakes up: each of its writes is refused and changes nothing.
    let before = a.payment("pay_a").await.unwrap().unwrap();
    assert!(matches!(
        a.update_payment("pay_a", Fence::Claim(&on_a), &step).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        a.finish_claim(&on_a, 201, "from a", 2_000).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(!a.renew_claim(&on_a, 30_000).await.unwrap());
    assert_eq!(a.payment("pay_a").await.unwrap().unwrap(), before);
    // b's writes go through, and its answer is the key's.
    let changed = b
        .update_payment("pay_a", Fence::Claim(&on_b), &step)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.version, before.version + 1);
    b.finish_claim(&on_b, 201, "from b", 2_000).await.unwrap();
    assert!(!on_b.lease.is_held());
    assert_eq!(
        a.known_claim(&claim("k1")).await.unwrap(),
        Some(Begin::Replay {
            status: 201,
            body: "from b".into()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_given_back_or_held_by_the_same_daemon_resumes_at_once() {
    let Some((a, b)) = two_daemons().await else {
        return;
    };
    let first = claim("k2");
    a.begin_payment(&first, &payment("pay_1"), &created("pay_1"))
        .await
        .unwrap();
    // The same daemon's next request with the key (its first one ended unanswered, a 503
    // say): resumed at once, lease live or not.
    let again = claim("k2");
    assert_eq!(
        a.claim(&again, "pay_x", 1_000).await.unwrap(),
        Begin::Resume {
            object_id: "pay_1".into()
        }
    );
    assert_eq!(again.lease.token(), 2);
    // Given back when that request ends unfinished: b resumes at once.
    a.release_claim(&again).await.unwrap();
    let on_b = claim("k2");
    assert_eq!(
        b.claim(&on_b, "pay_y", 1_000).await.unwrap(),
        Begin::Resume {
            object_id: "pay_1".into()
        }
    );
    assert_eq!(on_b.lease.token(), 3);
    // A release with an old token gives nothing back.
    a.release_claim(&again).await.unwrap();
    assert_eq!(
        a.claim(&claim("k2"), "pay_z", 1_000).await.unwrap(),
        Begin::InProgress
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pending_record_is_worked_by_one_janitor_at_a_time() {
    let Some((a, b)) = two_daemons().await else {
        return;
    };
    for n in 0..5 {
        let id = format!("pay_{n}");
        a.begin_payment(&claim(&format!("k{n}")), &payment(&id), &created(&id))
            .await
            .unwrap();
    }
    // a leases a page of 3, in id order; b gets only what a does not hold.
    let on_a = a
        .take_pending(Pending::Payments, None, 3, 30_000)
        .await
        .unwrap();
    let ids = |leased: &[Leased]| leased.iter().map(|l| l.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&on_a), ["pay_0", "pay_1", "pay_2"]);
    let on_b = b
        .take_pending(Pending::Payments, None, 100, 30_000)
        .await
        .unwrap();
    assert_eq!(ids(&on_b), ["pay_3", "pay_4"]);
    // Paging: after the last id of a page.
    b.release_pending(Pending::Payments, &on_b).await.unwrap();
    let after = b
        .take_pending(Pending::Payments, Some("pay_3"), 100, 30_000)
        .await
        .unwrap();
    assert_eq!(ids(&after), ["pay_4"]);
    // a holds its page while it renews; its fenced write goes through.
    a.renew_pending(Pending::Payments, &on_a, 30_000)
        .await
        .unwrap();
    assert!(
        b.take_pending(Pending::Payments, None, 3, 30_000)
            .await
            .unwrap()
            .iter()
            .all(|l| !ids(&on_a).contains(&l.id))
    );
    a.update_payment("pay_0", Fence::Janitor(on_a[0].token), &step)
        .await
        .unwrap()
        .unwrap();
    // a is paused past its lease: b takes pay_1 over; a's late write is refused.
    run_out(&a).await;
    let taken = b
        .take_pending(Pending::Payments, Some("pay_0"), 1, 30_000)
        .await
        .unwrap();
    assert_eq!(ids(&taken), ["pay_1"]);
    assert!(taken[0].token > on_a[1].token);
    let before = a.payment("pay_1").await.unwrap().unwrap();
    assert!(matches!(
        a.update_payment("pay_1", Fence::Janitor(on_a[1].token), &step)
            .await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(a.payment("pay_1").await.unwrap().unwrap(), before);
    // a's release with its old tokens does not free what b holds now.
    a.release_pending(Pending::Payments, &on_a).await.unwrap();
    assert!(
        !ids(&a
            .take_pending(Pending::Payments, None, 100, 30_000)
            .await
            .unwrap())
        .contains(&"pay_1".to_string())
    );
    // A final payment leaves the work list.
    b.update_payment("pay_1", Fence::Janitor(taken[0].token), &|p| {
        p.status = PaymentStatus::Succeeded;
        Some(Vec::new())
    })
    .await
    .unwrap();
    run_out(&a).await;
    let left = b
        .take_pending(Pending::Payments, None, 100, 30_000)
        .await
        .unwrap();
    assert_eq!(ids(&left), ["pay_0", "pay_2", "pay_3", "pay_4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_monitor_reads_the_log_at_a_time_and_the_next_goes_on_where_it_stopped() {
    use crate::domain::records::AlertRecord;
    use crate::store::AlertStore;

    let Some((a, b)) = two_daemons().await else {
        return;
    };
    a.begin_payment(&claim("k0"), &payment("pay_0"), &created("pay_0"))
        .await
        .unwrap();
    // The first holder starts where the log ended when the schema was made.
    let turn = a.take_monitor(30_000).await.unwrap().expect("free");
    assert_eq!(turn.position, "0:0");
    assert!(
        b.take_monitor(30_000).await.unwrap().is_none(),
        "a holds it"
    );
    for n in 1..=3 {
        let id = format!("pay_{n}");
        a.begin_payment(&claim(&format!("k{n}")), &payment(&id), &created(&id))
            .await
            .unwrap();
    }
    // (The horizon is the server's: other tests' transactions may hold events back a moment.)
    let mut read = Vec::new();
    for _ in 0..300 {
        read = a.monitor_events(&turn.position, 10).await.unwrap();
        if read.len() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Each with its record, which the rules read.
    assert_eq!(read[1].1.object_id, "pay_1");
    assert_eq!(read[1].1.fields().merchant_id.as_deref(), Some("m_a"));
    assert!(
        a.advance_monitor(turn.token, &read[1].0, 30_000)
            .await
            .unwrap()
    );

    // a is paused past its lease: b takes it over where a recorded it got to.
    let alert: AlertRecord = serde_json::from_value(serde_json::json!({
        "id": "al_1", "rule": "card_testing", "severity": "critical", "subject": {},
        "summary": "s", "evidence": {}, "count": 1, "created_at_ms": 1, "last_seen_at_ms": 1
    }))
    .unwrap();
    let raised = EventRecord {
        id: "evt_al_1".into(),
        kind: EventKind::AlertRaised,
        object_id: "al_1".into(),
        ..created("al_1")
    };
    run_out(&a).await;
    let next = b.take_monitor(30_000).await.unwrap().expect("ran out");
    assert!(next.token > turn.token);
    assert_eq!(next.position, read[1].0);
    let rest = b.monitor_events(&next.position, 10).await.unwrap();
    let ids: Vec<_> = rest.iter().map(|(_, e)| e.object_id.as_str()).collect();
    assert_eq!(ids, ["pay_2", "pay_3"]);
    // a wakes up: its alert and its position are refused.
    assert!(matches!(
        a.record_alert(&alert, None, &raised, Some(turn.token))
            .await,
        Err(StoreError::LeaseLost)
    ));
    assert!(a.alert("al_1").await.unwrap().is_none());
    assert!(
        !a.advance_monitor(turn.token, &rest[1].0, 30_000)
            .await
            .unwrap()
    );
    b.record_alert(&alert, None, &raised, Some(next.token))
        .await
        .unwrap();
    assert!(
        b.update_alert("al_1", Some(turn.token), &|a| a.count += 1)
            .await
            .is_err()
    );
    assert_eq!(b.alert("al_1").await.unwrap().unwrap().count, 1);
}
