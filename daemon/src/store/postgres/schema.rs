//! The schema's versions and their application at open.
//!
//! `paygate_migrations` holds one row per version applied, and row 0, which every daemon
//! opening the database locks (`SELECT ... FOR UPDATE`) while it reads the version and
//! applies what is missing: a row lock, portable where advisory locks are not. Each
//! migration is written so that the previous release's binary still runs on the schema it
//! leaves (expand, then contract in a later release), so that daemons can be upgraded one
//! at a time, and says so: each row names the oldest binary schema that still runs on it
//! (`oldest_binary`). A daemon opening a newer schema runs on it if it is not older than
//! that, and is refused otherwise. The migration runs without the statement timeout (a
//! table rewrite may take long); daemons opening meanwhile wait for it.

use deadpool_postgres::Client;
use tokio_postgres::error::SqlState;

use super::PgError;

/// The newest schema version this build writes and understands.
pub const SCHEMA_VERSION: i32 = 4;

/// One version of the schema.
struct Migration {
    version: i32,
    name: &'static str,
    /// The oldest binary schema version that still runs on the schema this one leaves.
    oldest_binary: i32,
    sql: &'static str,
}

/// Every version, in order.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "payments, refunds, idempotency keys, events",
        oldest_binary: 1,
        sql: include_str!("migrations/0001_payments.sql"),
    },
    // New tables only: a binary of schema 1 runs on it.
    Migration {
        version: 2,
        name: "alerts, blocks, console sessions, code steps, merchants, audit, outbox, plugin artifacts",
        oldest_binary: 1,
        sql: include_str!("migrations/0002_back_office.sql"),
    },
    // New columns with defaults and a new table: a binary of schema 1 or 2 runs on it.
    Migration {
        version: 3,
        name: "leases on idempotency keys, the janitor's work and the monitor",
        oldest_binary: 1,
        sql: include_str!("migrations/0003_leases.sql"),
    },
    // A new table only: a binary of schema 1 to 3 runs on it.
    Migration {
        version: 4,
        name: "reconciliations",
        oldest_binary: 1,
        sql: include_str!("migrations/0004_reconciliations.sql"),
    },
];

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS paygate_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        oldest_binary integer NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO paygate_migrations (version, name, oldest_binary) VALUES (0, 'lock', 0)
        ON CONFLICT DO NOTHING";

/// Brings the schema up to [`SCHEMA_VERSION`]; refuses a newer one and another product's
/// database.
pub(super) async fn migrate(client: &mut Client) -> Result<(), PgError> {
    refuse_foreign(client).await?;
    // Two daemons creating the table at once: the loser of the race on the catalogue fails
    // once (a unique violation, or its row type found made), and then finds the table.
    if let Err(e) = client.batch_execute(MIGRATIONS_TABLE).await {
        let raced = [
            SqlState::UNIQUE_VIOLATION,
            SqlState::DUPLICATE_OBJECT,
            SqlState::DUPLICATE_TABLE,
        ];
        if !e.code().is_some_and(|code| raced.contains(code)) {
            return Err(e.into());
        }
        client.batch_execute(MIGRATIONS_TABLE).await?;
    }
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    tx.query_one(
        "SELECT version FROM paygate_migrations WHERE version = 0 FOR UPDATE",
        &[],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT max(version), max(oldest_binary) FROM paygate_migrations",
            &[],
        )
        .await?;
    let (current, needs): (i32, i32) = (row.get(0), row.get(1));
    if current > SCHEMA_VERSION {
        if needs > SCHEMA_VERSION {
            return Err(PgError::NewerSchema {
                found: current,
                needs,
                supported: SCHEMA_VERSION,
            });
        }
        tracing::warn!(
            found = current,
            supported = SCHEMA_VERSION,
            "the PostgreSQL schema is newer than this paygated, which still runs on it; upgrade it"
        );
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO paygate_migrations (version, name, oldest_binary) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &m.oldest_binary],
        )
        .await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "PostgreSQL schema migrated"
        );
    }
    tx.commit().await?;
    Ok(())
}

/// Checks, changing nothing, that the schema is this build's (or a newer one it runs on): for
/// a command that only reads, which must neither make a schema in the wrong database nor
/// migrate one under running daemons.
pub(super) async fn check(client: &Client) -> Result<(), PgError> {
    refuse_foreign(client).await?;
    let row = client
        .query_one("SELECT to_regclass('paygate_migrations') IS NOT NULL", &[])
        .await?;
    if !row.get::<_, bool>(0) {
        return Err(PgError::SchemaMismatch(
            "the database holds no paygate schema (a daemon makes it at its first start)".into(),
        ));
    }
    let row = client
        .query_one(
            "SELECT max(version), max(oldest_binary) FROM paygate_migrations",
            &[],
        )
        .await?;
    let (current, needs): (i32, i32) = (row.get(0), row.get(1));
    if current < SCHEMA_VERSION {
        return Err(PgError::SchemaMismatch(format!(
            "the database is at schema version {current}, this paygated's is {SCHEMA_VERSION}: start a daemon of this version first (it migrates), or use the paygated that runs on it"
        )));
    }
    if needs > SCHEMA_VERSION {
        return Err(PgError::NewerSchema {
            found: current,
            needs,
            supported: SCHEMA_VERSION,
        });
    }
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
        for (n, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, n as i32 + 1);
            assert!(!m.sql.trim().is_empty());
            assert!((1..=m.version).contains(&m.oldest_binary), "{}", m.name);
        }
        assert_eq!(MIGRATIONS.last().unwrap().version, SCHEMA_VERSION);
    }
}
