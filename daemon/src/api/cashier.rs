//! The cashier page of link payments (API.md §5 `link`): `GET /pay/{id}` shows the payment
//! and the merchant's wallets, `POST /pay/{id}/wallet` is the payer's choice (which creates
//! the charge at that wallet's provider), and `GET /pay/{id}/status` tells the page when the
//! payment ends. No API key: the payment id in the link is the payer's only credential, so
//! these routes show nothing beyond what the payer needs (never order ids, metadata,
//! terminals or provider references).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::cashier_page::{self, CashierView, WalletChoice};
use super::error::{ApiError, ErrorBody};
use crate::app::AppState;
use crate::money::{Currency, Money};
use crate::payments::service::{self, PaymentError};
use crate::store::records::PaymentRecord;

/// The cashier page's form: the wallet the payer picked.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads it with form_urlencoded
pub struct WalletForm {
    /// The provider, e.g. `alipay`.
    pub wallet: String,
}

/// The one thing the public status endpoint reveals.
#[derive(Serialize, ToSchema)]
pub struct PublicStatus {
    /// `pending`, `succeeded`, `failed`, `cancelled` or `expired`.
    pub status: &'static str,
}

/// A link payment, or `None` for anything else (other methods are not the payer's business).
fn link_payment(state: &AppState, id: &str) -> Result<Option<PaymentRecord>, ApiError> {
    if id.len() > 64 {
        return Ok(None);
    }
    let payment = state.store.payment(id)?;
    Ok(payment.filter(|p| p.method == "link"))
}

fn page(state: &AppState, payment: &PaymentRecord, error: Option<&str>) -> String {
    let merchant_name = state
        .merchants
        .get(&payment.merchant_id)
        .map_or_else(|| payment.merchant_id.clone(), |m| m.name.clone());
    let amount = Currency::from_code(&payment.currency).map_or_else(
        || payment.amount_minor.to_string(),
        |c| Money::from_minor(payment.amount_minor, c).to_string(),
    );
    let names = service::cashier_wallets(state, payment);
    let labels: Vec<String> = names
        .iter()
        .map(|n| cashier_page::wallet_label(n))
        .collect();
    let wallets: Vec<WalletChoice<'_>> = names
        .iter()
        .zip(&labels)
        .map(|(provider, label)| WalletChoice { provider, label })
        .collect();
    cashier_page::render_page(&CashierView {
        payment_id: &payment.id,
        merchant_name: &merchant_name,
        amount: &amount,
        currency: &payment.currency,
        description: payment.description.as_deref(),
        status: payment.status.as_str(),
        wallets: &wallets,
        chosen: Some(payment.provider.as_str()).filter(|p| !p.is_empty()),
        qr_code: payment.qr_code.as_deref(),
        error,
    })
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    // The page is the payer's; keep it out of caches and frames.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, "no-store".parse().expect("valid"));
    headers.insert("x-frame-options", "DENY".parse().expect("valid"));
    response
}

/// The cashier page of a link payment (HTML).
#[utoipa::path(get, path = "/pay/{id}", tag = "cashier",
    params(("id" = String, Path, description = "pay_...")),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 404, description = "No such link payment", content_type = "text/html", body = String),
    ))]
pub async fn cashier_page(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(match link_payment(&state, &id)? {
        Some(payment) => html(StatusCode::OK, page(&state, &payment, None)),
        None => html(StatusCode::NOT_FOUND, cashier_page::render_not_found()),
    })
}

/// The payer picks a wallet (an HTML form post, field `wallet`): the charge is created at
/// that wallet's provider and the page shows its QR code.
#[utoipa::path(post, path = "/pay/{id}/wallet", tag = "cashier",
    params(("id" = String, Path, description = "pay_...")),
    request_body(content = WalletForm, description = "The payer's choice", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Chosen: back to the page, which shows the QR code"),
        (status = 404, description = "No such link payment", content_type = "text/html", body = String),
        (status = 422, description = "Not a wallet of this payment (the page, with the reason)", content_type = "text/html", body = String),
        (status = 502, description = "The wallet failed (the page, with the reason)", content_type = "text/html", body = String),
    ))]
pub async fn choose_wallet(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(payment) = link_payment(&state, &id)? else {
        return Ok(html(
            StatusCode::NOT_FOUND,
            cashier_page::render_not_found(),
        ));
    };
    let wallet = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "wallet")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    match service::choose_wallet(&state, &payment.id, &wallet).await {
        Ok(_) => Ok(Redirect::to(&format!("/pay/{}", payment.id)).into_response()),
        Err(error) => {
            let api_error = ApiError::from(&error);
            let message = match &error {
                PaymentError::Busy => {
                    "Another choice for this payment is being made; reload the page.".to_owned()
                }
                PaymentError::WalletNotSupported(_) => {
                    format!("\"{wallet}\" is not a wallet this payment can be paid with.")
                }
                _ => format!(
                    "The wallet could not start the payment ({}). Please try again.",
                    api_error
                ),
            };
            let current = state.store.payment(&payment.id)?.unwrap_or(payment);
            Ok(html(
                api_error.status(),
                page(&state, &current, Some(&message)),
            ))
        }
    }
}

/// The status of a link payment, for its page's live view; nothing else is revealed.
#[utoipa::path(get, path = "/pay/{id}/status", tag = "cashier",
    params(("id" = String, Path, description = "pay_...")),
    responses(
        (status = 200, description = "The status", body = PublicStatus),
        (status = 404, description = "No such link payment", body = ErrorBody),
    ))]
pub async fn cashier_status(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<PublicStatus>, ApiError> {
    let payment = link_payment(&state, &id)?.ok_or(ApiError::NotFound {
        kind: "payment",
        id,
    })?;
    Ok(Json(PublicStatus {
        status: payment.status.as_str(),
    }))
}
