//! Reconciliations: each run's result, kept as found.
//!
//! Invariants:
//! - **A completed run is recorded with its event** (`reconciliation.completed`) in one
//!   transaction, so that the webhook for it cannot be lost.
//! - **An update applies to what is stored**: `update_reconciliation`'s change is applied to
//!   the stored record and written only if nothing changed it meanwhile (else read and
//!   applied again); the record's version grows by one.
//! - Runs are listed newest first, in the order of their ids.

use super::Durable;
use crate::domain::reconciliation::ReconciliationRecord;
use crate::domain::records::EventRecord;
use crate::store::{Store, StoreError};

/// Changes a reconciliation (a discrepancy resolved); `false` leaves it as it is.
pub type ReconciliationChange<'a> = &'a (dyn Fn(&mut ReconciliationRecord) -> bool + Sync);
/// Which reconciliations a page keeps.
pub type ReconciliationFilter<'a> = &'a (dyn Fn(&ReconciliationRecord) -> bool + Sync);

#[async_trait::async_trait]
pub trait ReconciliationStore: Durable {
    /// Records a run, with its event when it has one (a run whose bill was not ready has
    /// none); a run already recorded under its id is left as it is.
    async fn record_reconciliation(
        &self,
        record: &ReconciliationRecord,
        event: Option<&EventRecord>,
    ) -> Result<(), StoreError>;
    async fn reconciliation(&self, id: &str) -> Result<Option<ReconciliationRecord>, StoreError>;
    /// Runs newest first, older than `after` when given, keeping those `keep` accepts, at
    /// most `limit + 1` (the extra one says that there are more).
    async fn reconciliations_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: ReconciliationFilter<'_>,
    ) -> Result<Vec<ReconciliationRecord>, StoreError>;
    /// Applies `change` to the stored run; the run as it is after (`None`: no such run).
    async fn update_reconciliation(
        &self,
        id: &str,
        change: ReconciliationChange<'_>,
    ) -> Result<Option<ReconciliationRecord>, StoreError>;
}

#[async_trait::async_trait]
impl ReconciliationStore for Store {
    async fn record_reconciliation(
        &self,
        record: &ReconciliationRecord,
        event: Option<&EventRecord>,
    ) -> Result<(), StoreError> {
        Store::record_reconciliation(self, record, event)
    }

    async fn reconciliation(&self, id: &str) -> Result<Option<ReconciliationRecord>, StoreError> {
        self.read(&self.trees.reconciliations, id, "reconciliation")
    }

    async fn reconciliations_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: ReconciliationFilter<'_>,
    ) -> Result<Vec<ReconciliationRecord>, StoreError> {
        Store::reconciliations_page(self, after, limit, keep)
    }

    async fn update_reconciliation(
        &self,
        id: &str,
        change: ReconciliationChange<'_>,
    ) -> Result<Option<ReconciliationRecord>, StoreError> {
        Store::update_reconciliation(self, id, change)
    }
}
