//! Security findings, each attacked as a hostile client would: a validly signed notice that
//! names another merchant's or wallet's object, stale notices, duplicate JSON keys, the
//! contract's error model on every extractor, files readable by others, terminal blocks
//! walked around, the cashier's wallet choice posted from another origin, a tampered plugin
//! cache.

use std::time::Duration;

use serde_json::{Value, json};

use crate::onboarding::materials;
use crate::support::*;

/// `m_other`'s own mock-wallet secret (the demo merchant's is `demo-notify-secret`).
const OTHER_SECRET: &str = "other-notify-secret";

/// The test config, with a mock wallet for `m_other` under its own notify secret, and the
/// janitor kept away so that only notices move things.
fn config_with_other_wallet() -> String {
    format!(
        "{}\n[merchants.providers.mock]\nsettings = {{}}\nkeys = {{ notify_secret = \"inline:{OTHER_SECRET}\" }}\n",
        default_config_text()
    )
    .replace("janitor_interval_ms = 3000", "janitor_interval_ms = 600000")
}

/// Creates an onboarded (sub-)merchant and returns its id.
async fn sub_merchant(daemon: &Daemon, key: &str, name: &str) -> String {
    let (status, _, merchant) = daemon
        .post_idempotent("/v1/merchants", ADMIN, Some(key), &materials(name))
        .await;
    assert_eq!(status, 201, "{merchant}");
    merchant["id"].as_str().unwrap().to_owned()
}

async fn apply(daemon: &Daemon, merchant: &str, provider: &str, key: &str) -> Value {
    daemon
        .post_idempotent(
            &format!("/v1/merchants/{merchant}/activations"),
            ADMIN,
            Some(key),
            &json!({"provider": provider}),
        )
        .await
        .2
}

/// Polls the alerts of `rule` until one names `object_id` in its evidence (10 s at most).
async fn alert_about(daemon: &Daemon, rule: &str, object_id: &str) -> Value {
    for _ in 0..100 {
        let alerts = daemon
            .get(&format!("/v1/alerts?rule={rule}"), Some(ADMIN))
            .await
            .1;
        if let Some(alert) = alerts["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["evidence"]["object_id"] == object_id)
        {
            return alert.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {rule} alert about {object_id}");
}

/// Finding 1: a notice signed with `m_other`'s own secret, posted to `m_other`'s URL,
/// naming a sub-merchant's Alipay application, a sub-merchant's mock application and bank
/// account, or the demo merchant's payment: acknowledged, nothing changes, counted, alerted.
#[tokio::test]
async fn a_notice_changes_only_its_own_merchants_and_wallets_objects() {
    let daemon = Daemon::with_config(config_with_other_wallet());
    let shop = sub_merchant(&daemon, "sec-m1", "Tea House").await;
    // An Alipay application: recorded before the provider is asked (no simulator runs here,
    // so it stays submitted).
    let alipay = apply(&daemon, &shop, "alipay", "sec-a1").await;
    let alipay_act = daemon
        .get(&format!("/v1/merchants/{shop}/activations"), Some(ADMIN))
        .await
        .1["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["provider"] == "alipay")
        .unwrap_or_else(|| panic!("no alipay activation: {alipay}"))
        .clone();
    let alipay_id = alipay_act["id"].as_str().unwrap().to_owned();
    let alipay_path = format!("/v1/merchants/{shop}/activations/{alipay_id}");
    let before = daemon.get(&alipay_path, Some(ADMIN)).await.1;

    // m_other's secret, m_other's URL, the shop's Alipay application: refused.
    let forged = json!({"activation_id": alipay_id, "status": "active"});
    assert_eq!(
        mock_notice(&daemon, "m_other", OTHER_SECRET, &forged).await,
        200
    );
    // The platform's own mock secret, the shop's own URL, but another wallet's application.
    assert_eq!(
        mock_notice(&daemon, &shop, DEMO_NOTIFY_SECRET, &forged).await,
        200
    );
    let after = daemon.get(&alipay_path, Some(ADMIN)).await.1;
    assert_eq!(after["status"], before["status"], "{after}");
    assert_eq!(after["provider_reference"], before["provider_reference"]);
    let merchant = daemon
        .get(&format!("/v1/merchants/{shop}"), Some(ADMIN))
        .await
        .1;
    assert_ne!(merchant["status"], "active", "{merchant}");
    let alert = alert_about(&daemon, "report_mismatch", &alipay_id).await;
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert_eq!(alert["evidence"]["reason"], "foreign_object", "{alert}");

    // The shop's mock application, under review: a notice from m_other cannot approve it,
    // the shop's own can.
    let mock_act = apply(&daemon, &shop, "mock", "sec-a2").await;
    let mock_id = mock_act["id"].as_str().unwrap().to_owned();
    let mock_path = format!("/v1/merchants/{shop}/activations/{mock_id}");
    assert_eq!(mock_act["status"], "under_review");
    let approve = json!({"activation_id": mock_id, "status": "active"});
    assert_eq!(
        mock_notice(&daemon, "m_other", OTHER_SECRET, &approve).await,
        200
    );
    assert_eq!(
        daemon.get(&mock_path, Some(ADMIN)).await.1["status"],
        "under_review"
    );
    alert_about(&daemon, "report_mismatch", &mock_id).await;
    assert_eq!(
        mock_notice(&daemon, &shop, DEMO_NOTIFY_SECRET, &approve).await,
        200
    );
    assert_eq!(
        daemon.get(&mock_path, Some(ADMIN)).await.1["status"],
        "active"
    );

    // A stale notice never moves a finished application backwards.
    let reject = json!({"activation_id": mock_id, "status": "rejected", "reason": "stale"});
    assert_eq!(
        mock_notice(&daemon, &shop, DEMO_NOTIFY_SECRET, &reject).await,
        200
    );
    let now = daemon.get(&mock_path, Some(ADMIN)).await.1;
    assert_eq!(
        (now["status"].as_str(), now["rejection_reason"].as_str()),
        (Some("active"), None),
        "{now}"
    );
    let under_review = json!({"activation_id": mock_id, "status": "under_review"});
    mock_notice(&daemon, &shop, DEMO_NOTIFY_SECRET, &under_review).await;
    assert_eq!(
        daemon.get(&mock_path, Some(ADMIN)).await.1["status"],
        "active"
    );

    // The shop's bank account: m_other's notice cannot fail it.
    let (status, _, account) = daemon
        .post_idempotent(
            &format!("/v1/merchants/{shop}/bank_accounts"),
            ADMIN,
            Some("sec-ba"),
            &json!({"provider": "mock", "account_holder": "Tea House",
                    "account_number": "6217000010012345678901", "bank_name": "Bank of Example"}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let ba = account["id"].as_str().unwrap().to_owned();
    let ba_path = format!("/v1/merchants/{shop}/bank_accounts/{ba}");
    let before = daemon.get(&ba_path, Some(ADMIN)).await.1;
    let failed = json!({"bank_account_id": ba, "status": "failed", "reason": "forged"});
    assert_eq!(
        mock_notice(&daemon, "m_other", OTHER_SECRET, &failed).await,
        200
    );
    let after = daemon.get(&ba_path, Some(ADMIN)).await.1;
    assert_eq!(after["status"], before["status"], "{after}");
    assert_eq!(after["failure_reason"], Value::Null, "{after}");
    alert_about(&daemon, "report_mismatch", &ba).await;

    // The demo merchant's pending payment: m_other's notice cannot make it succeed.
    let (status, _, payment) = daemon
        .post_idempotent("/v1/payments", POS, Some("sec-p1"), &qr("12.50"))
        .await;
    assert_eq!((status, payment["status"].as_str()), (201, Some("pending")));
    let pay = payment["id"].as_str().unwrap().to_owned();
    let paid = json!({"payment_id": pay, "status": "succeeded", "amount": "12.50",
                      "currency": "CNY"});
    assert_eq!(
        mock_notice(&daemon, "m_other", OTHER_SECRET, &paid).await,
        200
    );
    assert_eq!(
        daemon
            .get(&format!("/v1/payments/{pay}"), Some(ERP))
            .await
            .1["status"],
        "pending"
    );
    alert_about(&daemon, "report_mismatch", &pay).await;
    let refused = daemon
        .metric(
            "paygate_provider_reports_refused_total{provider=\"mock\",reason=\"foreign_object\"}",
        )
        .await
        .unwrap_or(0.0);
    assert_eq!(refused, 5.0, "five foreign updates were counted");
    // The demo merchant's own notice still works.
    assert_eq!(
        mock_notice(&daemon, "m_demo", DEMO_NOTIFY_SECRET, &paid).await,
        200
    );
    assert_eq!(
        daemon
            .get(&format!("/v1/payments/{pay}"), Some(ERP))
            .await
            .1["status"],
        "succeeded"
    );
}

/// Finding 7: a repeated key is refused naming the field, at any depth; nothing is created.
#[tokio::test]
async fn duplicate_json_keys_are_refused_naming_the_field() {
    let daemon = Daemon::start();
    let send = |body: &'static str, key: &'static str| {
        let daemon = &daemon;
        async move {
            let response = daemon
                .client
                .post(daemon.url("/v1/payments"))
                .bearer_auth(POS)
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = send(
        r#"{"merchant_id":"m_demo","amount":"99.00","amount":"0.01","currency":"CNY","method":"qr","provider":"mock"}"#,
        "dup-1",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "parameter_duplicate", "{body}");
    assert_eq!(body["error"]["param"], "amount", "{body}");
    let (status, body) = send(
        r#"{"merchant_id":"m_demo","amount":"1.00","currency":"CNY","method":"qr","provider":"mock","metadata":{"k":"a","k":"b"}}"#,
        "dup-2",
    )
    .await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("metadata.k")),
        "{body}"
    );
    let listed = daemon
        .get("/v1/payments?merchant_id=m_demo", Some(ERP))
        .await
        .1;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(0), "{listed}");
    // The key was not spent: the same key with a well-formed body pays.
    let (status, body) = send(
        r#"{"merchant_id":"m_demo","amount":"99.00","currency":"CNY","method":"qr","provider":"mock"}"#,
        "dup-1",
    )
    .await;
    assert_eq!(
        (status, body["amount"].as_str()),
        (201, Some("99.00")),
        "{body}"
    );
}

/// Finding 8: a caller whose role may not make a request learns nothing of its body's shape.
#[tokio::test]
async fn the_role_is_checked_before_the_body() {
    let daemon = Daemon::start();
    let garbage = json!({"no_such_field": 1});
    for (path, key) in [
        ("/v1/merchants", ERP),
        ("/v1/merchants/m_demo/activations", POS),
        ("/v1/merchants/m_demo/bank_accounts", POS),
        ("/v1/payments/pay_x/refunds", POS),
        ("/v1/alerts/al_x/ack", ERP),
    ] {
        let (status, _, body) = daemon
            .post_idempotent(path, key, Some("role-1"), &garbage)
            .await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["type"], "permission_error", "{path}: {body}");
    }
    // With the right role, the same body is refused for its shape.
    let (status, _, body) = daemon
        .post_idempotent("/v1/merchants", ADMIN, Some("role-2"), &garbage)
        .await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("no_such_field")),
        "{body}"
    );
}

/// Finding 8: every extractor answers in the error model (JSON), not axum's plain text.
#[tokio::test]
async fn bad_paths_and_oversized_bodies_answer_in_the_error_model() {
    let daemon = Daemon::with_config(
        default_config_text().replace("body_bytes_max = 65536", "body_bytes_max = 1024"),
    );
    for request in [
        "GET /v1/payments/%FF%FE HTTP/1.1\r\nhost: x\r\nauthorization: Bearer pg_demo_erp\r\nconnection: close\r\n\r\n".to_owned(),
        "POST /v1/notify/mock/%FF HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".to_owned(),
        "GET /pay/%C3%28 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_owned(),
    ] {
        let answer = daemon.raw(request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{request}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("content-type: application/json"), "{answer}");
        assert!(answer.contains("\"invalid_request_error\""), "{answer}");
    }
    let big = "x".repeat(4096);
    for path in [
        "/v1/notify/mock/m_demo",
        "/pay/pay_0000000000000000000000000/wallet",
    ] {
        let (status, body) = daemon
            .post_raw(
                path,
                None,
                Some("application/x-www-form-urlencoded"),
                big.clone(),
            )
            .await;
        assert_eq!(status, 413, "{path}: {body}");
        assert_eq!(body["error"]["code"], "body_too_large", "{path}: {body}");
    }
}

/// Finding 8: the data dir and the files in it are the daemon user's alone.
#[tokio::test]
async fn data_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let daemon = Daemon::start();
    let (status, _, _) = daemon
        .post_idempotent("/v1/payments", POS, Some("perm-1"), &barcode("8.00"))
        .await;
    assert_eq!(status, 201);
    let dir = daemon.data_dir();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let mut files = 0;
    let mut stack = vec![dir];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(
                mode(&path) & 0o077,
                0,
                "{} is open to others",
                path.display()
            );
            files += 1;
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    // On PostgreSQL the data dir keeps no data (here not even the plugin cache, which the
    // tests share): only its mode is checked.
    assert!(files > 2 || on_postgres(), "the store wrote files");
}

/// Finding 5: rotating or omitting the terminal id does not walk around card testing: the
/// key's count across terminals blocks the key.
#[tokio::test]
async fn card_testing_across_terminals_blocks_the_api_key() {
    let daemon = Daemon::with_config(format!(
        "{}\n[monitor.rules.card_testing]\nthreshold = 3\nfactor = 2\n",
        default_config_text()
    ));
    let pay = |n: usize, terminal: Option<String>| {
        let daemon = &daemon;
        async move {
            let mut body = qr("1.00");
            if let Some(terminal) = terminal {
                body["terminal_id"] = json!(terminal);
            }
            daemon
                .post_idempotent("/v1/payments", POS, Some(&format!("ct-{n}")), &body)
                .await
        }
    };
    // Two small payments per terminal (under the terminal's threshold of 3), a new terminal
    // each time, and some naming none.
    for n in 0..6 {
        let terminal = (n % 3 != 2).then(|| format!("T{n}"));
        let (status, _, body) = pay(n, terminal).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut refused = Value::Null;
    for n in 6..60 {
        let (status, _, body) = pay(n, Some(format!("fresh-{n}"))).await;
        if status == 403 {
            refused = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused["error"]["code"], "api_key_blocked", "{refused}");
    let (status, _, body) = pay(99, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("api_key_blocked"))
    );
    let blocks = daemon.get("/v1/blocks", Some(ADMIN)).await.1;
    let block = blocks["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "api_key")
        .unwrap_or_else(|| panic!("no key block: {blocks}"))
        .clone();
    assert_eq!(block["api_key_id"], "key_demo_pos", "{block}");
    assert_eq!(block["terminal_id"], Value::Null, "{block}");
    // Lifted by an admin, the key pays again.
    let id = block["id"].as_str().unwrap();
    let lifted = daemon
        .client
        .delete(daemon.url(&format!("/v1/blocks/{id}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(lifted.status().as_u16(), 200);
    assert_eq!(pay(100, Some("T0".into())).await.0, 201);
}

/// Finding 6: the cashier's wallet choice needs the page's token and is refused from other
/// sites; the page runs nothing but its own nonce'd style and script.
#[tokio::test]
async fn the_cashier_choice_cannot_be_posted_from_another_site() {
    use crate::cashier::{form_token, no_redirects, page, post_choice};
    let daemon = Daemon::start();
    let (status, _, link) = daemon
        .post_idempotent(
            "/v1/payments",
            POS,
            Some("csrf-1"),
            &json!({"merchant_id": "m_demo", "amount": "3.00", "currency": "CNY", "method": "link"}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let id = link["id"].as_str().unwrap();

    // Another site's form: no token (it cannot read the page), or the browser says cross-site.
    let forged = post_choice(&daemon, id, "mock", "").await;
    assert_eq!(forged.status().as_u16(), 403);
    assert!(
        forged
            .text()
            .await
            .unwrap()
            .contains("choose your wallet again")
    );
    let other_payment_token = "00000000000000000000000000000000.00";
    assert_eq!(
        post_choice(&daemon, id, "mock", other_payment_token)
            .await
            .status()
            .as_u16(),
        403
    );
    let (_, html) = page(&daemon, id).await;
    let token = form_token(&html).unwrap();
    let cross = no_redirects()
        .post(daemon.url(&format!("/pay/{id}/wallet")))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(format!("wallet=mock&token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status().as_u16(), 403);
    let body: Value = cross.json().await.unwrap();
    assert_eq!(body["error"]["code"], "cross_site_request", "{body}");
    let (_, fetched) = daemon.get(&format!("/v1/payments/{id}"), Some(POS)).await;
    assert_eq!(
        fetched["provider"],
        Value::Null,
        "no wallet was locked in: {fetched}"
    );

    // A token is bound to its payment.
    let (_, _, other) = daemon
        .post_idempotent(
            "/v1/payments",
            POS,
            Some("csrf-2"),
            &json!({"merchant_id": "m_demo", "amount": "4.00", "currency": "CNY", "method": "link"}),
        )
        .await;
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(
        post_choice(&daemon, other_id, "mock", &token)
            .await
            .status()
            .as_u16(),
        403
    );

    // The page's own form, same-origin: chosen.
    let chosen = post_choice(&daemon, id, "mock", &token).await;
    assert_eq!(chosen.status().as_u16(), 303);

    // A strict policy, whose nonce is the one the page's style and script carry.
    let response = daemon
        .client
        .get(daemon.url(&format!("/pay/{other_id}")))
        .send()
        .await
        .unwrap();
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = response.text().await.unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    let nonce = policy
        .split("script-src 'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap();
    assert!(
        html.contains(&format!("<script nonce=\"{nonce}\">")),
        "{html}"
    );
    assert!(
        html.contains(&format!("<style nonce=\"{nonce}\">")),
        "{html}"
    );
}

/// Finding 3: a notice must report the order's amount (a payment) or the refund's own
/// amount: a validly signed one that reports another changes nothing and raises a critical
/// alert; the right amount is applied.
#[tokio::test]
async fn a_notice_for_another_amount_changes_nothing() {
    let daemon = Daemon::with_config(config_with_other_wallet());
    let (status, _, payment) = daemon
        .post_idempotent("/v1/payments", POS, Some("amt-p1"), &qr("100.00"))
        .await;
    assert_eq!(status, 201, "{payment}");
    let pay = payment["id"].as_str().unwrap().to_owned();
    let status_of = |id: String| {
        let daemon = &daemon;
        async move {
            daemon.get(&format!("/v1/payments/{id}"), Some(ERP)).await.1["status"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    // Another amount, another currency, a cent more, and none at all (a notice of success
    // from a plugin whose world reports amounts must say how much).
    let wrong = [
        json!({"payment_id": pay, "status": "succeeded", "amount": "0.01", "currency": "CNY"}),
        json!({"payment_id": pay, "status": "succeeded", "amount": "100.00", "currency": "USD"}),
        json!({"payment_id": pay, "status": "succeeded", "amount": "100.01", "currency": "CNY"}),
        json!({"payment_id": pay, "status": "succeeded"}),
    ];
    for notice in &wrong {
        assert_eq!(
            mock_notice(&daemon, "m_demo", DEMO_NOTIFY_SECRET, notice).await,
            200
        );
        assert_eq!(status_of(pay.clone()).await, "pending", "{notice}");
    }
    let alert = alert_about(&daemon, "report_mismatch", &pay).await;
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert_eq!(alert["evidence"]["reason"], "amount_mismatch", "{alert}");
    assert_eq!(
        daemon
            .metric(
                "paygate_provider_reports_refused_total{provider=\"mock\",reason=\"amount_mismatch\"}"
            )
            .await
            .unwrap_or(0.0),
        4.0
    );
    let right = json!({"payment_id": pay, "status": "succeeded", "amount": "100.00",
                       "currency": "CNY"});
    assert_eq!(
        mock_notice(&daemon, "m_demo", DEMO_NOTIFY_SECRET, &right).await,
        200
    );
    assert_eq!(status_of(pay.clone()).await, "succeeded");

    // A refund the mock leaves pending (amounts ending in .72), then notices about it.
    let (status, _, refund) = daemon
        .post_idempotent(
            &format!("/v1/payments/{pay}/refunds"),
            ERP,
            Some("amt-r1"),
            &json!({"amount": "30.72"}),
        )
        .await;
    assert_eq!(
        (status, refund["status"].as_str()),
        (201, Some("pending")),
        "{refund}"
    );
    let re = refund["id"].as_str().unwrap().to_owned();
    let refund_status = || {
        let daemon = &daemon;
        let path = format!("/v1/refunds/{re}");
        async move { daemon.get(&path, Some(ERP)).await.1["status"].clone() }
    };
    // The payment's whole amount, reported as this refund's: refused.
    let wrong = json!({"refund_id": re, "status": "succeeded", "amount": "100.00",
                       "currency": "CNY"});
    assert_eq!(
        mock_notice(&daemon, "m_demo", DEMO_NOTIFY_SECRET, &wrong).await,
        200
    );
    assert_eq!(refund_status().await, "pending");
    alert_about(&daemon, "report_mismatch", &re).await;
    let right = json!({"refund_id": re, "status": "succeeded", "amount": "30.72",
                       "currency": "CNY"});
    assert_eq!(
        mock_notice(&daemon, "m_demo", DEMO_NOTIFY_SECRET, &right).await,
        200
    );
    assert_eq!(refund_status().await, "succeeded");
}

/// Finding 4: a compiled plugin in the cache that is not the one this daemon compiled (here,
/// the Alipay plugin's artifact put in place of the mock's) is never loaded: the daemon
/// warns, compiles the verified plugin again, and the mock wallet is still the mock.
#[tokio::test]
async fn a_replaced_cached_plugin_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let config = default_config_text().replace(
        &shared_plugin_cache().display().to_string(),
        &cache.display().to_string(),
    );
    let data_dir = dir.path().join("data");
    let mut first = Daemon::with_config_on(config.clone(), &data_dir);
    first.terminate();
    assert_eq!(first.wait(Duration::from_secs(20)), Some(0));

    let artifact_of = |plugin: &str| {
        let wasm = std::fs::read(plugin_dir().join(format!("{plugin}.wasm"))).unwrap();
        let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &wasm));
        std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&sha))
            .unwrap_or_else(|| panic!("no cached artifact of {plugin}"))
    };
    let mock = artifact_of("paygate-plugin-mock");
    std::fs::copy(artifact_of("paygate-plugin-alipay"), &mock).unwrap();

    let second = Daemon::with_config_on(config.clone(), &data_dir);
    assert!(
        second
            .logs()
            .contains("does not match the digest recorded when it was compiled"),
        "{}",
        second.logs()
    );
    let (status, _, paid) = second
        .post_idempotent("/v1/payments", POS, Some("cache-1"), &barcode("8.00"))
        .await;
    assert_eq!(
        (status, paid["provider"].as_str()),
        (201, Some("mock")),
        "{paid}"
    );
    assert_eq!(paid["status"], "succeeded", "{paid}");
    // Compiled again, the artifact in the cache is the mock's once more, and a third start
    // loads it from the cache without a warning.
    let mut second = second;
    second.terminate();
    assert_eq!(second.wait(Duration::from_secs(20)), Some(0));
    let third = Daemon::with_config_on(config.clone(), &data_dir);
    assert!(!third.logs().contains("does not match"), "{}", third.logs());
}
