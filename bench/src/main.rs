//! `paygate-bench`: the benchmarks behind `cargo xtask bench`. Each prints one JSON line per
//! result, which xtask collects into its report.
//!
//! - `plugin <mock.wasm> <cache dir>`: a fresh instance + one `create-payment` on the mock
//!   plugin, in-process through the daemon's real `PluginHost`, timed call by call.
//! - `payments <paygated> <config> <clients> <seconds> <group|each>`: starts the daemon and
//!   drives durable barcode payments through the mock wallet over loopback from `clients`
//!   concurrent clients, each request with its own idempotency key, every answer verified.
//! - `monitor <paygated> <config>`: the anomaly monitor's rule throughput on one thread and
//!   the latency from a triggering response to its alert on the SSE stream (`monitor.rs`).
//! - `baseline-server`: the bare axum handler `payments ... baseline` drives instead of the
//!   daemon (`baseline.rs`).
//! - `stores <tmp dir> <payments> <group> [relaxed]`: one barcode payment's writes through
//!   the daemon's own store and its storage port, a durable flush every `group` payments
//!   (`store_port.rs`).
//! - `trees <data dir>`: keys and bytes in each sled tree of a stopped daemon's data dir.
//! - `store [<tmp dir> <seconds> [<mode>,...]]`: sled flush alone against flush + `fdatasync`,
//!   one write per flush and 64 per flush (see `store.rs`); prints JSON lines, then a table.

mod baseline;
mod load;
mod measure;
mod monitor;
mod pg_store;
mod sled_lock;
mod store;
mod store_port;
mod trees;

use std::path::Path;
use std::sync::Arc;

/// The daemon's allocator (`daemon/src/main.rs`), so that in-process benchmarks of its code
/// (`plugin`, `stores`) pay what the daemon pays.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use std::time::{Duration, Instant};

use paygate_daemon::config::Config;
use paygate_daemon::metrics::Metrics;
use paygate_daemon::plugins::PluginHost;
use paygate_daemon::plugins::types::{CreatePaymentRequest, Method, Money, PaymentStatus};

const WARMUP_CALLS: usize = 2_000;
const MEASURED_CALLS: usize = 20_000;
/// Where `store` makes its sled dirs by default: on the repo's filesystem, removed after.
const STORE_TMP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-store-tmp");

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["plugin", mock, cache] => plugin(Path::new(mock), Path::new(cache)),
        ["applepay", plugin, cache, vectors] => {
            applepay(Path::new(plugin), Path::new(cache), Path::new(vectors))
        }
        ["payments", paygated, config, clients, seconds, flush] => load::payments(
            Path::new(paygated),
            Path::new(config),
            clients.parse().expect("clients is a number"),
            seconds.parse().expect("seconds is a number"),
            flush,
        ),
        [
            "payments-postgres",
            paygated,
            config,
            url,
            daemons,
            clients,
            seconds,
        ] => load::payments_postgres(
            Path::new(paygated),
            Path::new(config),
            url,
            daemons.parse().expect("daemons is a number"),
            clients.parse().expect("clients is a number"),
            seconds.parse().expect("seconds is a number"),
        ),
        ["monitor", paygated, config] => monitor::monitor(Path::new(paygated), Path::new(config)),
        ["baseline-server"] => baseline::serve(),
        ["store"] => store::store(Path::new(STORE_TMP), 3.0, None),
        ["store", dir, seconds] => store::store(
            Path::new(dir),
            seconds.parse().expect("seconds is a number"),
            None,
        ),
        ["store", dir, seconds, modes] => store::store(
            Path::new(dir),
            seconds.parse().expect("seconds is a number"),
            Some(modes),
        ),
        ["stores", dir, payments, group] => store_port::stores(
            Path::new(dir),
            payments.parse().expect("payments is a number"),
            group.parse().expect("group is a number"),
            false,
        ),
        ["stores", dir, payments, group, "relaxed"] => store_port::stores(
            Path::new(dir),
            payments.parse().expect("payments is a number"),
            group.parse().expect("group is a number"),
            true,
        ),
        ["pg-store", url, clients, seconds] => pg_store::pg_store(
            url,
            clients.parse().expect("clients is a number"),
            seconds.parse().expect("seconds is a number"),
        ),
        ["trees", dir] => trees::trees(Path::new(dir)),
        ["sled-lock"] => exit_on_error(sled_lock::sled_lock(Path::new(STORE_TMP), 3.0)),
        ["sled-lock-case", dir, seconds, writes, flusher] => exit_on_error(sled_lock::case(
            Path::new(dir),
            seconds.parse().expect("seconds is a number"),
            *writes == "tx",
            *flusher == "flusher",
        )),
        _ => {
            eprintln!("usage: paygate-bench plugin <mock.wasm> <cache dir>");
            eprintln!(
                "       paygate-bench payments <paygated> <config> <clients> <seconds> <group|each>"
            );
            eprintln!(
                "       paygate-bench payments-postgres <paygated> <config> <url> <daemons> <clients> <seconds>"
            );
            eprintln!("       paygate-bench stores <tmp dir> <payments> <group> [relaxed]");
            eprintln!("       paygate-bench pg-store <connection string> <clients> <seconds>");
            eprintln!("       paygate-bench store [<tmp dir> <seconds> [<mode>,...]]");
            eprintln!("       paygate-bench monitor <paygated> <config>");
            eprintln!("       paygate-bench sled-lock");
            eprintln!("       paygate-bench trees <data dir>");
            std::process::exit(2);
        }
    }
}

fn exit_on_error(result: Result<(), String>) {
    if let Err(e) = result {
        eprintln!("paygate-bench: {e}");
        std::process::exit(1);
    }
}

/// Runs `work` on a single-threaded runtime, as one plugin call at a time is measured.
fn block_on<F: std::future::Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(work)
}

/// The plugin host of a bench config.
async fn bench_host(text: &str) -> PluginHost {
    let config = Config::parse(Path::new("<bench>"), text).expect("bench config");
    PluginHost::start(&config, Arc::new(Metrics::new()))
        .await
        .expect("the bench plugin loads")
}

/// Times `warmup + calls` runs of `call` (which checks its own answer); the last `calls`.
async fn timed<F: std::future::Future<Output = ()>>(
    warmup: usize,
    calls: usize,
    mut call: impl FnMut() -> F,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(calls);
    for i in 0..warmup + calls {
        let started = Instant::now();
        call().await;
        if i >= warmup {
            samples.push(started.elapsed());
        }
    }
    samples
}

fn plugin(mock: &Path, cache: &Path) {
    block_on(async {
        let text = format!(
            "[plugin_host]\nmax_concurrent_calls = 8\ncache_dir = {cache:?}\n[[plugins]]\nname = \"mock\"\npath = {mock:?}\n[[merchants]]\nid = \"m_bench\"\nname = \"Bench\"\n[merchants.providers.mock]\n",
            cache = cache.display().to_string(),
            mock = mock.display().to_string(),
        );
        let host = bench_host(&text).await;
        let merchant = host
            .merchant_record(
                "mock",
                "m_bench",
                &toml::Table::new(),
                "http://127.0.0.1:8420/v1/notify/mock/m_bench".into(),
            )
            .expect("mock is served");
        let request = CreatePaymentRequest {
            payment_id: "pay_0Vc4F1IW0WnVVsf2ooV3p8Zkv".into(),
            provider: "mock".into(),
            merchant,
            amount: Money {
                minor: 1250,
                currency: "CNY".into(),
                exponent: 2,
            },
            method: Method::Qr,
            auth_code: None,
            description: Some("2 x coffee".into()),
            terminal_id: Some("T-07".into()),
            expires_in_seconds: Some(900),
            wallet_token: None,
        };
        let mut samples = timed(WARMUP_CALLS, MEASURED_CALLS, || async {
            // Verify every answer, not just count it.
            match host.create_payment(request.clone()).await {
                Ok(Ok(payment))
                    if payment.status == PaymentStatus::Pending && payment.qr_code.is_some() => {}
                other => panic!("unexpected answer: {other:?}"),
            }
        })
        .await;
        report("paygate_fresh_instance_create_payment", &mut samples);
    });
}

/// The Apple Pay plugin's `inspect-wallet-token` on Apple's published token
/// (`tests/vectors/applepay/`): its CMS signature and certificate chain verified in wasm.
/// The token is years old by this clock, so each call ends, after the whole verification,
/// refused as too old (checked): the cost measured is the verification's, which a payment
/// pays twice (inspected, then created); the host's decryption is not in it.
fn applepay(plugin: &Path, cache: &Path, vectors: &Path) {
    const CALLS: usize = 200;
    block_on(async {
        let text = format!(
            "[plugin_host]\nmax_concurrent_calls = 8\ncache_dir = {cache:?}\n[[plugins]]\nname = \"applepay\"\npath = {plugin:?}\n[[merchants]]\nid = \"m_bench\"\nname = \"Bench\"\n[merchants.providers.applepay]\nkeys = {{ payment_processing_key = \"file:{key}\", acquirer_secret = \"inline:s3cret\" }}\n",
            cache = cache.display().to_string(),
            plugin = plugin.display().to_string(),
            key = vectors.join("merchant_private_key.pem").display(),
        );
        let host = bench_host(&text).await;
        let settings: toml::Table = toml::from_str(
            "merchant_identifier = \"merchant.test.spreedly.123merchant\"\nacquirer_url = \"http://127.0.0.1:1\"\nacquirer_merchant_id = \"m\"\n",
        )
        .expect("the settings");
        let merchant = host
            .merchant_record("applepay", "m_bench", &settings, String::new())
            .expect("applepay is served");
        let token = std::fs::read_to_string(vectors.join("token.json")).expect("the vector");
        let request = CreatePaymentRequest {
            payment_id: "pay_0Vc4F1IW0WnVVsf2ooV3p8Zkv".into(),
            provider: "applepay".into(),
            merchant,
            amount: Money {
                minor: 100,
                currency: "USD".into(),
                exponent: 2,
            },
            method: Method::WalletToken,
            auth_code: None,
            description: None,
            terminal_id: None,
            expires_in_seconds: None,
            wallet_token: Some(token),
        };
        let mut samples = timed(10, CALLS, || async {
            match host.inspect_wallet_token(request.clone()).await {
                Ok(Err(paygate_daemon::plugins::types::ProviderError::Declined(d)))
                    if d.code == "token_invalid" && d.message.contains("s ago") => {}
                other => panic!("unexpected answer: {other:?}"),
            }
        })
        .await;
        report("applepay_inspect_wallet_token_verification", &mut samples);
    });
}

/// Prints median, p99, max and mean of `samples` as one JSON line.
pub fn report(name: &str, samples: &mut [Duration]) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| us(samples[((samples.len() as f64 - 1.0) * q).round() as usize]);
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64;
    println!(
        "{{\"name\":\"{name}\",\"calls\":{},\"median_us\":{:.2},\"p99_us\":{:.2},\"max_us\":{:.2},\"mean_us\":{:.2}}}",
        samples.len(),
        at(0.5),
        at(0.99),
        us(samples[samples.len() - 1]),
        mean
    );
}
