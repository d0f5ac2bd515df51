//! The examples against the real daemon and the simulator: `examples/pos-till` (a barcode
//! payment the payer confirms on the phone first, polled to success, then a partial refund)
//! and `examples/onboarding/onboard.sh` (a merchant from draft to its first payment).

use std::process::Command;

use crate::providers::{ALIPAY, WECHATPAY, Wallet, code};
use crate::simulator::Simulator;
use crate::support::*;

fn run_till(daemon: &Daemon, wallet: Wallet) -> String {
    let binary = repo_root().join("target/release/pos-till");
    assert!(binary.is_file(), "run `cargo xtask build` first");
    let output = Command::new(binary)
        .args([
            "--gateway",
            &daemon.base_url,
            "--payment-code",
            &code(wallet, "61"),
        ])
        .args(["--amount", "18.00", "--refund", "5.00"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pos_till_takes_a_payment_and_refunds_part_of_it_through_each_wallet() {
    let simulator = Simulator::spawn();
    let daemon = Daemon::with_config(
        simulator
            .daemon_config()
            .replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200"),
    );
    for wallet in [ALIPAY, WECHATPAY] {
        let stdout = tokio::task::block_in_place(|| run_till(&daemon, wallet));
        assert!(
            stdout.contains(&format!("via \"{}\"", wallet.name)),
            "{stdout}"
        );
        assert!(
            stdout.contains(": \"pending\""),
            "the payer confirmed later: {stdout}"
        );
        assert!(stdout.contains("paid: \"18.00\" CNY"), "{stdout}");
        assert!(stdout.contains("amount_refunded \"5.00\""), "{stdout}");
        let ledger = simulator.ledger(wallet.name).await;
        assert_eq!(ledger["violations"], serde_json::json!([]));
        let order = &ledger["orders"][0];
        assert_eq!(
            (order["charges"].as_u64(), order["amount_minor"].as_i64()),
            (Some(1), Some(1800))
        );
        let refunded: i64 = order["refunds"]
            .as_object()
            .unwrap()
            .values()
            .map(|r| r["amount_minor"].as_i64().unwrap())
            .sum();
        assert_eq!(refunded, 500);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_onboarding_script_takes_a_merchant_to_its_first_payment_at_each_provider() {
    let simulator = Simulator::spawn();
    let daemon = Daemon::with_config(
        simulator
            .daemon_config()
            .replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200"),
    );
    for provider in ["alipay", "wechatpay"] {
        let output = tokio::task::block_in_place(|| {
            Command::new("bash")
                .arg(repo_root().join("examples/onboarding/onboard.sh"))
                .arg(provider)
                .env("GATEWAY", &daemon.base_url)
                .env("SIM", &simulator.base_url)
                .output()
                .unwrap()
        });
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(r#""status":"verified""#), "{stdout}");
        assert!(stdout.contains(r#""object":"payment""#), "{stdout}");
    }
    // WeChat Pay's application named the eight uploaded images (the contact is an agent).
    let state = simulator.onboarding("wechatpay").await;
    assert_eq!(state["media"].as_object().unwrap().len(), 8, "{state}");
    assert_eq!(
        state["applications"][0]["materials"]["contact_info"]["contact_type"],
        "SUPER"
    );
}
