//! The payments port's invariants (`port/payments.rs`).

use super::{Engine, fresh};
use crate::domain::events::EventKind;
use crate::domain::method::Method;
use crate::domain::records::{EventRecord, PaymentRecord, ProviderStep, RefundRecord};
use crate::domain::state::{PaymentStatus, RefundStatus};
use crate::store::port::PaymentStore;
use crate::store::{Begin, Claim, Fence};
use futures_util::future::BoxFuture;

/// The payments port's checks, each on a fresh place.
pub(super) async fn run(engine: &dyn Engine) {
    type Check = for<'a> fn(&'a dyn Engine) -> BoxFuture<'a, ()>;
    let checks: &[(&str, Check)] = &[
        ("a key is claimed with its object", |e| {
            Box::pin(key_claimed_with_its_object(e))
        }),
        ("order ids are unique per merchant", |e| {
            Box::pin(order_ids_are_unique_per_merchant(e))
        }),
        ("a wallet token is charged by one payment", |e| {
            Box::pin(a_wallet_token_is_charged_by_one_payment(e))
        }),
        ("refunds never exceed the payment", |e| {
            Box::pin(refunds_never_exceed_the_payment(e))
        }),
        ("concurrent refunds never exceed the payment", |e| {
            Box::pin(concurrent_refunds_never_exceed_the_payment(e))
        }),
        ("every change appends its events", |e| {
            Box::pin(every_change_appends_its_events(e))
        }),
        ("durable writes survive a reopen", |e| {
            Box::pin(durable_writes_survive_a_reopen(e))
        }),
        ("finished keys expire, others stay", |e| {
            Box::pin(finished_keys_expire_others_stay(e))
        }),
        (
            "a finished key replays its answer after its object moved on",
            |e| Box::pin(a_replay_after_a_refund_is_the_first_answer(e)),
        ),
        ("a key is read without being claimed", |e| {
            Box::pin(a_key_is_read_without_being_claimed(e))
        }),
    ];
    for (name, check) in checks {
        eprintln!("conformance (payments): {name}");
        check(engine).await;
    }
}

pub(super) fn claim(key: &str, fingerprint: &str) -> Claim {
    Claim {
        api_key_id: "key_test".into(),
        key: key.into(),
        fingerprint: fingerprint.into(),
        lease: Default::default(),
    }
}

pub(super) fn payment(
    id: &str,
    merchant: &str,
    order_id: Option<&str>,
    amount_minor: i64,
) -> PaymentRecord {
    PaymentRecord {
        id: id.into(),
        merchant_id: merchant.into(),
        provider: "fake".into(),
        method: Method::Barcode,
        amount_minor,
        currency: "CNY".into(),
        status: PaymentStatus::Pending,
        order_id: order_id.map(str::to_owned),
        description: None,
        terminal_id: None,
        auth_code: None,
        provider_reference: None,
        qr_code: None,
        payer: None,
        failure: None,
        metadata: Default::default(),
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
        expires_at_ms: None,
        succeeded_at_ms: None,
        refund_reserved_minor: 0,
        refunded_minor: 0,
        provider_step: ProviderStep::NotSent,
        api_key_id: "key_test".into(),
        payment_url: None,
        link_wallet: None,
        wallet_token_id: None,
        card: None,
        version: 0,
    }
}

pub(super) fn refund(id: &str, payment_id: &str, amount_minor: i64) -> RefundRecord {
    RefundRecord {
        id: id.into(),
        payment_id: payment_id.into(),
        merchant_id: "m_a".into(),
        provider: "fake".into(),
        amount_minor,
        currency: "CNY".into(),
        status: RefundStatus::Pending,
        reason: None,
        provider_reference: None,
        failure: None,
        created_at_ms: 2_000,
        updated_at_ms: 2_000,
        provider_step: ProviderStep::NotSent,
        api_key_id: "key_test".into(),
        version: 0,
    }
}

pub(super) fn event(kind: &str, object_id: &str) -> EventRecord {
    EventRecord {
        id: format!("evt_{kind}_{object_id}"),
        kind: EventKind::parse(kind).expect("a known kind"),
        created_at_ms: 1_000,
        object_id: object_id.into(),
        data: serde_json::json!({}),
        object_version: 0,
        object: None,
    }
}

/// A succeeded payment of `amount_minor`, ready to refund.
pub(super) async fn paid(store: &dyn PaymentStore, id: &str, amount_minor: i64) {
    let created = store
        .begin_payment(
            &claim(&format!("k_{id}"), "fp"),
            &payment(id, "m_a", None, amount_minor),
            &event("payment.created", id),
        )
        .await
        .unwrap();
    assert_eq!(created, Begin::Created);
    store
        .update_payment(id, Fence::Unleased, &|p| {
            p.status = PaymentStatus::Succeeded;
            Some(vec![event("payment.succeeded", &p.id)])
        })
        .await
        .unwrap()
        .expect("the payment exists");
}

async fn a_key_is_read_without_being_claimed(engine: &dyn Engine) {
    let (_dir, store) = fresh(engine).await;
    let first = claim("k1", "fp1");
    // Never used: nothing to say, and reading it claims nothing.
    assert_eq!(store.known_claim(&first).await.unwrap(), None);
    assert_eq!(store.known_claim(&first).await.unwrap(), None);
    let record = payment("pay_1", "m_a", None, 500);
    let created = event("payment.created", "pay_1");
    assert_eq!(
        store
            .begin_payment(&first, &record, &created)
            .await
            .unwrap(),
        Begin::Created
    );
    assert_eq!(
        store.known_claim(&first).await.unwrap(),
        Some(Begin::Resume {
            object_id: "pay_1".into()
        })
    );
    assert_eq!(
        store.known_claim(&claim("k1", "other")).await.unwrap(),
        Some(Begin::KeyReused)
    );
    store
        .finish_claim(&first, 201, "{\"id\":\"pay_1\"}", 1_500)
        .await
        .unwrap();
    assert_eq!(
        store.known_claim(&first).await.unwrap(),
        Some(Begin::Replay {
            status: 201,
            body: "{\"id\":\"pay_1\"}".into()
        })
    );
    // Another key is still free after all those reads.
    assert_eq!(store.known_claim(&claim("k2", "fp1")).await.unwrap(), None);
}

async fn key_claimed_with_its_object(engine: &dyn Engine) {
    let (_dir, store) = fresh(engine).await;
    let first = claim("k1", "fp1");
    let record = payment("pay_1", "m_a", None, 500);
    let created = event("payment.created", "pay_1");
    assert_eq!(
        store
            .begin_payment(&first, &record, &created)
            .await
            .unwrap(),
        Begin::Created
    );
    // Recorded as given, with the store's version number: 1 when created.
    assert_eq!(
        store.payment("pay_1").await.unwrap(),
        Some(PaymentRecord {
            version: 1,
            ..record.clone()
        })
    );
    assert_eq!(
        store.pending_payment_ids().await.unwrap(),
        vec!["pay_1".to_owned()]
    );

    // The same request again, unfinished: resume the object it created (nothing new).
    let retry = payment("pay_2", "m_a", None, 500);
    assert_eq!(
        store.begin_payment(&first, &retry, &created).await.unwrap(),
        Begin::Resume {
            object_id: "pay_1".into()
        }
    );
    assert_eq!(store.payment("pay_2").await.unwrap(), None);
    // Another request with the key: refused.
    assert_eq!(
        store
            .begin_payment(&claim("k1", "other"), &retry, &created)
            .await
            .unwrap(),
        Begin::KeyReused
    );
    // Finished: replayed byte for byte.
    store
        .finish_claim(&first, 201, "{\"id\":\"pay_1\"}", 1_500)
        .await
        .unwrap();
    assert_eq!(
        store.begin_payment(&first, &retry, &created).await.unwrap(),
        Begin::Replay {
            status: 201,
            body: "{\"id\":\"pay_1\"}".into()
        }
    );
    assert_eq!(store.payment("pay_2").await.unwrap(), None);
}

async fn order_ids_are_unique_per_merchant(engine: &dyn Engine) {
    let (_dir, store) = fresh(engine).await;
    let e = event("payment.created", "x");
    let begin = async |key: &str, id: &str, merchant: &str| {
        store
            .begin_payment(
                &claim(key, key),
                &payment(id, merchant, Some("order-7"), 100),
                &e,
            )
            .await
            .unwrap()
    };
    assert_eq!(begin("k1", "pay_1", "m_a").await, Begin::Created);
    assert_eq!(
        begin("k2", "pay_2", "m_a").await,
        Begin::OrderIdInUse {
            payment_id: "pay_1".into()
        }
    );
    assert_eq!(store.payment("pay_2").await.unwrap(), None);
    // The claim of a refused request is not taken: the key can be used again.
    assert_eq!(begin("k2", "pay_3", "m_b").await, Begin::Created);
}

async fn a_wallet_token_is_charged_by_one_payment(engine: &dyn Engine) {
    let (place, store) = fresh(engine).await;
    let e = event("payment.created", "x");
    let token = |id: &str, provider: &str, token_id: &str| PaymentRecord {
        provider: provider.into(),
        method: Method::WalletToken,
        wallet_token_id: Some(token_id.into()),
        ..payment(id, "m_a", None, 100)
    };
    let begin = async |key: &str, record: &PaymentRecord| {
        store
            .begin_payment(&claim(key, key), record, &e)
            .await
            .unwrap()
    };
    assert_eq!(
        begin("k1", &token("pay_1", "applepay", "f7f1")).await,
        Begin::Created
    );
    assert_eq!(
        begin("k2", &token("pay_2", "applepay", "f7f1")).await,
        Begin::WalletTokenUsed {
            payment_id: "pay_1".into()
        }
    );
    assert_eq!(store.payment("pay_2").await.unwrap(), None);
    // Another provider's token of the same id, and another token, are other tokens.
    assert_eq!(
        begin("k3", &token("pay_3", "otherpay", "f7f1")).await,
        Begin::Created
    );
    assert_eq!(
        begin("k2", &token("pay_4", "applepay", "a0a0")).await,
        Begin::Created
    );
    // The rule holds after a reopen.
    drop(store);
    let store = place.open().await.unwrap();
    assert_eq!(
        store
            .begin_payment(&claim("k5", "k5"), &token("pay_5", "applepay", "f7f1"), &e)
            .await
            .unwrap(),
        Begin::WalletTokenUsed {
            payment_id: "pay_1".into()
        }
    );
}

async fn refunds_never_exceed_the_payment(engine: &dyn Engine) {
    let (_dir, store) = fresh(engine).await;
    let e = event("refund.created", "x");
    // Not refundable before it succeeded.
    store
        .begin_payment(&claim("kp", "fp"), &payment("pay_p", "m_a", None, 100), &e)
        .await
        .unwrap();
    assert_eq!(
        store
            .begin_refund(&claim("r0", "fp"), &refund("re_0", "pay_p", 10), &e)
            .await
            .unwrap(),
        Begin::NotRefundable {
            status: PaymentStatus::Pending
        }
    );
    assert_eq!(
        store
            .begin_refund(&claim("r0", "fp"), &refund("re_0", "pay_none", 10), &e)
            .await
            .unwrap(),
        Begin::PaymentMissing
    );

    paid(store.as_ref(), "pay_1", 10_000).await;
    let begin = async |key: &str, id: &str, amount: i64| {
        store
            .begin_refund(&claim(key, key), &refund(id, "pay_1", amount), &e)
            .await
            .unwrap()
    };
    assert_eq!(begin("r1", "re_1", 6_000).await, Begin::Created);
    // One minor unit over what remains is refused; exactly what remains is taken.
    assert_eq!(
        begin("r2", "re_2", 4_001).await,
        Begin::ExceedsPayment {
            refundable_minor: 4_000
        }
    );
    assert_eq!(begin("r3", "re_3", 4_000).await, Begin::Created);
    assert_eq!(
        store
            .payment("pay_1")
            .await
            .unwrap()
            .unwrap()
            .refund_reserved_minor,
        10_000
    );
    let mut ids: Vec<String> = store
        .refunds_of("pay_1")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["re_1", "re_3"]);

    // A failed refund gives its amount back (through the change the use case makes).
    store
        .update_refund("re_1", Fence::Unleased, &|r, p| {
            r.status = RefundStatus::Failed;
            p.refund_reserved_minor -= r.amount_minor;
            Some(vec![event("refund.failed", &r.id)])
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.refund("re_1").await.unwrap().unwrap().status,
        RefundStatus::Failed
    );
    assert_eq!(begin("r4", "re_4", 6_000).await, Begin::Created);
}

async fn concurrent_refunds_never_exceed_the_payment(engine: &dyn Engine) {
    let (_dir, store) = fresh(engine).await;
    paid(store.as_ref(), "pay_1", 10_000).await;
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .begin_refund(
                        &claim(&format!("r{i}"), "fp"),
                        &refund(&format!("re_{i}"), "pay_1", 3_000),
                        &event("refund.created", &format!("re_{i}")),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    for task in threads {
        created += usize::from(task.await.unwrap() == Begin::Created);
    }
    assert_eq!(created, 3);
    let reserved: i64 = store
        .refunds_of("pay_1")
        .await
        .unwrap()
        .iter()
        .map(|r| r.amount_minor)
        .sum();
    assert_eq!(reserved, 9_000);
    assert_eq!(
        store
            .payment("pay_1")
            .await
            .unwrap()
            .unwrap()
            .refund_reserved_minor,
        9_000
    );
}

async fn every_change_appends_its_events(engine: &dyn Engine) {
    let (_dir, store) = fresh(engine).await;
    paid(store.as_ref(), "pay_1", 100).await;
    let kinds = async |store: &dyn PaymentStore| -> Vec<String> {
        store
            .events()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind.as_str().to_owned())
            .collect()
    };
    assert_eq!(
        kinds(store.as_ref()).await,
        ["payment.created", "payment.succeeded"]
    );
    let event = store.events().await.unwrap().pop().unwrap();
    assert_eq!(event.object_id, "pay_1");
    // The event names the version of the record it announces; the record keeps count.
    let record = store.payment("pay_1").await.unwrap().unwrap();
    assert_eq!((event.object_version, record.version), (2, 2));
    assert_eq!(record.status, PaymentStatus::Succeeded);
    // A terminal payment leaves the work list.
    assert!(store.pending_payment_ids().await.unwrap().is_empty());

    // A declined change writes nothing.
    let before = store.payment("pay_1").await.unwrap();
    let declined = store
        .update_payment("pay_1", Fence::Unleased, &|p| {
            p.amount_minor = 1;
            None
        })
        .await
        .unwrap();
    assert_eq!(
        declined.map(|p| p.amount_minor),
        Some(1),
        "the caller sees what it made"
    );
    assert_eq!(store.payment("pay_1").await.unwrap(), before);
    assert_eq!(kinds(store.as_ref()).await.len(), 2);
    assert_eq!(
        store
            .update_payment("pay_none", Fence::Unleased, &|_| Some(Vec::new()))
            .await
            .unwrap(),
        None
    );
}

async fn durable_writes_survive_a_reopen(engine: &dyn Engine) {
    let place = engine.fresh().await;
    {
        let store = place.open().await.unwrap();
        paid(store.as_ref(), "pay_1", 700).await;
        store
            .finish_claim(&claim("k_pay_1", "fp"), 201, "done", 1_500)
            .await
            .unwrap();
        store.durable().await.unwrap();
    }
    let store = place.open().await.expect("the engine reopens its place");
    let found = store
        .payment("pay_1")
        .await
        .unwrap()
        .expect("durable before the reopen");
    assert_eq!(
        (found.status, found.amount_minor),
        (PaymentStatus::Succeeded, 700)
    );
    assert_eq!(
        store
            .begin_payment(
                &claim("k_pay_1", "fp"),
                &payment("pay_2", "m_a", None, 1),
                &event("payment.created", "pay_2")
            )
            .await
            .unwrap(),
        Begin::Replay {
            status: 201,
            body: "done".into()
        }
    );
}

async fn a_replay_after_a_refund_is_the_first_answer(engine: &dyn Engine) {
    let (_dir, store) = fresh(engine).await;
    paid(store.as_ref(), "pay_1", 1_000).await;
    let first = r#"{"id":"pay_1","status":"succeeded","amount_refunded":"0.00","note":"é"}"#;
    store
        .finish_claim(&claim("k_pay_1", "fp"), 201, first, 1_500)
        .await
        .unwrap();
    // The payment moves on: a refund is reserved and succeeds.
    store
        .begin_refund(
            &claim("k_re_1", "fp"),
            &refund("re_1", "pay_1", 400),
            &event("refund.created", "re_1"),
        )
        .await
        .unwrap();
    store
        .update_refund("re_1", Fence::Unleased, &|r, p| {
            r.status = RefundStatus::Succeeded;
            p.refunded_minor += r.amount_minor;
            Some(vec![event("refund.succeeded", &r.id)])
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .payment("pay_1")
            .await
            .unwrap()
            .unwrap()
            .refunded_minor,
        400
    );
    // A second answer for the same key does not replace the first.
    store
        .finish_claim(&claim("k_pay_1", "fp"), 500, "later", 1_600)
        .await
        .unwrap();
    assert_eq!(
        store
            .begin_payment(
                &claim("k_pay_1", "fp"),
                &payment("pay_9", "m_a", None, 1),
                &event("payment.created", "pay_9")
            )
            .await
            .unwrap(),
        Begin::Replay {
            status: 201,
            body: first.into()
        }
    );
}

async fn finished_keys_expire_others_stay(engine: &dyn Engine) {
    let (_dir, store) = fresh(engine).await;
    let e = event("payment.created", "x");
    for (key, id) in [("done", "pay_1"), ("open", "pay_2")] {
        store
            .begin_payment(&claim(key, "fp"), &payment(id, "m_a", None, 1), &e)
            .await
            .unwrap();
    }
    store
        .finish_claim(&claim("done", "fp"), 201, "x", 1_000)
        .await
        .unwrap();
    assert_eq!(store.expire_idempotency_keys(1_000).await.unwrap(), 0);
    assert_eq!(store.expire_idempotency_keys(1_001).await.unwrap(), 1);
    // The finished key is free again; the unfinished one still resumes its object.
    assert_eq!(
        store
            .begin_payment(&claim("done", "fp"), &payment("pay_3", "m_a", None, 1), &e)
            .await
            .unwrap(),
        Begin::Created
    );
    assert_eq!(
        store
            .begin_payment(&claim("open", "fp"), &payment("pay_4", "m_a", None, 1), &e)
            .await
            .unwrap(),
        Begin::Resume {
            object_id: "pay_2".into()
        }
    );
}
