//! Reconciliation end to end: the daemon, the Alipay and WeChat Pay plugins and the provider
//! simulator, whose bills come from its own books. A day of mixed traffic reconciles with
//! nothing to report; each discrepancy the simulator is asked to put in its next bill is
//! reported once, naming our object and their row; the bill uploaded as the merchant
//! downloads it gives the same result as the one downloaded; a bill not out yet, a day
//! without a bill and a bill that does not read are each answered as such.

use std::time::Duration;

use serde_json::{Value, json};

use crate::providers::{ALIPAY, WECHATPAY, Wallet, code};
use crate::simulator::Simulator;
use crate::support::*;

fn china_today() -> String {
    let now =
        time::OffsetDateTime::now_utc().to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap());
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

/// The simulator, and a daemon on it whose janitor sweeps often and whose schedule does
/// not run (its runs would publish bills before the test has asked for its discrepancies).
fn with_simulator() -> (Simulator, Daemon) {
    let simulator = Simulator::spawn();
    let config = simulator
        .daemon_config()
        .replace("janitor_interval_ms = 3000", "janitor_interval_ms = 500");
    let config = schedule(config, "enabled = false");
    (simulator, Daemon::with_config(config))
}

fn schedule(config: String, setting: &str) -> String {
    let tuned = config.replace(
        "[reconciliation]\nenabled = true",
        &format!("[reconciliation]\n{setting}"),
    );
    assert!(tuned.contains(setting));
    tuned
}

/// The schedule reconciles the providers' previous day by itself once the merchant's local
/// time passes `run_at` (here midnight: at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_reconciles_the_previous_day_by_itself() {
    let simulator = Simulator::spawn();
    let config = schedule(
        simulator.daemon_config(),
        "enabled = true\nrun_at = \"00:00\"",
    )
    .replace("run_at = \"10:00\"\n", "");
    let daemon = Daemon::with_config(config);
    let yesterday = {
        let now = time::OffsetDateTime::now_utc()
            .to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap())
            - time::Duration::days(1);
        format!(
            "{:04}-{:02}-{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        )
    };
    let mut runs = Vec::new();
    for _ in 0..300 {
        let (_, list) = daemon
            .get(&format!("/v1/reconciliations?date={yesterday}"), Some(ERP))
            .await;
        runs = list["data"].as_array().unwrap().clone();
        if runs.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut seen: Vec<(String, String, String)> = runs
        .iter()
        .map(|r| {
            (
                r["provider"].as_str().unwrap().into(),
                r["status"].as_str().unwrap().into(),
                r["source"].as_str().unwrap().into(),
            )
        })
        .collect();
    seen.sort();
    // Yesterday had no traffic: Alipay's bill is empty, WeChat Pay has none. The mock
    // wallet downloads no bills and is left alone.
    assert_eq!(
        seen,
        vec![
            ("alipay".into(), "completed".into(), "download".into()),
            ("wechatpay".into(), "completed".into(), "none".into()),
        ]
    );
    assert!(runs.iter().all(|r| r["discrepancies"]["total"] == 0));
}

async fn barcode(
    daemon: &Daemon,
    wallet: Wallet,
    key: &str,
    amount: &str,
    suffix: &str,
    terminal: &str,
) -> Value {
    let (status, _, body) = daemon
        .pay(
            key,
            json!({"merchant_id": "m_demo", "amount": amount, "currency": "CNY", "method": "barcode",
                   "auth_code": code(wallet, suffix), "terminal_id": terminal}),
        )
        .await;
    assert!(status == 201 || status == 402, "{status} {body}");
    body
}

async fn wait_for(daemon: &Daemon, path: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        last = daemon.get(path, Some(ERP)).await.1;
        if last["status"] == want {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never became {want}: {last}");
}

/// Pays a QR payment by scanning it at the simulator.
async fn qr_paid(
    daemon: &Daemon,
    simulator: &Simulator,
    wallet: Wallet,
    key: &str,
    amount: &str,
) -> String {
    let (status, _, created) = daemon
        .pay(
            key,
            json!({"merchant_id": "m_demo", "amount": amount, "currency": "CNY", "method": "qr",
                          "provider": wallet.name, "description": "tea"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, scanned) = simulator
        .control(
            &format!("{}/scan", wallet.name),
            json!({"qr_code": created["qr_code"], "outcome": "pay"}),
        )
        .await;
    assert_eq!(status, 200, "{scanned}");
    wait_for(daemon, &format!("/v1/payments/{id}"), "succeeded").await;
    id
}

async fn refund(daemon: &Daemon, key: &str, payment: &str, amount: &str) -> String {
    let (status, _, body) = daemon
        .post_idempotent(
            &format!("/v1/payments/{payment}/refunds"),
            ERP,
            Some(key),
            &json!({"amount": amount}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    wait_for(daemon, &format!("/v1/refunds/{id}"), "succeeded").await;
    id
}

async fn reconcile(daemon: &Daemon, key: &str, provider: &str, date: &str) -> (u16, bool, Value) {
    daemon
        .post_idempotent(
            "/v1/reconciliations",
            ERP,
            Some(key),
            &json!({"merchant_id": "m_demo", "provider": provider, "date": date}),
        )
        .await
}

async fn upload(
    daemon: &Daemon,
    key: &str,
    provider: &str,
    date: &str,
    name: &str,
    bill: Vec<u8>,
) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("merchant_id", "m_demo")
        .text("provider", provider.to_owned())
        .text("date", date.to_owned())
        .part(
            "bill",
            reqwest::multipart::Part::bytes(bill).file_name(name.to_owned()),
        );
    let response = daemon
        .client
        .post(daemon.url("/v1/reconciliations"))
        .bearer_auth(ERP)
        .header("idempotency-key", key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn discrepancies(daemon: &Daemon, run: &Value) -> Vec<Value> {
    let (status, page) = daemon
        .get(
            &format!(
                "/v1/reconciliations/{}/discrepancies?limit=100",
                run["id"].as_str().unwrap()
            ),
            Some(ERP),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().clone()
}

async fn close_day(simulator: &Simulator, provider: &str, date: &str) {
    let (status, body) = simulator
        .control(&format!("{provider}/bills/close"), json!({"date": date}))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Both wallets' merchant accounts in the shipped config.
fn account(wallet: Wallet) -> &'static str {
    if wallet.name == "alipay" {
        "2021000000000001"
    } else {
        "1900000001"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_mixed_traffic_reconciles_with_nothing_to_report() {
    let (simulator, daemon) = with_simulator();
    let today = china_today();
    for wallet in [ALIPAY, WECHATPAY] {
        let w = wallet.name;
        // Not out yet: the run says so and is kept.
        let (status, _, early) = reconcile(&daemon, &format!("early-{w}"), w, &today).await;
        assert_eq!(
            (status, early["status"].as_str()),
            (201, Some("bill_not_ready")),
            "{early}"
        );
        assert!(early["message"].is_string());

        let paid = barcode(&daemon, wallet, &format!("{w}-a"), "12.50", "00", "T-1").await;
        assert_eq!(paid["status"], "succeeded", "{paid}");
        let big = barcode(&daemon, wallet, &format!("{w}-b"), "30.00", "00", "T-2").await;
        let declined = barcode(&daemon, wallet, &format!("{w}-c"), "18.80", "51", "T-3").await;
        assert_eq!(
            declined["error"]["payment"]["status"], "failed",
            "{declined}"
        );
        let qr = qr_paid(&daemon, &simulator, wallet, &format!("{w}-d"), "45.10").await;
        refund(
            &daemon,
            &format!("{w}-r1"),
            big["id"].as_str().unwrap(),
            "10.00",
        )
        .await;
        refund(&daemon, &format!("{w}-r2"), &qr, "45.10").await;
        close_day(&simulator, w, &today).await;

        let (status, replayed, run) = reconcile(&daemon, &format!("run-{w}"), w, &today).await;
        assert_eq!((status, replayed), (201, false), "{run}");
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(run["source"], "download");
        assert_eq!(
            run["discrepancies"]["total"],
            0,
            "{w}: {:?}",
            discrepancies(&daemon, &run).await
        );
        for side in ["ours", "theirs"] {
            assert_eq!(run[side]["payments"], 3, "{side} {run}");
            assert_eq!(run[side]["gross"], "87.60", "{side} {run}");
            assert_eq!(run[side]["refunds"], 2, "{side} {run}");
            assert_eq!(run[side]["refunded"], "55.10", "{side} {run}");
        }
        // 0.6 %, rounded per row: 12.50 -> 0.08, 30.00 -> 0.18, 45.10 -> 0.27; given back
        // 10.00 -> 0.06 and the whole 45.10 -> 0.27.
        assert_eq!(run["theirs"]["fees"], "0.20", "{run}");
        assert_eq!(run["theirs"]["net"], "32.30", "{run}");
        assert!(
            run["bill"]["rows"].as_u64() == Some(5)
                && run["bill"]["sha256"].as_str().unwrap().len() == 64,
            "{run}"
        );

        // The same key answers the same run; another run of the same bill finds the same.
        let (status, replayed, again) = reconcile(&daemon, &format!("run-{w}"), w, &today).await;
        assert_eq!((status, replayed, &again), (201, true, &run));
        let (_, _, rerun) = reconcile(&daemon, &format!("rerun-{w}"), w, &today).await;
        assert_ne!(rerun["id"], run["id"]);
        assert_eq!(
            (&rerun["ours"], &rerun["theirs"], &rerun["discrepancies"]),
            (&run["ours"], &run["theirs"], &run["discrepancies"])
        );
    }
    // Listed newest first, filtered.
    let (status, list) = daemon
        .get(
            &format!("/v1/reconciliations?merchant_id=m_demo&provider=alipay&date={today}"),
            Some(ERP),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let statuses: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["completed", "completed", "bill_not_ready"]);
    // Another merchant's key sees none of them, and may not ask.
    let (status, _) = daemon
        .get("/v1/reconciliations?merchant_id=m_demo", Some(OTHER_ERP))
        .await;
    assert_eq!(status, 403);
    let (_, theirs) = daemon.get("/v1/reconciliations", Some(OTHER_ERP)).await;
    assert_eq!(theirs["data"], json!([]));

    // A day long gone without any transaction: nothing to report (Alipay publishes an empty
    // bill; WeChat Pay says it has none).
    for (wallet, source) in [(ALIPAY, "download"), (WECHATPAY, "none")] {
        let (status, _, empty) = reconcile(
            &daemon,
            &format!("old-{}", wallet.name),
            wallet.name,
            "2020-01-01",
        )
        .await;
        assert_eq!(
            (status, empty["status"].as_str(), empty["source"].as_str()),
            (201, Some("completed"), Some(source)),
            "{empty}"
        );
        assert_eq!(
            (
                empty["discrepancies"]["total"].as_u64(),
                empty["theirs"]["payments"].as_u64()
            ),
            (Some(0), Some(0)),
            "{empty}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_injected_discrepancy_is_reported_once_and_an_upload_reads_the_same() {
    let (simulator, daemon) = with_simulator();
    let today = china_today();
    for wallet in [ALIPAY, WECHATPAY] {
        let w = wallet.name;
        let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
        let kept = id(&barcode(&daemon, wallet, &format!("{w}-1"), "11.00", "00", "T-1").await);
        let left_out = id(&barcode(&daemon, wallet, &format!("{w}-2"), "12.00", "00", "T-2").await);
        let misstated =
            id(&barcode(&daemon, wallet, &format!("{w}-3"), "13.00", "00", "T-3").await);
        let refunded = id(&barcode(&daemon, wallet, &format!("{w}-4"), "14.00", "00", "T-4").await);
        let refund_left_out = refund(&daemon, &format!("{w}-r"), &refunded, "4.00").await;
        // A payer who never confirms: pending here, and the bill will say paid.
        let pending = barcode(&daemon, wallet, &format!("{w}-5"), "15.00", "60", "T-5").await;
        assert_eq!(pending["status"], "pending", "{pending}");
        let pending = id(&pending);
        // Declined here, and the bill will say paid: a stray charge.
        let declined = barcode(&daemon, wallet, &format!("{w}-6"), "16.00", "51", "T-6").await;
        let declined = declined["error"]["payment"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let theirs_only = format!("pay_sim_{w}_only");
        for injected in [
            json!({"kind": "theirs_only", "out_trade_no": theirs_only, "amount_minor": 1700}),
            json!({"kind": "ours_only", "out_trade_no": left_out}),
            json!({"kind": "amount_mismatch", "out_trade_no": misstated, "amount_minor": 1301}),
            json!({"kind": "status_mismatch", "out_trade_no": pending}),
            json!({"kind": "status_mismatch", "out_trade_no": declined}),
            json!({"kind": "missing_refund", "out_refund_no": refund_left_out}),
        ] {
            let (status, body) = simulator
                .control(&format!("{w}/bills/discrepancies"), injected)
                .await;
            assert_eq!(status, 200, "{body}");
        }
        close_day(&simulator, w, &today).await;

        let (status, _, run) = reconcile(&daemon, &format!("run-{w}"), w, &today).await;
        assert_eq!(
            (status, run["status"].as_str()),
            (201, Some("completed")),
            "{run}"
        );
        let found = discrepancies(&daemon, &run).await;
        let mut kinds: Vec<(String, String)> = found
            .iter()
            .map(|d| {
                let object = d["ours"]["refund_id"]
                    .as_str()
                    .or(d["ours"]["payment_id"].as_str())
                    .or(d["theirs"]["payment_id"].as_str())
                    .unwrap()
                    .to_owned();
                (d["kind"].as_str().unwrap().to_owned(), object)
            })
            .collect();
        kinds.sort();
        let mut expected = vec![
            ("amount_mismatch".to_owned(), misstated.clone()),
            ("missing_refund".to_owned(), refund_left_out.clone()),
            ("ours_only".to_owned(), left_out.clone()),
            ("status_mismatch".to_owned(), pending.clone()),
            ("stray_charge".to_owned(), declined.clone()),
            ("theirs_only".to_owned(), theirs_only.clone()),
        ];
        expected.sort();
        assert_eq!(kinds, expected, "{w}: {found:?}");
        assert_eq!(run["discrepancies"]["critical"], 2, "{run}");
        let misstatement = found
            .iter()
            .find(|d| d["kind"] == "amount_mismatch")
            .unwrap();
        assert_eq!(
            (
                misstatement["ours"]["amount"].as_str(),
                misstatement["theirs"]["amount"].as_str()
            ),
            (Some("13.00"), Some("13.01"))
        );
        assert!(
            misstatement["theirs"]["line"].as_u64().is_some(),
            "{misstatement}"
        );
        let stray = found.iter().find(|d| d["kind"] == "stray_charge").unwrap();
        assert_eq!(
            (stray["severity"].as_str(), stray["ours"]["status"].as_str()),
            (Some("critical"), Some("failed"))
        );
        // The pending payment was asked about; its payer never confirmed: still pending,
        // nothing applied. The declined one stays failed (the state machine does not move).
        assert!(
            found
                .iter()
                .find(|d| d["kind"] == "status_mismatch")
                .unwrap()["resolution"]
                .is_null()
        );
        assert_eq!(
            daemon
                .get(&format!("/v1/payments/{declined}"), Some(ERP))
                .await
                .1["status"],
            "failed"
        );
        assert_eq!(
            daemon
                .get(&format!("/v1/payments/{kept}"), Some(ERP))
                .await
                .1["status"],
            "succeeded"
        );

        // The monitor raised a critical alert naming the run (its event reached the bus).
        let mut alert = Value::Null;
        for _ in 0..100 {
            let (_, alerts) = daemon
                .get("/v1/alerts?rule=reconciliation_critical", Some(ERP))
                .await;
            if let Some(found) = alerts["data"].as_array().and_then(|a| {
                a.iter()
                    .find(|x| x["evidence"]["reconciliation"] == run["id"])
            }) {
                alert = found.clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            (
                alert["severity"].as_str(),
                alert["subject"]["provider"].as_str()
            ),
            (Some("critical"), Some(w)),
            "{alert}"
        );
        assert_eq!(alert["evidence"]["discrepancies"], 6);

        // Paged by discrepancy id, and as CSV.
        let (_, first) = daemon
            .get(
                &format!("/v1/reconciliations/{}/discrepancies?limit=4", id(&run)),
                Some(ERP),
            )
            .await;
        assert_eq!(
            (
                first["data"].as_array().unwrap().len(),
                first["has_more"].as_bool()
            ),
            (4, Some(true)),
            "{first}"
        );
        let last = first["data"][3]["id"].as_str().unwrap();
        let (_, rest) = daemon
            .get(
                &format!(
                    "/v1/reconciliations/{}/discrepancies?limit=4&starting_after={last}",
                    id(&run)
                ),
                Some(ERP),
            )
            .await;
        assert_eq!(
            (
                rest["data"].as_array().unwrap().len(),
                rest["has_more"].as_bool()
            ),
            (2, Some(false)),
            "{rest}"
        );
        let csv = daemon
            .client
            .get(daemon.url(&format!("/v1/reconciliations/{}/discrepancies", id(&run))))
            .bearer_auth(ERP)
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap();
        assert!(
            csv.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let text = csv.text().await.unwrap();
        assert_eq!(text.lines().count(), 7, "{text}");
        assert!(
            text.lines()
                .any(|l| l.contains("theirs_only") && l.contains(&theirs_only)),
            "{text}"
        );

        // The bill as the merchant downloads it from the portal, uploaded: the same result.
        let file = daemon
            .client
            .get(format!(
                "{}/_sim/{w}/bills/file?merchant={}&date={today}",
                simulator.base_url,
                account(wallet)
            ))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        let (status, uploaded) = upload(
            &daemon,
            &format!("up-{w}"),
            w,
            &today,
            "bill.csv",
            file.clone(),
        )
        .await;
        assert_eq!(
            (status, uploaded["source"].as_str()),
            (201, Some("upload")),
            "{uploaded}"
        );
        assert_eq!(
            (
                &uploaded["ours"],
                &uploaded["theirs"],
                &uploaded["discrepancies"]
            ),
            (&run["ours"], &run["theirs"], &run["discrepancies"])
        );

        // Cut short, or for another day: refused naming the line, and nothing recorded.
        let (_, before) = daemon.get("/v1/reconciliations?limit=100", Some(ERP)).await;
        let (status, refused) = upload(
            &daemon,
            &format!("cut-{w}"),
            w,
            &today,
            "bill.csv",
            file[..file.len() * 2 / 3].to_vec(),
        )
        .await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (422, Some("bill_invalid")),
            "{refused}"
        );
        let (status, refused) = upload(
            &daemon,
            &format!("day-{w}"),
            w,
            "2020-01-02",
            "bill.csv",
            file.clone(),
        )
        .await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (422, Some("bill_invalid")),
            "{refused}"
        );
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("line"),
            "{refused}"
        );
        let (_, after) = daemon.get("/v1/reconciliations?limit=100", Some(ERP)).await;
        assert_eq!(
            before["data"].as_array().unwrap().len(),
            after["data"].as_array().unwrap().len()
        );
    }
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_runs() {
    let daemon = Daemon::start();
    for (body, code) in [
        (
            json!({"merchant_id": "m_demo", "provider": "mock", "date": "2026-13-01"}),
            "parameter_invalid",
        ),
        (
            json!({"merchant_id": "m_demo", "provider": "mock", "date": "2999-01-01"}),
            "parameter_invalid",
        ),
        (
            json!({"merchant_id": "m_demo", "provider": "mock"}),
            "parameter_invalid",
        ),
        (
            json!({"merchant_id": "m_demo", "provider": "mock", "date": "2026-01-01", "x": 1}),
            "parameter_unknown",
        ),
        // The mock wallet reads bills but cannot download them.
        (
            json!({"merchant_id": "m_demo", "provider": "mock", "date": "2026-01-01"}),
            "wallet_not_supported",
        ),
        (
            json!({"merchant_id": "m_demo", "provider": "nope", "date": "2026-01-01"}),
            "wallet_not_supported",
        ),
    ] {
        let (status, _, answer) = daemon
            .post_idempotent("/v1/reconciliations", ERP, Some(&body.to_string()), &body)
            .await;
        assert!(status == 400 || status == 422, "{body}: {status} {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
    let body = json!({"merchant_id": "m_other", "provider": "mock", "date": "2026-01-01"});
    let (status, _, _) = daemon
        .post_idempotent("/v1/reconciliations", ERP, Some("other"), &body)
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = daemon
        .post_idempotent("/v1/reconciliations", POS, Some("pos"), &body)
        .await;
    assert_eq!(status, 403);
    let (status, _, missing) = daemon
        .post_idempotent("/v1/reconciliations", ERP, None, &body)
        .await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (400, Some("idempotency_key_missing"))
    );
    let (status, _) = daemon
        .get("/v1/reconciliations/rec_nothing", Some(ADMIN))
        .await;
    assert_eq!(status, 404);
    // A mock bill uploaded: the mock reads its own format.
    let form = reqwest::multipart::Form::new()
        .text("merchant_id", "m_demo")
        .text("provider", "mock")
        .text("date", "2026-01-01")
        .part(
            "bill",
            reqwest::multipart::Part::bytes(b"payment,pay_nobody,,1250,CNY,8\n".to_vec())
                .file_name("m.csv"),
        );
    let response = daemon
        .client
        .post(daemon.url("/v1/reconciliations"))
        .bearer_auth(ERP)
        .header("idempotency-key", "mock-upload")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let run: Value = response.json().await.unwrap();
    assert_eq!(
        (
            run["discrepancies"]["total"].as_u64(),
            run["discrepancies"]["by_kind"]["theirs_only"].as_u64()
        ),
        (Some(1), Some(1)),
        "{run}"
    );
    // A form without its bill, and an unknown part.
    for form in [
        reqwest::multipart::Form::new()
            .text("merchant_id", "m_demo")
            .text("provider", "mock")
            .text("date", "2026-01-01"),
        reqwest::multipart::Form::new()
            .text("merchant_id", "m_demo")
            .text("provider", "mock")
            .text("date", "2026-01-01")
            .text("x", "1"),
    ] {
        let response = daemon
            .client
            .post(daemon.url("/v1/reconciliations"))
            .bearer_auth(ERP)
            .header("idempotency-key", "bad-form")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }
}
