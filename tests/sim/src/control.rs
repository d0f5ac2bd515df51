//! The control endpoints tests, demos and examples drive the simulator with:
//! - `POST /_sim/{provider}/scan` `{"qr_code": "...", "outcome": "pay" | "cancel"}`: a payer
//!   scans a QR code and pays (a notification follows) or gives up;
//! - `POST /_sim/{provider}/faults` `{"kind": ..., "count": N, "delay_ms": ...,
//!   "amount_minor": ...}` and `DELETE /_sim/{provider}/faults` (e.g.
//!   `{"kind": "wrong_amount_notification", "amount_minor": 1}`: the next notice states
//!   0.01, validly signed);
//! - `GET /_sim/{provider}/ledger`: every order and refund, and any violation of "charged
//!   at most once, refunded at most what was paid".
//! - `POST /_sim/{provider}/bills/close` `{"date": "YYYY-MM-DD"}`: publishes that day's
//!   bills now, not after the day ends (China time), so that a test can reconcile the
//!   traffic it just made;
//! - `POST /_sim/{provider}/bills/discrepancies` `{"kind": "theirs_only" | "ours_only" |
//!   "amount_mismatch" | "status_mismatch" | "missing_refund", "out_trade_no": ...,
//!   "out_refund_no": ..., "amount_minor": ...}`: the next bill published gets it wrong so;
//! - `GET /_sim/{provider}/bills/file?merchant=&date=[&sub_merchant=]`: a published bill
//!   as the merchant downloads it from the provider's portal (for uploads);
//! - `POST /_sim/{provider}/bills/rates` `{"merchant": ..., "basis_points": N}`: the fee
//!   rate of a merchant (Alipay app id, WeChat Pay mchid or sub_mchid; default 60, 0.6 %).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::faults::FaultRequest;
use crate::ledger::{OrderStatus, now_ms};
use crate::state::SharedSim;

fn unknown(provider: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("the simulator does not play provider {provider:?}")})),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    qr_code: String,
    outcome: ScanOutcome,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum ScanOutcome {
    Pay,
    Cancel,
}

pub async fn scan(
    State(sim): State<SharedSim>,
    Path(provider): Path<String>,
    Json(request): Json<ScanRequest>,
) -> Response {
    let Some(state) = sim.provider(&provider) else {
        return unknown(&provider);
    };
    let paid = {
        let mut ledger = state.ledger.lock().expect("ledger lock");
        let Some(order) = ledger.by_qr_code(&request.qr_code) else {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no order has this QR code"})),
            )
                .into_response();
        };
        order.advance(now_ms());
        if order.status != OrderStatus::WaitingForPayer {
            return (
                StatusCode::CONFLICT,
                Json(json!({"error": "the order cannot be paid", "status": order.status})),
            )
                .into_response();
        }
        match request.outcome {
            ScanOutcome::Pay => {
                order.pay(now_ms());
                Some(order.clone())
            }
            // The payer looked and went away: nothing changes at the provider.
            ScanOutcome::Cancel => None,
        }
    };
    if let Some(order) = &paid {
        crate::notify_payment(&sim, &provider, order);
    }
    let status = if paid.is_some() { "paid" } else { "abandoned" };
    Json(json!({"status": status})).into_response()
}

pub async fn add_fault(
    State(sim): State<SharedSim>,
    Path(provider): Path<String>,
    Json(request): Json<FaultRequest>,
) -> Response {
    let Some(state) = sim.provider(&provider) else {
        return unknown(&provider);
    };
    state.faults.lock().expect("faults lock").add(request);
    StatusCode::NO_CONTENT.into_response()
}

pub async fn clear_faults(State(sim): State<SharedSim>, Path(provider): Path<String>) -> Response {
    let Some(state) = sim.provider(&provider) else {
        return unknown(&provider);
    };
    state.faults.lock().expect("faults lock").clear();
    StatusCode::NO_CONTENT.into_response()
}

pub async fn ledger(State(sim): State<SharedSim>, Path(provider): Path<String>) -> Response {
    let Some(state) = sim.provider(&provider) else {
        return unknown(&provider);
    };
    let ledger = state.ledger.lock().expect("ledger lock");
    Json(json!({
        "orders": ledger.orders.values().collect::<Vec<_>>(),
        "violations": ledger.violations(),
    }))
    .into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /_sim/{provider}/applications/{business_code}/{approve|reject|await_signature}`: the
/// provider's reviewer decides (a reason for a rejection); `await_signature` approves it
/// pending the merchant's signature of the agreement, which `approve` then stands for.
pub async fn review(
    State(sim): State<SharedSim>,
    Path((provider, business_code, decision)): Path<(String, String, String)>,
    body: Option<Json<Reason>>,
) -> Response {
    use crate::onboarding::ApplicationStatus;
    let Some(state) = sim.provider(&provider) else {
        return unknown(&provider);
    };
    let reason = body.and_then(|b| b.0.reason);
    let mut onboarding = state.onboarding.lock().expect("onboarding lock");
    let Some(application) = onboarding.application(&provider, &business_code) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such application"})),
        )
            .into_response();
    };
    match decision.as_str() {
        "approve" | "await_signature" => {
            application.status = if decision == "approve" {
                ApplicationStatus::Active
            } else {
                ApplicationStatus::AwaitingSignature
            };
            application.rejection_reason = None;
            application.sub_merchant_id.get_or_insert_with(|| {
                format!(
                    "1{}",
                    crate::keys::random_token(9).replace(|c: char| c.is_ascii_alphabetic(), "6")
                )
            });
        }
        "reject" => {
            application.status = ApplicationStatus::Rejected;
            application.rejection_reason =
                Some(reason.unwrap_or_else(|| "materials incomplete".to_owned()));
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "approve, reject or await_signature"})),
            )
                .into_response();
        }
    }
    application.updated_ms = now_ms();
    Json(json!(application)).into_response()
}

/// `POST /_sim/{provider}/accounts/{business_code or account id}/{verify|fail}`: the bank's
/// verification of a settlement account (e.g. the merchant's remittance arrived, or it did
/// not).
pub async fn verify_account(
    State(sim): State<SharedSim>,
    Path((provider, business_code, decision)): Path<(String, String, String)>,
    body: Option<Json<Reason>>,
) -> Response {
    use crate::onboarding::AccountStatus;
    let Some(state) = sim.provider(&provider) else {
        return unknown(&provider);
    };
    let reason = body.and_then(|b| b.0.reason);
    let mut onboarding = state.onboarding.lock().expect("onboarding lock");
    let Some(account) = onboarding.account_by_reference(&provider, &business_code) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such account"})),
        )
            .into_response();
    };
    match decision.as_str() {
        "verify" => {
            account.status = AccountStatus::Verified;
            account.failure_reason = None;
        }
        "fail" => {
            account.status = AccountStatus::Failed;
            account.failure_reason =
                Some(reason.unwrap_or_else(|| "remittance not received".to_owned()));
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "verify or fail"})),
            )
                .into_response();
        }
    }
    account.updated_ms = now_ms();
    Json(json!(account)).into_response()
}

/// `GET /_sim/{provider}/onboarding`: every application and account, and every uploaded
/// image (`media`, by media id: who uploaded it, its name, digest and size).
pub async fn onboarding(State(sim): State<SharedSim>, Path(provider): Path<String>) -> Response {
    let Some(state) = sim.provider(&provider) else {
        return unknown(&provider);
    };
    let onboarding = state.onboarding.lock().expect("onboarding lock");
    Json(json!({
        "applications": onboarding.applications.values().collect::<Vec<_>>(),
        "accounts": onboarding.accounts.values().collect::<Vec<_>>(),
        "media": onboarding.media,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseDay {
    date: String,
}

pub async fn close_day(
    State(sim): State<SharedSim>,
    Path(provider): Path<String>,
    Json(request): Json<CloseDay>,
) -> Response {
    let Some(state) = sim.provider(&provider) else {
        return unknown(&provider);
    };
    if crate::bills::day_start_ms(&request.date).is_none() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "date is not YYYY-MM-DD"})),
        )
            .into_response();
    }
    state
        .bills
        .lock()
        .expect("bills lock")
        .close_day(&request.date);
    Json(json!({"closed": request.date})).into_response()
}

pub async fn add_discrepancy(
    State(sim): State<SharedSim>,
    Path(provider): Path<String>,
    Json(request): Json<crate::bills::Discrepancy>,
) -> Response {
    let Some(state) = sim.provider(&provider) else {
        return unknown(&provider);
    };
    state
        .bills
        .lock()
        .expect("bills lock")
        .add_discrepancy(request);
    Json(json!({"pending": true})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    merchant: String,
    basis_points: u32,
}

pub async fn set_rate(
    State(sim): State<SharedSim>,
    Path(provider): Path<String>,
    Json(request): Json<Rate>,
) -> Response {
    let Some(state) = sim.provider(&provider) else {
        return unknown(&provider);
    };
    if request.basis_points > 10_000 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "basis_points is at most 10000"})),
        )
            .into_response();
    }
    state
        .bills
        .lock()
        .expect("bills lock")
        .set_rate(&request.merchant, request.basis_points);
    Json(json!({"merchant": request.merchant, "basis_points": request.basis_points}))
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillFileQuery {
    merchant: String,
    date: String,
    #[serde(default)]
    sub_merchant: Option<String>,
}

pub async fn bill_file(
    State(sim): State<SharedSim>,
    Path(provider): Path<String>,
    axum::extract::Query(query): axum::extract::Query<BillFileQuery>,
) -> Response {
    let Some(state) = sim.provider(&provider) else {
        return unknown(&provider);
    };
    let file = state.bills.lock().expect("bills lock").published_file(
        &query.merchant,
        query.sub_merchant.as_deref(),
        &query.date,
    );
    match file {
        Some(file) => file.into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such published bill"})),
        )
            .into_response(),
    }
}
