//! The invariants of the console, alert and merchant ports (`port/console.rs`,
//! `port/alerts.rs`, `port/merchants.rs`).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::json;

use super::{Engine, fresh};
use crate::domain::events::EventKind;
use crate::domain::records::{
    ActivationRecord, AlertRecord, AuditRecord, BankAccountRecord, BlockRecord, EventRecord,
    MerchantRecord, SessionRecord,
};
use crate::store::port::Storage;
use crate::store::{OnboardingChange, StoreError};

/// The back office's checks, each on a fresh place.
pub(super) async fn run(engine: &dyn Engine) {
    type Check = for<'a> fn(&'a dyn Engine) -> BoxFuture<'a, ()>;
    let checks: &[(&str, Check)] = &[
        ("a code step is accepted once, whoever asks at once", |e| {
            Box::pin(a_code_step_is_accepted_once(e))
        }),
        ("a touch never undoes a log-out", |e| {
            Box::pin(a_touch_never_undoes_a_log_out(e))
        }),
        ("an alert is recorded with its block and its event", |e| {
            Box::pin(an_alert_is_recorded_with_its_block_and_event(e))
        }),
        ("concurrent updates of an alert are all applied", |e| {
            Box::pin(concurrent_alert_updates_are_all_applied(e))
        }),
        ("alerts are paged newest first, in byte order", |e| {
            Box::pin(alerts_are_paged_newest_first(e))
        }),
        (
            "an onboarding change is saved whole, lists oldest first",
            |e| Box::pin(an_onboarding_change_is_saved_whole(e)),
        ),
        ("every sealed record is resealed", |e| {
            Box::pin(every_sealed_record_is_resealed(e))
        }),
        (
            "reconciliations are kept as found, updated in place, paged newest first",
            |e| Box::pin(reconciliations_are_kept_updated_and_paged(e)),
        ),
    ];
    for (name, check) in checks {
        eprintln!("conformance (back office): {name}");
        check(engine).await;
    }
}

fn session(key_id: &str, last_seen_at_ms: i64) -> SessionRecord {
    SessionRecord {
        key_id: key_id.into(),
        key_digest: "d1".into(),
        factor: "f1".into(),
        csrf: "c".repeat(43),
        created_at_ms: 1_000,
        last_seen_at_ms,
    }
}

fn alert(id: &str, merchant: &str) -> AlertRecord {
    serde_json::from_value(json!({
        "id": id, "rule": "velocity", "severity": "warning",
        "subject": {"merchant_id": merchant, "terminal_id": "T1", "api_key_id": null,
                    "payer": null, "provider": null},
        "summary": "many payments", "evidence": {"count": 30, "note": "nul \u{0}"},
        "count": 1, "created_at_ms": 1_000, "last_seen_at_ms": 1_000,
        "acknowledged_at_ms": null, "acknowledged_by": null, "block_id": null
    }))
    .unwrap()
}

fn block(id: &str, alert_id: &str) -> BlockRecord {
    BlockRecord {
        id: id.into(),
        kind: "terminal".into(),
        merchant_id: "m_a".into(),
        terminal_id: "T1".into(),
        api_key_id: None,
        rule: "velocity".into(),
        alert_id: alert_id.into(),
        created_at_ms: 1_000,
        expires_at_ms: 9_000,
    }
}

fn event(kind: EventKind, id: &str, object_id: &str) -> EventRecord {
    EventRecord {
        id: id.into(),
        kind,
        created_at_ms: 1_000,
        object_id: object_id.into(),
        data: json!({}),
        object_version: 0,
        object: None,
    }
}

fn sealed(key_id: &str) -> serde_json::Value {
    json!({"key_id": key_id, "nonce": "00", "ciphertext": "ab"})
}

fn merchant(id: &str, key_id: &str) -> MerchantRecord {
    serde_json::from_value(json!({
        "id": id, "name": "Shop", "status": "draft", "business_license_no": "91310000",
        "tax_registration_no": "", "legal_person_name": "Li", "legal_person_id": sealed(key_id),
        "legal_person_id_masked": "1101********1234", "contact_name": "Li",
        "contact_phone": "13800000000", "contact_email": "li@example.com",
        "industry_code": "5411", "created_at_ms": 1_000, "updated_at_ms": 1_000
    }))
    .unwrap()
}

fn activation(id: &str, merchant: &str, status: &str) -> ActivationRecord {
    serde_json::from_value(json!({
        "id": id, "merchant_id": merchant, "provider": "fake", "status": status,
        "provider_reference": null, "rejection_reason": null, "submissions": 1,
        "created_at_ms": 1_000, "updated_at_ms": 1_000
    }))
    .unwrap()
}

fn account(id: &str, merchant: &str, is_default: bool, key_id: &str) -> BankAccountRecord {
    serde_json::from_value(json!({
        "id": id, "merchant_id": merchant, "provider": "fake", "account_holder": "Shop",
        "account_number": sealed(key_id), "account_number_last4": "1234",
        "bank_name": "Bank", "branch": null, "status": "pending_verification",
        "verification": null, "failure_reason": null, "provider_reference": null,
        "is_default": is_default, "created_at_ms": 1_000, "updated_at_ms": 1_000
    }))
    .unwrap()
}

fn audit(id: &str, merchant: &str, action: &str) -> AuditRecord {
    AuditRecord {
        id: id.into(),
        at_ms: 1_000,
        actor: "key_admin".into(),
        source: "127.0.0.1".into(),
        action: action.into(),
        merchant_id: merchant.into(),
        object_id: merchant.into(),
        details: json!({}),
    }
}

async fn a_code_step_is_accepted_once(engine: &dyn Engine) {
    let (place, store) = fresh(engine).await;
    // The same code given to several requests (or daemons) at once: accepted once.
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.accept_code_step("key_a", 100).await.unwrap() })
        })
        .collect();
    let mut accepted = 0;
    for t in tries {
        accepted += usize::from(t.await.unwrap());
    }
    assert_eq!(accepted, 1);
    assert!(!store.accept_code_step("key_a", 99).await.unwrap(), "older");
    assert!(
        store.accept_code_step("key_b", 100).await.unwrap(),
        "another key"
    );
    assert!(store.accept_code_step("key_a", 101).await.unwrap());
    store.durable().await.unwrap();
    drop(store);
    let store = place.open().await.unwrap();
    assert!(
        !store.accept_code_step("key_a", 101).await.unwrap(),
        "after a reopen"
    );
    assert!(store.accept_code_step("key_a", 102).await.unwrap());
}

async fn a_touch_never_undoes_a_log_out(engine: &dyn Engine) {
    let (_place, store) = fresh(engine).await;
    let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    store
        .put_session(&a, &session("key_a", 5_000))
        .await
        .unwrap();
    store
        .put_session(&b, &session("key_b", 9_000))
        .await
        .unwrap();
    store
        .put_session(&c, &session("key_c", 9_000))
        .await
        .unwrap();
    assert_eq!(
        store.session(&a).await.unwrap(),
        Some(session("key_a", 5_000))
    );
    assert_eq!(store.session(&[9u8; 32]).await.unwrap(), None);
    // A touch of what was read succeeds; of what changed since, not.
    let seen = session("key_b", 9_000);
    assert!(
        store
            .touch_session(&b, &seen, &session("key_b", 9_500))
            .await
            .unwrap()
    );
    assert!(
        !store
            .touch_session(&b, &seen, &session("key_b", 9_600))
            .await
            .unwrap(),
        "stale"
    );
    assert_eq!(
        store.session(&b).await.unwrap(),
        Some(session("key_b", 9_500))
    );
    // Logged out: a touch does not bring it back.
    store.remove_session(&b).await.unwrap();
    assert!(
        !store
            .touch_session(&b, &session("key_b", 9_500), &session("key_b", 9_900))
            .await
            .unwrap()
    );
    assert_eq!(store.session(&b).await.unwrap(), None);
    // Ended ones go; the others stay.
    let removed = store
        .remove_sessions(&|s| s.last_seen_at_ms < 6_000)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(store.session(&a).await.unwrap(), None);
    assert!(store.session(&c).await.unwrap().is_some());
}

/// The kinds and objects of the events logged so far.
async fn logged(store: &dyn Storage) -> Vec<(String, String)> {
    store
        .events()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind.as_str().to_owned(), e.object_id))
        .collect()
}

async fn an_alert_is_recorded_with_its_block_and_event(engine: &dyn Engine) {
    let (place, store) = fresh(engine).await;
    let mut raised = alert("al_1", "m_a");
    raised.block_id = Some("blk_1".into());
    store
        .record_alert(
            &raised,
            Some(&block("blk_1", "al_1")),
            &event(EventKind::AlertRaised, "evt_1", "al_1"),
            None,
        )
        .await
        .unwrap();
    store
        .record_alert(
            &alert("al_2", "m_b"),
            None,
            &event(EventKind::AlertRaised, "evt_2", "al_2"),
            None,
        )
        .await
        .unwrap();
    store.durable().await.unwrap();
    drop(store);
    let store = place.open().await.unwrap();
    assert_eq!(store.alert("al_1").await.unwrap(), Some(raised));
    assert_eq!(
        store
            .alert("al_1")
            .await
            .unwrap()
            .unwrap()
            .evidence
            .get("note"),
        Some(&json!("nul \u{0}")),
        "any JSON text is kept"
    );
    assert_eq!(store.blocks().await.unwrap(), vec![block("blk_1", "al_1")]);
    assert_eq!(
        logged(store.as_ref()).await,
        [
            ("alert.raised".to_owned(), "al_1".to_owned()),
            ("alert.raised".to_owned(), "al_2".to_owned())
        ]
    );
    assert_eq!(
        store.remove_block("blk_1").await.unwrap(),
        Some(block("blk_1", "al_1"))
    );
    assert_eq!(store.remove_block("blk_1").await.unwrap(), None);
    assert_eq!(store.blocks().await.unwrap(), vec![]);
}

async fn concurrent_alert_updates_are_all_applied(engine: &dyn Engine) {
    let (_place, store) = fresh(engine).await;
    store
        .record_alert(
            &alert("al_1", "m_a"),
            None,
            &event(EventKind::AlertRaised, "evt_1", "al_1"),
            None,
        )
        .await
        .unwrap();
    let repeats: Vec<_> = (0..10)
        .map(|n| {
            let store: Arc<dyn Storage> = store.clone();
            tokio::spawn(async move {
                store
                    .update_alert("al_1", None, &|a| {
                        a.count += 1;
                        a.last_seen_at_ms = a.last_seen_at_ms.max(2_000 + n);
                    })
                    .await
                    .unwrap()
                    .expect("the alert exists")
            })
        })
        .collect();
    for repeat in repeats {
        repeat.await.unwrap();
    }
    let stored = store.alert("al_1").await.unwrap().unwrap();
    assert_eq!(stored.count, 11);
    assert_eq!(stored.last_seen_at_ms, 2_009);
    assert_eq!(
        store
            .update_alert("al_x", None, &|a| a.count += 1)
            .await
            .unwrap(),
        None
    );
}

async fn alerts_are_paged_newest_first(engine: &dyn Engine) {
    let (_place, store) = fresh(engine).await;
    // Byte order, not a locale's: "al_B" sorts before "al_a".
    let ids = ["al_1", "al_2", "al_3", "al_B", "al_a"];
    for (n, id) in ids.iter().enumerate() {
        let merchant = if n % 2 == 0 { "m_even" } else { "m_odd" };
        let e = event(EventKind::AlertRaised, &format!("evt_{n}"), id);
        store
            .record_alert(&alert(id, merchant), None, &e, None)
            .await
            .unwrap();
    }
    let page_ids = |page: Vec<AlertRecord>| page.into_iter().map(|a| a.id).collect::<Vec<_>>();
    let all = store.alerts_page(None, 10, &|_| true).await.unwrap();
    assert_eq!(page_ids(all), ["al_a", "al_B", "al_3", "al_2", "al_1"]);
    // At most limit + 1 (the one more says there are more), after the cursor.
    let page = store.alerts_page(Some("al_B"), 1, &|_| true).await.unwrap();
    assert_eq!(page_ids(page), ["al_3", "al_2"]);
    let even = store
        .alerts_page(None, 10, &|a| {
            a.subject.merchant_id.as_deref() == Some("m_even")
        })
        .await
        .unwrap();
    assert_eq!(page_ids(even), ["al_a", "al_3", "al_1"]);
}

async fn an_onboarding_change_is_saved_whole(engine: &dyn Engine) {
    let (place, store) = fresh(engine).await;
    let shop = merchant("m_1", "k1");
    store
        .save_onboarding(&OnboardingChange {
            merchant: Some(&shop),
            activation: None,
            bank_account: None,
            also_accounts: &[],
            audit: &audit("au_1", "m_1", "merchant.created"),
            event: None,
        })
        .await
        .unwrap();
    // Ids in byte order: act_B before act_a.
    for id in ["act_a", "act_B"] {
        let applied = activation(id, "m_1", "submitted");
        store
            .save_onboarding(&OnboardingChange {
                merchant: None,
                activation: Some(&applied),
                bank_account: None,
                also_accounts: &[],
                audit: &audit(&format!("au_{id}"), "m_1", "activation.created"),
                event: Some(&event(
                    EventKind::ActivationUpdated,
                    &format!("evt_{id}"),
                    id,
                )),
            })
            .await
            .unwrap();
    }
    let first = account("ba_1", "m_1", true, "k1");
    store
        .save_onboarding(&OnboardingChange {
            merchant: None,
            activation: None,
            bank_account: Some(&first),
            also_accounts: &[],
            audit: &audit("au_2", "m_1", "bank_account.created"),
            event: Some(&event(EventKind::BankAccountUpdated, "evt_ba_1", "ba_1")),
        })
        .await
        .unwrap();
    // A second default account, saved with the first one no longer default.
    let second = account("ba_2", "m_1", true, "k1");
    let demoted = BankAccountRecord {
        is_default: false,
        ..first.clone()
    };
    store
        .save_onboarding(&OnboardingChange {
            merchant: None,
            activation: None,
            bank_account: Some(&second),
            also_accounts: std::slice::from_ref(&demoted),
            audit: &audit("au_3", "m_1", "bank_account.created"),
            event: Some(&event(EventKind::BankAccountUpdated, "evt_ba_2", "ba_2")),
        })
        .await
        .unwrap();
    // A record of another merchant does not show in m_1's lists.
    let other = activation("act_0", "m_2", "active");
    store
        .save_onboarding(&OnboardingChange {
            merchant: Some(&merchant("m_2", "k1")),
            activation: Some(&other),
            bank_account: None,
            also_accounts: &[],
            audit: &audit("au_4", "m_2", "merchant.created"),
            event: None,
        })
        .await
        .unwrap();
    store.durable().await.unwrap();
    drop(store);
    let store = place.open().await.unwrap();
    assert_eq!(store.merchant_record("m_1").await.unwrap(), Some(shop));
    assert_eq!(store.merchant_record("m_x").await.unwrap(), None);
    let ids = |v: Vec<String>| v;
    assert_eq!(
        ids(store
            .merchant_records()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect()),
        ["m_1", "m_2"]
    );
    let activations: Vec<_> = store
        .activations_of("m_1")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(activations, ["act_B", "act_a"]);
    assert_eq!(store.activation("act_0").await.unwrap(), Some(other));
    assert_eq!(store.all_activations().await.unwrap().len(), 3);
    assert_eq!(
        store.bank_accounts_of("m_1").await.unwrap(),
        vec![demoted.clone(), second.clone()]
    );
    assert_eq!(store.bank_account("ba_1").await.unwrap(), Some(demoted));
    assert_eq!(store.all_bank_accounts().await.unwrap().len(), 2);
    let actions: Vec<_> = store
        .audit_of("m_1")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(actions, ["au_1", "au_2", "au_3", "au_act_B", "au_act_a"]);
    assert_eq!(
        logged(store.as_ref()).await,
        [
            ("merchant.activation.updated".to_owned(), "act_a".to_owned()),
            ("merchant.activation.updated".to_owned(), "act_B".to_owned()),
            ("bank_account.updated".to_owned(), "ba_1".to_owned()),
            ("bank_account.updated".to_owned(), "ba_2".to_owned()),
        ]
    );
}

async fn every_sealed_record_is_resealed(engine: &dyn Engine) {
    let (_place, store) = fresh(engine).await;
    for (n, id) in ["m_1", "m_2"].iter().enumerate() {
        let bank = account(&format!("ba_{n}"), id, true, "old");
        store
            .save_onboarding(&OnboardingChange {
                merchant: Some(&merchant(id, "old")),
                activation: None,
                bank_account: Some(&bank),
                also_accounts: &[],
                audit: &audit(&format!("au_{n}"), id, "merchant.created"),
                event: None,
            })
            .await
            .unwrap();
    }
    // A refusal stops it with an error.
    let refused = store
        .reseal_all(&mut |_| Err("cannot open".into()), &mut |_| Ok(()))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "{refused:?}"
    );
    let count = store
        .reseal_all(
            &mut |m| {
                m.legal_person_id.key_id = "new".into();
                Ok(())
            },
            &mut |a| {
                a.account_number.key_id = "new".into();
                Ok(())
            },
        )
        .await
        .unwrap();
    assert_eq!(count, 4);
    for m in store.merchant_records().await.unwrap() {
        assert_eq!(m.legal_person_id.key_id, "new");
    }
    for a in store.all_bank_accounts().await.unwrap() {
        assert_eq!(a.account_number.key_id, "new");
    }
}

fn reconciliation(id: &str, merchant: &str) -> crate::domain::reconciliation::ReconciliationRecord {
    serde_json::from_value(json!({
        "id": id, "merchant_id": merchant, "provider": "alipay", "date": "2026-12-07",
        "currency": "CNY", "status": "completed", "source": "upload",
        "bill": {"name": "b.csv.zip", "sha256": "00", "bytes": 10, "rows": 1},
        "ours": {"payments": 1, "gross_minor": 1250, "refunds": 0, "refunded_minor": 0},
        "theirs": {"payments": 1, "gross_minor": 1250, "refunds": 0, "refunded_minor": 0,
                   "fees": "0.08"},
        "discrepancies": [{"id": "dsc_00001", "kind": "stray_charge",
                           "ours": {"payment_id": "pay_1", "status": "failed", "amount_minor": 1250},
                           "theirs": {"kind": "payment", "payment_id": "pay_1", "amount_minor": 1250,
                                      "line": 6, "occurred_at": "2026-12-07T10:00:00+08:00"}}],
        "created_at_ms": 1_000, "version": 1
    }))
    .unwrap()
}

async fn reconciliations_are_kept_updated_and_paged(engine: &dyn Engine) {
    let (_place, store) = fresh(engine).await;
    let first = reconciliation("rec_1", "m_a");
    store
        .record_reconciliation(
            &first,
            Some(&event(EventKind::AlertRaised, "evt_r1", "rec_1")),
        )
        .await
        .unwrap();
    store.durable().await.unwrap();
    assert_eq!(
        store.reconciliation("rec_1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.reconciliation("rec_x").await.unwrap(), None);
    // Recorded once: the same id again changes nothing.
    let mut again = first.clone();
    again.date = "2026-12-08".into();
    store.record_reconciliation(&again, None).await.unwrap();
    assert_eq!(
        store.reconciliation("rec_1").await.unwrap(),
        Some(first.clone())
    );
    // Updates are all applied, each one version more; a change that declines writes nothing.
    let resolves: Vec<_> = (0..5)
        .map(|n| {
            let store: Arc<dyn Storage> = store.clone();
            tokio::spawn(async move {
                store
                    .update_reconciliation("rec_1", &|r| {
                        r.late_matches.push(format!("pay_{n}"));
                        true
                    })
                    .await
                    .unwrap()
                    .expect("the run exists")
            })
        })
        .collect();
    for resolve in resolves {
        resolve.await.unwrap();
    }
    let stored = store.reconciliation("rec_1").await.unwrap().unwrap();
    assert_eq!((stored.late_matches.len(), stored.version), (5, 6));
    let unchanged = store
        .update_reconciliation("rec_1", &|_| false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.version, 6);
    assert_eq!(
        store
            .update_reconciliation("rec_x", &|_| true)
            .await
            .unwrap(),
        None
    );
    // Newest first in byte order, filtered, `limit + 1` at most.
    for id in ["rec_2", "rec_3", "rec_B", "rec_a"] {
        let merchant = if id == "rec_3" { "m_b" } else { "m_a" };
        store
            .record_reconciliation(&reconciliation(id, merchant), None)
            .await
            .unwrap();
    }
    let ids = |page: Vec<crate::domain::reconciliation::ReconciliationRecord>| {
        page.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    let all = store
        .reconciliations_page(None, 10, &|_| true)
        .await
        .unwrap();
    assert_eq!(ids(all), ["rec_a", "rec_B", "rec_3", "rec_2", "rec_1"]);
    let of_a = store
        .reconciliations_page(Some("rec_B"), 1, &|r| r.merchant_id == "m_a")
        .await
        .unwrap();
    assert_eq!(ids(of_a), ["rec_2", "rec_1"]);
}
