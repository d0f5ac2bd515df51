//! A full or read-only disk under the data dir (issue "benchmarks and gauntlet"): new work is
//! refused with a clear 503 while replays still answer, nothing acknowledged is lost, and the
//! daemon takes new work again once space returns.
//!
//! The data dir lives on a small tmpfs that the test mounts (the suite runs as root, as CI
//! does); the disk is filled with a real preallocated file, so sled meets the real ENOSPC.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// A tmpfs mounted for one test; unmounted on drop.
struct Tmpfs {
    _parent: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_mib`. As root (CI runs the suite as root) a failure fails the
    /// test; without root there is no way to mount one, and the test says it did not run.
    fn mount(size_mib: u64) -> Option<Tmpfs> {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        if !status.success() {
            assert!(
                !rustix::process::getuid().is_root(),
                "root could not mount a tmpfs at {}",
                path.display()
            );
            eprintln!("NOT RUN: mounting a tmpfs needs root; run the suite as root (CI does)");
            return None;
        }
        Some(Tmpfs {
            _parent: parent,
            path,
        })
    }

    fn remount(&self, mode: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success(), "remount {mode}");
    }

    fn free_bytes(&self) -> u64 {
        let stat = rustix::fs::statvfs(&self.path).unwrap();
        stat.f_bavail * stat.f_frsize
    }

    /// Fills the file system until `leave` bytes are free, with a preallocated file.
    fn fill_leaving(&self, leave: u64) -> PathBuf {
        let filler = self.path.join("filler");
        let file = std::fs::File::create(&filler).unwrap();
        let size = self.free_bytes().saturating_sub(leave);
        rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size).unwrap();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

fn config(min_free_mb: u64) -> String {
    let text = default_config_text();
    assert!(text.contains("min_free_mb = 64"));
    text.replace("min_free_mb = 64", &format!("min_free_mb = {min_free_mb}"))
}

/// A barcode payment of 12.<cents> CNY.
fn payment(cents: u32) -> Value {
    barcode(&format!("12.{cents:02}"))
}

/// Posts with an idempotency key; `None` when the connection failed (the daemon exited).
async fn post(
    daemon: &Daemon,
    path: &str,
    api_key: &str,
    key: &str,
    body: &Value,
) -> Option<(u16, Option<String>, Option<String>, Value)> {
    let response = daemon
        .client
        .post(daemon.url(path))
        .bearer_auth(api_key)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let retry_after = header("retry-after");
    let replayed = header("idempotent-replayed");
    let body = response.json().await.ok()?;
    Some((status, retry_after, replayed, body))
}

/// Waits past the daemon's free-space re-check interval (100 ms).
async fn let_the_guard_look() {
    tokio::time::sleep(Duration::from_millis(250)).await;
}

async fn ready(daemon: &Daemon) -> (u16, Value) {
    let (status, body) = daemon.get("/readyz", None).await;
    let storage = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "storage")
        .cloned()
        .unwrap_or_else(|| panic!("no storage check in {body}"));
    (status, storage)
}

async fn metric(daemon: &Daemon, name: &str) -> f64 {
    daemon
        .metric(name)
        .await
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

fn verify(data_dir: &Path) {
    let verify = run_paygated(&["store", "verify", "--data-dir", data_dir.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    assert!(report.contains(": 0 violations"), "{report}");
    // Every test here has paid first: an empty store would mean the wrong folder.
    assert!(!report.contains("checked 0 payments"), "{report}");
}

/// `store verify` on a folder without an embedded store refuses it (exit 2, saying where the
/// data of a daemon on PostgreSQL is) rather than making an empty store and calling it clean.
#[test]
fn store_verify_refuses_a_folder_without_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let verify = run_paygated(&[
        "store",
        "verify",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&verify.stderr);
    assert_eq!(verify.status.code(), Some(2), "{said}");
    assert!(said.contains("holds no embedded store"), "{said}");
    assert!(said.contains("--config"), "{said}");
    assert!(!dir.path().join("db").exists(), "nothing was made");
}

/// A payment acknowledged with 201: its key, amount cents and answer.
type Acknowledged = (String, u32, Value);

/// Three payments, each acknowledged with 201.
async fn pay_three(daemon: &Daemon) -> Vec<Acknowledged> {
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        let key = format!("before-{i}");
        let (status, _, _, body) = post(daemon, "/v1/payments", POS, &key, &payment(i))
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        acknowledged.push((key, i, body));
    }
    acknowledged
}

/// Every acknowledged payment's key replays its answer, byte for byte.
async fn assert_replayed(daemon: &Daemon, acknowledged: &[Acknowledged]) {
    for (key, i, first) in acknowledged {
        let (status, _, replayed, body) = post(daemon, "/v1/payments", POS, key, &payment(*i))
            .await
            .unwrap();
        assert_eq!((status, replayed.as_deref()), (201, Some("true")), "{key}");
        assert_eq!(
            &body, first,
            "{key}: the acknowledged answer, byte for byte"
        );
    }
}

/// SIGTERM, a clean exit, then `store verify` on the data dir.
fn stop_and_verify(mut daemon: Daemon, data_dir: &Path) {
    daemon.terminate();
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));
    verify(data_dir);
}

#[tokio::test]
async fn below_the_reserve_new_work_gets_503_replays_answer_and_space_returning_heals() {
    if !sled_only("the data dir's free-space reserve") {
        return;
    }
    let Some(disk) = Tmpfs::mount(64) else {
        return;
    };
    let data_dir = disk.path.join("data");
    let daemon = Daemon::with_config_on(config(16), &data_dir);
    let (status, _, _, paid) = post(&daemon, "/v1/payments", POS, "before-1", &payment(1))
        .await
        .unwrap();
    assert_eq!((status, paid["status"].as_str()), (201, Some("succeeded")));
    assert_eq!(ready(&daemon).await.0, 200);
    assert_eq!(
        metric(&daemon, "paygate_store_accepting_new_work").await,
        1.0
    );

    let filler = disk.fill_leaving(8 << 20);
    let_the_guard_look().await;

    // A new payment: refused before anything is recorded, with a message saying why.
    let (status, retry_after, _, body) =
        post(&daemon, "/v1/payments", POS, "during-1", &payment(2))
            .await
            .unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        error_kind(&body),
        ("api_error".to_owned(), "storage_low".to_owned())
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("min_free_mb") && message.contains("nothing accepted is lost"),
        "{message}"
    );
    assert_eq!(retry_after.as_deref(), Some("5"));
    // A new refund too.
    let refund = json!({"amount": "1.00"});
    let refund_path = format!("/v1/payments/{}/refunds", paid["id"].as_str().unwrap());
    let (status, _, _, body) = post(&daemon, &refund_path, ERP, "refund-1", &refund)
        .await
        .unwrap();
    assert_eq!((status, error_kind(&body).1.as_str()), (503, "storage_low"));
    // An acknowledged request replays: it needs no space.
    let (status, _, replayed, again) = post(&daemon, "/v1/payments", POS, "before-1", &payment(1))
        .await
        .unwrap();
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(again, paid);
    // Operators see it.
    let (status, storage) = ready(&daemon).await;
    assert_eq!(status, 503);
    assert_eq!(storage["ok"], false);
    assert!(
        storage["detail"]
            .as_str()
            .unwrap()
            .contains("below the 16 MiB reserve"),
        "{storage}"
    );
    assert_eq!(
        metric(&daemon, "paygate_store_accepting_new_work").await,
        0.0
    );
    assert!(metric(&daemon, "paygate_store_free_bytes").await < (16 << 20) as f64);

    // Space returns: the refused keys were never claimed, so the same requests now succeed.
    std::fs::remove_file(filler).unwrap();
    let_the_guard_look().await;
    let (status, _, replayed, body) = post(&daemon, "/v1/payments", POS, "during-1", &payment(2))
        .await
        .unwrap();
    assert_eq!((status, replayed), (201, None), "{body}");
    assert_eq!(body["status"], "succeeded");
    let (status, _, _, body) = post(&daemon, &refund_path, ERP, "refund-1", &refund)
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(ready(&daemon).await.0, 200);
    assert!(
        !daemon.logs().contains("\"level\":\"ERROR\""),
        "the reserve kept sled away from any I/O error:\n{}",
        daemon.logs()
    );
    stop_and_verify(daemon, &data_dir);
}

#[tokio::test]
async fn a_write_the_disk_refuses_ends_the_process_and_a_restart_loses_nothing() {
    if !sled_only("a write its disk refuses") {
        return;
    }
    // No reserve: the disk really fills under sled, which cannot continue after a failed
    // write; the daemon answers 503, exits 75 for its supervisor, and loses nothing.
    let Some(disk) = Tmpfs::mount(64) else {
        return;
    };
    let data_dir = disk.path.join("data");
    let mut daemon = Daemon::with_config_on(config(0), &data_dir);
    let mut acknowledged = pay_three(&daemon).await;
    let filler = disk.fill_leaving(0);
    let mut refused = None;
    for i in 10..200 {
        let key = format!("full-{i}");
        match post(&daemon, "/v1/payments", POS, &key, &payment(i)).await {
            Some((201, _, _, body)) => acknowledged.push((key, i, body)),
            Some((status, _, _, body)) => {
                refused = Some((status, body));
                break;
            }
            None => break,
        }
    }
    let (status, body) = refused.expect("a write on a full disk must fail");
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_kind(&body).1, "store_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retry with the same Idempotency-Key"),
        "{body}"
    );
    assert_eq!(daemon.wait(Duration::from_secs(15)), Some(75));
    assert!(
        daemon
            .logs()
            .contains("so that the supervisor restarts paygated"),
        "{}",
        daemon.logs()
    );

    // The operator (or the supervisor, once space is back) starts it again.
    std::fs::remove_file(filler).unwrap();
    let daemon = Daemon::with_config_on(config(0), &data_dir);
    assert_replayed(&daemon, &acknowledged).await;
    let (status, _, _, body) = post(&daemon, "/v1/payments", POS, "after-1", &payment(99))
        .await
        .unwrap();
    assert_eq!((status, body["status"].as_str()), (201, Some("succeeded")));
    stop_and_verify(daemon, &data_dir);
}

#[tokio::test]
async fn a_read_only_data_dir_is_refused_at_start_with_its_reason_and_nothing_is_lost() {
    let Some(disk) = Tmpfs::mount(32) else {
        return;
    };
    let data_dir = disk.path.join("data");
    let daemon = Daemon::with_config_on(config(0), &data_dir);
    let (status, _, _, paid) = post(&daemon, "/v1/payments", POS, "ro-1", &payment(1))
        .await
        .unwrap();
    assert_eq!(status, 201);
    daemon.terminate();
    let mut daemon = daemon;
    assert_eq!(daemon.wait(Duration::from_secs(10)), Some(0));

    disk.remount("ro");
    let config_file = disk._parent.path().join("paygate.toml");
    std::fs::write(&config_file, config(0)).unwrap();
    let output = run_paygated(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config_file.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(data_dir.to_str().unwrap()) && stderr.contains("Read-only file system"),
        "{stderr}"
    );

    disk.remount("rw");
    let daemon = Daemon::with_config_on(config(0), &data_dir);
    let (status, _, replayed, again) = post(&daemon, "/v1/payments", POS, "ro-1", &payment(1))
        .await
        .unwrap();
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(again, paid);
}

#[tokio::test]
async fn a_flush_that_hangs_ends_the_process_and_a_restart_loses_nothing() {
    if !sled_only("the flush watchdog") {
        return;
    }
    // sled 0.34 can deadlock under load, and a disk can hang: either way a flush never
    // returns. The watchdog ends the process (as a kill -9 would) for its supervisor.
    let text = default_config_text();
    assert!(text.contains("flush_stall_s = 30"));
    let text = text.replace("flush_stall_s = 30", "flush_stall_s = 2");
    let mut daemon = Daemon::with_config(text.clone());
    let acknowledged = pay_three(&daemon).await;
    let (status, _, _, body) = post(
        &daemon,
        "/v1/_test/stall-store",
        ADMIN,
        "stall-1",
        &json!({"ms": 120_000}),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    // A payment caught in the hang is never acknowledged.
    let caught = post(&daemon, "/v1/payments", POS, "caught", &payment(50)).await;
    assert!(caught.is_none(), "answered during a hung flush: {caught:?}");
    assert_eq!(daemon.wait(Duration::from_secs(20)), Some(75));
    assert!(
        daemon.logs().contains("the store is stuck"),
        "{}",
        daemon.logs()
    );

    // The second daemon's own `data_dir()` is not where it keeps its data: name it here.
    let data_dir = daemon.data_dir();
    let daemon = Daemon::with_config_on(text, &data_dir);
    assert_replayed(&daemon, &acknowledged).await;
    // The caught payment's retry finishes it (resumed or, if its record never reached the
    // disk, made anew): once, either way.
    let (status, _, _, body) = post(&daemon, "/v1/payments", POS, "caught", &payment(50))
        .await
        .unwrap();
    assert_eq!((status, body["status"].as_str()), (201, Some("succeeded")));
    let (_, list) = daemon
        .get("/v1/payments?merchant_id=m_demo&limit=100", Some(ERP))
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 4, "{list}");
    stop_and_verify(daemon, &data_dir);
}

/// Unpacks the version-1 data dir made by paygated at 0e07e11 (`fixtures/make-v1-datadir.sh`)
/// into a fresh folder; returns it with the answers that daemon gave.
fn version_1_data_dir() -> (tempfile::TempDir, PathBuf, Value) {
    let fixtures = repo_root().join("tests/e2e/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(fixtures.join("datadir-v1.tar.gz"))
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "tar could not unpack the fixture");
    let answers: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("datadir-v1-answers.json")).unwrap(),
    )
    .unwrap();
    let data = dir.path().join("data");
    (dir, data, answers)
}

#[tokio::test]
async fn a_data_dir_of_the_previous_release_is_migrated_and_loses_nothing() {
    if !sled_only("a data dir's migration") {
        return;
    }
    let (_keep, data, answers) = version_1_data_dir();
    let receiver = WebhookReceiver::on_free_port().await;
    // A new endpoint (never tried, so owed deliveries go out at once), and retries for
    // longer than the fixture's age.
    let config = default_config_text()
        .replace("retry_for_s = 86400", "retry_for_s = 3153600000")
        .replacen(
            "\ntimeout_ms = 10000\n",
            &format!(
                "\ntimeout_ms = 10000\n\n[[webhooks.endpoints]]\nname = \"books\"\nurl = \"http://127.0.0.1:{}/hooks\"\nsecret = \"inline:books-secret\"\n",
                receiver.port
            ),
            1,
        );
    assert!(config.contains("retry_for_s = 3153600000") && config.contains("name = \"books\""));
    let daemon = Daemon::with_config_on(config, &data);
    assert!(
        daemon.logs().contains("migrated the data dir"),
        "{}",
        daemon.logs()
    );

    // Every answer replays byte for byte, also the payment's, which a refund changed since.
    for key in ["fx-1", "fx-3"] {
        let first = answers[key].as_str().unwrap();
        let body = if key == "fx-1" {
            json!({"merchant_id":"m_demo","amount":"8.00","currency":"CNY","method":"barcode","auth_code":"990000000000001234","order_id":"FX-1","terminal_id":"till-1"})
        } else {
            json!({"merchant_id":"m_demo","amount":"12.50","currency":"CNY","method":"qr","provider":"mock","order_id":"FX-3"})
        };
        let response = daemon
            .client
            .post(daemon.url("/v1/payments"))
            .bearer_auth("pg_demo_erp")
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["idempotent-replayed"], "true", "{key}");
        assert_eq!(response.text().await.unwrap(), first, "{key}");
    }
    let paid: Value = serde_json::from_str(answers["fx-1"].as_str().unwrap()).unwrap();
    let id = paid["id"].as_str().unwrap();
    let refund: Value = serde_json::from_str(answers["fx-2"].as_str().unwrap()).unwrap();
    let (status, now) = daemon
        .get(&format!("/v1/payments/{id}"), Some("pg_demo_erp"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(now["status"], "succeeded");
    let (status, found) = daemon
        .get(
            &format!("/v1/refunds/{}", refund["id"].as_str().unwrap()),
            Some("pg_demo_erp"),
        )
        .await;
    assert_eq!((status, &found["amount"]), (200, &refund["amount"]));

    // The order ids are still taken.
    let (status, _, body) = daemon
        .pay(
            "fx-new",
            json!({"merchant_id":"m_demo","amount":"1.00","currency":"CNY","method":"qr","provider":"mock","order_id":"FX-1"}),
        )
        .await;
    assert_eq!(
        (status, error_kind(&body).1.as_str()),
        (409, "order_id_in_use")
    );

    // The deliveries owed are made with the bodies they had: the payment as it was when it
    // succeeded, before its refund.
    let succeeded = receiver
        .wait_for("payment.succeeded", |e| e["type"] == "payment.succeeded")
        .await
        .json();
    assert_eq!(succeeded["data"]["id"], id);
    assert_eq!(succeeded["data"]["status"], "succeeded");
    assert_eq!(
        succeeded["data"]["amount_refunded"], "0.00",
        "the payment as the event saw it"
    );
    assert_eq!(now["amount_refunded"], "3.00");
    receiver
        .wait_for("the refund's event", |e| {
            e["data"]["id"] == refund["id"] && e["type"].as_str().unwrap().starts_with("refund.")
        })
        .await;

    // New work goes on, and the migrated dir verifies clean.
    let (status, _, _) = daemon.pay("fx-4", barcode("6.00")).await;
    assert_eq!(status, 201);
    drop(daemon);
    let verify = run_paygated(&["store", "verify", "--data-dir", data.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{out}");
    assert!(out.contains("0 violations"), "{out}");
}

#[test]
fn store_migrate_migrates_once_and_says_so() {
    if !sled_only("a data dir's migration") {
        return;
    }
    let (_keep, data, _) = version_1_data_dir();
    let dir = data.to_str().unwrap();
    let first = run_paygated(&["store", "migrate", "--data-dir", dir]);
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{out}");
    assert!(out.contains("from schema version 1 to 2"), "{out}");
    let again = run_paygated(&["store", "migrate", "--data-dir", dir]);
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(out.contains("nothing to migrate"), "{out}");
}
