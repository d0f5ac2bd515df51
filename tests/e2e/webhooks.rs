//! Outgoing webhooks (API.md §9): signed, delivered from the durable outbox, retried while
//! the receiver is down, and still delivered after a daemon restart.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const SECRET: &str = "whsec_e2e_secret";

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
struct Delivery {
    signature: String,
    event_id_header: String,
    body: Vec<u8>,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver on a real socket, recording what it gets.
struct Receiver {
    received: Arc<Mutex<Vec<Delivery>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start_on(listener: tokio::net::TcpListener) -> Receiver {
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
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default()
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
        Receiver { received, task }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` distinct events arrived (10 s at most).
    async fn wait_for_events(&self, n: usize) -> Vec<Delivery> {
        for _ in 0..200 {
            let deliveries = self.deliveries();
            let ids: BTreeSet<String> = deliveries
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

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks `Paygate-Signature` as a receiver would: HMAC-SHA256 over "<t>.<body>".
fn verify_signature(delivery: &Delivery) {
    let mut t = None;
    let mut v1 = None;
    for part in delivery.signature.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (t, v1) = (t.expect("t="), v1.expect("v1="));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - t.parse::<i64>().unwrap()).abs() < 60,
        "fresh timestamp"
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(&delivery.body);
    ring::hmac::verify(&key, &message, &hex::decode(v1).unwrap())
        .expect("the signature verifies with the endpoint's secret");
}

fn config_with_endpoints(endpoints: &str) -> String {
    let config = default_config_text()
        .replace("retry_initial_ms = 1000", "retry_initial_ms = 100")
        .replace("retry_max_ms = 3600000", "retry_max_ms = 400");
    assert!(config.contains("retry_initial_ms = 100\n") && config.contains("retry_max_ms = 400\n"));
    // The endpoints go right after the shipped [webhooks] table, whatever follows it.
    assert!(config.contains("\ntimeout_ms = 10000\n"));
    config.replacen(
        "\ntimeout_ms = 10000\n",
        &format!("\ntimeout_ms = 10000\n{endpoints}\n"),
        1,
    )
}

fn endpoint(name: &str, port: u16, events: &str) -> String {
    format!(
        "\n[[webhooks.endpoints]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{port}/hooks\"\nsecret = \"inline:{SECRET}\"\nevents = {events}\n"
    )
}

fn barcode(amount: &str) -> Value {
    json!({"merchant_id": "m_demo", "amount": amount, "currency": "CNY", "method": "barcode",
           "auth_code": "990000000000001234"})
}

async fn metric(daemon: &Daemon, name: &str) -> Option<f64> {
    let text = daemon.metrics().await;
    text.lines()
        .find(|line| line.starts_with(&format!("{name} ")))
        .and_then(|line| line.split(' ').nth(1)?.parse().ok())
}

#[tokio::test]
async fn events_are_delivered_signed_to_the_endpoints_that_want_them() {
    let all = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refunds_only = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (all_port, refunds_port) = (
        all.local_addr().unwrap().port(),
        refunds_only.local_addr().unwrap().port(),
    );
    let all = Receiver::start_on(all).await;
    let refunds_only = Receiver::start_on(refunds_only).await;
    let daemon = Daemon::start_with(Options {
        config_text: config_with_endpoints(&format!(
            "{}{}",
            endpoint("erp", all_port, "[]"),
            endpoint("refunds", refunds_port, "[\"refund.succeeded\"]")
        )),
        ..Options::default()
    });

    let (status, _, paid) = daemon.pay("wh-1", barcode("20.00")).await;
    assert_eq!(status, 201, "{paid}");
    let (status, _, declined) = daemon.pay("wh-2", barcode("20.51")).await;
    assert_eq!(status, 402, "{declined}");
    let paid_id = paid["id"].as_str().unwrap();
    let (status, _, refund) = daemon
        .post_idempotent(
            &format!("/v1/payments/{paid_id}/refunds"),
            ERP,
            Some("wh-3"),
            &json!({"amount": "5.00"}),
        )
        .await;
    assert_eq!(status, 201, "{refund}");

    let deliveries = all.wait_for_events(3).await;
    let mut kinds = BTreeSet::new();
    for delivery in &deliveries {
        verify_signature(delivery);
        let event = delivery.json();
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(event["id"].as_str().unwrap(), delivery.event_id_header);
        assert!(event["created_at"].as_str().unwrap().ends_with('Z'));
        kinds.insert(event["type"].as_str().unwrap().to_owned());
        match event["type"].as_str().unwrap() {
            "payment.succeeded" => {
                assert_eq!(event["data"]["object"], "payment");
                assert_eq!(event["data"]["id"], paid["id"]);
                assert_eq!(event["data"]["status"], "succeeded");
                assert_eq!(event["data"]["amount"], "20.00");
            }
            "payment.failed" => {
                assert_eq!(event["data"]["id"], declined["error"]["payment"]["id"]);
                assert_eq!(event["data"]["failure"]["code"], "insufficient_funds");
            }
            "refund.succeeded" => {
                assert_eq!(event["data"]["object"], "refund");
                assert_eq!(event["data"]["id"], refund["id"]);
                assert_eq!(event["data"]["payment_id"], paid["id"]);
            }
            other => panic!("unexpected event type {other}"),
        }
    }
    assert_eq!(
        kinds,
        BTreeSet::from([
            "payment.failed".to_owned(),
            "payment.succeeded".to_owned(),
            "refund.succeeded".to_owned()
        ]),
        "internal kinds (payment.created, refund.created) are not delivered"
    );

    let only = refunds_only.wait_for_events(1).await;
    verify_signature(&only[0]);
    assert_eq!(only[0].json()["type"], "refund.succeeded");
    // Nothing else arrives there, and the outbox empties.
    for _ in 0..100 {
        if metric(&daemon, "paygate_webhook_backlog").await == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&daemon, "paygate_webhook_backlog").await, Some(0.0));
    assert_eq!(refunds_only.deliveries().len(), 1);
}

#[tokio::test]
async fn a_receiver_down_across_a_daemon_restart_still_gets_every_event() {
    // A port nobody listens on yet: deliveries fail with "connection refused".
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = config_with_endpoints(&endpoint("erp", port, "[]"));
    let first = Daemon::start_with(Options {
        config_text: config.clone(),
        ..Options::default()
    });
    let mut paid = BTreeSet::new();
    for i in 0..5 {
        let (status, _, payment) = first
            .pay(&format!("down-{i}"), barcode(&format!("3{i}.00")))
            .await;
        assert_eq!(status, 201, "{payment}");
        paid.insert(payment["id"].as_str().unwrap().to_owned());
    }
    // Let a few attempts fail.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(metric(&first, "paygate_webhook_backlog").await, Some(5.0));
    let failed = {
        let text = first.metrics().await;
        text.contains("paygate_webhook_deliveries_total{endpoint=\"erp\",outcome=\"failed\"}")
    };
    assert!(failed, "failed attempts are counted");

    // Restart the daemon on the same data dir, then bring the receiver up.
    first.terminate();
    let mut first = first;
    assert_eq!(first.wait(Duration::from_secs(10)), Some(0));
    let second = Daemon::start_with(Options {
        config_text: config,
        data_dir: Some(first.data_dir()),
        ..Options::default()
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let receiver = Receiver::start_on(listener).await;
    let deliveries = receiver.wait_for_events(5).await;
    let delivered: BTreeSet<String> = deliveries
        .iter()
        .map(|d| {
            verify_signature(d);
            let event = d.json();
            assert_eq!(event["type"], "payment.succeeded");
            event["data"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(delivered, paid, "every payment's event arrived");
    for _ in 0..100 {
        if metric(&second, "paygate_webhook_backlog").await == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&second, "paygate_webhook_backlog").await, Some(0.0));
}

#[tokio::test]
async fn bad_webhook_config_is_refused_naming_the_field() {
    for (endpoints, field) in [
        (
            "\n[[webhooks.endpoints]]\nname = \"a\"\nurl = \"ftp://x/hooks\"\nsecret = \"inline:s\"\n",
            "webhooks.endpoints[0].url",
        ),
        (
            "\n[[webhooks.endpoints]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/h\"\nsecret = \"plain\"\n",
            "webhooks.endpoints[0].secret",
        ),
        (
            "\n[[webhooks.endpoints]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/h\"\nsecret = \"inline:s\"\nevents = [\"payment.created\"]\n",
            "webhooks.endpoints[0].events",
        ),
        (
            "\n[[webhooks.endpoints]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/h\"\nsecret = \"env:PAYGATE_SURELY_UNSET_SECRET\"\n",
            "webhooks.endpoints[0].secret",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paygate.toml");
        std::fs::write(&path, config_with_endpoints(endpoints)).unwrap();
        let output = run_paygated(&["config", "check", "--config", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{endpoints}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(field), "{field} not in: {stderr}");
    }
}
