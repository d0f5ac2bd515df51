//! Reconciliation runs on PostgreSQL: a run is inserted with its event in one transaction;
//! an update locks the run's row.

use tokio_postgres::types::Json;

use super::events::log_events;
use super::{Db, PgStore, decoded, newest_first, one};
use crate::domain::reconciliation::ReconciliationRecord;
use crate::domain::records::{EventRecord, Snapshot};
use crate::store::StoreError;
use crate::store::port::{ReconciliationChange, ReconciliationFilter, ReconciliationStore};

#[async_trait::async_trait]
impl ReconciliationStore for PgStore {
    async fn record_reconciliation(
        &self,
        record: &ReconciliationRecord,
        event: Option<&EventRecord>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A run is recorded once: a retry that finds it there (another daemon's, say) adds
        // nothing, as on sled, where the request finds it before running.
        let inserted = tx
            .exec(
                "INSERT INTO reconciliations (id, merchant_id, record) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
                &[&record.id, &record.merchant_id, &Json(record)],
            )
            .await?;
        let logged = match event {
            Some(event) if inserted == 1 => {
                log_events(
                    &tx,
                    std::slice::from_ref(event),
                    0,
                    &Snapshot::of(record),
                    self.outbox_on(),
                )
                .await?
            }
            _ => Vec::new(),
        };
        tx.commit().await?;
        self.published(logged);
        Ok(())
    }

    async fn reconciliation(&self, id: &str) -> Result<Option<ReconciliationRecord>, StoreError> {
        let client = self.client().await?;
        one(client
            .row_opt("SELECT record FROM reconciliations WHERE id = $1", &[&id])
            .await?)
    }

    async fn reconciliations_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: ReconciliationFilter<'_>,
    ) -> Result<Vec<ReconciliationRecord>, StoreError> {
        let client = self.client().await?;
        newest_first(&*client, "reconciliations", after, limit, keep).await
    }

    async fn update_reconciliation(
        &self,
        id: &str,
        change: ReconciliationChange<'_>,
    ) -> Result<Option<ReconciliationRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .row_opt(
                "SELECT record FROM reconciliations WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
        else {
            return Ok(None);
        };
        let mut record: ReconciliationRecord = decoded(&row, 0)?;
        if !change(&mut record) {
            return Ok(Some(record));
        }
        record.version += 1;
        tx.exec(
            "UPDATE reconciliations SET record = $2 WHERE id = $1",
            &[&id, &Json(&record)],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(record))
    }
}
