//! `paygated store verify`: checks every invariant of the stored data, read-only, after a
//! crash loop or before an upgrade. Each violation is reported with the record it concerns.
//!
//! Checked:
//! - every payment decodes; its `refund_reserved_minor` is the sum of its refunds that have
//!   not failed, `refunded_minor` the sum of the succeeded ones, and neither exceeds its
//!   amount (nothing refunded twice, nothing beyond what was paid);
//! - a refund exists only for a payment that exists and has succeeded;
//! - the pending indexes list exactly the non-terminal payments and refunds;
//! - every `order_id` index entry points at a payment of that merchant with that order id;
//! - every idempotency key points at an object that exists;
//! - every payment's events agree with its state: a terminal payment has exactly one event
//!   moving it there (conflict events aside), a pending one none;
//! - the event log is keyed by sequence numbers, and no event announces a version of its
//!   record that the record has not reached;
//! - every payment is in its merchant's list; every outbox entry decodes;
//! - the archive (`archive/verify.rs`): each segment whole, decodable, counted and indexed
//!   as its manifest says; keys and events may name archived objects.

use std::collections::{BTreeMap, BTreeSet};

use super::{Store, StoreError};
use crate::domain::records::*;
use crate::domain::state::{PaymentStatus, RefundStatus};

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Report {
    pub payments: usize,
    pub refunds: usize,
    pub idempotency_keys: usize,
    pub events: usize,
    /// What the archive holds.
    pub archived: super::archive::ArchiveCounts,
    pub violations: Vec<String>,
}

fn decode_all<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    what: &str,
    violations: &mut Vec<String>,
) -> Result<Vec<(String, T)>, StoreError> {
    let mut all = Vec::new();
    for entry in tree.iter() {
        let (key, raw) = entry.map_err(StoreError::Sled)?;
        let key = String::from_utf8_lossy(&key).into_owned();
        match serde_json::from_slice(&raw) {
            Ok(value) => all.push((key, value)),
            Err(e) => violations.push(format!("{what} {key:?} does not decode: {e}")),
        }
    }
    Ok(all)
}

impl Store {
    /// Checks the invariants of the stored payments, refunds, keys and events.
    pub fn verify(&self) -> Result<Report, StoreError> {
        let t = &self.trees;
        let mut report = Report::default();
        let v = &mut report.violations;
        let payments: BTreeMap<String, PaymentRecord> =
            decode_all(&t.payments, "payment", v)?.into_iter().collect();
        let refunds: BTreeMap<String, RefundRecord> =
            decode_all(&t.refunds, "refund", v)?.into_iter().collect();
        let keys: Vec<(String, IdempotencyRecord)> =
            decode_all(&t.idempotency, "idempotency key", v)?;
        let events: Vec<(String, EventRecord)> = decode_all(&t.events, "event", v)?;
        report.payments = payments.len();
        report.refunds = refunds.len();
        report.idempotency_keys = keys.len();
        report.events = events.len();

        let records = Records {
            payments,
            refunds,
            events: events.into_iter().map(|(_, event)| event).collect(),
            in_progress: keys
                .iter()
                .filter_map(|(key, record)| match &record.state {
                    IdempotencyState::InProgress { object_id } => {
                        Some((key.replace('\0', "/"), object_id.clone()))
                    }
                    IdempotencyState::Done { .. } => None,
                })
                .collect(),
        };
        records.check(&mut |id| self.archived_version(id), v);
        let Records {
            payments, refunds, ..
        } = records;

        // Pending indexes.
        let pending: BTreeSet<String> = t
            .pending
            .iter()
            .keys()
            .filter_map(|k| k.ok().map(|k| String::from_utf8_lossy(&k).into_owned()))
            .collect();
        for payment in payments.values() {
            let listed = pending.contains(&payment.id);
            if listed == payment.status.is_terminal() {
                v.push(format!(
                    "payment {} is {} but {} the pending index",
                    payment.id,
                    payment.status.as_str(),
                    if listed { "in" } else { "missing from" }
                ));
            }
        }
        for id in pending.iter().filter(|id| !payments.contains_key(*id)) {
            v.push(format!("the pending index names missing payment {id}"));
        }
        let pending_refunds: BTreeSet<String> = t
            .pending_refunds
            .iter()
            .keys()
            .filter_map(|k| k.ok().map(|k| String::from_utf8_lossy(&k).into_owned()))
            .collect();
        for refund in refunds.values() {
            if pending_refunds.contains(&refund.id) == refund.status.is_terminal() {
                v.push(format!(
                    "refund {} is {} but the pending index disagrees",
                    refund.id,
                    refund.status.as_str()
                ));
            }
        }

        // Order ids.
        for entry in t.order_ids.iter() {
            let (key, value) = entry.map_err(StoreError::Sled)?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let id = String::from_utf8_lossy(&value).into_owned();
            let (merchant, order) = key.split_once('\0').unwrap_or((&key, ""));
            match payments.get(&id) {
                Some(p) if p.merchant_id == merchant && p.order_id.as_deref() == Some(order) => {}
                _ => v.push(format!(
                    "order id {order:?} of {merchant} points at {id}, which does not match"
                )),
            }
        }

        // Wallet token ids: each names the hot payment that holds it, and every hot
        // wallet-token payment's id is there.
        for entry in t.wallet_tokens.iter() {
            let (key, value) = entry.map_err(StoreError::Sled)?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let id = String::from_utf8_lossy(&value).into_owned();
            let (provider, token) = key.split_once('\0').unwrap_or((&key, ""));
            match payments.get(&id) {
                Some(p)
                    if p.provider == provider && p.wallet_token_id.as_deref() == Some(token) => {}
                _ => v.push(format!(
                    "wallet token {token:?} of {provider} points at {id}, which does not match"
                )),
            }
        }
        for p in payments.values() {
            if let Some(token) = &p.wallet_token_id {
                let key = super::payments::compound(&p.provider, token);
                if t.wallet_tokens
                    .get(key)
                    .map_err(StoreError::Sled)?
                    .as_deref()
                    != Some(p.id.as_bytes())
                {
                    v.push(format!(
                        "payment {}'s wallet token is not in the token index",
                        p.id
                    ));
                }
            }
        }

        // Idempotency keys point at existing objects (payments, refunds, or merchant objects
        // of the onboarding API, which live in their own trees).
        // The event log is keyed by sequence numbers.
        for entry in t.events.iter().keys() {
            let key = entry.map_err(StoreError::Sled)?;
            if key.len() != 8 {
                v.push(format!(
                    "event log key {:?} is not a sequence number",
                    String::from_utf8_lossy(&key)
                ));
            }
        }
        for payment in payments.values() {
            let listed = t
                .by_merchant
                .contains_key(super::payments::compound(&payment.merchant_id, &payment.id))
                .map_err(StoreError::Sled)?;
            if !listed {
                v.push(format!(
                    "payment {} is missing from its merchant's list",
                    payment.id
                ));
            }
        }
        let _: Vec<(String, super::event_log::QueuedEvent)> =
            decode_all(&t.outbox, "outbox entry", v)?;

        // Events against states.
        let hot_payments = payments.iter().map(|(k, p)| (k.as_str(), p)).collect();
        let hot_refunds = refunds.iter().map(|(k, r)| (k.as_str(), r)).collect();
        report.archived = self.verify_archive(&hot_payments, &hot_refunds, v)?;
        Ok(report)
    }
}

impl Store {
    /// The version an archived payment or refund reached (`None`: not archived).
    fn archived_version(&self, id: &str) -> Result<Option<u64>, String> {
        let found = self
            .archive
            .payment(id)
            .map(|p| p.map(|line| line.payment.version));
        let found = match found {
            Ok(None) => self.archive.refund(id).map(|r| r.map(|r| r.version)),
            other => other,
        };
        found.map_err(|e| format!("cannot read {id} from the archive: {e}"))
    }
}

/// What both engines keep, read whole: the invariants of the records themselves, whatever
/// indexes an engine keeps beside them.
pub(crate) struct Records {
    pub payments: BTreeMap<String, PaymentRecord>,
    pub refunds: BTreeMap<String, RefundRecord>,
    pub events: Vec<EventRecord>,
    /// The keys in progress (as `api key/key`) and the object each names.
    pub in_progress: Vec<(String, String)>,
}

impl Records {
    /// Checks the refunds' sums against their payments, the objects keys in progress name,
    /// the versions events announce and the moves they record; `archived` says which version
    /// an object that left for the archive reached (an archive that cannot be read is
    /// reported, not fatal).
    pub(crate) fn check(
        &self,
        archived: &mut dyn FnMut(&str) -> Result<Option<u64>, String>,
        v: &mut Vec<String>,
    ) {
        let (payments, refunds) = (&self.payments, &self.refunds);
        let mut archived_version = |id: &str, v: &mut Vec<String>| {
            archived(id).unwrap_or_else(|e| {
                v.push(e);
                None
            })
        };
        // Refund sums per payment.
        let mut reserved: BTreeMap<&str, i64> = BTreeMap::new();
        let mut refunded: BTreeMap<&str, i64> = BTreeMap::new();
        for refund in refunds.values() {
            match payments.get(&refund.payment_id) {
                None => v.push(format!(
                    "refund {} names missing payment {}",
                    refund.id, refund.payment_id
                )),
                Some(p) if p.status != PaymentStatus::Succeeded => v.push(format!(
                    "refund {} of payment {} which is {}",
                    refund.id,
                    p.id,
                    p.status.as_str()
                )),
                Some(_) => {}
            }
            if refund.status != RefundStatus::Failed {
                *reserved.entry(&refund.payment_id).or_default() += refund.amount_minor;
            }
            if refund.status == RefundStatus::Succeeded {
                *refunded.entry(&refund.payment_id).or_default() += refund.amount_minor;
            }
        }
        for payment in payments.values() {
            let want_reserved = reserved.get(payment.id.as_str()).copied().unwrap_or(0);
            let want_refunded = refunded.get(payment.id.as_str()).copied().unwrap_or(0);
            if payment.refund_reserved_minor != want_reserved {
                v.push(format!(
                    "payment {} reserves {} for refunds, its refunds add up to {want_reserved}",
                    payment.id, payment.refund_reserved_minor
                ));
            }
            if payment.refunded_minor != want_refunded {
                v.push(format!(
                    "payment {} shows {} refunded, its succeeded refunds add up to {want_refunded}",
                    payment.id, payment.refunded_minor
                ));
            }
            if want_reserved > payment.amount_minor {
                v.push(format!(
                    "payment {} is refunded beyond its amount ({want_reserved} > {})",
                    payment.id, payment.amount_minor
                ));
            }
        }

        // Keys in progress name objects that exist (merchants, accounts and alerts are
        // created under keys too).
        for (key, object_id) in &self.in_progress {
            let exists = payments.contains_key(object_id)
                || refunds.contains_key(object_id)
                || archived_version(object_id, v).is_some()
                || object_id.starts_with("m_")
                || object_id.starts_with("ba_")
                || object_id.starts_with("al_");
            if !exists {
                v.push(format!(
                    "idempotency key {key:?} is in progress for {object_id}, which does not exist"
                ));
            }
        }

        // The versions events announce.
        for event in &self.events {
            if event.object_version == 0 {
                continue;
            }
            let reached = match payments
                .get(&event.object_id)
                .map(|p| p.version)
                .or_else(|| refunds.get(&event.object_id).map(|r| r.version))
            {
                Some(version) => Some(version),
                // Its record may have left for the archive before the event did.
                None => archived_version(&event.object_id, v),
            };
            match reached {
                Some(version) if version >= event.object_version => {}
                reached => v.push(format!(
                    "event {} announces version {} of {}, whose record is at {reached:?}",
                    event.id, event.object_version, event.object_id
                )),
            }
        }

        // Merchant lists, and the outbox.
        let mut moves: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for event in &self.events {
            if let Some(status) = event.kind.as_str().strip_prefix("payment.")
                && !matches!(status, "created" | "conflict")
            {
                moves
                    .entry(event.object_id.as_str())
                    .or_default()
                    .push(status);
            }
        }
        for payment in payments.values() {
            let moved = moves.get(payment.id.as_str()).cloned().unwrap_or_default();
            match (payment.status.is_terminal(), moved.as_slice()) {
                (false, []) => {}
                (true, [status]) if *status == payment.status.as_str() => {}
                (_, moved) => v.push(format!(
                    "payment {} is {} but its events moved it to {moved:?}",
                    payment.id,
                    payment.status.as_str()
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(id: &str, status: PaymentStatus, reserved: i64) -> PaymentRecord {
        PaymentRecord {
            id: id.into(),
            merchant_id: "m_a".into(),
            provider: "mock".into(),
            method: crate::domain::method::Method::Qr,
            amount_minor: 1000,
            currency: "CNY".into(),
            status,
            order_id: None,
            description: None,
            terminal_id: None,
            auth_code: None,
            provider_reference: None,
            qr_code: None,
            payer: None,
            failure: None,
            metadata: Default::default(),
            created_at_ms: 0,
            updated_at_ms: 0,
            expires_at_ms: None,
            succeeded_at_ms: None,
            refund_reserved_minor: reserved,
            refunded_minor: 0,
            provider_step: ProviderStep::Answered,
            api_key_id: "key".into(),
            payment_url: None,
            link_wallet: None,
            wallet_token_id: None,
            card: None,
            version: 0,
        }
    }

    #[test]
    fn a_consistent_store_passes_and_each_broken_invariant_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = &store.trees;
        // Consistent: a pending payment in the pending index, without move events.
        t.payments
            .insert(
                "pay_ok",
                serde_json::to_vec(&payment("pay_ok", PaymentStatus::Pending, 0)).unwrap(),
            )
            .unwrap();
        t.pending.insert("pay_ok", &[][..]).unwrap();
        t.by_merchant.insert("m_a\0pay_ok", &[][..]).unwrap();
        assert_eq!(store.verify().unwrap().violations, Vec::<String>::new());

        // A reserve with no refunds behind it, a succeeded payment without its event and
        // still in the pending index, and a refund of a missing payment.
        t.payments
            .insert(
                "pay_bad",
                serde_json::to_vec(&payment("pay_bad", PaymentStatus::Succeeded, 500)).unwrap(),
            )
            .unwrap();
        t.pending.insert("pay_bad", &[][..]).unwrap();
        t.by_merchant.insert("m_a\0pay_bad", &[][..]).unwrap();
        let refund = RefundRecord {
            id: "re_orphan".into(),
            payment_id: "pay_gone".into(),
            merchant_id: "m_a".into(),
            provider: "mock".into(),
            amount_minor: 100,
            currency: "CNY".into(),
            status: RefundStatus::Succeeded,
            reason: None,
            provider_reference: None,
            failure: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            provider_step: ProviderStep::Answered,
            api_key_id: "key".into(),
            version: 0,
        };
        t.refunds
            .insert("re_orphan", serde_json::to_vec(&refund).unwrap())
            .unwrap();
        t.payments.insert("pay_garbage", &b"{not json"[..]).unwrap();
        let report = store.verify().unwrap();
        let all = report.violations.join("\n");
        for expected in [
            "payment pay_bad reserves 500 for refunds",
            "payment pay_bad is succeeded but in the pending index",
            "payment pay_bad is succeeded but its events moved it to []",
            "refund re_orphan names missing payment pay_gone",
            "payment \"pay_garbage\" does not decode",
        ] {
            assert!(all.contains(expected), "{expected} not in:\n{all}");
        }
    }
}
