//! Following the event log from any daemon, without missing an event.
//!
//! `seq` is taken when an event is inserted, not when its transaction commits: a reader
//! that has read up to `seq` 7 may later see 5 appear, committed by a transaction that was
//! slower. So the log is read in the order of the transactions' ids (`xid`, then `seq`
//! within one), and only below the horizon of the oldest transaction still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`): every transaction below it has ended,
//! committed (its events are there for good) or rolled back (they never will be). No event
//! can appear behind a reader's position, and a reader that stores its position resumes
//! from it exactly.
//!
//! What it costs: an event becomes readable once every transaction that began before its
//! own has ended, so a long transaction anywhere on the server holds the feed back (ours
//! end within the statement timeout, and an idle one within the same time, by
//! `idle_in_transaction_session_timeout`; other clients' are theirs to bound). A position
//! is valid on the cluster that gave it: after the database is restored or moved to another
//! cluster (a dump, a logical-replication upgrade), transaction ids start elsewhere and
//! stored positions must be reset. CockroachDB and YugabyteDB have no `xid8` or
//! snapshot functions: there a feed would read below a closed timestamp instead
//! (CockroachDB's follower reads / `AS OF SYSTEM TIME`; YugabyteDB's safe time).

use std::sync::Arc;
use std::time::Duration;

use super::{Db, PgStore, decoded};
use crate::domain::records::{EventRecord, Snapshot};
use crate::store::StoreError;

/// How often the follower looks for events: an alert raised on one daemon reaches the SSE
/// clients of every other within DESIGN.md's 100 ms.
const FOLLOW_EVERY: Duration = Duration::from_millis(25);
/// Events read per round trip.
const FOLLOW_BATCH: i64 = 1_000;

/// A place in the log, in the order the feed reads it. The start is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    /// The id of the transaction that logged the event.
    pub xid: u64,
    pub seq: i64,
}

/// As stored (the monitor's lease keeps its position): `xid:seq`.
impl std::fmt::Display for LogPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.xid, self.seq)
    }
}

impl std::str::FromStr for LogPosition {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<LogPosition, StoreError> {
        let bad = || StoreError::Corrupt(format!("log position {text:?}"));
        let (xid, seq) = text.split_once(':').ok_or_else(bad)?;
        Ok(LogPosition {
            xid: xid.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

impl PgStore {
    /// Up to `limit` events after `after`, in feed order, each with its position; only
    /// events of transactions that have ended. Each carries its record as it is now (the
    /// log keeps only the version it announces), for the fields consumers read of it.
    pub async fn events_after(
        &self,
        after: LogPosition,
        limit: i64,
    ) -> Result<Vec<(LogPosition, EventRecord)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT e.xid::text, e.seq, e.event,
                        coalesce(p.record, r.record, a.record, c.record) AS object
                   FROM events e
                   LEFT JOIN payments p ON p.id = e.object_id
                   LEFT JOIN refunds r ON r.id = e.object_id
                   LEFT JOIN alerts a ON a.id = e.object_id
                   LEFT JOIN reconciliations c ON c.id = e.object_id
                  WHERE (e.xid, e.seq) > ($1::text::xid8, $2)
                    AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
                  ORDER BY e.xid, e.seq
                  LIMIT $3",
                &[&after.xid.to_string(), &after.seq, &limit],
            )
            .await?;
        rows.into_iter()
            .map(|row| {
                let xid: &str = row.get(0);
                let xid = xid
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("event xid {xid}")))?;
                let position = LogPosition {
                    xid,
                    seq: row.get(1),
                };
                let mut event: EventRecord = decoded(&row, 2)?;
                let object: Option<tokio_postgres::types::Json<Snapshot>> = row
                    .try_get(3)
                    .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", event.id)))?;
                event.object = object.map(|json| json.0);
                Ok((position, event))
            })
            .collect()
    }

    /// The position of the last event readable now: a reader starting there reads what is
    /// committed from now on.
    pub async fn log_end(&self) -> Result<LogPosition, StoreError> {
        let client = self.client().await?;
        let row = client
            .row_opt(
                "SELECT xid::text, seq FROM events
                  WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
                  ORDER BY xid DESC, seq DESC LIMIT 1",
                &[],
            )
            .await?;
        let Some(row) = row else {
            return Ok(LogPosition::default());
        };
        let xid: &str = row.get(0);
        Ok(LogPosition {
            xid: xid
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("event xid {xid}")))?,
            seq: row.get(1),
        })
    }

    /// Follows the log from its end now, publishing every event any daemon commits on the
    /// store's feed, in the order the feed reads them, until the store is dropped. A
    /// database that cannot be reached is said once, and followed again when it is back.
    pub fn follow(self: &Arc<Self>) {
        let store = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut at: Option<LogPosition> = None;
            let mut failing = false;
            loop {
                let Some(store) = store.upgrade() else { return };
                let read = match at {
                    None => store.log_end().await.map(|end| {
                        at = Some(end);
                        0
                    }),
                    Some(after) => store.events_after(after, FOLLOW_BATCH).await.map(|events| {
                        let read = events.len();
                        for (position, event) in events {
                            at = Some(position);
                            store.feed.publish([event]);
                        }
                        read
                    }),
                };
                match read {
                    Ok(read) => {
                        if failing {
                            tracing::info!("following the event log again");
                            failing = false;
                        }
                        if read as i64 == FOLLOW_BATCH {
                            continue;
                        }
                    }
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "cannot follow the event log; retrying");
                        failing = true;
                    }
                    Err(_) => {}
                }
                drop(store);
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::PgStore;
    use super::super::testing::server;
    use super::*;
    use crate::domain::events::EventKind;
    use crate::store::{Begin, Claim, PaymentStore};

    fn event(id: &str) -> EventRecord {
        EventRecord {
            id: id.into(),
            kind: EventKind::parse("payment.created").unwrap(),
            created_at_ms: 1_000,
            object_id: format!("pay_{id}"),
            data: serde_json::json!({}),
            object_version: 1,
            object: None,
        }
    }

    /// Another daemon's change, in a transaction of its own that the test ends.
    async fn insert_event(db: &tokio_postgres::Transaction<'_>, id: &str) {
        db.execute(
            "INSERT INTO events (id, kind, object_id, object_version, created_at_ms, event)
             VALUES ($1, 'payment.created', $2, 1, 1000, $3)",
            &[
                &id,
                &format!("pay_{id}"),
                &tokio_postgres::types::Json(event(id)),
            ],
        )
        .await
        .unwrap();
    }

    /// Logs event `id` through the store (its own transaction, committed).
    async fn pay(store: &PgStore, id: &str) {
        let payment: crate::domain::records::PaymentRecord =
            serde_json::from_value(serde_json::json!({
                "id": format!("pay_{id}"), "merchant_id": "m_a", "provider": "mock",
                "method": "barcode", "amount_minor": 100, "currency": "CNY",
                "status": "pending", "metadata": {}, "created_at_ms": 1_000,
                "updated_at_ms": 1_000, "refund_reserved_minor": 0, "refunded_minor": 0,
                "provider_step": "not_sent", "api_key_id": "key_pos", "version": 0
            }))
            .unwrap();
        let claim = Claim {
            api_key_id: "key_pos".into(),
            key: id.into(),
            fingerprint: "fp".into(),
            lease: Default::default(),
        };
        let begun = store.begin_payment(&claim, &payment, &event(id)).await;
        assert_eq!(begun.unwrap(), Begin::Created);
    }

    /// A reader following the feed: what it has read, and where it is.
    struct Reader(LogPosition, Vec<String>);

    impl Reader {
        async fn read(&mut self, store: &PgStore) -> Vec<String> {
            let events = store.events_after(self.0, 100).await.unwrap();
            let mut read = Vec::new();
            for (position, event) in events {
                assert!(position > self.0, "the feed goes forward");
                self.0 = position;
                read.push(event.id);
            }
            self.1.extend(read.iter().cloned());
            read
        }

        /// Reads until `count` events have come (the horizon is the whole server's: other
        /// databases' transactions hold it back a moment too), at most for a minute.
        async fn read_until(&mut self, store: &PgStore, count: usize) -> Vec<String> {
            let started = std::time::Instant::now();
            let mut read = Vec::new();
            while read.len() < count && started.elapsed() < std::time::Duration::from_secs(60) {
                read.extend(self.read(store).await);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            read
        }
    }

    #[tokio::test]
    async fn a_reader_misses_no_event_whatever_order_transactions_commit_in() {
        let Some(server) = server().await else { return };
        let settings = server.settings(&server.fresh_database().await);
        let store = PgStore::open(&settings).await.unwrap();
        let mut other = super::super::testing::client_of(&settings).await;
        let mut reader = Reader(LogPosition::default(), Vec::new());

        // A slow change begins first (its xid and its seq are the lower ones), a fast one
        // commits meanwhile: the fast one is not read past the slow one still running.
        let slow = other.transaction().await.unwrap();
        insert_event(&slow, "a").await;
        pay(&store, "b").await;
        assert_eq!(reader.read(&store).await, Vec::<String>::new());
        slow.commit().await.unwrap();
        assert_eq!(reader.read_until(&store, 2).await, ["a", "b"]);

        // The gap: a transaction takes its id first, and its seq only after a faster one
        // has taken a higher id and a lower seq and committed. A reader by seq alone would
        // read c, move past d's seq and never see d.
        let slow = other.transaction().await.unwrap();
        slow.query_one("SELECT pg_current_xact_id()::text", &[])
            .await
            .unwrap();
        pay(&store, "c").await;
        assert_eq!(reader.read(&store).await, Vec::<String>::new());
        insert_event(&slow, "d").await;
        slow.commit().await.unwrap();
        assert_eq!(reader.read_until(&store, 2).await, ["d", "c"]);

        // A change rolled back leaves nothing to read and holds nothing back.
        let cancelled = other.transaction().await.unwrap();
        insert_event(&cancelled, "x").await;
        pay(&store, "e").await;
        cancelled.rollback().await.unwrap();
        assert_eq!(reader.read_until(&store, 1).await, ["e"]);

        // Every event logged, read exactly once; a reader starting over reads them again.
        assert_eq!(reader.1, ["a", "b", "d", "c", "e"]);
        let mut again = Reader(LogPosition::default(), Vec::new());
        again.read_until(&store, 5).await;
        assert_eq!(again.1, reader.1);
        assert_eq!(store.events().await.unwrap().len(), 5);
    }
}
