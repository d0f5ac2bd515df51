//! The schema's versions and their application at open.
//!
//! `paygate_migrations` holds one row per version applied, and row 0, which every daemon
//! opening the database locks (`SELECT ... FOR UPDATE`) while it reads the version and
//! applies what is missing: a row lock, portable where advisory locks are not. Each
//! migration is written so that the previous release's binary still runs on the schema it
//! leaves (expand, then contract in a later release), so that daemons can be upgraded one
//! at a time.

use deadpool_postgres::Client;
use tokio_postgres::error::SqlState;

use super::PgError;

/// The newest schema version this build writes and understands.
pub const SCHEMA_VERSION: i32 = 1;

/// Every version: number, name, SQL.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "payments, refunds, idempotency keys, events",
    include_str!("migrations/0001_payments.sql"),
)];

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS paygate_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO paygate_migrations (version, name) VALUES (0, 'lock') ON CONFLICT DO NOTHING";

/// Brings the schema up to [`SCHEMA_VERSION`]; refuses a newer one and another product's
/// database.
pub(super) async fn migrate(client: &mut Client) -> Result<(), PgError> {
    refuse_foreign(client).await?;
    // Two daemons creating the table at once: the loser of the race on the catalogue fails
    // once, and then finds the table.
    if let Err(e) = client.batch_execute(MIGRATIONS_TABLE).await {
        if e.code() != Some(&SqlState::UNIQUE_VIOLATION) {
            return Err(e.into());
        }
        client.batch_execute(MIGRATIONS_TABLE).await?;
    }
    let tx = client.transaction().await?;
    tx.query_one(
        "SELECT version FROM paygate_migrations WHERE version = 0 FOR UPDATE",
        &[],
    )
    .await?;
    let current: i32 = tx
        .query_one("SELECT max(version) FROM paygate_migrations", &[])
        .await?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(PgError::NewerSchema {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO paygate_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tracing::info!(version, name, "PostgreSQL schema migrated");
    }
    tx.commit().await?;
    Ok(())
}

/// A database with tables of its own and no `paygate_migrations` is another product's.
async fn refuse_foreign(client: &Client) -> Result<(), PgError> {
    let row = client
        .query_one(
            "SELECT to_regclass('paygate_migrations') IS NOT NULL,
                    (SELECT string_agg(table_name, ', ' ORDER BY table_name)
                       FROM information_schema.tables
                      WHERE table_schema = current_schema())",
            &[],
        )
        .await?;
    let ours: bool = row.get(0);
    let tables: Option<String> = row.get(1);
    match tables {
        Some(tables) if !ours => Err(PgError::Foreign(tables)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_each_other_up_to_the_schema_version() {
        for (n, (version, _, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, n as i32 + 1);
            assert!(!sql.trim().is_empty());
        }
        assert_eq!(MIGRATIONS.last().unwrap().0, SCHEMA_VERSION);
    }
}
