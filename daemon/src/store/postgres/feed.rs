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

use super::{PgStore, decoded};
use crate::domain::records::EventRecord;
use crate::store::StoreError;

/// A place in the log, in the order the feed reads it. The start is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    /// The id of the transaction that logged the event.
    pub xid: u64,
    pub seq: i64,
}

impl PgStore {
    /// Up to `limit` events after `after`, in feed order, each with its position; only
    /// events of transactions that have ended.
    pub async fn events_after(
        &self,
        after: LogPosition,
        limit: i64,
    ) -> Result<Vec<(LogPosition, EventRecord)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT xid::text, seq, event FROM events
                  WHERE (xid, seq) > ($1::text::xid8, $2)
                    AND xid < pg_snapshot_xmin(pg_current_snapshot())
                  ORDER BY xid, seq
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
                Ok((position, decoded(&row, 2)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::server;
    use super::super::{PgSettings, PgStore};
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

    async fn connect(settings: &PgSettings) -> tokio_postgres::Client {
        let config: tokio_postgres::Config = settings.url.parse().unwrap();
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
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
        let mut other = connect(&settings).await;
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
