//! Payments and refunds over HTTP (API.md §5, §6): request validation, the JSON objects, and
//! the one mapping of `PaymentError` to the error model.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::idempotency::Idempotent;
use super::json::{ApiPath, ApiQuery};
use super::list::{List, PageParams};
use crate::app::AppState;
use crate::auth::Role;
use crate::domain::money::{Currency, Money, MoneyError};
use crate::domain::records::{BlockScope, Failure, PaymentRecord, RefundRecord};
use crate::domain::state::PaymentStatus;
use crate::idempotency::Conflict;
use crate::merchants::Merchant;
use crate::payments::service::{self, Answer, Method, NewPayment, NewRefund, PaymentError};
use crate::store::archive::Found;

/// Bounds on free-text fields.
pub(super) const DESCRIPTION_CHARS_MAX: usize = 256;
const IDENT_CHARS_MAX: usize = 64;
const METADATA_KEYS_MAX: usize = 20;
const METADATA_KEY_CHARS_MAX: usize = 40;
const METADATA_VALUE_CHARS_MAX: usize = 500;
const EXPIRES_IN_MIN: u32 = 60;
const EXPIRES_IN_MAX: u32 = 24 * 3600;

/// An amount as the API takes it: a decimal string, never a JSON number.
#[derive(Debug, Clone)]
pub struct AmountText(String);

impl<'de> Deserialize<'de> for AmountText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(s) => Ok(AmountText(s)),
            other => Err(serde::de::Error::custom(format!(
                "amounts are decimal strings like \"12.50\", not {other}"
            ))),
        }
    }
}

/// `POST /v1/payments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentBody {
    pub merchant_id: String,
    /// Decimal string, e.g. `"12.50"`.
    #[schema(value_type = String)]
    pub amount: AmountText,
    /// ISO 4217 code.
    pub currency: String,
    /// `qr`, `barcode`, `link` or `wallet_token`.
    pub method: String,
    /// Optional for barcode (detected from `auth_code`); required for `wallet_token`.
    pub provider: Option<String>,
    /// Barcode only: the payer's payment code.
    pub auth_code: Option<String>,
    /// `wallet_token` only: the token the payer's device made, as the wallet gave it to the
    /// merchant's app (Apple Pay: the `PKPaymentToken`, or its `paymentData`). Checked,
    /// charged once, and never stored.
    #[schema(value_type = Option<Object>)]
    pub wallet_token: Option<serde_json::Value>,
    /// The merchant's own reference, unique per merchant.
    pub order_id: Option<String>,
    pub description: Option<String>,
    pub terminal_id: Option<String>,
    /// Seconds until an unpaid qr or link payment expires (60..86400).
    pub expires_in: Option<u32>,
    /// At most 20 keys of short strings.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `POST /v1/payments/{id}/refunds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefundBody {
    /// Decimal string; default: the whole remaining amount.
    #[schema(value_type = Option<String>)]
    pub amount: Option<AmountText>,
    pub reason: Option<String>,
}

/// `POST /v1/payments/{id}/cancel` takes an empty object.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {}

/// A failure's code and message.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailureObject {
    pub code: String,
    pub message: String,
}

/// A payment (API.md §5).
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentObject {
    pub id: String,
    /// Always `"payment"`.
    pub object: &'static str,
    /// `pending`, `succeeded`, `failed`, `cancelled`, `expired`.
    pub status: &'static str,
    pub merchant_id: String,
    pub amount: String,
    pub currency: String,
    pub method: String,
    /// The wallet; `null` for a link payment until its payer picks one.
    pub provider: Option<String>,
    pub order_id: Option<String>,
    pub description: Option<String>,
    pub provider_reference: Option<String>,
    pub qr_code: Option<String>,
    pub payment_url: Option<String>,
    /// Sum of the succeeded refunds.
    pub amount_refunded: String,
    pub failure: Option<FailureObject>,
    pub terminal_id: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: Option<String>,
    /// `wallet_token` payments, once charged: the card's network and last four digits
    /// (never more); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub card: Option<CardObject>,
    /// `true` when the payment was read from the archive (finished and past the store's
    /// retention: API.md §5); absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub archived: bool,
}

/// The card behind a wallet token, as far as the gateway keeps it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardObject {
    /// `visa`, `mastercard`, `amex`, `discover`, `jcb`, `unionpay` or `other`.
    pub network: String,
    pub last_four: String,
}

/// A refund (API.md §6).
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundObject {
    pub id: String,
    /// Always `"refund"`.
    pub object: &'static str,
    pub payment_id: String,
    pub amount: String,
    pub currency: String,
    /// `pending`, `succeeded`, `failed`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub failure: Option<FailureObject>,
    pub created_at: String,
    /// `true` when read from the archive; absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub archived: bool,
}

impl PaymentObject {
    /// The object of a payment found hot or in the archive.
    pub fn found(found: &Found<PaymentRecord>) -> PaymentObject {
        PaymentObject {
            archived: found.archived,
            ..PaymentObject::from(&found.record)
        }
    }
}

impl RefundObject {
    pub fn found(found: &Found<RefundRecord>) -> RefundObject {
        RefundObject {
            archived: found.archived,
            ..RefundObject::from(&found.record)
        }
    }
}

pub fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub(super) fn money_text(minor: i64, currency: &str) -> String {
    Currency::from_code(currency).map_or_else(
        || minor.to_string(),
        |c| Money::from_minor(minor, c).to_string(),
    )
}

fn failure(f: &Option<Failure>) -> Option<FailureObject> {
    f.as_ref().map(|f| FailureObject {
        code: f.code.clone(),
        message: f.message.clone(),
    })
}

impl From<&PaymentRecord> for PaymentObject {
    fn from(p: &PaymentRecord) -> Self {
        PaymentObject {
            id: p.id.clone(),
            object: "payment",
            status: p.status.as_str(),
            merchant_id: p.merchant_id.clone(),
            amount: money_text(p.amount_minor, &p.currency),
            currency: p.currency.clone(),
            method: p.method.as_str().to_owned(),
            provider: Some(p.provider.clone()).filter(|p| !p.is_empty()),
            order_id: p.order_id.clone(),
            description: p.description.clone(),
            provider_reference: p.provider_reference.clone(),
            qr_code: p.qr_code.clone(),
            payment_url: p.payment_url.clone(),
            amount_refunded: money_text(p.refunded_minor, &p.currency),
            failure: failure(&p.failure),
            terminal_id: p.terminal_id.clone(),
            metadata: p.metadata.clone(),
            created_at: rfc3339_ms(p.created_at_ms),
            updated_at: rfc3339_ms(p.updated_at_ms),
            expires_at: p.expires_at_ms.map(rfc3339_ms),
            card: p.card.as_ref().map(|c| CardObject {
                network: c.network.clone(),
                last_four: c.last_four.clone(),
            }),
            archived: false,
        }
    }
}

impl From<&RefundRecord> for RefundObject {
    fn from(r: &RefundRecord) -> Self {
        RefundObject {
            id: r.id.clone(),
            object: "refund",
            payment_id: r.payment_id.clone(),
            amount: money_text(r.amount_minor, &r.currency),
            currency: r.currency.clone(),
            status: r.status.as_str(),
            reason: r.reason.clone(),
            failure: failure(&r.failure),
            created_at: rfc3339_ms(r.created_at_ms),
            archived: false,
        }
    }
}

/// The one mapping of payment errors to the API's error model.
impl From<&PaymentError> for ApiError {
    fn from(error: &PaymentError) -> ApiError {
        use PaymentError as E;
        let message = error.to_string();
        let provider = |status, code: &str, payment: Option<&PaymentRecord>| ApiError::Provider {
            status,
            code: code.to_owned(),
            message: message.clone(),
            payment: payment.map(|p| {
                Box::new(
                    serde_json::to_value(PaymentObject::from(p))
                        .expect("payment objects serialize"),
                )
            }),
        };
        match error {
            E::Idempotency(conflict) => ApiError::from(*conflict),
            E::OrderIdInUse { .. } => ApiError::Conflict {
                code: "order_id_in_use",
                message,
                param: Some("order_id".into()),
            },
            E::WalletNotSupported(_) => ApiError::Unprocessable {
                code: "wallet_not_supported",
                message,
                param: None,
            },
            E::WalletToken { code, .. } => ApiError::Unprocessable {
                code: if code == "token_amount_mismatch" {
                    "wallet_token_amount_mismatch"
                } else {
                    "wallet_token_invalid"
                },
                message,
                param: Some("wallet_token".into()),
            },
            E::WalletTokenUsed { .. } => ApiError::Conflict {
                code: "wallet_token_used",
                message,
                param: Some("wallet_token".into()),
            },
            E::Invalid { param, .. } => {
                ApiError::invalid("parameter_invalid", message, Some(param))
            }
            E::NotFound { kind, id } => ApiError::NotFound {
                kind,
                id: id.clone(),
            },
            E::MerchantNotActive { .. } => ApiError::Unprocessable {
                code: "merchant_not_active",
                message,
                param: Some("merchant_id".into()),
            },
            E::Blocked(block) => {
                let until = rfc3339_ms(block.expires_at_ms);
                let (code, what) = match block.scope() {
                    BlockScope::ApiKey(key) => ("api_key_blocked", format!("API key {key}")),
                    BlockScope::Terminal(_, terminal) => {
                        ("terminal_blocked", format!("terminal {terminal}"))
                    }
                };
                ApiError::Denied {
                    code,
                    message: format!(
                        "{what} is blocked by the anomaly monitor (rule {}) until {until}; an admin can lift block {}",
                        block.rule, block.id
                    ),
                }
            }
            E::AlreadySucceeded(_) => ApiError::Conflict {
                code: "payment_already_succeeded",
                message,
                param: None,
            },
            E::WrongState { .. } => ApiError::Unprocessable {
                code: "payment_not_refundable",
                message,
                param: None,
            },
            E::RefundExceedsPayment { .. } => ApiError::Unprocessable {
                code: "refund_exceeds_payment",
                message,
                param: Some("amount".into()),
            },
            E::Declined { code, payment, .. } => {
                provider(StatusCode::PAYMENT_REQUIRED, code, Some(payment))
            }
            E::RefundDeclined { code, .. } => provider(StatusCode::PAYMENT_REQUIRED, code, None),
            E::ProviderRejected(_) => {
                provider(StatusCode::BAD_GATEWAY, "provider_rejected_request", None)
            }
            E::ProviderUnavailable(_) => {
                provider(StatusCode::BAD_GATEWAY, "provider_unavailable", None)
            }
            E::OutcomeUnknown(_) => provider(StatusCode::GATEWAY_TIMEOUT, "provider_timeout", None),
            E::Plugin(_) => ApiError::Plugin { message },
            E::Busy => ApiError::Unavailable {
                code: "plugins_busy",
                message,
            },
            E::Store(crate::store::StoreError::NoRoom { room }) => ApiError::Unavailable {
                code: room.code(),
                message,
            },
            E::Store(e @ crate::store::StoreError::Postgres(_)) if e.is_unavailable() => {
                tracing::error!(error = %e, "the database cannot be reached");
                ApiError::Unavailable {
                    code: "database_unavailable",
                    message: format!(
                        "the gateway cannot reach its database ({e}); retry with the same Idempotency-Key"
                    ),
                }
            }
            E::Store(e) if e.is_unavailable() => {
                tracing::error!(error = %e, "the store cannot write");
                ApiError::Unavailable {
                    code: "store_unavailable",
                    message: format!(
                        "the gateway cannot write to its data dir ({e}); retry with the same Idempotency-Key"
                    ),
                }
            }
            E::Store(e) => {
                tracing::error!(error = %e, "store failure");
                ApiError::Internal
            }
        }
    }
}

/// Store failures answer as every other use-case failure does (one mapping).
impl From<Conflict> for ApiError {
    fn from(conflict: Conflict) -> ApiError {
        ApiError::Idempotency {
            status: match conflict {
                Conflict::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
                Conflict::InProgress => StatusCode::CONFLICT,
            },
            code: conflict.code(),
            message: conflict.to_string(),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> ApiError {
        ApiError::from(PaymentError::Store(error))
    }
}

impl From<PaymentError> for ApiError {
    fn from(error: PaymentError) -> ApiError {
        ApiError::from(&error)
    }
}

/// Renders a payment answer: 201 with the payment, or the error it carries.
fn render_payment(
    fresh_status: u16,
) -> impl Fn(&PaymentRecord, Option<&PaymentError>) -> (u16, String) + Sync {
    move |payment, error| match error {
        Some(error) => {
            let error = ApiError::from(error);
            (error.status().as_u16(), error.body())
        }
        None => (
            fresh_status,
            serde_json::to_string(&PaymentObject::from(payment))
                .expect("payment objects serialize"),
        ),
    }
}

pub(super) fn render_refund(refund: &RefundRecord, error: Option<&PaymentError>) -> (u16, String) {
    match error {
        Some(error) => {
            let error = ApiError::from(error);
            (error.status().as_u16(), error.body())
        }
        None => (
            201,
            serde_json::to_string(&RefundObject::from(refund)).expect("refund objects serialize"),
        ),
    }
}

fn money_error(error: MoneyError) -> ApiError {
    let param = match error {
        MoneyError::UnknownCurrency(..) => "currency",
        _ => "amount",
    };
    let code = match error {
        MoneyError::UnknownCurrency(..) => "currency_invalid",
        _ => "amount_invalid",
    };
    ApiError::invalid(code, error.to_string(), Some(param))
}

pub(super) fn check_text(
    value: &Option<String>,
    param: &'static str,
    max: usize,
    ident: bool,
) -> Result<(), ApiError> {
    let Some(value) = value else { return Ok(()) };
    let length = value.chars().count();
    let charset_ok = !ident
        || value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/'));
    if length == 0 || length > max || !charset_ok || value.chars().any(char::is_control) {
        let what = if ident {
            "letters, digits, _ - . : /"
        } else {
            "characters, no control characters"
        };
        return Err(ApiError::invalid(
            "parameter_invalid",
            format!("{param} must be 1 to {max} {what}"),
            Some(param),
        ));
    }
    Ok(())
}

fn validate_payment(
    state: &AppState,
    body: &CreatePaymentBody,
    merchant: Arc<Merchant>,
) -> Result<NewPayment, ApiError> {
    let amount = Money::parse(&body.amount.0, &body.currency).map_err(money_error)?;
    amount
        .check_maximum(state.payments.settings.amount_max(amount.currency().code()))
        .map_err(money_error)?;
    let method = Method::parse(&body.method).ok_or_else(|| {
        ApiError::invalid(
            "parameter_invalid",
            format!(
                "method \"{}\" is not one of qr, barcode, link, wallet_token",
                body.method
            ),
            Some("method"),
        )
    })?;
    match (method, &body.auth_code) {
        (Method::Barcode, None) => {
            return Err(ApiError::invalid(
                "parameter_missing",
                "barcode payments need auth_code, the code scanned from the payer's wallet",
                Some("auth_code"),
            ));
        }
        (Method::Barcode, Some(code))
            if !(10..=64).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) =>
        {
            return Err(ApiError::invalid(
                "auth_code_invalid",
                "auth_code must be 10 to 64 digits",
                Some("auth_code"),
            ));
        }
        (Method::Qr | Method::Link | Method::WalletToken, Some(_)) => {
            return Err(ApiError::invalid(
                "parameter_invalid",
                "auth_code is only for barcode payments",
                Some("auth_code"),
            ));
        }
        _ => {}
    }
    let wallet_token = wallet_token_text(method, body)?;
    match (method, body.expires_in) {
        (Method::Barcode | Method::WalletToken, Some(_)) => {
            return Err(ApiError::invalid(
                "parameter_invalid",
                "expires_in is only for qr and link payments",
                Some("expires_in"),
            ));
        }
        (_, Some(s)) if !(EXPIRES_IN_MIN..=EXPIRES_IN_MAX).contains(&s) => {
            return Err(ApiError::invalid(
                "parameter_invalid",
                format!("expires_in must be {EXPIRES_IN_MIN} to {EXPIRES_IN_MAX} seconds"),
                Some("expires_in"),
            ));
        }
        _ => {}
    }
    check_text(&body.order_id, "order_id", IDENT_CHARS_MAX, true)?;
    check_text(&body.terminal_id, "terminal_id", IDENT_CHARS_MAX, true)?;
    check_text(
        &body.description,
        "description",
        DESCRIPTION_CHARS_MAX,
        false,
    )?;
    check_text(&body.provider, "provider", 32, true)?;
    let metadata = body.metadata.clone().unwrap_or_default();
    if metadata.len() > METADATA_KEYS_MAX {
        return Err(ApiError::invalid(
            "parameter_invalid",
            format!("metadata has at most {METADATA_KEYS_MAX} keys"),
            Some("metadata"),
        ));
    }
    for (key, value) in &metadata {
        if key.is_empty()
            || key.chars().count() > METADATA_KEY_CHARS_MAX
            || value.chars().count() > METADATA_VALUE_CHARS_MAX
        {
            return Err(ApiError::invalid(
                "parameter_invalid",
                format!(
                    "metadata keys are 1 to {METADATA_KEY_CHARS_MAX} characters and values at most {METADATA_VALUE_CHARS_MAX}"
                ),
                Some("metadata"),
            ));
        }
    }
    Ok(NewPayment {
        merchant_id: body.merchant_id.clone(),
        merchant,
        amount,
        method,
        provider: body.provider.clone(),
        auth_code: body.auth_code.clone(),
        order_id: body.order_id.clone(),
        description: body.description.clone(),
        terminal_id: body.terminal_id.clone(),
        expires_in_seconds: body.expires_in,
        metadata,
        wallet_token,
    })
}

/// The largest wallet token accepted (a real Apple Pay token is about 3 KiB).
const WALLET_TOKEN_BYTES_MAX: usize = 64 * 1024;

/// A `wallet_token` payment's token as JSON text: required for that method, refused for the
/// others. (Its `provider` is required as for every method but barcode and link: the
/// service's choice of wallet says so.)
fn wallet_token_text(method: Method, body: &CreatePaymentBody) -> Result<Option<String>, ApiError> {
    let invalid = |message: &str| {
        ApiError::invalid(
            "parameter_invalid",
            message.to_owned(),
            Some("wallet_token"),
        )
    };
    match (method, &body.wallet_token) {
        (Method::WalletToken, None) => Err(ApiError::invalid(
            "parameter_missing",
            "wallet_token payments need wallet_token, the token the payer's wallet made",
            Some("wallet_token"),
        )),
        (Method::WalletToken, Some(token)) => {
            if !token.is_object() {
                return Err(invalid("wallet_token must be a JSON object"));
            }
            let text = token.to_string();
            if text.len() > WALLET_TOKEN_BYTES_MAX {
                return Err(invalid("wallet_token is larger than 64 KiB"));
            }
            Ok(Some(text))
        }
        (_, Some(_)) => Err(invalid("wallet_token is only for wallet_token payments")),
        (_, None) => Ok(None),
    }
}

/// Creates a payment.
#[utoipa::path(post, path = "/v1/payments", tag = "payments",
    request_body = CreatePaymentBody,
    params(("Idempotency-Key" = String, Header, description = "Unique per operation; resend it when retrying")),
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created (replays carry Idempotent-Replayed: true)", body = PaymentObject),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 402, description = "Declined; error.payment is the failed payment", body = ErrorBody),
        (status = 403, description = "Merchant outside the key's scope, or the terminal (`terminal_blocked`) or the key (`api_key_blocked`) blocked by the anomaly monitor", body = ErrorBody),
        (status = 409, description = "order_id in use, wallet token already charged, or the key is still being processed", body = ErrorBody),
        (status = 422, description = "Key reused for another request, wallet not supported, or a wallet token that cannot be charged", body = ErrorBody),
        (status = 502, description = "Provider or plugin failure", body = ErrorBody),
        (status = 504, description = "Provider outcome unknown; retry with the same key", body = ErrorBody),
    ))]
pub async fn create_payment(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    mut request: Idempotent<CreatePaymentBody>,
) -> Result<Answer, ApiError> {
    caller.require_role(Role::Pos)?;
    let body = request.body()?;
    caller.require_merchant(&body.merchant_id)?;
    let merchant =
        service::collecting_merchant(&state.payments, &body.merchant_id, body.provider.as_deref())?;
    let new = validate_payment(&state, &body, merchant)?;
    let claim = request.claim(&caller.0.id);
    let answer =
        service::create_payment(&state.payments, &caller.0, claim, new, &render_payment(201)).await;
    observe_answer(&state, &caller, &answer);
    answer.map_err(ApiError::from)
}

/// Counts replays and idempotency conflicts.
fn observe_answer(state: &AppState, caller: &Caller, answer: &Result<Answer, PaymentError>) {
    match answer {
        Ok(a) if a.replayed => state.metrics.count_idempotency_replay(),
        Err(PaymentError::Idempotency(conflict)) => observe_conflict(state, caller, *conflict),
        _ => {}
    }
}

/// Counts an idempotency conflict and tells the monitor: a misbehaving (or hostile) client
/// reuses keys.
pub(super) fn observe_conflict(state: &AppState, caller: &Caller, conflict: Conflict) {
    state.metrics.count_idempotency_conflict(conflict.code());
    state
        .monitor
        .observe(crate::monitor::Input::IdempotencyConflict {
            api_key_id: caller.0.id.clone(),
            code: conflict.code(),
        });
}

/// Finds a payment the caller may see, hot or archived: out of scope answers like a missing
/// one (403 for a scoped key, so that ids cannot be probed).
async fn visible_payment(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Found<PaymentRecord>, ApiError> {
    let payment = state.store.find_payment(id).await?;
    match payment {
        Some(p) if caller.0.may_act_for(&p.record.merchant_id) => Ok(p),
        _ if caller.0.role == Role::Admin => Err(ApiError::NotFound {
            kind: "payment",
            id: id.to_owned(),
        }),
        _ => Err(ApiError::Forbidden {
            message: format!("this API key may not access payment {id}"),
        }),
    }
}

/// The refusal of a change to an archived payment (API.md §5, "Archived payments").
fn archived_error(state: &AppState, id: &str) -> ApiError {
    ApiError::Conflict {
        code: "payment_archived",
        message: format!(
            "payment {id} is archived: it finished more than {} days ago and can no longer be changed here; refund it through the provider's merchant portal, or keep payments longer with [store] archive_after_days",
            state.config.store.archive_after_days.get_ref()
        ),
        param: None,
    }
}

/// One payment.
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "pay_...")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The payment", body = PaymentObject),
        (status = 403, description = "Not this key's", body = ErrorBody),
        (status = 404, description = "No such payment (admin keys)", body = ErrorBody),
    ))]
pub async fn get_payment(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PaymentObject>, ApiError> {
    caller.require_role(Role::Pos)?;
    let payment = visible_payment(&state, &caller, &id).await?;
    Ok(Json(PaymentObject::found(&payment)))
}

/// Filters of `GET /v1/payments`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentFilters {
    pub merchant_id: Option<String>,
    pub status: Option<String>,
    pub provider: Option<String>,
    /// RFC 3339: created at or after.
    pub created_gte: Option<String>,
    /// RFC 3339: created before.
    pub created_lt: Option<String>,
    pub limit: Option<usize>,
    pub starting_after: Option<String>,
}

pub(crate) fn parse_time(
    value: &Option<String>,
    param: &'static str,
) -> Result<Option<i64>, ApiError> {
    value
        .as_ref()
        .map(|text| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| {
                    ApiError::invalid(
                        "parameter_invalid",
                        format!("{param} must be an RFC 3339 time"),
                        Some(param),
                    )
                })
        })
        .transpose()
}

/// Payments, newest first.
#[utoipa::path(get, path = "/v1/payments", tag = "payments",
    params(PaymentFilters),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "A page of payments", body = List<PaymentObject>),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 403, description = "Role below erp, or merchant outside the scope", body = ErrorBody),
    ))]
pub async fn list_payments(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(filters): ApiQuery<PaymentFilters>,
) -> Result<Json<List<PaymentObject>>, ApiError> {
    caller.require_role(Role::Erp)?;
    if let Some(merchant) = &filters.merchant_id {
        caller.require_merchant(merchant)?;
    }
    let limit = PageParams {
        limit: filters.limit,
        starting_after: None,
    }
    .limit()?;
    let status = match filters.status.as_deref() {
        None => None,
        Some(text) => Some(PaymentStatus::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "parameter_invalid",
                format!("status \"{text}\" is not a payment status"),
                Some("status"),
            )
        })?),
    };
    let gte = parse_time(&filters.created_gte, "created_gte")?;
    let lt = parse_time(&filters.created_lt, "created_lt")?;
    let keep = |p: &PaymentRecord| {
        caller.0.may_act_for(&p.merchant_id)
            && status.is_none_or(|s| p.status == s)
            && filters.provider.as_ref().is_none_or(|v| &p.provider == v)
            && gte.is_none_or(|t| p.created_at_ms >= t)
            && lt.is_none_or(|t| p.created_at_ms < t)
    };
    let page = state
        .store
        .payments_page(
            filters.merchant_id.as_deref(),
            filters.starting_after.as_deref(),
            limit,
            &keep,
        )
        .await?;
    Ok(Json(List::page(
        page.iter().map(PaymentObject::found),
        limit,
    )))
}

/// Cancels a pending payment at the provider and here.
#[utoipa::path(post, path = "/v1/payments/{id}/cancel", tag = "payments",
    request_body = CancelBody,
    params(("id" = String, Path, description = "pay_..."), ("Idempotency-Key" = String, Header, description = "Unique per operation")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The payment, cancelled (or already ended)", body = PaymentObject),
        (status = 409, description = "Already succeeded: refund it instead", body = ErrorBody),
    ))]
pub async fn cancel_payment(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    mut request: Idempotent<CancelBody>,
) -> Result<Answer, ApiError> {
    caller.require_role(Role::Pos)?;
    let found = visible_payment(&state, &caller, &id).await?;
    request.body()?; // checked (no fields), after the role and the scope
    let claim = request.claim(&caller.0.id);
    let answer = if found.archived {
        // Only a retry of a key used before is answered.
        match service::cancel_archived(&state.payments, claim, found.record, &render_payment(200))
            .await
        {
            Ok(None) => return Err(archived_error(&state, &id)),
            Ok(Some(answer)) => Ok(answer),
            Err(e) => Err(e),
        }
    } else {
        service::cancel_payment(&state.payments, claim, found.record, &render_payment(200)).await
    };
    observe_answer(&state, &caller, &answer);
    answer.map_err(ApiError::from)
}

/// Refunds a succeeded payment, wholly or in part.
#[utoipa::path(post, path = "/v1/payments/{id}/refunds", tag = "refunds",
    request_body = CreateRefundBody,
    params(("id" = String, Path, description = "pay_..."), ("Idempotency-Key" = String, Header, description = "Unique per operation"), ("Paygate-OTP" = Option<String>, Header, description = "A fresh code from the key's authenticator, when it has one (API.md §2)")),
    security(("api_key" = [])),
    responses(
        (status = 201, description = "The refund", body = RefundObject),
        (status = 401, description = "Unknown key, or a code needed (above [console] refund_confirm_above): otp_required, otp_invalid", body = ErrorBody),
        (status = 429, description = "Too many wrong codes for the key: otp_attempts_exceeded, Retry-After", body = ErrorBody),
        (status = 402, description = "Declined by the provider", body = ErrorBody),
        (status = 409, description = "The payment is archived (a retry of a key used before is answered)", body = ErrorBody),
        (status = 422, description = "Exceeds the payment, or the payment is not refundable", body = ErrorBody),
    ))]
pub async fn create_refund(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    source: super::auth::ClientSource,
    headers: axum::http::HeaderMap,
    ApiPath(id): ApiPath<String>,
    mut request: Idempotent<CreateRefundBody>,
) -> Result<Answer, ApiError> {
    caller.require_role(Role::Erp)?;
    let found = visible_payment(&state, &caller, &id).await?;
    if found.archived {
        request.body()?;
        let claim = request.claim(&caller.0.id);
        // Only a retry of a key used before is answered.
        let answer = match service::refund_archived(&state.payments, claim, &render_refund).await {
            Ok(None) => return Err(archived_error(&state, &id)),
            Ok(Some(answer)) => Ok(answer),
            Err(e) => Err(e),
        };
        observe_answer(&state, &caller, &answer);
        return answer.map_err(ApiError::from);
    }
    let payment = found.record;
    let body = request.body()?;
    let amount = match &body.amount {
        None => None,
        Some(text) => Some(Money::parse(&text.0, &payment.currency).map_err(money_error)?),
    };
    check_text(&body.reason, "reason", DESCRIPTION_CHARS_MAX, false)?;
    let new = NewRefund {
        payment_id: id,
        amount,
        reason: body.reason.clone(),
    };
    let claim = request.claim(&caller.0.id);
    // Above `[console] refund_confirm_above`, a key with an authenticator needs a fresh code.
    let refund_minor = new.amount.as_ref().map_or(
        payment.amount_minor - payment.refund_reserved_minor,
        Money::minor,
    );
    if state
        .console
        .refund_needs_code(&payment.currency, refund_minor)
    {
        let replay =
            super::second_factor::code_or_replay(&state, &caller.0, &claim, &headers, &source.0)
                .await?;
        if let Some(answer) = replay {
            return Ok(answer);
        }
    }
    let answer = service::create_refund(
        &state.payments,
        &caller.0,
        claim,
        payment,
        new,
        &render_refund,
    )
    .await;
    observe_answer(&state, &caller, &answer);
    answer.map_err(ApiError::from)
}

/// One refund.
#[utoipa::path(get, path = "/v1/refunds/{id}", tag = "refunds",
    params(("id" = String, Path, description = "re_...")),
    security(("api_key" = [])),
    responses((status = 200, description = "The refund", body = RefundObject), (status = 403, description = "Not this key's", body = ErrorBody)))]
pub async fn get_refund(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RefundObject>, ApiError> {
    caller.require_role(Role::Erp)?;
    let refund = state.store.find_refund(&id).await?;
    match refund {
        Some(r) if caller.0.may_act_for(&r.record.merchant_id) => Ok(Json(RefundObject::found(&r))),
        _ if caller.0.role == Role::Admin => Err(ApiError::NotFound { kind: "refund", id }),
        _ => Err(ApiError::Forbidden {
            message: format!("this API key may not access refund {id}"),
        }),
    }
}

/// The refunds of a payment, oldest first.
#[utoipa::path(get, path = "/v1/payments/{id}/refunds", tag = "refunds",
    params(("id" = String, Path, description = "pay_...")),
    security(("api_key" = [])),
    responses((status = 200, description = "The payment's refunds", body = List<RefundObject>)))]
pub async fn list_refunds(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<List<RefundObject>>, ApiError> {
    caller.require_role(Role::Erp)?;
    let payment = visible_payment(&state, &caller, &id).await?;
    let refunds = state.store.find_refunds_of(&payment.record.id).await?;
    Ok(Json(List::page(
        refunds.iter().map(RefundObject::found),
        usize::MAX - 1,
    )))
}
