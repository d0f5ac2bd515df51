//! Shared helpers: start a daemon, talk to it, stop it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const POS: &str = "pg_demo_pos";
pub const ERP: &str = "pg_demo_erp";
pub const ADMIN: &str = "pg_demo_admin";
/// An erp key scoped to `m_other` only.
pub const OTHER_ERP: &str = "pg_test_other_erp";

/// How long a daemon may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub fn paygated() -> &'static str {
    env!("CARGO_BIN_EXE_paygated")
}

/// Hex SHA-256 of a key, computed independently of the daemon's own code.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
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
}

pub struct Options {
    pub config_text: String,
    pub extra_args: Vec<String>,
    pub data_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_text: default_config_text(),
            extra_args: Vec::new(),
            data_dir: None,
        }
    }
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        match spawn(&dir, &options) {
            Ok((child, base_url)) => Daemon {
                child: Some(child),
                base_url,
                dir,
                client: reqwest::Client::new(),
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
        self.dir.path().join("data")
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

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET /metrics");
        response.text().await.unwrap()
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

/// Starts paygated in `dir`; returns the child and its base URL once it listens.
fn spawn(dir: &tempfile::TempDir, options: &Options) -> Result<(Child, String), String> {
    let config = dir.path().join("paygate.toml");
    std::fs::write(&config, &options.config_text).unwrap();
    let data_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| dir.path().join("data"));
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
