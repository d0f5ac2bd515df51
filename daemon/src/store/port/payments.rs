//! The payments use cases' port: payments, refunds, their idempotency keys and events.
//!
//! Invariants:
//! - **A key is claimed together with the object it creates**: `begin_payment` and
//!   `begin_refund` record the object, its first event and the claim in one transaction, or
//!   nothing.
//! - **`order_id` is unique per merchant**: a second payment with the same order id is
//!   refused with the payment that holds it.
//! - **Refunds never exceed their payment**: the sum of a payment's refunds that have not
//!   failed stays at or below its amount after every commit, whatever runs concurrently.
//! - **Every record is versioned**: the store numbers each record's versions (1 when
//!   created, one more at each write), and each event names the version of its record it
//!   announces.
//! - **A finished key replays its first answer byte for byte**, whatever its object became
//!   since.
//! - **Leases, where several daemons share the store**: a claimed key is leased to the
//!   request working on it (a retry elsewhere answers `InProgress` until the lease expires,
//!   then resumes), the janitor leases the records it works on, and each write made under a
//!   lease presents its fencing token ([`Fence`]): once another daemon has taken the work
//!   over, the old holder's writes are refused with `LeaseLost` and change nothing. On sled,
//!   whose records one process holds, there are no leases and every fence passes.

use super::Durable;
use crate::domain::records::{EventRecord, PaymentRecord, RefundRecord};
use crate::store::{Begin, Claim, Store, StoreError};

/// Changes a payment; `None` declines (nothing is written). Returns the events to append.
pub type PaymentChange<'a> = &'a (dyn Fn(&mut PaymentRecord) -> Option<Vec<EventRecord>> + Sync);
/// Changes a refund and its payment's refund totals together.
pub type RefundChange<'a> =
    &'a (dyn Fn(&mut RefundRecord, &mut PaymentRecord) -> Option<Vec<EventRecord>> + Sync);

/// The answer a request finishes its key with, rendered from its payment as a change left
/// it; `None`: the change does not finish the key.
pub type PaymentAnswer<'a> = &'a (dyn Fn(&PaymentRecord) -> Option<(u16, String)> + Sync);

/// Under whose lease a change is made (see the module's invariants).
#[derive(Debug, Clone, Copy)]
pub enum Fence<'a> {
    /// A fact that stands whoever writes it (a provider's notice, a payer's choice of wallet).
    Unleased,
    /// The work of the request holding this idempotency claim.
    Claim(&'a Claim),
    /// The janitor's, holding the record (or, for a refund, the refund) with this token.
    Janitor(i64),
}

/// Which of the janitor's work lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Payments,
    Refunds,
}

/// A record of the janitor's work list, leased to this daemon with a fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub id: String,
    pub token: i64,
}

#[async_trait::async_trait]
pub trait PaymentStore: Durable {
    /// Claims `claim` and records `payment` with `event` atomically, unless the key or the
    /// order id says otherwise.
    async fn begin_payment(
        &self,
        claim: &Claim,
        payment: &PaymentRecord,
        event: &EventRecord,
    ) -> Result<Begin, StoreError>;
    /// Claims `claim` and records `refund` against its payment atomically, reserving its
    /// amount.
    async fn begin_refund(
        &self,
        claim: &Claim,
        refund: &RefundRecord,
        event: &EventRecord,
    ) -> Result<Begin, StoreError>;
    /// Claims `claim` for an action on the existing object `object_id` (a cancel).
    async fn claim(&self, claim: &Claim, object_id: &str, now_ms: i64)
    -> Result<Begin, StoreError>;
    /// What `claim`'s key already says, without claiming it (`None`: never used).
    async fn known_claim(&self, claim: &Claim) -> Result<Option<Begin>, StoreError>;
    /// Finishes a key with the response its request answered.
    async fn finish_claim(
        &self,
        claim: &Claim,
        status: u16,
        body: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Keeps `claim`'s lease for another `lease_ms`; false once it is lost (taken over, or
    /// finished). Engines without leases: always true.
    async fn renew_claim(&self, _claim: &Claim, _lease_ms: i64) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Gives `claim`'s lease back when its request ends unfinished, so that a retry on
    /// another daemon resumes at once rather than when the lease expires.
    async fn release_claim(&self, _claim: &Claim) -> Result<(), StoreError> {
        Ok(())
    }
    async fn update_payment(
        &self,
        payment_id: &str,
        fence: Fence<'_>,
        change: PaymentChange<'_>,
    ) -> Result<Option<PaymentRecord>, StoreError>;
    /// `update_payment` under `claim`, then `finish_claim` with what `answer` renders from
    /// the payment as changed: the request's last change and its answer. An engine with
    /// transactions makes them one (one commit, not two); either way the answer is written
    /// only after the change. Returns the payment and the answer written, if any.
    async fn update_payment_answering(
        &self,
        payment_id: &str,
        claim: &Claim,
        change: PaymentChange<'_>,
        answer: PaymentAnswer<'_>,
        now_ms: i64,
    ) -> Result<Option<(PaymentRecord, Option<(u16, String)>)>, StoreError> {
        let Some(payment) = self
            .update_payment(payment_id, Fence::Claim(claim), change)
            .await?
        else {
            return Ok(None);
        };
        let answered = answer(&payment);
        if let Some((status, body)) = &answered {
            self.finish_claim(claim, *status, body, now_ms).await?;
        }
        Ok(Some((payment, answered)))
    }
    async fn update_refund(
        &self,
        refund_id: &str,
        fence: Fence<'_>,
        change: RefundChange<'_>,
    ) -> Result<Option<RefundRecord>, StoreError>;
    async fn payment(&self, id: &str) -> Result<Option<PaymentRecord>, StoreError>;
    async fn refund(&self, id: &str) -> Result<Option<RefundRecord>, StoreError>;
    async fn refunds_of(&self, payment_id: &str) -> Result<Vec<RefundRecord>, StoreError>;
    /// A payment that left the hot records for the archive (final, past the retention);
    /// `payment` no longer finds it, and nothing changes it again.
    async fn archived_payment(&self, id: &str) -> Result<Option<PaymentRecord>, StoreError>;
    /// A refund that left for the archive with its payment.
    async fn archived_refund(&self, id: &str) -> Result<Option<RefundRecord>, StoreError>;
    /// Payments not in a final state (the janitor's work list).
    async fn pending_payment_ids(&self) -> Result<Vec<String>, StoreError>;
    async fn pending_refund_ids(&self) -> Result<Vec<String>, StoreError>;
    /// Leases to this daemon up to `limit` records of `list` after `after` (in id order) that
    /// no other daemon holds, for `lease_ms`. Engines without leases: the records, token 0.
    async fn take_pending(
        &self,
        list: Pending,
        after: Option<&str>,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<Leased>, StoreError>;
    /// Keeps the leases of `held` for another `lease_ms` (those taken over stay lost).
    async fn renew_pending(
        &self,
        _list: Pending,
        _held: &[Leased],
        _lease_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// Gives the leases of `held` back.
    async fn release_pending(&self, _list: Pending, _held: &[Leased]) -> Result<(), StoreError> {
        Ok(())
    }
    /// Forgets finished keys created before `before_ms`; keys in progress stay.
    async fn expire_idempotency_keys(&self, before_ms: i64) -> Result<usize, StoreError>;
    /// Every event, oldest first.
    async fn events(&self) -> Result<Vec<EventRecord>, StoreError>;
}

#[async_trait::async_trait]
impl PaymentStore for Store {
    async fn begin_payment(
        &self,
        claim: &Claim,
        payment: &PaymentRecord,
        event: &EventRecord,
    ) -> Result<Begin, StoreError> {
        Store::begin_payment(self, claim, payment, event)
    }

    async fn begin_refund(
        &self,
        claim: &Claim,
        refund: &RefundRecord,
        event: &EventRecord,
    ) -> Result<Begin, StoreError> {
        Store::begin_refund(self, claim, refund, event)
    }

    async fn claim(
        &self,
        claim: &Claim,
        object_id: &str,
        now_ms: i64,
    ) -> Result<Begin, StoreError> {
        Store::claim(self, claim, object_id, now_ms)
    }

    async fn known_claim(&self, claim: &Claim) -> Result<Option<Begin>, StoreError> {
        Store::known_claim(self, claim)
    }

    async fn finish_claim(
        &self,
        claim: &Claim,
        status: u16,
        body: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        Store::finish_claim(self, claim, status, body, now_ms)
    }

    /// One process holds sled's records: every fence passes.
    async fn update_payment(
        &self,
        payment_id: &str,
        _fence: Fence<'_>,
        change: PaymentChange<'_>,
    ) -> Result<Option<PaymentRecord>, StoreError> {
        Store::update_payment(self, payment_id, change)
    }

    async fn update_refund(
        &self,
        refund_id: &str,
        _fence: Fence<'_>,
        change: RefundChange<'_>,
    ) -> Result<Option<RefundRecord>, StoreError> {
        Store::update_refund(self, refund_id, change)
    }

    async fn payment(&self, id: &str) -> Result<Option<PaymentRecord>, StoreError> {
        Store::payment(self, id)
    }

    async fn refund(&self, id: &str) -> Result<Option<RefundRecord>, StoreError> {
        Store::refund(self, id)
    }

    async fn refunds_of(&self, payment_id: &str) -> Result<Vec<RefundRecord>, StoreError> {
        Store::refunds_of(self, payment_id)
    }

    async fn archived_payment(&self, id: &str) -> Result<Option<PaymentRecord>, StoreError> {
        Ok(Store::archived_payment(self, id)?.map(|line| line.payment))
    }

    async fn archived_refund(&self, id: &str) -> Result<Option<RefundRecord>, StoreError> {
        Store::archived_refund(self, id)
    }

    async fn pending_payment_ids(&self) -> Result<Vec<String>, StoreError> {
        Store::pending_payment_ids(self)
    }

    async fn pending_refund_ids(&self) -> Result<Vec<String>, StoreError> {
        Store::pending_refund_ids(self)
    }

    async fn take_pending(
        &self,
        list: Pending,
        after: Option<&str>,
        limit: usize,
        _lease_ms: i64,
    ) -> Result<Vec<Leased>, StoreError> {
        let ids = Store::pending_ids_after(self, list == Pending::Refunds, after, limit)?;
        Ok(ids.into_iter().map(|id| Leased { id, token: 0 }).collect())
    }

    async fn expire_idempotency_keys(&self, before_ms: i64) -> Result<usize, StoreError> {
        Store::expire_idempotency_keys(self, before_ms)
    }

    async fn events(&self) -> Result<Vec<EventRecord>, StoreError> {
        Store::events(self)
    }
}
