//! Payments, refunds, idempotency and notifications (API.md §4–§7) against the real daemon
//! with the mock wallet.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// The terminal these tests' barcode payments come from.
const TILL: &str = "T-07";

/// Asserts that every line of `want` is a line of `/metrics`.
async fn assert_metrics(daemon: &Daemon, want: &[&str]) {
    let metrics = daemon.metrics().await;
    for line in want {
        assert!(
            metrics.lines().any(|l| l == *line),
            "no `{line}` in:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_barcode_payment_succeeds_at_once_and_a_qr_payment_waits() {
    let daemon = Daemon::start();
    let (status, replayed, payment) = daemon.pay("k-barcode", barcode_at(TILL, "12.50")).await;
    assert_eq!((status, replayed), (201, false), "{payment}");
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(
        payment["provider"], "mock",
        "detected from the payment code"
    );
    assert_eq!(payment["amount"], "12.50");
    assert_eq!(payment["amount_refunded"], "0.00");
    assert!(payment["id"].as_str().unwrap().starts_with("pay_"));
    assert_eq!(
        payment["provider_reference"],
        format!("mock_{}", payment["id"].as_str().unwrap())
    );

    let (status, _, payment) = daemon.pay("k-qr", qr("8.00")).await;
    assert_eq!(status, 201);
    assert_eq!(payment["status"], "pending");
    assert!(
        payment["qr_code"]
            .as_str()
            .unwrap()
            .starts_with("mock://pay/")
    );
    let (status, fetched) = daemon
        .get(
            &format!("/v1/payments/{}", payment["id"].as_str().unwrap()),
            Some(POS),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched, payment);
}

#[tokio::test]
async fn each_decline_code_fails_the_payment_with_402() {
    let daemon = Daemon::start();
    for (cents, code) in [
        ("51", "insufficient_funds"),
        ("52", "auth_code_invalid"),
        ("53", "auth_code_expired"),
        ("54", "payer_cancelled"),
        ("55", "risk_rejected"),
        ("56", "provider_declined"),
    ] {
        let (status, _, body) = daemon
            .pay(
                &format!("decline-{cents}"),
                barcode_at(TILL, &format!("3.{cents}")),
            )
            .await;
        assert_eq!(status, 402, "{body}");
        assert_eq!(body["error"]["type"], "provider_error");
        assert_eq!(body["error"]["code"], code);
        assert_eq!(body["error"]["payment"]["status"], "failed");
        assert_eq!(body["error"]["payment"]["failure"]["code"], code);
    }
    // Declines are counted from the payment inside the error.
    assert_metrics(
        &daemon,
        &["paygate_payments_total{method=\"barcode\",provider=\"mock\",status=\"failed\"} 6"],
    )
    .await;
}

#[tokio::test]
async fn idempotency_rows_of_section_4() {
    let daemon = Daemon::start();
    // Missing key.
    let (status, _, body) = daemon
        .post_idempotent("/v1/payments", POS, None, &qr("1.00"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "idempotency_key_missing");
    // Same key, same request: the first response byte for byte, flagged as a replay.
    let first = daemon
        .client
        .post(daemon.url("/v1/payments"))
        .bearer_auth(POS)
        .header("content-type", "application/json")
        .header("idempotency-key", "same")
        .body(qr("1.00").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first_body = first.bytes().await.unwrap();
    // Key order and spacing do not make a different request.
    let reordered = r#"{ "provider":"mock", "method":"qr", "currency":"CNY", "amount":"1.00", "merchant_id":"m_demo" }"#;
    let again = daemon
        .client
        .post(daemon.url("/v1/payments"))
        .bearer_auth(POS)
        .header("content-type", "application/json")
        .header("idempotency-key", "same")
        .body(reordered)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.bytes().await.unwrap(), first_body);
    // Same key, different request.
    let (status, _, body) = daemon.pay("same", qr("2.00")).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["type"], "idempotency_error");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    // Keys are scoped to the API key: the erp key's "same" is another key.
    let (status, replayed, _) = daemon
        .post_idempotent("/v1/payments", ERP, Some("same"), &qr("2.00"))
        .await;
    assert_eq!((status, replayed), (201, false));
    // Only one payment was made for the replayed key.
    let (_, list) = daemon
        .get("/v1/payments?merchant_id=m_demo", Some(ERP))
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    // ... and the metrics saw it all.
    assert_metrics(
        &daemon,
        &[
            "paygate_idempotency_replays_total 1",
            "paygate_idempotency_conflicts_total{code=\"idempotency_key_reused\"} 1",
            "paygate_payments_total{method=\"qr\",provider=\"mock\",status=\"pending\"} 2",
        ],
    )
    .await;
    if !sled_only("the group committer's flushes and its writer") {
        return;
    }
    let metrics = daemon.metrics().await;
    let flushes = metric_value(&metrics, "paygate_store_flushes_total").unwrap();
    assert!(
        flushes >= 2.0,
        "payments are flushed before and after the provider call"
    );
    let writer_busy = metric_value(&metrics, "paygate_store_writer_busy_seconds_total")
        .unwrap_or_else(|| panic!("no writer-busy counter in:\n{metrics}"));
    assert!(
        writer_busy > 0.0,
        "the payments' store changes took the writer: {writer_busy}"
    );
}

#[tokio::test]
async fn a_key_still_in_progress_answers_409() {
    let daemon = Daemon::start();
    // The mock answers amounts ending in .64 after 1.5 s.
    let slow = {
        let client = daemon.client.clone();
        let url = daemon.url("/v1/payments");
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(POS)
                .header("content-type", "application/json")
                .header("idempotency-key", "slow")
                .body(barcode_at(TILL, "1.64").to_string())
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let mut saw_409 = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let (status, _, body) = daemon.pay("slow", barcode_at(TILL, "1.64")).await;
        if status == 409 {
            assert_eq!(body["error"]["code"], "idempotency_in_progress");
            saw_409 = true;
            break;
        }
    }
    assert!(saw_409, "a concurrent retry was not answered 409");
    assert_eq!(slow.await.unwrap(), 201);
    let (status, replayed, body) = daemon.pay("slow", barcode_at(TILL, "1.64")).await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(body["status"], "succeeded");
}

#[tokio::test]
async fn order_ids_are_unique_per_merchant() {
    let daemon = Daemon::start();
    let mut body = qr("5.00");
    body["order_id"] = json!("POS-1");
    assert_eq!(daemon.pay("o1", body.clone()).await.0, 201);
    let (status, _, error) = daemon.pay("o2", body).await;
    assert_eq!(status, 409);
    assert_eq!(error["error"]["code"], "order_id_in_use");
    assert_eq!(error["error"]["param"], "order_id");
}

#[tokio::test]
async fn bad_payment_requests_are_clear_400s_and_422s() {
    let daemon = Daemon::start();
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"merchant_id":"m_demo","amount":12.5,"currency":"CNY","method":"qr","provider":"mock"}),
            400,
            "parameter_invalid",
            "amount",
        ),
        (
            json!({"merchant_id":"m_demo","amount":"12.345","currency":"CNY","method":"qr","provider":"mock"}),
            400,
            "amount_invalid",
            "amount",
        ),
        (
            json!({"merchant_id":"m_demo","amount":"0","currency":"CNY","method":"qr","provider":"mock"}),
            400,
            "amount_invalid",
            "amount",
        ),
        (
            json!({"merchant_id":"m_demo","amount":"-1","currency":"CNY","method":"qr","provider":"mock"}),
            400,
            "amount_invalid",
            "amount",
        ),
        (
            json!({"merchant_id":"m_demo","amount":"100000.01","currency":"CNY","method":"qr","provider":"mock"}),
            400,
            "amount_invalid",
            "amount",
        ),
        (
            json!({"merchant_id":"m_demo","amount":"1","currency":"XYZ","method":"qr","provider":"mock"}),
            400,
            "currency_invalid",
            "currency",
        ),
        (
            json!({"merchant_id":"m_demo","amount":"1.5","currency":"JPY","method":"qr","provider":"mock"}),
            400,
            "amount_invalid",
            "amount",
        ),
        (
            json!({"merchant_id":"m_demo","amount":"1","currency":"CNY","method":"cash","provider":"mock"}),
            400,
            "parameter_invalid",
            "method",
        ),
        (
            json!({"merchant_id":"m_demo","amount":"1","currency":"CNY","method":"barcode"}),
            400,
            "parameter_missing",
            "auth_code",
        ),
        (
            json!({"merchant_id":"m_demo","amount":"1","currency":"CNY","method":"barcode","auth_code":"12ab"}),
            400,
            "auth_code_invalid",
            "auth_code",
        ),
        (
            json!({"merchant_id":"m_demo","amount":"1","currency":"CNY","method":"qr","provider":"mock","expires_in":5}),
            400,
            "parameter_invalid",
            "expires_in",
        ),
        (
            json!({"merchant_id":"m_demo","amount":"1","currency":"CNY","method":"qr","provider":"mock","amuont":"1"}),
            400,
            "parameter_unknown",
            "amuont",
        ),
        (
            json!({"merchant_id":"m_demo","amount":"1","currency":"CNY","method":"qr","provider":"mock","order_id":"bad id with spaces"}),
            400,
            "parameter_invalid",
            "order_id",
        ),
    ];
    for (i, (body, status, code, param)) in cases.into_iter().enumerate() {
        let (got, _, error) = daemon.pay(&format!("bad-{i}"), body.clone()).await;
        assert_eq!(got, status, "{body}: {error}");
        assert_eq!(error["error"]["code"], code, "{body}: {error}");
        assert_eq!(error["error"]["param"], param, "{body}: {error}");
    }
    // Unknown wallet code and an inactive wallet name the merchant's wallets.
    let mut unknown_code = barcode_at(TILL, "1.00");
    unknown_code["auth_code"] = json!("170000000000000000");
    let (status, _, error) = daemon.pay("w1", unknown_code).await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["code"], "wallet_not_supported");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("mock") && message.contains("alipay"),
        "{error}"
    );
    let mut inactive = qr("1.00");
    inactive["provider"] = json!("applepay");
    assert_eq!(daemon.pay("w2", inactive).await.0, 422);
    // Out-of-scope merchants are refused before anything else.
    let mut other = qr("1.00");
    other["merchant_id"] = json!("m_other");
    assert_eq!(daemon.pay("w3", other).await.0, 403);
}

async fn succeeded_payment(daemon: &Daemon, key: &str, amount: &str) -> String {
    let (status, _, payment) = daemon.pay(key, barcode_at(TILL, amount)).await;
    assert_eq!(
        (status, payment["status"].as_str()),
        (201, Some("succeeded")),
        "{payment}"
    );
    payment["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn partial_and_multiple_refunds_up_to_the_amount() {
    let daemon = Daemon::start();
    let id = succeeded_payment(&daemon, "pay-r", "10.00").await;
    let refunds = format!("/v1/payments/{id}/refunds");
    let (status, _, first) = daemon
        .post_idempotent(
            &refunds,
            ERP,
            Some("r1"),
            &json!({"amount": "4.00", "reason": "one cup"}),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        (first["status"].as_str(), first["amount"].as_str()),
        (Some("succeeded"), Some("4.00"))
    );
    let (status, _, error) = daemon
        .post_idempotent(&refunds, ERP, Some("r2"), &json!({"amount": "6.01"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["code"], "refund_exceeds_payment");
    // No amount: the whole remaining 6.00.
    let (status, _, rest) = daemon
        .post_idempotent(&refunds, ERP, Some("r3"), &json!({}))
        .await;
    assert_eq!(
        (status, rest["amount"].as_str()),
        (201, Some("6.00")),
        "{rest}"
    );
    let (_, payment) = daemon.get(&format!("/v1/payments/{id}"), Some(ERP)).await;
    assert_eq!(payment["amount_refunded"], "10.00");
    // Nothing remains: a refund of "the rest" is refused and records nothing.
    let (status, _, error) = daemon
        .post_idempotent(&refunds, ERP, Some("r5"), &json!({}))
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("refund_exceeds_payment"))
    );
    let (_, list) = daemon.get(&refunds, Some(ERP)).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let (status, refund) = daemon
        .get(
            &format!("/v1/refunds/{}", first["id"].as_str().unwrap()),
            Some(ERP),
        )
        .await;
    assert_eq!(
        (status, refund["payment_id"].as_str()),
        (200, Some(id.as_str()))
    );
    // Tills may not refund.
    assert_eq!(
        daemon
            .post_idempotent(&refunds, POS, Some("r4"), &json!({"amount": "1.00"}))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn huge_refund_amounts_are_refused_with_a_400_not_a_panic() {
    // The money_parse fuzz target found that an 18-digit amount overflowed the minor units
    // (refunds have no configured maximum): the request's task panicked.
    let daemon = Daemon::start();
    let id = succeeded_payment(&daemon, "pay-huge", "10.00").await;
    let refunds = format!("/v1/payments/{id}/refunds");
    for (i, amount) in [
        "151101111111010100",
        "92233720368547758.07",
        "79228162514264337593543950335",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, _, error) = daemon
            .post_idempotent(
                &refunds,
                ERP,
                Some(&format!("huge-{i}")),
                &json!({ "amount": amount }),
            )
            .await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (400, Some("amount_invalid")),
            "{amount}: {error}"
        );
    }
    // The payment is untouched and the daemon still answers.
    let (status, payment) = daemon.get(&format!("/v1/payments/{id}"), Some(ERP)).await;
    assert_eq!(
        (status, payment["amount_refunded"].as_str()),
        (200, Some("0.00"))
    );
}

#[tokio::test]
async fn a_declined_refund_releases_its_amount() {
    let daemon = Daemon::start();
    let id = succeeded_payment(&daemon, "pay-d", "10.00").await;
    let refunds = format!("/v1/payments/{id}/refunds");
    let (status, _, error) = daemon
        .post_idempotent(&refunds, ERP, Some("d1"), &json!({"amount": "9.71"}))
        .await;
    assert_eq!(status, 402, "{error}");
    let (status, _, ok) = daemon
        .post_idempotent(&refunds, ERP, Some("d2"), &json!({"amount": "10.00"}))
        .await;
    assert_eq!(status, 201, "the failed refund no longer holds funds: {ok}");
    assert_metrics(
        &daemon,
        &[
            "paygate_refunds_total{provider=\"mock\",status=\"failed\"} 1",
            "paygate_refunds_total{provider=\"mock\",status=\"succeeded\"} 1",
        ],
    )
    .await;
}

#[tokio::test]
async fn pending_payments_cannot_be_refunded_and_succeeded_ones_cannot_be_cancelled() {
    let daemon = Daemon::start();
    let (_, _, pending) = daemon.pay("p", qr("3.00")).await;
    let id = pending["id"].as_str().unwrap();
    let (status, _, error) = daemon
        .post_idempotent(
            &format!("/v1/payments/{id}/refunds"),
            ERP,
            Some("x"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["code"], "payment_not_refundable");
    let (status, _, cancelled) = daemon
        .post_idempotent(
            &format!("/v1/payments/{id}/cancel"),
            POS,
            Some("c1"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );

    let paid = succeeded_payment(&daemon, "s", "3.00").await;
    let (status, _, error) = daemon
        .post_idempotent(
            &format!("/v1/payments/{paid}/cancel"),
            POS,
            Some("c2"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(error["error"]["code"], "payment_already_succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_refunds_never_exceed_the_payment() {
    let daemon = std::sync::Arc::new(Daemon::start());
    let id = succeeded_payment(&daemon, "pay-50", "10.00").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let daemon = daemon.clone();
        let path = format!("/v1/payments/{id}/refunds");
        tasks.push(tokio::spawn(async move {
            daemon
                .post_idempotent(
                    &path,
                    ERP,
                    Some(&format!("c{i}")),
                    &json!({"amount": "1.00"}),
                )
                .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        let (status, _, body) = task.await.unwrap();
        match status {
            201 => created += 1,
            422 => assert_eq!(body["error"]["code"], "refund_exceeds_payment"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 10, "exactly the amount was refunded");
    let (_, payment) = daemon.get(&format!("/v1/payments/{id}"), Some(ERP)).await;
    assert_eq!(payment["amount_refunded"], "10.00");
}

#[tokio::test]
async fn notifications_valid_duplicate_late_and_forged() {
    let daemon = Daemon::start();
    let (_, _, pending) = daemon.pay("n1", qr("7.00")).await;
    let id = pending["id"].as_str().unwrap();

    let (body, signature) = signed_notice(id, "succeeded", "7.00");
    assert_eq!(notify(&daemon, &body, &signature).await, (200, "OK".into()));
    let (_, payment) = daemon.get(&format!("/v1/payments/{id}"), Some(POS)).await;
    assert_eq!(payment["status"], "succeeded");

    // The same notice again is acknowledged and changes nothing.
    assert_eq!(notify(&daemon, &body, &signature).await.0, 200);
    // A late contradicting notice is acknowledged, changes nothing, and raises a conflict.
    let (late, late_signature) = signed_notice(id, "failed", "7.00");
    assert_eq!(notify(&daemon, &late, &late_signature).await.0, 200);
    let (_, payment) = daemon.get(&format!("/v1/payments/{id}"), Some(POS)).await;
    assert_eq!(payment["status"], "succeeded");

    // Forged: a wrong signature answers 400 and changes nothing.
    let (_, _, other) = daemon.pay("n2", qr("7.00")).await;
    let other_id = other["id"].as_str().unwrap();
    let (forged, _) = signed_notice(other_id, "succeeded", "7.00");
    let (status, _) = notify(&daemon, &forged, &"0".repeat(64)).await;
    assert_eq!(status, 400);
    let (_, still) = daemon
        .get(&format!("/v1/payments/{other_id}"), Some(POS))
        .await;
    assert_eq!(still["status"], "pending");

    // Unknown payments are acknowledged; unknown recipients are 404.
    let (ghost, ghost_signature) = signed_notice("pay_doesnotexist", "succeeded", "7.00");
    assert_eq!(notify(&daemon, &ghost, &ghost_signature).await.0, 200);
    let response = daemon
        .client
        .post(daemon.url("/v1/notify/applepay/m_demo"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(daemon.logs().contains("provider notice rejected"));
}

#[tokio::test]
async fn lists_filter_and_paginate_newest_first() {
    let daemon = Daemon::start();
    let mut ids = Vec::new();
    for i in 0..5 {
        let (_, _, p) = daemon
            .pay(
                &format!("l{i}"),
                if i % 2 == 0 {
                    qr("1.00")
                } else {
                    barcode_at(TILL, "1.00")
                },
            )
            .await;
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    let (_, page) = daemon
        .get("/v1/payments?merchant_id=m_demo&limit=2", Some(ERP))
        .await;
    let got: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()]);
    assert_eq!(page["has_more"], true);
    let (_, next) = daemon
        .get(
            &format!(
                "/v1/payments?merchant_id=m_demo&limit=2&starting_after={}",
                ids[3]
            ),
            Some(ERP),
        )
        .await;
    assert_eq!(next["data"][0]["id"], ids[2].as_str());
    let (_, succeeded) = daemon.get("/v1/payments?status=succeeded", Some(ERP)).await;
    assert_eq!(succeeded["data"].as_array().unwrap().len(), 2);
    let (status, _) = daemon.get("/v1/payments?status=weird", Some(ERP)).await;
    assert_eq!(status, 400);
    let (status, _) = daemon
        .get("/v1/payments?merchant_id=m_other", Some(ERP))
        .await;
    assert_eq!(status, 403);
    let (status, _) = daemon.get("/v1/payments", Some(POS)).await;
    assert_eq!(status, 403, "tills do not list");
    let (_, other) = daemon.get("/v1/payments", Some(OTHER_ERP)).await;
    assert_eq!(
        other["data"].as_array().unwrap().len(),
        0,
        "another merchant's key sees none"
    );
}

#[tokio::test]
async fn a_retry_after_kill_9_gets_the_original_result_without_a_second_payment() {
    let mut first = Daemon::start();
    let data_dir = first.data_dir();
    let (status, _, original) = first.pay("crash-1", barcode_at(TILL, "2.00")).await;
    assert_eq!(status, 201);
    signal(first.pid(), "KILL");
    let _ = first.wait(Duration::from_secs(5));
    let second = Daemon::with_config_on(default_config_text(), &data_dir);
    let (status, replayed, again) = second.pay("crash-1", barcode_at(TILL, "2.00")).await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(again, original);
    let (_, list) = second
        .get("/v1/payments?merchant_id=m_demo", Some(ERP))
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

/// Polls a payment until `want` or 10 s pass.
async fn wait_for_status(daemon: &Daemon, id: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (_, payment) = daemon.get(&format!("/v1/payments/{id}"), Some(POS)).await;
        if payment["status"] == want {
            return payment;
        }
        last = payment;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("payment {id} never became {want}: {last}");
}

#[tokio::test]
async fn the_janitor_resolves_pending_and_unknown_payments_and_cancels_stale_ones() {
    let config = default_config_text()
        .replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200")
        .replace("barcode_timeout_ms = 60000", "barcode_timeout_ms = 1500");
    assert!(
        config.contains("janitor_interval_ms = 200")
            && config.contains("barcode_timeout_ms = 1500")
    );
    let daemon = Daemon::with_config(config);

    // "User paying", then paid: the janitor's query finds it succeeded.
    let (status, _, paying) = daemon.pay("j1", barcode_at(TILL, "1.61")).await;
    assert_eq!(
        (status, paying["status"].as_str()),
        (201, Some("pending")),
        "{paying}"
    );
    wait_for_status(&daemon, paying["id"].as_str().unwrap(), "succeeded").await;

    // Never confirmed: cancelled at the provider after the barcode timeout.
    let (_, _, stuck) = daemon.pay("j2", barcode_at(TILL, "1.60")).await;
    wait_for_status(&daemon, stuck["id"].as_str().unwrap(), "cancelled").await;

    // The provider's answer was lost: 504, then the janitor learns the outcome, and the
    // client's retry with the same key gets it.
    let (status, _, lost) = daemon.pay("j3", barcode_at(TILL, "1.62")).await;
    assert_eq!(status, 504, "{lost}");
    assert_eq!(lost["error"]["code"], "provider_timeout");
    let (_, list) = daemon
        .get("/v1/payments?merchant_id=m_demo&limit=1", Some(ERP))
        .await;
    let id = list["data"][0]["id"].as_str().unwrap().to_owned();
    wait_for_status(&daemon, &id, "succeeded").await;
    let (status, replayed, answer) = daemon.pay("j3", barcode_at(TILL, "1.62")).await;
    assert_eq!((status, replayed), (201, false), "{answer}");
    assert_eq!(
        (answer["id"].as_str(), answer["status"].as_str()),
        (Some(id.as_str()), Some("succeeded"))
    );
    let (status, replayed, _) = daemon.pay("j3", barcode_at(TILL, "1.62")).await;
    assert_eq!((status, replayed), (201, true));
}

#[tokio::test]
async fn a_payment_cut_off_by_kill_9_mid_call_is_resolved_and_the_retry_gets_it() {
    let config = default_config_text()
        .replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200")
        .replace("barcode_timeout_ms = 60000", "barcode_timeout_ms = 5000");
    let mut first = Daemon::with_config(config.clone());
    let data_dir = first.data_dir();
    // The mock answers .64 after 1.5 s: kill the daemon while the plugin call runs.
    let request = {
        let client = first.client.clone();
        let url = first.url("/v1/payments");
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(POS)
                .header("content-type", "application/json")
                .header("idempotency-key", "cut-off")
                .body(barcode_at(TILL, "4.64").to_string())
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(first.pid(), "KILL");
    let _ = first.wait(Duration::from_secs(5));
    assert!(
        request.await.unwrap().is_err(),
        "the client never got an answer"
    );

    // After the restart, nobody retries at first: the janitor asks the provider.
    let second = Daemon::with_config_on(config, &data_dir);
    let (_, list) = second
        .get("/v1/payments?merchant_id=m_demo", Some(ERP))
        .await;
    let payments = list["data"].as_array().unwrap();
    assert_eq!(
        payments.len(),
        1,
        "the payment was recorded before the provider call"
    );
    let id = payments[0]["id"].as_str().unwrap().to_owned();
    wait_for_status(&second, &id, "succeeded").await;
    // The client's retry with its key gets that same payment, once.
    let (status, _, answer) = second.pay("cut-off", barcode_at(TILL, "4.64")).await;
    assert_eq!(
        (status, answer["id"].as_str()),
        (201, Some(id.as_str())),
        "{answer}"
    );
    let (_, list) = second
        .get("/v1/payments?merchant_id=m_demo", Some(ERP))
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn finished_idempotency_keys_expire_after_the_retention() {
    let daemon = Daemon::with_config(
        default_config_text()
            .replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200")
            .replace(
                "idempotency_retention_s = 86400",
                "idempotency_retention_s = 1",
            ),
    );
    let (status, _, first) = daemon.pay("expiring", barcode_at(TILL, "1.00")).await;
    assert_eq!(status, 201);
    // Within the retention: the same key for another request is refused.
    let (status, _, _) = daemon.pay("expiring", barcode_at(TILL, "2.00")).await;
    assert_eq!(status, 422);
    // After it, the key is free again: a new payment.
    let mut answer = (0, Value::Null);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, _, body) = daemon.pay("expiring", barcode_at(TILL, "2.00")).await;
        answer = (status, body);
        if status == 201 {
            break;
        }
    }
    assert_eq!(answer.0, 201, "{}", answer.1);
    assert_ne!(answer.1["id"], first["id"]);
}

#[tokio::test]
async fn an_unpaid_qr_payment_expires_and_is_closed_at_the_provider() {
    let daemon = Daemon::with_config(
        default_config_text()
            .replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200")
            .replace("qr_expires_in_s = 7200", "qr_expires_in_s = 1"),
    );
    // .60: the payer never pays.
    let (status, _, payment) = daemon.pay("qr-exp", qr("5.60")).await;
    assert_eq!((status, payment["status"].as_str()), (201, Some("pending")));
    assert!(
        payment["expires_at"].is_string(),
        "qr codes expire by default"
    );
    let expired = wait_for_status(&daemon, payment["id"].as_str().unwrap(), "expired").await;
    assert_eq!(expired["failure"], Value::Null);
    // An expired payment cannot be refunded, and cancelling it changes nothing.
    let id = payment["id"].as_str().unwrap();
    let (status, _, body) = daemon
        .post_idempotent(
            &format!("/v1/payments/{id}/cancel"),
            POS,
            Some("qc"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("expired")),
        "{body}"
    );
}

#[tokio::test]
async fn the_relaxed_flush_is_warned_about_and_still_keeps_payments_across_a_kill() {
    // The shipped default syncs to stable storage; the relaxed mode must be asked for.
    assert!(default_config_text().contains("\nfdatasync = true\n"));
    let config = default_config_text().replace("\nfdatasync = true\n", "\nfdatasync = false\n");
    assert!(config.contains("fdatasync = false"));
    let mut first = Daemon::with_config(config.clone());
    let (status, _, payment) = first.pay("sync-1", barcode_at(TILL, "6.00")).await;
    assert_eq!(
        (status, payment["status"].as_str()),
        (201, Some("succeeded"))
    );
    signal(first.pid(), "KILL");
    let _ = first.wait(Duration::from_secs(5));
    let second = Daemon::with_config_on(config, &first.data_dir());
    let (status, _, replay) = second.pay("sync-1", barcode_at(TILL, "6.00")).await;
    assert_eq!(status, 201);
    assert_eq!(replay["id"], payment["id"]);
    let logs = second.logs();
    assert!(logs.contains("[store] fdatasync = false"), "{logs}");
    assert!(!Daemon::start().logs().contains("fdatasync = false"));
}
