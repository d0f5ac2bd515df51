//! Apple Pay end to end: Apple's published `EC_v1` token (tests/vectors/applepay/) paid
//! through the daemon, the Apple Pay plugin (signature and chain verified, the token opened
//! by the host's key operation) and the simulator's card acquirer, with the plugins' clock
//! set to the token's signing time (a test build's `PAYGATE_TEST_PLUGIN_CLOCK_MS`). A token
//! is charged once; one for another amount, altered, or too old charges nothing; card data
//! is never in an answer, the data dir or the logs.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::simulator::Simulator;
use crate::support::*;

/// 2021-09-01 19:03:06 UTC, the vector's signing time, plus ten seconds.
const AT_SIGNING_MS: u64 = 1_630_522_996_000;
const PAN: &str = "5353756319181169";
const CRYPTOGRAM: &str = "AMwBRjPWDnAgAA7Rls7mAoABFA==";

fn token() -> Value {
    let path = repo_root().join("tests/vectors/applepay/token.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The tests' config with Apple Pay for `m_other`, at the simulator's acquirer.
fn config(simulator: &Simulator) -> String {
    let root = repo_root();
    format!(
        "{}\n[merchants.providers.applepay]\nsettings = {{ merchant_identifier = \"merchant.test.spreedly.123merchant\", acquirer_url = \"http://{addr}/acquirer\", acquirer_merchant_id = \"acq_m_other\" }}\nkeys = {{ payment_processing_key = \"file:{key}\", acquirer_secret = \"file:{secret}\" }}\n\n[[plugins]]\nname = \"applepay\"\npath = \"{plugin}\"\nallowed_hosts = [\"http://{addr}\"]\n",
        simulator.daemon_config(),
        addr = simulator.addr(),
        key = root
            .join("tests/vectors/applepay/merchant_private_key.pem")
            .display(),
        secret = root
            .join("config/sandbox-keys/acquirer_secret.txt")
            .display(),
        plugin = plugin_dir().join("paygate-plugin-applepay.wasm").display(),
    )
}

/// The simulator, its acquirer's clock at the token's signing time like the plugins' (the
/// signed timestamps of requests and answers must agree).
fn simulator() -> Simulator {
    Simulator::spawn_with(&["--acquirer-clock-ms", &AT_SIGNING_MS.to_string()])
}

fn daemon_at(simulator: &Simulator, clock_ms: u64) -> Daemon {
    daemon_on(config(simulator), clock_ms, None)
}

fn daemon_on(config_text: String, clock_ms: u64, data_dir: Option<PathBuf>) -> Daemon {
    Daemon::start_with(Options {
        config_text,
        data_dir,
        env: vec![("PAYGATE_TEST_PLUGIN_CLOCK_MS".into(), clock_ms.to_string())],
        ..Options::default()
    })
}

/// The config with a fast janitor that gives up on an unanswered payment after 1.5 s.
fn fast_janitor(simulator: &Simulator) -> String {
    let config = config(simulator)
        .replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200")
        .replace("barcode_timeout_ms = 60000", "barcode_timeout_ms = 1500");
    assert!(
        config.contains("janitor_interval_ms = 200")
            && config.contains("barcode_timeout_ms = 1500")
    );
    config
}

/// Sends the payment and kills the daemon (SIGKILL) while the acquirer holds the request.
/// (The daemon is borrowed: dropping it would remove its data dir.)
async fn pay_and_kill(daemon: &mut Daemon, key: &str, body: &Value) -> PathBuf {
    let data_dir = daemon.data_dir();
    let url = daemon.url("/v1/payments");
    let body = body.to_string();
    let key = key.to_owned();
    let request = tokio::spawn(async move {
        let _ = reqwest::Client::new()
            .post(url)
            .bearer_auth(OTHER_ERP)
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body)
            .send()
            .await;
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    signal(daemon.pid(), "KILL");
    let _ = daemon.wait(Duration::from_secs(5));
    let _ = request.await;
    data_dir
}

/// Polls a payment until `want` (10 s at most).
async fn wait_for(daemon: &Daemon, id: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (_, payment) = daemon
            .get(&format!("/v1/payments/{id}"), Some(OTHER_ERP))
            .await;
        if payment["status"] == want {
            return payment;
        }
        last = payment;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("payment {id} never became {want}: {last}");
}

#[tokio::test]
async fn killed_before_the_acquirer_answered_it_is_found_charged_once_never_created_again() {
    let simulator = simulator();
    // The acquirer authorizes at once and answers 3 s later: the daemon dies in between.
    let (status, _) = simulator
        .control(
            "acquirer/faults",
            json!({"kind": "timeout", "delay_ms": 3000}),
        )
        .await;
    assert!(status < 300);
    let mut first = daemon_at(&simulator, AT_SIGNING_MS);
    let body = payment("1.00", "USD", token());
    let data_dir = pay_and_kill(&mut first, "k-1", &body).await;
    assert_eq!(
        acquirer_orders(&simulator).await.len(),
        1,
        "the acquirer authorized it"
    );
    // The retry, long after the token's age limit: resumed and queried, not created again.
    // 295 s later by the plugins' clock: past the token's age limit (it was signed 10 s
    // before the first daemon's clock started), within the acquirer's clock skew.
    let second = daemon_on(config(&simulator), AT_SIGNING_MS + 295_000, Some(data_dir));
    let (status, paid) = pay(&second, "k-1", &body).await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (201, Some("succeeded")),
        "{paid}"
    );
    assert_eq!(paid["card"]["last_four"], "1169");
    let orders = acquirer_orders(&simulator).await;
    assert_eq!((orders.len(), orders[0]["charges"].as_u64()), (1, Some(1)));
}

#[tokio::test]
async fn an_unanswered_authorization_is_found_by_the_janitor_with_its_card() {
    let simulator = simulator();
    // The acquirer authorizes at once and answers after the plugin's deadline.
    let (status, _) = simulator
        .control(
            "acquirer/faults",
            json!({"kind": "timeout", "delay_ms": 4000}),
        )
        .await;
    assert!(status < 300);
    // A janitor that sweeps often but gives up only after the default minute.
    let config =
        config(&simulator).replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200");
    assert!(config.contains("janitor_interval_ms = 200"));
    let config = format!("{config}\n[plugins.limits]\ndeadline_ms = 1500\n");
    let daemon = daemon_on(config, AT_SIGNING_MS, None);
    let (status, answer) = pay(&daemon, "j-1", &payment("1.00", "USD", token())).await;
    assert!(status >= 500, "{status} {answer}");
    let (_, list) = daemon
        .get("/v1/payments?merchant_id=m_other", Some(OTHER_ERP))
        .await;
    let id = list["data"][0]["id"].as_str().unwrap().to_owned();
    // The janitor's query finds the authorization: succeeded, with the card it reports.
    let paid = wait_for(&daemon, &id, "succeeded").await;
    assert_eq!(
        paid["card"],
        json!({"network": "mastercard", "last_four": "1169"})
    );
    let orders = acquirer_orders(&simulator).await;
    assert_eq!((orders.len(), orders[0]["charges"].as_u64()), (1, Some(1)));
}

#[tokio::test]
async fn a_payment_that_never_reached_the_acquirer_is_voided_and_nothing_is_charged() {
    let simulator = simulator();
    // First with the acquirer unreachable: the payment is recorded, its create refused
    // before anything was sent (unavailable).
    let unreachable = fast_janitor(&simulator)
        .replace(
            &format!("acquirer_url = \"http://{}/acquirer\"", simulator.addr()),
            "acquirer_url = \"http://127.0.0.1:1/acquirer\"",
        )
        .replace(
            &format!("allowed_hosts = [\"http://{}\"]\n", simulator.addr()),
            &format!(
                "allowed_hosts = [\"http://{}\", \"http://127.0.0.1:1\"]\n",
                simulator.addr()
            ),
        );
    assert!(unreachable.contains("127.0.0.1:1/acquirer"));
    let mut first = daemon_on(unreachable, AT_SIGNING_MS, None);
    let body = payment("1.00", "USD", token());
    let (status, answer) = pay(&first, "k-2", &body).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (502, Some("provider_unavailable")),
        "{answer}"
    );
    let data_dir = first.data_dir();
    signal(first.pid(), "KILL");
    let _ = first.wait(Duration::from_secs(5));
    // Again with the acquirer reachable, and the token past its age limit: the retry of the
    // key resumes the payment and asks the acquirer about it (never creates it: the token is
    // not kept, and would be refused now), which has nothing.
    let second = daemon_on(
        fast_janitor(&simulator),
        AT_SIGNING_MS + 295_000,
        Some(data_dir),
    );
    let (status, answer) = pay(&second, "k-2", &body).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (502, Some("provider_unavailable")),
        "{answer}"
    );
    let (_, list) = second
        .get("/v1/payments?merchant_id=m_other", Some(OTHER_ERP))
        .await;
    let id = list["data"][0]["id"].as_str().unwrap().to_owned();
    // The janitor gives up on it: voided at the acquirer (which never had it), cancelled.
    wait_for(&second, &id, "cancelled").await;
    assert!(acquirer_orders(&simulator).await.is_empty());
    // The retry of the key now answers the cancelled payment; the token, too old by now,
    // charges nothing in a new request either.
    let (status, again) = pay(&second, "k-2", &body).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (201, Some("cancelled")),
        "{again}"
    );
    let (status, spent) = pay(&second, "k-3", &body).await;
    assert_eq!(
        (status, spent["error"]["code"].as_str()),
        (422, Some("wallet_token_invalid"))
    );
    assert!(acquirer_orders(&simulator).await.is_empty());
}

fn payment(amount: &str, currency: &str, token: Value) -> Value {
    json!({"merchant_id": "m_other", "amount": amount, "currency": currency,
           "method": "wallet_token", "provider": "applepay", "wallet_token": token})
}

async fn pay(daemon: &Daemon, key: &str, body: &Value) -> (u16, Value) {
    let (status, _, answer) = daemon
        .post_idempotent("/v1/payments", OTHER_ERP, Some(key), body)
        .await;
    (status, answer)
}

async fn acquirer_orders(simulator: &Simulator) -> Vec<Value> {
    let ledger = simulator.ledger("acquirer").await;
    assert_eq!(ledger["violations"], json!([]), "{ledger}");
    ledger["orders"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_token_is_charged_once_and_only_its_network_and_last_four_are_kept() {
    let simulator = simulator();
    let daemon = daemon_at(&simulator, AT_SIGNING_MS);
    // The PKPaymentToken as Apple Pay JS hands it over.
    let wrapped = json!({"paymentData": token(),
        "paymentMethod": {"displayName": "MasterCard 1169", "network": "MasterCard", "type": "debit"},
        "transactionIdentifier": "F7F133694685BAB2"});
    let body = payment("1.00", "USD", wrapped);
    let (status, paid) = pay(&daemon, "apple-1", &body).await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(paid["method"], "wallet_token");
    assert_eq!(
        paid["card"],
        json!({"network": "mastercard", "last_four": "1169"})
    );
    let id = paid["id"].as_str().unwrap().to_owned();
    let orders = acquirer_orders(&simulator).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(
        (
            orders[0]["out_trade_no"].as_str(),
            orders[0]["charges"].as_u64()
        ),
        (Some(id.as_str()), Some(1))
    );

    // The same request again: its first answer, nothing charged again.
    let (status, again) = pay(&daemon, "apple-1", &body).await;
    assert_eq!((status, &again["id"]), (201, &paid["id"]));
    // The same token in a new request: refused, naming the payment that charged it.
    let (status, replayed) = pay(&daemon, "apple-2", &payment("1.00", "USD", token())).await;
    assert_eq!(status, 409, "{replayed}");
    assert_eq!(replayed["error"]["code"], "wallet_token_used");
    assert!(replayed["error"]["message"].as_str().unwrap().contains(&id));
    assert_eq!(acquirer_orders(&simulator).await.len(), 1);

    // A partial refund at the acquirer.
    let (status, _, refund) = daemon
        .post_idempotent(
            &format!("/v1/payments/{id}/refunds"),
            OTHER_ERP,
            Some("apple-1-r"),
            &json!({"amount": "0.40"}),
        )
        .await;
    assert_eq!(
        (status, refund["status"].as_str()),
        (201, Some("succeeded")),
        "{refund}"
    );
    let (_, fetched) = daemon
        .get(&format!("/v1/payments/{id}"), Some(OTHER_ERP))
        .await;
    assert_eq!(
        (
            fetched["amount_refunded"].as_str(),
            &fetched["card"]["last_four"]
        ),
        (Some("0.40"), &json!("1169"))
    );

    // Card data is nowhere but in the acquirer's request: not in the data dir, not in the
    // logs (the token's ciphertext is not stored either).
    let data = token()["data"].as_str().unwrap().to_owned();
    let logs = daemon.logs();
    for secret in [PAN, CRYPTOGRAM, "240930", &data[..40]] {
        assert!(!logs.contains(secret), "the logs hold {secret}");
        assert!(
            !dir_contains(&daemon.data_dir(), secret.as_bytes()),
            "the data dir holds {secret}"
        );
    }
}

#[tokio::test]
async fn tokens_for_another_amount_altered_or_too_old_charge_nothing() {
    let simulator = simulator();
    let daemon = daemon_at(&simulator, AT_SIGNING_MS);
    let refused = |status: u16, answer: &Value, code: &str| {
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        assert_eq!(answer["error"]["param"], "wallet_token", "{answer}");
    };
    let (status, answer) = pay(&daemon, "a-2", &payment("2.00", "USD", token())).await;
    refused(status, &answer, "wallet_token_amount_mismatch");
    let mut altered = token();
    altered["header"]["transactionId"] = json!("00".repeat(32));
    let (status, answer) = pay(&daemon, "a-3", &payment("1.00", "USD", altered)).await;
    refused(status, &answer, "wallet_token_invalid");
    let (status, answer) = pay(
        &daemon,
        "a-4",
        &payment("1.00", "USD", json!({"version": "EC_v1"})),
    )
    .await;
    refused(status, &answer, "wallet_token_invalid");
    // Malformed requests are plain 400s.
    for (body, param) in [
        (
            json!({"merchant_id": "m_other", "amount": "1.00", "currency": "USD", "method": "wallet_token", "provider": "applepay"}),
            "wallet_token",
        ),
        (
            json!({"merchant_id": "m_other", "amount": "1.00", "currency": "USD", "method": "wallet_token", "wallet_token": token()}),
            "provider",
        ),
        (payment("1.00", "USD", json!("a string")), "wallet_token"),
        (
            json!({"merchant_id": "m_other", "amount": "1.00", "currency": "USD", "method": "qr", "provider": "applepay", "wallet_token": token()}),
            "wallet_token",
        ),
    ] {
        let (status, answer) =
            pay(&daemon, &format!("bad-{param}-{}", body["method"]), &body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["param"], param, "{answer}");
    }
    // The same valid token years later (the plugins' clock as it is today): too old.
    let today = Daemon::with_config(config(&simulator));
    let (status, answer) = pay(&today, "a-5", &payment("1.00", "USD", token())).await;
    refused(status, &answer, "wallet_token_invalid");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("s ago"),
        "{answer}"
    );
    // Nothing reached the acquirer, and the token is still good for one payment.
    assert!(acquirer_orders(&simulator).await.is_empty());
    let (status, paid) = pay(&daemon, "a-6", &payment("1.00", "USD", token())).await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (201, Some("succeeded")),
        "{paid}"
    );
}

#[tokio::test]
async fn a_declined_card_fails_the_payment_and_the_token_stays_spent() {
    let simulator = simulator();
    let daemon = daemon_at(&simulator, AT_SIGNING_MS);
    let (status, _) = simulator
        .control("acquirer/faults", json!({"kind": "decline"}))
        .await;
    assert!(status < 300, "{status}");
    let (status, declined) = pay(&daemon, "d-1", &payment("1.00", "USD", token())).await;
    assert_eq!(status, 402, "{declined}");
    assert_eq!(declined["error"]["code"], "insufficient_funds");
    assert_eq!(declined["error"]["payment"]["status"], "failed");
    // A token is single-use: the payer makes a new one on the device.
    let (status, answer) = pay(&daemon, "d-2", &payment("1.00", "USD", token())).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("wallet_token_used"))
    );
}

/// Whether any file under `dir` holds `needle`.
fn dir_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            dir_contains(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}
