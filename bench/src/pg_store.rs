//! `paygate-bench pg-store <connection string> <clients> <seconds>`: the PostgreSQL engine's
//! storage port (`PgStore`), driven by `clients` tasks each making barcode payments one
//! after another, as the payments use case writes them (`begin_payment`, then
//! `update_payment_answering`: the provider's answer and the key's, committed together):
//! durable payments per second
//! and latency. The database must be empty (`cargo xtask bench postgres` makes a fresh one
//! and runs pgbench beside it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use paygate_daemon::store::postgres::{PgSettings, PgStore};
use paygate_daemon::store::{Begin, PaymentStore};

use crate::store_port::PaymentParts;

pub fn pg_store(url: &str, clients: usize, seconds: f64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(url, clients, seconds));
}

async fn run(url: &str, clients: usize, seconds: f64) {
    let settings = PgSettings {
        url: url.to_owned(),
        pool_size: clients,
        statement_timeout: Duration::from_secs(10),
        lease_ms: paygate_daemon::store::port::LEASE_MS_DEFAULT,
        node: None,
        ca_file: None,
    };
    let store = Arc::new(PgStore::open(&settings).await.expect("open the database"));
    let next = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let began = Instant::now();
                    pay(store.as_ref(), n).await;
                    latencies.push(began.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a client"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "pg-store: {clients} clients, {} payments in {elapsed:.1} s: {:.0} payments/s (3 transactions each), p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
    );
}

async fn pay(store: &PgStore, n: u64) {
    let parts = PaymentParts::of(n);
    match store
        .begin_payment(&parts.claim, &parts.record, &parts.created)
        .await
        .expect("begin")
    {
        Begin::Created => {}
        other => panic!("payment {n}: {other:?}"),
    }
    // Under the request's lease, with its answer, as the daemon writes it: one transaction.
    let (_, answered) = store
        .update_payment_answering(
            &parts.record.id,
            &parts.claim,
            &|p| parts.succeed(p, n),
            &|_| Some((201, parts.answer.clone())),
            parts.now + 41,
        )
        .await
        .expect("update")
        .expect("the payment exists");
    assert!(answered.is_some());
}
