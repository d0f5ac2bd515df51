//! Pure transformations: our requests into Alipay's parameters, Alipay's answers into our
//! results. No host calls here (the timestamp and the settings come in as arguments), so
//! everything is unit-tested natively; `flow` sends what these build and hands back what
//! Alipay answered once its signature verified.

use paygate_plugin_api::{
    Money, PaymentResult, PaymentStatus, ProviderError, RefundRequest, RefundResult, RefundStatus,
    http,
};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::settings::Settings;

/// The content type of every gateway call (all parameters in the form body).
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=utf-8";

pub const METHOD_PRECREATE: &str = "alipay.trade.precreate";
pub const METHOD_PAY: &str = "alipay.trade.pay";
pub const METHOD_QUERY: &str = "alipay.trade.query";
pub const METHOD_CLOSE: &str = "alipay.trade.close";
pub const METHOD_CANCEL: &str = "alipay.trade.cancel";
pub const METHOD_REFUND: &str = "alipay.trade.refund";
pub const METHOD_REFUND_QUERY: &str = "alipay.trade.fastpay.refund.query";

/// Face-to-face payment, the product both precreate (scan to pay) and pay (barcode) use.
pub const PRODUCT_CODE: &str = "FACE_TO_FACE_PAYMENT";

/// Alipay's `total_amount` range is [0.01, 100000000.00] yuan.
pub const MAX_AMOUNT_FEN: i64 = 10_000_000_000;

/// Alipay's `subject` is at most 256 characters.
pub const MAX_SUBJECT_CHARS: usize = 256;

/// Alipay's merchant order and refund request numbers are at most 64 characters.
pub const MAX_OUT_NO_CHARS: usize = 64;

/// `timeout_express` accepts 1m..15d.
pub const MAX_TIMEOUT_MINUTES: u32 = 15 * 24 * 60;

/// Payment codes (付款码): these prefixes, all digits, 16 to 24 long.
pub const CODE_PREFIXES: [&str; 6] = ["25", "26", "27", "28", "29", "30"];
pub const CODE_MIN_LENGTH: u8 = 16;
pub const CODE_MAX_LENGTH: u8 = 24;

// ---------------------------------------------------------------------------------------
// Money and the other values we send

/// Our money as Alipay's yuan string with exactly two decimals (`"12.50"`), exactly: no
/// floats. Only positive CNY amounts; any exponent whose value is a whole number of fen.
pub fn yuan(amount: &Money) -> Result<String, String> {
    if amount.currency != "CNY" {
        return Err(format!(
            "Alipay takes CNY only, not {}",
            amount.currency.escape_debug()
        ));
    }
    if amount.minor <= 0 {
        return Err(format!("the amount must be positive, not {}", amount.minor));
    }
    let fen = match amount.exponent {
        2 => amount.minor,
        e if e < 2 => 10i64
            .checked_pow(u32::from(2 - e))
            .and_then(|scale| amount.minor.checked_mul(scale))
            .ok_or_else(|| "the amount is too large".to_string())?,
        e => {
            let scale = 10i64
                .checked_pow(u32::from(e - 2))
                .ok_or_else(|| format!("exponent {e} is not supported"))?;
            if amount.minor % scale != 0 {
                return Err(format!(
                    "{} minor units at exponent {e} is not a whole number of fen",
                    amount.minor
                ));
            }
            amount.minor / scale
        }
    };
    Ok(format!("{}.{:02}", fen / 100, fen % 100))
}

/// [`yuan`], also within Alipay's accepted range.
pub fn alipay_amount(amount: &Money) -> Result<String, String> {
    let text = yuan(amount)?;
    let within = Money::from_decimal(&text, "CNY", 2).is_ok_and(|m| m.minor <= MAX_AMOUNT_FEN);
    if !within {
        return Err(format!(
            "{text} CNY is more than Alipay accepts (100000000.00)"
        ));
    }
    Ok(text)
}

/// An amount Alipay reports (`total_amount`, `refund_amount`, `refund_fee`): yuan as a plain
/// decimal string with at most two decimals, within Alipay's range [0.01, 100000000.00].
/// `None` when absent or empty; anything else (`abc`, `-1`, `1.234`, `0.00`, beyond the
/// range, not a string) is malformed: Alipay never sends it, so the message it came in
/// cannot be trusted. Alipay's amounts are in CNY whatever the trade's `trans_currency`.
pub fn reported_amount(text: Option<&str>, field: &str) -> Result<Option<Money>, String> {
    let Some(text) = text else {
        return Ok(None);
    };
    let money = Money::from_decimal(text, "CNY", 2)
        .map_err(|e| format!("{field} is not an amount: {e}"))?;
    if money.minor <= 0 || money.minor > MAX_AMOUNT_FEN {
        return Err(format!(
            "{field} {} is outside Alipay's range (0.01 to 100000000.00)",
            text.escape_debug()
        ));
    }
    Ok(Some(money))
}

/// Whether `code` looks like an Alipay payment code (prefix 25-30, 16-24 digits).
pub fn is_payment_code(code: &str) -> bool {
    let length = code.len();
    (usize::from(CODE_MIN_LENGTH)..=usize::from(CODE_MAX_LENGTH)).contains(&length)
        && code.bytes().all(|b| b.is_ascii_digit())
        && CODE_PREFIXES.iter().any(|p| code.starts_with(p))
}

/// The order title: the description, or `Payment {id}`; cut to Alipay's 256 characters.
pub fn subject(description: Option<&str>, payment_id: &str) -> String {
    let text = match description.map(str::trim) {
        Some(d) if !d.is_empty() => d.to_owned(),
        _ => format!("Payment {payment_id}"),
    };
    text.chars().take(MAX_SUBJECT_CHARS).collect()
}

/// An expiry in seconds as Alipay's `"Nm"`: whole minutes rounded *down* (so Alipay stops
/// taking the payment no later than we consider it expired), at least `1m`, at most 15d.
pub fn timeout_minutes(seconds: u32) -> String {
    format!("{}m", (seconds / 60).clamp(1, MAX_TIMEOUT_MINUTES))
}

/// Checks one of our ids before it becomes `out_trade_no` / `out_request_no`.
pub fn out_no(id: &str, what: &str) -> Result<String, String> {
    let count = id.chars().count();
    if count == 0 || count > MAX_OUT_NO_CHARS {
        return Err(format!(
            "{what} must be 1 to {MAX_OUT_NO_CHARS} characters for Alipay, not {count}"
        ));
    }
    Ok(id.to_owned())
}

// ---------------------------------------------------------------------------------------
// The messages we send

/// `biz_content` of `alipay.trade.precreate` (qr and link).
#[derive(Debug, Serialize)]
pub struct PrecreateBiz {
    pub out_trade_no: String,
    pub total_amount: String,
    pub subject: String,
    pub product_code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seller_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    /// How long the trade may wait for payment once the payer has scanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_express: Option<String>,
    /// How long the QR code itself can be scanned, from its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_code_timeout_express: Option<String>,
    #[serde(flatten)]
    pub payee: Payee,
}

/// `biz_content` of `alipay.trade.pay` (barcode).
#[derive(Debug, Serialize)]
pub struct PayBiz {
    pub out_trade_no: String,
    pub scene: &'static str,
    pub auth_code: String,
    pub total_amount: String,
    pub subject: String,
    pub product_code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seller_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    #[serde(flatten)]
    pub payee: Payee,
}

/// Whose trade it is: the platform merchant's own (nothing added), or a 直付通 (ZFT)
/// sub-merchant's: `sub_merchant.merchant_id` = its `smid`, and `settle_info` settling the
/// whole amount to the sub-merchant's default settlement account (`defaultSettle`).
#[derive(Debug, Default, Serialize)]
pub struct Payee {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_merchant: Option<SubMerchant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settle_info: Option<SettleInfo>,
}

#[derive(Debug, Serialize)]
pub struct SubMerchant {
    pub merchant_id: String,
}

#[derive(Debug, Serialize)]
pub struct SettleInfo {
    pub settle_detail_infos: [SettleDetail; 1],
}

#[derive(Debug, Serialize)]
pub struct SettleDetail {
    pub trans_in_type: &'static str,
    pub amount: String,
}

/// The payee of a trade of `total_amount` under these settings. A merchant onboarded
/// through the platform (an `activation_id`) without its `smid` is refused: its trade
/// would be the platform's own, and so would the money.
pub fn payee(settings: &Settings, total_amount: &str) -> Result<Payee, ProviderError> {
    let Some(smid) = settings.sub_merchant_id.as_deref() else {
        return match settings.activation_id.as_deref() {
            Some(activation_id) => Err(ProviderError::InvalidRequest(format!(
                "alipay: merchant onboarded under application {activation_id} has no sub-merchant id (`sub_merchant_id`) yet; its payments are refused rather than collected into the platform's own account"
            ))),
            None => Ok(Payee::default()),
        };
    };
    let valid = (1..=64).contains(&smid.len())
        && smid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(ProviderError::InvalidRequest(
            "alipay settings: sub_merchant_id must be 1-64 of [0-9A-Za-z_]".into(),
        ));
    }
    Ok(Payee {
        sub_merchant: Some(SubMerchant {
            merchant_id: smid.to_owned(),
        }),
        settle_info: Some(SettleInfo {
            settle_detail_infos: [SettleDetail {
                trans_in_type: "defaultSettle",
                amount: total_amount.to_owned(),
            }],
        }),
    })
}

/// `biz_content` of `alipay.trade.query`, `.close` and `.cancel`.
#[derive(Debug, Serialize)]
pub struct TradeBiz {
    pub out_trade_no: String,
}

/// `biz_content` of `alipay.trade.refund`.
#[derive(Debug, Serialize)]
pub struct RefundBiz {
    pub out_trade_no: String,
    pub refund_amount: String,
    pub out_request_no: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_reason: Option<String>,
}

/// `biz_content` of `alipay.trade.fastpay.refund.query`.
#[derive(Debug, Serialize)]
pub struct RefundQueryBiz {
    pub out_trade_no: String,
    pub out_request_no: String,
}

/// What `create-payment` sends: the method and its `biz_content`.
#[derive(Debug)]
pub enum CreateCall {
    Precreate(PrecreateBiz),
    Pay(PayBiz),
}

/// Builds the create call from our request. `Err` is final and nothing was sent.
pub fn create_call(
    settings: &Settings,
    request: &paygate_plugin_api::CreatePaymentRequest,
) -> Result<CreateCall, ProviderError> {
    use paygate_plugin_api::Method;
    let invalid = ProviderError::InvalidRequest;
    let out_trade_no = out_no(&request.payment_id, "payment_id").map_err(invalid)?;
    let total_amount = alipay_amount(&request.amount).map_err(invalid)?;
    let payee = payee(settings, &total_amount)?;
    let subject = subject(request.description.as_deref(), &request.payment_id);
    let terminal_id = request
        .terminal_id
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().take(32).collect::<String>());
    match request.method {
        Method::Qr | Method::Link => {
            let timeout = request.expires_in_seconds.map(timeout_minutes);
            Ok(CreateCall::Precreate(PrecreateBiz {
                out_trade_no,
                total_amount,
                subject,
                product_code: PRODUCT_CODE,
                seller_id: settings.seller_id.clone(),
                terminal_id,
                timeout_express: timeout.clone(),
                qr_code_timeout_express: timeout,
                payee,
            }))
        }
        Method::Barcode => {
            let code = request
                .auth_code
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .ok_or_else(|| invalid("a barcode payment needs the payer's auth_code".into()))?;
            if !is_payment_code(code) {
                return Err(ProviderError::declined(
                    "auth_code_invalid",
                    "not an Alipay payment code (16-24 digits starting with 25-30)",
                ));
            }
            Ok(CreateCall::Pay(PayBiz {
                out_trade_no,
                scene: "bar_code",
                auth_code: code.to_owned(),
                total_amount,
                subject,
                product_code: PRODUCT_CODE,
                seller_id: settings.seller_id.clone(),
                terminal_id,
                payee,
            }))
        }
        Method::WalletToken => Err(invalid(
            "Alipay takes no wallet tokens (the host never sends one: info lists none)".into(),
        )),
    }
}

/// Builds the `alipay.trade.refund` call from our request: `out_request_no` is our refund
/// id, the reason (when not blank) is cut to Alipay's 256 characters. `Err` is final and
/// nothing was sent.
pub fn refund_call(request: &RefundRequest) -> Result<RefundBiz, ProviderError> {
    let invalid = ProviderError::InvalidRequest;
    Ok(RefundBiz {
        out_trade_no: request.payment.payment_id.clone(),
        refund_amount: alipay_amount(&request.amount).map_err(invalid)?,
        out_request_no: out_no(&request.refund_id, "refund_id").map_err(invalid)?,
        refund_reason: request
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| r.chars().take(256).collect()),
    })
}

/// The common parameters of a gateway call, without `sign`, in a fixed order.
pub fn request_params(
    settings: &Settings,
    method: &str,
    timestamp: &str,
    notify_url: Option<&str>,
    biz_content: &str,
) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("app_id", settings.app_id.as_str()),
        ("method", method),
        ("format", "JSON"),
        ("charset", "utf-8"),
        ("sign_type", crate::auth::SIGN_TYPE),
        ("timestamp", timestamp),
        ("version", "1.0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(url) = notify_url.map(str::trim).filter(|u| !u.is_empty()) {
        params.push(("notify_url".into(), url.to_owned()));
    }
    params.push(("biz_content".into(), biz_content.to_owned()));
    params
}

// ---------------------------------------------------------------------------------------
// What a call may have done, and the error for each way it can go wrong

/// What a gateway call may do at Alipay; it decides how failures are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// May move money: `precreate`/`pay` (create-payment) and `refund`. An unclear answer
    /// is an unknown outcome (the gateway queries before anything else, never re-charges).
    /// Also the submissions that create something at Alipay without moving money
    /// (onboarding applications, settlement account changes): same reading.
    Charge,
    /// May change a trade's state without charging: `close` and `cancel`. An unclear answer
    /// is an unknown outcome; a refusal is "unavailable" (nothing changed), never a decline
    /// or an invalid request (the gateway would mark the *payment* failed).
    Settle,
    /// Only reads: `query` and `fastpay.refund.query`. Every failure is "unavailable":
    /// nothing can have happened, and a read must never fail a payment or a refund.
    Read,
}

impl Effect {
    /// The request may have reached Alipay but its answer is unusable (HTTP error, not
    /// JSON, bad or missing signature, system error).
    pub fn uncertain(self, message: String) -> ProviderError {
        match self {
            Effect::Read => ProviderError::Unavailable(message),
            Effect::Charge | Effect::Settle => ProviderError::UnknownOutcome(message),
        }
    }

    /// Nothing was sent, or Alipay refused the call before doing anything (our settings,
    /// keys or parameters are wrong).
    pub fn refused(self, message: String) -> ProviderError {
        match self {
            Effect::Charge => ProviderError::InvalidRequest(message),
            Effect::Settle | Effect::Read => ProviderError::Unavailable(message),
        }
    }

    /// A transport failure reported by the host.
    pub fn transport(self, error: http::Error) -> ProviderError {
        match (self, error) {
            // Reads: nothing can have happened, whatever the transport did.
            (Effect::Read, http::Error::Timeout) => {
                ProviderError::Unavailable("Alipay did not answer in time".into())
            }
            (Effect::Read, http::Error::TooLarge) => {
                ProviderError::Unavailable("Alipay's answer was too large".into())
            }
            (Effect::Read | Effect::Settle, http::Error::Denied(reason)) => {
                ProviderError::Unavailable(format!("the host refused the request: {reason}"))
            }
            // Otherwise the SDK's safe defaults: a timeout or an oversized answer may have
            // followed a charge; a refused connection sent nothing.
            (_, error) => ProviderError::from(error),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading Alipay's answers

/// The gateway's result code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `10000`: the call succeeded (the business result is in the fields).
    Success,
    /// `10003`: waiting for the payer (barcode: "user paying").
    UserPaying,
    /// `20000`: service unavailable: the outcome is unknown.
    ServiceUnavailable,
    /// `40004`: business failure, see `sub_code`.
    BusinessFailure,
    /// `20001`, `40001`, `40002`, `40006`: the gateway refused the call (authorisation,
    /// missing or invalid parameters, signature, permissions) before doing anything.
    Refused,
    /// Anything else.
    Other,
}

/// One `*_response` object.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: String,
    pub msg: Option<String>,
    pub sub_code: Option<String>,
    pub sub_msg: Option<String>,
    fields: Map<String, Value>,
}

impl Reply {
    /// Parses the raw text of a `*_response` object. Missing or non-string `code` and
    /// non-string `msg`/`sub_code`/`sub_msg` are errors.
    pub fn parse(node: &str) -> Result<Reply, String> {
        let fields: Map<String, Value> = serde_json::from_str(node)
            .map_err(|e| format!("the answer object is not a JSON object: {e}"))?;
        let mut reply = Reply {
            code: String::new(),
            msg: None,
            sub_code: None,
            sub_msg: None,
            fields,
        };
        reply.code = reply
            .text("code")?
            .ok_or_else(|| "the answer has no code".to_string())?
            .to_owned();
        reply.msg = reply.text("msg")?.map(str::to_owned);
        reply.sub_code = reply.text("sub_code")?.map(str::to_owned);
        reply.sub_msg = reply.text("sub_msg")?.map(str::to_owned);
        Ok(reply)
    }

    /// A string field: `None` when absent, null or empty; an error for any other type.
    pub fn text(&self, name: &str) -> Result<Option<&str>, String> {
        text_field(&self.fields, name)
    }

    /// A field as it came, whatever its type (for the few non-string fields read).
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    pub fn kind(&self) -> Code {
        match self.code.as_str() {
            "10000" => Code::Success,
            "10003" => Code::UserPaying,
            "20000" => Code::ServiceUnavailable,
            "40004" => Code::BusinessFailure,
            "20001" | "40001" | "40002" | "40006" => Code::Refused,
            _ => Code::Other,
        }
    }

    /// `code msg (sub_code: sub_msg)`, for error messages.
    pub fn describe(&self) -> String {
        let mut text = format!("Alipay {}", self.code);
        if let Some(msg) = &self.msg {
            text.push(' ');
            text.push_str(msg);
        }
        match (&self.sub_code, &self.sub_msg) {
            (Some(code), Some(msg)) => text.push_str(&format!(" ({code}: {msg})")),
            (Some(code), None) => text.push_str(&format!(" ({code})")),
            (None, Some(msg)) => text.push_str(&format!(" ({msg})")),
            (None, None) => {}
        }
        text
    }

    /// The message we pass on with a decline: `sub_code: sub_msg`, or the summary.
    pub fn decline_message(&self) -> String {
        match (&self.sub_code, &self.sub_msg) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.clone(),
            _ => self.describe(),
        }
    }

    fn sub_code_is(&self, code: &str) -> bool {
        self.sub_code.as_deref() == Some(code)
    }
}

/// A string member of a JSON object: `None` when absent, null or empty; an error for any
/// other type.
pub fn text_field<'a>(
    fields: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "\"{name}\" should be a string, not {}",
            type_name(other)
        )),
    }
}

pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether an answer without a signature may be believed. Alipay signs its business
/// answers; only a refusal by the gateway itself (bad app id, bad signature, missing
/// parameter, no permission) may come unsigned, and it says nothing happened. An unsigned
/// success or business failure is treated as unusable.
pub fn accept_unsigned(reply: &Reply) -> bool {
    reply.kind() == Code::Refused
}

/// What a `sub_code` of a `40004` answer to a charge means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubCode {
    /// `ACQ.TRADE_HAS_SUCCESS`: this `out_trade_no` is already paid.
    AlreadyPaid,
    /// `ACQ.SYSTEM_ERROR`: Alipay does not know; query.
    SystemError,
    /// A final refusal, with our failure code.
    Decline(&'static str),
}

/// The sub_code table for payments (precreate and pay).
pub fn classify_sub_code(sub_code: &str) -> SubCode {
    match sub_code {
        "ACQ.TRADE_HAS_SUCCESS" => SubCode::AlreadyPaid,
        // (`AQC.` is a spelling some of Alipay's own tables use.)
        "ACQ.SYSTEM_ERROR" | "AQC.SYSTEM_ERROR" => SubCode::SystemError,
        "ACQ.BUYER_BALANCE_NOT_ENOUGH"
        | "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH"
        | "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE" => SubCode::Decline("insufficient_funds"),
        "ACQ.PAYMENT_AUTH_CODE_INVALID" => SubCode::Decline("auth_code_invalid"),
        // The trade with this order number was closed (timed out or cancelled).
        "ACQ.TRADE_HAS_CLOSE" => SubCode::Decline("payer_cancelled"),
        // Alipay's risk control or the payer's account standing.
        "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT"
        | "ACQ.BUYER_ENABLE_STATUS_FORBID"
        | "ACQ.PAYMENT_REQUEST_HAS_RISK"
        | "ACQ.RISK_CONTROL_REJECT" => SubCode::Decline("risk_rejected"),
        // Everything else, e.g. ACQ.PULL_MOBILE_CASHIER_FAIL (the payer must refresh the
        // code and pay again), ACQ.TRADE_BUYER_NOT_MATCH, ACQ.BUYER_SELLER_EQUAL,
        // ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR, ACQ.TOTAL_FEE_EXCEED,
        // ACQ.ACCESS_FORBIDDEN, ACQ.INVALID_PARAMETER...
        _ => SubCode::Decline("provider_declined"),
    }
}

/// The state of a trade by its `trade_status`.
pub fn status_of_trade(trade_status: &str) -> Option<PaymentStatus> {
    match trade_status {
        "WAIT_BUYER_PAY" => Some(PaymentStatus::Pending),
        "TRADE_SUCCESS" | "TRADE_FINISHED" => Some(PaymentStatus::Succeeded),
        "TRADE_CLOSED" => Some(PaymentStatus::Cancelled),
        _ => None,
    }
}

/// The payer's id in an answer: the Alipay user id, else the open id, else the (masked)
/// logon id.
fn payer_of(reply: &Reply, id_field: &str) -> Result<Option<String>, String> {
    for field in [id_field, "buyer_open_id", "buyer_logon_id"] {
        if let Some(value) = reply.text(field)? {
            return Ok(Some(value.to_owned()));
        }
    }
    Ok(None)
}

/// A payment answer (`pay`, `query`) with its `trade_no`, payer and `total_amount` (the
/// order's amount, not `receipt_amount` or `buyer_pay_amount`, which discounts lower).
fn payment(status: PaymentStatus, reply: &Reply) -> Result<PaymentResult, String> {
    Ok(PaymentResult {
        provider_reference: reply.text("trade_no")?.map(str::to_owned),
        payer: payer_of(reply, "buyer_user_id")?,
        amount: reported_amount(reply.text("total_amount")?, "total_amount")?,
        ..PaymentResult::with_status(status)
    })
}

/// The result a charge's `40004` leads to (shared by precreate and pay).
fn charge_failure(reply: &Reply) -> Result<PaymentResult, ProviderError> {
    match classify_sub_code(reply.sub_code.as_deref().unwrap_or("")) {
        // Already paid: succeeded (the flow asks `query` for the details).
        SubCode::AlreadyPaid => Ok(PaymentResult::with_status(PaymentStatus::Succeeded)),
        SubCode::SystemError => Err(ProviderError::UnknownOutcome(reply.describe())),
        SubCode::Decline(code) => Err(ProviderError::declined(code, reply.decline_message())),
    }
}

/// `alipay.trade.precreate` (qr, link): `pending` with the QR code.
pub fn interpret_precreate(reply: &Reply) -> Result<PaymentResult, ProviderError> {
    let effect = Effect::Charge;
    match reply.kind() {
        Code::Success => {
            let qr_code = reply
                .text("qr_code")
                .map_err(|e| effect.uncertain(format!("precreate answer: {e}")))?
                .ok_or_else(|| effect.uncertain("precreate succeeded without a qr_code".into()))?;
            Ok(PaymentResult {
                qr_code: Some(qr_code.to_owned()),
                ..PaymentResult::with_status(PaymentStatus::Pending)
            })
        }
        Code::BusinessFailure => charge_failure(reply),
        Code::Refused => Err(effect.refused(reply.describe())),
        Code::UserPaying | Code::ServiceUnavailable | Code::Other => {
            Err(effect.uncertain(reply.describe()))
        }
    }
}

/// `alipay.trade.pay` (barcode): the outcome, or `pending` while the payer confirms.
pub fn interpret_pay(reply: &Reply) -> Result<PaymentResult, ProviderError> {
    let effect = Effect::Charge;
    let read = |e: String| effect.uncertain(format!("pay answer: {e}"));
    match reply.kind() {
        Code::Success => {
            // `pay` answers 10000 only once paid; it rarely carries a trade_status, but
            // believe one if it does.
            let status = match reply.text("trade_status").map_err(read)? {
                None => PaymentStatus::Succeeded,
                Some(s) => match status_of_trade(s) {
                    Some(PaymentStatus::Cancelled) | None => {
                        return Err(
                            effect.uncertain(format!("pay answered 10000 with trade_status {s}"))
                        );
                    }
                    Some(status) => status,
                },
            };
            payment(status, reply).map_err(read)
        }
        // "User paying": the payer confirms on the phone; the gateway queries.
        Code::UserPaying => payment(PaymentStatus::Pending, reply).map_err(read),
        Code::BusinessFailure => charge_failure(reply),
        Code::Refused => Err(effect.refused(reply.describe())),
        Code::ServiceUnavailable | Code::Other => Err(effect.uncertain(reply.describe())),
    }
}

/// `alipay.trade.query`.
///
/// `ACQ.TRADE_NOT_EXIST` is "unavailable": Alipay holds no trade under this
/// `out_trade_no`, so nothing was charged, and the gateway may safely send the create
/// again (Alipay keys trades by `out_trade_no`, so a create that does arrive late and a
/// re-sent one can never make two). It is *not* `failed`: a QR code's trade only exists
/// once the payer scans it, and a barcode `pay` still in flight may yet arrive; failing
/// the payment then would take money for a failed payment. It is not `pending` either:
/// after an unknown create outcome that would leave a qr payment without its code.
pub fn interpret_query(reply: &Reply) -> Result<PaymentResult, ProviderError> {
    let effect = Effect::Read;
    let read = |e: String| effect.uncertain(format!("query answer: {e}"));
    match reply.kind() {
        Code::Success => {
            let trade_status = reply
                .text("trade_status")
                .map_err(read)?
                .ok_or_else(|| read("no trade_status".into()))?;
            let status = status_of_trade(trade_status)
                .ok_or_else(|| read(format!("unknown trade_status {trade_status}")))?;
            payment(status, reply).map_err(read)
        }
        Code::BusinessFailure if reply.sub_code_is("ACQ.TRADE_NOT_EXIST") => {
            Err(ProviderError::Unavailable(format!(
                "no such trade at Alipay, nothing was charged: {}",
                reply.describe()
            )))
        }
        _ => Err(effect.uncertain(reply.describe())),
    }
}

/// What `alipay.trade.close` said.
#[derive(Debug)]
pub enum Close {
    /// Closed: the payment is cancelled.
    Closed(PaymentResult),
    /// No trade under this `out_trade_no` (a QR code never scanned, or a barcode pay that
    /// never arrived).
    NotExist,
    /// Refused (the trade is not waiting for payment): find out its true state.
    CheckState(String),
    Failed(ProviderError),
}

pub fn interpret_close(reply: &Reply) -> Close {
    let effect = Effect::Settle;
    match reply.kind() {
        Code::Success => match reply.text("trade_no") {
            Ok(trade_no) => Close::Closed(PaymentResult {
                provider_reference: trade_no.map(str::to_owned),
                ..PaymentResult::with_status(PaymentStatus::Cancelled)
            }),
            Err(e) => Close::Failed(effect.uncertain(format!("close answer: {e}"))),
        },
        Code::BusinessFailure => match reply.sub_code.as_deref().unwrap_or("") {
            "ACQ.TRADE_NOT_EXIST" => Close::NotExist,
            "ACQ.SYSTEM_ERROR" | "AQC.SYSTEM_ERROR" => {
                Close::Failed(effect.uncertain(reply.describe()))
            }
            _ => Close::CheckState(reply.describe()),
        },
        Code::Refused => Close::Failed(effect.refused(reply.describe())),
        Code::UserPaying | Code::ServiceUnavailable | Code::Other => {
            Close::Failed(effect.uncertain(reply.describe()))
        }
    }
}

/// What `alipay.trade.cancel` said.
#[derive(Debug)]
pub enum Cancel {
    /// Cancelled: the trade is closed, or (`action` refund) its money went back.
    Done(PaymentResult),
    /// Refused: find out the trade's true state.
    CheckState(String),
    Failed(ProviderError),
}

pub fn interpret_cancel(reply: &Reply) -> Cancel {
    let effect = Effect::Settle;
    let retry = reply.text("retry_flag").ok().flatten() == Some("Y");
    match reply.kind() {
        Code::Success if retry => Cancel::Failed(effect.uncertain(format!(
            "{}: Alipay asks for the cancel to be retried",
            reply.describe()
        ))),
        Code::Success => match reply.text("trade_no") {
            Ok(trade_no) => Cancel::Done(PaymentResult {
                provider_reference: trade_no.map(str::to_owned),
                ..PaymentResult::with_status(PaymentStatus::Cancelled)
            }),
            Err(e) => Cancel::Failed(effect.uncertain(format!("cancel answer: {e}"))),
        },
        Code::BusinessFailure => match reply.sub_code.as_deref().unwrap_or("") {
            // Still nothing under this out_trade_no: there is nothing to charge.
            "ACQ.TRADE_NOT_EXIST" => {
                Cancel::Done(PaymentResult::with_status(PaymentStatus::Cancelled))
            }
            "ACQ.SYSTEM_ERROR" | "AQC.SYSTEM_ERROR" => {
                Cancel::Failed(effect.uncertain(reply.describe()))
            }
            _ if retry => Cancel::Failed(effect.uncertain(reply.describe())),
            _ => Cancel::CheckState(reply.describe()),
        },
        Code::Refused => Cancel::Failed(effect.refused(reply.describe())),
        Code::UserPaying | Code::ServiceUnavailable | Code::Other => {
            Cancel::Failed(effect.uncertain(reply.describe()))
        }
    }
}

/// What `alipay.trade.refund` said.
#[derive(Debug)]
pub enum RefundStep {
    Done(RefundResult),
    /// Accepted without a change of funds (`fund_change` N): a repeat of a refund already
    /// made, or one still in progress. Ask `fastpay.refund.query`.
    Query,
    Failed(ProviderError),
}

/// A refund answer without an amount: `alipay.trade.refund` answers the trade's cumulative
/// `refund_fee` (every refund of the payment so far), not this refund's own amount, so it
/// reports none; the refund query's `refund_amount` is this refund's.
pub fn refund_result(status: RefundStatus) -> RefundResult {
    RefundResult::with_status(status)
}

pub fn interpret_refund(reply: &Reply) -> RefundStep {
    let effect = Effect::Charge;
    match reply.kind() {
        Code::Success => match reply.text("fund_change") {
            Ok(Some("Y")) => RefundStep::Done(refund_result(RefundStatus::Succeeded)),
            Ok(_) => RefundStep::Query,
            Err(e) => RefundStep::Failed(effect.uncertain(format!("refund answer: {e}"))),
        },
        Code::BusinessFailure => match reply.sub_code.as_deref().unwrap_or("") {
            "ACQ.SYSTEM_ERROR" | "AQC.SYSTEM_ERROR" => {
                RefundStep::Failed(effect.uncertain(reply.describe()))
            }
            // ACQ.TRADE_NOT_EXIST, ACQ.REFUND_AMT_NOT_EQUAL_TOTAL, ACQ.TRADE_STATUS_ERROR,
            // ACQ.TRADE_HAS_FINISHED, ACQ.SELLER_BALANCE_NOT_ENOUGH,
            // ACQ.REFUND_FEE_ERROR, ACQ.DISCORDANT_REPEAT_REQUEST...: final.
            _ => RefundStep::Failed(ProviderError::declined(
                "provider_declined",
                reply.decline_message(),
            )),
        },
        Code::Refused => RefundStep::Failed(effect.refused(reply.describe())),
        Code::UserPaying | Code::ServiceUnavailable | Code::Other => {
            RefundStep::Failed(effect.uncertain(reply.describe()))
        }
    }
}

/// `alipay.trade.fastpay.refund.query`: `REFUND_SUCCESS` is succeeded. Without a
/// `refund_status` Alipay has not (yet) completed the refund: it may still be in progress
/// when asked too soon, so it stays `pending` and the gateway asks again. The amount is
/// `refund_amount`, this refund request's own; a malformed one, or an answer about another
/// `out_request_no` than `out_request_no`, makes the answer unusable.
pub fn interpret_refund_query(
    reply: &Reply,
    out_request_no: &str,
) -> Result<RefundResult, ProviderError> {
    let effect = Effect::Read;
    let read = |e: String| effect.uncertain(format!("refund query answer: {e}"));
    match reply.kind() {
        Code::Success => {
            if let Some(theirs) = reply.text("out_request_no").map_err(read)?
                && theirs != out_request_no
            {
                return Err(read(format!(
                    "it is about refund {}, not {out_request_no}",
                    theirs.escape_debug()
                )));
            }
            let status = match reply.text("refund_status").map_err(read)? {
                Some("REFUND_SUCCESS") => RefundStatus::Succeeded,
                _ => RefundStatus::Pending,
            };
            let amount =
                reported_amount(reply.text("refund_amount").map_err(read)?, "refund_amount")
                    .map_err(read)?;
            Ok(RefundResult {
                amount,
                ..refund_result(status)
            })
        }
        _ => Err(effect.uncertain(reply.describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paygate_plugin_api::{CreatePaymentRequest, Merchant, Method};

    fn cny(minor: i64) -> Money {
        Money {
            minor,
            currency: "CNY".into(),
            exponent: 2,
        }
    }

    fn settings() -> Settings {
        Settings::parse(r#"{"app_id":"2021000000000001","gateway_url":"http://127.0.0.1:8430/alipay/gateway.do"}"#)
            .unwrap()
    }

    fn reply(json: &str) -> Reply {
        Reply::parse(json).unwrap()
    }

    fn declined_code(error: ProviderError) -> String {
        match error {
            ProviderError::Declined(d) => d.code,
            other => panic!("expected a decline, got {other:?}"),
        }
    }

    fn request(method: Method) -> CreatePaymentRequest {
        CreatePaymentRequest {
            payment_id: "pay_01HZX".into(),
            provider: "alipay".into(),
            merchant: Merchant {
                id: "m_1".into(),
                settings_json: "{}".into(),
                notify_url: "https://gw.example/v1/notify/alipay/m_1".into(),
            },
            amount: cny(1250),
            method,
            auth_code: Some("287654321012345678".into()),
            description: None,
            terminal_id: None,
            expires_in_seconds: Some(900),
            wallet_token: None,
        }
    }

    #[test]
    fn amounts_are_exact_yuan_strings() {
        assert_eq!(yuan(&cny(1)).unwrap(), "0.01");
        assert_eq!(yuan(&cny(10)).unwrap(), "0.10");
        assert_eq!(yuan(&cny(1250)).unwrap(), "12.50");
        assert_eq!(yuan(&cny(100)).unwrap(), "1.00");
        assert_eq!(yuan(&cny(9_999_999_999)).unwrap(), "99999999.99");
        assert_eq!(yuan(&cny(i64::MAX)).unwrap(), "92233720368547758.07");
        let at = |minor, exponent| Money {
            minor,
            currency: "CNY".into(),
            exponent,
        };
        assert_eq!(yuan(&at(12, 0)).unwrap(), "12.00");
        assert_eq!(yuan(&at(125, 1)).unwrap(), "12.50");
        assert_eq!(yuan(&at(12_500, 3)).unwrap(), "12.50");
        assert!(
            yuan(&at(12_505, 3))
                .unwrap_err()
                .contains("whole number of fen")
        );
        assert!(yuan(&at(i64::MAX, 0)).unwrap_err().contains("too large"));
        assert!(yuan(&at(1, 60)).is_err());
        assert!(yuan(&cny(0)).unwrap_err().contains("positive"));
        assert!(yuan(&cny(-5)).unwrap_err().contains("positive"));
        let usd = Money {
            currency: "USD".into(),
            ..cny(100)
        };
        assert!(yuan(&usd).unwrap_err().contains("CNY only"));
    }

    #[test]
    fn alipay_caps_amounts_at_one_hundred_million_yuan() {
        assert_eq!(alipay_amount(&cny(MAX_AMOUNT_FEN)).unwrap(), "100000000.00");
        assert!(alipay_amount(&cny(MAX_AMOUNT_FEN + 1)).is_err());
        assert!(alipay_amount(&cny(i64::MAX)).is_err());
        assert_eq!(alipay_amount(&cny(1)).unwrap(), "0.01");
    }

    #[test]
    fn payment_codes_follow_alipays_pattern() {
        for good in [
            "2512345678901234",
            "287654321012345678",
            "301234567890123456789012",
            "29000000000000000000",
        ] {
            assert!(is_payment_code(good), "{good}");
        }
        for bad in [
            "",
            "24123456789012345",
            "311234567890123456",
            "251234567890123",           // 15 digits
            "3012345678901234567890123", // 25 digits
            "28765432101234567a",
            "２8765432101234567",
            "130000000000000000",
        ] {
            assert!(!is_payment_code(bad), "{bad}");
        }
    }

    #[test]
    fn subjects_and_timeouts() {
        assert_eq!(subject(None, "pay_1"), "Payment pay_1");
        assert_eq!(subject(Some("  "), "pay_1"), "Payment pay_1");
        assert_eq!(subject(Some("Coffee"), "pay_1"), "Coffee");
        let long = "语".repeat(300);
        assert_eq!(subject(Some(&long), "pay_1").chars().count(), 256);
        assert_eq!(timeout_minutes(0), "1m");
        assert_eq!(timeout_minutes(59), "1m");
        assert_eq!(timeout_minutes(60), "1m");
        assert_eq!(timeout_minutes(119), "1m");
        assert_eq!(timeout_minutes(900), "15m");
        assert_eq!(timeout_minutes(u32::MAX), "21600m");
        assert!(out_no(&"x".repeat(65), "payment_id").is_err());
        assert!(out_no("", "payment_id").is_err());
        assert_eq!(out_no("pay_1", "payment_id").unwrap(), "pay_1");
    }

    #[test]
    fn qr_and_link_become_precreate() {
        for method in [Method::Qr, Method::Link] {
            let CreateCall::Precreate(biz) = create_call(&settings(), &request(method)).unwrap()
            else {
                panic!("precreate expected");
            };
            assert_eq!(
                serde_json::to_string(&biz).unwrap(),
                r#"{"out_trade_no":"pay_01HZX","total_amount":"12.50","subject":"Payment pay_01HZX","product_code":"FACE_TO_FACE_PAYMENT","timeout_express":"15m","qr_code_timeout_express":"15m"}"#
            );
        }
        let mut no_expiry = request(Method::Qr);
        no_expiry.expires_in_seconds = None;
        no_expiry.description = Some("Latte".into());
        no_expiry.terminal_id = Some("T1".into());
        let seller = Settings {
            seller_id: Some("2088102146225135".into()),
            ..settings()
        };
        let CreateCall::Precreate(biz) = create_call(&seller, &no_expiry).unwrap() else {
            panic!("precreate expected");
        };
        assert_eq!(
            serde_json::to_string(&biz).unwrap(),
            r#"{"out_trade_no":"pay_01HZX","total_amount":"12.50","subject":"Latte","product_code":"FACE_TO_FACE_PAYMENT","seller_id":"2088102146225135","terminal_id":"T1"}"#
        );
    }

    #[test]
    fn a_sub_merchants_trades_are_its_own_and_settle_to_it() {
        let sub = Settings {
            sub_merchant_id: Some("2088000603999128".into()),
            activation_id: Some("act_1".into()),
            ..settings()
        };
        let zft = r#""sub_merchant":{"merchant_id":"2088000603999128"},"settle_info":{"settle_detail_infos":[{"trans_in_type":"defaultSettle","amount":"12.50"}]}"#;
        let CreateCall::Precreate(biz) = create_call(&sub, &request(Method::Qr)).unwrap() else {
            panic!("precreate expected");
        };
        let text = serde_json::to_string(&biz).unwrap();
        assert!(text.ends_with(&format!("{zft}}}")), "{text}");
        let CreateCall::Pay(biz) = create_call(&sub, &request(Method::Barcode)).unwrap() else {
            panic!("pay expected");
        };
        let text = serde_json::to_string(&biz).unwrap();
        assert!(text.ends_with(&format!("{zft}}}")), "{text}");

        // Onboarded, but without its smid: nothing leaves (it would be the platform's trade).
        let unnamed = Settings {
            sub_merchant_id: None,
            ..sub.clone()
        };
        assert!(matches!(
            create_call(&unnamed, &request(Method::Qr)),
            Err(ProviderError::InvalidRequest(m)) if m.contains("act_1") && m.contains("sub_merchant_id")
        ));
        for bad in ["2088 0006", "../x", &"9".repeat(65)] {
            let odd = Settings {
                sub_merchant_id: Some(bad.into()),
                ..sub.clone()
            };
            assert!(
                matches!(
                    create_call(&odd, &request(Method::Barcode)),
                    Err(ProviderError::InvalidRequest(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn barcode_becomes_pay_and_bad_codes_never_leave() {
        let CreateCall::Pay(biz) = create_call(&settings(), &request(Method::Barcode)).unwrap()
        else {
            panic!("pay expected");
        };
        assert_eq!(
            serde_json::to_string(&biz).unwrap(),
            r#"{"out_trade_no":"pay_01HZX","scene":"bar_code","auth_code":"287654321012345678","total_amount":"12.50","subject":"Payment pay_01HZX","product_code":"FACE_TO_FACE_PAYMENT"}"#
        );
        let mut bad = request(Method::Barcode);
        bad.auth_code = Some("990000000000001234".into());
        assert_eq!(
            declined_code(create_call(&settings(), &bad).unwrap_err()),
            "auth_code_invalid"
        );
        bad.auth_code = None;
        assert!(matches!(
            create_call(&settings(), &bad),
            Err(ProviderError::InvalidRequest(_))
        ));
        let mut usd = request(Method::Qr);
        usd.amount.currency = "USD".into();
        assert!(matches!(
            create_call(&settings(), &usd),
            Err(ProviderError::InvalidRequest(m)) if m.contains("CNY")
        ));
    }

    #[test]
    fn common_parameters() {
        let params = request_params(
            &settings(),
            METHOD_QUERY,
            "2024-01-01 00:00:00",
            Some(""),
            r#"{"out_trade_no":"pay_1"}"#,
        );
        let keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "app_id",
                "method",
                "format",
                "charset",
                "sign_type",
                "timestamp",
                "version",
                "biz_content"
            ]
        );
        let with_notify =
            request_params(&settings(), METHOD_PRECREATE, "t", Some("https://n"), "{}");
        assert!(with_notify.contains(&("notify_url".into(), "https://n".into())));
    }

    #[test]
    fn replies_parse_strictly() {
        let r = reply(
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.X","sub_msg":"某事"}"#,
        );
        assert_eq!(r.kind(), Code::BusinessFailure);
        assert_eq!(r.describe(), "Alipay 40004 Business Failed (ACQ.X: 某事)");
        assert!(Reply::parse("{}").unwrap_err().contains("no code"));
        assert!(
            Reply::parse(r#"{"code":10000}"#)
                .unwrap_err()
                .contains("should be a string")
        );
        assert!(Reply::parse(r#"{"code":"10000","sub_code":[]}"#).is_err());
        assert!(Reply::parse("[]").is_err());
        assert!(Reply::parse("not json").is_err());
        let r = reply(r#"{"code":"10000","qr_code":7,"trade_no":null,"x":""}"#);
        assert!(r.text("qr_code").is_err());
        assert_eq!(r.text("trade_no").unwrap(), None);
        assert_eq!(r.text("x").unwrap(), None);
        for (code, kind) in [
            ("10000", Code::Success),
            ("10003", Code::UserPaying),
            ("20000", Code::ServiceUnavailable),
            ("20001", Code::Refused),
            ("40001", Code::Refused),
            ("40002", Code::Refused),
            ("40004", Code::BusinessFailure),
            ("40006", Code::Refused),
            ("99999", Code::Other),
        ] {
            assert_eq!(
                reply(&format!(r#"{{"code":"{code}"}}"#)).kind(),
                kind,
                "{code}"
            );
        }
        assert!(accept_unsigned(&reply(
            r#"{"code":"40002","sub_code":"isv.invalid-signature"}"#
        )));
        assert!(!accept_unsigned(&reply(r#"{"code":"10000"}"#)));
        assert!(!accept_unsigned(&reply(r#"{"code":"40004"}"#)));
        assert!(!accept_unsigned(&reply(r#"{"code":"20000"}"#)));
    }

    #[test]
    fn every_trade_status() {
        assert_eq!(
            status_of_trade("WAIT_BUYER_PAY"),
            Some(PaymentStatus::Pending)
        );
        assert_eq!(
            status_of_trade("TRADE_SUCCESS"),
            Some(PaymentStatus::Succeeded)
        );
        assert_eq!(
            status_of_trade("TRADE_FINISHED"),
            Some(PaymentStatus::Succeeded)
        );
        assert_eq!(
            status_of_trade("TRADE_CLOSED"),
            Some(PaymentStatus::Cancelled)
        );
        assert_eq!(status_of_trade("trade_success"), None);
        assert_eq!(status_of_trade(""), None);
    }

    #[test]
    fn every_sub_code() {
        for (sub, expected) in [
            ("ACQ.TRADE_HAS_SUCCESS", SubCode::AlreadyPaid),
            ("ACQ.SYSTEM_ERROR", SubCode::SystemError),
            ("AQC.SYSTEM_ERROR", SubCode::SystemError),
            (
                "ACQ.BUYER_BALANCE_NOT_ENOUGH",
                SubCode::Decline("insufficient_funds"),
            ),
            (
                "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
                SubCode::Decline("insufficient_funds"),
            ),
            (
                "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE",
                SubCode::Decline("insufficient_funds"),
            ),
            (
                "ACQ.PAYMENT_AUTH_CODE_INVALID",
                SubCode::Decline("auth_code_invalid"),
            ),
            ("ACQ.TRADE_HAS_CLOSE", SubCode::Decline("payer_cancelled")),
            (
                "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT",
                SubCode::Decline("risk_rejected"),
            ),
            (
                "ACQ.BUYER_ENABLE_STATUS_FORBID",
                SubCode::Decline("risk_rejected"),
            ),
            (
                "ACQ.PAYMENT_REQUEST_HAS_RISK",
                SubCode::Decline("risk_rejected"),
            ),
            ("ACQ.RISK_CONTROL_REJECT", SubCode::Decline("risk_rejected")),
            (
                "ACQ.PULL_MOBILE_CASHIER_FAIL",
                SubCode::Decline("provider_declined"),
            ),
            (
                "ACQ.TRADE_BUYER_NOT_MATCH",
                SubCode::Decline("provider_declined"),
            ),
            (
                "ACQ.TOTAL_FEE_EXCEED",
                SubCode::Decline("provider_declined"),
            ),
            (
                "ACQ.INVALID_PARAMETER",
                SubCode::Decline("provider_declined"),
            ),
            ("", SubCode::Decline("provider_declined")),
        ] {
            assert_eq!(classify_sub_code(sub), expected, "{sub}");
        }
    }

    #[test]
    fn pay_answers() {
        let ok = interpret_pay(&reply(
            r#"{"code":"10000","msg":"Success","trade_no":"2013112011001004330000121536","out_trade_no":"pay_1","buyer_logon_id":"159****5620","buyer_user_id":"2088101117955611","total_amount":"12.50"}"#,
        ))
        .unwrap();
        assert_eq!(ok.status, PaymentStatus::Succeeded);
        assert_eq!(
            ok.provider_reference.as_deref(),
            Some("2013112011001004330000121536")
        );
        assert_eq!(ok.payer.as_deref(), Some("2088101117955611"));
        let logon_only = interpret_pay(&reply(
            r#"{"code":"10000","trade_no":"1","buyer_logon_id":"159****5620","trade_status":"TRADE_SUCCESS"}"#,
        ))
        .unwrap();
        assert_eq!(logon_only.payer.as_deref(), Some("159****5620"));
        let paying =
            interpret_pay(&reply(r#"{"code":"10003","msg":"Waiting","trade_no":"1"}"#)).unwrap();
        assert_eq!(paying.status, PaymentStatus::Pending);
        let pending = interpret_pay(&reply(
            r#"{"code":"10000","trade_status":"WAIT_BUYER_PAY"}"#,
        ))
        .unwrap();
        assert_eq!(pending.status, PaymentStatus::Pending);
        assert!(matches!(
            interpret_pay(&reply(r#"{"code":"10000","trade_status":"TRADE_CLOSED"}"#)),
            Err(ProviderError::UnknownOutcome(_))
        ));
        let fail = |sub: &str| {
            interpret_pay(&reply(&format!(
                r#"{{"code":"40004","msg":"Business Failed","sub_code":"{sub}","sub_msg":"m"}}"#
            )))
        };
        assert_eq!(
            declined_code(fail("ACQ.BUYER_BALANCE_NOT_ENOUGH").unwrap_err()),
            "insufficient_funds"
        );
        assert_eq!(
            declined_code(fail("ACQ.PAYMENT_AUTH_CODE_INVALID").unwrap_err()),
            "auth_code_invalid"
        );
        assert_eq!(
            declined_code(fail("ACQ.TRADE_HAS_CLOSE").unwrap_err()),
            "payer_cancelled"
        );
        assert_eq!(
            declined_code(fail("ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT").unwrap_err()),
            "risk_rejected"
        );
        assert_eq!(
            declined_code(fail("ACQ.PULL_MOBILE_CASHIER_FAIL").unwrap_err()),
            "provider_declined"
        );
        match fail("ACQ.BUYER_BALANCE_NOT_ENOUGH").unwrap_err() {
            ProviderError::Declined(d) => assert_eq!(d.message, "ACQ.BUYER_BALANCE_NOT_ENOUGH: m"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            fail("ACQ.TRADE_HAS_SUCCESS").unwrap().status,
            PaymentStatus::Succeeded
        );
        assert!(matches!(
            fail("ACQ.SYSTEM_ERROR"),
            Err(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            interpret_pay(&reply(
                r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}"#
            )),
            Err(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            interpret_pay(&reply(
                r#"{"code":"40002","sub_code":"isv.invalid-signature"}"#
            )),
            Err(ProviderError::InvalidRequest(_))
        ));
        assert!(matches!(
            interpret_pay(&reply(r#"{"code":"12345"}"#)),
            Err(ProviderError::UnknownOutcome(_))
        ));
        // A wrongly typed field in a success is an unknown outcome, not a panic.
        assert!(matches!(
            interpret_pay(&reply(r#"{"code":"10000","trade_no":123}"#)),
            Err(ProviderError::UnknownOutcome(m)) if m.contains("trade_no")
        ));
    }

    #[test]
    fn precreate_answers() {
        let ok = interpret_precreate(&reply(
            r#"{"code":"10000","msg":"Success","out_trade_no":"pay_1","qr_code":"https://qr.alipay.com/bavh4wjlxf12tper3a"}"#,
        ))
        .unwrap();
        assert_eq!(ok.status, PaymentStatus::Pending);
        assert_eq!(
            ok.qr_code.as_deref(),
            Some("https://qr.alipay.com/bavh4wjlxf12tper3a")
        );
        assert!(matches!(
            interpret_precreate(&reply(r#"{"code":"10000","msg":"Success"}"#)),
            Err(ProviderError::UnknownOutcome(m)) if m.contains("qr_code")
        ));
        assert!(matches!(
            interpret_precreate(&reply(r#"{"code":"10000","qr_code":{"a":1}}"#)),
            Err(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            interpret_precreate(&reply(r#"{"code":"40004","sub_code":"ACQ.TOTAL_FEE_EXCEED"}"#)),
            Err(ProviderError::Declined(d)) if d.code == "provider_declined"
        ));
        assert_eq!(
            interpret_precreate(&reply(
                r#"{"code":"40004","sub_code":"ACQ.TRADE_HAS_SUCCESS"}"#
            ))
            .unwrap()
            .status,
            PaymentStatus::Succeeded
        );
        assert!(matches!(
            interpret_precreate(&reply(r#"{"code":"20000"}"#)),
            Err(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            interpret_precreate(&reply(
                r#"{"code":"40001","sub_code":"isv.missing-app-id"}"#
            )),
            Err(ProviderError::InvalidRequest(_))
        ));
    }

    #[test]
    fn reported_amounts_are_alipays_yuan_strictly() {
        let minor =
            |text: Option<&str>| reported_amount(text, "total_amount").map(|m| m.map(|m| m.minor));
        assert_eq!(minor(None), Ok(None));
        assert_eq!(minor(Some("0.01")), Ok(Some(1)));
        assert_eq!(minor(Some("12.50")), Ok(Some(1250)));
        assert_eq!(minor(Some("12.5")), Ok(Some(1250)));
        assert_eq!(minor(Some("7")), Ok(Some(700)));
        assert_eq!(minor(Some("100000000.00")), Ok(Some(MAX_AMOUNT_FEN)));
        let money = reported_amount(Some("0.10"), "total_amount")
            .unwrap()
            .unwrap();
        assert_eq!((money.currency.as_str(), money.exponent), ("CNY", 2));
        for bad in [
            "abc",
            "-1",
            "-0.01",
            "+1.00",
            "0",
            "0.00",
            "1.234",
            "1e3",
            " 1.00",
            "1,00",
            "0x10",
            ".5",
            "5.",
            "100000000.01",
            "99999999999999999999",
            "92233720368547758.08",
        ] {
            let error = minor(Some(bad)).unwrap_err();
            assert!(error.contains("total_amount"), "{bad}: {error}");
        }
    }

    #[test]
    fn payment_answers_report_the_orders_total_amount() {
        let q = |fields: &str| {
            interpret_query(&reply(&format!(
                r#"{{"code":"10000","trade_no":"T1","out_trade_no":"pay_1","trade_status":"TRADE_SUCCESS"{fields}}}"#
            )))
        };
        // total_amount, not what the payer paid after a discount.
        let paid =
            q(r#","total_amount":"100.00","receipt_amount":"90.00","buyer_pay_amount":"90.00""#)
                .unwrap();
        assert_eq!(paid.amount.map(|m| m.minor), Some(10_000));
        assert!(q("").unwrap().amount.is_none());
        for bad in [
            r#","total_amount":"abc""#,
            r#","total_amount":"-100.00""#,
            r#","total_amount":"1.001""#,
            r#","total_amount":100"#,
        ] {
            assert!(
                matches!(q(bad), Err(ProviderError::Unavailable(_))),
                "{bad}"
            );
        }
        // pay: the same reading, and a malformed amount is an unknown outcome (it may
        // have charged).
        let pay = |fields: &str| {
            interpret_pay(&reply(&format!(
                r#"{{"code":"10000","trade_no":"T1","out_trade_no":"pay_1"{fields}}}"#
            )))
        };
        assert_eq!(
            pay(r#","total_amount":"0.01""#)
                .unwrap()
                .amount
                .map(|m| m.minor),
            Some(1)
        );
        assert!(matches!(
            pay(r#","total_amount":"0.001""#),
            Err(ProviderError::UnknownOutcome(m)) if m.contains("total_amount")
        ));
    }

    #[test]
    fn query_answers() {
        let q = |status: &str| {
            interpret_query(&reply(&format!(
                r#"{{"code":"10000","msg":"Success","trade_no":"T1","out_trade_no":"pay_1","trade_status":"{status}","buyer_user_id":"2088"}}"#
            )))
        };
        assert_eq!(q("WAIT_BUYER_PAY").unwrap().status, PaymentStatus::Pending);
        let paid = q("TRADE_SUCCESS").unwrap();
        assert_eq!(paid.status, PaymentStatus::Succeeded);
        assert_eq!(paid.provider_reference.as_deref(), Some("T1"));
        assert_eq!(paid.payer.as_deref(), Some("2088"));
        assert_eq!(
            q("TRADE_FINISHED").unwrap().status,
            PaymentStatus::Succeeded
        );
        assert_eq!(q("TRADE_CLOSED").unwrap().status, PaymentStatus::Cancelled);
        assert!(matches!(
            q("SOMETHING_NEW"),
            Err(ProviderError::Unavailable(_))
        ));
        assert!(matches!(
            interpret_query(&reply(r#"{"code":"10000"}"#)),
            Err(ProviderError::Unavailable(m)) if m.contains("trade_status")
        ));
        assert!(matches!(
            interpret_query(&reply(r#"{"code":"40004","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}"#)),
            Err(ProviderError::Unavailable(m)) if m.contains("nothing was charged")
        ));
        // A read never declines nor fails a payment, whatever Alipay says.
        for other in [
            r#"{"code":"40004","sub_code":"ACQ.SYSTEM_ERROR"}"#,
            r#"{"code":"40004","sub_code":"ACQ.INVALID_PARAMETER"}"#,
            r#"{"code":"20000"}"#,
            r#"{"code":"40002","sub_code":"isv.invalid-app-id"}"#,
            r#"{"code":"10003"}"#,
            r#"{"code":"10000","trade_status":5}"#,
        ] {
            assert!(
                matches!(
                    interpret_query(&reply(other)),
                    Err(ProviderError::Unavailable(_))
                ),
                "{other}"
            );
        }
    }

    #[test]
    fn close_answers() {
        assert!(matches!(
            interpret_close(&reply(r#"{"code":"10000","trade_no":"T1","out_trade_no":"pay_1"}"#)),
            Close::Closed(r) if r.status == PaymentStatus::Cancelled && r.provider_reference.as_deref() == Some("T1")
        ));
        assert!(matches!(
            interpret_close(&reply(
                r#"{"code":"40004","sub_code":"ACQ.TRADE_NOT_EXIST"}"#
            )),
            Close::NotExist
        ));
        assert!(matches!(
            interpret_close(&reply(
                r#"{"code":"40004","sub_code":"ACQ.TRADE_STATUS_ERROR"}"#
            )),
            Close::CheckState(_)
        ));
        assert!(matches!(
            interpret_close(&reply(r#"{"code":"40004","sub_code":"ACQ.SYSTEM_ERROR"}"#)),
            Close::Failed(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            interpret_close(&reply(r#"{"code":"20000"}"#)),
            Close::Failed(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            interpret_close(&reply(r#"{"code":"40002"}"#)),
            Close::Failed(ProviderError::Unavailable(_))
        ));
    }

    #[test]
    fn cancel_answers() {
        for action in ["close", "refund", ""] {
            assert!(matches!(
                interpret_cancel(&reply(&format!(r#"{{"code":"10000","trade_no":"T1","retry_flag":"N","action":"{action}"}}"#))),
                Cancel::Done(r) if r.status == PaymentStatus::Cancelled
            ));
        }
        assert!(matches!(
            interpret_cancel(&reply(r#"{"code":"10000","retry_flag":"Y"}"#)),
            Cancel::Failed(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            interpret_cancel(&reply(r#"{"code":"40004","sub_code":"ACQ.TRADE_NOT_EXIST"}"#)),
            Cancel::Done(r) if r.status == PaymentStatus::Cancelled && r.provider_reference.is_none()
        ));
        assert!(matches!(
            interpret_cancel(&reply(
                r#"{"code":"40004","sub_code":"ACQ.SYSTEM_ERROR","retry_flag":"Y"}"#
            )),
            Cancel::Failed(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            interpret_cancel(&reply(
                r#"{"code":"40004","sub_code":"ACQ.TRADE_CANCEL_TIME_OUT","retry_flag":"N"}"#
            )),
            Cancel::CheckState(_)
        ));
        assert!(matches!(
            interpret_cancel(&reply(
                r#"{"code":"40004","sub_code":"ACQ.CANCEL_NOT_ALLOWED","retry_flag":"Y"}"#
            )),
            Cancel::Failed(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            interpret_cancel(&reply(r#"{"code":"40006"}"#)),
            Cancel::Failed(ProviderError::Unavailable(_))
        ));
    }

    #[test]
    fn refund_answers() {
        // `refund_fee` is the trade's cumulative refunded total: not this refund's amount.
        assert!(matches!(
            interpret_refund(&reply(r#"{"code":"10000","fund_change":"Y","refund_fee":"12.50"}"#)),
            RefundStep::Done(r) if r.status == RefundStatus::Succeeded && r.amount.is_none()
        ));
        assert!(matches!(
            interpret_refund(&reply(r#"{"code":"10000","fund_change":"N"}"#)),
            RefundStep::Query
        ));
        assert!(matches!(
            interpret_refund(&reply(r#"{"code":"10000"}"#)),
            RefundStep::Query
        ));
        assert!(matches!(
            interpret_refund(&reply(r#"{"code":"10000","fund_change":true}"#)),
            RefundStep::Failed(ProviderError::UnknownOutcome(_))
        ));
        for sub in [
            "ACQ.TRADE_NOT_EXIST",
            "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
            "ACQ.TRADE_STATUS_ERROR",
            "ACQ.SELLER_BALANCE_NOT_ENOUGH",
        ] {
            assert!(
                matches!(
                    interpret_refund(&reply(&format!(r#"{{"code":"40004","sub_code":"{sub}","sub_msg":"x"}}"#))),
                    RefundStep::Failed(ProviderError::Declined(d)) if d.code == "provider_declined" && d.message.starts_with(sub)
                ),
                "{sub}"
            );
        }
        assert!(matches!(
            interpret_refund(&reply(r#"{"code":"40004","sub_code":"ACQ.SYSTEM_ERROR"}"#)),
            RefundStep::Failed(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            interpret_refund(&reply(r#"{"code":"20000"}"#)),
            RefundStep::Failed(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            interpret_refund(&reply(r#"{"code":"40002"}"#)),
            RefundStep::Failed(ProviderError::InvalidRequest(_))
        ));
    }

    #[test]
    fn refund_query_answers() {
        let q = |json: &str| interpret_refund_query(&reply(json), "re_1");
        let done = q(r#"{"code":"10000","out_request_no":"re_1","total_amount":"12.50","refund_amount":"1.00","refund_status":"REFUND_SUCCESS"}"#).unwrap();
        assert_eq!(done.status, RefundStatus::Succeeded);
        // This refund's own amount, not the trade's total.
        assert_eq!(
            done.amount.map(|m| (m.minor, m.currency, m.exponent)),
            Some((100, "CNY".to_owned(), 2))
        );
        // About another refund: not believed.
        assert!(matches!(
            q(r#"{"code":"10000","out_request_no":"re_2","refund_amount":"1.00","refund_status":"REFUND_SUCCESS"}"#),
            Err(ProviderError::Unavailable(m)) if m.contains("re_2")
        ));
        // A malformed refund_amount makes the whole answer unusable.
        for bad in [
            "abc",
            "-1.00",
            "0.00",
            "1.001",
            "100000000.01",
            "99999999999999999999",
        ] {
            assert!(
                matches!(
                    q(&format!(r#"{{"code":"10000","refund_amount":"{bad}","refund_status":"REFUND_SUCCESS"}}"#)),
                    Err(ProviderError::Unavailable(m)) if m.contains("refund_amount")
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            q(r#"{"code":"10000","refund_amount":1.0,"refund_status":"REFUND_SUCCESS"}"#),
            Err(ProviderError::Unavailable(_))
        ));
        // Without one: no amount reported.
        assert!(
            q(r#"{"code":"10000","refund_status":"REFUND_SUCCESS"}"#)
                .unwrap()
                .amount
                .is_none()
        );
        assert_eq!(
            q(r#"{"code":"10000","out_request_no":"re_1"}"#)
                .unwrap()
                .status,
            RefundStatus::Pending
        );
        assert_eq!(
            q(r#"{"code":"10000","refund_status":"PROCESSING"}"#)
                .unwrap()
                .status,
            RefundStatus::Pending
        );
        assert!(matches!(
            q(r#"{"code":"10000","refund_status":1}"#),
            Err(ProviderError::Unavailable(_))
        ));
        assert!(matches!(
            q(r#"{"code":"40004","sub_code":"ACQ.TRADE_NOT_EXIST"}"#),
            Err(ProviderError::Unavailable(_))
        ));
        assert!(matches!(
            q(r#"{"code":"20000"}"#),
            Err(ProviderError::Unavailable(_))
        ));
    }

    #[test]
    fn failures_follow_what_the_call_may_have_done() {
        let msg = || "x".to_string();
        assert!(matches!(
            Effect::Charge.uncertain(msg()),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            Effect::Settle.uncertain(msg()),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            Effect::Read.uncertain(msg()),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            Effect::Charge.refused(msg()),
            ProviderError::InvalidRequest(_)
        ));
        assert!(matches!(
            Effect::Settle.refused(msg()),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            Effect::Read.refused(msg()),
            ProviderError::Unavailable(_)
        ));
        use http::Error;
        assert!(matches!(
            Effect::Charge.transport(Error::Timeout),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            Effect::Settle.transport(Error::Timeout),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            Effect::Read.transport(Error::Timeout),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            Effect::Charge.transport(Error::TooLarge),
            ProviderError::UnknownOutcome(_)
        ));
        assert!(matches!(
            Effect::Read.transport(Error::TooLarge),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            Effect::Charge.transport(Error::Connection("r".into())),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            Effect::Charge.transport(Error::Denied("d".into())),
            ProviderError::InvalidRequest(_)
        ));
        assert!(matches!(
            Effect::Settle.transport(Error::Denied("d".into())),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            Effect::Read.transport(Error::Denied("d".into())),
            ProviderError::Unavailable(_)
        ));
    }
}
