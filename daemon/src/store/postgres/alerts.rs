//! The monitor's alerts and blocks on PostgreSQL. An alert is inserted with its block and
//! its event in one transaction; an update locks the alert's row, so repeats raised on
//! several daemons at once are all counted. The monitor's lease is the row `monitor` of
//! `leases`, with the position its holder has read the log up to; a write under it reads the
//! row `FOR SHARE`, so a takeover waits for the write or the write sees the takeover.

use tokio_postgres::types::Json;

use super::events::log_events;
use super::feed::LogPosition;
use super::{Db, NOW_MS, PgStore, decoded, each, newest_first, one};
use crate::domain::records::{AlertRecord, BlockRecord, EventRecord, Snapshot};
use crate::store::StoreError;
use crate::store::port::{AlertChange, AlertFilter, AlertStore, MonitorTurn};

/// Refuses a write under the monitor's lease `fence` once another daemon has taken it over.
async fn check_monitor_fence<C: Db>(db: &C, fence: Option<i64>) -> Result<(), StoreError> {
    let Some(token) = fence else { return Ok(()) };
    let holds = db
        .row_opt(
            "SELECT lease FROM leases WHERE name = 'monitor' FOR SHARE",
            &[],
        )
        .await?
        .is_some_and(|row| row.get::<_, i64>(0) == token);
    if holds {
        Ok(())
    } else {
        Err(StoreError::LeaseLost)
    }
}

#[async_trait::async_trait]
impl AlertStore for PgStore {
    async fn record_alert(
        &self,
        alert: &AlertRecord,
        block: Option<&BlockRecord>,
        event: &EventRecord,
        fence: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        check_monitor_fence(&tx, fence).await?;
        tx.exec(
            "INSERT INTO alerts (id, record) VALUES ($1, $2)",
            &[&alert.id, &Json(alert)],
        )
        .await?;
        if let Some(block) = block {
            tx.exec(
                "INSERT INTO blocks (id, expires_at_ms, record) VALUES ($1, $2, $3)",
                &[&block.id, &block.expires_at_ms, &Json(block)],
            )
            .await?;
        }
        let logged = log_events(
            &tx,
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
        fence: Option<i64>,
        change: AlertChange<'_>,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        check_monitor_fence(&tx, fence).await?;
        let Some(row) = tx
            .row_opt("SELECT record FROM alerts WHERE id = $1 FOR UPDATE", &[&id])
            .await?
        else {
            return Ok(None);
        };
        let mut alert: AlertRecord = decoded(&row, 0)?;
        change(&mut alert);
        tx.exec(
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
            .row_opt("SELECT record FROM alerts WHERE id = $1", &[&id])
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
        newest_first(&*client, "alerts", after, limit, keep).await
    }

    async fn blocks(&self) -> Result<Vec<BlockRecord>, StoreError> {
        let client = self.client().await?;
        each(
            client
                .rows("SELECT record FROM blocks ORDER BY id", &[])
                .await?,
        )
    }

    async fn remove_block(&self, id: &str) -> Result<Option<BlockRecord>, StoreError> {
        let client = self.client().await?;
        one(client
            .row_opt("DELETE FROM blocks WHERE id = $1 RETURNING record", &[&id])
            .await?)
    }

    /// A daemon restarted on the same data dir (the same node) takes its lease back at once.
    /// The lease's row is made with the schema, positioned where the log ended then (the
    /// monitor watches what happens from then on, not the history); were it missing, the
    /// holder would start at the log's end now.
    async fn take_monitor(&self, lease_ms: i64) -> Result<Option<MonitorTurn>, StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO leases (name) VALUES ('monitor') ON CONFLICT DO NOTHING",
                &[],
            )
            .await?;
        let Some(row) = client
            .row_opt(
                &format!(
                    "UPDATE leases SET holder = $1, leased_until_ms = {NOW_MS} + $2,
                            lease = lease + 1
                      WHERE name = 'monitor' AND (leased_until_ms <= {NOW_MS} OR holder = $1)
                      RETURNING lease, position"
                ),
                &[&self.node, &lease_ms],
            )
            .await?
        else {
            return Ok(None);
        };
        let token: i64 = row.get(0);
        let position = match row.get::<_, Option<String>>(1) {
            Some(position) => position,
            None => {
                let end = self.log_end().await?.to_string();
                if !self.advance_monitor(token, &end, lease_ms).await? {
                    return Ok(None);
                }
                end
            }
        };
        Ok(Some(MonitorTurn { token, position }))
    }

    async fn monitor_events(
        &self,
        position: &str,
        limit: usize,
    ) -> Result<Vec<(String, EventRecord)>, StoreError> {
        let after: LogPosition = position.parse()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .events_after(after, limit)
            .await?
            .into_iter()
            .map(|(position, event)| (position.to_string(), event))
            .collect())
    }

    async fn advance_monitor(
        &self,
        token: i64,
        position: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let advanced = client
            .exec(
                &format!(
                    "UPDATE leases SET position = $2, leased_until_ms = {NOW_MS} + $3
                      WHERE name = 'monitor' AND lease = $1"
                ),
                &[&token, &position, &lease_ms],
            )
            .await?;
        Ok(advanced == 1)
    }
}
