//! The anomaly monitor's figures (issue: monitoring):
//! - **throughput**: the rules alone, in-process on one thread, fed a synthetic stream of
//!   payment events over many terminals (events/s);
//! - **alert latency**: the real daemon with `credential_abuse` at threshold 1 and no
//!   cool-down; a client holds `GET /v1/alerts/stream` open, sends a request with a bad key,
//!   and times from that response to the alert arriving on the stream (p50/p99).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paygate_daemon::domain::events::EventKind;
use paygate_daemon::domain::records::{EventRecord, Snapshot};
use paygate_daemon::monitor::Input;
use paygate_daemon::monitor::rules::Rules;
use paygate_daemon::monitor::settings::MonitorSettings;

const THROUGHPUT_EVENTS: usize = 500_000;
const LATENCY_SAMPLES: usize = 300;

pub fn monitor(paygated: &Path, config: &Path) {
    throughput();
    latency(paygated, config);
}

fn throughput() {
    let mut rules = Rules::new(&MonitorSettings::default());
    let events: Vec<Input> = (0..10_000)
        .map(|i| {
            let kind = if i % 20 == 0 {
                EventKind::PaymentFailed
            } else {
                EventKind::PaymentCreated
            };
            Input::Event(Arc::new(EventRecord {
                id: format!("evt_{i}"),
                kind,
                created_at_ms: 0,
                object_id: format!("pay_{i}"),
                data: serde_json::json!({"status": "pending"}),
                object_version: 0,
                object: Some(Snapshot::of(&serde_json::json!({
                    "merchant_id": format!("m_{}", i % 50),
                    "terminal_id": format!("T-{}", i % 2_000),
                    "amount_minor": 500 + (i * 7919) % 20_000,
                    "currency": "CNY",
                    "payer": format!("payer_{}", i % 5_000),
                    "api_key_id": "key_pos",
                    "created_at_ms": 0,
                }))),
            }))
        })
        .collect();
    let hours = |_: &str| None;
    let started = Instant::now();
    let mut findings = 0usize;
    for n in 0..THROUGHPUT_EVENTS {
        // A realistic pace: 1 ms apart, so windows roll.
        findings += rules
            .evaluate(&events[n % events.len()], n as i64, &hours)
            .len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"name\":\"monitor_throughput\",\"events\":{THROUGHPUT_EVENTS},\"seconds\":{elapsed:.3},\"events_per_s\":{:.0},\"findings\":{findings}}}",
        THROUGHPUT_EVENTS as f64 / elapsed
    );
}

fn latency(paygated: &Path, config: &Path) {
    let dir = std::env::temp_dir().join(format!("paygate-bench-monitor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let text = std::fs::read_to_string(config).expect("the config file")
        + "\n[monitor.rules.credential_abuse]\nthreshold = 1\ncooldown_s = 0\n";
    let config_path = dir.join("paygate.toml");
    std::fs::write(&config_path, text).expect("write config");
    let mut child = Command::new(paygated)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config_path)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("paygated starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the listening line");
    let base = line
        .trim()
        .strip_prefix("paygated listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a listening URL")
        .to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut samples = runtime.block_on(measure(&base));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{{\"name\":\"monitor_alert_latency\",\"samples\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// Each sample: a bad-key request, then the alert it raised on the open SSE stream.
async fn measure(base: &str) -> Vec<f64> {
    let client = reqwest::Client::new();
    let mut stream = client
        .get(format!("{base}/v1/alerts/stream"))
        .bearer_auth("pg_demo_admin")
        .send()
        .await
        .expect("the alert stream");
    assert_eq!(stream.status(), 200, "the stream opens");
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    let mut buffer = String::new();
    for i in 0..LATENCY_SAMPLES + 20 {
        let answered = {
            let response = client
                .get(format!("{base}/v1/merchants"))
                .bearer_auth(format!("wrong_key_{i}"))
                .send()
                .await
                .expect("an answer");
            assert_eq!(response.status(), 401);
            Instant::now()
        };
        // Read until one whole `alert` event has arrived.
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if event.contains("event: alert") {
                    break;
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
                .await
                .expect("an alert within 10 s")
                .expect("the stream stays open")
                .expect("the stream does not end");
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
        // The first alerts warm up connections and allocations.
        if i >= 20 {
            samples.push(answered.elapsed().as_secs_f64() * 1000.0);
        }
    }
    samples
}
