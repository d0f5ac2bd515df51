//! Merchant onboarding through Alipay's indirect "直付通" (ZFT) sub-merchant APIs, pure:
//! our application materials and bank accounts into Alipay's parameters, Alipay's answers
//! into our onboarding and binding results. No host calls here; the flow is in `flow.rs`.
//!
//! - onboard: `ant.merchant.expand.indirect.zft.create`, `external_id` = our activation id;
//! - query-onboarding: `ant.merchant.expand.indirect.zftorder.query` by `external_id`;
//! - bind-account: `ant.merchant.expand.indirect.zft.settlementmodify` (the sub-merchant's
//!   settlement bank card), `out_biz_no` = our bank account id;
//! - query-binding: `ant.merchant.expand.order.query` by `order_id` and `out_biz_no`.
//!
//! Application states (`status`): `031` under review, `99` done (the sub-merchant `smid`
//! exists), `-1` failed (with `reason`). PROTOCOL.md §9 says exactly what goes over the wire.

use paygate_plugin_api::{
    BindingRequest, BindingResult, BindingStatus, Money, OnboardingResult, OnboardingStatus,
    ProviderError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::settings::Settings;
use crate::transform::{Code, Effect, Reply, out_no, text_field, type_name};

pub const METHOD_ZFT_CREATE: &str = "ant.merchant.expand.indirect.zft.create";
pub const METHOD_ZFT_ORDER_QUERY: &str = "ant.merchant.expand.indirect.zftorder.query";
pub const METHOD_SETTLEMENT_MODIFY: &str = "ant.merchant.expand.indirect.zft.settlementmodify";
pub const METHOD_ORDER_QUERY: &str = "ant.merchant.expand.order.query";

/// Submitting an application or a settlement account creates something at Alipay: an
/// unclear answer is an unknown outcome (ask again with the same `external_id` /
/// `out_biz_no`: Alipay answers the existing order), a gateway refusal an invalid request.
pub const SUBMIT: Effect = Effect::Charge;
/// The queries only read: every failure is "unavailable".
pub const READ: Effect = Effect::Read;

/// `merchant_type` `01`: an enterprise (the materials carry a business licence).
pub const MERCHANT_TYPE_ENTERPRISE: &str = "01";
/// `cert_type` `201`: business licence (营业执照).
pub const CERT_TYPE_BUSINESS_LICENCE: &str = "201";
/// The service the sub-merchant signs: face-to-face payment, what this plugin collects.
pub const SERVICE_FACE_TO_FACE: &str = "当面付";
/// Settlement card `account_type`: debit card.
pub const ACCOUNT_TYPE_DEBIT: &str = "DC";
/// Settlement card `usage_type`: a corporate account (对公), as for an enterprise.
pub const USAGE_TYPE_CORPORATE: &str = "01";
/// `apply_type` of a sub-merchant creation order (zftorder.query also lists other kinds).
pub const APPLY_TYPE_CREATE: &str = "ZHIFUTONG_CREATE";

/// Application and order states.
pub const STATUS_UNDER_REVIEW: &str = "031";
pub const STATUS_DONE: &str = "99";
pub const STATUS_FAILED: &str = "-1";

/// Reasons and failures passed on are cut to this many characters.
pub const MAX_REASON_CHARS: usize = 256;
/// A verification remittance above this (1.00 CNY) is not believed: Alipay's small-amount
/// checks are cents, and an answer asking the merchant to send more is not one to relay.
pub const MAX_VERIFICATION_FEN: i64 = 100;

// ---------------------------------------------------------------------------------------
// What the gateway gives us

/// The application materials (`materials-json`) as the gateway sends them.
#[derive(Debug, Deserialize)]
pub struct Materials {
    pub name: String,
    pub business_license_no: String,
    #[serde(default)]
    pub tax_registration_no: Option<String>,
    pub legal_person: LegalPerson,
    pub contact: Contact,
    pub industry_code: String,
}

#[derive(Debug, Deserialize)]
pub struct LegalPerson {
    pub name: String,
    pub id_number: String,
}

#[derive(Debug, Deserialize)]
pub struct Contact {
    pub name: String,
    pub phone: String,
    #[serde(default)]
    pub email: Option<String>,
}

/// How a value may look.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Any text without control characters.
    Text,
    /// ASCII letters and digits (licence, tax and id numbers).
    Alphanumeric,
    /// ASCII letters, digits, `_` and `-` (industry codes, Alipay's ids).
    Code,
    /// Digits, with `+`, `-` and spaces (telephone numbers).
    Phone,
    /// Digits only (account numbers).
    Digits,
}

impl Shape {
    fn accepts(self, c: char) -> bool {
        match self {
            Shape::Text => !c.is_control(),
            Shape::Alphanumeric => c.is_ascii_alphanumeric(),
            Shape::Code => c.is_ascii_alphanumeric() || c == '_' || c == '-',
            Shape::Phone => c.is_ascii_digit() || matches!(c, '+' | '-' | ' '),
            Shape::Digits => c.is_ascii_digit(),
        }
    }
}

/// A required value, trimmed, of 1..=`max` characters of the given shape.
fn field(value: &str, what: &str, max: usize, shape: Shape) -> Result<String, String> {
    let value = value.trim();
    let count = value.chars().count();
    if count == 0 {
        return Err(format!("{what} is empty"));
    }
    if count > max {
        return Err(format!("{what} is longer than {max} characters"));
    }
    if let Some(bad) = value.chars().find(|c| !shape.accepts(*c)) {
        return Err(format!(
            "{what} contains {:?}",
            bad.escape_debug().to_string()
        ));
    }
    Ok(value.to_owned())
}

/// An optional value: absent or blank is `None`, otherwise as [`field`].
fn optional(
    value: Option<&str>,
    what: &str,
    max: usize,
    shape: Shape,
) -> Result<Option<String>, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => field(v, what, max, shape).map(Some),
    }
}

// ---------------------------------------------------------------------------------------
// onboard: ant.merchant.expand.indirect.zft.create

/// `biz_content` of `ant.merchant.expand.indirect.zft.create`.
#[derive(Debug, Serialize)]
pub struct ZftCreateBiz {
    pub external_id: String,
    pub name: String,
    pub alias_name: String,
    pub merchant_type: &'static str,
    pub mcc: String,
    pub cert_type: &'static str,
    pub cert_no: String,
    pub legal_name: String,
    pub legal_cert_no: String,
    pub contact_infos: Vec<ContactInfo>,
    pub service: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_info: Option<InvoiceInfo>,
}

#[derive(Debug, Serialize)]
pub struct ContactInfo {
    pub name: String,
    pub mobile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct InvoiceInfo {
    pub title: String,
    pub tax_no: String,
}

/// Builds the application from our activation id and the materials. `Err` is final and
/// nothing was sent.
pub fn zft_create(
    activation_id: &str,
    materials_json: &str,
) -> Result<ZftCreateBiz, ProviderError> {
    let invalid = |e: String| ProviderError::InvalidRequest(format!("onboarding materials: {e}"));
    let external_id =
        out_no(activation_id, "activation_id").map_err(ProviderError::InvalidRequest)?;
    let m: Materials = serde_json::from_str(materials_json).map_err(|e| invalid(e.to_string()))?;
    let name = field(&m.name, "name", 128, Shape::Text).map_err(invalid)?;
    let tax_no = optional(
        m.tax_registration_no.as_deref(),
        "tax_registration_no",
        32,
        Shape::Alphanumeric,
    )
    .map_err(invalid)?;
    let email = optional(
        m.contact.email.as_deref(),
        "contact.email",
        128,
        Shape::Text,
    )
    .map_err(invalid)?;
    if email
        .as_deref()
        .is_some_and(|e| !e.contains('@') || e.contains(' '))
    {
        return Err(invalid("contact.email is not an email address".into()));
    }
    Ok(ZftCreateBiz {
        external_id,
        alias_name: name.clone(),
        merchant_type: MERCHANT_TYPE_ENTERPRISE,
        mcc: field(&m.industry_code, "industry_code", 32, Shape::Code).map_err(invalid)?,
        cert_type: CERT_TYPE_BUSINESS_LICENCE,
        cert_no: field(
            &m.business_license_no,
            "business_license_no",
            32,
            Shape::Alphanumeric,
        )
        .map_err(invalid)?,
        legal_name: field(&m.legal_person.name, "legal_person.name", 64, Shape::Text)
            .map_err(invalid)?,
        legal_cert_no: field(
            &m.legal_person.id_number,
            "legal_person.id_number",
            32,
            Shape::Alphanumeric,
        )
        .map_err(invalid)?,
        contact_infos: vec![ContactInfo {
            name: field(&m.contact.name, "contact.name", 64, Shape::Text).map_err(invalid)?,
            mobile: field(&m.contact.phone, "contact.phone", 32, Shape::Phone).map_err(invalid)?,
            email,
        }],
        service: vec![SERVICE_FACE_TO_FACE],
        invoice_info: tax_no.map(|tax_no| InvoiceInfo {
            title: name.clone(),
            tax_no,
        }),
        name,
    })
}

fn onboarding(
    status: OnboardingStatus,
    provider_reference: Option<String>,
    rejection_reason: Option<String>,
) -> OnboardingResult {
    OnboardingResult {
        status,
        provider_reference,
        rejection_reason,
        next_step_json: None,
    }
}

/// Alipay's `sub_code`s that mean "we do not know what happened".
pub fn is_system_error(sub_code: Option<&str>) -> bool {
    match sub_code {
        Some(code) => {
            code.ends_with("SYSTEM_ERROR") || code.starts_with("isp.") || code == "UNKNOWN_ERROR"
        }
        None => false,
    }
}

/// An id Alipay gives (`order_id`, `smid`): 1..=64 ASCII letters, digits, `_`, `-`.
fn alipay_id(value: &str, what: &str) -> Result<String, String> {
    field(value, what, 64, Shape::Code)
}

/// A reason to pass on: control characters become spaces, cut to [`MAX_REASON_CHARS`].
pub fn clean_reason(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON_CHARS)
        .collect()
}

/// `ant.merchant.expand.indirect.zft.create`: `submitted`, with Alipay's `order_id`.
///
/// A business failure (`40004`) is Alipay refusing the application as submitted: it is
/// reported `rejected` with `sub_code: sub_msg`, so the merchant can correct the materials
/// and submit again (same activation id). Unknown answers are unknown outcomes: submitting
/// again with the same `external_id` cannot make a second application.
pub fn interpret_create(reply: &Reply) -> Result<OnboardingResult, ProviderError> {
    let read = |e: String| SUBMIT.uncertain(format!("zft.create answer: {e}"));
    match reply.kind() {
        Code::Success => {
            let order_id = reply
                .text("order_id")
                .map_err(read)?
                .ok_or_else(|| read("no order_id".into()))?;
            let order_id = alipay_id(order_id, "order_id").map_err(read)?;
            Ok(onboarding(
                OnboardingStatus::Submitted,
                Some(order_id),
                None,
            ))
        }
        Code::BusinessFailure if is_system_error(reply.sub_code.as_deref()) => {
            Err(SUBMIT.uncertain(reply.describe()))
        }
        Code::BusinessFailure => Ok(onboarding(
            OnboardingStatus::Rejected,
            None,
            Some(clean_reason(&reply.decline_message())),
        )),
        Code::Refused => Err(SUBMIT.refused(reply.describe())),
        Code::UserPaying | Code::ServiceUnavailable | Code::Other => {
            Err(SUBMIT.uncertain(reply.describe()))
        }
    }
}

// ---------------------------------------------------------------------------------------
// query-onboarding: ant.merchant.expand.indirect.zftorder.query

/// `biz_content` of `ant.merchant.expand.indirect.zftorder.query`. Only `external_id`:
/// Alipay prefers `order_id` when both are given, and our provider reference becomes the
/// `smid` once the application is done, so it is never sent back as an `order_id`.
#[derive(Debug, Serialize)]
pub struct ZftOrderQueryBiz {
    pub external_id: String,
}

/// One application order in a `zftorder.query` answer, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationOrder {
    pub order_id: Option<String>,
    pub status: String,
    pub smid: Option<String>,
    pub reason: Option<String>,
    pub apply_time: Option<String>,
}

fn map_text<'a>(order: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    text_field(order, name)
}

/// The creation orders of a `zftorder.query` answer for `external_id`. Orders of another
/// kind (`apply_type` other than `ZHIFUTONG_CREATE`: settlement changes, pre-checks) are
/// skipped; an order naming another `external_id` makes the answer unusable.
pub fn application_orders(
    reply: &Reply,
    external_id: &str,
) -> Result<Vec<ApplicationOrder>, String> {
    let orders = match reply.value("orders") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(orders)) => orders,
        Some(other) => {
            return Err(format!(
                "\"orders\" should be an array, not {}",
                type_name(other)
            ));
        }
    };
    let mut found = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        let Value::Object(order) = order else {
            return Err(format!(
                "orders[{i}] should be an object, not {}",
                type_name(order)
            ));
        };
        let at = |e: String| format!("orders[{i}]: {e}");
        if let Some(other) = map_text(order, "external_id").map_err(at)?
            && other != external_id
        {
            return Err(at(format!(
                "the order is for external_id {:?}, not {external_id:?}",
                other.escape_debug().to_string()
            )));
        }
        if map_text(order, "apply_type")
            .map_err(at)?
            .is_some_and(|t| t != APPLY_TYPE_CREATE)
        {
            continue;
        }
        let status = map_text(order, "status")
            .map_err(at)?
            .ok_or_else(|| at("no status".into()))?
            .to_owned();
        let order_id = map_text(order, "order_id")
            .map_err(at)?
            .map(|id| alipay_id(id, "order_id"))
            .transpose()
            .map_err(at)?;
        let smid = map_text(order, "smid")
            .map_err(at)?
            .map(|id| alipay_id(id, "smid"))
            .transpose()
            .map_err(at)?;
        // The failure reason, else the review remarks (risk review, then customer review).
        let mut remarks = Vec::new();
        for name in ["reason", "fk_audit_memo", "kz_audit_memo"] {
            if let Some(text) = map_text(order, name).map_err(at)? {
                remarks.push(text);
                if name == "reason" {
                    break;
                }
            }
        }
        let reason = (!remarks.is_empty()).then(|| clean_reason(&remarks.join("; ")));
        let apply_time = map_text(order, "apply_time")
            .map_err(at)?
            .map(str::to_owned);
        found.push(ApplicationOrder {
            order_id,
            status,
            smid,
            reason,
            apply_time,
        });
    }
    Ok(found)
}

/// What the creation orders of one `external_id` say about the application:
///
/// - any order `99` (done): `active`, its `smid` the provider reference (required);
/// - else any unknown status: unusable (not guessed);
/// - else any `031`: `under_review`;
/// - else (all `-1`): `rejected`, with the reason of the latest order (by `apply_time`,
///   then by position).
///
/// No order at all: Alipay holds no application under this id (the submission never
/// arrived): unavailable, never a guess.
pub fn application_state(orders: &[ApplicationOrder]) -> Result<OnboardingResult, String> {
    if let Some(done) = orders.iter().find(|o| o.status == STATUS_DONE) {
        let smid = done
            .smid
            .clone()
            .ok_or_else(|| "an order is done (99) without its smid".to_string())?;
        return Ok(onboarding(OnboardingStatus::Active, Some(smid), None));
    }
    if let Some(odd) = orders
        .iter()
        .find(|o| o.status != STATUS_UNDER_REVIEW && o.status != STATUS_FAILED)
    {
        return Err(format!(
            "unknown application status {:?}",
            odd.status.escape_debug().to_string()
        ));
    }
    if let Some(open) = orders.iter().find(|o| o.status == STATUS_UNDER_REVIEW) {
        return Ok(onboarding(
            OnboardingStatus::UnderReview,
            open.order_id.clone(),
            None,
        ));
    }
    let latest = orders
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| a.apply_time.cmp(&b.apply_time).then(i.cmp(j)))
        .map(|(_, o)| o)
        .ok_or_else(|| "Alipay holds no application under this external_id".to_string())?;
    Ok(onboarding(
        OnboardingStatus::Rejected,
        latest.order_id.clone(),
        Some(
            latest
                .reason
                .clone()
                .unwrap_or_else(|| "rejected by Alipay (no reason given)".into()),
        ),
    ))
}

/// `ant.merchant.expand.indirect.zftorder.query`. Reads never fail an activation: every
/// failure is "unavailable".
pub fn interpret_order_query(
    reply: &Reply,
    external_id: &str,
) -> Result<OnboardingResult, ProviderError> {
    let read = |e: String| READ.uncertain(format!("zftorder.query answer: {e}"));
    match reply.kind() {
        Code::Success => {
            let orders = application_orders(reply, external_id).map_err(read)?;
            application_state(&orders).map_err(read)
        }
        _ => Err(READ.uncertain(reply.describe())),
    }
}

// ---------------------------------------------------------------------------------------
// bind-account: ant.merchant.expand.indirect.zft.settlementmodify

/// `biz_content` of `ant.merchant.expand.indirect.zft.settlementmodify`.
#[derive(Debug, Serialize)]
pub struct SettlementModifyBiz {
    /// Our bank account id: asking again with it answers the same order.
    pub out_biz_no: String,
    /// The sub-merchant (setting `sub_merchant_id`), when the settings know it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smid: Option<String>,
    pub biz_cards: SettleCard,
}

#[derive(Debug, Serialize)]
pub struct SettleCard {
    pub account_holder_name: String,
    pub account_no: String,
    pub account_inst_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_branch_name: Option<String>,
    pub account_type: &'static str,
    pub usage_type: &'static str,
}

/// Builds the settlement change from our bank account. `Err` is final and nothing was sent.
pub fn settlement_modify(
    settings: &Settings,
    request: &BindingRequest,
) -> Result<SettlementModifyBiz, ProviderError> {
    let invalid = |e: String| ProviderError::InvalidRequest(format!("bank account: {e}"));
    let out_biz_no = out_no(&request.bank_account_id, "bank_account_id")
        .map_err(ProviderError::InvalidRequest)?;
    let smid = settings
        .sub_merchant_id
        .as_deref()
        .map(|s| alipay_id(s, "setting sub_merchant_id"))
        .transpose()
        .map_err(ProviderError::InvalidRequest)?;
    let number: String = request
        .account_number
        .chars()
        .filter(|c| *c != ' ')
        .collect();
    let number = field(&number, "account_number", 32, Shape::Digits).map_err(invalid)?;
    if number.len() < 6 {
        return Err(invalid("account_number is shorter than 6 digits".into()));
    }
    Ok(SettlementModifyBiz {
        out_biz_no,
        smid,
        biz_cards: SettleCard {
            account_holder_name: field(&request.account_holder, "account_holder", 128, Shape::Text)
                .map_err(invalid)?,
            account_no: number,
            account_inst_name: field(&request.bank_name, "bank_name", 128, Shape::Text)
                .map_err(invalid)?,
            account_branch_name: optional(request.branch.as_deref(), "branch", 128, Shape::Text)
                .map_err(invalid)?,
            account_type: ACCOUNT_TYPE_DEBIT,
            usage_type: USAGE_TYPE_CORPORATE,
        },
    })
}

fn binding(
    status: BindingStatus,
    provider_reference: Option<String>,
    verification_json: Option<String>,
    failure: Option<String>,
) -> BindingResult {
    BindingResult {
        status,
        provider_reference,
        verification_json,
        failure,
    }
}

/// The verification step we hand the merchant (`verification-json`).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Remittance {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub amount: String,
    pub currency: &'static str,
    pub to_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

/// The verification step an answer describes, as our JSON object: `verify_type`
/// `REMITTANCE` with `verify_amount` (0.01..=1.00 yuan), `verify_payee_account_no`,
/// optional `verify_payee_account_name` and `verify_memo`. No `verify_type`: none.
pub fn verification(reply: &Reply) -> Result<Option<String>, String> {
    let Some(kind) = reply.text("verify_type")? else {
        return Ok(None);
    };
    if kind != "REMITTANCE" {
        return Err(format!(
            "unknown verify_type {:?}",
            kind.escape_debug().to_string()
        ));
    }
    let amount = reply
        .text("verify_amount")?
        .ok_or_else(|| "a remittance without verify_amount".to_string())?;
    let money = strict_yuan(amount).ok_or_else(|| {
        format!(
            "verify_amount {:?} is not a yuan amount",
            amount.escape_debug().to_string()
        )
    })?;
    if !(1..=MAX_VERIFICATION_FEN).contains(&money.minor) {
        return Err(format!(
            "verify_amount {amount} is outside 0.01..=1.00: not a verification remittance"
        ));
    }
    let to_account = reply
        .text("verify_payee_account_no")?
        .ok_or_else(|| "a remittance without verify_payee_account_no".to_string())?;
    let remittance = Remittance {
        kind: "remittance",
        amount: amount.to_owned(),
        currency: "CNY",
        to_account: field(to_account, "verify_payee_account_no", 64, Shape::Code)?,
        to_account_name: reply
            .text("verify_payee_account_name")?
            .map(|n| field(n, "verify_payee_account_name", 128, Shape::Text))
            .transpose()?,
        memo: reply
            .text("verify_memo")?
            .map(|m| field(m, "verify_memo", 64, Shape::Text))
            .transpose()?,
    };
    serde_json::to_string(&remittance)
        .map(Some)
        .map_err(|e| format!("cannot encode the verification: {e}"))
}

/// `"0.37"`: digits, a point, exactly two decimals, nothing else.
fn strict_yuan(text: &str) -> Option<Money> {
    let (whole, fraction) = text.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.len() != 2 || !digits(fraction) {
        return None;
    }
    Money::from_decimal(text, "CNY", 2).ok()
}

/// `ant.merchant.expand.indirect.zft.settlementmodify`: `pending-verification` with
/// Alipay's `order_id` and the verification step, when the answer gives one.
///
/// A business failure is Alipay refusing this account (e.g. no active sub-merchant to
/// settle for, or the card refused): reported `failed` with `sub_code: sub_msg`.
pub fn interpret_settlement(reply: &Reply) -> Result<BindingResult, ProviderError> {
    let read = |e: String| SUBMIT.uncertain(format!("settlementmodify answer: {e}"));
    match reply.kind() {
        Code::Success => {
            let order_id = reply
                .text("order_id")
                .map_err(read)?
                .ok_or_else(|| read("no order_id".into()))?;
            let order_id = alipay_id(order_id, "order_id").map_err(read)?;
            let verification = verification(reply).map_err(read)?;
            Ok(binding(
                BindingStatus::PendingVerification,
                Some(order_id),
                verification,
                None,
            ))
        }
        Code::BusinessFailure if is_system_error(reply.sub_code.as_deref()) => {
            Err(SUBMIT.uncertain(reply.describe()))
        }
        Code::BusinessFailure => Ok(binding(
            BindingStatus::Failed,
            None,
            None,
            Some(clean_reason(&reply.decline_message())),
        )),
        Code::Refused => Err(SUBMIT.refused(reply.describe())),
        Code::UserPaying | Code::ServiceUnavailable | Code::Other => {
            Err(SUBMIT.uncertain(reply.describe()))
        }
    }
}

// ---------------------------------------------------------------------------------------
// query-binding: ant.merchant.expand.order.query

/// `biz_content` of `ant.merchant.expand.order.query`: the `order_id` settlementmodify
/// gave (when the gateway has it) and our bank account id.
#[derive(Debug, Serialize)]
pub struct OrderQueryBiz {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    pub out_biz_no: String,
}

/// Builds the order query. A reference that is not an Alipay id is not sent.
pub fn order_query(
    bank_account_id: &str,
    provider_reference: Option<&str>,
) -> Result<OrderQueryBiz, String> {
    Ok(OrderQueryBiz {
        order_id: provider_reference.and_then(|r| alipay_id(r, "order_id").ok()),
        out_biz_no: out_no(bank_account_id, "bank_account_id")?,
    })
}

/// `ant.merchant.expand.order.query` about a settlement change: `031` pending
/// verification (with the step again), `99` verified, `-1` failed (with `reason`).
/// Anything else, including an answer about another kind of order, is unavailable.
pub fn interpret_binding_query(
    reply: &Reply,
    bank_account_id: &str,
    provider_reference: Option<&str>,
) -> Result<BindingResult, ProviderError> {
    let read = |e: String| READ.uncertain(format!("order.query answer: {e}"));
    if reply.kind() != Code::Success {
        return Err(READ.uncertain(reply.describe()));
    }
    if let Some(other) = reply.text("out_biz_no").map_err(read)?
        && other != bank_account_id
    {
        return Err(read(format!(
            "the order is for out_biz_no {:?}, not {bank_account_id:?}",
            other.escape_debug().to_string()
        )));
    }
    if let Some(kind) = reply.text("apply_type").map_err(read)?
        && kind == APPLY_TYPE_CREATE
    {
        return Err(read(
            "the order is a sub-merchant application, not a settlement change".into(),
        ));
    }
    let reference = match reply.text("order_id").map_err(read)? {
        Some(id) => Some(alipay_id(id, "order_id").map_err(read)?),
        None => provider_reference.map(str::to_owned),
    };
    let status = reply
        .text("status")
        .map_err(read)?
        .ok_or_else(|| read("no status".into()))?;
    match status {
        STATUS_UNDER_REVIEW => {
            let verification = verification(reply).map_err(read)?;
            Ok(binding(
                BindingStatus::PendingVerification,
                reference,
                verification,
                None,
            ))
        }
        STATUS_DONE => Ok(binding(BindingStatus::Verified, reference, None, None)),
        STATUS_FAILED => {
            let reason = reply
                .text("reason")
                .map_err(read)?
                .map(clean_reason)
                .unwrap_or_else(|| "the settlement account was not verified".into());
            Ok(binding(
                BindingStatus::Failed,
                reference,
                None,
                Some(reason),
            ))
        }
        other => Err(read(format!(
            "unknown order status {:?}",
            other.escape_debug().to_string()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paygate_plugin_api::Merchant;

    const MATERIALS: &str = r#"{"name":"杭州示例科技有限公司","business_license_no":"91330100MA2AXXXX1X","tax_registration_no":"91330100MA2AXXXX1X","legal_person":{"name":"张三","id_number":"33010219900101123X"},"contact":{"name":"李四","phone":"13800000000","email":"li@example.com"},"industry_code":"B0001"}"#;

    fn reply(json: &str) -> Reply {
        Reply::parse(json).unwrap()
    }

    fn settings(smid: Option<&str>) -> Settings {
        let mut json = serde_json::json!({"app_id": "2021000000000001", "gateway_url": "http://127.0.0.1:8430/alipay/gateway.do"});
        if let Some(smid) = smid {
            json["sub_merchant_id"] = smid.into();
        }
        Settings::parse(&json.to_string()).unwrap()
    }

    fn bank_account() -> BindingRequest {
        BindingRequest {
            bank_account_id: "ba_01J".into(),
            provider: "alipay".into(),
            merchant: Merchant {
                id: "m_1".into(),
                settings_json: "{}".into(),
                notify_url: String::new(),
            },
            account_holder: "杭州示例科技有限公司".into(),
            account_number: "6222 0212 3456 7890".into(),
            bank_name: "中国工商银行".into(),
            branch: Some("杭州西湖支行".into()),
        }
    }

    fn invalid(result: Result<impl std::fmt::Debug, ProviderError>) -> String {
        match result {
            Err(ProviderError::InvalidRequest(m)) => m,
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }

    fn unavailable<T: std::fmt::Debug>(result: Result<T, ProviderError>) -> String {
        match result {
            Err(ProviderError::Unavailable(m)) => m,
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    fn unknown<T: std::fmt::Debug>(result: Result<T, ProviderError>) -> String {
        match result {
            Err(ProviderError::UnknownOutcome(m)) => m,
            other => panic!("expected an unknown outcome, got {other:?}"),
        }
    }

    #[test]
    fn materials_become_the_zft_application() {
        let biz = zft_create("act_01J", MATERIALS).unwrap();
        assert_eq!(
            serde_json::to_string(&biz).unwrap(),
            concat!(
                r#"{"external_id":"act_01J","name":"杭州示例科技有限公司","alias_name":"杭州示例科技有限公司","#,
                r#""merchant_type":"01","mcc":"B0001","cert_type":"201","cert_no":"91330100MA2AXXXX1X","#,
                r#""legal_name":"张三","legal_cert_no":"33010219900101123X","#,
                r#""contact_infos":[{"name":"李四","mobile":"13800000000","email":"li@example.com"}],"#,
                r#""service":["当面付"],"invoice_info":{"title":"杭州示例科技有限公司","tax_no":"91330100MA2AXXXX1X"}}"#
            )
        );
        // Optional parts may be absent or blank; values are trimmed; unknown members pass.
        let lean = r#"{"name":"  Shop  ","business_license_no":"123456789012345","tax_registration_no":" ","legal_person":{"name":"Zhang San","id_number":"330102199001011234"},"contact":{"name":"Li","phone":"+86 138-0000-0000"},"industry_code":"A0002_B0199","extra":{"x":1}}"#;
        let biz = zft_create("act_2", lean).unwrap();
        let json = serde_json::to_value(&biz).unwrap();
        assert_eq!(json["name"], "Shop");
        assert!(json.get("invoice_info").is_none());
        assert_eq!(
            json["contact_infos"][0],
            serde_json::json!({"name": "Li", "mobile": "+86 138-0000-0000"})
        );
    }

    #[test]
    fn bad_materials_never_leave() {
        let with = |path: &[&str], value: Value| {
            let mut m: Value = serde_json::from_str(MATERIALS).unwrap();
            let mut node = &mut m;
            for key in &path[..path.len() - 1] {
                node = &mut node[*key];
            }
            node[path[path.len() - 1]] = value;
            m.to_string()
        };
        for (path, value, says) in [
            (&["name"][..], Value::from(""), "name is empty"),
            (&["name"], Value::from("a\nb"), "name contains"),
            (&["name"], Value::from("x".repeat(129)), "longer than 128"),
            (
                &["business_license_no"],
                Value::from("9133-0100"),
                "business_license_no contains",
            ),
            (
                &["tax_registration_no"],
                Value::from("税号"),
                "tax_registration_no contains",
            ),
            (
                &["legal_person", "id_number"],
                Value::from(""),
                "legal_person.id_number is empty",
            ),
            (&["legal_person", "name"], Value::from(7), "invalid type"),
            (
                &["contact", "phone"],
                Value::from("call me"),
                "contact.phone contains",
            ),
            (&["contact", "email"], Value::from("nobody"), "not an email"),
            (
                &["industry_code"],
                Value::from("B0001;drop"),
                "industry_code contains",
            ),
            (&["contact"], Value::Null, "invalid type"),
        ] {
            let message = invalid(zft_create("act_1", &with(path, value)));
            assert!(message.contains(says), "{path:?}: {message}");
        }
        assert!(invalid(zft_create("act_1", "not json")).contains("materials"));
        assert!(invalid(zft_create("act_1", "[]")).contains("materials"));
        assert!(invalid(zft_create("act_1", r#"{"name":"x"}"#)).contains("missing field"));
        assert!(invalid(zft_create("", MATERIALS)).contains("activation_id"));
        assert!(invalid(zft_create(&"a".repeat(65), MATERIALS)).contains("activation_id"));
    }

    #[test]
    fn create_answers() {
        let ok = interpret_create(&reply(
            r#"{"code":"10000","msg":"Success","order_id":"2017112200502000000004754299"}"#,
        ))
        .unwrap();
        assert_eq!(ok.status, OnboardingStatus::Submitted);
        assert_eq!(
            ok.provider_reference.as_deref(),
            Some("2017112200502000000004754299")
        );
        assert_eq!(ok.rejection_reason, None);

        // Refused as submitted: rejected, with Alipay's words, so the merchant can fix it.
        let no = interpret_create(&reply(r#"{"code":"40004","msg":"Business Failed","sub_code":"INVALID_CERT_NO","sub_msg":"证件号码不合法"}"#)).unwrap();
        assert_eq!(no.status, OnboardingStatus::Rejected);
        assert_eq!(no.provider_reference, None);
        assert_eq!(
            no.rejection_reason.as_deref(),
            Some("INVALID_CERT_NO: 证件号码不合法")
        );

        for unclear in [
            r#"{"code":"10000"}"#,
            r#"{"code":"10000","order_id":"../../etc"}"#,
            r#"{"code":"10000","order_id":"1 2"}"#,
            r#"{"code":"20000","sub_code":"isp.unknow-error"}"#,
            r#"{"code":"40004","sub_code":"isp.unknow-error"}"#,
            r#"{"code":"40004","sub_code":"ACQ.SYSTEM_ERROR"}"#,
            r#"{"code":"10003"}"#,
            r#"{"code":"50000"}"#,
        ] {
            unknown(interpret_create(&reply(unclear)));
        }
        unknown(interpret_create(&reply(&format!(
            r#"{{"code":"10000","order_id":"{}"}}"#,
            "9".repeat(65)
        ))));
        assert!(matches!(
            interpret_create(&reply(r#"{"code":"10000","order_id":12}"#)),
            Err(ProviderError::UnknownOutcome(m)) if m.contains("should be a string")
        ));
        for refused in ["20001", "40001", "40002", "40006"] {
            invalid(interpret_create(&reply(&format!(
                r#"{{"code":"{refused}"}}"#
            ))));
        }
        // Hostile reasons are cleaned and cut.
        let long = format!(
            r#"{{"code":"40004","sub_code":"X","sub_msg":"a\nb{}"}}"#,
            "好".repeat(1000)
        );
        let reason = interpret_create(&reply(&long))
            .unwrap()
            .rejection_reason
            .unwrap();
        assert!(reason.starts_with("X: a b"));
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS);
    }

    fn query(orders: &str) -> Result<OnboardingResult, ProviderError> {
        interpret_order_query(
            &reply(&format!(
                r#"{{"code":"10000","msg":"Success","orders":{orders}}}"#
            )),
            "act_1",
        )
    }

    #[test]
    fn application_statuses() {
        let review = query(r#"[{"order_id":"2001","external_id":"act_1","status":"031","apply_type":"ZHIFUTONG_CREATE","fk_audit":"PASS","kz_audit":"CREATE"}]"#).unwrap();
        assert_eq!(review.status, OnboardingStatus::UnderReview);
        assert_eq!(review.provider_reference.as_deref(), Some("2001"));

        let active = query(r#"[{"order_id":"2001","external_id":"act_1","status":"99","smid":"2088000000000001","sub_confirm":"FINISH"}]"#).unwrap();
        assert_eq!(active.status, OnboardingStatus::Active);
        assert_eq!(
            active.provider_reference.as_deref(),
            Some("2088000000000001")
        );
        assert_eq!(active.rejection_reason, None);

        let rejected = query(r#"[{"order_id":"2001","status":"-1","reason":"营业执照不清晰","kz_audit":"REJECT","kz_audit_memo":"ignored when reason is given"}]"#).unwrap();
        assert_eq!(rejected.status, OnboardingStatus::Rejected);
        assert_eq!(rejected.provider_reference.as_deref(), Some("2001"));
        assert_eq!(rejected.rejection_reason.as_deref(), Some("营业执照不清晰"));

        // Without a reason, the review remarks; without those, a plain statement.
        let memos = query(r#"[{"status":"-1","fk_audit_memo":"风险","kz_audit_memo":"资料不全"}]"#)
            .unwrap();
        assert_eq!(memos.rejection_reason.as_deref(), Some("风险; 资料不全"));
        let bare = query(r#"[{"status":"-1"}]"#).unwrap();
        assert!(bare.rejection_reason.unwrap().contains("no reason"));
    }

    #[test]
    fn several_orders_resolve_to_one_state() {
        // A resubmission under review after a rejection: under review.
        let again = query(
            r#"[{"order_id":"1","status":"-1","reason":"old"},{"order_id":"2","status":"031"}]"#,
        )
        .unwrap();
        assert_eq!(again.status, OnboardingStatus::UnderReview);
        assert_eq!(again.provider_reference.as_deref(), Some("2"));
        // Done wins, whatever else is listed.
        let done = query(r#"[{"order_id":"1","status":"-1"},{"order_id":"2","status":"99","smid":"2088"},{"order_id":"3","status":"weird"}]"#).unwrap();
        assert_eq!(done.status, OnboardingStatus::Active);
        // Two rejections: the latest one's reason (by apply_time, then position).
        let by_time = query(r#"[{"order_id":"2","status":"-1","reason":"second","apply_time":"2024-02-01 00:00:00"},{"order_id":"1","status":"-1","reason":"first","apply_time":"2024-01-01 00:00:00"}]"#).unwrap();
        assert_eq!(by_time.rejection_reason.as_deref(), Some("second"));
        let by_position = query(r#"[{"order_id":"1","status":"-1","reason":"first"},{"order_id":"2","status":"-1","reason":"second"}]"#).unwrap();
        assert_eq!(by_position.provider_reference.as_deref(), Some("2"));
        // Other kinds of orders (settlement changes) are not the application.
        let modify = query(r#"[{"order_id":"1","status":"031"},{"order_id":"2","status":"-1","apply_type":"ZHIFUTONG_MODIFY"}]"#).unwrap();
        assert_eq!(modify.status, OnboardingStatus::UnderReview);
        let only_modify = query(
            r#"[{"order_id":"2","status":"99","smid":"2088","apply_type":"ZHIFUTONG_MODIFY"}]"#,
        );
        assert!(unavailable(only_modify).contains("no application"));
    }

    #[test]
    fn unusable_order_answers_are_unavailable() {
        for (orders, says) in [
            ("[]", "no application"),
            ("null", "no application"),
            (r#"{"status":"99"}"#, "should be an array"),
            (r#"["99"]"#, "should be an object"),
            (r#"[{"order_id":"1"}]"#, "no status"),
            (r#"[{"status":99}]"#, "should be a string"),
            (r#"[{"status":"99"}]"#, "without its smid"),
            (r#"[{"status":"99","smid":"2088 0001"}]"#, "smid contains"),
            (
                r#"[{"status":"031","order_id":"<script>"}]"#,
                "order_id contains",
            ),
            (r#"[{"status":"030"}]"#, "unknown application status"),
            (
                r#"[{"status":"031","external_id":"act_2"}]"#,
                "not \"act_1\"",
            ),
            (r#"[{"status":"-1","reason":["x"]}]"#, "should be a string"),
        ] {
            let message = unavailable(query(orders));
            assert!(message.contains(says), "{orders}: {message}");
        }
        let missing = interpret_order_query(&reply(r#"{"code":"10000"}"#), "act_1");
        assert!(unavailable(missing).contains("no application"));
        for other in [
            r#"{"code":"40004","sub_code":"ORDER_NOT_EXIST"}"#,
            r#"{"code":"20000"}"#,
            r#"{"code":"40002","sub_code":"isv.invalid-signature"}"#,
            r#"{"code":"10003"}"#,
        ] {
            unavailable(interpret_order_query(&reply(other), "act_1"));
        }
    }

    #[test]
    fn bank_accounts_become_settlement_cards() {
        let biz =
            settlement_modify(&settings(Some(" 2088000000000001 ")), &bank_account()).unwrap();
        assert_eq!(
            serde_json::to_string(&biz).unwrap(),
            concat!(
                r#"{"out_biz_no":"ba_01J","smid":"2088000000000001","biz_cards":{"#,
                r#""account_holder_name":"杭州示例科技有限公司","account_no":"6222021234567890","#,
                r#""account_inst_name":"中国工商银行","account_branch_name":"杭州西湖支行","#,
                r#""account_type":"DC","usage_type":"01"}}"#
            )
        );
        let mut lean = bank_account();
        lean.branch = Some("  ".into());
        let biz = settlement_modify(&settings(None), &lean).unwrap();
        let json = serde_json::to_value(&biz).unwrap();
        assert!(json.get("smid").is_none());
        assert!(json["biz_cards"].get("account_branch_name").is_none());

        let refused = |change: fn(&mut BindingRequest)| {
            let mut request = bank_account();
            change(&mut request);
            invalid(settlement_modify(&settings(None), &request))
        };
        assert!(
            refused(|r| r.account_number = "6222-0212".into()).contains("account_number contains")
        );
        assert!(refused(|r| r.account_number = "12345".into()).contains("shorter than 6"));
        assert!(refused(|r| r.account_number = "1".repeat(33)).contains("longer than 32"));
        assert!(
            refused(|r| r.account_number = "１２３４５６７".into())
                .contains("account_number contains")
        );
        assert!(refused(|r| r.account_holder = " ".into()).contains("account_holder is empty"));
        assert!(refused(|r| r.bank_name = "Bank\u{0}".into()).contains("bank_name contains"));
        assert!(refused(|r| r.bank_account_id = String::new()).contains("bank_account_id"));
        assert!(
            invalid(settlement_modify(
                &settings(Some("2088/../")),
                &bank_account()
            ))
            .contains("sub_merchant_id")
        );
    }

    #[test]
    fn settlement_answers() {
        let pending = interpret_settlement(&reply(concat!(
            r#"{"code":"10000","msg":"Success","order_id":"2024000301","verify_type":"REMITTANCE","#,
            r#""verify_amount":"0.37","verify_payee_account_no":"6217000000000000001","#,
            r#""verify_payee_account_name":"paygate-sim 验证户","verify_memo":"PGV123456"}"#
        )))
        .unwrap();
        assert_eq!(pending.status, BindingStatus::PendingVerification);
        assert_eq!(pending.provider_reference.as_deref(), Some("2024000301"));
        assert_eq!(pending.failure, None);
        assert_eq!(
            pending.verification_json.as_deref(),
            Some(
                r#"{"type":"remittance","amount":"0.37","currency":"CNY","to_account":"6217000000000000001","to_account_name":"paygate-sim 验证户","memo":"PGV123456"}"#
            )
        );
        // Real Alipay reviews settlement changes without a remittance: no step.
        let plain =
            interpret_settlement(&reply(r#"{"code":"10000","order_id":"2024000301"}"#)).unwrap();
        assert_eq!(plain.status, BindingStatus::PendingVerification);
        assert_eq!(plain.verification_json, None);

        let failed = interpret_settlement(&reply(r#"{"code":"40004","msg":"Business Failed","sub_code":"SUB_MERCHANT_NOT_ACTIVE","sub_msg":"二级商户未进件完成"}"#)).unwrap();
        assert_eq!(failed.status, BindingStatus::Failed);
        assert_eq!(
            failed.failure.as_deref(),
            Some("SUB_MERCHANT_NOT_ACTIVE: 二级商户未进件完成")
        );

        for unclear in [
            r#"{"code":"10000"}"#,
            r#"{"code":"10000","order_id":"1","verify_type":"MICRO_DEPOSIT"}"#,
            r#"{"code":"10000","order_id":"1","verify_type":"REMITTANCE"}"#,
            r#"{"code":"10000","order_id":"1","verify_type":"REMITTANCE","verify_amount":"0.37"}"#,
            r#"{"code":"10000","order_id":"1","verify_type":"REMITTANCE","verify_amount":"500.00","verify_payee_account_no":"1"}"#,
            r#"{"code":"10000","order_id":"1","verify_type":"REMITTANCE","verify_amount":"0.00","verify_payee_account_no":"1"}"#,
            r#"{"code":"10000","order_id":"1","verify_type":"REMITTANCE","verify_amount":"0.370","verify_payee_account_no":"1"}"#,
            r#"{"code":"10000","order_id":"1","verify_type":"REMITTANCE","verify_amount":"-0.37","verify_payee_account_no":"1"}"#,
            r#"{"code":"10000","order_id":"1","verify_type":"REMITTANCE","verify_amount":".37","verify_payee_account_no":"1"}"#,
            r#"{"code":"10000","order_id":"1","verify_type":"REMITTANCE","verify_amount":0.37,"verify_payee_account_no":"1"}"#,
            r#"{"code":"10000","order_id":"1","verify_type":"REMITTANCE","verify_amount":"0.37","verify_payee_account_no":"javascript:x"}"#,
            r#"{"code":"10000","order_id":"1","verify_type":"REMITTANCE","verify_amount":"0.37","verify_payee_account_no":"1","verify_memo":"a\u0007b"}"#,
            r#"{"code":"40004","sub_code":"SYSTEM_ERROR"}"#,
            r#"{"code":"20000"}"#,
        ] {
            unknown(interpret_settlement(&reply(unclear)));
        }
        let one_yuan = interpret_settlement(&reply(r#"{"code":"10000","order_id":"1","verify_type":"REMITTANCE","verify_amount":"1.00","verify_payee_account_no":"1"}"#)).unwrap();
        assert_eq!(
            one_yuan.verification_json.as_deref(),
            Some(r#"{"type":"remittance","amount":"1.00","currency":"CNY","to_account":"1"}"#)
        );
        invalid(interpret_settlement(&reply(
            r#"{"code":"40006","sub_code":"isv.insufficient-isv-permissions"}"#,
        )));
    }

    fn binding_query(answer: &str) -> Result<BindingResult, ProviderError> {
        interpret_binding_query(&reply(answer), "ba_1", Some("2024000301"))
    }

    #[test]
    fn binding_statuses() {
        let q = order_query("ba_1", Some("2024000301")).unwrap();
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            r#"{"order_id":"2024000301","out_biz_no":"ba_1"}"#
        );
        let q = order_query("ba_1", Some("not an id")).unwrap();
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            r#"{"out_biz_no":"ba_1"}"#
        );
        assert!(order_query("", None).is_err());

        let pending = binding_query(r#"{"code":"10000","order_id":"2024000301","out_biz_no":"ba_1","status":"031","apply_type":"ZHIFUTONG_MODIFY","verify_type":"REMITTANCE","verify_amount":"0.05","verify_payee_account_no":"6217"}"#).unwrap();
        assert_eq!(pending.status, BindingStatus::PendingVerification);
        assert!(
            pending
                .verification_json
                .unwrap()
                .contains(r#""amount":"0.05""#)
        );

        let verified = binding_query(r#"{"code":"10000","status":"99"}"#).unwrap();
        assert_eq!(verified.status, BindingStatus::Verified);
        assert_eq!(verified.provider_reference.as_deref(), Some("2024000301"));
        assert_eq!(verified.verification_json, None);

        let failed = binding_query(
            r#"{"code":"10000","order_id":"2024000302","status":"-1","reason":"打款未收到"}"#,
        )
        .unwrap();
        assert_eq!(failed.status, BindingStatus::Failed);
        assert_eq!(failed.provider_reference.as_deref(), Some("2024000302"));
        assert_eq!(failed.failure.as_deref(), Some("打款未收到"));
        let bare = binding_query(r#"{"code":"10000","status":"-1"}"#).unwrap();
        assert!(bare.failure.unwrap().contains("not verified"));
    }

    #[test]
    fn unusable_binding_answers_are_unavailable() {
        for (answer, says) in [
            (r#"{"code":"10000"}"#, "no status"),
            (r#"{"code":"10000","status":"00"}"#, "unknown order status"),
            (r#"{"code":"10000","status":-1}"#, "should be a string"),
            (
                r#"{"code":"10000","status":"99","out_biz_no":"ba_2"}"#,
                "not \"ba_1\"",
            ),
            (
                r#"{"code":"10000","status":"99","apply_type":"ZHIFUTONG_CREATE"}"#,
                "not a settlement change",
            ),
            (
                r#"{"code":"10000","status":"99","order_id":"a b"}"#,
                "order_id contains",
            ),
            (
                r#"{"code":"10000","status":"031","verify_type":"REMITTANCE","verify_amount":"99.00","verify_payee_account_no":"1"}"#,
                "outside",
            ),
            (
                r#"{"code":"40004","sub_code":"ORDER_NOT_EXIST"}"#,
                "ORDER_NOT_EXIST",
            ),
            (
                r#"{"code":"40002","sub_code":"isv.invalid-signature"}"#,
                "40002",
            ),
            (r#"{"code":"20000"}"#, "20000"),
        ] {
            let message = unavailable(binding_query(answer));
            assert!(message.contains(says), "{answer}: {message}");
        }
    }

    #[test]
    fn system_errors_are_recognised() {
        for code in [
            "SYSTEM_ERROR",
            "ACQ.SYSTEM_ERROR",
            "AQC.SYSTEM_ERROR",
            "isp.unknow-error",
            "UNKNOWN_ERROR",
        ] {
            assert!(is_system_error(Some(code)), "{code}");
        }
        for code in ["INVALID_PARAMETER", "isv.invalid-parameter", ""] {
            assert!(!is_system_error(Some(code)), "{code}");
        }
        assert!(!is_system_error(None));
    }
}
