//! The webhook dispatcher's port: the outbox of events that still owe a delivery.
//!
//! Invariants:
//! - **An event owes its deliveries from its commit**: once the outbox is enabled, every
//!   webhook event gets its entry in the transaction that logs it, with the record it
//!   announces as that change wrote it.
//! - **Every due entry is taken**: `take_outbox` returns, oldest event first, every entry
//!   whose next attempt is due (an engine may return entries not yet due too: the
//!   dispatcher looks at each endpoint's time).
//! - **One dispatcher at a time per entry**: `take_outbox` leases what it returns for
//!   `lease_ms`; another daemon's pass skips leased entries. Each entry carries the lease's
//!   fencing token, and `set_outbox` applies only while the token is still the entry's: a
//!   dispatcher paused past its lease cannot overwrite what the next holder recorded (the
//!   next holder delivers again: deliveries are at least once).

use super::Durable;
use crate::domain::records::{EventRecord, OutboxRecord};
use crate::store::{Store, StoreError};

/// An event that owes deliveries, as taken by one dispatcher.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The event, with its object.
    pub event: EventRecord,
    pub delivery: OutboxRecord,
    /// The fencing token of the lease this entry was taken under.
    pub lease: i64,
}

#[async_trait::async_trait]
pub trait Outbox: Durable {
    /// From now on, webhook events get outbox entries (some endpoint is configured).
    fn enable_outbox(&self);
    /// How many events still owe a delivery.
    async fn outbox_len(&self) -> Result<usize, StoreError>;
    /// The entries due at `now_ms` that no other dispatcher holds, oldest event first, at
    /// most `limit`, leased to this one for `lease_ms`.
    async fn take_outbox(
        &self,
        limit: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    /// When the earliest entry no dispatcher holds falls due, for an engine that hands out
    /// only due entries (`None`: nothing waits, or the engine hands out every entry).
    async fn next_outbox_due(&self) -> Result<Option<i64>, StoreError>;
    /// Extends the leases of `held` (event id, token) to `lease_ms` from now, those still
    /// this dispatcher's: a pass keeps what it works on while it works, and what a stopped
    /// dispatcher held is free again within one lease.
    async fn renew_outbox(&self, held: &[(String, i64)], lease_ms: i64) -> Result<(), StoreError>;
    /// Records an entry's delivery state and releases it, or removes it when `None` (owed
    /// nowhere any more); `false` when its lease has passed to another dispatcher.
    async fn set_outbox(
        &self,
        entry: &OutboxEntry,
        state: Option<&OutboxRecord>,
    ) -> Result<bool, StoreError>;
}

/// One daemon per data dir: its dispatcher is the only one, and leases are not needed.
#[async_trait::async_trait]
impl Outbox for Store {
    fn enable_outbox(&self) {
        Store::enable_outbox(self)
    }

    async fn outbox_len(&self) -> Result<usize, StoreError> {
        Ok(Store::outbox_len(self))
    }

    /// Every entry (the dispatcher looks at each endpoint's time).
    async fn take_outbox(
        &self,
        limit: usize,
        _lease_ms: i64,
        _now_ms: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(Store::outbox_page(self, limit)?
            .into_iter()
            .map(|(event, delivery)| OutboxEntry {
                event,
                delivery,
                lease: 0,
            })
            .collect())
    }

    async fn next_outbox_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }

    async fn renew_outbox(
        &self,
        _held: &[(String, i64)],
        _lease_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn set_outbox(
        &self,
        entry: &OutboxEntry,
        state: Option<&OutboxRecord>,
    ) -> Result<bool, StoreError> {
        Store::set_outbox(self, &entry.event.id, state)?;
        Ok(true)
    }
}
