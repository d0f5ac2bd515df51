//! Payments, refunds, idempotency keys and events in sled, changed only in changes that keep
//! their invariants:
//! - an idempotency key is claimed in the same change that records the object it creates,
//!   so a crash can never leave one without the other;
//! - `order_id` is unique per merchant;
//! - `sum(refunds not failed) <= amount` is checked and reserved in the same change that
//!   records the refund, so concurrent refunds can never exceed a payment;
//! - every state change appends its events in the same change.
//!
//! Each change runs under the store's single writer (`txn.rs`) and writes single keys in this
//! order, after a small record naming them (`recovery.rs`, which finishes or takes back a
//! change a crash interrupted):
//!
//! | change | writes, in order |
//! | --- | --- |
//! | `begin_payment` | claim, event, outbox entry, **payment**, order id, merchant list, pending |
//! | `update_payment` | events, outbox entries, **payment**, pending (removed once final) |
//! | `begin_refund` | claim, event, outbox entry, **refund**, payment's totals, refund list, pending |
//! | `update_refund` | events, outbox entries, **refund**, payment's totals, pending (once final) |
//!
//! Everything after the record in bold is derived from records, so recovery derives it again;
//! everything before it is taken back if the record did not land. Each record carries a
//! `version`, numbered by the store (1 when created, one more at each write), which is how
//! recovery tells whether a change's record landed and which version each event announces.

use super::answers::{answer_key_of, answer_of};
use super::event_log::{log_events, queue_deliveries};
use super::recovery::{LastChange, Subject};
use super::txn::TxTree;
use super::{Store, StoreError};
use crate::domain::records::*;
use crate::domain::state::PaymentStatus;

/// An idempotency claim: the key, scoped to the API key, and the request's fingerprint.
#[derive(Debug, Clone)]
pub struct Claim {
    pub api_key_id: String,
    pub key: String,
    pub fingerprint: String,
    /// The lease a store shared by several daemons granted this request on the key.
    pub lease: ClaimLease,
}

/// The lease on a claimed key that a store shared by several daemons (PostgreSQL) grants the
/// request working on it: its fencing token, which each of the request's writes presents, so
/// that a request whose daemon was paused past the lease, while another daemon took the key
/// over, changes nothing when it wakes up. 0 until granted; always 0 on sled, whose keys one
/// process holds. Clones share the token (they are the same request's claim).
#[derive(Debug, Clone, Default)]
pub struct ClaimLease(std::sync::Arc<LeaseState>);

#[derive(Debug, Default)]
pub struct LeaseState {
    token: std::sync::atomic::AtomicI64,
    finished: std::sync::atomic::AtomicBool,
}

impl ClaimLease {
    /// The fencing token granted (0: none).
    pub fn token(&self) -> i64 {
        self.0.token.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records the token the store granted.
    pub fn grant(&self, token: i64) {
        self.0
            .token
            .store(token, std::sync::atomic::Ordering::Release);
    }

    /// Records that the key was finished under this lease (which ends with it).
    pub fn finish(&self) {
        self.0
            .finished
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether a lease was granted and the key is not finished yet: the lease is held.
    pub fn is_held(&self) -> bool {
        self.token() != 0 && !self.0.finished.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl Claim {
    pub(super) fn store_key(&self) -> Vec<u8> {
        compound(&self.api_key_id, &self.key)
    }
}

/// What claiming a key for a new object found.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// The key was free: the object is recorded and the key claimed.
    Created,
    /// The key finished before: replay this response.
    Replay { status: u16, body: String },
    /// The key was claimed for another request.
    KeyReused,
    /// The key is claimed and unfinished (its request died with a previous process):
    /// resume the object it created.
    Resume { object_id: String },
    /// The key is claimed and its request is still in progress on another daemon sharing the
    /// store (its lease is live): answer 409; a retry resumes it once the lease has expired.
    InProgress,
    /// The merchant's `order_id` belongs to another payment.
    OrderIdInUse { payment_id: String },
    /// The wallet token was charged by another payment.
    WalletTokenUsed { payment_id: String },
    /// (Refunds) the payment does not exist.
    PaymentMissing,
    /// (Refunds) the payment is not in a refundable state.
    NotRefundable { status: PaymentStatus },
    /// (Refunds) the refund would take the refunds above the payment's amount.
    ExceedsPayment { refundable_minor: i64 },
}

/// Trees of the payment records.
pub(super) struct PaymentTrees {
    pub payments: sled::Tree,
    pub by_merchant: sled::Tree,
    pub order_ids: sled::Tree,
    /// `provider \0 token id` → payment id, of wallet-token payments (each token once).
    pub wallet_tokens: sled::Tree,
    pub refunds: sled::Tree,
    pub refunds_by_payment: sled::Tree,
    pub idempotency: sled::Tree,
    /// The event log, by sequence number (`event_log.rs`).
    pub events: sled::Tree,
    /// Ids of the payments that are not terminal yet (the janitor's work list).
    pub pending: sled::Tree,
    /// Ids of the refunds that are not terminal yet.
    pub pending_refunds: sled::Tree,
    /// Webhook deliveries owed, by event id, each with its event (`event_log.rs`).
    pub outbox: sled::Tree,
    /// The answers of finished idempotency keys (`answers.rs`).
    pub answers: sled::Tree,
    /// The monitor's alerts, by id (time-ordered).
    pub alerts: sled::Tree,
    /// The monitor's blocks (e.g. a terminal under card testing), by id.
    pub blocks: sled::Tree,
    /// Reconciliation runs, by id (time-ordered).
    pub reconciliations: sled::Tree,
}

/// Tree names of schema version 2 (`migrate.rs` knows those of version 1).
pub(super) const EVENT_LOG_TREE: &str = "event_log";
pub(super) const OUTBOX_TREE: &str = "outbox";

impl PaymentTrees {
    pub fn open(db: &sled::Db) -> sled::Result<PaymentTrees> {
        Ok(PaymentTrees {
            payments: db.open_tree("payments")?,
            by_merchant: db.open_tree("payments_by_merchant")?,
            order_ids: db.open_tree("order_ids")?,
            wallet_tokens: db.open_tree("wallet_tokens")?,
            refunds: db.open_tree("refunds")?,
            refunds_by_payment: db.open_tree("refunds_by_payment")?,
            idempotency: db.open_tree("idempotency")?,
            events: db.open_tree(EVENT_LOG_TREE)?,
            pending: db.open_tree("pending_payments")?,
            pending_refunds: db.open_tree("pending_refunds")?,
            outbox: db.open_tree(OUTBOX_TREE)?,
            answers: db.open_tree("answers")?,
            alerts: db.open_tree("alerts")?,
            blocks: db.open_tree("blocks")?,
            reconciliations: db.open_tree("reconciliations")?,
        })
    }
}

/// `a \0 b`, the key of an index entry (ids and keys never contain NUL).
pub(super) fn compound(a: &str, b: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(a.len() + 1 + b.len());
    key.extend_from_slice(a.as_bytes());
    key.push(0);
    key.extend_from_slice(b.as_bytes());
    key
}

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialize")
}

pub(super) type TxResult<T> = Result<T, StoreError>;

/// Stores `record` under `key` as the text of its snapshot, and returns that snapshot for
/// the change's events: one serialization for the record and its events.
pub(super) fn put_record<T: serde::Serialize>(
    tree: &TxTree<'_>,
    key: &[u8],
    record: &T,
) -> TxResult<Snapshot> {
    let snapshot = Snapshot::of(record);
    tree.insert(key, snapshot.json().as_bytes())?;
    Ok(snapshot)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> TxResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// An index of the payments, derived from their records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PaymentIndex {
    OrderId,
    WalletToken,
    ByMerchant,
    Pending,
}

/// One write of an index: `value` `None` removes the key.
pub(super) struct IndexWrite {
    pub index: PaymentIndex,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl IndexWrite {
    fn tree<'t>(&self, trees: &'t PaymentTrees) -> &'t sled::Tree {
        match self.index {
            PaymentIndex::OrderId => &trees.order_ids,
            PaymentIndex::WalletToken => &trees.wallet_tokens,
            PaymentIndex::ByMerchant => &trees.by_merchant,
            PaymentIndex::Pending => &trees.pending,
        }
    }

    /// Applies the write outside a change (recovery, at open); says whether it changed
    /// anything.
    pub fn apply(&self, trees: &PaymentTrees) -> Result<bool, StoreError> {
        let tree = self.tree(trees);
        let previous = match &self.value {
            Some(value) => tree.insert(&self.key[..], &value[..]),
            None => tree.remove(&self.key[..]),
        }
        .map_err(StoreError::Sled)?;
        Ok(previous.as_deref() != self.value.as_deref())
    }
}

/// The index writes that make the indexes agree with `payment`: all of them when
/// `previous` is `None` (a new payment, or recovery), else only what changed since.
pub(super) fn derive_payment_indexes(
    payment: &PaymentRecord,
    previous: Option<&PaymentRecord>,
) -> Vec<IndexWrite> {
    let id = payment.id.as_bytes();
    let pending = IndexWrite {
        index: PaymentIndex::Pending,
        key: id.to_vec(),
        value: (!payment.status.is_terminal()).then(Vec::new),
    };
    match previous {
        Some(previous) => {
            if previous.status.is_terminal() == payment.status.is_terminal() {
                Vec::new()
            } else {
                vec![pending]
            }
        }
        None => {
            let mut writes = Vec::with_capacity(3);
            if let Some(order_id) = &payment.order_id {
                writes.push(IndexWrite {
                    index: PaymentIndex::OrderId,
                    key: compound(&payment.merchant_id, order_id),
                    value: Some(id.to_vec()),
                });
            }
            if let Some(token_id) = &payment.wallet_token_id {
                writes.push(IndexWrite {
                    index: PaymentIndex::WalletToken,
                    key: compound(&payment.provider, token_id),
                    value: Some(id.to_vec()),
                });
            }
            writes.push(IndexWrite {
                index: PaymentIndex::ByMerchant,
                key: compound(&payment.merchant_id, &payment.id),
                value: Some(Vec::new()),
            });
            writes.push(pending);
            writes
        }
    }
}

/// Reserves `amount_minor` of `payment` for a new refund (its record one version on), or
/// says why not: the rule every engine applies while it holds the payment.
pub(super) fn reserve_refund(payment: &mut PaymentRecord, amount_minor: i64) -> Result<(), Begin> {
    if payment.status != PaymentStatus::Succeeded {
        let status = payment.status;
        return Err(Begin::NotRefundable { status });
    }
    let refundable_minor = payment.amount_minor - payment.refund_reserved_minor;
    if amount_minor > refundable_minor {
        return Err(Begin::ExceedsPayment { refundable_minor });
    }
    payment.refund_reserved_minor += amount_minor;
    payment.version += 1;
    // The invariant, stated where it is enforced.
    assert!(payment.refund_reserved_minor <= payment.amount_minor);
    Ok(())
}

/// A payment's refund totals from its refunds: reserved (every refund that has not failed)
/// and refunded (the succeeded ones).
pub(super) fn derive_refund_totals(refunds: &[RefundRecord]) -> (i64, i64) {
    use crate::domain::state::RefundStatus;
    refunds.iter().fold((0, 0), |(reserved, refunded), r| {
        (
            reserved
                + if r.status == RefundStatus::Failed {
                    0
                } else {
                    r.amount_minor
                },
            refunded
                + if r.status == RefundStatus::Succeeded {
                    r.amount_minor
                } else {
                    0
                },
        )
    })
}

/// The refunds of a payment, oldest first (also read by recovery, before a `Store` exists).
pub(super) fn refunds_of(
    trees: &PaymentTrees,
    payment_id: &str,
) -> Result<Vec<RefundRecord>, StoreError> {
    let mut refunds = Vec::new();
    for key in trees
        .refunds_by_payment
        .scan_prefix(compound(payment_id, ""))
        .keys()
    {
        let key = key.map_err(StoreError::Sled)?;
        let id = key.rsplit(|b| *b == 0).next().unwrap_or_default();
        if let Some(raw) = trees.refunds.get(id).map_err(StoreError::Sled)? {
            refunds.push(decode(&raw, "refund")?);
        }
    }
    Ok(refunds)
}

/// The recovery point of a change, encoded for `meta`.
fn named(subject: Subject, claim: Option<&Claim>, events: &std::ops::Range<u64>) -> Vec<u8> {
    encode(&LastChange {
        subject,
        claim: claim.map(|c| String::from_utf8_lossy(&c.store_key()).into_owned()),
        events: [events.start, events.end],
    })
}

/// Reads the idempotency record of `claim` inside a change (and its answer, which only
/// `finish_claim` writes, under the same writer) and decides.
fn check_claim(
    idempotency: &TxTree<'_>,
    answers: &sled::Tree,
    claim: &Claim,
) -> TxResult<Option<Begin>> {
    match idempotency.get(claim.store_key())? {
        Some(raw) => decide_claim(answers, claim, &raw).map(Some),
        None => Ok(None),
    }
}

/// What the stored record `raw` of `claim`'s key says about a new request with it.
fn decide_claim(answers: &sled::Tree, claim: &Claim, raw: &[u8]) -> TxResult<Begin> {
    let record: IdempotencyRecord = decode(raw, "idempotency record")?;
    if record.fingerprint != claim.fingerprint {
        return Ok(Begin::KeyReused);
    }
    Ok(match answer_of(answers, claim, &record)? {
        Some((status, body)) => Begin::Replay { status, body },
        None => match record.state {
            IdempotencyState::InProgress { object_id } => Begin::Resume { object_id },
            IdempotencyState::Done { .. } => unreachable!("a finished record has its answer"),
        },
    })
}

fn claim_record(claim: &Claim, object_id: &str, now_ms: i64) -> Vec<u8> {
    encode(&IdempotencyRecord {
        fingerprint: claim.fingerprint.clone(),
        created_at_ms: now_ms,
        state: IdempotencyState::InProgress {
            object_id: object_id.to_owned(),
        },
    })
}

/// Payment index writes, as a change makes them. `wallet_tokens` may be left out by a change
/// that only updates a payment (its token id is written once, when it is recorded).
fn write_indexes(
    writes: Vec<IndexWrite>,
    [order_ids, by_merchant, pending]: [&TxTree<'_>; 3],
    wallet_tokens: Option<&TxTree<'_>>,
) -> TxResult<()> {
    for write in writes {
        let tree = match write.index {
            PaymentIndex::OrderId => order_ids,
            PaymentIndex::WalletToken => wallet_tokens.ok_or_else(|| {
                StoreError::Corrupt(
                    "a payment's wallet token id changed after it was recorded".into(),
                )
            })?,
            PaymentIndex::ByMerchant => by_merchant,
            PaymentIndex::Pending => pending,
        };
        match write.value {
            Some(value) => tree.insert(write.key, value)?,
            None => tree.remove(write.key)?,
        }
    }
    Ok(())
}

impl Store {
    /// Refuses a claim for new work while the store cannot take it (`space.rs`). A key it
    /// already knows is let through: a finished one is only replayed, and one in progress
    /// may finish inside the reserve (not on a read-only file system, where its writes
    /// would fail).
    fn admit(&self, claim: &Claim) -> Result<(), StoreError> {
        if let Some(failure) = self.failure() {
            return Err(StoreError::Failed(failure.to_owned()));
        }
        let room = self.room();
        if room.is_enough() {
            return Ok(());
        }
        let known = match self.trees.idempotency.get(claim.store_key()) {
            Ok(None) => false,
            Ok(Some(raw)) => match serde_json::from_slice::<IdempotencyRecord>(&raw) {
                Ok(record) => {
                    answer_of(&self.trees.answers, claim, &record)?.is_some()
                        || room != super::Room::ReadOnly
                }
                Err(e) => return Err(StoreError::Corrupt(format!("idempotency record: {e}"))),
            },
            Err(e) => return Err(StoreError::Sled(e)),
        };
        if known {
            Ok(())
        } else {
            Err(StoreError::NoRoom { room })
        }
    }

    /// Claims `claim` and records `payment` (and `event`) atomically, unless the key or the
    /// order id says otherwise.
    pub fn begin_payment(
        &self,
        claim: &Claim,
        payment: &PaymentRecord,
        event: &EventRecord,
    ) -> Result<Begin, StoreError> {
        self.admit(claim)?;
        let t = &self.trees;
        let outbox_on = self.outbox_on();
        self.writer
            .transact_named(
                [
                    &t.idempotency,
                    &t.payments,
                    &t.order_ids,
                    &t.wallet_tokens,
                    &t.by_merchant,
                    &t.pending,
                    &t.events,
                    &t.outbox,
                ],
                |[
                    idempotency,
                    payments,
                    order_ids,
                    wallet_tokens,
                    by_merchant,
                    pending,
                    events,
                    outbox,
                ]| {
                    if let Some(found) = check_claim(idempotency, &t.answers, claim)? {
                        return Ok(((found, Vec::new()), None));
                    }
                    if let Some(order_id) = &payment.order_id {
                        let key = compound(&payment.merchant_id, order_id);
                        if let Some(existing) = order_ids.get(&key)? {
                            let payment_id = String::from_utf8_lossy(&existing).into_owned();
                            return Ok(((Begin::OrderIdInUse { payment_id }, Vec::new()), None));
                        }
                    }
                    if let Some(token_id) = &payment.wallet_token_id {
                        let key = compound(&payment.provider, token_id);
                        if let Some(existing) = wallet_tokens.get(&key)? {
                            let payment_id = String::from_utf8_lossy(&existing).into_owned();
                            return Ok(((Begin::WalletTokenUsed { payment_id }, Vec::new()), None));
                        }
                    }
                    let payment = PaymentRecord {
                        version: 1,
                        ..payment.clone()
                    };
                    idempotency.insert(
                        claim.store_key(),
                        claim_record(claim, &payment.id, payment.created_at_ms),
                    )?;
                    let snapshot = Snapshot::of(&payment);
                    let (logged, seqs) = log_events(
                        &self.seq,
                        events,
                        std::slice::from_ref(event),
                        payment.version,
                        &snapshot,
                    )?;
                    if outbox_on {
                        queue_deliveries(outbox, &logged)?;
                    }
                    payments.insert(payment.id.as_bytes(), snapshot.json().as_bytes())?;
                    write_indexes(
                        derive_payment_indexes(&payment, None),
                        [order_ids, by_merchant, pending],
                        Some(wallet_tokens),
                    )?;
                    let subject = Subject::Payment {
                        id: payment.id.clone(),
                        version: payment.version,
                    };
                    Ok((
                        (Begin::Created, logged),
                        Some(named(subject, Some(claim), &seqs)),
                    ))
                },
            )
            .map(|(begin, appended)| self.published(begin, appended))
    }

    /// Claims `claim` and records `refund` against its payment atomically, reserving its
    /// amount: `sum(refunds not failed) <= payment amount` holds after every commit.
    pub fn begin_refund(
        &self,
        claim: &Claim,
        refund: &RefundRecord,
        event: &EventRecord,
    ) -> Result<Begin, StoreError> {
        self.admit(claim)?;
        let t = &self.trees;
        let outbox_on = self.outbox_on();
        self.writer
            .transact_named(
                [
                    &t.idempotency,
                    &t.payments,
                    &t.refunds,
                    &t.refunds_by_payment,
                    &t.events,
                    &t.pending_refunds,
                    &t.outbox,
                ],
                |[
                    idempotency,
                    payments,
                    refunds,
                    refunds_by_payment,
                    events,
                    pending_refunds,
                    outbox,
                ]| {
                    if let Some(found) = check_claim(idempotency, &t.answers, claim)? {
                        return Ok(((found, Vec::new()), None));
                    }
                    let Some(raw) = payments.get(refund.payment_id.as_bytes())? else {
                        return Ok(((Begin::PaymentMissing, Vec::new()), None));
                    };
                    let mut payment: PaymentRecord = decode(&raw, "payment")?;
                    if let Err(refused) = reserve_refund(&mut payment, refund.amount_minor) {
                        return Ok(((refused, Vec::new()), None));
                    }
                    let refund = RefundRecord {
                        version: 1,
                        ..refund.clone()
                    };
                    idempotency.insert(
                        claim.store_key(),
                        claim_record(claim, &refund.id, refund.created_at_ms),
                    )?;
                    let snapshot = Snapshot::of(&refund);
                    let (logged, seqs) = log_events(
                        &self.seq,
                        events,
                        std::slice::from_ref(event),
                        refund.version,
                        &snapshot,
                    )?;
                    if outbox_on {
                        queue_deliveries(outbox, &logged)?;
                    }
                    refunds.insert(refund.id.as_bytes(), snapshot.json().as_bytes())?;
                    payments.insert(payment.id.as_bytes(), encode(&payment))?;
                    refunds_by_payment.insert(compound(&refund.payment_id, &refund.id), &[][..])?;
                    pending_refunds.insert(refund.id.as_bytes(), &[][..])?;
                    let subject = Subject::Refund {
                        id: refund.id.clone(),
                        version: refund.version,
                        payment_id: refund.payment_id.clone(),
                    };
                    Ok((
                        (Begin::Created, logged),
                        Some(named(subject, Some(claim), &seqs)),
                    ))
                },
            )
            .map(|(begin, appended)| self.published(begin, appended))
    }

    /// Applies `change` to a payment and appends the events it returns. `change` sees the
    /// current record and may decline (returns `None`): nothing is written. (The answer's
    /// idempotency record is finished after this commit; a crash in between is resumed from
    /// the payment's recovery point, which then holds the answer.)
    pub fn update_payment<F>(
        &self,
        payment_id: &str,
        change: F,
    ) -> Result<Option<PaymentRecord>, StoreError>
    where
        F: Fn(&mut PaymentRecord) -> Option<Vec<EventRecord>>,
    {
        let t = &self.trees;
        let outbox_on = self.outbox_on();
        self.writer
            .transact_named(
                [&t.payments, &t.events, &t.pending, &t.outbox],
                |[payments, events, pending, outbox]| {
                    let Some(raw) = payments.get(payment_id.as_bytes())? else {
                        return Ok(((None, Vec::new()), None));
                    };
                    let previous: PaymentRecord = decode(&raw, "payment")?;
                    let mut payment = previous.clone();
                    let Some(new_events) = change(&mut payment) else {
                        return Ok(((Some(payment), Vec::new()), None));
                    };
                    payment.version = previous.version + 1;
                    let snapshot = Snapshot::of(&payment);
                    let (logged, seqs) =
                        log_events(&self.seq, events, &new_events, payment.version, &snapshot)?;
                    if outbox_on {
                        queue_deliveries(outbox, &logged)?;
                    }
                    payments.insert(payment_id.as_bytes(), snapshot.json().as_bytes())?;
                    for write in derive_payment_indexes(&payment, Some(&previous)) {
                        debug_assert_eq!(write.index, PaymentIndex::Pending);
                        match write.value {
                            Some(value) => pending.insert(write.key, value)?,
                            None => pending.remove(write.key)?,
                        }
                    }
                    let subject = Subject::Payment {
                        id: payment.id.clone(),
                        version: payment.version,
                    };
                    Ok(((Some(payment), logged), Some(named(subject, None, &seqs))))
                },
            )
            .map(|(payment, appended)| self.published(payment, appended))
    }

    /// Applies `change` to a refund and, through the same closure, to its payment's refund
    /// totals, with its events.
    pub fn update_refund<F>(
        &self,
        refund_id: &str,
        change: F,
    ) -> Result<Option<RefundRecord>, StoreError>
    where
        F: Fn(&mut RefundRecord, &mut PaymentRecord) -> Option<Vec<EventRecord>>,
    {
        let t = &self.trees;
        let outbox_on = self.outbox_on();
        self.writer
            .transact_named(
                [
                    &t.refunds,
                    &t.payments,
                    &t.events,
                    &t.pending_refunds,
                    &t.outbox,
                ],
                |[refunds, payments, events, pending_refunds, outbox]| {
                    let Some(raw) = refunds.get(refund_id.as_bytes())? else {
                        return Ok(((None, Vec::new()), None));
                    };
                    let mut refund: RefundRecord = decode(&raw, "refund")?;
                    let Some(raw_payment) = payments.get(refund.payment_id.as_bytes())? else {
                        return Err(StoreError::Corrupt(format!(
                            "refund {refund_id} names missing payment {}",
                            refund.payment_id
                        )));
                    };
                    let mut payment: PaymentRecord = decode(&raw_payment, "payment")?;
                    let totals = (payment.refund_reserved_minor, payment.refunded_minor);
                    let Some(new_events) = change(&mut refund, &mut payment) else {
                        return Ok(((Some(refund), Vec::new()), None));
                    };
                    assert!(payment.refunded_minor <= payment.refund_reserved_minor);
                    assert!(payment.refund_reserved_minor <= payment.amount_minor);
                    refund.version += 1;
                    let snapshot = Snapshot::of(&refund);
                    let (logged, seqs) =
                        log_events(&self.seq, events, &new_events, refund.version, &snapshot)?;
                    if outbox_on {
                        queue_deliveries(outbox, &logged)?;
                    }
                    refunds.insert(refund_id.as_bytes(), snapshot.json().as_bytes())?;
                    if (payment.refund_reserved_minor, payment.refunded_minor) != totals {
                        payment.version += 1;
                        payments.insert(payment.id.as_bytes(), encode(&payment))?;
                    }
                    if refund.status.is_terminal() {
                        pending_refunds.remove(refund_id.as_bytes())?;
                    }
                    let subject = Subject::Refund {
                        id: refund.id.clone(),
                        version: refund.version,
                        payment_id: refund.payment_id.clone(),
                    };
                    Ok(((Some(refund), logged), Some(named(subject, None, &seqs))))
                },
            )
            .map(|(refund, appended)| self.published(refund, appended))
    }

    /// What `claim`'s key already says (a replay, a resume, a reuse), without claiming it:
    /// `None` for a key never used. For requests that may not start new work (on an
    /// archived payment) but must still answer a retry.
    pub fn known_claim(&self, claim: &Claim) -> Result<Option<Begin>, StoreError> {
        match self
            .trees
            .idempotency
            .get(claim.store_key())
            .map_err(StoreError::Sled)?
        {
            Some(raw) => decide_claim(&self.trees.answers, claim, &raw).map(Some),
            None => Ok(None),
        }
    }

    /// Claims `claim` for an action on the existing object `object_id` (a cancel).
    pub fn claim(&self, claim: &Claim, object_id: &str, now_ms: i64) -> Result<Begin, StoreError> {
        self.admit(claim)?;
        self.writer
            .transact([&self.trees.idempotency], |[idempotency]| {
                if let Some(found) = check_claim(idempotency, &self.trees.answers, claim)? {
                    return Ok(found);
                }
                idempotency.insert(claim.store_key(), claim_record(claim, object_id, now_ms))?;
                Ok(Begin::Created)
            })
    }

    pub fn payment(&self, id: &str) -> Result<Option<PaymentRecord>, StoreError> {
        self.read(&self.trees.payments, id, "payment")
    }

    pub fn refund(&self, id: &str) -> Result<Option<RefundRecord>, StoreError> {
        self.read(&self.trees.refunds, id, "refund")
    }

    /// The hot payment of `merchant_id` with `order_id`, by the order-id index.
    pub fn payment_by_order_id(
        &self,
        merchant_id: &str,
        order_id: &str,
    ) -> Result<Option<PaymentRecord>, StoreError> {
        let key = compound(merchant_id, order_id);
        match self.trees.order_ids.get(key).map_err(StoreError::Sled)? {
            None => Ok(None),
            Some(id) => {
                let id = std::str::from_utf8(&id)
                    .map_err(|_| StoreError::Corrupt(format!("order id {order_id}: not UTF-8")))?;
                self.payment(id)
            }
        }
    }

    /// Ids of the hot payments newest first, optionally of one merchant, below (older than)
    /// `after` (`archive/reads.rs` merges them with the archived ones).
    pub(super) fn hot_payment_ids(
        &self,
        merchant_id: Option<&str>,
        after: Option<&str>,
    ) -> impl Iterator<Item = Result<String, StoreError>> + use<> {
        let ids: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            match merchant_id {
                Some(merchant) => {
                    let start = compound(merchant, "");
                    let end = match after {
                        Some(after) => compound(merchant, after),
                        None => {
                            let mut end = merchant.as_bytes().to_vec();
                            end.push(1);
                            end
                        }
                    };
                    Box::new(self.trees.by_merchant.range(start..end).rev())
                }
                None => match after {
                    Some(after) => Box::new(self.trees.payments.range(..after.as_bytes()).rev()),
                    None => Box::new(self.trees.payments.iter().rev()),
                },
            };
        let by_merchant = merchant_id.is_some();
        ids.map(move |entry| {
            let (key, _) = entry.map_err(StoreError::Sled)?;
            let id = match by_merchant {
                true => key.rsplit(|b| *b == 0).next().unwrap_or_default().to_vec(),
                false => key.to_vec(),
            };
            Ok(String::from_utf8_lossy(&id).into_owned())
        })
    }

    /// Ids of the payments not yet in a terminal state, oldest first.
    pub fn pending_payment_ids(&self) -> Result<Vec<String>, StoreError> {
        keys_of(&self.trees.pending)
    }

    /// The refunds of a payment, oldest first.
    pub fn refunds_of(&self, payment_id: &str) -> Result<Vec<RefundRecord>, StoreError> {
        refunds_of(&self.trees, payment_id)
    }

    /// Makes every later event of a webhook kind owe a delivery (webhooks are configured).
    pub fn enable_outbox(&self) {
        self.outbox_enabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn outbox_on(&self) -> bool {
        self.outbox_enabled
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Publishes what a committed transaction appended, and passes its result on.
    pub(super) fn published<T>(&self, result: T, appended: Vec<EventRecord>) -> T {
        if !appended.is_empty() {
            self.bus.publish(appended);
        }
        result
    }

    /// Ids of the refunds not yet in a terminal state, oldest first.
    pub fn pending_refund_ids(&self) -> Result<Vec<String>, StoreError> {
        keys_of(&self.trees.pending_refunds)
    }

    /// Up to `limit` ids of pending payments (`refunds`: refunds) after `after`, in id order.
    pub fn pending_ids_after(
        &self,
        refunds: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        use std::ops::Bound;
        let tree = if refunds {
            &self.trees.pending_refunds
        } else {
            &self.trees.pending
        };
        let from = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.as_bytes().to_vec()));
        tree.range::<Vec<u8>, _>((from, Bound::Unbounded))
            .keys()
            .take(limit)
            .map(|key| {
                key.map(|k| String::from_utf8_lossy(&k).into_owned())
                    .map_err(StoreError::Sled)
            })
            .collect()
    }

    /// How many payments are not terminal yet.
    pub fn pending_payment_count(&self) -> usize {
        self.trees.pending.len()
    }

    /// Forgets finished idempotency keys older than `before_ms` (API.md §4 retention); keys
    /// still in progress are kept, since a retry must be able to resume them. Returns how
    /// many were removed.
    pub fn expire_idempotency_keys(&self, before_ms: i64) -> Result<usize, StoreError> {
        let t = &self.trees;
        let mut removed = 0;
        for entry in t.idempotency.iter() {
            let (key, raw) = entry.map_err(StoreError::Sled)?;
            let record: IdempotencyRecord = serde_json::from_slice(&raw)
                .map_err(|e| StoreError::Corrupt(format!("idempotency record: {e}")))?;
            if record.created_at_ms >= before_ms {
                continue;
            }
            let answer = match &record.state {
                IdempotencyState::Done { .. } => None,
                IdempotencyState::InProgress { object_id } => {
                    let answer = answer_key_of(object_id, &key);
                    if !t.answers.contains_key(&answer).map_err(StoreError::Sled)? {
                        continue; // unfinished: a retry must be able to resume it
                    }
                    Some(answer)
                }
            };
            // Only if unchanged since read: a concurrent reuse of the key wins. The key goes
            // first: an answer left by a crash in between is never read (no key names it).
            let swapped = self.writer.single(&t.idempotency, &key, || {
                t.idempotency
                    .compare_and_swap(&key, Some(&raw), None::<&[u8]>)
            })?;
            if swapped.is_ok() {
                if let Some(answer) = answer {
                    self.writer
                        .single(&t.answers, &answer, || t.answers.remove(&answer))?;
                }
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub(super) fn read<T: serde::de::DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        id: &str,
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        match tree.get(id.as_bytes()).map_err(StoreError::Sled)? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{what} {id}: {e}"))),
        }
    }
}

pub(super) fn keys_of(tree: &sled::Tree) -> Result<Vec<String>, StoreError> {
    tree.iter()
        .keys()
        .map(|key| {
            key.map(|k| String::from_utf8_lossy(&k).into_owned())
                .map_err(StoreError::Sled)
        })
        .collect()
}
