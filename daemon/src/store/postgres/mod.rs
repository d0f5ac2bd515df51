//! The PostgreSQL engine behind the storage port: several daemons on one database.
//!
//! - A pool of connections (`deadpool-postgres` over `tokio-postgres`), each set to
//!   `synchronous_commit = on` (an answer only after a durable commit) and the configured
//!   `statement_timeout` (a statement never hangs a request past it).
//! - The schema is versioned and applied at open (`schema.rs`), under a row lock that other
//!   daemons opening the same database wait on.
//! - Each port operation is one transaction (`payments.rs`); the invariants of `port.rs` are
//!   kept by constraints and row locks, so they hold across daemons, not only within one.
//!
//! - Work several daemons share goes by leases with fencing tokens, by the database's clock:
//!   claims and the janitor's records (`payments.rs`), the outbox (`outbox.rs`), the monitor
//!   (`alerts.rs`); a commit whose answer was lost is read back (`commit.rs`).
//!
//! No advisory locks, no `LISTEN/NOTIFY`. The payments' SQL is what CockroachDB and
//! YugabyteDB also speak (`FOR UPDATE SKIP LOCKED` and `FOR SHARE` included; under their
//! default serializable isolation a fence's read and a takeover's write conflict anyway); the
//! event feed's `xid8` column and snapshot functions are PostgreSQL's own (`feed.rs` says
//! what those databases would use instead), and CockroachDB's serializable retries (`40001`)
//! are not retried yet.

mod alerts;
mod artifacts;
mod commit;
mod console;
mod events;
mod feed;
#[cfg(test)]
mod lease_tests;
mod merchants;
mod operations;
mod outbox;
mod payments;
mod reads;
mod reconciliations;
mod schema;
#[cfg(any(test, feature = "test-hooks"))]
pub mod testing;
mod tls;
mod verify;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use thiserror::Error;
use tokio_postgres::types::ToSql;

pub use artifacts::PgArtifactDigests;
pub use feed::LogPosition;
pub use schema::SCHEMA_VERSION;

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// A libpq connection string or `postgresql://` URL.
    pub url: String,
    /// Connections held at most.
    pub pool_size: usize,
    /// Longest a statement may run (and a connection may take to be made or handed out).
    pub statement_timeout: Duration,
    /// How long its leases run unless renewed (ms).
    pub lease_ms: i64,
    /// This daemon's name among those sharing the database, named on the idempotency keys
    /// it leases; `None`: a name of its own for this store.
    pub node: Option<String>,
    /// The certificate authorities the server's certificate is checked against when the URL
    /// says `sslmode=require` (`None`: the public web roots).
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Error)]
pub enum PgError {
    #[error("store.postgres.url: {0}")]
    Url(tokio_postgres::Error),
    #[error("cannot reach PostgreSQL: {0}")]
    Unavailable(String),
    #[error("PostgreSQL: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error(
        "the database holds paygate schema version {found}, which needs a paygated of schema {needs} or newer (this one: {supported}); run a newer paygated"
    )]
    NewerSchema {
        found: i32,
        needs: i32,
        supported: i32,
    },
    #[error(
        "the database has tables of its own ({0}) but no paygate schema: it is another product's; point store.postgres.url at a database of its own"
    )]
    Foreign(String),
    #[error("store.postgres.ca_file: {0}")]
    Tls(String),
    #[error("{0}")]
    SchemaMismatch(String),
}

impl PgError {
    /// Whether the database cannot be reached or used now (rather than refusing the data).
    pub fn is_unavailable(&self) -> bool {
        match self {
            PgError::Unavailable(_) => true,
            PgError::Query(e) => server_unavailable(e),
            _ => false,
        }
    }
}

/// Whether `e` is the server's or the connection's failure, not the statement's data:
/// connection exceptions (class 08), too many connections, the server shutting down or
/// starting, a statement cancelled at the statement timeout.
fn server_unavailable(e: &tokio_postgres::Error) -> bool {
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    let state = e.code().map(|c| c.code());
    e.is_closed()
        || io
        || state.is_some_and(|c| {
            c.starts_with("08") || ["53300", "57014", "57P01", "57P02", "57P03"].contains(&c)
        })
}

#[async_trait::async_trait]
impl crate::store::port::Durable for PgStore {
    /// Daemons write at once: no turns.
    async fn write_turn(&self) -> crate::store::WriteTurn<'_> {
        crate::store::WriteTurn::none()
    }

    /// Every answer waits for its commit, durable at `synchronous_commit = on`.
    async fn durable(&self) -> Result<(), crate::store::StoreError> {
        Ok(())
    }

    fn shared(&self) -> bool {
        true
    }

    fn lease_ms(&self) -> i64 {
        self.lease_ms
    }
}

/// Column `index` of `row`, a record kept as JSON; one that does not read as `T` is corrupt
/// (an error to answer, not a panic).
fn decoded<T: serde::de::DeserializeOwned>(
    row: &tokio_postgres::Row,
    index: usize,
) -> Result<T, crate::store::StoreError> {
    row.try_get::<_, tokio_postgres::types::Json<T>>(index)
        .map(|json| json.0)
        .map_err(|e| {
            crate::store::StoreError::Corrupt(format!("{}: {e}", std::any::type_name::<T>()))
        })
}

/// The record in the first column of a row that may not exist.
fn one<T: serde::de::DeserializeOwned>(
    row: Option<tokio_postgres::Row>,
) -> Result<Option<T>, crate::store::StoreError> {
    row.map(|row| decoded(&row, 0)).transpose()
}

/// The records in the first column of `rows`, in their order.
fn each<T: serde::de::DeserializeOwned>(
    rows: Vec<tokio_postgres::Row>,
) -> Result<Vec<T>, crate::store::StoreError> {
    rows.iter().map(|row| decoded(row, 0)).collect()
}

/// Records read per round trip while a page is filled.
const PAGE_BATCH: i64 = 200;

/// The records of `table` (`id`, `record`) newest first by id, older than `after` when
/// given, keeping those `keep` accepts, at most `limit + 1`: read in batches until the page
/// is full (`keep` is the caller's, so the database cannot filter).
async fn newest_first<T: serde::de::DeserializeOwned>(
    db: &impl Db,
    table: &'static str,
    after: Option<&str>,
    limit: usize,
    keep: &(dyn Fn(&T) -> bool + Sync),
) -> Result<Vec<T>, crate::store::StoreError> {
    let sql = format!(
        "SELECT id, record FROM {table} WHERE $1::text IS NULL OR id < $1
          ORDER BY id DESC LIMIT $2"
    );
    let mut page = Vec::new();
    let mut before = after.map(str::to_owned);
    loop {
        let rows = db.rows(&sql, &[&before, &PAGE_BATCH]).await?;
        let exhausted = (rows.len() as i64) < PAGE_BATCH;
        for row in rows {
            before = Some(row.get(0));
            let record: T = decoded(&row, 1)?;
            if keep(&record) {
                page.push(record);
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

/// A connection of the pool or a transaction on one, whose statements are prepared once per
/// connection and kept (deadpool's statement cache): a statement is then one round trip
/// instead of two (no parse and describe before each), and the server plans it once. The SQL
/// is always one of a fixed set of texts, so the cache stays small.
#[async_trait::async_trait]
pub(super) trait Db: Sync {
    /// Like `execute`: the rows changed.
    async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error>;
    /// Like `query`: every row.
    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>;
    /// Like `query_one`: exactly one row.
    async fn row(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<tokio_postgres::Row, tokio_postgres::Error>;
    /// Like `query_opt`: a row or none.
    async fn row_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, tokio_postgres::Error>;
}

/// `Db` for a type with `prepare_cached` that derefs to a `tokio_postgres` client.
macro_rules! cached_db {
    ($($generics:lifetime)?; $ty:ty) => {
        #[async_trait::async_trait]
        impl<$($generics)?> Db for $ty {
            async fn exec(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, tokio_postgres::Error> {
                let statement = self.prepare_cached(sql).await?;
                self.execute(&statement, params).await
            }

            async fn rows(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
                let statement = self.prepare_cached(sql).await?;
                self.query(&statement, params).await
            }

            async fn row(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<tokio_postgres::Row, tokio_postgres::Error> {
                let statement = self.prepare_cached(sql).await?;
                self.query_one(&statement, params).await
            }

            async fn row_opt(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<tokio_postgres::Row>, tokio_postgres::Error> {
                let statement = self.prepare_cached(sql).await?;
                self.query_opt(&statement, params).await
            }
        }
    };
}

cached_db!(; deadpool_postgres::ClientWrapper);
cached_db!('a; deadpool_postgres::Transaction<'a>);

/// The `application_name` of every connection a daemon makes.
const APPLICATION_NAME: &str = "paygated";

impl PgError {
    /// Whether a start-up refusal is the settings' fault (exit 2: fix the config, a restart
    /// will not help) rather than the server's state now (exit 1: a supervisor retries): a
    /// URL that does not parse, a newer schema, another product's database, refused
    /// credentials, a database that does not exist, missing privileges.
    pub fn is_setting(&self) -> bool {
        match self {
            PgError::Url(_)
            | PgError::NewerSchema { .. }
            | PgError::Foreign(_)
            | PgError::Tls(_)
            | PgError::SchemaMismatch(_) => true,
            PgError::Query(e) => e
                .code()
                .is_some_and(|c| ["28P01", "28000", "3D000", "42501"].contains(&c.code())),
            PgError::Unavailable(_) => false,
        }
    }
}

/// The database's clock, in unix milliseconds: leases run by it, since the daemons' clocks
/// may differ.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// A store in a PostgreSQL database.
pub struct PgStore {
    pool: Pool,
    /// This daemon among those sharing the database: the holder named on the idempotency
    /// keys it leases.
    node: String,
    /// How long its leases run unless renewed (ms).
    lease_ms: i64,
    /// How to open a connection of its own, outside the pool (a lost commit's read-back).
    connect: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// The daemon's data dir lock, which makes `node` its own while it runs.
    _dir_lock: Option<std::fs::File>,
    /// Events this daemon committed, for its in-process consumers.
    bus: crate::events::EventBus,
    /// Events every daemon committed, as the log's follower reads them (`feed.rs`).
    feed: crate::events::EventBus,
    /// Whether webhook events get outbox entries (some endpoint is configured here).
    outbox_enabled: std::sync::atomic::AtomicBool,
}

impl PgStore {
    /// Connects, and brings the database's schema up to this build's (or refuses a newer
    /// one, or a database that is not paygate's).
    pub async fn open(settings: &PgSettings) -> Result<PgStore, PgError> {
        let store = PgStore::connect(settings)?;
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        Ok(store)
    }

    /// Connects to a database whose schema is this build's (or a newer one it runs on),
    /// changing nothing: for a command that only reads (`store verify`).
    pub async fn open_as_is(settings: &PgSettings) -> Result<PgStore, PgError> {
        let store = PgStore::connect(settings)?;
        schema::check(&store.client().await?).await?;
        Ok(store)
    }

    /// The store's pool for `settings`; no connection is made yet.
    fn connect(settings: &PgSettings) -> Result<PgStore, PgError> {
        let mut config: tokio_postgres::Config = settings.url.parse().map_err(PgError::Url)?;
        let timeout_ms = settings.statement_timeout.as_millis();
        // After the URL's own options (a `search_path`, say), which stay.
        let ours = format!(
            "-c synchronous_commit=on -c statement_timeout={timeout_ms} \
             -c idle_in_transaction_session_timeout={timeout_ms}"
        );
        let options = match config.get_options() {
            Some(theirs) if !theirs.trim().is_empty() => format!("{theirs} {ours}"),
            _ => ours,
        };
        config.options(options);
        // Named, so that a command run beside the daemons can tell they are there.
        config.application_name(APPLICATION_NAME);
        config.connect_timeout(settings.statement_timeout);
        let tls = tls::connector(&mut config, settings.ca_file.as_deref())?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(settings.statement_timeout))
            .create_timeout(Some(settings.statement_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Unavailable(e.to_string()))?;
        let store = PgStore {
            pool,
            node: settings
                .node
                .clone()
                .unwrap_or_else(|| crate::domain::ids::new_id("node")),
            lease_ms: settings.lease_ms,
            connect: config,
            tls,
            _dir_lock: None,
            bus: crate::events::EventBus::new(),
            feed: crate::events::EventBus::new(),
            outbox_enabled: std::sync::atomic::AtomicBool::new(false),
        };
        Ok(store)
    }

    /// Holds `lock` (its data dir's) for as long as the store lives.
    pub fn holding(self, lock: std::fs::File) -> PgStore {
        PgStore {
            _dir_lock: Some(lock),
            ..self
        }
    }

    /// How many other connections of paygate this database has: running daemons, for a
    /// command that must run without them. Asked by a command's store, which uses one
    /// connection at a time (its pool holds only that one).
    pub async fn others_connected(&self) -> Result<i64, PgError> {
        let client = self.client().await?;
        Ok(client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = $1
                    AND pid <> pg_backend_pid()",
                &[&APPLICATION_NAME],
            )
            .await?
            .get(0))
    }

    fn outbox_on(&self) -> bool {
        self.outbox_enabled
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Publishes what a committed transaction logged.
    fn published(&self, logged: Vec<crate::domain::records::EventRecord>) {
        if !logged.is_empty() {
            self.bus.publish(logged);
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, PgError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => PgError::Query(e),
            other => PgError::Unavailable(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::testing::{TestServer, client_of, server};
    use super::*;
    use crate::store::PaymentStore;
    use crate::store::StoreError;
    use crate::store::conformance::{self, Engine, Place};

    struct Postgres(TestServer);

    struct Database(PgSettings);

    #[async_trait::async_trait]
    impl Engine for Postgres {
        async fn fresh(&self) -> Box<dyn Place> {
            let name = self.0.fresh_database().await;
            Box::new(Database(self.0.settings(&name)))
        }
    }

    #[async_trait::async_trait]
    impl Place for Database {
        async fn open(&self) -> Result<Arc<dyn crate::store::Storage>, StoreError> {
            Ok(Arc::new(PgStore::open(&self.0).await?))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_conforms() {
        let Some(server) = server().await else { return };
        conformance::run(&Postgres(server)).await;
    }

    /// Three daemons' stores on one database: the port's invariants hold across them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn invariants_hold_across_daemons_on_one_database() {
        use crate::domain::events::EventKind;
        use crate::domain::records::{EventRecord, PaymentRecord, RefundRecord};
        use crate::domain::state::{PaymentStatus, RefundStatus};
        use crate::store::{Begin, Claim};

        let Some(server) = server().await else { return };
        let settings = server.settings(&server.fresh_database().await);
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(Arc::new(PgStore::open(&settings).await.unwrap()));
        }
        let event = |kind: &str, object_id: &str, n: usize| EventRecord {
            id: format!("evt_{object_id}_{n}"),
            kind: EventKind::parse(kind).unwrap(),
            created_at_ms: 1_000,
            object_id: object_id.into(),
            data: serde_json::json!({}),
            object_version: 0,
            object: None,
        };
        let claim = |key: &str, fingerprint: &str| Claim {
            api_key_id: "key_pos".into(),
            key: key.into(),
            fingerprint: fingerprint.into(),
            lease: Default::default(),
        };
        let payment: PaymentRecord = serde_json::from_value(serde_json::json!({
            "id": "pay_1", "merchant_id": "m_a", "provider": "mock", "method": "barcode",
            "amount_minor": 1_000, "currency": "CNY", "status": "pending", "metadata": {},
            "created_at_ms": 1_000, "updated_at_ms": 1_000, "refund_reserved_minor": 0,
            "refunded_minor": 0, "provider_step": "not_sent", "api_key_id": "key_pos",
            "version": 0
        }))
        .unwrap();

        // One key sent to every node at the same moment: one payment; the others find it in
        // progress (its request's lease is live on the node that made it).
        let begins: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                let node = node.clone();
                let record = PaymentRecord {
                    id: format!("pay_{}", n + 1),
                    ..payment.clone()
                };
                let (claim, event) = (claim("k-pay", "fp"), event("payment.created", "pay", n));
                tokio::spawn(async move { node.begin_payment(&claim, &record, &event).await })
            })
            .collect();
        let mut created = Vec::new();
        let mut in_progress = 0;
        for (n, begin) in begins.into_iter().enumerate() {
            match begin.await.unwrap().unwrap() {
                Begin::Created => created.push(format!("pay_{}", n + 1)),
                Begin::InProgress => in_progress += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((created.len(), in_progress), (1, 2), "{created:?}");
        let id = created[0].clone();
        nodes[0]
            .update_payment(&id, crate::store::Fence::Unleased, &|p| {
                p.status = PaymentStatus::Succeeded;
                p.refund_reserved_minor = 300;
                Some(Vec::new())
            })
            .await
            .unwrap();

        // 20 refunds of 1.00 with 7.00 left, spread over the nodes: exactly 7 accepted.
        let refunds: Vec<_> = (0..20)
            .map(|n| {
                let node = nodes[n % 3].clone();
                let refund: RefundRecord = serde_json::from_value(serde_json::json!({
                    "id": format!("re_{n:02}"), "payment_id": id, "merchant_id": "m_a",
                    "provider": "mock", "amount_minor": 100, "currency": "CNY",
                    "status": "pending", "created_at_ms": 2_000, "updated_at_ms": 2_000,
                    "provider_step": "not_sent", "api_key_id": "key_pos", "version": 0
                }))
                .unwrap();
                let (claim, event) = (
                    claim(&format!("k-re-{n}"), "fp"),
                    event("refund.created", "re", n),
                );
                tokio::spawn(async move { node.begin_refund(&claim, &refund, &event).await })
            })
            .collect();
        let mut accepted = 0;
        for refund in refunds {
            match refund.await.unwrap().unwrap() {
                Begin::Created => accepted += 1,
                Begin::ExceedsPayment { refundable_minor } => assert!(refundable_minor < 100),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(accepted, 7);
        let stored = nodes[2].payment(&id).await.unwrap().unwrap();
        assert_eq!(stored.refund_reserved_minor, 1_000);
        let refunds = nodes[1].refunds_of(&id).await.unwrap();
        assert_eq!(refunds.len(), 7);
        assert!(refunds.iter().all(|r| r.status == RefundStatus::Pending));
    }

    /// The outbox across daemons: an entry is worked by one dispatcher at a time, a lease
    /// that ran out passes it on, and the late holder's write is refused by its token.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_outbox_entry_is_worked_by_one_dispatcher_at_a_time() {
        use crate::store::Outbox;
        let Some(server) = server().await else { return };
        let settings = server.settings(&server.fresh_database().await);
        let a = PgStore::open(&settings).await.unwrap();
        let b = PgStore::open(&settings).await.unwrap();
        a.enable_outbox();
        crate::store::conformance::paid_for_tests(&a, "pay_1").await;
        let taken = a.take_outbox(10, 60_000, i64::MAX).await.unwrap();
        assert_eq!(taken.len(), 1);
        assert!(
            b.take_outbox(10, 60_000, i64::MAX)
                .await
                .unwrap()
                .is_empty(),
            "leased to a"
        );
        // Released with its state, a retry due at 9,000: not taken before, then taken by b
        // under a new token.
        let mut state = crate::domain::records::OutboxRecord::default();
        state.endpoints.insert(
            "erp".into(),
            crate::domain::records::DeliveryState {
                attempts: 1,
                next_attempt_ms: 9_000,
                finished: false,
                last_error: None,
            },
        );
        assert!(a.set_outbox(&taken[0], Some(&state)).await.unwrap());
        assert!(
            b.take_outbox(10, 0, 8_999).await.unwrap().is_empty(),
            "not due"
        );
        assert_eq!(b.next_outbox_due().await.unwrap(), Some(9_000));
        let by_b = b.take_outbox(10, 0, 9_000).await.unwrap();
        assert_eq!(by_b.len(), 1);
        assert!(by_b[0].lease > taken[0].lease);
        // b's lease of 0 ms has run out: a takes it over, and b's late write is refused.
        let by_a = a.take_outbox(10, 60_000, i64::MAX).await.unwrap();
        assert_eq!(by_a.len(), 1);
        assert!(!b.set_outbox(&by_b[0], None).await.unwrap(), "fenced");
        assert_eq!(a.outbox_len().await.unwrap(), 1);
        assert!(a.set_outbox(&by_a[0], None).await.unwrap());
        assert_eq!(b.outbox_len().await.unwrap(), 0);

        // A renewed lease holds; once it lapses and b takes the entry, a's token renews
        // nothing.
        crate::store::conformance::paid_for_tests(&a, "pay_2").await;
        let held = a.take_outbox(10, 0, i64::MAX).await.unwrap();
        assert_eq!(held.len(), 1);
        let token = [(held[0].event.id.clone(), held[0].lease)];
        a.renew_outbox(&token, 60_000).await.unwrap();
        assert!(
            b.take_outbox(10, 60_000, i64::MAX)
                .await
                .unwrap()
                .is_empty(),
            "renewed"
        );
        a.renew_outbox(&token, 0).await.unwrap();
        let by_b = b.take_outbox(10, 60_000, i64::MAX).await.unwrap();
        assert_eq!(by_b.len(), 1);
        a.renew_outbox(&token, 60_000).await.unwrap();
        assert!(b.set_outbox(&by_b[0], None).await.unwrap(), "still b's");
    }

    /// A statement that runs past the statement timeout is cancelled by the server, and that
    /// counts as the database unavailable (503), not as a fault of the request's data.
    #[tokio::test]
    async fn a_statement_past_the_timeout_is_cancelled_as_unavailable() {
        let Some(server) = server().await else { return };
        let mut settings = server.settings(&server.fresh_database().await);
        settings.statement_timeout = Duration::from_millis(200);
        let store = PgStore::open(&settings).await.unwrap();
        let client = store.client().await.unwrap();
        let cancelled = client
            .simple_query("SELECT pg_sleep(30)")
            .await
            .expect_err("cancelled at the timeout");
        assert_eq!(
            cancelled.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
        );
        assert!(PgError::Query(cancelled).is_unavailable());
    }

    /// Out of connections: the server refuses a new one (here a role's connection limit,
    /// as `max_connections` would), or the pool has none free within the statement timeout.
    /// Either way the operation fails as unavailable (a 503) within the timeout, not a hang,
    /// and the store works again once connections free up.
    #[tokio::test]
    async fn out_of_connections_is_unavailable_within_the_timeout() {
        use crate::store::PaymentStore;
        let Some(server) = server().await else { return };
        let settings = server.settings(&server.fresh_database().await);
        PgStore::open(&settings).await.unwrap();
        let admin = client_of(&settings).await;
        let role = format!("paygate_limited_{}", std::process::id());
        admin
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS {role};
                 CREATE ROLE {role} LOGIN CONNECTION LIMIT 2;
                 GRANT USAGE, CREATE ON SCHEMA public TO {role};
                 GRANT ALL ON ALL TABLES IN SCHEMA public TO {role};
                 GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role};"
            ))
            .await
            .unwrap();
        let limited = PgSettings {
            url: format!("{} user={role}", settings.url),
            pool_size: 4,
            statement_timeout: Duration::from_secs(2),
            ..settings.clone()
        };
        // The store holds one connection (its open); two more of the role's fill its limit.
        let store = PgStore::open(&limited).await.unwrap();
        let held = store.client().await.unwrap();
        let other = store.client().await;
        assert!(other.is_ok(), "the role's second connection");
        let started = std::time::Instant::now();
        let refused = store
            .pending_payment_ids()
            .await
            .expect_err("no connection");
        assert!(refused.is_unavailable(), "{refused:?}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "within the timeout"
        );
        drop((held, other));
        assert_eq!(
            store.pending_payment_ids().await.unwrap(),
            Vec::<String>::new()
        );
        // Its pool keeps its connections open: closed with it, which the server sees a
        // moment later (opening the next store at once was refused for the role's limit, one
        // CI run in many).
        drop(store);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let row = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                    &[&role],
                )
                .await
                .unwrap();
            if row.get::<_, i64>(0) == 0 || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // A pool of one, its connection held: the next operation waits at most the timeout.
        let one = PgStore::open(&PgSettings {
            pool_size: 1,
            ..limited.clone()
        })
        .await
        .unwrap();
        let held = one.client().await.unwrap();
        let started = std::time::Instant::now();
        let refused = one
            .pending_payment_ids()
            .await
            .expect_err("the pool is empty");
        assert!(refused.is_unavailable(), "{refused:?}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "within the timeout"
        );
        drop(held);
        assert_eq!(
            one.pending_payment_ids().await.unwrap(),
            Vec::<String>::new()
        );
        drop(one);
        admin
            .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role};"))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn daemons_opening_one_database_at_once_migrate_it_once() {
        let Some(server) = server().await else { return };
        let settings = server.settings(&server.fresh_database().await);
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let settings = settings.clone();
                tokio::spawn(async move { PgStore::open(&settings).await.map(|_| ()) })
            })
            .collect();
        for open in opens {
            open.await
                .unwrap()
                .expect("every daemon opens the database");
        }
        let client = client_of(&settings).await;
        let versions: Vec<i32> = client
            .query(
                "SELECT version FROM paygate_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(versions, (0..=SCHEMA_VERSION).collect::<Vec<_>>());
        // Opened again: nothing to do, nothing lost.
        PgStore::open(&settings).await.unwrap();
    }

    #[tokio::test]
    async fn a_newer_schema_and_another_products_database_are_refused() {
        let Some(server) = server().await else { return };
        let settings = server.settings(&server.fresh_database().await);
        PgStore::open(&settings).await.unwrap();
        let client = client_of(&settings).await;
        // A newer schema this binary still runs on (an expanding migration): opened.
        client
            .execute(
                "INSERT INTO paygate_migrations (version, name, oldest_binary)
                 VALUES ($1, 'expands', $2)",
                &[&(SCHEMA_VERSION + 1), &SCHEMA_VERSION],
            )
            .await
            .unwrap();
        PgStore::open(&settings).await.unwrap();
        // One that needs a newer binary (a contracting migration): refused.
        client
            .execute(
                "INSERT INTO paygate_migrations (version, name, oldest_binary)
                 VALUES ($1, 'contracts', $1)",
                &[&(SCHEMA_VERSION + 2)],
            )
            .await
            .unwrap();
        let refused = PgStore::open(&settings).await.err().expect("refused");
        assert!(
            matches!(refused, PgError::NewerSchema { found, needs, supported }
                if found == SCHEMA_VERSION + 2 && needs == SCHEMA_VERSION + 2
                    && supported == SCHEMA_VERSION),
            "{refused}"
        );
        assert!(refused.to_string().contains("run a newer paygated"));

        let settings = server.settings(&server.fresh_database().await);
        client_of(&settings)
            .await
            .batch_execute("CREATE TABLE invoices (id int)")
            .await
            .unwrap();
        let refused = PgStore::open(&settings).await.err().expect("refused");
        assert!(
            matches!(&refused, PgError::Foreign(t) if t == "invoices"),
            "{refused}"
        );
        assert!(refused.to_string().contains("another product's"));
    }

    /// The throwaway cluster a machine without a server gets (here it is started even when a
    /// server answers, so that the path a fresh machine takes is tested too).
    #[tokio::test]
    async fn a_throwaway_cluster_serves_a_store() {
        let cluster = match super::testing::throwaway_cluster().await {
            Ok(cluster) => cluster,
            Err(why) => {
                assert!(std::env::var_os("CI").is_none(), "{why}");
                eprintln!("*** SKIPPED: no throwaway PostgreSQL cluster: {why} ***");
                return;
            }
        };
        let settings = cluster.settings(&cluster.fresh_database().await);
        let store = PgStore::open(&settings).await.unwrap();
        assert_eq!(
            store.pending_payment_ids().await.unwrap(),
            Vec::<String>::new()
        );
    }

    /// The URL's own options are kept beside the daemon's: here, a schema of its own.
    #[tokio::test]
    async fn the_urls_options_are_kept() {
        let Some(server) = server().await else { return };
        let mut settings = server.settings(&server.fresh_database().await);
        let admin = client_of(&settings).await;
        admin.batch_execute("CREATE SCHEMA paygate").await.unwrap();
        settings.url = format!("{} options='-c search_path=paygate'", settings.url);
        PgStore::open(&settings).await.unwrap();
        let row = admin
            .query_one(
                "SELECT to_regclass('paygate.payments') IS NOT NULL,
                        to_regclass('public.payments') IS NULL",
                &[],
            )
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1));
    }

    #[tokio::test]
    async fn a_server_not_there_is_unavailable_and_a_bad_url_names_the_setting() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let settings = PgSettings {
            url: format!("host=127.0.0.1 port={port} user=postgres dbname=x"),
            pool_size: 1,
            statement_timeout: std::time::Duration::from_secs(2),
            lease_ms: crate::store::port::LEASE_MS_DEFAULT,
            node: None,
            ca_file: None,
        };
        let refused = PgStore::open(&settings).await.err().expect("refused");
        assert!(refused.is_unavailable(), "{refused:?}");
        let bad = PgSettings {
            url: "postgresql://[::1".into(),
            ..settings
        };
        let refused = PgStore::open(&bad).await.err().expect("refused");
        assert!(
            refused.to_string().starts_with("store.postgres.url:"),
            "{refused}"
        );
    }
}
