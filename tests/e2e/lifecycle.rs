//! Start-up and shutdown: the data-dir lock, the schema version, and graceful drain.

use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn second_daemon_on_the_same_data_dir_exits_with_a_clear_message() {
    // On both engines: on PostgreSQL the data dir keeps the daemon's name among those
    // sharing the database.
    let first = Daemon::start();
    let config = first.dir.path().join("paygate.toml");
    let output = run_paygated(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        first.data_dir().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use by another paygated"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
    // The first daemon is unaffected.
    let (status, _) = first.get("/readyz", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test-hooks feature, which cargo xtask test turns on"
)]
async fn sigterm_lets_a_slow_request_finish_then_exits_0() {
    let mut daemon = Daemon::start();
    let client = daemon.client.clone();
    let url = daemon.url("/v1/_test/echo");
    let slow = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(POS)
            .header("content-type", "application/json")
            .body(r#"{"delay_ms":1500,"payload":"finished"}"#)
            .send()
            .await
    });
    // Let the request reach the handler, then ask the daemon to stop.
    tokio::time::sleep(Duration::from_millis(400)).await;
    daemon.terminate();
    let sent_at = Instant::now();

    let response = slow
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["payload"], "finished");

    let code = tokio::task::spawn_blocking(move || {
        let code = daemon.wait(Duration::from_secs(15));
        (code, daemon)
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "logs:\n{}", code.1.logs());
    assert!(sent_at.elapsed() < Duration::from_secs(15));
    let logs = code.1.logs();
    assert!(logs.contains("SIGTERM"), "{logs}");
    let last_words = if on_postgres() {
        "bye"
    } else {
        "store flushed"
    };
    assert!(logs.contains(last_words), "{logs}");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test-hooks feature, which cargo xtask test turns on"
)]
async fn drain_time_bounds_the_shutdown() {
    let config = format!(
        "{}\n",
        default_config_text().replace("drain_timeout_ms = 10000", "drain_timeout_ms = 300")
    );
    let mut daemon = Daemon::with_config(config);
    let client = daemon.client.clone();
    let url = daemon.url("/v1/_test/echo");
    let slow = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(POS)
            .header("content-type", "application/json")
            .body(r#"{"delay_ms":20000}"#)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.terminate();
    let (code, daemon) =
        tokio::task::spawn_blocking(move || (daemon.wait(Duration::from_secs(10)), daemon))
            .await
            .unwrap();
    assert_eq!(code, Some(0));
    assert!(
        daemon.logs().contains("drain time ran out"),
        "{}",
        daemon.logs()
    );
    assert!(
        slow.await.unwrap().is_err(),
        "the cut-off request fails at the client"
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test-hooks feature, which cargo xtask test turns on"
)]
async fn new_connections_are_refused_while_draining() {
    let mut daemon = Daemon::start();
    let client = daemon.client.clone();
    let url = daemon.url("/v1/_test/echo");
    let slow = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(POS)
            .header("content-type", "application/json")
            .body(r#"{"delay_ms":1500}"#)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = reqwest::Client::new()
        .get(daemon.url("/healthz"))
        .send()
        .await;
    assert!(fresh.is_err(), "the listener is closed during the drain");
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    let code = tokio::task::spawn_blocking(move || daemon.wait(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn data_survives_a_restart_and_the_lock_is_released() {
    let mut first = Daemon::start();
    let data_dir = first.data_dir();
    first.terminate();
    let code = tokio::task::spawn_blocking(move || (first.wait(Duration::from_secs(10)), first))
        .await
        .unwrap();
    assert_eq!(code.0, Some(0));
    let second = Daemon::with_config_on(default_config_text(), &data_dir);
    let (status, body) = second.get("/readyz", None).await;
    assert_eq!(status, 200);
    let schema = if on_postgres() {
        paygate_daemon::store::postgres::SCHEMA_VERSION
    } else {
        2
    };
    assert!(
        body.to_string()
            .contains(&format!("schema version {schema}")),
        "{body}"
    );
}
