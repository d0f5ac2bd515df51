//! The real wallets end to end: the daemon, the Alipay and WeChat Pay plugins and the
//! provider simulator (`paygate-sim`), over real sockets with real signatures. Each scenario
//! runs once per provider.

use std::time::Duration;

use serde_json::{Value, json};

use crate::simulator::Simulator;
use crate::support::*;

/// A provider under test.
#[derive(Clone, Copy)]
pub struct Wallet {
    pub name: &'static str,
    /// Payment codes of this wallet start with it.
    pub code_prefix: &'static str,
}

pub const ALIPAY: Wallet = Wallet {
    name: "alipay",
    code_prefix: "28",
};

pub const WECHATPAY: Wallet = Wallet {
    name: "wechatpay",
    code_prefix: "13",
};

/// An 18-digit payment code of `wallet` whose last two digits pick the payer's behaviour
/// (see tests/sim/README.md).
pub fn code(wallet: Wallet, suffix: &str) -> String {
    format!("{}{}{suffix}", wallet.code_prefix, "0".repeat(14))
}

/// A barcode payment of `amount` CNY for m_demo at T-01, paid with `wallet`'s code ending in
/// `suffix`.
fn wallet_barcode(wallet: Wallet, amount: &str, suffix: &str) -> Value {
    json!({"merchant_id": "m_demo", "amount": amount, "currency": "CNY", "method": "barcode",
           "auth_code": code(wallet, suffix), "terminal_id": "T-01"})
}

/// A QR payment of `amount` CNY for m_demo with `wallet`.
fn wallet_qr(wallet: Wallet, amount: &str) -> Value {
    json!({"merchant_id": "m_demo", "amount": amount, "currency": "CNY", "method": "qr",
           "provider": wallet.name, "description": "2 x coffee"})
}

/// The simulator and a daemon pointed at it; `tune` edits the daemon's config.
fn with_simulator(tune: impl FnOnce(String) -> String) -> (Simulator, Daemon) {
    let simulator = Simulator::spawn();
    let config = tune(simulator.daemon_config());
    let daemon = Daemon::with_config(config);
    (simulator, daemon)
}

fn janitor(config: String, interval_ms: u64) -> String {
    let tuned = config.replace(
        "janitor_interval_ms = 3000",
        &format!("janitor_interval_ms = {interval_ms}"),
    );
    assert!(tuned.contains(&format!("janitor_interval_ms = {interval_ms}")));
    tuned
}

async fn payment(daemon: &Daemon, id: &str) -> Value {
    daemon.get(&format!("/v1/payments/{id}"), Some(ERP)).await.1
}

/// Polls a payment until `want` (15 s at most).
async fn wait_for(daemon: &Daemon, id: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        last = payment(daemon, id).await;
        if last["status"] == want {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("payment {id} never became {want}: {last}");
}

/// The simulator's order for our payment `id`.
async fn order(simulator: &Simulator, wallet: Wallet, id: &str) -> Value {
    let ledger = simulator.ledger(wallet.name).await;
    ledger["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["out_trade_no"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no order {id} at the simulator: {ledger}"))
}

async fn assert_clean_ledger(simulator: &Simulator, wallet: Wallet) {
    let ledger = simulator.ledger(wallet.name).await;
    assert_eq!(ledger["violations"], json!([]), "{ledger}");
    for order in ledger["orders"].as_array().unwrap() {
        assert!(order["charges"].as_u64().unwrap() <= 1, "{order}");
    }
}

async fn qr_paid_by_scan_is_notified(wallet: Wallet) {
    // The janitor stays away: only the provider's notice can tell the daemon.
    let (simulator, daemon) = with_simulator(|c| janitor(c, 600_000));
    let (status, _, created) = daemon.pay("qr-1", wallet_qr(wallet, "12.50")).await;
    assert_eq!(
        (status, created["status"].as_str()),
        (201, Some("pending")),
        "{created}"
    );
    assert_eq!(created["provider"], wallet.name);
    let id = created["id"].as_str().unwrap();
    let qr_code = created["qr_code"].as_str().unwrap();
    let (status, scanned) = simulator
        .control(
            &format!("{}/scan", wallet.name),
            json!({"qr_code": qr_code, "outcome": "pay"}),
        )
        .await;
    assert_eq!(status, 200, "{scanned}");
    let paid = wait_for(&daemon, id, "succeeded").await;
    assert!(paid["provider_reference"].is_string(), "{paid}");
    let order = order(&simulator, wallet, id).await;
    assert_eq!(order["status"], "paid");
    assert_eq!(order["amount_minor"], 1250);
    assert_eq!(order["charges"], 1);
    assert!(order["notifications_sent"].as_u64().unwrap() >= 1);
    assert_clean_ledger(&simulator, wallet).await;
}

/// A validly signed notice that the order was paid, but for another amount (a 0.01 notice
/// for a 100.00 payment): nothing changes, the payment stays pending for the janitor's query
/// (which learns the true amount), and a critical `report_mismatch` alert names it.
async fn a_notice_for_another_amount_changes_nothing(wallet: Wallet) {
    let (simulator, daemon) = with_simulator(|c| janitor(c, 600_000));
    let (status, _, created) = daemon.pay("amt-1", wallet_qr(wallet, "100.00")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = simulator
        .control(
            &format!("{}/faults", wallet.name),
            json!({"kind": "wrong_amount_notification", "amount_minor": 1}),
        )
        .await;
    assert!((200..300).contains(&status), "{status}");
    let (status, scanned) = simulator
        .control(
            &format!("{}/scan", wallet.name),
            json!({"qr_code": created["qr_code"], "outcome": "pay"}),
        )
        .await;
    assert_eq!(status, 200, "{scanned}");
    let mut alert = Value::Null;
    for _ in 0..150 {
        let alerts = daemon
            .get("/v1/alerts?rule=report_mismatch", Some(ADMIN))
            .await
            .1;
        if let Some(found) = alerts["data"].as_array().and_then(|a| {
            a.iter()
                .find(|a| a["evidence"]["object_id"] == id.as_str())
                .cloned()
        }) {
            alert = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alert["severity"], "critical", "no alert: {alert}");
    assert_eq!(alert["evidence"]["reason"], "amount_mismatch", "{alert}");
    assert_eq!(alert["subject"]["provider"], wallet.name, "{alert}");
    let reported = alert["evidence"]["detail"]["reported"]
        .as_str()
        .unwrap_or_default();
    assert!(reported.starts_with("0.01"), "{alert}");
    assert_eq!(payment(&daemon, &id).await["status"], "pending");
    // The provider did charge 100.00 (its ledger): the notice alone lied.
    assert_eq!(order(&simulator, wallet, &id).await["status"], "paid");
}

async fn barcode_outcomes(wallet: Wallet) {
    let (simulator, daemon) = with_simulator(|c| {
        janitor(c, 200).replace("barcode_timeout_ms = 60000", "barcode_timeout_ms = 2000")
    });
    // Paid at once; the wallet is detected from the code.
    let (status, _, paid) = daemon
        .pay("b-ok", wallet_barcode(wallet, "8.00", "00"))
        .await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (201, Some("succeeded")),
        "{paid}"
    );
    assert_eq!(paid["provider"], wallet.name);
    // Balance too low: 402 with the failed payment.
    let (status, _, declined) = daemon
        .pay("b-51", wallet_barcode(wallet, "8.00", "51"))
        .await;
    assert_eq!(status, 402, "{declined}");
    assert_eq!(declined["error"]["code"], "insufficient_funds");
    assert_eq!(declined["error"]["payment"]["status"], "failed");
    // An invalid code.
    let (status, _, invalid) = daemon
        .pay("b-52", wallet_barcode(wallet, "8.00", "52"))
        .await;
    assert_eq!(status, 402, "{invalid}");
    assert_eq!(invalid["error"]["code"], "auth_code_invalid");
    // User paying, then paid: pending at first, the janitor's queries find it paid.
    let (status, _, paying) = daemon
        .pay("b-61", wallet_barcode(wallet, "8.00", "61"))
        .await;
    assert_eq!(
        (status, paying["status"].as_str()),
        (201, Some("pending")),
        "{paying}"
    );
    wait_for(&daemon, paying["id"].as_str().unwrap(), "succeeded").await;
    // User paying, never confirms: cancelled at the provider after the barcode timeout.
    let (status, _, stuck) = daemon
        .pay("b-60", wallet_barcode(wallet, "8.00", "60"))
        .await;
    assert_eq!(
        (status, stuck["status"].as_str()),
        (201, Some("pending")),
        "{stuck}"
    );
    let stuck_id = stuck["id"].as_str().unwrap();
    wait_for(&daemon, stuck_id, "cancelled").await;
    let order = order(&simulator, wallet, stuck_id).await;
    assert!(
        ["closed", "revoked"].contains(&order["status"].as_str().unwrap()),
        "{order}"
    );
    assert_eq!(order["charges"], 0);
    assert_clean_ledger(&simulator, wallet).await;
}

async fn refunds_partial_full_and_processing(wallet: Wallet) {
    let (simulator, daemon) = with_simulator(|c| janitor(c, 200));
    let (_, _, paid) = daemon
        .pay("r-pay", wallet_barcode(wallet, "10.00", "00"))
        .await;
    let id = paid["id"].as_str().unwrap();
    let refunds = format!("/v1/payments/{id}/refunds");
    let (status, _, partial) = daemon
        .post_idempotent(&refunds, ERP, Some("r-1"), &json!({"amount": "3.00"}))
        .await;
    assert_eq!(
        (status, partial["status"].as_str()),
        (201, Some("succeeded")),
        "{partial}"
    );
    // Processing at the provider (.72), then done.
    let (status, _, processing) = daemon
        .post_idempotent(&refunds, ERP, Some("r-2"), &json!({"amount": "2.72"}))
        .await;
    assert_eq!(status, 201, "{processing}");
    let processing_id = processing["id"].as_str().unwrap();
    let mut refund = processing.clone();
    for _ in 0..100 {
        refund = daemon
            .get(&format!("/v1/refunds/{processing_id}"), Some(ERP))
            .await
            .1;
        if refund["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refund["status"], "succeeded", "{refund}");
    // The rest: no amount means everything left.
    let (status, _, rest) = daemon
        .post_idempotent(&refunds, ERP, Some("r-3"), &json!({}))
        .await;
    assert_eq!(
        (status, rest["amount"].as_str()),
        (201, Some("4.28")),
        "{rest}"
    );
    assert_eq!(rest["status"], "succeeded");
    // Nothing left.
    let (status, _, over) = daemon
        .post_idempotent(&refunds, ERP, Some("r-4"), &json!({"amount": "0.01"}))
        .await;
    assert_eq!(
        (status, over["error"]["code"].as_str()),
        (422, Some("refund_exceeds_payment"))
    );
    let mut after = Value::Null;
    for _ in 0..50 {
        after = payment(&daemon, id).await;
        if after["amount_refunded"] == "10.00" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(after["amount_refunded"], "10.00", "{after}");
    let order = order(&simulator, wallet, id).await;
    let refunded: i64 = order["refunds"]
        .as_object()
        .unwrap()
        .values()
        .map(|r| {
            assert_eq!(r["executions"], 1, "{r}");
            r["amount_minor"].as_i64().unwrap()
        })
        .sum();
    assert_eq!(refunded, 1000);
    assert_clean_ledger(&simulator, wallet).await;
}

/// Pays with `key` until the answer is final (a retry resumes an unknown outcome).
async fn pay_until_final(daemon: &Daemon, key: &str, body: &Value) -> (u16, Value) {
    let mut last = (0, Value::Null);
    for _ in 0..40 {
        let (status, _, answer) = daemon.pay(key, body.clone()).await;
        let pending = answer["status"] == "pending";
        last = (status, answer);
        if (status == 201 || status == 402) && !pending {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no final answer for {key}: {last:?}");
}

async fn every_fault_ends_right_and_nothing_is_charged_twice(wallet: Wallet) {
    let (simulator, daemon) = with_simulator(|c| {
        let tuned = janitor(c, 200).replace("deadline_ms = 10000", "deadline_ms = 2000");
        assert!(tuned.contains("deadline_ms = 2000"));
        tuned
    });
    let faults = format!("{}/faults", wallet.name);
    for (i, (kind, delay_ms)) in [
        ("delay", 300),
        ("timeout", 4000),
        ("http_500", 0),
        ("malformed", 0),
        ("bad_signature", 0),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, _) = simulator
            .control(
                &faults,
                json!({"kind": kind, "count": 1, "delay_ms": delay_ms}),
            )
            .await;
        assert_eq!(status, 204);
        let key = format!("fault-{kind}");
        let body = wallet_barcode(wallet, &format!("2{i}.00"), "00");
        let (status, answer) = pay_until_final(&daemon, &key, &body).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (201, Some("succeeded")),
            "after {kind}: {answer}"
        );
        let order = order(&simulator, wallet, answer["id"].as_str().unwrap()).await;
        assert_eq!(order["charges"], 1, "after {kind}: {order}");
    }
    // Notices sent twice, or late, change the payment once.
    for kind in ["duplicate_notification", "late_notification"] {
        simulator
            .control(&faults, json!({"kind": kind, "count": 1, "delay_ms": 1500}))
            .await;
        let (_, _, created) = daemon
            .pay(&format!("n-{kind}"), wallet_qr(wallet, "5.00"))
            .await;
        let id = created["id"].as_str().unwrap();
        simulator
            .control(
                &format!("{}/scan", wallet.name),
                json!({"qr_code": created["qr_code"], "outcome": "pay"}),
            )
            .await;
        wait_for(&daemon, id, "succeeded").await;
        if kind == "duplicate_notification" {
            for _ in 0..50 {
                if order(&simulator, wallet, id).await["notifications_sent"]
                    .as_u64()
                    .unwrap()
                    >= 2
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(
                order(&simulator, wallet, id).await["notifications_sent"]
                    .as_u64()
                    .unwrap()
                    >= 2
            );
        }
    }
    // Let the late notice arrive: acknowledged, nothing changes.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let metrics = daemon.metrics().await;
    assert!(
        !metrics.contains("paygate_events_total{kind=\"payment.conflict\"}"),
        "no conflict from duplicate or late notices"
    );
    assert_clean_ledger(&simulator, wallet).await;
}

async fn a_forged_notice_is_refused_and_changes_nothing(
    wallet: Wallet,
    forged: (String, Vec<(String, String)>),
) {
    let (_simulator, daemon) = with_simulator(|c| janitor(c, 600_000));
    let (_, _, created) = daemon.pay("forged", wallet_qr(wallet, "9.00")).await;
    let id = created["id"].as_str().unwrap();
    let (body, headers) = forged;
    let body = body.replace("{id}", id);
    let mut request = daemon
        .client
        .post(daemon.url(&format!("/v1/notify/{}/m_demo", wallet.name)))
        .body(body);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request.send().await.unwrap();
    assert!(
        [400, 401].contains(&response.status().as_u16()),
        "{}",
        response.status()
    );
    assert_eq!(payment(&daemon, id).await["status"], "pending");
}

/// An Alipay trade notice for `{id}` signed with the wrong key (the app's, not Alipay's).
fn forged_alipay_notice() -> (String, Vec<(String, String)>) {
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let params = [
        ("app_id", "2021000000000001"),
        ("charset", "utf-8"),
        ("notify_type", "trade_status_sync"),
        ("out_trade_no", "{id}"),
        ("total_amount", "9.00"),
        ("trade_no", "2026000000000001"),
        ("trade_status", "TRADE_SUCCESS"),
    ];
    let signed = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let pem =
        std::fs::read_to_string(repo_root().join("config/sandbox-keys/alipay_app_private_key.pem"))
            .unwrap();
    let key = SigningKey::<sha2::Sha256>::new(rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap());
    let signature = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        key.sign(signed.as_bytes()).to_bytes(),
    );
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        body.append_pair(k, v);
    }
    body.append_pair("sign_type", "RSA2");
    body.append_pair("sign", &signature);
    (
        body.finish(),
        vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
    )
}

#[tokio::test]
async fn alipay_qr_paid_by_scan_is_notified() {
    qr_paid_by_scan_is_notified(ALIPAY).await;
}

#[tokio::test]
async fn alipay_a_notice_for_another_amount_changes_nothing() {
    a_notice_for_another_amount_changes_nothing(ALIPAY).await;
}

#[tokio::test]
async fn alipay_barcode_outcomes() {
    barcode_outcomes(ALIPAY).await;
}

#[tokio::test]
async fn alipay_refunds_partial_full_and_processing() {
    refunds_partial_full_and_processing(ALIPAY).await;
}

#[tokio::test]
async fn alipay_every_fault_ends_right_and_nothing_is_charged_twice() {
    every_fault_ends_right_and_nothing_is_charged_twice(ALIPAY).await;
}

#[tokio::test]
async fn alipay_a_forged_notice_is_refused() {
    a_forged_notice_is_refused_and_changes_nothing(ALIPAY, forged_alipay_notice()).await;
}

/// A WeChat Pay notification for `{id}` signed with the wrong key (the merchant's, not the
/// platform's); its resource is never reached.
fn forged_wechatpay_notice() -> (String, Vec<(String, String)>) {
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let body = json!({
        "id": "EV-forged", "create_time": "2026-11-26T12:00:00+08:00",
        "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                     "ciphertext": "AAAA", "associated_data": "transaction", "nonce": "000000000000"},
        "out_trade_no": "{id}",
    })
    .to_string();
    let timestamp = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs())
    .to_string();
    let nonce = "FORGEDNONCE0000000000000000000000";
    let pem = std::fs::read_to_string(
        repo_root().join("config/sandbox-keys/wechatpay_merchant_private_key.pem"),
    )
    .unwrap();
    let key = SigningKey::<sha2::Sha256>::new(rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap());
    let signature = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        key.sign(format!("{timestamp}\n{nonce}\n{body}\n").as_bytes())
            .to_bytes(),
    );
    (
        body,
        vec![
            ("content-type".into(), "application/json".into()),
            ("wechatpay-timestamp".into(), timestamp),
            ("wechatpay-nonce".into(), nonce.into()),
            ("wechatpay-signature".into(), signature),
            (
                "wechatpay-serial".into(),
                "PUB_KEY_ID_0000000000000000SIM0001".into(),
            ),
        ],
    )
}

#[tokio::test]
async fn wechatpay_qr_paid_by_scan_is_notified() {
    qr_paid_by_scan_is_notified(WECHATPAY).await;
}

#[tokio::test]
async fn wechatpay_a_notice_for_another_amount_changes_nothing() {
    a_notice_for_another_amount_changes_nothing(WECHATPAY).await;
}

#[tokio::test]
async fn wechatpay_barcode_outcomes() {
    barcode_outcomes(WECHATPAY).await;
}

#[tokio::test]
async fn wechatpay_refunds_partial_full_and_processing() {
    refunds_partial_full_and_processing(WECHATPAY).await;
}

#[tokio::test]
async fn wechatpay_every_fault_ends_right_and_nothing_is_charged_twice() {
    every_fault_ends_right_and_nothing_is_charged_twice(WECHATPAY).await;
}

/// The shipped config names each provider's real paths at the simulator (`/gateway.do`,
/// `/v3/...`); a config written before names the prefixed ones, which keep working.
#[tokio::test]
async fn configs_that_name_the_simulators_prefixed_paths_still_pay_and_refund() {
    let (simulator, daemon) = with_simulator(|c| {
        let addr = c
            .split("gateway_url = \"http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap()
            .to_owned();
        let prefixed = c
            .replace(
                &format!("gateway_url = \"http://{addr}/gateway.do\""),
                &format!("gateway_url = \"http://{addr}/alipay/gateway.do\""),
            )
            .replace(
                &format!("base_url = \"http://{addr}\""),
                &format!("base_url = \"http://{addr}/wechatpay\""),
            );
        assert_eq!(
            prefixed
                .matches(&format!("{addr}/alipay/gateway.do"))
                .count(),
            1
        );
        assert_eq!(prefixed.matches(&format!("{addr}/wechatpay\"")).count(), 1);
        prefixed
    });
    for wallet in [ALIPAY, WECHATPAY] {
        let key = format!("prefixed-{}", wallet.name);
        let (status, _, paid) = daemon.pay(&key, wallet_barcode(wallet, "6.00", "00")).await;
        assert_eq!(
            (status, paid["provider"].as_str()),
            (201, Some(wallet.name)),
            "{paid}"
        );
        assert_eq!(paid["status"], "succeeded", "{paid}");
        let id = paid["id"].as_str().unwrap();
        let (status, _, refund) = daemon
            .post_idempotent(
                &format!("/v1/payments/{id}/refunds"),
                ERP,
                Some(&format!("{key}-r")),
                &json!({"amount": "1.00"}),
            )
            .await;
        assert_eq!(
            (status, refund["status"].as_str()),
            (201, Some("succeeded")),
            "{refund}"
        );
        let order = order(&simulator, wallet, id).await;
        assert_eq!(order["charges"], 1, "{order}");
        assert_clean_ledger(&simulator, wallet).await;
    }
}

#[tokio::test]
async fn wechatpay_a_forged_notice_is_refused() {
    a_forged_notice_is_refused_and_changes_nothing(WECHATPAY, forged_wechatpay_notice()).await;
}
