//! The cashier page of link payments (API.md §5 `link`): `GET /pay/{id}` shows the payment
//! and the merchant's wallets, `POST /pay/{id}/wallet` is the payer's choice (which creates
//! the charge at that wallet's provider), and `GET /pay/{id}/status` tells the page when the
//! payment ends. No API key: the payment id in the link is the payer's only credential, so
//! these routes show nothing beyond what the payer needs (never order ids, metadata,
//! terminals or provider references).

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::cashier_page::{self, CashierView, WalletChoice};
use super::cashier_text::{Lang, fill};
use super::error::{ApiError, ErrorBody};
use super::json::{ApiPath, RawBody};
use crate::app::AppState;
use crate::domain::money::{Currency, Money};
use crate::domain::records::PaymentRecord;
use crate::payments::service::{self, PaymentError};

/// The cashier page's form: the wallet the payer picked.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads it with form_urlencoded
pub struct WalletForm {
    /// The provider, e.g. `alipay`.
    pub wallet: String,
    /// The token of the page the form came from (no choices posted from other sites).
    pub token: String,
}

/// The one thing the public status endpoint reveals.
#[derive(Serialize, ToSchema)]
pub struct PublicStatus {
    /// `pending`, `succeeded`, `failed`, `cancelled` or `expired`.
    pub status: &'static str,
}

/// A link payment, or `None` for anything else (other methods are not the payer's business).
async fn link_payment(state: &AppState, id: &str) -> Result<Option<PaymentRecord>, ApiError> {
    if id.len() > 64 {
        return Ok(None);
    }
    let payment = state.store.payment(id).await?;
    Ok(payment.filter(|p| p.method == crate::domain::method::Method::Link))
}

/// What one rendering of the page is signed with: the CSP nonce of its inline style and
/// script, and the token its wallet forms carry back.
struct PageSecrets {
    nonce: String,
    form_token: String,
}

impl PageSecrets {
    fn new(state: &AppState, payment_id: &str) -> PageSecrets {
        let salt = super::html::nonce();
        let tag = ring::hmac::sign(
            &state.cashier_key,
            token_input(payment_id, &salt).as_bytes(),
        );
        PageSecrets {
            nonce: super::html::nonce(),
            form_token: format!("{salt}.{}", hex::encode(tag.as_ref())),
        }
    }
}

fn token_input(payment_id: &str, salt: &str) -> String {
    format!("cashier-wallet\0{payment_id}\0{salt}")
}

/// Whether `token` was issued by this daemon for a page of `payment_id`.
fn token_valid(state: &AppState, payment_id: &str, token: &str) -> bool {
    let Some((salt, tag)) = token.split_once('.') else {
        return false;
    };
    let Ok(tag) = hex::decode(tag) else {
        return false;
    };
    salt.len() == 32
        && ring::hmac::verify(
            &state.cashier_key,
            token_input(payment_id, salt).as_bytes(),
            &tag,
        )
        .is_ok()
}

/// The payer's language: the page's switch (`?lang=`), else `Accept-Language`.
fn language(query: Option<&str>, headers: &HeaderMap) -> Lang {
    let param = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(name, _)| name == "lang")
            .map(|(_, value)| value.into_owned())
    });
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    Lang::negotiate(param.as_deref(), accept)
}

fn page(
    state: &AppState,
    status: StatusCode,
    payment: &PaymentRecord,
    error: Option<&str>,
    lang: Lang,
) -> Response {
    let merchant_name = state
        .merchants
        .get(&payment.merchant_id)
        .map_or_else(|| payment.merchant_id.clone(), |m| m.name.clone());
    let amount = Currency::from_code(&payment.currency).map_or_else(
        || payment.amount_minor.to_string(),
        |c| Money::from_minor(payment.amount_minor, c).to_string(),
    );
    let names = service::cashier_wallets(&state.payments, payment);
    let labels: Vec<String> = names.iter().map(|n| lang.wallet_name(n)).collect();
    let wallets: Vec<WalletChoice<'_>> = names
        .iter()
        .zip(&labels)
        .map(|(provider, label)| WalletChoice { provider, label })
        .collect();
    let secrets = PageSecrets::new(state, &payment.id);
    let body = cashier_page::render_page(&CashierView {
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
        nonce: &secrets.nonce,
        form_token: &secrets.form_token,
        lang,
    });
    html(status, body, &secrets.nonce)
}

fn not_found(lang: Lang) -> Response {
    let nonce = super::html::nonce();
    html(
        StatusCode::NOT_FOUND,
        cashier_page::render_not_found(&nonce, lang),
        &nonce,
    )
}

fn html(status: StatusCode, body: String, nonce: &str) -> Response {
    let mut response = (status, Html(body)).into_response();
    // The page is the payer's; keep it out of caches and frames, and let nothing run or load
    // but its own inline style and script (by nonce) and its status calls.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, "no-store".parse().expect("valid"));
    // The page's language follows the payer's.
    headers.insert(header::VARY, "Accept-Language".parse().expect("valid"));
    headers.insert("x-frame-options", "DENY".parse().expect("valid"));
    let policy = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        policy.parse().expect("a hex nonce is a valid header value"),
    );
    response
}

/// The cashier page of a link payment (HTML).
#[utoipa::path(get, path = "/pay/{id}", tag = "cashier",
    params(("id" = String, Path, description = "pay_..."),
           ("lang" = Option<String>, Query, description = "`zh-CN` or `en` (the page's switch); otherwise `Accept-Language` chooses, English by default")),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 404, description = "No such link payment", content_type = "text/html", body = String),
    ))]
pub async fn cashier_page(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lang = language(query.as_deref(), &headers);
    Ok(match link_payment(&state, &id).await? {
        Some(payment) => page(&state, StatusCode::OK, &payment, None, lang),
        None => not_found(lang),
    })
}

/// The payer picks a wallet (an HTML form post, field `wallet`): the charge is created at
/// that wallet's provider and the page shows its QR code.
#[utoipa::path(post, path = "/pay/{id}/wallet", tag = "cashier",
    params(("id" = String, Path, description = "pay_..."),
           ("lang" = Option<String>, Query, description = "The page's language, kept by the redirect back to it")),
    request_body(content = WalletForm, description = "The payer's choice", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Chosen: back to the page, which shows the QR code"),
        (status = 400, description = "The path or body is unreadable", body = ErrorBody),
        (status = 403, description = "Posted from another site (error body), or without this page's token (the page again, to choose anew)", body = ErrorBody),
        (status = 404, description = "No such link payment", content_type = "text/html", body = String),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Not a wallet of this payment (the page, with the reason)", content_type = "text/html", body = String),
        (status = 502, description = "The wallet failed (the page, with the reason)", content_type = "text/html", body = String),
    ))]
pub async fn choose_wallet(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let lang = language(query.as_deref(), &headers);
    let text = lang.texts();
    // A browser says when a page of another site posts here; such a post is never the payer's.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(ApiError::Denied {
            code: "cross_site_request",
            message: "a wallet is chosen from the payment's own page, not from another site".into(),
        });
    }
    let Some(payment) = link_payment(&state, &id).await? else {
        return Ok(not_found(lang));
    };
    let field = |wanted: &str| {
        form_urlencoded::parse(&body)
            .find(|(name, _)| name == wanted)
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    let wallet = field("wallet");
    // The page's token: a form on another origin cannot read it (this works behind a proxy
    // too, where `Origin` need not be this daemon's own address).
    if !token_valid(&state, &payment.id, &field("token")) {
        return Ok(page(
            &state,
            StatusCode::FORBIDDEN,
            &payment,
            Some(text.page_expired),
            lang,
        ));
    }
    match service::choose_wallet(&state.payments, &payment.id, &wallet).await {
        Ok(_) => {
            Ok(Redirect::to(&format!("/pay/{}?lang={}", payment.id, lang.param())).into_response())
        }
        Err(error) => {
            let api_error = ApiError::from(&error);
            let message = match &error {
                PaymentError::Busy => text.busy.to_owned(),
                PaymentError::WalletNotSupported(_) => fill(text.not_a_wallet, &wallet),
                _ => fill(text.wallet_failed, &api_error.to_string()),
            };
            let current = state.store.payment(&payment.id).await?.unwrap_or(payment);
            Ok(page(
                &state,
                api_error.status(),
                &current,
                Some(&message),
                lang,
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
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PublicStatus>, ApiError> {
    let payment = link_payment(&state, &id).await?.ok_or(ApiError::NotFound {
        kind: "payment",
        id,
    })?;
    Ok(Json(PublicStatus {
        status: payment.status.as_str(),
    }))
}
