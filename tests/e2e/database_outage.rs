//! PostgreSQL stopped for ten seconds in the middle of a load, then started again
//! (PostgreSQL runs only; on a cluster of the test's own): every request got an answer that
//! stands or a 503 `database_unavailable`, none hung, every acknowledged payment is there
//! afterwards, `readyz` said why the daemon was not ready meanwhile, and the daemon serves
//! again without a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_under_load_loses_nothing_and_the_daemon_serves_again() {
    if !on_postgres() {
        eprintln!("(sled run: a database outage is the PostgreSQL engine's)");
        return;
    }
    let cluster = match paygate_daemon::store::postgres::testing::throwaway_cluster().await {
        Ok(cluster) => cluster,
        Err(why) => {
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("*** SKIPPED: no throwaway PostgreSQL cluster: {why} ***");
            return;
        }
    };
    let url = cluster.settings(&cluster.fresh_database().await).url;
    // The anomaly monitor off: the load is one till key paying small amounts fast, which it
    // would take for card testing.
    let shipped = default_config_text();
    assert!(
        shipped.contains("[monitor]\nenabled = true"),
        "the shipped config changed"
    );
    let config = format!(
        "{}\n[store.postgres]\nstatement_timeout_ms = 2000\n",
        shipped.replace("[monitor]\nenabled = true", "[monitor]\nenabled = false")
    );
    let daemon = on_database(&url, config);

    // Eight tills paying one after another, each payment with a key of its own.
    let answers: Arc<Mutex<BTreeMap<String, (u16, Value)>>> = Arc::default();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let tills: Vec<_> = (0..8)
        .map(|till| {
            let (client, base, answers, running) = (
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap(),
                daemon.base_url.clone(),
                answers.clone(),
                running.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0;
                while running.load(std::sync::atomic::Ordering::SeqCst) {
                    let key = format!("till-{till}-{n}");
                    n += 1;
                    let response = client
                        .post(format!("{base}/v1/payments"))
                        .bearer_auth(POS)
                        .header("idempotency-key", &key)
                        .json(&barcode("1.00"))
                        .send()
                        .await
                        .expect("an answer, never a hang");
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap();
                    answers.lock().unwrap().insert(key, (status, body));
                    if status == 503 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cluster = Arc::new(cluster);
    let control = cluster.clone();
    tokio::task::spawn_blocking(move || control.stop())
        .await
        .unwrap()
        .unwrap();
    let stopped_at = answers.lock().unwrap().len();
    // Meanwhile: not ready, and why.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, ready) = daemon.get("/readyz", None).await;
    assert_eq!(status, 503, "{ready}");
    assert!(ready.to_string().contains("store"), "{ready}");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let control = cluster.clone();
    tokio::task::spawn_blocking(move || control.start())
        .await
        .unwrap()
        .unwrap();
    // Served again without a restart: a payment succeeds within a minute.
    let mut served = false;
    for attempt in 0..120 {
        let (status, _, _) = daemon
            .pay(&format!("after-{attempt}"), barcode("1.00"))
            .await;
        if status == 201 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        served,
        "the daemon never served again; logs:\n{}",
        daemon.logs()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    for till in tills {
        till.await.unwrap();
    }

    let answers = answers.lock().unwrap().clone();
    assert!(stopped_at > 0, "the load ran before the outage");
    let unavailable = answers.values().filter(|(s, _)| *s == 503).count();
    assert!(unavailable > 0, "the outage was felt");
    for (key, (status, body)) in &answers {
        match status {
            201 => {
                // Acknowledged: it stands.
                let (status, stored) = daemon
                    .get(
                        &format!("/v1/payments/{}", body["id"].as_str().unwrap()),
                        Some(ERP),
                    )
                    .await;
                assert_eq!(status, 200, "{key}: {stored}");
                assert_eq!(stored["status"], body["status"], "{key}");
            }
            503 => assert_eq!(error_kind(body).1, "database_unavailable", "{key}: {body}"),
            other => panic!("{key}: {other} {body}"),
        }
    }
    // Each key, sent again, gets its payment: the acknowledged ones replayed as they were, the
    // others made now or found made (once each).
    let mut ids = std::collections::BTreeSet::new();
    for (key, (status, first)) in &answers {
        let (again, replayed, body) = daemon.pay(key, barcode("1.00")).await;
        assert_eq!(again, 201, "{key}: {body}");
        if *status == 201 {
            assert!(replayed, "{key}");
            assert_eq!(&body, first, "{key}");
        }
        assert!(
            ids.insert(body["id"].as_str().unwrap().to_owned()),
            "{key}: two keys, one payment"
        );
    }
}
