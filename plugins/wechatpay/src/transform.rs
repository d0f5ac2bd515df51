//! Pure transformations between paygate and WeChat Pay API v3 (the Hyperswitch
//! `transformers.rs` of this connector): our requests into WeChat Pay's JSON bodies and
//! paths, and WeChat Pay's verified answers (status code + body) into our results and
//! errors. No host calls here: everything is unit-tested natively.
//!
//! Every mapping below is documented in README.md; keep the two in step.

use paygate_plugin_api::{
    CreatePaymentRequest, Declined, Money, PaymentResult, PaymentStatus, ProviderError,
    RefundResult, RefundStatus,
};
use serde::{Deserialize, Serialize};

use crate::payee::{Ids, Owner, Payee};
use crate::settings::Settings;

/// WeChat Pay (domestic) settles CNY only, in fen: our minor units with exponent 2.
pub const CURRENCY: &str = "CNY";
pub const EXPONENT: u8 = 2;

/// `description` is `string(127)`, `reason` `string(80)`: counted in bytes here, the
/// stricter reading, and cut on a character boundary.
const DESCRIPTION_BYTES_MAX: usize = 127;
const REASON_BYTES_MAX: usize = 80;
/// Bounds on what we accept from a response (ids are at most 32-64 characters).
const REFERENCE_CHARS_MAX: usize = 64;
const OPENID_CHARS_MAX: usize = 128;
const CODE_URL_CHARS_MAX: usize = 2048;
/// How much of a provider message goes into our errors.
const MESSAGE_CHARS_MAX: usize = 200;

/// Payment codes: 18 digits starting with 10-15.
pub const PAYMENT_CODE_PREFIXES: [&str; 6] = ["10", "11", "12", "13", "14", "15"];
pub const PAYMENT_CODE_LENGTH: u8 = 18;

// ---------------------------------------------------------------------------------------
// Our side: checks before anything is sent.
// ---------------------------------------------------------------------------------------

/// The amount in fen. WeChat Pay takes CNY only, at least 1 fen.
pub fn fen(amount: &Money) -> Result<i64, ProviderError> {
    if amount.currency != CURRENCY || amount.exponent != EXPONENT {
        return Err(ProviderError::InvalidRequest(format!(
            "WeChat Pay takes CNY with exponent 2, not {} with exponent {}",
            amount.currency, amount.exponent
        )));
    }
    if amount.minor < 1 {
        return Err(ProviderError::InvalidRequest(format!(
            "amount must be at least 1 fen, got {}",
            amount.minor
        )));
    }
    Ok(amount.minor)
}

/// `out_trade_no`: 6-32 characters of `[0-9A-Za-z_*-]`. Our payment ids fit; anything else
/// is refused before it is sent (it would also be unsafe in a URL path).
pub fn check_out_trade_no(id: &str) -> Result<(), ProviderError> {
    let ok = (6..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-*".contains(&b));
    ok.then_some(()).ok_or_else(|| {
        ProviderError::InvalidRequest(format!(
            "payment id {:?} is not a valid WeChat Pay out_trade_no (6-32 of [0-9A-Za-z_*-])",
            clip(id)
        ))
    })
}

/// `out_refund_no`: 1-64 characters of `[0-9A-Za-z_|*@-]`.
pub fn check_out_refund_no(id: &str) -> Result<(), ProviderError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b));
    ok.then_some(()).ok_or_else(|| {
        ProviderError::InvalidRequest(format!(
            "refund id {:?} is not a valid WeChat Pay out_refund_no (1-64 of [0-9A-Za-z_|*@-])",
            clip(id)
        ))
    })
}

/// A WeChat payment code: `^1[0-5]\d{16}$`.
pub fn is_payment_code(code: &str) -> bool {
    code.len() == usize::from(PAYMENT_CODE_LENGTH)
        && code.bytes().all(|b| b.is_ascii_digit())
        && PAYMENT_CODE_PREFIXES.iter().any(|p| code.starts_with(p))
}

/// The longest prefix of `text` of at most `bytes_max` bytes that ends on a character
/// boundary.
pub(crate) fn cut(text: &str, bytes_max: usize) -> &str {
    let mut end = text.len().min(bytes_max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The order description: the request's (trimmed, cut to 127 bytes), else
/// `Payment <payment id>` (the field is required).
pub fn description(given: Option<&str>, payment_id: &str) -> String {
    match given.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => cut(d, DESCRIPTION_BYTES_MAX).to_owned(),
        None => cut(&format!("Payment {payment_id}"), DESCRIPTION_BYTES_MAX).to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Request bodies (field order as in WeChat Pay's documentation).
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Amount {
    total: i64,
    currency: &'static str,
}

#[derive(Debug, Serialize)]
struct NativeOrder<'a> {
    #[serde(flatten)]
    payee: Ids<'a>,
    description: String,
    out_trade_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_expire: Option<String>,
    notify_url: &'a str,
    amount: Amount,
}

#[derive(Debug, Serialize)]
struct CodePayer<'a> {
    auth_code: &'a str,
}

#[derive(Debug, Serialize)]
struct StoreInfo<'a> {
    out_id: &'a str,
}

#[derive(Debug, Serialize)]
struct CodeSceneInfo<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<&'a str>,
    store_info: StoreInfo<'a>,
}

#[derive(Debug, Serialize)]
struct CodepayOrder<'a> {
    #[serde(flatten)]
    payee: Ids<'a>,
    description: String,
    out_trade_no: &'a str,
    payer: CodePayer<'a>,
    amount: Amount,
    scene_info: CodeSceneInfo<'a>,
}

#[derive(Debug, Serialize)]
struct RefundAmount {
    refund: i64,
    total: i64,
    currency: &'static str,
}

#[derive(Debug, Serialize)]
struct RefundOrder<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_mchid: Option<&'a str>,
    out_trade_no: &'a str,
    out_refund_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_url: Option<&'a str>,
    amount: RefundAmount,
}

pub(crate) fn to_json(body: &impl Serialize) -> Result<String, ProviderError> {
    serde_json::to_string(body)
        .map_err(|e| ProviderError::InvalidRequest(format!("cannot encode the request: {e}")))
}

/// The Native order (`Payee::native_path`) of a `qr` or `link` payment. `time_expire` is
/// `now + expires_in_seconds` in +08:00 when the gateway gives an expiry.
pub fn native_order(
    payee: &Payee<'_>,
    request: &CreatePaymentRequest,
    now_millis: u64,
) -> Result<String, ProviderError> {
    check_out_trade_no(&request.payment_id)?;
    let total = fen(&request.amount)?;
    let notify_url = request.merchant.notify_url.trim();
    if notify_url.is_empty() {
        return Err(ProviderError::InvalidRequest(
            "a Native order needs the merchant's notify_url".into(),
        ));
    }
    let time_expire =
        match request.expires_in_seconds {
            Some(seconds) => Some(crate::time::expiry(now_millis, seconds).ok_or_else(|| {
                ProviderError::InvalidRequest("expiry is past the year 9999".into())
            })?),
            None => None,
        };
    to_json(&NativeOrder {
        payee: payee.ids(true),
        description: description(request.description.as_deref(), &request.payment_id),
        out_trade_no: &request.payment_id,
        time_expire,
        notify_url,
        amount: Amount {
            total,
            currency: CURRENCY,
        },
    })
}

/// The payment-code order (`Payee::codepay_path`) of a `barcode` payment. A code that is
/// not a WeChat payment code is declined here, without a request.
pub fn codepay_order(
    settings: &Settings,
    payee: &Payee<'_>,
    request: &CreatePaymentRequest,
) -> Result<String, ProviderError> {
    check_out_trade_no(&request.payment_id)?;
    let total = fen(&request.amount)?;
    let auth_code = request.auth_code.as_deref().map(str::trim).ok_or_else(|| {
        ProviderError::InvalidRequest("a barcode payment needs the payer's auth_code".into())
    })?;
    if !is_payment_code(auth_code) {
        return Err(ProviderError::declined(
            "auth_code_invalid",
            "not a WeChat Pay payment code (18 digits starting with 10-15)",
        ));
    }
    let device_id = request
        .terminal_id
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| cut(t, 32));
    let store = settings.store_id.as_deref().unwrap_or(&request.merchant.id);
    to_json(&CodepayOrder {
        payee: payee.ids(true),
        description: description(request.description.as_deref(), &request.payment_id),
        out_trade_no: &request.payment_id,
        payer: CodePayer { auth_code },
        amount: Amount {
            total,
            currency: CURRENCY,
        },
        scene_info: CodeSceneInfo {
            device_id,
            store_info: StoreInfo {
                out_id: cut(store, 32),
            },
        },
    })
}

/// `POST .../{out_trade_no}/close`: the merchant numbers.
pub fn close_order(payee: &Payee<'_>) -> Result<String, ProviderError> {
    to_json(&payee.ids(false))
}

/// `POST .../{out_trade_no}/reverse`: the merchant numbers and the app id.
pub fn reverse_order(payee: &Payee<'_>) -> Result<String, ProviderError> {
    to_json(&payee.ids(true))
}

/// What a refund request needs, from `RefundRequest` (or `RefundRef`).
pub struct RefundParams<'a> {
    pub refund_id: &'a str,
    pub payment_id: &'a str,
    pub refund: &'a Money,
    /// The payment's amount: WeChat Pay's `amount.total` is the original order's.
    pub total: &'a Money,
    pub reason: Option<&'a str>,
    pub notify_url: &'a str,
    /// A partner refund names its sub-merchant.
    pub sub_mchid: Option<&'a str>,
}

impl RefundParams<'_> {
    /// Checked amounts in fen: `(refund, total)`, `0 < refund <= total`.
    pub fn fen(&self) -> Result<(i64, i64), ProviderError> {
        let refund = fen(self.refund)?;
        let total = fen(self.total)?;
        if refund > total {
            return Err(ProviderError::InvalidRequest(format!(
                "refund of {refund} fen exceeds the payment's {total} fen"
            )));
        }
        Ok((refund, total))
    }
}

/// `POST /v3/refund/domestic/refunds` ([`crate::payee::REFUNDS_PATH`]).
pub fn refund_order(params: &RefundParams<'_>) -> Result<String, ProviderError> {
    check_out_trade_no(params.payment_id)?;
    check_out_refund_no(params.refund_id)?;
    let (refund, total) = params.fen()?;
    to_json(&RefundOrder {
        sub_mchid: params.sub_mchid,
        out_trade_no: params.payment_id,
        out_refund_no: params.refund_id,
        reason: params
            .reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| cut(r, REASON_BYTES_MAX)),
        notify_url: Some(params.notify_url.trim()).filter(|u| !u.is_empty()),
        amount: RefundAmount {
            refund,
            total,
            currency: CURRENCY,
        },
    })
}

// ---------------------------------------------------------------------------------------
// Their side: interpreting verified answers.
// ---------------------------------------------------------------------------------------

/// The calls the plugin makes. What an untrusted or missing answer means depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    NativeOrder,
    Codepay,
    QueryPayment,
    Close,
    Reverse,
    Refund,
    QueryRefund,
    /// Onboarding: submit an applyment (`POST /v3/applyment4sub/applyment/`).
    Applyment,
    /// Onboarding: query an applyment by its business code.
    QueryApplyment,
    /// Change a sub-merchant's settlement account (`modify-settlement`).
    ModifySettlement,
    /// Query a settlement account change by its `application_no`.
    QuerySettlementApplication,
    /// Query a sub-merchant's current settlement account.
    QuerySettlement,
    /// Onboarding: upload an image an applyment names by media id.
    MediaUpload,
    /// A day's trade bill: its download link (`GET /v3/bill/tradebill`).
    TradeBill,
    /// The bill file behind that link.
    BillDownload,
}

impl Call {
    /// Whether the request may have changed something at WeChat Pay (created, charged,
    /// closed, reversed, refunded, applied or changed a settlement account). Queries have
    /// no effect, nor has an image upload (an image no applyment names is unused).
    pub fn has_effect(self) -> bool {
        !matches!(
            self,
            Call::QueryPayment
                | Call::TradeBill
                | Call::BillDownload
                | Call::QueryRefund
                | Call::MediaUpload
                | Call::QueryApplyment
                | Call::QuerySettlementApplication
                | Call::QuerySettlement
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Call::NativeOrder => "native order",
            Call::Codepay => "payment-code pay",
            Call::QueryPayment => "order query",
            Call::Close => "close order",
            Call::Reverse => "reverse order",
            Call::Refund => "refund",
            Call::QueryRefund => "refund query",
            Call::Applyment => "applyment",
            Call::QueryApplyment => "applyment query",
            Call::ModifySettlement => "modify settlement",
            Call::QuerySettlementApplication => "settlement application query",
            Call::QuerySettlement => "settlement query",
            Call::MediaUpload => "media upload",
            Call::TradeBill => "trade bill",
            Call::BillDownload => "bill download",
        }
    }
}

/// The error for an answer we did not get or cannot trust (timeout, bad signature,
/// garbage): for a call with an effect, it may have happened (the gateway queries before
/// anything else); for a query, nothing is known yet (ask again).
pub fn uncertain(call: Call, what: impl std::fmt::Display) -> ProviderError {
    let message = format!("wechatpay {}: {what}", call.name());
    if call.has_effect() {
        ProviderError::UnknownOutcome(message)
    } else {
        ProviderError::Unavailable(message)
    }
}

/// A transport failure. A connection that failed before sending did nothing; a timeout or
/// an oversized answer may have (`uncertain`); a host refusal is our configuration.
pub fn transport_error(call: Call, error: paygate_plugin_api::http::Error) -> ProviderError {
    use paygate_plugin_api::http::Error;
    match error {
        Error::Denied(reason) => ProviderError::InvalidRequest(format!(
            "wechatpay {}: the host refused the request (is base_url's origin in allowed_hosts?): {reason}",
            call.name()
        )),
        Error::Connection(reason) => ProviderError::Unavailable(format!(
            "wechatpay {}: connection failed: {reason}",
            call.name()
        )),
        Error::Timeout => uncertain(call, "no answer in time"),
        Error::TooLarge => uncertain(call, "the answer was too large"),
    }
}

/// A verified answer: its HTTP status and body.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: u16,
    pub body: &'a [u8],
}

impl Answer<'_> {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// WeChat Pay's error body `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    /// As sent (e.g. `NOT_ENOUGH`), clipped.
    pub code: String,
    pub message: String,
}

#[derive(Deserialize)]
struct RawFailure {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl Failure {
    pub fn parse(answer: Answer<'_>) -> Failure {
        let raw: Option<RawFailure> = serde_json::from_slice(answer.body).ok();
        let (code, message) = match raw {
            Some(r) => (r.code.unwrap_or_default(), r.message.unwrap_or_default()),
            None => (
                String::new(),
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(512)]).into_owned(),
            ),
        };
        Failure {
            status: answer.status,
            code: clip(&code),
            message: clip(&message),
        }
    }

    /// The code without underscores, upper case: v2 and v3 spell the same code differently
    /// (`NOTENOUGH` / `NOT_ENOUGH`, `SYSTEMERROR` / `SYSTEM_ERROR`), and both are accepted.
    pub fn normalized(&self) -> String {
        normalize_code(&self.code)
    }

    pub(crate) fn describe(&self) -> String {
        if self.code.is_empty() {
            format!("HTTP {}: {}", self.status, self.message)
        } else {
            format!("HTTP {} {}: {}", self.status, self.code, self.message)
        }
    }
}

pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Provider text in our errors: at most 200 characters, no control characters.
pub(crate) fn clip(text: &str) -> String {
    text.chars()
        .take(MESSAGE_CHARS_MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// What an error code means, before the call decides what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 5xx, `SYSTEM_ERROR`, `BANK_ERROR`, `BIZ_ERR_NEED_RETRY`: WeChat Pay's side failed;
    /// the request may or may not have taken effect.
    Retry,
    /// 429 and the frequency-limit codes: refused at the door, nothing happened.
    RateLimited,
    /// Our request or the merchant's setup is wrong: nothing happened.
    BadRequest,
    /// `ORDER_NOT_EXIST`, `RESOURCE_NOT_EXISTS`, `NOT_FOUND`.
    NotFound,
    /// `USERPAYING`: the payer is confirming (password) on the phone.
    UserPaying,
    /// A final refusal, with our failure code.
    Decline(&'static str),
    /// The order already exists in some state (`ORDER_PAID`, `ORDER_CLOSED`,
    /// `ORDER_REVERSED`, `OUT_TRADE_NO_USED`): only a query tells which.
    OrderExists,
    /// `INVALID_REQUEST`: well-formed but against a business rule (also what a repeated
    /// order number with different parameters gets).
    BusinessRule,
    /// Anything else.
    Unknown,
}

/// Classifies a failure by HTTP status and (normalized) code.
pub fn classify(failure: &Failure) -> Class {
    let code = failure.normalized();
    match code.as_str() {
        "USERPAYING" => return Class::UserPaying,
        "SYSTEMERROR" | "BANKERROR" | "BIZERRNEEDRETRY" => return Class::Retry,
        _ => {}
    }
    if failure.status >= 500 {
        return Class::Retry;
    }
    if failure.status == 429 {
        return Class::RateLimited;
    }
    match code.as_str() {
        "FREQUENCYLIMITED" | "RATELIMITEXCEEDED" | "FREQUENCYLIMITEXCEED" | "RATELIMITED" => {
            Class::RateLimited
        }
        "PARAMERROR"
        | "SIGNERROR"
        | "APPIDMCHIDNOTMATCH"
        | "MCHNOTEXISTS"
        | "NOAUTH"
        | "OPENIDMISMATCH"
        | "INVALIDTRANSACTIONID" => Class::BadRequest,
        "INVALIDREQUEST" => Class::BusinessRule,
        "ORDERNOTEXIST" | "RESOURCENOTEXISTS" | "NOTFOUND" | "REFUNDNOTEXISTS"
        | "APPLYMENTNOTEXIST" => Class::NotFound,
        "NOTENOUGH" => Class::Decline("insufficient_funds"),
        "AUTHCODEEXPIRE" => Class::Decline("auth_code_expired"),
        "AUTHCODEINVALID" | "AUTHCODEERROR" => Class::Decline("auth_code_invalid"),
        "TRADEERROR"
        | "ACCOUNTERROR"
        | "USERACCOUNTABNORMAL"
        | "BUYERMISMATCH"
        | "NOTSUPORTCARD"
        | "REQUESTBLOCKED"
        | "RULELIMIT" => Class::Decline("provider_declined"),
        "ORDERPAID" | "ORDERCLOSED" | "ORDERREVERSED" | "OUTTRADENOUSED" => Class::OrderExists,
        _ if failure.status == 404 => Class::NotFound,
        _ => Class::Unknown,
    }
}

/// The error of a failure that the call has no special reading for.
pub(crate) fn generic_error(call: Call, failure: &Failure) -> ProviderError {
    let what = failure.describe();
    match classify(failure) {
        Class::RateLimited => {
            ProviderError::Unavailable(format!("wechatpay {}: {what}", call.name()))
        }
        Class::BadRequest => {
            ProviderError::InvalidRequest(format!("wechatpay {}: {what}", call.name()))
        }
        _ => uncertain(call, what),
    }
}

fn declined(code: &'static str, failure: &Failure) -> ProviderError {
    ProviderError::declined(code, failure.describe())
}

pub(crate) fn body_error(call: Call, what: impl std::fmt::Display) -> ProviderError {
    uncertain(call, format!("malformed answer: {what}"))
}

pub(crate) fn parse_body<'de, T: Deserialize<'de>>(
    call: Call,
    body: &'de [u8],
) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|e| body_error(call, e))
}

/// An identifying field of an answer when it says something: an empty string is as good as
/// absent (some answers carry `"appid": ""`).
pub(crate) fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// An optional string field of an answer: `None` when absent or empty; refused when longer
/// than `chars_max`.
pub(crate) fn bounded(
    call: Call,
    field: &str,
    value: Option<String>,
    chars_max: usize,
) -> Result<Option<String>, ProviderError> {
    match value {
        Some(v) if v.chars().count() > chars_max => Err(body_error(
            call,
            format!("{field} is longer than {chars_max} characters"),
        )),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

// --- Native order ----------------------------------------------------------------------

#[derive(Deserialize)]
struct NativeAnswer {
    code_url: Option<String>,
}

/// A Native order's answer: `200 {"code_url": ...}` is a pending payment whose QR code
/// carries `code_url`.
pub fn interpret_native(answer: Answer<'_>) -> Result<PaymentResult, ProviderError> {
    let call = Call::NativeOrder;
    if !answer.is_success() {
        let failure = Failure::parse(answer);
        return Err(match classify(&failure) {
            Class::Retry | Class::OrderExists | Class::UserPaying => {
                uncertain(call, failure.describe())
            }
            Class::RateLimited => generic_error(call, &failure),
            Class::Decline(code) => declined(code, &failure),
            Class::BadRequest | Class::BusinessRule | Class::NotFound | Class::Unknown => {
                ProviderError::InvalidRequest(format!(
                    "wechatpay {}: {}",
                    call.name(),
                    failure.describe()
                ))
            }
        });
    }
    let parsed: NativeAnswer = parse_body(call, answer.body)?;
    let code_url = bounded(call, "code_url", parsed.code_url, CODE_URL_CHARS_MAX)?
        .filter(|u| !u.chars().any(char::is_control))
        .ok_or_else(|| body_error(call, "no code_url"))?;
    Ok(PaymentResult {
        qr_code: Some(code_url),
        ..PaymentResult::with_status(PaymentStatus::Pending)
    })
}

// --- Orders (codepay answer, query, notification resource) -------------------------------

/// `trade_state` of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeState {
    Success,
    Refund,
    NotPay,
    Closed,
    Revoked,
    UserPaying,
    PayError,
    Accept,
}

impl TradeState {
    pub fn parse(text: &str) -> Option<TradeState> {
        Some(match text {
            "SUCCESS" => TradeState::Success,
            "REFUND" => TradeState::Refund,
            "NOTPAY" => TradeState::NotPay,
            "CLOSED" => TradeState::Closed,
            "REVOKED" => TradeState::Revoked,
            "USERPAYING" => TradeState::UserPaying,
            "PAYERROR" => TradeState::PayError,
            "ACCEPT" => TradeState::Accept,
            _ => return None,
        })
    }

    /// Our status for a `trade_state`. `REFUND` ("turned into a refund") is a paid order:
    /// refunds are tracked as refunds.
    pub fn status(self) -> PaymentStatus {
        match self {
            TradeState::Success | TradeState::Refund => PaymentStatus::Succeeded,
            TradeState::NotPay | TradeState::UserPaying | TradeState::Accept => {
                PaymentStatus::Pending
            }
            TradeState::Closed | TradeState::Revoked => PaymentStatus::Cancelled,
            TradeState::PayError => PaymentStatus::Failed,
        }
    }
}

/// Our failure code for a `PAYERROR` order, from its free-text `trade_state_desc` when it
/// names a known cause, else `provider_declined`.
pub fn payerror_code(trade_state_desc: &str) -> &'static str {
    let desc = trade_state_desc.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| desc.contains(w));
    if has(&["余额不足", "insufficient", "notenough", "not_enough"]) {
        "insufficient_funds"
    } else if has(&["过期", "expire"]) {
        "auth_code_expired"
    } else if has(&["风险", "风控", "risk"]) {
        "risk_rejected"
    } else if has(&["取消", "cancel"]) {
        "payer_cancelled"
    } else {
        "provider_declined"
    }
}

#[derive(Debug, Deserialize)]
pub struct RawPayer {
    pub openid: Option<String>,
    /// A partner order's payer, under the service provider's app id.
    pub sp_openid: Option<String>,
    /// The same under the sub-merchant's own app id, when it has one.
    pub sub_openid: Option<String>,
}

impl RawPayer {
    fn identity(self) -> Option<String> {
        [self.openid, self.sp_openid, self.sub_openid]
            .into_iter()
            .flatten()
            .find(|id| !id.is_empty())
    }
}

#[derive(Debug, Deserialize)]
pub struct RawAmount {
    pub total: Option<i64>,
    pub currency: Option<String>,
}

/// An order as WeChat Pay describes it (query answer, codepay answer, and the decrypted
/// resource of a `TRANSACTION.*` notification).
#[derive(Debug, Deserialize)]
pub struct RawTransaction {
    #[serde(flatten)]
    pub owner: Owner,
    pub out_trade_no: Option<String>,
    pub transaction_id: Option<String>,
    pub trade_type: Option<String>,
    pub trade_state: Option<String>,
    pub trade_state_desc: Option<String>,
    pub payer: Option<RawPayer>,
    pub amount: Option<RawAmount>,
}

/// What we expect an answer about an order to say about itself.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedOrder<'a> {
    pub payee: Payee<'a>,
    pub out_trade_no: &'a str,
    /// Our amount in fen, when known (not for notifications).
    pub total: Option<i64>,
}

/// A checked order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    pub out_trade_no: Option<String>,
    pub state: TradeState,
    pub trade_type: Option<String>,
    pub transaction_id: Option<String>,
    pub openid: Option<String>,
    pub state_desc: String,
    /// `amount.total` in fen (CNY): the order's amount, not `payer_total` (what the payer
    /// paid after coupons). `None` when the answer has none.
    pub total_fen: Option<i64>,
}

/// An amount WeChat Pay reports, in fen: a JSON integer (anything else fails to parse),
/// more than zero. `None` when absent.
pub fn reported_fen(
    call: Call,
    field: &str,
    fen: Option<i64>,
) -> Result<Option<i64>, ProviderError> {
    match fen {
        Some(fen) if fen <= 0 => Err(body_error(
            call,
            format!("{field} {fen} is not a positive amount"),
        )),
        other => Ok(other),
    }
}

/// Fen as our money: CNY, exponent 2 (the only currency `check`s let through; an answer
/// that omits `amount.currency`, as refund notices do, is in CNY).
pub fn money_of_fen(fen: i64) -> Money {
    Money {
        minor: fen,
        currency: CURRENCY.into(),
        exponent: EXPONENT,
    }
}

impl Trade {
    /// Checks the fields that must match ours (when present) and the bounds of the rest.
    pub fn check(
        call: Call,
        raw: RawTransaction,
        expected: &ExpectedOrder<'_>,
    ) -> Result<Trade, ProviderError> {
        let mismatch = |field: &str| {
            uncertain(
                call,
                format!("the answer's {field} does not match the request"),
            )
        };
        if let Err(not_ours) = (expected.payee.check(&raw.owner, false))
            .and_then(|()| expected.payee.check_app(&raw.owner))
        {
            return Err(mismatch(not_ours.field()));
        }
        if present(&raw.out_trade_no).is_some_and(|o| o != expected.out_trade_no) {
            return Err(mismatch("out_trade_no"));
        }
        if let Some(amount) = &raw.amount {
            if let (Some(ours), Some(theirs)) = (expected.total, amount.total)
                && ours != theirs
            {
                return Err(mismatch("amount.total"));
            }
            if amount.currency.as_deref().is_some_and(|c| c != CURRENCY) {
                return Err(mismatch("amount.currency"));
            }
        }
        let state_text = raw
            .trade_state
            .ok_or_else(|| body_error(call, "no trade_state"))?;
        let state = TradeState::parse(&state_text).ok_or_else(|| {
            body_error(call, format!("unknown trade_state {:?}", clip(&state_text)))
        })?;
        let total_fen = reported_fen(call, "amount.total", raw.amount.and_then(|a| a.total))?;
        Ok(Trade {
            total_fen,
            out_trade_no: bounded(call, "out_trade_no", raw.out_trade_no, 32)?,
            state,
            trade_type: bounded(call, "trade_type", raw.trade_type, 32)?,
            transaction_id: bounded(
                call,
                "transaction_id",
                raw.transaction_id,
                REFERENCE_CHARS_MAX,
            )?,
            openid: bounded(
                call,
                "payer.openid",
                raw.payer.and_then(RawPayer::identity),
                OPENID_CHARS_MAX,
            )?,
            state_desc: clip(&raw.trade_state_desc.unwrap_or_default()),
        })
    }

    /// Whether this is a payment-code order (closed by `reverse`, not `close`).
    pub fn is_payment_code_order(&self) -> bool {
        self.state == TradeState::UserPaying
            || matches!(self.trade_type.as_deref(), Some("MICROPAY" | "FACEPAY"))
    }

    /// The order as our payment result.
    pub fn result(&self) -> PaymentResult {
        let status = self.state.status();
        PaymentResult {
            status,
            provider_reference: self.transaction_id.clone(),
            qr_code: None,
            failure: (status == PaymentStatus::Failed).then(|| Declined {
                code: payerror_code(&self.state_desc).into(),
                message: if self.state_desc.is_empty() {
                    "PAYERROR".into()
                } else {
                    format!("PAYERROR: {}", self.state_desc)
                },
            }),
            payer: self.openid.clone(),
            amount: self.total_fen.map(money_of_fen),
            card: None,
        }
    }
}

/// A payment-code order's answer.
/// - `2xx` with `trade_state`: the order's state (`SUCCESS` succeeded, `USERPAYING` pending,
///   `PAYERROR` failed, ...).
/// - `USERPAYING` (HTTP 202 or any status): pending; the gateway queries until it ends.
/// - a decline code: declined with our code.
/// - `SYSTEM_ERROR`, 5xx, and any code we cannot read safely: unknown outcome (query).
pub fn interpret_codepay(
    answer: Answer<'_>,
    expected: &ExpectedOrder<'_>,
) -> Result<PaymentResult, ProviderError> {
    let call = Call::Codepay;
    if answer.is_success() {
        let raw: RawTransaction = parse_body(call, answer.body)?;
        // 202 {"code": "USERPAYING"} without a trade_state is also "user paying".
        if raw.trade_state.is_none() && is_userpaying_body(answer.body) {
            return Ok(PaymentResult::with_status(PaymentStatus::Pending));
        }
        return Ok(Trade::check(call, raw, expected)?.result());
    }
    let failure = Failure::parse(answer);
    match classify(&failure) {
        Class::UserPaying => Ok(PaymentResult::with_status(PaymentStatus::Pending)),
        Class::Decline(code) => Err(declined(code, &failure)),
        Class::BadRequest => Err(generic_error(call, &failure)),
        Class::RateLimited => Err(generic_error(call, &failure)),
        // An existing order, a business-rule refusal (e.g. the same number with other
        // parameters), a 404 or an unknown code: the order may exist, only a query says.
        Class::Retry
        | Class::OrderExists
        | Class::BusinessRule
        | Class::NotFound
        | Class::Unknown => Err(uncertain(call, failure.describe())),
    }
}

fn is_userpaying_body(body: &[u8]) -> bool {
    serde_json::from_slice::<RawFailure>(body)
        .ok()
        .and_then(|f| f.code)
        .is_some_and(|c| normalize_code(&c) == "USERPAYING")
}

/// An order query's answer: the order, or (404 `ORDER_NOT_EXIST`) `None`: WeChat Pay has no
/// order under this number, so nothing was charged under it.
pub fn interpret_query(
    answer: Answer<'_>,
    expected: &ExpectedOrder<'_>,
) -> Result<Option<Trade>, ProviderError> {
    let call = Call::QueryPayment;
    if answer.is_success() {
        let raw: RawTransaction = parse_body(call, answer.body)?;
        return Trade::check(call, raw, expected).map(Some);
    }
    let failure = Failure::parse(answer);
    match classify(&failure) {
        Class::NotFound => Ok(None),
        _ => Err(generic_error(call, &failure)),
    }
}

/// The error `query-payment` answers for an order WeChat Pay does not have: nothing was
/// charged under this number, and creating it again with the same number is safe, which is
/// what `unavailable` tells the gateway (it resumes the payment by sending it again).
pub fn order_not_found(out_trade_no: &str) -> ProviderError {
    ProviderError::Unavailable(format!(
        "wechatpay order query: WeChat Pay has no order {out_trade_no} (nothing was charged under it)"
    ))
}

/// How a close or reverse ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Closed or reversed (or already so, or never existed): it can no longer be paid.
    Cancelled,
    /// WeChat Pay refused because the order is paid: query it again and report that.
    Paid,
}

/// A close (`204`) or reverse (`200`) answer.
pub fn interpret_end(call: Call, answer: Answer<'_>) -> Result<Ended, ProviderError> {
    // 200 / 204 only: a 202 is "accepted, not done" (e.g. `USERPAYING`).
    if answer.status == 200 || answer.status == 204 {
        return Ok(Ended::Cancelled);
    }
    let failure = Failure::parse(answer);
    match (classify(&failure), failure.normalized().as_str()) {
        (Class::NotFound, _) => Ok(Ended::Cancelled),
        (Class::OrderExists, "ORDERCLOSED" | "ORDERREVERSED") => Ok(Ended::Cancelled),
        (Class::OrderExists, "ORDERPAID") => Ok(Ended::Paid),
        (Class::BadRequest | Class::RateLimited, _) => Err(generic_error(call, &failure)),
        _ => Err(uncertain(call, failure.describe())),
    }
}

// --- Refunds -----------------------------------------------------------------------------

/// A refund as WeChat Pay describes it (refund answer, refund query, and the decrypted
/// resource of a `REFUND.*` notification, which names the status `refund_status`).
#[derive(Debug, Deserialize)]
pub struct RawRefund {
    #[serde(flatten)]
    pub owner: Owner,
    pub refund_id: Option<String>,
    pub out_refund_no: Option<String>,
    pub out_trade_no: Option<String>,
    pub status: Option<String>,
    pub refund_status: Option<String>,
    pub amount: Option<RawRefundAmount>,
}

#[derive(Debug, Deserialize)]
pub struct RawRefundAmount {
    pub refund: Option<i64>,
    pub total: Option<i64>,
    pub currency: Option<String>,
}

/// What we expect a refund answer to say about itself.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedRefund<'a> {
    pub payee: Payee<'a>,
    pub out_refund_no: &'a str,
    pub out_trade_no: &'a str,
    /// `(refund, total)` in fen, when known (not for notifications).
    pub amounts: Option<(i64, i64)>,
}

/// Our refund status for WeChat Pay's: `SUCCESS` succeeded, `PROCESSING` pending,
/// `CLOSED` / `ABNORMAL` failed (`provider_declined`).
pub fn refund_status(text: &str) -> Option<RefundStatus> {
    match text {
        "SUCCESS" => Some(RefundStatus::Succeeded),
        "PROCESSING" => Some(RefundStatus::Pending),
        "CLOSED" | "ABNORMAL" => Some(RefundStatus::Failed),
        _ => None,
    }
}

/// Checks a refund description and turns it into our result.
pub fn check_refund(
    call: Call,
    raw: RawRefund,
    expected: &ExpectedRefund<'_>,
) -> Result<(String, RefundResult), ProviderError> {
    let mismatch = |field: &str| {
        uncertain(
            call,
            format!("the answer's {field} does not match the request"),
        )
    };
    if let Err(not_ours) = expected.payee.check(&raw.owner, false) {
        return Err(mismatch(not_ours.field()));
    }
    if present(&raw.out_refund_no).is_some_and(|o| o != expected.out_refund_no) {
        return Err(mismatch("out_refund_no"));
    }
    if present(&raw.out_trade_no).is_some_and(|o| o != expected.out_trade_no) {
        return Err(mismatch("out_trade_no"));
    }
    if let Some(amount) = &raw.amount {
        if let Some((refund, total)) = expected.amounts {
            if amount.refund.is_some_and(|r| r != refund) {
                return Err(mismatch("amount.refund"));
            }
            if amount.total.is_some_and(|t| t != total) {
                return Err(mismatch("amount.total"));
            }
        }
        if amount.currency.as_deref().is_some_and(|c| c != CURRENCY) {
            return Err(mismatch("amount.currency"));
        }
    }
    let refund_fen = reported_fen(call, "amount.refund", raw.amount.and_then(|a| a.refund))?;
    let text = raw
        .status
        .or(raw.refund_status)
        .ok_or_else(|| body_error(call, "no refund status"))?;
    let status = refund_status(&text)
        .ok_or_else(|| body_error(call, format!("unknown refund status {:?}", clip(&text))))?;
    let out_refund_no = bounded(call, "out_refund_no", raw.out_refund_no, 64)?
        .unwrap_or_else(|| expected.out_refund_no.to_owned());
    Ok((
        out_refund_no,
        RefundResult {
            status,
            provider_reference: bounded(call, "refund_id", raw.refund_id, REFERENCE_CHARS_MAX)?,
            failure: (status == RefundStatus::Failed).then(|| Declined {
                code: "provider_declined".into(),
                message: format!("WeChat Pay refund {text}"),
            }),
            amount: refund_fen.map(money_of_fen),
        },
    ))
}

/// A refund's answer (`Call::Refund`) or a refund query's (`Call::QueryRefund`).
/// Refund errors: `NOT_ENOUGH` (the merchant's balance) declined `insufficient_funds`;
/// `USER_ACCOUNT_ABNORMAL` and other refusals declined `provider_declined`; a missing order
/// or a business-rule refusal an invalid request; `SYSTEM_ERROR` / 5xx / unknown codes an
/// unknown outcome. A refund query's 404 means WeChat Pay has no such refund: unavailable
/// (nothing happened; sending the refund again under the same number is safe).
pub fn interpret_refund(
    call: Call,
    answer: Answer<'_>,
    expected: &ExpectedRefund<'_>,
) -> Result<RefundResult, ProviderError> {
    if answer.is_success() {
        let raw: RawRefund = parse_body(call, answer.body)?;
        return check_refund(call, raw, expected).map(|(_, result)| result);
    }
    let failure = Failure::parse(answer);
    let class = classify(&failure);
    if call == Call::QueryRefund {
        return Err(match class {
            Class::NotFound => ProviderError::Unavailable(format!(
                "wechatpay refund query: WeChat Pay has no refund {} (nothing was refunded under it)",
                expected.out_refund_no
            )),
            _ => generic_error(call, &failure),
        });
    }
    Err(match class {
        Class::Decline(code) => declined(code, &failure),
        Class::NotFound | Class::BusinessRule | Class::OrderExists | Class::BadRequest => {
            ProviderError::InvalidRequest(format!("wechatpay refund: {}", failure.describe()))
        }
        Class::RateLimited => generic_error(call, &failure),
        Class::Retry | Class::UserPaying | Class::Unknown => uncertain(call, failure.describe()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{cny, create, settings};
    use paygate_plugin_api::Method;
    use serde_json::{Value, json};

    fn body(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }

    fn answer(status: u16, body: &[u8]) -> Answer<'_> {
        Answer { status, body }
    }

    const DIRECT: Payee<'static> = Payee::Direct {
        appid: "wxd678efh567hg6787",
        mchid: "1900000109",
    };

    const PARTNER: Payee<'static> = Payee::Partner {
        sp_appid: "wxd678efh567hg6787",
        sp_mchid: "1900000109",
        sub_mchid: "1900006491",
    };

    const ORDER: ExpectedOrder<'static> = ExpectedOrder {
        payee: DIRECT,
        out_trade_no: "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
        total: Some(1250),
    };

    /// As a notification sees an order: without our amount to check against.
    const ORDER_UNKNOWN_TOTAL: ExpectedOrder<'static> = ExpectedOrder {
        total: None,
        ..ORDER
    };

    fn code(result: Result<PaymentResult, ProviderError>) -> String {
        match result {
            Err(ProviderError::Declined(d)) => d.code,
            other => panic!("expected a decline, got {other:?}"),
        }
    }

    // --- amounts and ids ---

    #[test]
    fn amounts_are_fen_in_cny_only() {
        assert_eq!(fen(&cny(1)).ok(), Some(1));
        assert_eq!(fen(&cny(1250)).ok(), Some(1250));
        assert_eq!(fen(&cny(i64::MAX)).ok(), Some(i64::MAX));
        for bad in [
            cny(0),
            cny(-5),
            Money {
                minor: 100,
                currency: "USD".into(),
                exponent: 2,
            },
            Money {
                minor: 100,
                currency: "cny".into(),
                exponent: 2,
            },
            Money {
                minor: 100,
                currency: "CNY".into(),
                exponent: 0,
            },
        ] {
            assert!(
                matches!(fen(&bad), Err(ProviderError::InvalidRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn order_and_refund_numbers_are_checked() {
        assert!(check_out_trade_no("pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ").is_ok());
        assert!(check_out_trade_no("a-b*c_").is_ok());
        for bad in [
            "",
            "short",
            &"x".repeat(33),
            "pay/../x",
            "pay 1",
            "pay?x=1",
            "支付宝支付",
        ] {
            assert!(check_out_trade_no(bad).is_err(), "{bad:?}");
        }
        assert!(check_out_refund_no("re_0Fq3|*@-").is_ok());
        for bad in ["", &"x".repeat(65), "re/1", "re 1", "re#1"] {
            assert!(check_out_refund_no(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn payment_codes_are_18_digits_starting_10_to_15() {
        for good in [
            "100000000000000000",
            "134567890123456789",
            "159999999999999999",
        ] {
            assert!(is_payment_code(good), "{good}");
        }
        for bad in [
            "160000000000000000",
            "090000000000000000",
            "28000000000000000",
            "13456789012345678",
            "1345678901234567890",
            "13456789012345678a",
            "１34567890123456789",
            "",
        ] {
            assert!(!is_payment_code(bad), "{bad}");
        }
    }

    #[test]
    fn descriptions_are_cut_on_character_boundaries() {
        assert_eq!(description(Some("  Coffee "), "pay_1"), "Coffee");
        assert_eq!(description(None, "pay_1"), "Payment pay_1");
        assert_eq!(description(Some("   "), "pay_1"), "Payment pay_1");
        let long = "咖".repeat(100); // 300 bytes
        let cut = description(Some(&long), "pay_1");
        assert_eq!(cut.len(), 126);
        assert_eq!(cut.chars().count(), 42);
    }

    // --- request bodies ---

    #[test]
    fn the_native_order_body_has_the_documented_fields() {
        let request = create(Method::Qr);
        // 2024-03-14T15:50:00Z; +900 s is 00:05 on the 15th in Beijing.
        let json = body(&native_order(&DIRECT, &request, 1_710_431_400_000).unwrap());
        assert_eq!(
            json,
            json!({
                "appid": "wxd678efh567hg6787",
                "mchid": "1900000109",
                "description": "Coffee",
                "out_trade_no": "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
                "time_expire": "2024-03-15T00:05:00+08:00",
                "notify_url": "https://gw.example/v1/notify/wechatpay/m_demo",
                "amount": {"total": 1250, "currency": "CNY"},
            })
        );
        let no_expiry = CreatePaymentRequest {
            expires_in_seconds: None,
            wallet_token: None,
            ..create(Method::Link)
        };
        let json = body(&native_order(&DIRECT, &no_expiry, 0).unwrap());
        assert!(json.get("time_expire").is_none());
    }

    #[test]
    fn a_sub_merchants_orders_name_the_service_provider_and_the_sub_merchant() {
        let ids = json!({"sp_appid": "wxd678efh567hg6787", "sp_mchid": "1900000109",
                         "sub_mchid": "1900006491"});
        let json = body(&native_order(&PARTNER, &create(Method::Qr), 0).unwrap());
        for (k, v) in ids.as_object().unwrap() {
            assert_eq!(&json[k], v, "{k}");
        }
        assert!(json.get("appid").is_none() && json.get("mchid").is_none());
        assert_eq!(json["out_trade_no"], "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ");
        let json = body(&codepay_order(&settings(), &PARTNER, &create(Method::Barcode)).unwrap());
        for (k, v) in ids.as_object().unwrap() {
            assert_eq!(&json[k], v, "{k}");
        }
        assert!(json.get("appid").is_none() && json.get("mchid").is_none());
        assert_eq!(json["payer"]["auth_code"], "134567890123456789");
        assert_eq!(
            body(&close_order(&PARTNER).unwrap()),
            json!({"sp_mchid": "1900000109", "sub_mchid": "1900006491"})
        );
        assert_eq!(body(&reverse_order(&PARTNER).unwrap()), ids);
        let (refund, total) = (cny(500), cny(1250));
        let mut params = refund_params(&refund, &total);
        params.sub_mchid = PARTNER.sub_mchid();
        assert_eq!(
            body(&refund_order(&params).unwrap())["sub_mchid"],
            "1900006491"
        );
    }

    #[test]
    fn an_answer_about_another_sub_merchants_order_is_not_trusted() {
        let partner = ExpectedOrder {
            payee: PARTNER,
            ..ORDER
        };
        let ours = crate::testkit::as_sub_merchants(transaction("SUCCESS"));
        let text = ours.to_string();
        let trade = interpret_query(answer(200, text.as_bytes()), &partner)
            .unwrap()
            .unwrap();
        assert_eq!(trade.state, TradeState::Success);
        assert_eq!(
            trade.openid.as_deref(),
            Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
        );
        for (field, value) in [("sub_mchid", "1900006492"), ("sp_mchid", "1900000999")] {
            let mut other = ours.clone();
            other[field] = value.into();
            let text = other.to_string();
            match interpret_query(answer(200, text.as_bytes()), &partner) {
                Err(ProviderError::Unavailable(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{field}: {other:?}"),
            }
        }
        // The service provider's own order is not the sub-merchant's, nor the reverse.
        let direct = transaction("SUCCESS").to_string();
        assert!(interpret_query(answer(200, direct.as_bytes()), &partner).is_err());
        assert!(interpret_query(answer(200, text.as_bytes()), &ORDER).is_err());
        // A refund answer naming another sub-merchant.
        let refund = json!({"sub_mchid": "1900006492", "out_refund_no": "re_1",
                            "status": "SUCCESS", "amount": {"refund": 500, "total": 1250}});
        let expected = ExpectedRefund {
            payee: PARTNER,
            out_refund_no: "re_1",
            out_trade_no: "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
            amounts: Some((500, 1250)),
        };
        let raw: RawRefund = serde_json::from_value(refund).unwrap();
        assert!(check_refund(Call::Refund, raw, &expected).is_err());
    }

    #[test]
    fn the_native_order_is_refused_before_sending_when_it_cannot_be_valid() {
        let mut request = create(Method::Qr);
        request.merchant.notify_url = " ".into();
        assert!(matches!(
            native_order(&DIRECT, &request, 0),
            Err(ProviderError::InvalidRequest(_))
        ));
        let mut request = create(Method::Qr);
        request.amount = cny(0);
        assert!(native_order(&DIRECT, &request, 0).is_err());
        let mut request = create(Method::Qr);
        request.payment_id = "pay/../../v3/refund".into();
        assert!(native_order(&DIRECT, &request, 0).is_err());
    }

    #[test]
    fn the_codepay_body_has_the_documented_fields() {
        let json = body(&codepay_order(&settings(), &DIRECT, &create(Method::Barcode)).unwrap());
        assert_eq!(
            json,
            json!({
                "appid": "wxd678efh567hg6787",
                "mchid": "1900000109",
                "description": "Coffee",
                "out_trade_no": "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
                "payer": {"auth_code": "134567890123456789"},
                "amount": {"total": 1250, "currency": "CNY"},
                "scene_info": {"device_id": "till-7", "store_info": {"out_id": "m_demo"}},
            })
        );
        let mut with_store = settings();
        with_store.store_id = Some("SZ-001".into());
        let request = CreatePaymentRequest {
            terminal_id: None,
            ..create(Method::Barcode)
        };
        let json = body(&codepay_order(&with_store, &DIRECT, &request).unwrap());
        assert_eq!(
            json["scene_info"],
            json!({"store_info": {"out_id": "SZ-001"}})
        );
    }

    #[test]
    fn a_code_that_is_not_wechat_is_declined_without_a_request() {
        let mut request = create(Method::Barcode);
        request.auth_code = Some("280000000000000000".into()); // an Alipay code
        match codepay_order(&settings(), &DIRECT, &request) {
            Err(ProviderError::Declined(d)) => assert_eq!(d.code, "auth_code_invalid"),
            other => panic!("{other:?}"),
        }
        request.auth_code = None;
        assert!(matches!(
            codepay_order(&settings(), &DIRECT, &request),
            Err(ProviderError::InvalidRequest(_))
        ));
    }

    #[test]
    fn close_reverse_and_query_requests() {
        assert_eq!(
            body(&close_order(&DIRECT).unwrap()),
            json!({"mchid": "1900000109"})
        );
        assert_eq!(
            body(&reverse_order(&DIRECT).unwrap()),
            json!({"appid": "wxd678efh567hg6787", "mchid": "1900000109"})
        );
        let odd = Payee::Direct {
            appid: "wx",
            mchid: "19 00&x",
        };
        assert_eq!(
            odd.query_path("pay_1abcde"),
            "/v3/pay/transactions/out-trade-no/pay_1abcde?mchid=19%2000%26x"
        );
    }

    fn refund_params<'a>(refund: &'a Money, total: &'a Money) -> RefundParams<'a> {
        RefundParams {
            refund_id: "re_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
            payment_id: "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
            refund,
            total,
            reason: Some(" damaged "),
            notify_url: "https://gw.example/v1/notify/wechatpay/m_demo",
            sub_mchid: None,
        }
    }

    #[test]
    fn the_refund_body_carries_the_payments_total() {
        let (refund, total) = (cny(500), cny(1250));
        let json = body(&refund_order(&refund_params(&refund, &total)).unwrap());
        assert_eq!(
            json,
            json!({
                "out_trade_no": "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
                "out_refund_no": "re_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
                "reason": "damaged",
                "notify_url": "https://gw.example/v1/notify/wechatpay/m_demo",
                "amount": {"refund": 500, "total": 1250, "currency": "CNY"},
            })
        );
        let mut params = refund_params(&refund, &total);
        params.reason = None;
        params.notify_url = "";
        let json = body(&refund_order(&params).unwrap());
        assert!(json.get("reason").is_none() && json.get("notify_url").is_none());
        let long_reason = "退".repeat(40);
        params.reason = Some(&long_reason);
        let json = body(&refund_order(&params).unwrap());
        assert_eq!(json["reason"].as_str().unwrap().len(), 78);
    }

    #[test]
    fn refunds_larger_than_the_payment_or_in_another_currency_are_refused() {
        let (refund, total) = (cny(1251), cny(1250));
        assert!(refund_order(&refund_params(&refund, &total)).is_err());
        let usd = Money {
            minor: 5,
            currency: "USD".into(),
            exponent: 2,
        };
        assert!(refund_order(&refund_params(&usd, &total)).is_err());
        let (refund, total) = (cny(1250), cny(1250));
        assert!(refund_order(&refund_params(&refund, &total)).is_ok());
    }

    // --- native answers ---

    #[test]
    fn a_native_answer_is_a_pending_payment_with_its_code_url() {
        let body = json!({"code_url": "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"})
            .to_string()
            .into_bytes();
        let result = interpret_native(answer(200, &body)).unwrap();
        assert_eq!(result.status, PaymentStatus::Pending);
        assert_eq!(
            result.qr_code.as_deref(),
            Some("weixin://wxpay/bizpayurl?pr=p4lpSuKzz")
        );
    }

    #[test]
    fn native_errors_map_by_code() {
        let err = |status, code: &str| {
            let body = json!({"code": code, "message": "m"}).to_string();
            interpret_native(answer(status, body.as_bytes())).unwrap_err()
        };
        assert!(matches!(
            err(400, "PARAM_ERROR"),
            ProviderError::InvalidRequest(_)
        ));
        assert!(matches!(
            err(401, "SIGN_ERROR"),
            ProviderError::InvalidRequest(_)
        ));
        assert!(matches!(
            err(500, "SYSTEM_ERROR"),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(err(502, ""), ProviderError::UnknownOutcome(_)));
        assert!(matches!(
            err(429, "FREQUENCY_LIMITED"),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            err(400, "ORDER_PAID"),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            err(403, "OUT_TRADE_NO_USED"),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            err(403, "SOMETHING_NEW"),
            ProviderError::InvalidRequest(_)
        ));
    }

    #[test]
    fn malformed_native_answers_are_unknown_outcomes() {
        for bad in [
            b"".to_vec(),
            b"<html>".to_vec(),
            b"{}".to_vec(),
            br#"{"code_url": ""}"#.to_vec(),
            br#"{"code_url": 5}"#.to_vec(),
            br#"{"code_url": "weixin://a\nb"}"#.to_vec(),
            json!({"code_url": "w".repeat(5000)})
                .to_string()
                .into_bytes(),
        ] {
            assert!(
                matches!(
                    interpret_native(answer(200, &bad)),
                    Err(ProviderError::UnknownOutcome(_))
                ),
                "{:?}",
                String::from_utf8_lossy(&bad)
            );
        }
    }

    // --- codepay answers ---

    fn transaction(state: &str) -> Value {
        json!({
            "appid": "wxd678efh567hg6787",
            "mchid": "1900000109",
            "out_trade_no": "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
            "transaction_id": "4200000000202403140000000001",
            "trade_type": "MICROPAY",
            "trade_state": state,
            "trade_state_desc": "",
            "bank_type": "OTHERS",
            "success_time": "2024-03-14T23:51:02+08:00",
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            "amount": {"total": 1250, "payer_total": 1250, "currency": "CNY", "payer_currency": "CNY"},
        })
    }

    #[test]
    fn a_successful_codepay_is_succeeded_with_the_transaction_and_payer() {
        let body = transaction("SUCCESS").to_string();
        let result = interpret_codepay(answer(200, body.as_bytes()), &ORDER).unwrap();
        assert_eq!(result.status, PaymentStatus::Succeeded);
        assert_eq!(
            result.provider_reference.as_deref(),
            Some("4200000000202403140000000001")
        );
        assert_eq!(
            result.payer.as_deref(),
            Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
        );
        assert!(result.failure.is_none());
        let amount = result.amount.unwrap();
        assert_eq!(
            (amount.minor, amount.currency.as_str(), amount.exponent),
            (1250, "CNY", 2)
        );
    }

    #[test]
    fn order_answers_report_amount_total_and_refuse_a_malformed_one() {
        let query = |body: &Value| {
            let text = body.to_string();
            interpret_query(answer(200, text.as_bytes()), &ORDER_UNKNOWN_TOTAL)
                .map(|t| t.map(|t| t.result().amount.map(|m| m.minor)))
        };
        // amount.total (the order's), not payer_total (after coupons).
        let mut paid = transaction("SUCCESS");
        paid["amount"] = json!({"total": 10000, "payer_total": 9000, "currency": "CNY"});
        assert_eq!(query(&paid).unwrap(), Some(Some(10_000)));
        // Without an amount: none reported.
        paid.as_object_mut().unwrap().remove("amount");
        assert_eq!(query(&paid).unwrap(), Some(None));
        for bad in [
            json!({"total": -1}),
            json!({"total": 0}),
            json!({"total": "12.50"}),
            json!({"total": 1250, "currency": "EUR"}),
        ] {
            let mut order = transaction("SUCCESS");
            order["amount"] = bad.clone();
            assert!(
                matches!(query(&order), Err(ProviderError::Unavailable(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn userpaying_is_pending_as_a_code_or_as_a_state() {
        for (status, body) in [
            (
                202,
                json!({"code": "USERPAYING", "message": "需要用户输入支付密码"}),
            ),
            (
                200,
                json!({"code": "USERPAYING", "message": "需要用户输入支付密码"}),
            ),
            (
                403,
                json!({"code": "USERPAYING", "message": "需要用户输入支付密码"}),
            ),
            (202, transaction("USERPAYING")),
            (200, transaction("NOTPAY")),
        ] {
            let body = body.to_string();
            let result = interpret_codepay(answer(status, body.as_bytes()), &ORDER).unwrap();
            assert_eq!(result.status, PaymentStatus::Pending, "{body}");
        }
    }

    #[test]
    fn codepay_declines_map_to_our_codes_in_both_spellings() {
        let decline = |status, c: &str| {
            let body = json!({"code": c, "message": "m"}).to_string();
            code(interpret_codepay(answer(status, body.as_bytes()), &ORDER))
        };
        assert_eq!(decline(403, "NOT_ENOUGH"), "insufficient_funds");
        assert_eq!(decline(403, "NOTENOUGH"), "insufficient_funds");
        assert_eq!(decline(403, "AUTH_CODE_EXPIRE"), "auth_code_expired");
        assert_eq!(decline(400, "AUTHCODEEXPIRE"), "auth_code_expired");
        assert_eq!(decline(400, "AUTH_CODE_INVALID"), "auth_code_invalid");
        assert_eq!(decline(400, "AUTH_CODE_ERROR"), "auth_code_invalid");
        assert_eq!(decline(403, "TRADE_ERROR"), "provider_declined");
        assert_eq!(decline(403, "ACCOUNT_ERROR"), "provider_declined");
        assert_eq!(decline(403, "USER_ACCOUNT_ABNORMAL"), "provider_declined");
        assert_eq!(decline(403, "RULE_LIMIT"), "provider_declined");
        assert_eq!(decline(400, "BUYER_MISMATCH"), "provider_declined");
    }

    #[test]
    fn codepay_errors_that_may_hide_a_charge_are_unknown_outcomes() {
        let err = |status, c: &str| {
            let body = json!({"code": c, "message": "m"}).to_string();
            interpret_codepay(answer(status, body.as_bytes()), &ORDER).unwrap_err()
        };
        for (status, c) in [
            (500, "SYSTEM_ERROR"),
            (500, "SYSTEMERROR"),
            (200, "SYSTEMERROR"),
            (500, "BANK_ERROR"),
            (503, ""),
            (400, "ORDER_PAID"),
            (400, "ORDERPAID"),
            (400, "ORDER_CLOSED"),
            (400, "ORDER_REVERSED"),
            (403, "OUT_TRADE_NO_USED"),
            (400, "INVALID_REQUEST"),
            (404, "ORDER_NOT_EXIST"),
            (418, "SOMETHING_NEW"),
        ] {
            assert!(
                matches!(err(status, c), ProviderError::UnknownOutcome(_)),
                "{status} {c}"
            );
        }
        assert!(matches!(
            err(400, "PARAM_ERROR"),
            ProviderError::InvalidRequest(_)
        ));
        assert!(matches!(
            err(401, "SIGN_ERROR"),
            ProviderError::InvalidRequest(_)
        ));
        assert!(matches!(
            err(400, "APPID_MCHID_NOT_MATCH"),
            ProviderError::InvalidRequest(_)
        ));
        assert!(matches!(
            err(403, "NO_AUTH"),
            ProviderError::InvalidRequest(_)
        ));
        assert!(matches!(
            err(429, "FREQUENCY_LIMITED"),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(err(429, ""), ProviderError::Unavailable(_)));
    }

    #[test]
    fn a_codepay_payerror_is_failed_with_a_code_from_its_description() {
        let mut raw = transaction("PAYERROR");
        raw["trade_state_desc"] = "支付失败，余额不足".into();
        let body = raw.to_string();
        let result = interpret_codepay(answer(200, body.as_bytes()), &ORDER).unwrap();
        assert_eq!(result.status, PaymentStatus::Failed);
        assert_eq!(result.failure.unwrap().code, "insufficient_funds");
    }

    #[test]
    fn codepay_answers_about_another_order_or_amount_are_not_trusted() {
        for (field, value) in [
            ("out_trade_no", json!("pay_other")),
            ("mchid", json!("1900000999")),
            ("appid", json!("wx_other")),
        ] {
            let mut raw = transaction("SUCCESS");
            raw[field] = value;
            let body = raw.to_string();
            assert!(matches!(
                interpret_codepay(answer(200, body.as_bytes()), &ORDER),
                Err(ProviderError::UnknownOutcome(_))
            ));
        }
        let mut raw = transaction("SUCCESS");
        raw["amount"]["total"] = 1.into();
        let body = raw.to_string();
        assert!(matches!(
            interpret_codepay(answer(200, body.as_bytes()), &ORDER),
            Err(ProviderError::UnknownOutcome(_))
        ));
        let mut raw = transaction("SUCCESS");
        raw["amount"]["currency"] = "USD".into();
        let body = raw.to_string();
        assert!(interpret_codepay(answer(200, body.as_bytes()), &ORDER).is_err());
    }

    #[test]
    fn empty_identity_fields_count_as_absent() {
        let mut raw = transaction("SUCCESS");
        raw["appid"] = "".into();
        raw["mchid"] = "".into();
        let body = raw.to_string();
        let trade = interpret_query(answer(200, body.as_bytes()), &ORDER)
            .unwrap()
            .unwrap();
        assert_eq!(trade.result().status, PaymentStatus::Succeeded);
    }

    #[test]
    fn hostile_codepay_answers_are_errors_not_panics() {
        let huge_id = json!({"trade_state": "SUCCESS", "transaction_id": "4".repeat(100_000)});
        let huge_openid = json!({"trade_state": "SUCCESS", "payer": {"openid": "o".repeat(1000)}});
        for bad in [
            b"".to_vec(),
            b"null".to_vec(),
            b"[]".to_vec(),
            b"{\"trade_state\": 7}".to_vec(),
            b"{\"trade_state\": \"PAID_MAYBE\"}".to_vec(),
            b"{\"trade_state\": \"SUCCESS\", \"amount\": {\"total\": \"12.50\"}}".to_vec(),
            b"{\"trade_state\": \"SUCCESS\", \"amount\": {\"total\": 1e400}}".to_vec(),
            vec![0xff; 64],
            huge_id.to_string().into_bytes(),
            huge_openid.to_string().into_bytes(),
        ] {
            assert!(
                matches!(
                    interpret_codepay(answer(200, &bad), &ORDER),
                    Err(ProviderError::UnknownOutcome(_))
                ),
                "{:?}",
                String::from_utf8_lossy(&bad[..bad.len().min(80)])
            );
        }
        // An error body that is not JSON, or enormous: still an error with a short message.
        let garbage = vec![b'x'; 1 << 20];
        match interpret_codepay(answer(500, &garbage), &ORDER) {
            Err(ProviderError::UnknownOutcome(m)) => assert!(m.len() < 400, "{}", m.len()),
            other => panic!("{other:?}"),
        }
    }

    // --- queries ---

    #[test]
    fn every_trade_state_maps_to_our_status() {
        let cases = [
            ("SUCCESS", PaymentStatus::Succeeded),
            ("REFUND", PaymentStatus::Succeeded),
            ("NOTPAY", PaymentStatus::Pending),
            ("USERPAYING", PaymentStatus::Pending),
            ("ACCEPT", PaymentStatus::Pending),
            ("CLOSED", PaymentStatus::Cancelled),
            ("REVOKED", PaymentStatus::Cancelled),
            ("PAYERROR", PaymentStatus::Failed),
        ];
        for (state, expected) in cases {
            let body = transaction(state).to_string();
            let trade = interpret_query(answer(200, body.as_bytes()), &ORDER)
                .unwrap()
                .unwrap();
            let result = trade.result();
            assert_eq!(result.status, expected, "{state}");
            assert_eq!(
                result.failure.is_some(),
                expected == PaymentStatus::Failed,
                "{state}"
            );
        }
    }

    #[test]
    fn payerror_descriptions_pick_a_failure_code() {
        assert_eq!(payerror_code("余额不足"), "insufficient_funds");
        assert_eq!(payerror_code("Insufficient balance"), "insufficient_funds");
        assert_eq!(payerror_code("付款码已过期"), "auth_code_expired");
        assert_eq!(payerror_code("交易存在风险"), "risk_rejected");
        assert_eq!(payerror_code("用户取消支付"), "payer_cancelled");
        assert_eq!(payerror_code("支付失败，请撤销订单"), "provider_declined");
        assert_eq!(payerror_code(""), "provider_declined");
    }

    #[test]
    fn a_missing_order_is_none_and_other_query_errors_are_unavailable() {
        let query = |status, c: &str| {
            let body = json!({"code": c, "message": "m"}).to_string();
            interpret_query(answer(status, body.as_bytes()), &ORDER)
        };
        assert_eq!(query(404, "ORDER_NOT_EXIST").unwrap(), None);
        assert_eq!(query(404, "ORDERNOTEXIST").unwrap(), None);
        assert_eq!(query(404, "").unwrap(), None);
        for (status, c) in [
            (500, "SYSTEM_ERROR"),
            (429, "FREQUENCY_LIMITED"),
            (403, "X"),
        ] {
            assert!(
                matches!(query(status, c), Err(ProviderError::Unavailable(_))),
                "{status} {c}"
            );
        }
        assert!(matches!(
            query(400, "PARAM_ERROR"),
            Err(ProviderError::InvalidRequest(_))
        ));
        assert!(matches!(
            interpret_query(answer(200, b"garbage"), &ORDER),
            Err(ProviderError::Unavailable(_))
        ));
        assert!(matches!(
            order_not_found("pay_1"),
            ProviderError::Unavailable(_)
        ));
    }

    #[test]
    fn payment_code_orders_are_recognised_for_reverse() {
        let trade = |state: &str, trade_type: &str| {
            let mut raw = transaction(state);
            raw["trade_type"] = trade_type.into();
            let body = raw.to_string();
            interpret_query(answer(200, body.as_bytes()), &ORDER)
                .unwrap()
                .unwrap()
        };
        assert!(trade("NOTPAY", "MICROPAY").is_payment_code_order());
        assert!(trade("USERPAYING", "").is_payment_code_order());
        assert!(!trade("NOTPAY", "NATIVE").is_payment_code_order());
    }

    // --- close / reverse ---

    #[test]
    fn close_and_reverse_answers() {
        let end = |call, status, c: &str| {
            let body = if c.is_empty() {
                String::new()
            } else {
                json!({"code": c, "message": "m"}).to_string()
            };
            interpret_end(call, answer(status, body.as_bytes()))
        };
        assert_eq!(end(Call::Close, 204, "").ok(), Some(Ended::Cancelled));
        assert_eq!(end(Call::Reverse, 200, "").ok(), Some(Ended::Cancelled));
        assert_eq!(
            end(Call::Close, 404, "ORDER_NOT_EXIST").ok(),
            Some(Ended::Cancelled)
        );
        assert_eq!(
            end(Call::Close, 400, "ORDER_CLOSED").ok(),
            Some(Ended::Cancelled)
        );
        assert_eq!(
            end(Call::Reverse, 400, "ORDER_REVERSED").ok(),
            Some(Ended::Cancelled)
        );
        assert_eq!(end(Call::Close, 400, "ORDER_PAID").ok(), Some(Ended::Paid));
        assert_eq!(end(Call::Reverse, 400, "ORDERPAID").ok(), Some(Ended::Paid));
        assert!(matches!(
            end(Call::Close, 500, "SYSTEM_ERROR"),
            Err(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            end(Call::Reverse, 202, "USERPAYING"),
            Err(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            end(Call::Reverse, 403, "USERPAYING"),
            Err(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            end(Call::Close, 429, "FREQUENCY_LIMITED"),
            Err(ProviderError::Unavailable(_))
        ));
        assert!(matches!(
            end(Call::Close, 400, "PARAM_ERROR"),
            Err(ProviderError::InvalidRequest(_))
        ));
    }

    // --- refunds ---

    const REFUND: ExpectedRefund<'static> = ExpectedRefund {
        payee: DIRECT,
        out_refund_no: "re_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
        out_trade_no: "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
        amounts: Some((500, 1250)),
    };

    const REFUND_UNKNOWN_AMOUNTS: ExpectedRefund<'static> = ExpectedRefund {
        amounts: None,
        ..REFUND
    };

    fn refund_answer(status: &str) -> Value {
        json!({
            "refund_id": "50000000382019052709732678859",
            "out_refund_no": "re_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
            "transaction_id": "4200000000202403140000000001",
            "out_trade_no": "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
            "channel": "ORIGINAL",
            "user_received_account": "招商银行信用卡0403",
            "create_time": "2024-03-14T23:51:02+08:00",
            "status": status,
            "amount": {"total": 1250, "refund": 500, "payer_total": 1250, "payer_refund": 500, "currency": "CNY"},
        })
    }

    #[test]
    fn every_refund_status_maps_for_refunds_and_queries() {
        for call in [Call::Refund, Call::QueryRefund] {
            for (status, expected) in [
                ("SUCCESS", RefundStatus::Succeeded),
                ("PROCESSING", RefundStatus::Pending),
                ("CLOSED", RefundStatus::Failed),
                ("ABNORMAL", RefundStatus::Failed),
            ] {
                let body = refund_answer(status).to_string();
                let result = interpret_refund(call, answer(200, body.as_bytes()), &REFUND).unwrap();
                assert_eq!(result.status, expected, "{status}");
                assert_eq!(
                    result.provider_reference.as_deref(),
                    Some("50000000382019052709732678859")
                );
                assert_eq!(
                    result.failure.map(|f| f.code),
                    (expected == RefundStatus::Failed).then(|| "provider_declined".to_string())
                );
                // This refund's amount.refund, not the payment's amount.total.
                assert_eq!(result.amount.map(|m| m.minor), Some(500), "{status}");
            }
        }
        let mut negative = refund_answer("SUCCESS");
        negative["amount"]["refund"] = json!(-500);
        let body = negative.to_string();
        assert!(matches!(
            interpret_refund(Call::QueryRefund, answer(200, body.as_bytes()), &REFUND_UNKNOWN_AMOUNTS),
            Err(ProviderError::Unavailable(m)) if m.contains("amount.refund")
        ));
        let body = refund_answer("REFUNDING_SOMEHOW").to_string();
        assert!(matches!(
            interpret_refund(Call::Refund, answer(200, body.as_bytes()), &REFUND),
            Err(ProviderError::UnknownOutcome(_))
        ));
    }

    #[test]
    fn refund_errors_map_by_code() {
        let err = |call, status, c: &str| {
            let body = json!({"code": c, "message": "m"}).to_string();
            interpret_refund(call, answer(status, body.as_bytes()), &REFUND).unwrap_err()
        };
        let declined = |e: ProviderError| match e {
            ProviderError::Declined(d) => d.code,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            declined(err(Call::Refund, 403, "NOT_ENOUGH")),
            "insufficient_funds"
        );
        assert_eq!(
            declined(err(Call::Refund, 403, "USER_ACCOUNT_ABNORMAL")),
            "provider_declined"
        );
        assert_eq!(
            declined(err(Call::Refund, 403, "REQUEST_BLOCKED")),
            "provider_declined"
        );
        for (status, c) in [
            (404, "RESOURCE_NOT_EXISTS"),
            (400, "INVALID_REQUEST"),
            (400, "PARAM_ERROR"),
            (401, "SIGN_ERROR"),
            (403, "NO_AUTH"),
        ] {
            assert!(
                matches!(
                    err(Call::Refund, status, c),
                    ProviderError::InvalidRequest(_)
                ),
                "{c}"
            );
        }
        for (status, c) in [
            (500, "SYSTEM_ERROR"),
            (500, "BIZ_ERR_NEED_RETRY"),
            (403, "NEW"),
        ] {
            assert!(
                matches!(
                    err(Call::Refund, status, c),
                    ProviderError::UnknownOutcome(_)
                ),
                "{c}"
            );
        }
        assert!(matches!(
            err(Call::Refund, 429, "FREQUENCY_LIMITED"),
            ProviderError::Unavailable(_)
        ));
        // A refund query that finds nothing: nothing was refunded, sending it again is safe.
        assert!(matches!(
            err(Call::QueryRefund, 404, "RESOURCE_NOT_EXISTS"),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            err(Call::QueryRefund, 500, "SYSTEM_ERROR"),
            ProviderError::Unavailable(_)
        ));
    }

    #[test]
    fn refund_answers_about_another_refund_or_amount_are_not_trusted() {
        for (path, value) in [
            (&["out_refund_no"][..], json!("re_other")),
            (&["out_trade_no"][..], json!("pay_other")),
            (&["amount", "refund"][..], json!(499)),
            (&["amount", "total"][..], json!(1)),
            (&["amount", "currency"][..], json!("USD")),
        ] {
            let mut raw = refund_answer("SUCCESS");
            let mut slot = &mut raw;
            for key in path {
                slot = &mut slot[*key];
            }
            *slot = value;
            let body = raw.to_string();
            assert!(
                matches!(
                    interpret_refund(Call::Refund, answer(200, body.as_bytes()), &REFUND),
                    Err(ProviderError::UnknownOutcome(_))
                ),
                "{path:?}"
            );
        }
    }

    #[test]
    fn transport_errors_follow_the_call() {
        use paygate_plugin_api::http::Error;
        assert!(matches!(
            transport_error(Call::Codepay, Error::Timeout),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            transport_error(Call::QueryPayment, Error::Timeout),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            transport_error(Call::Refund, Error::TooLarge),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            transport_error(Call::Codepay, Error::Connection("refused".into())),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            transport_error(Call::NativeOrder, Error::Denied("not allowed".into())),
            ProviderError::InvalidRequest(_)
        ));
    }
}
