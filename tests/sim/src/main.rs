//! `paygate-sim`: one process that plays the wallet providers paygate's plugins talk to —
//! Alipay under `/alipay/gateway.do`, WeChat Pay API v3 under `/wechatpay/v3/...` — with
//! their wire protocols (endpoints, field names, RSA signatures, AES-GCM notification
//! resources, status values, error codes), a ledger, signed asynchronous notifications with
//! the providers' retry schedules, and control endpoints (`/_sim/...`, see `control.rs`).
//! It signs with the sandbox keys under `config/sandbox-keys/`: never real keys.

mod alipay;
mod alipay_onboarding;
mod control;
mod faults;
mod keys;
mod ledger;
mod notifier;
mod onboarding;
mod state;
mod wechatpay;
mod wechatpay_onboarding;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use clap::Parser;

use crate::ledger::{Order, now_ms};
use crate::state::{Sim, Timings};

#[derive(Parser, Debug)]
#[command(
    name = "paygate-sim",
    version,
    about = "Provider simulators for paygate (sandbox only)"
)]
struct Args {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8430")]
    listen: String,
    /// Folder of the sandbox keys.
    #[arg(long, default_value = "config/sandbox-keys")]
    keys: PathBuf,
    /// Divide the providers' notification retry schedules by this (1 = real time).
    #[arg(long, default_value_t = 1)]
    notify_compression: u64,
    /// How long a "confirms later" payer (payment code ending 61) takes, in ms.
    #[arg(long, default_value_t = 3000)]
    confirm_after_ms: u64,
    /// How long a processing refund (amount ending .72) takes, in ms.
    #[arg(long, default_value_t = 2000)]
    refund_after_ms: u64,
}

/// The `Wechatpay-Serial` the simulator's platform public key is known by.
pub const WECHATPAY_PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0000000000000000SIM0001";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let keys = match keys::Keys::load(&args.keys) {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("paygate-sim: cannot load the sandbox keys: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let sim = Arc::new(Sim {
        keys,
        alipay: Default::default(),
        wechatpay: Default::default(),
        notifier: notifier::Notifier::new(args.notify_compression),
        timings: Timings {
            confirm_after: Duration::from_millis(args.confirm_after_ms),
            refund_after: Duration::from_millis(args.refund_after_ms),
        },
        wechatpay_public_key_id: WECHATPAY_PUBLIC_KEY_ID.into(),
    });
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("paygate-sim: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::from(1);
        }
    };
    spawn_clock(sim.clone());
    let app = router(sim);
    println!(
        "paygate-sim listening on http://{}",
        listener.local_addr().expect("a bound address")
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paygate-sim: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .nest("/alipay", alipay::router())
        .nest("/wechatpay", wechatpay::router())
        .route("/_sim/{provider}/scan", post(control::scan))
        .route(
            "/_sim/{provider}/faults",
            post(control::add_fault).delete(control::clear_faults),
        )
        .route("/_sim/{provider}/ledger", get(control::ledger))
        .route(
            "/_sim/{provider}/applications/{business_code}/{decision}",
            post(control::review),
        )
        .route(
            "/_sim/{provider}/accounts/{business_code}/{decision}",
            post(control::verify_account),
        )
        .route("/_sim/{provider}/onboarding", get(control::onboarding))
        .with_state(sim)
}

/// Time moves orders too: payers confirm, QR codes expire, refunds complete. Every 100 ms
/// the books are advanced and the notices that became due are sent.
fn spawn_clock(sim: Arc<Sim>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            for provider in ["alipay", "wechatpay"] {
                let state = sim.provider(provider).expect("a played provider");
                let mut due = Vec::new();
                {
                    let mut ledger = state.ledger.lock().expect("ledger lock");
                    for order in ledger.orders.values_mut() {
                        let (paid, refunds) = order.advance(now_ms());
                        if paid || !refunds.is_empty() {
                            due.push((order.clone(), paid, refunds));
                        }
                    }
                }
                for (order, paid, refunds) in due {
                    if paid {
                        notify_payment(&sim, provider, &order);
                    }
                    for refund in refunds {
                        notify_refund(&sim, provider, &order, &refund);
                    }
                }
            }
        }
    });
}

/// Sends the provider's notice that `order` was paid (if it gave a notify URL).
pub fn notify_payment(sim: &Arc<Sim>, provider: &str, order: &Order) {
    let notice = match provider {
        "alipay" => alipay::payment_notice(sim, order),
        "wechatpay" => wechatpay::payment_notice(sim, order),
        _ => None,
    };
    if let Some((notice, schedule)) = notice {
        send(sim, provider, &order.out_trade_no, notice, schedule);
    }
}

/// Sends the provider's notice that a refund of `order` completed (WeChat Pay only: Alipay
/// answers refunds synchronously).
pub fn notify_refund(sim: &Arc<Sim>, provider: &str, order: &Order, out_refund_no: &str) {
    let notice = match provider {
        "wechatpay" => wechatpay::refund_notice(sim, order, out_refund_no),
        _ => None,
    };
    if let Some((notice, schedule)) = notice {
        send(sim, provider, &order.out_trade_no, notice, schedule);
    }
}

fn send(
    sim: &Arc<Sim>,
    provider: &str,
    out_trade_no: &str,
    notice: notifier::Notice,
    schedule: &'static [u64],
) {
    let state = sim.provider(provider).expect("a played provider");
    let fault = state.notification_fault();
    let counter = {
        let sim = sim.clone();
        let provider = provider.to_owned();
        let out_trade_no = out_trade_no.to_owned();
        Arc::new(move || {
            if let Some(order) = sim
                .provider(&provider)
                .and_then(|p| p.ledger.lock().ok())
                .as_mut()
                .and_then(|l| l.orders.get_mut(&out_trade_no))
            {
                order.notifications_sent += 1;
            }
        }) as Arc<dyn Fn() + Send + Sync>
    };
    let initial = match fault {
        Some(f) if f.kind == faults::FaultKind::LateNotification => f.delay,
        _ => Duration::ZERO,
    };
    if fault.is_some_and(|f| f.kind == faults::FaultKind::DuplicateNotification) {
        sim.notifier
            .send(notice.clone(), schedule, Duration::ZERO, counter.clone());
    }
    sim.notifier.send(notice, schedule, initial, counter);
}
