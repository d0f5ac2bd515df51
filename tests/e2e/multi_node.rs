//! Several daemons on one PostgreSQL database (PostgreSQL runs only): a request's key is held
//! by the daemon working on it; another daemon answers 409 until that daemon has stopped
//! answering past its lease, then takes the request over; the paused daemon, woken up,
//! changes nothing and answers what the key says.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// The tests' config with a short lease (so that a takeover comes within seconds) and the
/// janitor out of the way (it would resolve the payments the requests are working on).
fn config(lease_ms: u64) -> String {
    let config =
        default_config_text().replace("janitor_interval_ms = 3000", "janitor_interval_ms = 600000");
    format!("{config}\n[store.postgres]\nlease_ms = {lease_ms}\n")
}

fn multi_node(what: &str) -> bool {
    if !on_postgres() {
        eprintln!("(sled run: {what} needs daemons sharing a PostgreSQL database)");
        return false;
    }
    true
}

/// `POST /v1/payments` to `base_url` with `key`: status, replayed flag, body.
async fn pay_at(
    client: &reqwest::Client,
    base_url: &str,
    key: &str,
    body: &Value,
) -> (u16, bool, Value) {
    let response = client
        .post(format!("{base_url}/v1/payments"))
        .bearer_auth(POS)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (status, replayed, response.json().await.unwrap())
}

/// The ids of m_demo's payments, as `daemon` lists them.
async fn payment_ids(daemon: &Daemon) -> Vec<String> {
    let (status, page) = daemon
        .get("/v1/payments?merchant_id=m_demo&limit=100", Some(ERP))
        .await;
    assert_eq!(status, 200, "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_daemons_request_is_taken_over_and_its_late_writes_change_nothing() {
    if !multi_node("taking a request over from a paused daemon") {
        return;
    }
    // A 10 s lease: renewed every 3.3 s, so b's first retry, sent at once, finds it live
    // even on a loaded machine.
    let a = Daemon::with_config(config(10_000));
    let b = sharing_database_with(&a, config(10_000));
    // .64: the mock wallet answers after 1.5 s, time to pause a inside the call.
    let body = barcode("10.64");
    let on_a = {
        let (client, url, body) = (a.client.clone(), a.base_url.clone(), body.clone());
        tokio::spawn(async move { pay_at(&client, &url, "pause-1", &body).await })
    };
    // Once a has recorded the payment (its key claimed with it), it is in the call: pause it.
    let mut waited = 0;
    while payment_ids(&b).await.is_empty() {
        assert!(waited < 200, "a never recorded the payment");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    signal(a.pid(), "STOP");

    // b, at once: a's lease is live, the key is in progress.
    let (status, _, answer) = pay_at(&b.client, &b.base_url, "pause-1", &body).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(error_kind(&answer).1, "idempotency_in_progress");
    // Once the lease has run out, b takes the request over and finishes it.
    let mut taken_over = None;
    for _ in 0..120 {
        let (status, replayed, answer) = pay_at(&b.client, &b.base_url, "pause-1", &body).await;
        // 409 while a's lease runs; a 503 (the database slow to answer) is retried too.
        if status != 409 && status != 503 {
            taken_over = Some((status, replayed, answer));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, replayed, by_b) = taken_over.expect("b never took the request over");
    assert_eq!((status, replayed), (201, false), "{by_b}");
    assert_eq!(by_b["status"], "succeeded");

    // a wakes up: its call returns, its writes are refused, and it answers b's answer.
    signal(a.pid(), "CONT");
    let (status, replayed, by_a) = tokio::time::timeout(Duration::from_secs(60), on_a)
        .await
        .expect("a answers once woken")
        .unwrap();
    assert_eq!((status, replayed), (201, true), "{by_a}");
    assert_eq!(by_a, by_b);
    // One payment, as b left it: a's late write did not land.
    assert_eq!(payment_ids(&a).await, [by_b["id"].as_str().unwrap()]);
    let (_, stored) = a
        .get(
            &format!("/v1/payments/{}", by_b["id"].as_str().unwrap()),
            Some(ERP),
        )
        .await;
    assert_eq!(stored["status"], "succeeded");
    assert_eq!(stored["updated_at"], by_b["updated_at"], "{stored}");
    assert!(
        a.logs()
            .contains("another daemon took this request's key over"),
        "a says why it answered with b's answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sent_to_two_daemons_at_once_makes_one_payment() {
    if !multi_node("one key on two daemons") {
        return;
    }
    let a = Daemon::with_config(config(30_000));
    let b = sharing_database_with(&a, config(30_000));
    let body = barcode("20.64");
    let sends: Vec<_> = [&a, &b]
        .into_iter()
        .map(|daemon| {
            let (client, url, body) =
                (daemon.client.clone(), daemon.base_url.clone(), body.clone());
            tokio::spawn(async move { pay_at(&client, &url, "same-moment", &body).await })
        })
        .collect();
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.unwrap());
    }
    let made: Vec<_> = answers.iter().filter(|(s, r, _)| *s == 201 && !r).collect();
    assert_eq!(made.len(), 1, "{answers:?}");
    let id = made[0].2["id"].as_str().unwrap();
    for (status, replayed, answer) in &answers {
        match (status, replayed) {
            (201, _) => assert_eq!(answer["id"], id),
            (409, false) => assert_eq!(error_kind(answer).1, "idempotency_in_progress"),
            other => panic!("{other:?} {answer}"),
        }
    }
    assert_eq!(payment_ids(&b).await, [id]);
    // Once finished, the key replays its answer on either daemon.
    for daemon in [&a, &b] {
        let (status, replayed, answer) = daemon.pay("same-moment", body.clone()).await;
        assert_eq!((status, replayed), (201, true));
        assert_eq!(&answer, &made[0].2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_from_one_daemons_traffic_streams_on_another_and_its_block_holds_on_all() {
    if !multi_node("alerts and blocks across daemons") {
        return;
    }
    let config = format!(
        "{}\n[monitor.rules.card_testing]\nthreshold = 3\nwindow_s = 60\n",
        config(30_000)
    );
    // a starts first and takes the monitor's lease; the traffic goes to c.
    let a = Daemon::with_config(config.clone());
    let b = sharing_database_with(&a, config.clone());
    let c = sharing_database_with(&a, config);

    // An admin listens on b.
    let request = b.client.get(b.url("/v1/alerts/stream")).bearer_auth(ADMIN);
    let (connected, is_connected) = tokio::sync::oneshot::channel();
    let listener = tokio::spawn(async move {
        let response = request.send().await.unwrap();
        let _ = connected.send(());
        assert_eq!(response.status(), 200);
        tokio::time::timeout(
            Duration::from_secs(20),
            crate::monitor::next_alert_event(response, "card_testing"),
        )
        .await
        .expect("no card_testing alert on b's stream within 20 s")
    });
    let _ = tokio::time::timeout(Duration::from_secs(2), is_connected).await;

    // Card testing at one terminal, on c.
    for i in 1..=3 {
        let (status, _, payment) = c
            .pay(&format!("ct-{i}"), barcode_at("T-card", "1.00"))
            .await;
        assert_eq!(
            (status, payment["status"].as_str()),
            (201, Some("succeeded")),
            "{payment}"
        );
    }
    let alert = listener.await.unwrap();
    assert_eq!(alert["subject"]["terminal_id"], "T-card", "{alert}");

    // Every daemon refuses the terminal (each reads the blocks again within a second).
    for (n, daemon) in [&a, &b, &c].into_iter().enumerate() {
        let mut refused = None;
        for attempt in 0..100 {
            let (status, _, body) = daemon
                .pay(
                    &format!("blocked-{n}-{attempt}"),
                    barcode_at("T-card", "1.00"),
                )
                .await;
            if status == 403 {
                refused = Some(body);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let refused = refused.unwrap_or_else(|| panic!("daemon {n} never refused T-card"));
        assert_eq!(
            error_kind(&refused),
            ("permission_error".into(), "terminal_blocked".into())
        );
    }

    // An admin lifts the block on a: c lets the terminal pay again.
    let (_, listed) = b.get("/v1/blocks", Some(ADMIN)).await;
    let block_id = listed["data"][0]["id"]
        .as_str()
        .expect("b lists the block")
        .to_owned();
    let response = a
        .client
        .delete(a.url(&format!("/v1/blocks/{block_id}")))
        .bearer_auth(ADMIN)
        .header("idempotency-key", "unblock-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut paid_again = false;
    for attempt in 0..100 {
        let (status, _, _) = c
            .pay(&format!("after-{attempt}"), barcode_at("T-card", "1.00"))
            .await;
        if status == 201 {
            paid_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(paid_again, "c still refuses T-card after the lift");
}
