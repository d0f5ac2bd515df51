//! The plugin kit end to end: `paygated plugin test` replays the walkthrough wallet's
//! cassettes and checks the contract, fails naming the field when a request differs, the
//! result differs or the query after an unknown outcome is missing; and the walkthrough's
//! wallet, loaded into a running daemon with the README's config, takes payments through
//! the simulator's Toy Pay.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::simulator::Simulator;
use crate::support::*;

fn toypay_wasm() -> PathBuf {
    let wasm = repo_root().join("target/examples/toypay-wallet.wasm");
    assert!(wasm.is_file(), "run cargo xtask build first");
    wasm
}

/// A copy of the walkthrough wallet's cassettes (kit.toml's key path made absolute).
fn cassettes_copy() -> tempfile::TempDir {
    let from = repo_root().join("examples/toypay-wallet/cassettes");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().unwrap() == "kit.toml" {
            let keys = repo_root().join("config/sandbox-keys");
            text = text.replace("../../../config/sandbox-keys", &keys.display().to_string());
        }
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

/// `paygated plugin test`: exit code and stdout.
fn kit_test(wasm: &Path, cassettes: &Path) -> (Option<i32>, String) {
    let output = Command::new(paygated())
        .args(["plugin", "test"])
        .arg(wasm)
        .arg("--cassettes")
        .arg(cassettes)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

fn edit(dir: &Path, cassette: &str, change: impl FnOnce(&mut Value)) {
    let path = dir.join(format!("{cassette}.json"));
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    change(&mut value);
    std::fs::write(&path, value.to_string()).unwrap();
}

#[test]
fn the_walkthrough_wallet_passes_its_cassettes_and_the_contract() {
    let dir = cassettes_copy();
    let (code, out) = kit_test(&toypay_wasm(), dir.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("12 passed, 0 failed"), "{out}");
}

#[test]
fn a_request_that_differs_from_the_cassette_fails_naming_the_field() {
    let dir = cassettes_copy();
    edit(dir.path(), "code-payment-succeeds", |c| {
        let body = c["exchanges"][0]["request"]["body"].as_str().unwrap();
        c["exchanges"][0]["request"]["body"] = json!(body.replace("1800", "1801"));
    });
    let (code, out) = kit_test(&toypay_wasm(), dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(r#"replay: exchange 1: body/amount/value: recorded "1801", sent "1800""#),
        "{out}"
    );
    assert!(out.contains("11 passed, 1 failed"), "{out}");
}

#[test]
fn a_result_that_differs_and_a_missing_follow_up_query_fail() {
    let dir = cassettes_copy();
    edit(dir.path(), "refund-partial", |c| {
        c["result"]["Ok"]["status"] = json!("Pending");
    });
    std::fs::remove_file(dir.path().join("code-payment-queried.json")).unwrap();
    let (code, out) = kit_test(&toypay_wasm(), dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(r#"replay: result/Ok/status: recorded "\"Pending\"", sent "\"Succeeded\"""#),
        "{out}"
    );
    assert!(
        out.contains(
            "create-payment pay_kit_code can end in unknown-outcome, after which the gateway calls query-payment: no query-payment cassette for pay_kit_code"
        ),
        "{out}"
    );
}

#[test]
fn a_broken_kit_is_refused_with_a_clear_message() {
    let dir = cassettes_copy();
    std::fs::write(
        dir.path().join("broken.json"),
        "{\"format\": \"paygate-cassette/9\"}",
    )
    .unwrap();
    let (code, out) = kit_test(&toypay_wasm(), dir.path());
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("broken.json"), "{out}");
    assert!(out.contains("paygate-cassette/9"), "{out}");
    std::fs::remove_file(dir.path().join("broken.json")).unwrap();
    let empty = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("kit.toml"), empty.path().join("kit.toml")).unwrap();
    let (code, out) = kit_test(&toypay_wasm(), empty.path());
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no cassettes"), "{out}");
    // A kit naming a provider the plugin does not serve.
    let kit = std::fs::read_to_string(dir.path().join("kit.toml")).unwrap();
    std::fs::write(
        dir.path().join("kit.toml"),
        kit.replace("provider = \"toypay\"", "provider = \"nopay\""),
    )
    .unwrap();
    let (code, out) = kit_test(&toypay_wasm(), dir.path());
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("provider \"nopay\""), "{out}");
}

/// The README's config block for the walkthrough wallet, pointed at this simulator.
fn readme_config(simulator: &Simulator) -> String {
    let block = readme_toml_block("<!-- toypay-wallet config");
    block
        .replace("127.0.0.1:8430", simulator.addr())
        .replace(
            "target/examples/toypay-wallet.wasm",
            &toypay_wasm().display().to_string(),
        )
        .replace(
            "file:config/sandbox-keys",
            &format!("file:{}/config/sandbox-keys", repo_root().display()),
        )
}

#[tokio::test]
async fn the_walkthrough_wallet_takes_payments_in_a_running_daemon() {
    let simulator = Simulator::spawn();
    let config = format!(
        "{}\n{}",
        simulator
            .daemon_config()
            .replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200"),
        readme_config(&simulator)
    );
    let daemon = Daemon::with_config(config);
    // A payment code: paid at once; then part of it refunded.
    let (status, _, paid) = daemon
        .post_idempotent(
            "/v1/payments",
            ADMIN,
            Some("toy-1"),
            &json!({"merchant_id": "m_toy", "amount": "18.00", "currency": "CNY",
                    "method": "barcode", "auth_code": "880000000000000001", "provider": "toypay"}),
        )
        .await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (201, Some("succeeded")),
        "{paid}"
    );
    assert_eq!(paid["provider"], "toypay");
    let id = paid["id"].as_str().unwrap();
    let (status, _, refund) = daemon
        .post_idempotent(
            &format!("/v1/payments/{id}/refunds"),
            ADMIN,
            Some("toy-r1"),
            &json!({"amount": "5.00"}),
        )
        .await;
    assert_eq!(
        (status, refund["status"].as_str()),
        (201, Some("succeeded")),
        "{refund}"
    );
    // A QR code the payer scans later: pending, then the janitor asks Toy Pay.
    let (status, _, qr) = daemon
        .post_idempotent(
            "/v1/payments",
            ADMIN,
            Some("toy-2"),
            &json!({"merchant_id": "m_toy", "amount": "12.34", "currency": "CNY", "method": "qr",
                    "provider": "toypay"}),
        )
        .await;
    assert_eq!(
        (status, qr["status"].as_str()),
        (201, Some("pending")),
        "{qr}"
    );
    let (status, _) = simulator
        .control(
            "toypay/scan",
            json!({"qr_code": qr["qr_code"], "outcome": "pay"}),
        )
        .await;
    assert_eq!(status, 200);
    let path = format!("/v1/payments/{}", qr["id"].as_str().unwrap());
    let mut last = Value::Null;
    for _ in 0..100 {
        last = daemon.get(&path, Some(ADMIN)).await.1;
        if last["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last["status"], "succeeded", "{last}");
    let ledger = simulator.ledger("toypay").await;
    assert_eq!(ledger["violations"], json!([]));
}
