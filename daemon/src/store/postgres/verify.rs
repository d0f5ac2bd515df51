//! `paygated store verify` on PostgreSQL: the records' own invariants, checked as on sled
//! (`store::verify::Records`), read in one snapshot (`REPEATABLE READ`, read only) so that it
//! runs beside serving daemons; and what this engine keeps beside its records: the columns
//! that its indexes and constraints read agree with the record they stand for, every key in
//! progress names its object, every outbox entry decodes.

use std::collections::BTreeMap;

use tokio_postgres::IsolationLevel;

use super::{Db, PgStore};
use crate::domain::records::{EventRecord, OutboxRecord, PaymentRecord, RefundRecord};
use crate::store::StoreError;
use crate::store::verify::{Records, Report};

/// `text` as a `T`, or a violation naming `what`.
fn decode<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
    v: &mut Vec<String>,
) -> Option<T> {
    serde_json::from_str(text)
        .map_err(|e| v.push(format!("{what} does not decode: {e}")))
        .ok()
}

/// A violation when a column disagrees with the record it stands for.
fn agrees<T: PartialEq + std::fmt::Debug>(
    what: &str,
    column: &str,
    stored: T,
    record: T,
    v: &mut Vec<String>,
) {
    if stored != record {
        v.push(format!(
            "{what}: column {column} holds {stored:?}, its record {record:?}"
        ));
    }
}

impl PgStore {
    /// Checks every invariant of the stored payments, refunds, keys, events and outbox.
    /// Nothing is written.
    pub async fn verify(&self) -> Result<Report, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let mut report = Report::default();
        let v = &mut report.violations;

        let mut payments = BTreeMap::new();
        for row in tx
            .rows(
                "SELECT id, merchant_id, order_id, provider, wallet_token_id, final, version,
                        record::text
                   FROM payments",
                &[],
            )
            .await?
        {
            let id: String = row.get(0);
            let what = format!("payment {id}");
            let Some(p) = decode::<PaymentRecord>(row.get(7), &what, v) else {
                continue;
            };
            agrees(&what, "id", id.as_str(), p.id.as_str(), v);
            agrees(&what, "merchant_id", row.get(1), p.merchant_id.as_str(), v);
            agrees(&what, "order_id", row.get(2), p.order_id.as_deref(), v);
            agrees(&what, "provider", row.get(3), p.provider.as_str(), v);
            agrees(
                &what,
                "wallet_token_id",
                row.get(4),
                p.wallet_token_id.as_deref(),
                v,
            );
            agrees(&what, "final", row.get(5), p.status.is_terminal(), v);
            agrees(&what, "version", row.get(6), p.version as i64, v);
            payments.insert(id, p);
        }

        let mut refunds = BTreeMap::new();
        for row in tx
            .rows(
                "SELECT id, payment_id, final, version, record::text FROM refunds",
                &[],
            )
            .await?
        {
            let id: String = row.get(0);
            let what = format!("refund {id}");
            let Some(r) = decode::<RefundRecord>(row.get(4), &what, v) else {
                continue;
            };
            agrees(&what, "id", id.as_str(), r.id.as_str(), v);
            agrees(&what, "payment_id", row.get(1), r.payment_id.as_str(), v);
            agrees(&what, "final", row.get(2), r.status.is_terminal(), v);
            agrees(&what, "version", row.get(3), r.version as i64, v);
            refunds.insert(id, r);
        }

        let keys = tx
            .rows(
                "SELECT api_key_id, key, object_id, answer_status FROM idempotency_keys",
                &[],
            )
            .await?;
        report.idempotency_keys = keys.len();
        let mut in_progress = Vec::new();
        for row in &keys {
            let key = format!("{}/{}", row.get::<_, &str>(0), row.get::<_, &str>(1));
            match (
                row.get::<_, Option<String>>(2),
                row.get::<_, Option<i16>>(3),
            ) {
                (_, Some(_)) => {}
                (Some(object_id), None) => in_progress.push((key, object_id)),
                (None, None) => v.push(format!(
                    "idempotency key {key:?} has neither an object nor an answer"
                )),
            }
        }

        let mut events = Vec::new();
        for row in tx
            .rows(
                "SELECT seq, object_id, object_version, event::text FROM events ORDER BY seq",
                &[],
            )
            .await?
        {
            let what = format!("event {}", row.get::<_, i64>(0));
            let Some(event) = decode::<EventRecord>(row.get(3), &what, v) else {
                continue;
            };
            agrees(&what, "object_id", row.get(1), event.object_id.as_str(), v);
            agrees(
                &what,
                "object_version",
                row.get(2),
                event.object_version as i64,
                v,
            );
            events.push(event);
        }
        report.events = events.len();

        for row in tx
            .rows(
                "SELECT event_id, event::text, delivery::text FROM outbox",
                &[],
            )
            .await?
        {
            let what = format!("outbox entry {}", row.get::<_, &str>(0));
            decode::<EventRecord>(row.get(1), &what, v);
            decode::<OutboxRecord>(row.get(2), &what, v);
        }
        tx.commit().await?;

        report.payments = payments.len();
        report.refunds = refunds.len();
        let records = Records {
            payments,
            refunds,
            events,
            in_progress,
        };
        // No archive on this engine: the database keeps every record.
        records.check(&mut |_| Ok(None), v);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::server;
    use super::*;

    /// A command that only reads opens a database as it is: one without paygate's schema is
    /// refused and left without one, and one at an older schema is refused (not migrated).
    #[tokio::test]
    async fn a_database_is_opened_as_it_is_for_verify() {
        let Some(server) = server().await else { return };
        let settings = server.settings(&server.fresh_database().await);
        let refused = PgStore::open_as_is(&settings)
            .await
            .err()
            .expect("no schema");
        assert!(refused.is_setting(), "{refused}");
        assert!(
            refused.to_string().contains("no paygate schema"),
            "{refused}"
        );
        let admin = super::super::testing::client_of(&settings).await;
        let made = admin
            .query_one("SELECT to_regclass('paygate_migrations') IS NOT NULL", &[])
            .await
            .unwrap();
        assert!(!made.get::<_, bool>(0), "nothing was made");

        PgStore::open(&settings).await.unwrap();
        assert!(PgStore::open_as_is(&settings).await.is_ok());
        admin
            .execute(
                "DELETE FROM paygate_migrations WHERE version = $1",
                &[&crate::store::postgres::SCHEMA_VERSION],
            )
            .await
            .unwrap();
        let refused = PgStore::open_as_is(&settings).await.err().expect("older");
        assert!(
            refused
                .to_string()
                .contains("start a daemon of this version"),
            "{refused}"
        );
    }

    /// A store that keeps its invariants verifies clean; a record and a column made to
    /// disagree, refunds that no longer add up, a key whose object is gone: each reported.
    #[tokio::test]
    async fn verify_finds_clean_data_clean_and_reports_each_violation() {
        let Some(server) = server().await else { return };
        let settings = server.settings(&server.fresh_database().await);
        let store = PgStore::open(&settings).await.unwrap();
        crate::store::conformance::paid_for_tests(&store, "pay_1").await;
        crate::store::conformance::paid_for_tests(&store, "pay_2").await;
        let clean = store.verify().await.unwrap();
        assert_eq!(clean.violations, Vec::<String>::new());
        assert_eq!((clean.payments, clean.refunds), (2, 0));
        assert!(
            clean.events >= 2 && clean.idempotency_keys >= 2,
            "{clean:?}"
        );

        let admin = super::super::testing::client_of(&settings).await;
        admin
            .batch_execute(
                "UPDATE payments SET final = NOT final WHERE id = 'pay_1';
                 UPDATE payments
                    SET record = (record::jsonb || '{\"refund_reserved_minor\": 5}')::json
                  WHERE id = 'pay_2';
                 INSERT INTO idempotency_keys (api_key_id, key, fingerprint, object_id,
                                               created_at_ms)
                 VALUES ('key_pos', 'orphan', 'fp', 'pay_gone', 1);",
            )
            .await
            .unwrap();
        let found = store.verify().await.unwrap().violations;
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].contains("payment pay_1: column final"),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|v| v.contains("payment pay_2 reserves 5")),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|v| v.contains("\"key_pos/orphan\" is in progress for pay_gone")),
            "{found:#?}"
        );
    }
}
