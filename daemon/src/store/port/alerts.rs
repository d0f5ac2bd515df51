//! The anomaly monitor's port: alerts and the blocks their rules place.
//!
//! Invariants:
//! - **An alert is recorded with its event** (`alert.raised`) and its block, if its rule
//!   placed one, in one transaction: the webhook for it cannot be lost, nor a block exist
//!   without the alert that explains it.
//! - **An update applies to what is stored**: `update_alert`'s change is applied to the
//!   stored alert and written only if nothing changed it meanwhile (else read and applied
//!   again), so concurrent repeats are all counted.
//! - Alerts are listed newest first, in the order of their ids.
//! - **One monitor reads the shared log at a time**, where several daemons share the store:
//!   the one holding the monitor's lease, which it takes where its last holder stopped
//!   reading; the alerts it raises from the log present its token (a `fence`), so that a
//!   holder paused past its lease writes nothing once another daemon took the lease over.

use super::Durable;
use crate::domain::records::{AlertRecord, BlockRecord, EventRecord};
use crate::store::{Store, StoreError};

/// Changes an alert (a repeat within the cool-down, an acknowledgement).
pub type AlertChange<'a> = &'a (dyn Fn(&mut AlertRecord) + Sync);
/// Which alerts a page keeps.
pub type AlertFilter<'a> = &'a (dyn Fn(&AlertRecord) -> bool + Sync);

/// The monitor's turn at the shared event log: its lease's token, and where its last holder
/// stopped reading (an opaque position of the engine's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorTurn {
    pub token: i64,
    pub position: String,
}

#[async_trait::async_trait]
pub trait AlertStore: Durable {
    /// Records a new alert (and its block, if its rule placed one) with its event; under the
    /// monitor's lease `fence` when given (else `LeaseLost`, and nothing written).
    async fn record_alert(
        &self,
        alert: &AlertRecord,
        block: Option<&BlockRecord>,
        event: &EventRecord,
        fence: Option<i64>,
    ) -> Result<(), StoreError>;
    /// Applies `change` to the stored alert; the alert as written (`None`: no such alert).
    /// Under the monitor's lease `fence` when given.
    async fn update_alert(
        &self,
        id: &str,
        fence: Option<i64>,
        change: AlertChange<'_>,
    ) -> Result<Option<AlertRecord>, StoreError>;
    /// Takes the monitor's lease, unless another daemon holds it: the turn. Asked only of a
    /// shared store (one daemon's monitor reads its own bus).
    async fn take_monitor(&self, _lease_ms: i64) -> Result<Option<MonitorTurn>, StoreError> {
        Ok(None)
    }
    /// Up to `limit` events of the shared log after `position`, each with its own, oldest
    /// first, each with its record.
    async fn monitor_events(
        &self,
        _position: &str,
        _limit: usize,
    ) -> Result<Vec<(String, EventRecord)>, StoreError> {
        Ok(Vec::new())
    }
    /// Records that the holder of `token` has read up to `position`, and renews its lease
    /// for `lease_ms`; false once another daemon has taken the lease over.
    async fn advance_monitor(
        &self,
        _token: i64,
        _position: &str,
        _lease_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn alert(&self, id: &str) -> Result<Option<AlertRecord>, StoreError>;
    /// Alerts newest first, older than `after` when given, keeping those `keep` accepts, at
    /// most `limit + 1` (the extra one says that there are more).
    async fn alerts_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: AlertFilter<'_>,
    ) -> Result<Vec<AlertRecord>, StoreError>;
    /// Every block, expired or not (the monitor drops the expired ones).
    async fn blocks(&self) -> Result<Vec<BlockRecord>, StoreError>;
    /// Removes a block; returns it if it existed.
    async fn remove_block(&self, id: &str) -> Result<Option<BlockRecord>, StoreError>;
}

#[async_trait::async_trait]
impl AlertStore for Store {
    async fn record_alert(
        &self,
        alert: &AlertRecord,
        block: Option<&BlockRecord>,
        event: &EventRecord,
        _fence: Option<i64>,
    ) -> Result<(), StoreError> {
        Store::record_alert(self, alert, block, event)
    }

    /// One daemon holds sled: no lease to fence.
    async fn update_alert(
        &self,
        id: &str,
        _fence: Option<i64>,
        change: AlertChange<'_>,
    ) -> Result<Option<AlertRecord>, StoreError> {
        Store::update_alert(self, id, change)
    }

    async fn alert(&self, id: &str) -> Result<Option<AlertRecord>, StoreError> {
        Store::alert(self, id)
    }

    async fn alerts_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: AlertFilter<'_>,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        Store::alerts_page(self, after, limit, keep)
    }

    async fn blocks(&self) -> Result<Vec<BlockRecord>, StoreError> {
        Store::blocks(self)
    }

    async fn remove_block(&self, id: &str) -> Result<Option<BlockRecord>, StoreError> {
        Store::remove_block(self, id)
    }
}
