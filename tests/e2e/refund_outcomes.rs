//! Refunds whose outcome comes later (API.md §6, §7): resolved by the janitor's query or by
//! the provider's notice, idempotently, with the payment's totals kept.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

async fn refund(daemon: &Daemon, payment_id: &str, key: &str, amount: &str) -> (u16, Value) {
    let (status, _, body) = daemon
        .post_idempotent(
            &format!("/v1/payments/{payment_id}/refunds"),
            ERP,
            Some(key),
            &json!({"amount": amount}),
        )
        .await;
    (status, body)
}

async fn refund_status(daemon: &Daemon, id: &str) -> String {
    let (_, body) = daemon.get(&format!("/v1/refunds/{id}"), Some(ERP)).await;
    body["status"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_pending_refund_is_resolved_by_the_janitor() {
    let daemon = Daemon::with_config(
        default_config_text().replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200"),
    );
    let (_, _, paid) = daemon.pay("p", barcode("10.00")).await;
    let id = paid["id"].as_str().unwrap();
    // .72 stays pending at the mock until queried.
    let (status, pending) = refund(&daemon, id, "r1", "2.72").await;
    assert_eq!(
        (status, pending["status"].as_str()),
        (201, Some("pending")),
        "{pending}"
    );
    let refund_id = pending["id"].as_str().unwrap();
    // The lost answer (.73): 504, then resolved the same way.
    let (status, lost) = refund(&daemon, id, "r2", "1.73").await;
    assert_eq!(status, 504, "{lost}");
    for _ in 0..100 {
        if refund_status(&daemon, refund_id).await == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refund_status(&daemon, refund_id).await, "succeeded");
    let mut payment = Value::Null;
    for _ in 0..100 {
        payment = daemon.get(&format!("/v1/payments/{id}"), Some(ERP)).await.1;
        if payment["amount_refunded"] == "4.45" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        payment["amount_refunded"], "4.45",
        "both refunds counted once: {payment}"
    );
    // The retry of the lost one gets its resolved refund.
    let (status, retried) = refund(&daemon, id, "r2", "1.73").await;
    assert_eq!(
        (status, retried["status"].as_str()),
        (201, Some("succeeded")),
        "{retried}"
    );
}

#[tokio::test]
async fn refund_notices_apply_once_and_contradictions_change_nothing() {
    // The janitor stays away: the notices alone decide.
    let daemon = Daemon::with_config(
        default_config_text().replace("janitor_interval_ms = 3000", "janitor_interval_ms = 600000"),
    );
    let (_, _, paid) = daemon.pay("p", barcode("10.00")).await;
    let id = paid["id"].as_str().unwrap();
    let (_, pending) = refund(&daemon, id, "r1", "3.72").await;
    let refund_id = pending["id"].as_str().unwrap();

    let (failed, failed_signature) = signed(&json!({"refund_id": refund_id, "status": "failed"}));
    assert_eq!(notify(&daemon, &failed, &failed_signature).await.0, 200);
    assert_eq!(refund_status(&daemon, refund_id).await, "failed");
    // The failed refund releases its amount: the whole 10.00 can be refunded again.
    assert_eq!(
        notify(&daemon, &failed, &failed_signature).await.0,
        200,
        "a duplicate is acknowledged"
    );
    let (_, payment) = daemon.get(&format!("/v1/payments/{id}"), Some(ERP)).await;
    assert_eq!(payment["amount_refunded"], "0.00");
    let (succeeded, succeeded_signature) = signed(&json!({"refund_id": refund_id,
        "status": "succeeded", "amount": "3.72", "currency": "CNY"}));
    assert_eq!(
        notify(&daemon, &succeeded, &succeeded_signature).await.0,
        200,
        "late contradiction acknowledged"
    );
    assert_eq!(
        refund_status(&daemon, refund_id).await,
        "failed",
        "terminal stays"
    );
    let (status, whole) = refund(&daemon, id, "r2", "10.00").await;
    assert_eq!(status, 201, "{whole}");

    // Forged: refused, nothing changes.
    let (_, other) = refund(&daemon, id, "r3", "0.01").await;
    assert_eq!(other["error"]["code"], "refund_exceeds_payment");
    let (text, _) = signed(&json!({"refund_id": refund_id, "status": "succeeded",
                                   "amount": "3.72", "currency": "CNY"}));
    let (status, _) = notify(&daemon, &text, &"00".repeat(32)).await;
    assert_eq!(status, 400);
    // The contradiction was recorded as an event for the monitor.
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("paygate_events_total{kind=\"refund.conflict\"} 1"),
        "{metrics}"
    );
}
