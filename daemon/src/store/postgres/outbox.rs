//! The webhook outbox on PostgreSQL: entries taken with `FOR UPDATE SKIP LOCKED` under a
//! lease by the database's clock (the daemons' clocks may differ), each write of the holder
//! fenced by the lease's token.

use tokio_postgres::types::Json;

use super::{Db, NOW_MS, PgStore, decoded};
use crate::domain::records::OutboxRecord;
use crate::store::StoreError;
use crate::store::port::{Outbox, OutboxEntry};

#[async_trait::async_trait]
impl Outbox for PgStore {
    fn enable_outbox(&self) {
        self.outbox_enabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    async fn outbox_len(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let count: i64 = client.row("SELECT count(*) FROM outbox", &[]).await?.get(0);
        Ok(count as usize)
    }

    /// Only the due ones: entries waiting for a retry cost nothing until then.
    async fn take_outbox(
        &self,
        limit: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .rows(
                &format!(
                    "WITH free AS (
                         SELECT event_id FROM outbox
                          WHERE leased_until_ms <= {NOW_MS} AND due_ms <= $3
                          ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
                     UPDATE outbox SET leased_until_ms = {NOW_MS} + $2, lease = outbox.lease + 1
                       FROM free WHERE outbox.event_id = free.event_id
                     RETURNING outbox.seq, outbox.event, outbox.delivery, outbox.lease"
                ),
                &[&limit, &lease_ms, &now_ms],
            )
            .await?;
        let mut taken = rows
            .iter()
            .map(|row| {
                Ok((
                    row.get::<_, i64>(0),
                    OutboxEntry {
                        event: decoded(row, 1)?,
                        delivery: decoded(row, 2)?,
                        lease: row.get(3),
                    },
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        taken.sort_by_key(|(seq, _)| *seq);
        Ok(taken.into_iter().map(|(_, entry)| entry).collect())
    }

    async fn next_outbox_due(&self) -> Result<Option<i64>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .row(
                &format!("SELECT min(due_ms) FROM outbox WHERE leased_until_ms <= {NOW_MS}"),
                &[],
            )
            .await?
            .get(0))
    }

    async fn renew_outbox(&self, held: &[(String, i64)], lease_ms: i64) -> Result<(), StoreError> {
        if held.is_empty() {
            return Ok(());
        }
        let (ids, leases): (Vec<&str>, Vec<i64>) =
            held.iter().map(|(id, lease)| (id.as_str(), *lease)).unzip();
        let client = self.client().await?;
        client
            .exec(
                &format!(
                    "UPDATE outbox SET leased_until_ms = {NOW_MS} + $3
                       FROM unnest($1::text[], $2::bigint[]) AS held (event_id, lease)
                      WHERE outbox.event_id = held.event_id AND outbox.lease = held.lease"
                ),
                &[&ids, &leases, &lease_ms],
            )
            .await?;
        Ok(())
    }

    async fn set_outbox(
        &self,
        entry: &OutboxEntry,
        state: Option<&OutboxRecord>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let written = match state {
            None => {
                client
                    .exec(
                        "DELETE FROM outbox WHERE event_id = $1 AND lease = $2",
                        &[&entry.event.id, &entry.lease],
                    )
                    .await?
            }
            Some(state) => {
                client
                    .exec(
                        "UPDATE outbox SET delivery = $3, due_ms = $4, leased_until_ms = 0
                          WHERE event_id = $1 AND lease = $2",
                        &[&entry.event.id, &entry.lease, &Json(state), &state.due_ms()],
                    )
                    .await?
            }
        };
        Ok(written == 1)
    }
}
