//! Shared helpers: start a daemon, talk to it, stop it; the mock wallet's payment requests
//! and notices; a webhook receiver; metric readers; in-process plugin host records.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use paygate_daemon::plugins::PluginHost;
use paygate_daemon::plugins::types::{Merchant, Money};
use serde_json::{Value, json};

pub const POS: &str = "pg_demo_pos";
pub const ERP: &str = "pg_demo_erp";
pub const ADMIN: &str = "pg_demo_admin";
/// An erp key scoped to `m_other` only.
pub const OTHER_ERP: &str = "pg_test_other_erp";
/// A payment code the mock wallet accepts: 18 digits starting with 99.
pub const MOCK_AUTH_CODE: &str = "990000000000001234";
/// m_demo's `notify_secret` for the mock wallet (config/paygate.toml).
pub const DEMO_NOTIFY_SECRET: &str = "demo-notify-secret";

/// How long a daemon may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub fn paygated() -> &'static str {
    env!("CARGO_BIN_EXE_paygated")
}

/// Hex SHA-256 of a key, computed independently of the daemon's own code.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

/// Hex SHA-256 of the file at `path`.
pub fn sha256_file(path: &Path) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        &std::fs::read(path).unwrap(),
    ))
}

/// The config the tests run with: the shipped default config plus a second merchant and a
/// key scoped to it.
pub fn default_config_text() -> String {
    let shipped = std::fs::read_to_string(repo_root().join("config/paygate.toml")).unwrap();
    // The shipped config names plugins relative to the repository root; tests run elsewhere.
    let shipped = shipped.replace(
        "\"target/plugins/",
        &format!("\"{}/", plugin_dir().display()),
    );
    // Key files are named relative to the repository root too.
    let shipped = shipped.replace(
        "\"file:config/",
        &format!("\"file:{}/config/", repo_root().display()),
    );
    // Every test daemon shares one compiled-plugin cache, as restarts of one daemon do.
    let shipped = shipped.replace(
        "# cache_dir = \"/var/cache/paygate\"",
        &format!("cache_dir = \"{}\"", shared_plugin_cache().display()),
    );
    format!(
        "{shipped}\n[[merchants]]\nid = \"m_other\"\nname = \"Other Shop\"\n\n[[api_keys]]\nid = \"key_other_erp\"\nrole = \"erp\"\nmerchants = [\"m_other\"]\nsha256 = \"{}\"\n",
        sha256_hex(OTHER_ERP)
    )
}

/// Where `cargo xtask build` puts the bundled plugins.
pub fn plugin_dir() -> PathBuf {
    let dir = repo_root().join("target/plugins");
    assert!(
        dir.join("paygate-plugin-mock.wasm").is_file(),
        "{} has no plugins: run `cargo xtask build` (or `cargo xtask test`) first",
        dir.display()
    );
    dir
}

/// The compiled-plugin cache the test daemons share.
pub fn shared_plugin_cache() -> PathBuf {
    repo_root().join("target/test-plugin-cache")
}

/// Where `cargo xtask build` puts the test plugins (hostile, future world).
pub fn test_plugin(name: &str) -> PathBuf {
    let path = repo_root()
        .join("target/test-plugins")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask build` first",
        path.display()
    );
    path
}

/// The first ```toml block after `marker` in `plugin-api/README.md` (the config snippets the
/// tests load exactly as the README shows them).
pub fn readme_toml_block(marker: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("plugin-api/README.md")).unwrap();
    let after_marker = &readme[readme.find(marker).unwrap()..];
    after_marker
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap()
        .to_owned()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A running daemon; killed on drop.
pub struct Daemon {
    child: Option<Child>,
    pub base_url: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    /// Temp dirs that live as long as the daemon (a data dir outside `dir`).
    shared_dirs: Vec<tempfile::TempDir>,
    /// Its data dir: `dir`'s `data`, or the one it was started on.
    data_dir: PathBuf,
}

pub struct Options {
    pub config_text: String,
    pub extra_args: Vec<String>,
    pub data_dir: Option<PathBuf>,
    /// Environment variables for the daemon (e.g. the test builds' plugin clock).
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_text: default_config_text(),
            extra_args: Vec::new(),
            data_dir: None,
            env: Vec::new(),
        }
    }
}

impl Daemon {
    /// A daemon on the tests' config ([`default_config_text`]).
    pub fn start() -> Daemon {
        Daemon::start_with(Options::default())
    }

    /// A daemon on `config_text`, with a fresh data dir.
    pub fn with_config(config_text: String) -> Daemon {
        Daemon::start_with(Options {
            config_text,
            ..Options::default()
        })
    }

    /// A daemon on `config_text` and the data dir `data_dir` (e.g. another daemon's, for a
    /// restart).
    pub fn with_config_on(config_text: String, data_dir: &Path) -> Daemon {
        Daemon::start_with(Options {
            config_text,
            data_dir: Some(data_dir.to_owned()),
            ..Options::default()
        })
    }

    pub fn start_with(options: Options) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        match spawn(&dir, &options) {
            Ok((child, base_url)) => Daemon {
                child: Some(child),
                base_url,
                data_dir: options
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| dir.path().join("data")),
                dir,
                client: reqwest::Client::new(),
                shared_dirs: Vec::new(),
            },
            Err(message) => panic!("daemon did not start: {message}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `host:port` of the TCP listener, whatever its scheme.
    pub fn tcp_addr(&self) -> &str {
        self.base_url.split("://").nth(1).unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    /// The daemon's stderr (its logs) so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        into_json(request.send().await.unwrap()).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        key: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        into_json(request.send().await.unwrap()).await
    }

    /// POSTs `body` with `idempotency_key` as Idempotency-Key; returns status, replayed flag
    /// and body.
    pub async fn post_idempotent(
        &self,
        path: &str,
        api_key: &str,
        idempotency_key: Option<&str>,
        body: &Value,
    ) -> (u16, bool, Value) {
        let mut request = self
            .client
            .post(self.url(path))
            .bearer_auth(api_key)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        let text = response.text().await.unwrap();
        (
            status,
            replayed,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `POST /v1/payments` with the till's key and `key` as Idempotency-Key.
    pub async fn pay(&self, key: &str, body: Value) -> (u16, bool, Value) {
        self.post_idempotent("/v1/payments", POS, Some(key), &body)
            .await
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET /metrics");
        response.text().await.unwrap()
    }

    /// The value of one exact series of `GET /metrics` (see [`metric_value`]).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics().await, series)
    }

    /// Writes `request` on a fresh TCP connection and returns everything the daemon answers
    /// until it closes the connection (send `connection: close`).
    pub async fn raw(&self, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.tcp_addr())
            .await
            .unwrap();
        // The daemon may answer (e.g. 413) and close before reading everything we send.
        let _ = stream.write_all(request).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        signal(self.pid(), "TERM");
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("daemon did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Whether this run's daemons keep their data on PostgreSQL (`PAYGATE_E2E_ENGINE=postgres`;
/// `cargo xtask test` runs the suite once on each engine).
pub fn on_postgres() -> bool {
    std::env::var("PAYGATE_E2E_ENGINE").is_ok_and(|engine| engine == "postgres")
}

/// Whether a test of what only the embedded engine has (its data dir's lock, free space,
/// flushes, archive, file formats) runs: on a PostgreSQL run it says so and passes.
pub fn sled_only(what: &str) -> bool {
    if on_postgres() {
        eprintln!("(PostgreSQL run: {what} is the embedded engine's; not tested here)");
        return false;
    }
    true
}

/// A daemon on `config_text` with a data dir of its own and `other`'s database: several
/// daemons on one database (PostgreSQL runs only). Its temp dir lives as long as it does.
pub fn sharing_database_with(other: &Daemon, config_text: String) -> Daemon {
    assert!(on_postgres(), "only daemons on PostgreSQL share a database");
    let url = std::fs::read_to_string(database_marker(&other.data_dir())).unwrap();
    on_database(&url, config_text)
}

/// The file beside a data dir that names its database on PostgreSQL runs.
fn database_marker(data_dir: &Path) -> PathBuf {
    PathBuf::from(format!("{}.e2e-postgres-url", data_dir.display()))
}

/// A daemon on `config_text` with a data dir of its own and the database `url` (PostgreSQL
/// runs only). Its temp dir lives as long as it does.
pub fn on_database(url: &str, config_text: String) -> Daemon {
    assert!(on_postgres(), "a database is the PostgreSQL engine's");
    let marker = database_marker;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::write(marker(&data_dir), url).unwrap();
    let mut daemon = Daemon::start_with(Options {
        config_text,
        data_dir: Some(data_dir),
        ..Options::default()
    });
    // The data dir's temp dir goes with the daemon.
    daemon.shared_dirs.push(dir);
    daemon
}

/// The database that stands for `data_dir` on PostgreSQL: made on first use (a fresh one on
/// the tests' server) and named in a file beside the data dir, so that a daemon restarted on
/// the same data dir finds the same data, as on sled.
fn database_for(data_dir: &Path) -> String {
    let marker = database_marker(data_dir);
    if let Ok(url) = std::fs::read_to_string(&marker) {
        return url;
    }
    // Its own thread and runtime: the caller may be inside a test's runtime.
    let url = std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let server = paygate_daemon::store::postgres::testing::server()
                    .await
                    .expect("PAYGATE_E2E_ENGINE=postgres needs a PostgreSQL for the tests");
                let name = server.fresh_database().await;
                server.settings(&name).url
            })
    })
    .join()
    .unwrap();
    std::fs::write(&marker, &url).unwrap();
    url
}

/// `config_text` with its store on `data_dir`'s database, when this run is on PostgreSQL (a
/// text that is not TOML is left as it is: it is a test of what a bad config does). For a
/// command other than `serve` run on a daemon's data.
pub fn for_engine(config_text: &str, data_dir: &Path) -> String {
    if !on_postgres() {
        return config_text.to_owned();
    }
    let Ok(mut config) = config_text.parse::<toml::Table>() else {
        return config_text.to_owned();
    };
    let store = config
        .entry("store")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(store) = store.as_table_mut() else {
        return config_text.to_owned();
    };
    store.insert("engine".into(), "postgres".into());
    // The test's own settings of the engine (a lease, say) stay.
    let mut postgres = store
        .get("postgres")
        .and_then(toml::Value::as_table)
        .cloned()
        .unwrap_or_default();
    postgres.insert(
        "url".into(),
        format!("inline:{}", database_for(data_dir)).into(),
    );
    store.insert("postgres".into(), postgres.into());
    toml::to_string(&config).unwrap()
}

/// Starts paygated in `dir`; returns the child and its base URL once it listens.
fn spawn(dir: &tempfile::TempDir, options: &Options) -> Result<(Child, String), String> {
    let config = dir.path().join("paygate.toml");
    let data_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| dir.path().join("data"));
    std::fs::write(&config, for_engine(&options.config_text, &data_dir)).unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let mut command = Command::new(paygated());
    command.arg("serve");
    if !options.extra_args.iter().any(|a| a == "--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = command
        .args(["--log-format", "json", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(&options.extra_args)
        .envs(options.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = sender.send(line);
        }
        // Keep draining so the daemon never blocks on a full pipe.
        for _ in lines {}
    });
    let url = receiver.recv_timeout(START_TIMEOUT).ok().and_then(|line| {
        line.strip_prefix("paygated listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    });
    match url {
        Some(url) => Ok((child, url)),
        None => {
            let _ = child.kill();
            let status = child.wait().ok();
            let logs = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            Err(format!("no listening line; exit {status:?}, logs:\n{logs}"))
        }
    }
}

/// `paygated store verify` on a daemon's data (`config_text`: the daemon's config): its data
/// dir on sled; on PostgreSQL runs, the database that stands for the data dir, through a
/// config that names it.
pub fn verify_store(config_text: &str, data_dir: &Path) -> Output {
    if !on_postgres() {
        return run_paygated(&["store", "verify", "--data-dir", data_dir.to_str().unwrap()]);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("verify.toml");
    std::fs::write(&config, for_engine(config_text, data_dir)).unwrap();
    run_paygated(&["store", "verify", "--config", config.to_str().unwrap()])
}

/// [`verify_store`], asserting that it found the daemon's data (not an empty store) and no
/// violation; returns its report.
pub fn assert_store_verified(config_text: &str, data_dir: &Path) -> String {
    let verify = verify_store(config_text, data_dir);
    let report = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(
        verify.status.success() && report.contains(": 0 violations"),
        "{report}"
    );
    assert!(!report.contains("checked 0 payments"), "{report}");
    report
}

/// Stops `daemon` with SIGTERM and asserts it exits 0 within 10 s.
pub fn stop(mut daemon: Daemon) {
    daemon.terminate();
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
}

/// `paygated store archive --older-than 0d` on `data` (the daemon stopped); its stdout.
pub fn archive_now(config: &std::path::Path, data: &std::path::Path) -> String {
    let out = run_paygated(&[
        "store",
        "archive",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--older-than",
        "0d",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs paygated to completion with `args`.
pub fn run_paygated(args: &[&str]) -> Output {
    Command::new(paygated()).args(args).output().unwrap()
}

async fn into_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if let Some(error) = value.get("error") {
        assert_eq!(
            error["request_id"].as_str(),
            request_id.as_deref(),
            "error bodies carry the response's Request-Id"
        );
    }
    assert!(
        request_id.is_some_and(|id| id.starts_with("req_")),
        "every response has a Request-Id"
    );
    (status, value)
}

/// Asserts the API.md §3 error shape and returns `(type, code)`.
pub fn error_kind(body: &Value) -> (String, String) {
    let error = &body["error"];
    assert!(error.is_object(), "not an error body: {body}");
    for field in ["type", "code", "message", "request_id"] {
        assert!(error[field].is_string(), "error.{field} missing in {body}");
    }
    assert!(!error["message"].as_str().unwrap().is_empty());
    (
        error["type"].as_str().unwrap().to_owned(),
        error["code"].as_str().unwrap().to_owned(),
    )
}

/// Runs `paygated config check` on `text`, written as `file_name` (which its messages name)
/// in a fresh temp dir, kept alive as long as the returned one.
pub fn config_check(file_name: &str, text: &str) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, text).unwrap();
    let output = run_paygated(&["config", "check", "--config", path.to_str().unwrap()]);
    (dir, output)
}

// ----------------------------------------------------------------------------------------
// Metrics

/// The value of one exact series in Prometheus text, written as exposed: `name` or
/// `name{label="value",...}`; `None` if it is not exposed.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

// ----------------------------------------------------------------------------------------
// Payment requests for m_demo's mock wallet

/// A barcode payment of `amount` CNY for m_demo, paid with [`MOCK_AUTH_CODE`], no terminal.
pub fn barcode(amount: &str) -> Value {
    json!({"merchant_id": "m_demo", "amount": amount, "currency": "CNY", "method": "barcode",
           "auth_code": MOCK_AUTH_CODE})
}

/// A barcode payment of `amount` CNY for m_demo at `terminal`, paid with [`MOCK_AUTH_CODE`].
pub fn barcode_at(terminal: &str, amount: &str) -> Value {
    barcode_with_code(terminal, amount, MOCK_AUTH_CODE)
}

/// A barcode payment of `amount` CNY for m_demo at `terminal`, paid with `auth_code`.
pub fn barcode_with_code(terminal: &str, amount: &str, auth_code: &str) -> Value {
    json!({"merchant_id": "m_demo", "amount": amount, "currency": "CNY", "method": "barcode",
           "auth_code": auth_code, "terminal_id": terminal})
}

/// A QR payment of `amount` CNY for m_demo with the mock wallet, no terminal.
pub fn qr(amount: &str) -> Value {
    json!({"merchant_id": "m_demo", "amount": amount, "currency": "CNY", "method": "qr",
           "provider": "mock"})
}

/// A QR payment of `amount` CNY for m_demo with the mock wallet at `terminal`.
pub fn qr_at(terminal: &str, amount: &str) -> Value {
    json!({"merchant_id": "m_demo", "amount": amount, "currency": "CNY", "method": "qr",
           "provider": "mock", "terminal_id": terminal})
}

// ----------------------------------------------------------------------------------------
// Mock wallet notices

/// Hex HMAC-SHA256 of `message` under `secret`: the mock wallet's `Mock-Signature` (and the
/// 0.1 test plugin's `Legacy-Signature`).
pub fn hmac_sha256_hex(secret: &str, message: impl AsRef<[u8]>) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(ring::hmac::sign(&key, message.as_ref()))
}

/// A mock notice's text and its valid `Mock-Signature` for m_demo ([`DEMO_NOTIFY_SECRET`]).
pub fn signed(body: &Value) -> (String, String) {
    let text = body.to_string();
    let signature = hmac_sha256_hex(DEMO_NOTIFY_SECRET, &text);
    (text, signature)
}

/// A mock notice that payment `payment_id` of `amount` CNY is `status`, and its valid
/// `Mock-Signature` for m_demo.
pub fn signed_notice(payment_id: &str, status: &str, amount: &str) -> (String, String) {
    signed(
        &json!({"payment_id": payment_id, "status": status, "amount": amount,
                   "currency": "CNY"}),
    )
}

/// Posts a mock notice for `merchant_id` with `signature` as `Mock-Signature`; returns the
/// HTTP status and the body answered.
pub async fn notify_to(
    daemon: &Daemon,
    merchant_id: &str,
    body: &str,
    signature: &str,
) -> (u16, String) {
    let response = daemon
        .client
        .post(daemon.url(&format!("/v1/notify/mock/{merchant_id}")))
        .header("content-type", "application/json")
        .header("mock-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Posts a mock notice for m_demo; returns the HTTP status and the body answered.
pub async fn notify(daemon: &Daemon, body: &str, signature: &str) -> (u16, String) {
    notify_to(daemon, "m_demo", body, signature).await
}

/// Posts a mock notice for `merchant_id`, signed (correctly) with `secret`; returns the
/// HTTP status.
pub async fn mock_notice(daemon: &Daemon, merchant_id: &str, secret: &str, body: &Value) -> u16 {
    let text = body.to_string();
    let signature = hmac_sha256_hex(secret, &text);
    notify_to(daemon, merchant_id, &text, &signature).await.0
}

// ----------------------------------------------------------------------------------------
// Webhook receiver

/// One webhook delivery as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `Paygate-Signature`.
    pub signature: String,
    /// `Paygate-Event-Id`.
    pub event_id_header: String,
    pub body: Vec<u8>,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Checks `Paygate-Signature` as a receiver would: a fresh `t`, and `v1` the
    /// HMAC-SHA256 of "<t>.<body>" under the endpoint's `secret`.
    pub fn verify_signature(&self, secret: &str) {
        let mut t = None;
        let mut v1 = None;
        for part in self.signature.split(',') {
            match part.split_once('=') {
                Some(("t", value)) => t = Some(value),
                Some(("v1", value)) => v1 = Some(value),
                _ => {}
            }
        }
        let t = t.expect("t= in Paygate-Signature");
        let v1 = v1.expect("v1= in Paygate-Signature");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (now - t.parse::<i64>().unwrap()).abs() < 60,
            "fresh timestamp"
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let mut message = format!("{t}.").into_bytes();
        message.extend_from_slice(&self.body);
        ring::hmac::verify(&key, &message, &hex::decode(v1).unwrap())
            .expect("the signature verifies with the endpoint's secret");
    }
}

/// A webhook receiver on a real socket, recording every delivery to `/hooks`; stopped on
/// drop.
pub struct WebhookReceiver {
    pub port: u16,
    received: Arc<Mutex<Vec<Delivery>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// A receiver on a free port of 127.0.0.1.
    pub async fn on_free_port() -> WebhookReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        WebhookReceiver::serve(listener).await
    }

    /// A receiver on `listener`.
    pub async fn serve(listener: tokio::net::TcpListener) -> WebhookReceiver {
        let port = listener.local_addr().unwrap().port();
        let received: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let sink = received.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let sink = sink.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    sink.lock().unwrap().push(Delivery {
                        signature: header("paygate-signature"),
                        event_id_header: header("paygate-event-id"),
                        body: body.to_vec(),
                    });
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        WebhookReceiver {
            port,
            received,
            task,
        }
    }

    /// Every delivery so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }

    /// Waits for a delivery whose event satisfies `wanted` (10 s at most).
    pub async fn wait_for(&self, what: &str, wanted: impl Fn(&Value) -> bool) -> Delivery {
        for _ in 0..100 {
            let found = self
                .deliveries()
                .into_iter()
                .find(|delivery| wanted(&delivery.json()));
            if let Some(delivery) = found {
                return delivery;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let got: Vec<Value> = self.deliveries().iter().map(Delivery::json).collect();
        panic!(
            "no delivery of {what} within 10 s; got:\n{}",
            serde_json::to_string_pretty(&got).unwrap()
        );
    }

    /// Waits until `n` distinct events arrived (10 s at most); returns every delivery.
    pub async fn wait_for_events(&self, n: usize) -> Vec<Delivery> {
        for _ in 0..200 {
            let deliveries = self.deliveries();
            let ids: std::collections::BTreeSet<String> = deliveries
                .iter()
                .map(|d| d.json()["id"].as_str().unwrap().to_owned())
                .collect();
            if ids.len() >= n {
                return deliveries;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "expected {n} events, got {:?}",
            self.deliveries()
                .iter()
                .map(Delivery::json)
                .collect::<Vec<_>>()
        );
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ----------------------------------------------------------------------------------------
// In-process plugin host

/// `minor` units of CNY.
pub fn cny(minor: i64) -> Money {
    Money {
        minor,
        currency: "CNY".into(),
        exponent: 2,
    }
}

/// The record of merchant `id` for `provider`, as `host` hands it to the plugin.
pub fn merchant_record(host: &PluginHost, provider: &str, id: &str) -> Merchant {
    host.merchant_record(
        provider,
        id,
        &toml::Table::new(),
        format!("http://127.0.0.1/v1/notify/{provider}/{id}"),
    )
    .unwrap()
}
