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

use super::Durable;
use crate::domain::records::{AlertRecord, BlockRecord, EventRecord};
use crate::store::{Store, StoreError};

/// Changes an alert (a repeat within the cool-down, an acknowledgement).
pub type AlertChange<'a> = &'a (dyn Fn(&mut AlertRecord) + Sync);
/// Which alerts a page keeps.
pub type AlertFilter<'a> = &'a (dyn Fn(&AlertRecord) -> bool + Sync);

#[async_trait::async_trait]
pub trait AlertStore: Durable {
    /// Records a new alert (and its block, if its rule placed one) with its event.
    async fn record_alert(
        &self,
        alert: &AlertRecord,
        block: Option<&BlockRecord>,
        event: &EventRecord,
    ) -> Result<(), StoreError>;
    /// Applies `change` to the stored alert; the alert as written (`None`: no such alert).
    async fn update_alert(
        &self,
        id: &str,
        change: AlertChange<'_>,
    ) -> Result<Option<AlertRecord>, StoreError>;
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
    ) -> Result<(), StoreError> {
        Store::record_alert(self, alert, block, event)
    }

    async fn update_alert(
        &self,
        id: &str,
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
