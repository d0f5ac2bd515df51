//! `paygate-sim`: one process that plays the wallet providers paygate's plugins talk to —
//! Alipay at `/gateway.do`, WeChat Pay API v3 at `/v3/...` (each also under a prefix of its
//! own, `/alipay` and `/wechatpay`) — with
//! their wire protocols (endpoints, field names, RSA signatures, AES-GCM notification
//! resources, status values, error codes), a ledger, signed asynchronous notifications with
//! the providers' retry schedules, and control endpoints (`/_sim/...`, see `control.rs`).
//! It signs with the sandbox keys under `config/sandbox-keys/`: never real keys.

mod acquirer;
mod alipay;
mod alipay_bills;
mod alipay_onboarding;
mod bills;
mod control;
mod faults;
mod hmac_json;
mod keys;
mod ledger;
mod notifier;
mod onboarding;
mod state;
mod toypay;
mod wechatpay;
mod wechatpay_bills;
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
    /// Address of Alipay's bill host (its `dwbillcenter`), apart from the gateway as
    /// Alipay's is. Default: the next port after `--listen`'s (a free one if that is 0).
    #[arg(long)]
    bill_listen: Option<String>,
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
    /// Start the card acquirer's clock at this instant (unix ms) instead of now: for tests
    /// that set the gateway's plugin clock to a published token's time.
    #[arg(long)]
    acquirer_clock_ms: Option<i64>,
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
    let sim = Arc::new(Sim::new(
        keys,
        notifier::Notifier::new(args.notify_compression),
        Timings {
            confirm_after: Duration::from_millis(args.confirm_after_ms),
            refund_after: Duration::from_millis(args.refund_after_ms),
        },
        args.acquirer_clock_ms,
    ));
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("paygate-sim: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::from(1);
        }
    };
    let bill_address = args.bill_listen.clone().unwrap_or_else(|| {
        let main = listener.local_addr().expect("a bound address");
        let port = if args.listen.ends_with(":0") {
            0
        } else {
            main.port() + 1
        };
        format!("{}:{port}", main.ip())
    });
    let bill_listener = match tokio::net::TcpListener::bind(&bill_address).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("paygate-sim: cannot listen on {bill_address} (the bill host): {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let bill_origin = format!(
        "http://{}",
        bill_listener.local_addr().expect("a bound address")
    );
    let _ = sim.alipay_bill_origin.set(bill_origin.clone());
    spawn_clock(sim.clone());
    let bill_host = Router::new()
        .route("/downloadBillFile.resource", get(alipay_bills::download))
        .with_state(sim.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(bill_listener, bill_host).await {
            eprintln!("paygate-sim: the bill host stopped: {e}");
        }
    });
    let app = router(sim);
    // The first line is what scripts wait for; the bill host's follows.
    println!(
        "paygate-sim listening on http://{}",
        listener.local_addr().expect("a bound address")
    );
    println!("paygate-sim bills on {bill_origin}");
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
    // Each provider at its real paths (`/gateway.do` and `/v3/...` do not collide), so that
    // the providers' own SDKs talk to the simulator with only a base URL changed, and under
    // a prefix of its own, as configs written before name them.
    Router::new()
        .merge(alipay::router())
        .nest("/alipay", alipay::router())
        .merge(wechatpay::router())
        .nest(wechatpay::PREFIX, wechatpay::router())
        .nest("/acquirer", acquirer::router())
        .nest("/toypay", toypay::router())
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
        .route("/_sim/{provider}/bills/close", post(control::close_day))
        .route(
            "/_sim/{provider}/bills/discrepancies",
            post(control::add_discrepancy),
        )
        .route("/_sim/{provider}/bills/rates", post(control::set_rate))
        .route("/_sim/{provider}/bills/file", get(control::bill_file))
        .with_state(sim)
}

/// Time moves orders too: payers confirm, QR codes expire, refunds complete. Every 100 ms
/// the books are advanced and the notices that became due are sent.
fn spawn_clock(sim: Arc<Sim>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            for provider in ["alipay", "wechatpay", "toypay"] {
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
    notify(sim, provider, order, None, |order| match provider {
        "alipay" => alipay::payment_notice(sim, order),
        "wechatpay" => wechatpay::payment_notice(sim, order),
        _ => None,
    });
}

/// Sends the provider's notice that a refund of `order` completed (WeChat Pay only: Alipay
/// answers refunds synchronously).
pub fn notify_refund(sim: &Arc<Sim>, provider: &str, order: &Order, out_refund_no: &str) {
    notify(
        sim,
        provider,
        order,
        Some(out_refund_no),
        |order| match provider {
            "wechatpay" => wechatpay::refund_notice(sim, order, out_refund_no),
            _ => None,
        },
    );
}

/// Builds the notice about `order` (about its refund `refund`, if named) with `build` and
/// sends it, under the next notification fault if one is pending. A notice that is not sent
/// (no notify URL) takes no fault.
fn notify(
    sim: &Arc<Sim>,
    provider: &str,
    order: &Order,
    refund: Option<&str>,
    build: impl Fn(&Order) -> Option<(notifier::Notice, &'static [u64])>,
) {
    let Some(mut built) = build(order) else {
        return;
    };
    let state = sim.provider(provider).expect("a played provider");
    let fault = state.notification_fault();
    if let Some(f) = fault.filter(|f| f.kind == faults::FaultKind::WrongAmountNotification) {
        // The same notice, validly signed, built from a copy that states another amount.
        if let Some(wrong) = build(&stated(order, refund, f.amount_minor)) {
            built = wrong;
        }
    }
    let (notice, schedule) = built;
    send(sim, provider, &order.out_trade_no, notice, schedule, fault);
}

/// A copy of `order` stating `amount_minor` as the amount of its refund `refund` (if named
/// and known) or else as the order's own.
fn stated(order: &Order, refund: Option<&str>, amount_minor: i64) -> Order {
    let mut stated = order.clone();
    match refund.and_then(|no| stated.refunds.get_mut(no)) {
        Some(refund) => refund.amount_minor = amount_minor,
        None => stated.amount_minor = amount_minor,
    }
    stated
}

fn send(
    sim: &Arc<Sim>,
    provider: &str,
    out_trade_no: &str,
    notice: notifier::Notice,
    schedule: &'static [u64],
    fault: Option<faults::Fault>,
) {
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

#[cfg(test)]
mod partner_tests;
#[cfg(test)]
mod real_paths_tests;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::body::Bytes;
    use base64::Engine as _;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;

    use super::*;
    use crate::faults::{FaultKind, FaultRequest};
    use crate::ledger::{OrderStatus, Refund, RefundStatus};

    pub(crate) fn keys_dir() -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/sandbox-keys")
    }

    pub(crate) fn sim() -> Arc<Sim> {
        Arc::new(Sim::new(
            keys::Keys::load(&keys_dir()).unwrap(),
            notifier::Notifier::new(1),
            Timings {
                confirm_after: Duration::from_secs(1),
                refund_after: Duration::from_secs(1),
            },
            None,
        ))
    }

    fn order(notify_url: &str) -> Order {
        let refund = Refund {
            out_refund_no: "re_1".into(),
            refund_id: "R1".into(),
            amount_minor: 500,
            status: RefundStatus::Succeeded,
            executions: 1,
            created_ms: 0,
            completes_at_ms: None,
            notify_url: Some(notify_url.into()),
        };
        Order {
            merchant: "2021000000000001".into(),
            out_trade_no: "pay_1".into(),
            app_id: None,
            trade_no: "2026000000000000000000000001".into(),
            kind: "qr",
            amount_minor: 1250,
            currency: "CNY".into(),
            description: "Latte".into(),
            status: OrderStatus::Paid,
            qr_code: None,
            auth_code: None,
            payer: None,
            payer_id: Some("sim_payer_000001".into()),
            notify_url: Some(notify_url.into()),
            created_ms: 0,
            paid_ms: Some(0),
            confirms_at_ms: None,
            expires_at_ms: None,
            charges: 1,
            refunds: BTreeMap::from([("re_1".to_owned(), refund)]),
            notifications_sent: 0,
            sub_merchant: None,
        }
    }

    /// A merchant's notify URL that acknowledges every notice and hands over its body.
    async fn merchant() -> (String, tokio::sync::mpsc::UnboundedReceiver<Bytes>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let app = Router::new().route(
            "/notify",
            post(move |body: Bytes| {
                let _ = tx.send(body);
                async { "success" }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, rx)
    }

    /// Alipay's notice parameters, after checking their RSA2 signature with the sandbox's
    /// Alipay public key (as the plugin does).
    fn verified_alipay_params(body: &[u8]) -> BTreeMap<String, String> {
        let params: BTreeMap<String, String> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let pem = std::fs::read_to_string(keys_dir().join("alipay_public_key.pem")).unwrap();
        let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(
            rsa::RsaPublicKey::from_public_key_pem(&pem).unwrap(),
        );
        let signature = base64::engine::general_purpose::STANDARD
            .decode(&params["sign"])
            .unwrap();
        let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice()).unwrap();
        let signed = alipay::signing_string(&params, &["sign", "sign_type"]);
        assert!(key.verify(signed.as_bytes(), &signature).is_ok());
        params
    }

    #[tokio::test]
    async fn a_wrong_amount_notification_states_the_faults_amount_validly_signed_once() {
        let sim = sim();
        let (url, mut notices) = merchant().await;
        let order = order(&url);
        sim.alipay.faults.lock().unwrap().add(FaultRequest {
            kind: FaultKind::WrongAmountNotification,
            count: 1,
            delay_ms: None,
            amount_minor: None,
        });
        notify_payment(&sim, "alipay", &order);
        let wrong = verified_alipay_params(&notices.recv().await.unwrap());
        assert_eq!(wrong["out_trade_no"], "pay_1");
        assert_eq!(wrong["total_amount"], "0.01");
        assert_eq!(wrong["receipt_amount"], "0.01");
        // One notice only: the next states the truth again.
        notify_payment(&sim, "alipay", &order);
        let right = verified_alipay_params(&notices.recv().await.unwrap());
        assert_eq!(right["total_amount"], "12.50");
        // And the books never changed.
        assert_eq!(order.amount_minor, 1250);
    }

    #[test]
    fn a_stated_amount_replaces_the_refunds_or_the_orders() {
        let order = order("http://127.0.0.1:1/notify");
        let refund = stated(&order, Some("re_1"), 1);
        assert_eq!(
            (refund.amount_minor, refund.refunds["re_1"].amount_minor),
            (1250, 1)
        );
        let payment = stated(&order, None, 99_999);
        assert_eq!(
            (payment.amount_minor, payment.refunds["re_1"].amount_minor),
            (99_999, 500)
        );
        // A refund the order does not have: the order's amount is stated.
        assert_eq!(stated(&order, Some("re_9"), 7).amount_minor, 7);
    }
}
