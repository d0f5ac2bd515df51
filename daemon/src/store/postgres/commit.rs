//! A commit whose answer was lost: the connection broke (or the server went down) after
//! `COMMIT` was sent, so the transaction may or may not have committed. Answering as if it
//! had failed could tell a till that a payment did not happen when it did; the outcome is
//! read back instead, from what only that transaction wrote, on a connection of its own
//! (outside the pool, whose connections may all be broken at that moment, each held by a
//! request waiting for its own read-back). While the database cannot be asked, the change's
//! error stands (the request answers 503, and a retry with its key reads the truth from the
//! database: the claim and the object are there, or neither is).

use deadpool_postgres::Transaction;

use super::{PgStore, server_unavailable};
use crate::store::{Claim, StoreError};

/// What only the committing transaction wrote, to look for.
pub(super) enum Written<'a> {
    /// A row it inserted, by id.
    Row { table: &'static str, id: &'a str },
    /// A change of a record: the first event it logged (event ids are unique), or, for a
    /// change that logged none, the record itself, whole (its JSON text as written).
    Change {
        table: &'static str,
        id: &'a str,
        event_id: Option<&'a str>,
        json: String,
    },
    /// The answer it finished a key with.
    Answer {
        claim: &'a Claim,
        status: i16,
        body: &'a str,
    },
}

/// Whether `error` leaves the outcome unknown: the connection broke, or the server went
/// away or cancelled the statement (which it may do to a commit it had made), rather than
/// refusing the change.
pub(super) fn outcome_unknown(error: &tokio_postgres::Error) -> bool {
    server_unavailable(error)
}

impl PgStore {
    /// Commits `tx`; a commit whose answer was lost is read back (`written`).
    pub(super) async fn commit(
        &self,
        tx: Transaction<'_>,
        written: Written<'_>,
    ) -> Result<(), StoreError> {
        match tx.commit().await {
            Ok(()) => Ok(()),
            Err(e) if outcome_unknown(&e) => self.read_back(e, written).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Resolves a lost answer: `Ok` if `written` is in the database, else `lost`.
    pub(super) async fn read_back(
        &self,
        lost: tokio_postgres::Error,
        written: Written<'_>,
    ) -> Result<(), StoreError> {
        tracing::warn!(error = %lost, "the database's answer to a write was lost; reading it back");
        let Ok((client, connection)) = self.connect.connect(self.tls.clone()).await else {
            return Err(lost.into());
        };
        let connection = tokio::spawn(connection);
        let found = match &written {
            Written::Row { table, id } => client
                .query_opt(&format!("SELECT 1 FROM {table} WHERE id = $1"), &[id])
                .await
                .map(|row| row.is_some()),
            Written::Change {
                event_id: Some(event_id),
                ..
            } => client
                .query_opt("SELECT 1 FROM events WHERE id = $1", &[event_id])
                .await
                .map(|row| row.is_some()),
            Written::Change {
                table,
                id,
                event_id: None,
                json,
            } => client
                .query_opt(
                    &format!("SELECT record::text FROM {table} WHERE id = $1"),
                    &[id],
                )
                .await
                .map(|row| row.is_some_and(|row| row.get::<_, &str>(0) == json)),
            Written::Answer {
                claim,
                status,
                body,
            } => client
                .query_opt(
                    "SELECT answer_status, answer_body FROM idempotency_keys
                      WHERE api_key_id = $1 AND key = $2",
                    &[&claim.api_key_id, &claim.key],
                )
                .await
                .map(|row| {
                    row.is_some_and(|row| {
                        row.get::<_, Option<i16>>(0) == Some(*status)
                            && row.get::<_, Option<&str>>(1) == Some(*body)
                    })
                }),
        };
        drop(client);
        connection.abort();
        match found {
            Ok(true) => {
                tracing::info!("the write had committed");
                Ok(())
            }
            Ok(false) | Err(_) => Err(lost.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::PgStore;
    use super::super::lease_tests::{claim, created, payment};
    use super::super::testing::{LossyProxy, server};
    use crate::domain::events::EventKind;
    use crate::domain::records::EventRecord;
    use crate::domain::state::PaymentStatus;
    use crate::store::{Begin, Fence, PaymentStore};

    /// The connection breaks after COMMIT (or a key's answer) reached the server: the
    /// change took effect, and the store says so rather than that it failed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_whose_answer_was_lost_is_read_back() {
        let Some(server) = server().await else { return };
        let settings = server.settings(&server.fresh_database().await);
        let (proxy, through) = LossyProxy::to(&settings).await;
        let store = PgStore::open(&through).await.unwrap();

        // A new payment is one statement, its own transaction: its answer is lost with the
        // execution's (the statement is prepared first, on its own).
        let key = claim("k1");
        proxy.arm(b"pay_1");
        let begun = store
            .begin_payment(&key, &payment("pay_1"), &created("pay_1"))
            .await;
        assert!(proxy.fired(), "the answer to COMMIT was lost");
        assert_eq!(begun.unwrap(), Begin::Created);
        assert!(store.payment("pay_1").await.unwrap().is_some());

        proxy.arm(b"COMMIT");
        let changed = store
            .update_payment("pay_1", Fence::Claim(&key), &|p| {
                p.status = PaymentStatus::Succeeded;
                Some(Vec::new())
            })
            .await;
        assert!(proxy.fired());
        assert_eq!(changed.unwrap().unwrap().status, PaymentStatus::Succeeded);
        assert_eq!(store.payment("pay_1").await.unwrap().unwrap().version, 2);

        // A change with events is found by its first event, whatever changed the record since.
        proxy.arm(b"COMMIT");
        let changed = store
            .update_payment("pay_1", Fence::Claim(&key), &|p| {
                p.refunded_minor = 100;
                Some(vec![EventRecord {
                    id: "evt_refunded".into(),
                    kind: EventKind::PaymentConflict,
                    ..created("pay_1")
                }])
            })
            .await;
        assert!(proxy.fired());
        assert_eq!(changed.unwrap().unwrap().version, 3);

        // A request's last change with its answer, one transaction: found by the answer when
        // the change logged no event.
        proxy.arm(b"COMMIT");
        let answered = store
            .update_payment_answering(
                "pay_1",
                &key,
                &|p| {
                    p.refunded_minor = 200;
                    Some(Vec::new())
                },
                &|p| Some((201, format!("{{\"version\":{}}}", p.version))),
                2_000,
            )
            .await;
        assert!(proxy.fired());
        let (changed, answer) = answered.unwrap().unwrap();
        assert_eq!(changed.version, 4);
        assert_eq!(answer, Some((201, "{\"version\":4}".to_owned())));
        assert_eq!(
            store.known_claim(&claim("k1")).await.unwrap(),
            Some(Begin::Replay {
                status: 201,
                body: "{\"version\":4}".into()
            })
        );

        // The key's answer is its own statement: its lost answer is read back the same way.
        let key = claim("k3");
        let begun = store
            .begin_payment(&key, &payment("pay_3"), &created("pay_3"))
            .await;
        assert_eq!(begun.unwrap(), Begin::Created);
        proxy.arm(b"{\"lost\":\"answer\"}");
        let finished = store
            .finish_claim(&key, 201, "{\"lost\":\"answer\"}", 2_000)
            .await;
        assert!(proxy.fired());
        finished.unwrap();
        assert_eq!(
            store.known_claim(&claim("k3")).await.unwrap(),
            Some(Begin::Replay {
                status: 201,
                body: "{\"lost\":\"answer\"}".into()
            })
        );
    }

    /// The connection breaks at a statement before the commit (its answer lost): nothing took
    /// effect, and the store says the database was unavailable (a 503 for the request; a
    /// retry with its key starts afresh).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_cut_before_its_commit_is_unavailable_and_left_undone() {
        let Some(server) = server().await else { return };
        let settings = server.settings(&server.fresh_database().await);
        let (proxy, through) = LossyProxy::to(&settings).await;
        let store = PgStore::open(&through).await.unwrap();
        proxy.arm(b"INSERT INTO payments");
        let begun = store
            .begin_payment(&claim("k2"), &payment("pay_2"), &created("pay_2"))
            .await;
        assert!(proxy.fired());
        let error = begun.expect_err("the change did not happen");
        assert!(error.is_unavailable(), "{error:?}");
        assert!(store.payment("pay_2").await.unwrap().is_none());
        assert_eq!(store.known_claim(&claim("k2")).await.unwrap(), None);
        // A retry with the key starts afresh.
        assert_eq!(
            store
                .begin_payment(&claim("k2"), &payment("pay_2"), &created("pay_2"))
                .await
                .unwrap(),
            Begin::Created
        );
    }
}
