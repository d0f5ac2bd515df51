//! PostgreSQL for tests. The server is, in this order: the one `PAYGATE_TEST_DATABASE_URL`
//! names; one answering at `127.0.0.1:5432` (user `postgres`, trust authentication, as on
//! the project's machines); a throwaway cluster started from the system's PostgreSQL
//! ([`throwaway_cluster`]). Without any, a run with `CI` set fails and a local run skips
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
/// Held while the server is being found: tests running in parallel wait for the first one
/// (a lock of tokio's, since each test has a runtime of its own).
static FINDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static NEXT: AtomicU32 = AtomicU32::new(0);
static NEXT_CLUSTER: AtomicU32 = AtomicU32::new(0);

/// The server for this test process, found once (`None`: none, and not on CI: skip).
pub async fn server() -> Option<TestServer> {
    let _finding = FINDING.lock().await;
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
        Err(_) => match throwaway_cluster().await {
            Ok(cluster) => Some(cluster.server),
            Err(why) => {
                eprintln!("no throwaway PostgreSQL cluster either: {why}");
                None
            }
        },
    }
}

/// A cluster of the tests' own, which a test may stop and start again (an outage).
pub struct Cluster {
    pub server: TestServer,
    /// `pg_ctl`, the data directory, and whom to run it as.
    pg_ctl: std::path::PathBuf,
    data: std::path::PathBuf,
    dir: std::path::PathBuf,
    user: Option<&'static str>,
}

impl std::ops::Deref for Cluster {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl Cluster {
    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let mut command = match self.user {
            Some(name) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", name, "--"]).arg(&self.pg_ctl);
                c
            }
            None => std::process::Command::new(&self.pg_ctl),
        };
        let output = command
            .current_dir(&self.dir)
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Stops the server (fast shutdown: connections are cut, nothing committed is lost).
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl(&["-m", "fast", "-w", "stop"])
    }

    /// Starts it again, and waits until it answers.
    pub fn start(&self) -> Result<(), String> {
        let log = self.dir.join("server.log");
        self.pg_ctl(&["-w", "-l", &log.to_string_lossy(), "start"])
    }
}

/// Starts a PostgreSQL cluster of its own from the system's binaries (Debian's
/// `/usr/lib/postgresql/<version>/bin`): `initdb` in a temporary directory, then the server
/// (`pg_ctl start`) on a free port of 127.0.0.1, both as the unprivileged `postgres` user (or
/// `nobody`) when the tests run as root, since `initdb` refuses root. The server stops when
/// this process ends (a watcher beside it looks for this process's pid) and its directory
/// goes with it.
pub async fn throwaway_cluster() -> Result<Cluster, String> {
    start_cluster(None).await
}

/// A throwaway cluster that speaks TLS with `cert_pem` and `key_pem` (and plaintext too, as
/// a server with `ssl = on` does).
pub async fn throwaway_cluster_with_tls(cert_pem: &str, key_pem: &str) -> Result<Cluster, String> {
    start_cluster(Some((cert_pem, key_pem))).await
}

async fn start_cluster(tls: Option<(&str, &str)>) -> Result<Cluster, String> {
    let bin = postgres_bin_dir().ok_or("no PostgreSQL binaries under /usr/lib/postgresql")?;
    let dir = std::env::temp_dir().join(format!(
        "paygate-pg-{}-{}",
        std::process::id(),
        NEXT_CLUSTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let user = unprivileged_user()?;
    if let Some((uid, gid)) = user.map(|(_, uid, gid)| (uid, gid)) {
        rustix::fs::chown(
            &dir,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let as_user = |program: &std::path::Path| {
        let mut command = match user {
            Some((name, _, _)) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", name, "--"]).arg(program);
                c
            }
            None => std::process::Command::new(program),
        };
        command.current_dir(&dir);
        command
    };
    let data = dir.join("data");
    let initdb = as_user(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !initdb.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    // Where it listens, in its own settings: `pg_ctl` starts it again the same way.
    let mut settings = format!(
        "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n",
        dir.display()
    );
    if let Some((cert, key)) = tls {
        // The server's own files: its user's, the key readable by it alone.
        for (name, text, mode) in [("server.crt", cert, 0o644), ("server.key", key, 0o600)] {
            let path = data.join(name);
            std::fs::write(&path, text).map_err(|e| format!("{name}: {e}"))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{name}: {e}"))?;
            if let Some((_, uid, gid)) = user {
                rustix::fs::chown(
                    &path,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )
                .map_err(|e| format!("chown {name}: {e}"))?;
            }
        }
        settings.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    }
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .and_then(|mut conf| conf.write_all(settings.as_bytes()))
        .map_err(|e| format!("postgresql.conf: {e}"))?;
    // The server, and a watcher that stops it (fast shutdown) once this process is gone.
    // Paths are the script's arguments, never part of its text.
    const SCRIPT: &str = r#"pg_ctl="$1" data="$2" dir="$3" parent="$4"
        "$pg_ctl" -D "$data" -l "$dir/server.log" start > /dev/null 2>&1
        while [ -d "/proc/$parent" ]; do sleep 1; done
        "$pg_ctl" -D "$data" -m fast -w stop > /dev/null 2>&1; rm -rf -- "$dir""#;
    as_user(std::path::Path::new("sh"))
        .args(["-c", SCRIPT, "sh"])
        .arg(bin.join("pg_ctl"))
        .arg(&data)
        .arg(&dir)
        .arg(std::process::id().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let server = TestServer {
        base: format!("host=127.0.0.1 port={port} user=postgres"),
    };
    let started = std::time::Instant::now();
    loop {
        match server.admin().await {
            Ok(_) => {
                return Ok(Cluster {
                    server,
                    pg_ctl: bin.join("pg_ctl"),
                    data,
                    dir,
                    user: user.map(|(name, _, _)| name),
                });
            }
            Err(e) if started.elapsed() > Duration::from_secs(30) => {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                return Err(format!("the throwaway server did not answer: {e}\n{log}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn postgres_bin_dir() -> Option<std::path::PathBuf> {
    let mut found: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Whom to run PostgreSQL as: `None` (ourselves) unless we are root, then `postgres` if the
/// system has that user, else `nobody`.
fn unprivileged_user() -> Result<Option<(&'static str, u32, u32)>, String> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    for name in ["postgres", "nobody"] {
        let entry = passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&name) && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        });
        if let Some((uid, gid)) = entry {
            return Ok(Some((name, uid, gid)));
        }
    }
    Err("running as root, and no postgres or nobody user to run PostgreSQL as".into())
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
            lease_ms: crate::store::port::LEASE_MS_DEFAULT,
            node: None,
            ca_file: None,
        }
    }
}

/// A plain connection to the database of `settings`, outside any store: a test's hand on the
/// data (another daemon's transaction, a tampered record).
pub async fn client_of(settings: &PgSettings) -> tokio_postgres::Client {
    let config: tokio_postgres::Config = settings.url.parse().unwrap();
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A TCP proxy to a store's server that can lose the server's answer: once armed with a
/// needle, the first message from a client that holds it is passed on, and the connection is
/// cut before the server's answer to it comes back (the server still does what it asked: a
/// `COMMIT` commits). The store sees its connection break with the outcome unknown.
pub struct LossyProxy {
    pub port: u16,
    armed: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LossyProxy {
    /// A proxy to the server of `settings`, and settings that reach it through the proxy.
    pub async fn to(settings: &PgSettings) -> (LossyProxy, PgSettings) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let config: tokio_postgres::Config = settings.url.parse().unwrap();
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            other => panic!("a TCP server, not {other:?}"),
        };
        let target = format!(
            "{host}:{}",
            config.get_ports().first().copied().unwrap_or(5432)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
        let fired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (armed_in, fired_in) = (armed.clone(), fired.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let (armed, fired, cut_up) = (armed_in.clone(), fired_in.clone(), cut.clone());
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = client_read.read(&mut buffer).await {
                        let chunk = &buffer[..n];
                        let hit = {
                            let mut armed = armed.lock().unwrap();
                            let hit = armed.as_ref().is_some_and(|needle| {
                                chunk.windows(needle.len()).any(|w| w == needle)
                            });
                            if hit {
                                *armed = None;
                            }
                            hit
                        };
                        if hit {
                            cut_up.store(true, std::sync::atomic::Ordering::SeqCst);
                            fired.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                        if server_write.write_all(chunk).await.is_err() {
                            return;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = server_read.read(&mut buffer).await {
                        if cut.load(std::sync::atomic::Ordering::SeqCst) {
                            // The answer is lost; the client's end closes.
                            return;
                        }
                        if client_write.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let mut parts = vec![format!("host=127.0.0.1 port={port}")];
        if let Some(user) = config.get_user() {
            parts.push(format!("user={user}"));
        }
        if let Some(password) = config.get_password() {
            parts.push(format!("password={}", String::from_utf8_lossy(password)));
        }
        if let Some(dbname) = config.get_dbname() {
            parts.push(format!("dbname={dbname}"));
        }
        let through = PgSettings {
            url: parts.join(" "),
            ..settings.clone()
        };
        (LossyProxy { port, armed, fired }, through)
    }

    /// Loses the answer to the next message that holds `needle`.
    pub fn arm(&self, needle: &[u8]) {
        *self.armed.lock().unwrap() = Some(needle.to_vec());
        self.fired.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether an answer was lost since the last `arm`.
    pub fn fired(&self) -> bool {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}
