//! Outgoing webhooks (API.md §9): signed, delivered from the durable outbox, retried while
//! the receiver is down, and still delivered after a daemon restart.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

const SECRET: &str = "whsec_e2e_secret";

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

#[tokio::test]
async fn events_are_delivered_signed_to_the_endpoints_that_want_them() {
    let all = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refunds_only = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (all_port, refunds_port) = (
        all.local_addr().unwrap().port(),
        refunds_only.local_addr().unwrap().port(),
    );
    let all = WebhookReceiver::serve(all).await;
    let refunds_only = WebhookReceiver::serve(refunds_only).await;
    let daemon = Daemon::with_config(config_with_endpoints(&format!(
        "{}{}",
        endpoint("erp", all_port, "[]"),
        endpoint("refunds", refunds_port, "[\"refund.succeeded\"]")
    )));

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
        delivery.verify_signature(SECRET);
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
    only[0].verify_signature(SECRET);
    assert_eq!(only[0].json()["type"], "refund.succeeded");
    // Nothing else arrives there, and the outbox empties.
    for _ in 0..100 {
        if daemon.metric("paygate_webhook_backlog").await == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(daemon.metric("paygate_webhook_backlog").await, Some(0.0));
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
    let first = Daemon::with_config(config.clone());
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
    assert_eq!(first.metric("paygate_webhook_backlog").await, Some(5.0));
    let failed = {
        let text = first.metrics().await;
        text.contains("paygate_webhook_deliveries_total{endpoint=\"erp\",outcome=\"failed\"}")
    };
    assert!(failed, "failed attempts are counted");

    // Restart the daemon on the same data dir, then bring the receiver up.
    first.terminate();
    let mut first = first;
    assert_eq!(first.wait(Duration::from_secs(10)), Some(0));
    let second = Daemon::with_config_on(config, &first.data_dir());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let receiver = WebhookReceiver::serve(listener).await;
    let deliveries = receiver.wait_for_events(5).await;
    let delivered: BTreeSet<String> = deliveries
        .iter()
        .map(|d| {
            d.verify_signature(SECRET);
            let event = d.json();
            assert_eq!(event["type"], "payment.succeeded");
            event["data"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(delivered, paid, "every payment's event arrived");
    for _ in 0..100 {
        if second.metric("paygate_webhook_backlog").await == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(second.metric("paygate_webhook_backlog").await, Some(0.0));
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
        let (_dir, output) = config_check("paygate.toml", &config_with_endpoints(endpoints));
        assert_eq!(output.status.code(), Some(2), "{endpoints}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(field), "{field} not in: {stderr}");
    }
}

/// An alert belongs to its subject's merchant: an endpoint filtered to that merchant receives
/// it, one filtered to another merchant does not.
#[tokio::test]
async fn an_alert_reaches_the_endpoints_of_its_merchant() {
    let mine = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (mine_port, other_port) = (
        mine.local_addr().unwrap().port(),
        other.local_addr().unwrap().port(),
    );
    let mine = WebhookReceiver::serve(mine).await;
    let other = WebhookReceiver::serve(other).await;
    let filtered = |name: &str, port: u16, merchant: &str| {
        format!(
            "{}merchants = [\"{merchant}\"]\n",
            endpoint(name, port, "[\"alert.raised\"]")
        )
    };
    let mut config = config_with_endpoints(&format!(
        "{}{}",
        filtered("demo", mine_port, "m_demo"),
        filtered("other", other_port, "m_other")
    ));
    config.push_str("\n[monitor.rules.forged_notifications]\nthreshold = 1\n");
    let daemon = Daemon::with_config(config);

    // One notice that fails verification, for m_demo: a critical alert about m_demo.
    let (status, _) = notify(&daemon, "{}", &"00".repeat(32)).await;
    assert_eq!(status, 400);
    let delivery = mine
        .wait_for("the alert", |event| event["type"] == "alert.raised")
        .await;
    delivery.verify_signature(SECRET);
    let event = delivery.json();
    assert_eq!(event["data"]["rule"], "forged_notifications");
    assert_eq!(event["data"]["subject"]["merchant_id"], "m_demo", "{event}");
    for _ in 0..100 {
        if daemon.metric("paygate_webhook_backlog").await == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        other.deliveries().is_empty(),
        "m_other's endpoint got m_demo's alert"
    );
}
