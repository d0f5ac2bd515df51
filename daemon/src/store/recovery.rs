//! Recovery points of the payments' changes, and how a change a crash interrupted is finished
//! or taken back at open.
//!
//! A change of a payment or a refund writes single keys in a fixed order (`payments.rs`),
//! after one small record under `meta`'s `last_change` key that *names* what the change
//! writes: its subject record and the version it writes, the idempotency key it claims, the
//! sequence numbers of its events. No value is written twice. sled recovers its log up to
//! the first torn or missing message, a prefix in log order (`txn.rs`), so after a crash the
//! last named change is the only one that can be partly on disk, and its subject record says
//! how far it got:
//!
//! - **The record is at the named version** (it landed): everything before it in the order
//!   (the claim, the events, their outbox entries) landed too. What comes after it is derived
//!   from records and is derived again: the indexes of the record (order id, merchant list,
//!   pending lists) and, for a refund, its payment's refund totals (reserved = the refunds
//!   that have not failed, refunded = the succeeded ones).
//! - **It is not** (it was lost): nothing after it landed; what before it did is taken back:
//!   the claim (the request was never answered, a retry starts afresh), the events and their
//!   outbox entries.
//!
//! Both are idempotent, and a change that landed whole is finished again harmlessly, so the
//! record is left in place until the next change overwrites it. (Records are never deleted
//! while they are named here; whatever deletes one must clear this record first.)

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::event_log::{QueuedEvent, seq_key};
use super::payments::{
    PaymentTrees, compound, derive_payment_indexes, derive_refund_totals, refunds_of,
};
use super::{DB_DIR, META_TREE, Store};
use crate::domain::records::{EventRecord, PaymentRecord, RefundRecord};

/// The key of `meta` that names the last change of a payment or refund.
pub(super) const LAST_CHANGE: &[u8] = b"last_change";

/// What a change writes, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LastChange {
    pub subject: Subject,
    /// The idempotency key the change claimed (its tree key), if it claimed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// The sequence numbers of its events: the first, and one past the last.
    pub events: [u64; 2],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Subject {
    Payment {
        id: String,
        version: u64,
    },
    Refund {
        id: String,
        version: u64,
        payment_id: String,
    },
}

/// What recovery did at open.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Recovered {
    /// The last change had landed; its derived writes were made again, `repaired` of them
    /// missing (0: it had landed whole).
    Finished { repaired: usize },
    /// The last change was lost; what of it had landed was taken back.
    TakenBack { events: usize },
}

fn decode<T: serde::de::DeserializeOwned>(raw: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Finishes or takes back the last named change. Run at open, before anything reads.
pub(super) fn recover(
    meta: &sled::Tree,
    trees: &PaymentTrees,
) -> Result<Option<Recovered>, StoreError> {
    let sled_error = StoreError::Sled;
    let Some(raw) = meta.get(LAST_CHANGE).map_err(sled_error)? else {
        return Ok(None);
    };
    let change: LastChange = decode(&raw, "last change record")?;
    let recovered = match &change.subject {
        Subject::Payment { id, version } => {
            match trees.payments.get(id.as_bytes()).map_err(sled_error)? {
                Some(raw) => {
                    let payment: PaymentRecord = decode(&raw, "payment")?;
                    if payment.version >= *version {
                        let mut repaired = 0;
                        for write in derive_payment_indexes(&payment, None) {
                            repaired += usize::from(write.apply(trees)?);
                        }
                        Some(Recovered::Finished { repaired })
                    } else {
                        None
                    }
                }
                None => None,
            }
        }
        Subject::Refund {
            id,
            version,
            payment_id,
        } => match trees.refunds.get(id.as_bytes()).map_err(sled_error)? {
            Some(raw) => {
                let refund: RefundRecord = decode(&raw, "refund")?;
                if refund.version >= *version {
                    let index = compound(payment_id, id);
                    let listed = trees
                        .refunds_by_payment
                        .insert(index, &[][..])
                        .map_err(sled_error)?;
                    let pending = if refund.status.is_terminal() {
                        trees.pending_refunds.remove(id.as_bytes())
                    } else {
                        trees.pending_refunds.insert(id.as_bytes(), &[][..])
                    }
                    .map_err(sled_error)?;
                    let repaired = usize::from(listed.is_none())
                        + usize::from(pending.is_some() == refund.status.is_terminal())
                        + usize::from(refresh_refund_totals(trees, payment_id)?);
                    Some(Recovered::Finished { repaired })
                } else {
                    None
                }
            }
            None => None,
        },
    };
    let recovered = match recovered {
        Some(finished) => finished,
        None => take_back(trees, &change)?,
    };
    meta.remove(LAST_CHANGE).map_err(sled_error)?;
    Ok(Some(recovered))
}

/// Rewrites a payment's refund totals from its refunds, if they differ; says whether they
/// did.
fn refresh_refund_totals(trees: &PaymentTrees, payment_id: &str) -> Result<bool, StoreError> {
    let Some(raw) = trees
        .payments
        .get(payment_id.as_bytes())
        .map_err(StoreError::Sled)?
    else {
        return Err(StoreError::Corrupt(format!(
            "a refund names missing payment {payment_id}"
        )));
    };
    let mut payment: PaymentRecord = decode(&raw, "payment")?;
    let refunds = refunds_of(trees, payment_id)?;
    let (reserved, refunded) = derive_refund_totals(&refunds);
    if (payment.refund_reserved_minor, payment.refunded_minor) != (reserved, refunded) {
        payment.refund_reserved_minor = reserved;
        payment.refunded_minor = refunded;
        payment.version += 1;
        trees
            .payments
            .insert(payment_id.as_bytes(), super::payments::encode(&payment))
            .map_err(StoreError::Sled)?;
        return Ok(true);
    }
    Ok(false)
}

/// Removes what a lost change wrote before its record: its claim, events and deliveries.
fn take_back(trees: &PaymentTrees, change: &LastChange) -> Result<Recovered, StoreError> {
    let sled_error = StoreError::Sled;
    if let Some(claim) = &change.claim {
        trees
            .idempotency
            .remove(claim.as_bytes())
            .map_err(sled_error)?;
    }
    let mut events = 0;
    // What the log holds in the named range (not every number in it: a damaged record
    // could name a range too long to count through).
    let [first, end] = change.events;
    let logged: Vec<(sled::IVec, sled::IVec)> = if first < end {
        trees
            .events
            .range(seq_key(first)..seq_key(end))
            .collect::<Result<_, _>>()
            .map_err(sled_error)?
    } else {
        Vec::new()
    };
    for (key, raw) in logged {
        let event: EventRecord = decode(&raw, "event")?;
        if let Some(raw) = trees.outbox.get(event.id.as_bytes()).map_err(sled_error)? {
            // Only the entry of this event (ids are unique, but be sure).
            let queued: QueuedEvent = decode(&raw, "outbox entry")?;
            if queued.event.id == event.id {
                trees
                    .outbox
                    .remove(event.id.as_bytes())
                    .map_err(sled_error)?;
            }
        }
        trees.events.remove(key).map_err(sled_error)?;
        events += 1;
    }
    Ok(Recovered::TakenBack { events })
}

/// Fuzzing: opens a store in `dir` whose `meta` holds `point` as the last change's record,
/// as a damaged or hostile disk could. The open finishes or takes back what it names, or
/// refuses a record it cannot read as corrupt; it never panics, and what it opens verifies.
pub fn open_with_recovery_point(dir: &std::path::Path, point: &[u8]) -> Result<Store, StoreError> {
    drop(Store::open(dir)?);
    {
        // Through `open_sled`: the store just dropped may still hold sled's file lock.
        let db = super::open_sled(&dir.join(DB_DIR), super::DEFAULT_CACHE_BYTES)
            .map_err(StoreError::Sled)?;
        let meta = db.open_tree(META_TREE).map_err(StoreError::Sled)?;
        meta.insert(LAST_CHANGE, point).map_err(StoreError::Sled)?;
        db.flush().map_err(StoreError::Sled)?;
    }
    Store::open(dir)
}

#[cfg(test)]
mod tests {
    //! A crash after each write of each named change, simulated exactly: the writer is made
    //! to fail at write `k`, so sled holds the recovery point and writes `0..k`, as a kill
    //! after those reached the log would leave; the store is then reopened.
    use super::super::{Begin, Claim, Store};
    use crate::domain::events::EventKind;
    use crate::domain::records::*;
    use crate::domain::state::{PaymentStatus, RefundStatus};

    fn claim(key: &str) -> Claim {
        Claim {
            api_key_id: "key_a".into(),
            key: key.into(),
            fingerprint: "fp".into(),
            lease: Default::default(),
        }
    }

    fn payment(id: &str) -> PaymentRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "merchant_id": "m_a", "provider": "mock", "method": "barcode",
            "amount_minor": 1000, "currency": "CNY", "status": "pending",
            "order_id": format!("order-{id}"), "description": null, "terminal_id": "t1",
            "auth_code": null, "provider_reference": null, "qr_code": null, "payer": null,
            "failure": null, "metadata": {}, "created_at_ms": 1, "updated_at_ms": 1,
            "expires_at_ms": null, "refund_reserved_minor": 0, "refunded_minor": 0,
            "provider_step": "not_sent", "api_key_id": "key_a"
        }))
        .unwrap()
    }

    fn refund(id: &str, payment_id: &str) -> RefundRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "payment_id": payment_id, "merchant_id": "m_a", "provider": "mock",
            "amount_minor": 400, "currency": "CNY", "status": "pending", "reason": null,
            "provider_reference": null, "failure": null, "created_at_ms": 2,
            "updated_at_ms": 2, "provider_step": "not_sent", "api_key_id": "key_a"
        }))
        .unwrap()
    }

    fn event(kind: EventKind, object_id: &str) -> EventRecord {
        EventRecord {
            id: crate::domain::ids::new_id("evt"),
            kind,
            created_at_ms: 3,
            object_id: object_id.into(),
            data: serde_json::json!({}),
            object_version: 0,
            object: None,
        }
    }

    fn succeed(p: &mut PaymentRecord) -> Option<Vec<EventRecord>> {
        p.status = PaymentStatus::Succeeded;
        Some(vec![event(EventKind::PaymentSucceeded, &p.id)])
    }

    /// Begins `pay_1` under the key `k1`.
    fn begin(store: &Store) -> Result<Begin, crate::store::StoreError> {
        store.begin_payment(
            &claim("k1"),
            &payment("pay_1"),
            &event(EventKind::PaymentCreated, "pay_1"),
        )
    }

    fn clean(store: &Store) {
        let report = store.verify().unwrap();
        assert!(report.violations.is_empty(), "{:?}", report.violations);
    }

    /// Makes the change with its write `k` failing, reopens, and returns the store and
    /// whether the writer stopped (write `k` existed).
    fn crash_at(
        dir: &std::path::Path,
        k: usize,
        outbox: bool,
        change: impl FnOnce(&Store),
    ) -> (Store, bool) {
        let store = Store::open(dir).unwrap();
        if outbox {
            store.enable_outbox();
        }
        store.writer.fail_write_at(k);
        change(&store);
        let stopped = store.failure().is_some();
        drop(store);
        let store = Store::open(dir).unwrap();
        if outbox {
            store.enable_outbox();
        }
        (store, stopped)
    }

    #[test]
    fn a_payment_begun_is_whole_or_absent_after_a_crash_at_any_write() {
        // claim, event, payment, order id, merchant list, pending (`payment.created` owes
        // no webhook)
        for k in 0.. {
            let dir = tempfile::tempdir().unwrap();
            let (store, stopped) = crash_at(dir.path(), k, true, |s| {
                let _ = begin(s);
            });
            if !stopped {
                assert!(k > 5, "every write was tried");
                break;
            }
            clean(&store);
            let retry = store
                .begin_payment(
                    &claim("k1"),
                    &payment("pay_2"),
                    &event(EventKind::PaymentCreated, "pay_2"),
                )
                .unwrap();
            if k > 2 {
                assert_eq!(
                    retry,
                    Begin::Resume {
                        object_id: "pay_1".into()
                    },
                    "k = {k}"
                );
                assert_eq!(store.pending_payment_ids().unwrap(), ["pay_1"]);
                assert_eq!(store.events().unwrap().len(), 1);
            } else {
                assert_eq!(retry, Begin::Created, "k = {k}: the change was taken back");
                assert!(store.payment("pay_1").unwrap().is_none());
                assert_eq!(store.pending_payment_ids().unwrap(), ["pay_2"]);
                assert_eq!(store.events().unwrap().len(), 1, "only pay_2's event");
            }
            clean(&store);
        }
    }

    #[test]
    fn a_payment_update_is_whole_or_absent_after_a_crash_at_any_write() {
        for outbox in [false, true] {
            // event, [outbox entry], payment, pending removed
            let record_at = if outbox { 2 } else { 1 };
            for k in 0.. {
                let dir = tempfile::tempdir().unwrap();
                {
                    let store = Store::open(dir.path()).unwrap();
                    begin(&store).unwrap();
                }
                let (store, stopped) = crash_at(dir.path(), k, outbox, |s| {
                    let _ = s.update_payment("pay_1", succeed);
                });
                if !stopped {
                    assert!(k > record_at + 1, "every write was tried");
                    break;
                }
                clean(&store);
                let found = store.payment("pay_1").unwrap().unwrap();
                if k > record_at {
                    assert_eq!(found.status, PaymentStatus::Succeeded, "k = {k}");
                    assert_eq!(found.version, 2);
                    assert!(store.pending_payment_ids().unwrap().is_empty());
                    assert_eq!(store.events().unwrap().len(), 2);
                    assert_eq!(store.outbox_len(), usize::from(outbox));
                } else {
                    assert_eq!(found.status, PaymentStatus::Pending, "k = {k}");
                    assert_eq!(found.version, 1);
                    assert_eq!(store.pending_payment_ids().unwrap(), ["pay_1"]);
                    assert_eq!(store.events().unwrap().len(), 1);
                    assert_eq!(store.outbox_len(), 0, "k = {k}: its delivery taken back");
                }
            }
        }
    }

    #[test]
    fn refunds_keep_their_payments_totals_after_a_crash_at_any_write() {
        // begin: claim, event, refund, payment's reservation, refund list, pending;
        // update: event, refund, payment's totals, pending removed.
        for (phase, record_at) in [("begin", 2), ("update", 1)] {
            for k in 0.. {
                let dir = tempfile::tempdir().unwrap();
                {
                    let store = Store::open(dir.path()).unwrap();
                    begin(&store).unwrap();
                    store.update_payment("pay_1", succeed).unwrap();
                    if phase == "update" {
                        store
                            .begin_refund(
                                &claim("k2"),
                                &refund("re_1", "pay_1"),
                                &event(EventKind::RefundCreated, "re_1"),
                            )
                            .unwrap();
                    }
                }
                let (store, stopped) = crash_at(dir.path(), k, false, |s| {
                    if phase == "begin" {
                        let _ = s.begin_refund(
                            &claim("k2"),
                            &refund("re_1", "pay_1"),
                            &event(EventKind::RefundCreated, "re_1"),
                        );
                    } else {
                        let _ = s.update_refund("re_1", |r, p| {
                            r.status = RefundStatus::Succeeded;
                            p.refunded_minor += r.amount_minor;
                            Some(vec![event(EventKind::RefundSucceeded, &r.id)])
                        });
                    }
                });
                if !stopped {
                    break;
                }
                // verify checks the totals against the refunds and the pending lists.
                clean(&store);
                let p = store.payment("pay_1").unwrap().unwrap();
                let landed = k > record_at;
                match (phase, landed) {
                    ("begin", true) => assert_eq!(p.refund_reserved_minor, 400, "k = {k}"),
                    ("begin", false) => {
                        assert_eq!(p.refund_reserved_minor, 0, "k = {k}");
                        assert!(store.refund("re_1").unwrap().is_none());
                    }
                    (_, true) => assert_eq!(p.refunded_minor, 400, "k = {k}"),
                    (_, false) => assert_eq!(p.refunded_minor, 0, "k = {k}"),
                }
            }
        }
    }
}
