//! The provider simulator (`paygate-sim`, built by `cargo xtask build`) for the provider
//! tests: started on a free port, and the daemon's config pointed at it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

pub struct Simulator {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Alipay's bill host, `http://127.0.0.1:PORT`.
    pub bill_url: String,
    client: reqwest::Client,
}

impl Simulator {
    /// Starts the simulator with fast payers, refunds and notification retries.
    pub fn spawn() -> Simulator {
        Simulator::spawn_with(&[])
    }

    /// [`Simulator::spawn`] with more arguments.
    pub fn spawn_with(extra: &[&str]) -> Simulator {
        let binary = repo_root().join("target/release/paygate-sim");
        assert!(
            binary.is_file(),
            "{} is missing: run `cargo xtask build` first",
            binary.display()
        );
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--keys"])
            .arg(repo_root().join("config/sandbox-keys"))
            .args([
                "--notify-compression",
                "1000",
                "--confirm-after-ms",
                "800",
                "--refund-after-ms",
                "800",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().take(2).flatten() {
                let _ = sender.send(line);
            }
            for _ in lines {}
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("the simulator prints its listening line");
        let base_url = line
            .strip_prefix("paygate-sim listening on ")
            .expect("the listening line")
            .trim()
            .to_owned();
        let line = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("the simulator prints its bill host");
        let bill_url = line
            .strip_prefix("paygate-sim bills on ")
            .expect("the bill host line")
            .trim()
            .to_owned();
        Simulator {
            child,
            base_url,
            bill_url,
            client: reqwest::Client::new(),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        self.base_url.trim_start_matches("http://")
    }

    /// The shipped config with the providers pointed at this simulator.
    pub fn daemon_config(&self) -> String {
        let config = default_config_text();
        assert!(config.contains("127.0.0.1:8430") && config.contains("127.0.0.1:8431"));
        config.replace("127.0.0.1:8430", self.addr()).replace(
            "127.0.0.1:8431",
            self.bill_url.trim_start_matches("http://"),
        )
    }

    pub async fn control(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/_sim/{path}", self.base_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET /_sim/{provider}/onboarding`: applications, accounts and uploaded images.
    pub async fn onboarding(&self, provider: &str) -> Value {
        self.read(&format!("{provider}/onboarding")).await
    }

    pub async fn ledger(&self, provider: &str) -> Value {
        self.read(&format!("{provider}/ledger")).await
    }

    /// `GET /_sim/{path}`, as JSON.
    async fn read(&self, path: &str) -> Value {
        self.client
            .get(format!("{}/_sim/{path}", self.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
