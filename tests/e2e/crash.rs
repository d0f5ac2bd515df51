//! Crash safety (API.md §4, issue "payments" §6): `kill -9` while many requests are in
//! flight, restart, retry every request with its key.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn request(i: usize) -> Value {
    // A mix: instant success, a slow provider (.64, 1.5 s), a "user paying" (.61).
    let cents = match i % 3 {
        0 => "00",
        1 => "64",
        _ => "61",
    };
    barcode(&format!("{}.{cents}", 10 + i))
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: &Value,
) -> Option<(u16, Value)> {
    let response = client
        .post(url)
        .bearer_auth(POS)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.json().await.ok()?;
    Some((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_with_requests_in_flight_loses_and_doubles_nothing() {
    const CLIENTS: usize = 24;
    let config =
        default_config_text().replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200");
    let mut first = Daemon::with_config(config.clone());
    let url = first.url("/v1/payments");
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let client = first.client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                // Staggered, so that the kill finds requests at every step.
                tokio::time::sleep(Duration::from_millis(20 * i as u64)).await;
                send(&client, &url, &format!("crash-{i}"), &request(i)).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(first.pid(), "KILL");
    let _ = first.wait(Duration::from_secs(5));
    let mut acknowledged = BTreeMap::new();
    for (i, task) in tasks.into_iter().enumerate() {
        if let Some((status, body)) = task.await.unwrap()
            && status < 500
        {
            acknowledged.insert(i, (status, body));
        }
    }

    let mut second = Daemon::with_config_on(config.clone(), &first.data_dir());
    let url = second.url("/v1/payments");
    let mut ids = BTreeSet::new();
    for i in 0..CLIENTS {
        // Retry until the outcome is known (a retry may meet a still-unknown outcome).
        let mut answer = None;
        for _ in 0..50 {
            match send(&second.client, &url, &format!("crash-{i}"), &request(i)).await {
                Some((status, body)) if status < 500 && status != 409 => {
                    answer = Some((status, body));
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let (status, body) = answer.unwrap_or_else(|| panic!("request {i} never answered"));
        assert!(
            status == 201 || status == 200,
            "request {i}: {status} {body}"
        );
        if let Some((first_status, first_body)) = acknowledged.get(&i) {
            // An acknowledged result is the result: same payment, and if it was final,
            // the same status.
            assert_eq!(first_status, &201, "{first_body}");
            assert_eq!(body["id"], first_body["id"], "request {i}");
            if first_body["status"] != "pending" {
                assert_eq!(body["status"], first_body["status"], "request {i}");
            }
        }
        assert!(
            ids.insert(body["id"].as_str().unwrap().to_owned()),
            "two keys got one payment"
        );
    }
    // Exactly one payment per request: nothing lost, nothing doubled.
    let mut listed = BTreeSet::new();
    let mut after = String::new();
    loop {
        let (_, page) = second
            .get(
                &format!("/v1/payments?merchant_id=m_demo&limit=100{after}"),
                Some(ERP),
            )
            .await;
        for payment in page["data"].as_array().unwrap() {
            listed.insert(payment["id"].as_str().unwrap().to_owned());
        }
        if page["has_more"] != true {
            break;
        }
        after = format!(
            "&starting_after={}",
            page["data"].as_array().unwrap().last().unwrap()["id"]
                .as_str()
                .unwrap()
        );
    }
    assert_eq!(listed, ids, "one payment per request, no other");
    // And the stored data keeps every invariant (refund sums, indexes, keys, events).
    second.terminate();
    assert_eq!(second.wait(Duration::from_secs(10)), Some(0));
    let data = first.data_dir();
    assert_store_verified(&config, &data);
}
