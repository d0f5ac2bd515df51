//! PostgreSQL for tests. The server is, in this order: the one `PAYGATE_TEST_DATABASE_URL`
//! names; one answering at `127.0.0.1:5432` (user `postgres`, trust authentication, as on
//! the project's machines). Without either, a run with `CI` set fails and a local run skips
//! the PostgreSQL tests, saying so loudly. Each store a test opens gets a database of its
//! own, `paygate_t_<pid>_<n>`; the databases of test processes no longer running are
//! dropped when the next one starts.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio_postgres::NoTls;

use super::PgSettings;

const ENV_URL: &str = "PAYGATE_TEST_DATABASE_URL";
const LOCAL: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

/// A PostgreSQL server the tests may create databases on.
#[derive(Debug, Clone)]
pub struct TestServer {
    /// `key=value` connection settings without a database name.
    base: String,
}

static SERVER: OnceLock<Option<TestServer>> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The server for this test process, found once (`None`: none, and not on CI: skip).
pub async fn server() -> Option<TestServer> {
    if let Some(found) = SERVER.get() {
        return found.clone();
    }
    let found = find().await;
    if found.is_none() {
        let why = format!(
            "no PostgreSQL for the tests: set {ENV_URL}, or run a server at 127.0.0.1:5432"
        );
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("\n*** SKIPPED: PostgreSQL tests ({why}) ***\n");
    }
    SERVER.get_or_init(|| found).clone()
}

async fn find() -> Option<TestServer> {
    let base = match std::env::var(ENV_URL) {
        Ok(url) => {
            let config: tokio_postgres::Config = url
                .parse()
                .unwrap_or_else(|e| panic!("{ENV_URL} is not a connection string: {e}"));
            Some(base_of(&config))
        }
        Err(_) => None,
    };
    let named = base.is_some();
    let base = base.unwrap_or_else(|| LOCAL.replace(" dbname=postgres", ""));
    let server = TestServer { base };
    match server.admin().await {
        Ok(admin) => {
            server.drop_leftovers(&admin).await;
            Some(server)
        }
        Err(e) if named => panic!("{ENV_URL}: cannot connect: {e}"),
        Err(_) => None,
    }
}

/// `key=value` settings of `config`'s server and user (its database left out).
fn base_of(config: &tokio_postgres::Config) -> String {
    let mut parts = Vec::new();
    if let Some(tokio_postgres::config::Host::Tcp(host)) = config.get_hosts().first() {
        parts.push(format!("host={host}"));
    }
    if let Some(port) = config.get_ports().first() {
        parts.push(format!("port={port}"));
    }
    if let Some(user) = config.get_user() {
        parts.push(format!("user={user}"));
    }
    if let Some(password) = config.get_password() {
        parts.push(format!("password={}", String::from_utf8_lossy(password)));
    }
    parts.join(" ")
}

impl TestServer {
    async fn admin(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut config: tokio_postgres::Config =
            format!("{} dbname=postgres", self.base).parse()?;
        config.connect_timeout(Duration::from_secs(5));
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Drops the databases of test processes that have ended.
    async fn drop_leftovers(&self, admin: &tokio_postgres::Client) {
        let Ok(rows) = admin
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'paygate\\_t\\_%'",
                &[],
            )
            .await
        else {
            return;
        };
        for row in rows {
            let name: String = row.get(0);
            let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
            let alive =
                pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            }
        }
    }

    /// The name of a new, empty database of this process.
    pub async fn fresh_database(&self) -> String {
        let name = format!(
            "paygate_t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = self.admin().await.expect("the test server answers");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("a test database is created");
        name
    }

    /// Settings for a store in `database`.
    pub fn settings(&self, database: &str) -> PgSettings {
        PgSettings {
            url: format!("{} dbname={database}", self.base),
            pool_size: 8,
            statement_timeout: Duration::from_secs(10),
        }
    }
}
