//! The monitor's alerts and blocks on PostgreSQL. An alert is inserted with its block and
//! its event in one transaction; an update locks the alert's row, so repeats raised on
//! several daemons at once are all counted.

use tokio_postgres::types::Json;

use super::events::log_events;
use super::{PgStore, decoded, each, one};
use crate::domain::records::{AlertRecord, BlockRecord, EventRecord, Snapshot};
use crate::store::StoreError;
use crate::store::port::{AlertChange, AlertFilter, AlertStore};

/// Alerts read per round trip while a page is filled.
const PAGE_BATCH: i64 = 200;

#[async_trait::async_trait]
impl AlertStore for PgStore {
    async fn record_alert(
        &self,
        alert: &AlertRecord,
        block: Option<&BlockRecord>,
        event: &EventRecord,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO alerts (id, record) VALUES ($1, $2)",
            &[&alert.id, &Json(alert)],
        )
        .await?;
        if let Some(block) = block {
            tx.execute(
                "INSERT INTO blocks (id, expires_at_ms, record) VALUES ($1, $2, $3)",
                &[&block.id, &block.expires_at_ms, &Json(block)],
            )
            .await?;
        }
        let logged = log_events(
            &*tx,
            std::slice::from_ref(event),
            0,
            &Snapshot::of(alert),
            self.outbox_on(),
        )
        .await?;
        tx.commit().await?;
        self.published(logged);
        Ok(())
    }

    async fn update_alert(
        &self,
        id: &str,
        change: AlertChange<'_>,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt("SELECT record FROM alerts WHERE id = $1 FOR UPDATE", &[&id])
            .await?
        else {
            return Ok(None);
        };
        let mut alert: AlertRecord = decoded(&row, 0)?;
        change(&mut alert);
        tx.execute(
            "UPDATE alerts SET record = $2 WHERE id = $1",
            &[&id, &Json(&alert)],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(alert))
    }

    async fn alert(&self, id: &str) -> Result<Option<AlertRecord>, StoreError> {
        let client = self.client().await?;
        one(client
            .query_opt("SELECT record FROM alerts WHERE id = $1", &[&id])
            .await?)
    }

    /// Read newest first in batches until the page is full: `keep` is the caller's.
    async fn alerts_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: AlertFilter<'_>,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let client = self.client().await?;
        let mut page = Vec::new();
        let mut before = after.map(str::to_owned);
        loop {
            let rows = client
                .query(
                    "SELECT id, record FROM alerts WHERE $1::text IS NULL OR id < $1
                      ORDER BY id DESC LIMIT $2",
                    &[&before, &PAGE_BATCH],
                )
                .await?;
            let exhausted = (rows.len() as i64) < PAGE_BATCH;
            for row in rows {
                before = Some(row.get(0));
                let alert: AlertRecord = decoded(&row, 1)?;
                if keep(&alert) {
                    page.push(alert);
                    if page.len() > limit {
                        return Ok(page);
                    }
                }
            }
            if exhausted {
                return Ok(page);
            }
        }
    }

    async fn blocks(&self) -> Result<Vec<BlockRecord>, StoreError> {
        let client = self.client().await?;
        each(
            client
                .query("SELECT record FROM blocks ORDER BY id", &[])
                .await?,
        )
    }

    async fn remove_block(&self, id: &str) -> Result<Option<BlockRecord>, StoreError> {
        let client = self.client().await?;
        one(client
            .query_opt("DELETE FROM blocks WHERE id = $1 RETURNING record", &[&id])
            .await?)
    }
}
