//! The payment and refund use cases: validate, record durably, call the provider's plugin,
//! record its answer durably, answer. Brandur's recovery points: the payment (with the
//! idempotency claim) is on disk before the provider hears of it, and the provider-side
//! reference is our own id, so a retry after a crash asks the provider about the same
//! charge instead of making another.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::ApiKey;
use crate::clock::Clock;
use crate::domain::events::EventKind;
use crate::domain::ids::new_id;
pub use crate::domain::method::Method;
use crate::domain::money::Money;
use crate::domain::records::{EventRecord, Failure, PaymentRecord, ProviderStep, RefundRecord};
use crate::domain::state::{Observed, PaymentStatus, RefundStatus, Transition};
use crate::idempotency::{self, ClaimError, Conflict};
pub use crate::idempotency::{Answer, InFlight};
use crate::merchants::{Merchant, MerchantDirectory, MerchantSource};
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::plugins::Providers;
use crate::plugins::types as wit;
use crate::plugins::{CallError, PluginFault};
use crate::store::{Begin, Claim, Fence, PaymentStore, StoreError};

/// The payments use cases and what they work with: nothing else of the daemon.
pub struct Payments {
    pub store: Arc<dyn PaymentStore>,
    pub plugins: Arc<dyn Providers>,
    pub merchants: Arc<MerchantDirectory>,
    pub monitor: Arc<Monitor>,
    pub metrics: Arc<Metrics>,
    /// Idempotency keys this process is working on (API.md §4: 409 while in progress).
    pub in_flight: InFlight,
    pub settings: PaymentSettings,
    pub clock: Arc<dyn Clock>,
}

/// `[payments]` as the use cases read it.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// How long a qr payment waits for its payer unless the request says otherwise.
    pub qr_expires_in_s: u32,
    /// How long a link payment waits for its payer unless the request says otherwise.
    pub link_expires_in_s: u32,
    /// The daemon's public base URL (no trailing slash): payment links, notify URLs.
    pub public_url: String,
    /// The largest amount of one payment, per currency code, and for the others.
    pub amount_max: BTreeMap<String, rust_decimal::Decimal>,
    pub amount_max_default: rust_decimal::Decimal,
}

impl PaymentSettings {
    /// The largest amount one payment in `currency` may have.
    pub fn amount_max(&self, currency: &str) -> rust_decimal::Decimal {
        self.amount_max
            .get(currency)
            .copied()
            .unwrap_or(self.amount_max_default)
    }
}

/// How the provider is asked to collect: a link payment's page shows the provider's QR
/// code, so at the provider it is a qr payment.
fn provider_method(method: Method) -> wit::Method {
    match method {
        Method::Qr | Method::Link => wit::Method::Qr,
        Method::Barcode => wit::Method::Barcode,
        Method::WalletToken => wit::Method::WalletToken,
    }
}

/// A validated request for a new payment.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub merchant_id: String,
    /// The merchant, as [`collecting_merchant`] found it.
    pub merchant: Arc<Merchant>,
    pub amount: Money,
    pub method: Method,
    pub provider: Option<String>,
    pub auth_code: Option<String>,
    pub order_id: Option<String>,
    pub description: Option<String>,
    pub terminal_id: Option<String>,
    pub expires_in_seconds: Option<u32>,
    pub metadata: BTreeMap<String, String>,
    /// (Wallet-token payments) the token as the payer's device made it, as JSON text. Passed
    /// to the plugin, never stored.
    pub wallet_token: Option<String>,
}

/// A validated request for a refund.
#[derive(Debug, Clone)]
pub struct NewRefund {
    pub payment_id: String,
    /// `None`: the whole remaining amount.
    pub amount: Option<Money>,
    pub reason: Option<String>,
}

/// Why a payment or refund request did not produce the object the client wanted. The API
/// maps each to its status and code in one place (`api/error.rs`).
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Idempotency(#[from] Conflict),
    #[error("order_id {order_id} is already used by payment {payment_id}")]
    OrderIdInUse {
        order_id: String,
        payment_id: String,
    },
    #[error("{0}")]
    WalletNotSupported(String),
    /// A wallet token that cannot be charged (it does not verify, is too old, or approves
    /// another amount): final, nothing was recorded or charged.
    #[error("the wallet token cannot be charged: {message}")]
    WalletToken { code: String, message: String },
    #[error("this wallet token was already charged by payment {payment_id}")]
    WalletTokenUsed { payment_id: String },
    #[error("{message}")]
    Invalid {
        param: &'static str,
        message: String,
    },
    #[error("no such {kind}: {id}")]
    NotFound { kind: &'static str, id: String },
    /// An onboarded merchant whose activation at the wallet (or at any) is not approved.
    #[error(
        "merchant {merchant_id} is not active at {}; its activation must be approved first",
        provider.as_deref().unwrap_or("any wallet")
    )]
    MerchantNotActive {
        merchant_id: String,
        provider: Option<String>,
    },
    /// The anomaly monitor blocks payments from this terminal or API key for now.
    #[error("blocked by the anomaly monitor (rule {})", .0.rule)]
    Blocked(Box<crate::domain::records::BlockRecord>),
    #[error("payment {0} has already succeeded; refund it instead")]
    AlreadySucceeded(String),
    #[error("payment {id} is {status} and cannot be {action}")]
    WrongState {
        id: String,
        status: &'static str,
        action: &'static str,
    },
    #[error("refund of {requested} exceeds what remains refundable ({refundable})")]
    RefundExceedsPayment {
        requested: String,
        refundable: String,
    },
    /// The provider declined: final. Carries the failed payment for `error.payment`.
    #[error("the payment was declined: {message}")]
    Declined {
        code: String,
        message: String,
        payment: Box<PaymentRecord>,
    },
    #[error("the refund was declined: {message}")]
    RefundDeclined { code: String, message: String },
    #[error("the provider refused the request as invalid: {0}")]
    ProviderRejected(String),
    #[error(
        "the provider is unavailable ({0}); nothing was charged: retry with the same Idempotency-Key"
    )]
    ProviderUnavailable(String),
    #[error(
        "the provider did not confirm the outcome ({0}); retry with the same Idempotency-Key to learn it"
    )]
    OutcomeUnknown(String),
    #[error(transparent)]
    Plugin(PluginFault),
    #[error("all plugin instances are busy; retry with the same Idempotency-Key")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Renders the response for a finished payment (or refund), so that the idempotency record
/// stores exactly what the client is sent. Given the record and, for failures, the error.
pub type RenderPayment<'a> =
    &'a (dyn Fn(&PaymentRecord, Option<&PaymentError>) -> (u16, String) + Sync);
pub type RenderRefund<'a> =
    &'a (dyn Fn(&RefundRecord, Option<&PaymentError>) -> (u16, String) + Sync);

fn event(at_ms: i64, kind: EventKind, object_id: &str, data: serde_json::Value) -> EventRecord {
    EventRecord {
        id: new_id("evt"),
        kind,
        created_at_ms: at_ms,
        object_id: object_id.to_owned(),
        data,
        object_version: 0,
        object: None,
    }
}

/// The merchant's providers that are loaded and able to take `method` in `currency`.
fn usable_providers(
    svc: &Payments,
    merchant: &Merchant,
) -> Vec<(String, std::sync::Arc<wit::ProviderInfo>)> {
    merchant
        .providers
        .keys()
        .filter_map(|name| svc.plugins.provider(name).map(|info| (name.clone(), info)))
        .collect()
}

fn code_matches(code: &str, pattern: &wit::CodePattern) -> bool {
    let length_ok =
        (usize::from(pattern.min_length)..=usize::from(pattern.max_length)).contains(&code.len());
    length_ok
        && code.bytes().all(|b| b.is_ascii_digit())
        && pattern
            .prefixes
            .iter()
            .any(|p| code.starts_with(p.as_str()))
}

/// The merchant a new payment is for, if it may collect (through `provider`, when named):
/// it exists, and an onboarded one collects only where its activation is active (API.md §8).
pub fn collecting_merchant(
    svc: &Payments,
    merchant_id: &str,
    provider: Option<&str>,
) -> Result<Arc<Merchant>, PaymentError> {
    let merchant = svc
        .merchants
        .get(merchant_id)
        .ok_or_else(|| PaymentError::NotFound {
            kind: "merchant",
            id: merchant_id.to_owned(),
        })?;
    if merchant.source == MerchantSource::Api {
        let inactive = match provider {
            Some(provider) => !merchant.providers.contains_key(provider),
            None => merchant.providers.is_empty(),
        };
        if inactive {
            return Err(PaymentError::MerchantNotActive {
                merchant_id: merchant.id.clone(),
                provider: provider.map(str::to_owned),
            });
        }
    }
    Ok(merchant)
}

/// Picks the provider of a new payment (API.md §5).
fn choose_provider(svc: &Payments, new: &NewPayment) -> Result<String, PaymentError> {
    let usable = usable_providers(svc, &new.merchant);
    let names: Vec<&str> = usable.iter().map(|(n, _)| n.as_str()).collect();
    let not_supported = |why: String| {
        PaymentError::WalletNotSupported(format!(
            "{why}; merchant {} accepts: [{}]",
            new.merchant_id,
            names.join(", ")
        ))
    };
    let chosen = match (&new.provider, new.method) {
        (Some(provider), _) => usable.iter().find(|(n, _)| n == provider).ok_or_else(|| {
            not_supported(format!(
                "wallet \"{provider}\" is not active for this merchant"
            ))
        })?,
        (None, Method::Barcode) => {
            let code = new.auth_code.as_deref().unwrap_or("");
            usable
                .iter()
                .find(|(_, info)| info.payment_codes.iter().any(|p| code_matches(code, p)))
                .ok_or_else(|| not_supported("no wallet recognises this payment code".into()))?
        }
        // The payer picks on the cashier page; some wallet must be able to take it.
        (None, Method::Link) => {
            let currency = new.amount.currency().code();
            if !usable.iter().any(|(_, info)| {
                info.methods.contains(&wit::Method::Qr)
                    && info.currencies.iter().any(|c| c == currency)
            }) {
                return Err(not_supported(format!(
                    "no wallet of this merchant takes qr payments in {currency}"
                )));
            }
            return Ok(String::new());
        }
        (None, _) => {
            return Err(PaymentError::Invalid {
                param: "provider",
                message: format!(
                    "provider is required for {} payments; merchant {} accepts: [{}]",
                    new.method.as_str(),
                    new.merchant_id,
                    names.join(", ")
                ),
            });
        }
    };
    let (name, info) = chosen;
    if !info.methods.contains(&provider_method(new.method)) {
        return Err(not_supported(format!(
            "wallet \"{name}\" does not take {} payments",
            new.method.as_str()
        )));
    }
    if !info
        .currencies
        .iter()
        .any(|c| c == new.amount.currency().code())
    {
        return Err(not_supported(format!(
            "wallet \"{name}\" does not take {}",
            new.amount.currency()
        )));
    }
    if new.method == Method::Barcode
        && !info
            .payment_codes
            .iter()
            .any(|p| code_matches(new.auth_code.as_deref().unwrap_or(""), p))
    {
        return Err(not_supported(format!(
            "wallet \"{name}\" does not recognise this payment code"
        )));
    }
    Ok(name.clone())
}

/// The plugin's `merchant` record for a call.
pub(crate) fn merchant_for(
    svc: &Payments,
    provider: &str,
    merchant_id: &str,
) -> Result<wit::Merchant, PaymentError> {
    let merchant = svc.merchants.get(merchant_id);
    let settings = merchant
        .as_ref()
        .and_then(|m| m.providers.get(provider).cloned())
        .or_else(|| {
            // An onboarded merchant not yet active there (its application's notices): the
            // platform's account speaks for it.
            merchant
                .as_ref()
                .filter(|m| m.source == crate::merchants::MerchantSource::Api)
                .and(svc.merchants.platform())
                .and_then(|p| p.providers.get(provider).cloned())
        })
        .unwrap_or_default();
    // An onboarded merchant collects with the platform's keys.
    let keys_of = merchant
        .as_ref()
        .map_or(merchant_id, |m| m.keys_of.as_str());
    let notify_url = format!(
        "{}/v1/notify/{provider}/{merchant_id}",
        svc.settings.public_url
    );
    svc.plugins
        .merchant_record(provider, keys_of, &settings, notify_url)
        .map_err(call_error)
}

fn call_error(error: CallError) -> PaymentError {
    match error {
        CallError::Fault(fault) => PaymentError::Plugin(fault),
        CallError::Busy => PaymentError::Busy,
        CallError::NoSuchProvider(p) => {
            PaymentError::WalletNotSupported(format!("no loaded plugin serves wallet \"{p}\""))
        }
        CallError::Unsupported {
            provider,
            operation,
        } => PaymentError::WalletNotSupported(format!(
            "wallet \"{provider}\" does not support {operation}"
        )),
    }
}

/// What the gateway keeps of a card a provider reports: its network and last four digits,
/// each cut to a sane length (a plugin's answer is not trusted to be short).
fn card_summary(card: &wit::Card) -> crate::domain::records::CardSummary {
    crate::domain::records::CardSummary {
        network: card.network.chars().take(16).collect(),
        last_four: card.last_four.chars().take(4).collect(),
    }
}

fn money_of(minor: i64, currency: &str) -> wit::Money {
    let exponent = crate::domain::money::Currency::from_code(currency).map_or(2, |c| c.exponent());
    wit::Money {
        minor,
        currency: currency.to_owned(),
        exponent,
    }
}

pub(crate) fn payment_ref(
    svc: &Payments,
    payment: &PaymentRecord,
) -> Result<wit::PaymentRef, PaymentError> {
    Ok(wit::PaymentRef {
        payment_id: payment.id.clone(),
        provider: payment.provider.clone(),
        merchant: merchant_for(svc, &payment.provider, &payment.merchant_id)?,
        amount: money_of(payment.amount_minor, &payment.currency),
        provider_reference: payment.provider_reference.clone(),
    })
}

pub(crate) fn refund_ref(
    svc: &Payments,
    refund: &RefundRecord,
    payment: &PaymentRecord,
) -> Result<wit::RefundRef, PaymentError> {
    Ok(wit::RefundRef {
        refund_id: refund.id.clone(),
        payment: payment_ref(svc, payment)?,
        amount: money_of(refund.amount_minor, &refund.currency),
        provider_reference: refund.provider_reference.clone(),
    })
}

pub(crate) fn status_of(status: wit::PaymentStatus) -> PaymentStatus {
    match status {
        wit::PaymentStatus::Pending => PaymentStatus::Pending,
        wit::PaymentStatus::Succeeded => PaymentStatus::Succeeded,
        wit::PaymentStatus::Failed => PaymentStatus::Failed,
        wit::PaymentStatus::Cancelled => PaymentStatus::Cancelled,
        wit::PaymentStatus::Expired => PaymentStatus::Expired,
    }
}

/// What a provider said about a payment, ready to apply.
enum Reported {
    /// The provider's view of the payment.
    Result(wit::PaymentResult),
    /// A final refusal.
    Declined(wit::Declined),
    Rejected(String),
    Unavailable(String),
    Unknown(String),
    Fault(PluginFault),
    Busy,
}

fn reported(result: Result<Result<wit::PaymentResult, wit::ProviderError>, CallError>) -> Reported {
    match result {
        Ok(Ok(r)) => Reported::Result(r),
        Ok(Err(wit::ProviderError::Declined(d))) => Reported::Declined(d),
        Ok(Err(wit::ProviderError::InvalidRequest(m))) => Reported::Rejected(m),
        Ok(Err(wit::ProviderError::Unavailable(m))) => Reported::Unavailable(m),
        Ok(Err(wit::ProviderError::UnknownOutcome(m))) => Reported::Unknown(m),
        Err(CallError::Fault(f)) => Reported::Fault(f),
        Err(CallError::Busy) => Reported::Busy,
        Err(other) => Reported::Rejected(other.to_string()),
    }
}

/// Applies a provider's report to a payment (in a transaction). Returns the payment, or
/// the error to answer without finishing the idempotency key (the outcome is not known yet:
/// a retry with the same key resumes, and the janitor keeps asking).
async fn record_report(
    svc: &Payments,
    fence: Fence<'_>,
    payment_id: &str,
    report: Reported,
    answering: Option<Answering<'_>>,
) -> Result<(PaymentRecord, Option<Answer>), PaymentError> {
    let (new_status, result, failure, step, resumable_error) = match report {
        Reported::Result(r) => {
            let failure = r.failure.as_ref().map(|d| Failure {
                code: d.code.clone(),
                message: d.message.clone(),
            });
            (
                Some(status_of(r.status)),
                Some(r),
                failure,
                ProviderStep::Answered,
                None,
            )
        }
        Reported::Declined(d) => (
            Some(PaymentStatus::Failed),
            None,
            Some(Failure {
                code: d.code,
                message: d.message,
            }),
            ProviderStep::Answered,
            None,
        ),
        Reported::Rejected(m) => (
            Some(PaymentStatus::Failed),
            None,
            Some(Failure {
                code: "provider_rejected_request".into(),
                message: m,
            }),
            ProviderStep::Answered,
            None,
        ),
        Reported::Unavailable(m) => (
            None,
            None,
            None,
            ProviderStep::NotSent,
            Some(PaymentError::ProviderUnavailable(m)),
        ),
        Reported::Unknown(m) => (
            None,
            None,
            None,
            ProviderStep::OutcomeUnknown,
            Some(PaymentError::OutcomeUnknown(m)),
        ),
        Reported::Fault(f) => (
            None,
            None,
            None,
            ProviderStep::OutcomeUnknown,
            Some(PaymentError::Plugin(f)),
        ),
        Reported::Busy => (
            None,
            None,
            None,
            ProviderStep::NotSent,
            Some(PaymentError::Busy),
        ),
    };
    if let Some(error) = resumable_error {
        svc.store
            .update_payment(payment_id, fence, &|p| {
                p.provider_step = step;
                p.updated_at_ms = svc.clock.now_ms();
                Some(Vec::new())
            })
            .await?;
        return Err(error);
    }
    // An answer about another amount than ours is not believed: the payment stays where it
    // was, its outcome unknown, for the janitor to ask again (and a human to look).
    let mismatch = Decided::new(None);
    let change =
        |p: &mut PaymentRecord| {
            let mut events = Vec::new();
            p.updated_at_ms = svc.clock.now_ms();
            mismatch.set(result.as_ref().and_then(|r| {
                amount_mismatch(r.amount.as_ref(), false, p.amount_minor, &p.currency)
            }));
            if mismatch.read(Option::is_some) {
                p.provider_step = ProviderStep::OutcomeUnknown;
                return Some(events);
            }
            p.provider_step = step;
            if let Some(r) = &result {
                p.provider_reference = r.provider_reference.clone().or(p.provider_reference.take());
                p.qr_code = r.qr_code.clone().or(p.qr_code.take());
                p.payer = r.payer.clone().or(p.payer.take());
                p.card = r.card.as_ref().map(card_summary).or(p.card.take());
            }
            if let Some(to) = new_status {
                apply_payment_status(
                    p,
                    svc.clock.now_ms(),
                    to,
                    failure.clone(),
                    None,
                    &mut events,
                );
            }
            Some(events)
        };
    // The request's answer is written with its last change, unless the provider's answer
    // was not believed (the key stays unfinished: a retry resumes).
    let (updated, answered) = match answering {
        Some(Answering { claim, render }) => {
            let answer = |p: &PaymentRecord| {
                (!mismatch.read(Option::is_some)).then(|| answer_for(p, render))
            };
            match svc
                .store
                .update_payment_answering(payment_id, claim, &change, &answer, svc.clock.now_ms())
                .await?
            {
                Some((payment, answered)) => (Some(payment), answered),
                None => (None, None),
            }
        }
        None => (
            svc.store.update_payment(payment_id, fence, &change).await?,
            None,
        ),
    };
    let payment =
        updated.ok_or_else(|| StoreError::Corrupt(format!("payment {payment_id} vanished")))?;
    let answered = answered.map(|(status, body)| Answer {
        status,
        body,
        replayed: false,
    });
    if let Some(observed) = mismatch.into_inner() {
        report_refused(
            svc,
            &payment.provider,
            &payment.merchant_id,
            "payment",
            &payment.id,
            &observed,
        );
        return Err(PaymentError::OutcomeUnknown(refused_message(&observed)));
    }
    Ok((payment, answered))
}

/// A request that finishes its key with its last change: its key, and how its answer is
/// rendered.
#[derive(Clone, Copy)]
struct Answering<'a> {
    claim: &'a Claim,
    render: RenderPayment<'a>,
}

/// What a client is told when a provider's answer was not believed.
fn refused_message(observed: &Observed) -> String {
    match observed {
        Observed::AmountMismatch { ours, reported } => format!(
            "the provider reported {reported} for this {ours} request; nothing was recorded and an alert was raised"
        ),
        other => format!("the provider's answer was not believed ({other:?})"),
    }
}

/// Renders the answer for a payment whose outcome is recorded (a failed one answers as a
/// decline) and finishes the idempotency key with it.
async fn finish_answer(
    svc: &Payments,
    claim: &Claim,
    payment: &PaymentRecord,
    render: RenderPayment<'_>,
) -> Result<Answer, PaymentError> {
    let (status, body) = answer_for(payment, render);
    svc.store
        .finish_claim(claim, status, &body, svc.clock.now_ms())
        .await?;
    Ok(Answer {
        status,
        body,
        replayed: false,
    })
}

/// The answer for a payment whose outcome is recorded: a failed one answers as a decline.
fn answer_for(payment: &PaymentRecord, render: RenderPayment<'_>) -> (u16, String) {
    let error = (payment.status == PaymentStatus::Failed).then(|| {
        let failure = payment.failure.clone().unwrap_or(Failure {
            code: "provider_declined".into(),
            message: "declined".into(),
        });
        PaymentError::Declined {
            code: failure.code,
            message: failure.message,
            payment: Box::new(payment.clone()),
        }
    });
    render(payment, error.as_ref())
}

/// `POST /v1/payments`.
pub async fn create_payment(
    svc: &Payments,
    caller: &ApiKey,
    claim: Claim,
    new: NewPayment,
    render: RenderPayment<'_>,
) -> Result<Answer, PaymentError> {
    // The anomaly monitor's blocks: on the key (whatever the terminal), or on the terminal.
    if let Some(block) =
        svc.monitor
            .block_on(&new.merchant_id, new.terminal_id.as_deref(), &caller.id)
    {
        return Err(PaymentError::Blocked(Box::new(block)));
    }
    let Some(_guard) = svc.in_flight.enter(&claim) else {
        return Err(PaymentError::Idempotency(Conflict::InProgress));
    };
    let chosen = choose_provider(svc, &new)?;
    // A link payment's provider is the one its payer picks on the page.
    let (provider, link_wallet) = match new.method {
        Method::Link => (String::new(), Some(chosen).filter(|c| !c.is_empty())),
        _ => (chosen, None),
    };
    let payment_id = new_id("pay");
    // A wallet token is checked, and its id learnt, before anything is recorded: a key used
    // before answers from its record instead, whatever its token says today.
    let wallet_token_id = match new.method {
        Method::WalletToken if svc.store.known_claim(&claim).await?.is_none() => {
            Some(inspect_wallet_token(svc, &provider, &payment_id, &new).await?)
        }
        _ => None,
    };
    let now = svc.clock.now_ms();
    let record = PaymentRecord {
        id: payment_id,
        merchant_id: new.merchant_id.clone(),
        provider: provider.clone(),
        method: new.method,
        amount_minor: new.amount.minor(),
        currency: new.amount.currency().code().into(),
        status: PaymentStatus::Pending,
        order_id: new.order_id.clone(),
        description: new.description.clone(),
        terminal_id: new.terminal_id.clone(),
        auth_code: new.auth_code.clone(),
        provider_reference: None,
        qr_code: None,
        payer: None,
        failure: None,
        metadata: new.metadata.clone(),
        created_at_ms: now,
        updated_at_ms: now,
        succeeded_at_ms: None,
        expires_at_ms: match new.method {
            Method::Barcode | Method::WalletToken => None,
            Method::Qr => Some(
                new.expires_in_seconds
                    .unwrap_or(svc.settings.qr_expires_in_s),
            ),
            Method::Link => Some(
                new.expires_in_seconds
                    .unwrap_or(svc.settings.link_expires_in_s),
            ),
        }
        .map(|s| now + i64::from(s) * 1000),
        refund_reserved_minor: 0,
        refunded_minor: 0,
        provider_step: ProviderStep::NotSent,
        api_key_id: caller.id.clone(),
        payment_url: None,
        link_wallet,
        wallet_token_id,
        card: None,
        version: 0,
    };
    let record = PaymentRecord {
        payment_url: (new.method == Method::Link)
            .then(|| format!("{}/pay/{}", svc.settings.public_url, record.id)),
        ..record
    };
    let created = event(
        now,
        EventKind::PaymentCreated,
        &record.id,
        serde_json::json!({"status": "pending"}),
    );
    let begun = {
        let _turn = svc.store.write_turn().await;
        svc.store.begin_payment(&claim, &record, &created).await?
    };
    // A new payment is driven from the record just written (nothing else knows its id
    // yet); a resumed one is read again after the flush.
    let (payment_id, written) = match begun {
        Begin::Created => (record.id.clone(), Some(record)),
        Begin::Replay { status, body } => {
            return Ok(Answer::replayed(status, body));
        }
        Begin::KeyReused => return Err(PaymentError::Idempotency(Conflict::KeyReused)),
        Begin::OrderIdInUse { payment_id } => {
            return Err(PaymentError::OrderIdInUse {
                order_id: new.order_id.unwrap_or_default(),
                payment_id,
            });
        }
        Begin::WalletTokenUsed { payment_id } => {
            return Err(PaymentError::WalletTokenUsed { payment_id });
        }
        Begin::Resume { object_id } => (object_id, None),
        Begin::InProgress => return Err(PaymentError::Idempotency(Conflict::InProgress)),
        other => {
            return Err(StoreError::Corrupt(format!("unexpected claim outcome {other:?}")).into());
        }
    };
    let _lease = idempotency::keep_lease(&svc.store, &claim);
    // The recovery point: nothing reaches the provider before this is on disk.
    svc.store.durable().await?;
    let resumed = written.is_none();
    let payment = match written {
        Some(payment) => payment,
        None => match svc.store.payment(&payment_id).await? {
            Some(payment) => payment,
            // The key's request died unanswered, and its payment, final since (the janitor
            // finished it), has left for the archive: the answer is its final state.
            None => {
                let archived = svc
                    .store
                    .archived_payment(&payment_id)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("claimed payment {payment_id} is missing"))
                    })?;
                let answer = {
                    let _turn = svc.store.write_turn().await;
                    finish_answer(svc, &claim, &archived, render).await
                };
                svc.store.durable().await?;
                return settle_lease_lost(svc, &claim, answer).await;
            }
        },
    };
    // Only the request that recorded a wallet-token payment creates it at the provider: a
    // resumed one may have been charged before the crash, and its token may be too old by
    // now to be accepted again, so it is asked about, never created again.
    let wallet_token = if resumed {
        None
    } else {
        new.wallet_token.as_deref()
    };
    let answer = drive_payment(svc, payment, wallet_token, &claim, render).await;
    svc.store.durable().await?;
    settle_lease_lost(svc, &claim, answer).await
}

/// A request whose lease on its key another daemon took over (this one was paused past it)
/// answers what the key says now, never what it made itself: the other request's answer, or
/// 409 while that one works.
async fn settle_lease_lost(
    svc: &Payments,
    claim: &Claim,
    answer: Result<Answer, PaymentError>,
) -> Result<Answer, PaymentError> {
    match answer {
        Err(PaymentError::Store(StoreError::LeaseLost)) => {
            tracing::warn!(key = %claim.key, "another daemon took this request's key over");
            match idempotency::after_lease_lost(svc.store.as_ref(), claim).await {
                Ok(answer) => Ok(answer),
                Err(ClaimError::Conflict(conflict)) => Err(conflict.into()),
                Err(ClaimError::Store(e)) => Err(e.into()),
            }
        }
        other => other,
    }
}

/// Has the plugin verify a wallet token and tell its id and approved amount, and checks the
/// amount against the payment's. Nothing is recorded or charged on any error.
async fn inspect_wallet_token(
    svc: &Payments,
    provider: &str,
    payment_id: &str,
    new: &NewPayment,
) -> Result<String, PaymentError> {
    let request = wit::CreatePaymentRequest {
        payment_id: payment_id.to_owned(),
        provider: provider.to_owned(),
        merchant: merchant_for(svc, provider, &new.merchant_id)?,
        amount: money_of(new.amount.minor(), new.amount.currency().code()),
        method: wit::Method::WalletToken,
        auth_code: None,
        description: new.description.clone(),
        terminal_id: new.terminal_id.clone(),
        expires_in_seconds: None,
        wallet_token: new.wallet_token.clone(),
    };
    let asked = request.amount.clone();
    let facts = match svc.plugins.inspect_wallet_token(request).await {
        Ok(Ok(facts)) => facts,
        Ok(Err(wit::ProviderError::Declined(d))) => {
            return Err(PaymentError::WalletToken {
                code: d.code,
                message: d.message,
            });
        }
        Ok(Err(wit::ProviderError::InvalidRequest(m))) => {
            return Err(PaymentError::ProviderRejected(m));
        }
        // Inspecting changes nothing anywhere: whatever went wrong, nothing was charged.
        Ok(Err(wit::ProviderError::Unavailable(m) | wit::ProviderError::UnknownOutcome(m))) => {
            return Err(PaymentError::ProviderUnavailable(m));
        }
        Err(CallError::Fault(f)) => return Err(PaymentError::Plugin(f)),
        Err(CallError::Busy) => return Err(PaymentError::Busy),
        Err(other) => return Err(PaymentError::WalletNotSupported(other.to_string())),
    };
    let approved = &facts.amount;
    if (
        approved.minor,
        approved.currency.as_str(),
        approved.exponent,
    ) != (asked.minor, asked.currency.as_str(), asked.exponent)
    {
        return Err(PaymentError::WalletToken {
            code: "token_amount_mismatch".into(),
            message: format!(
                "the payer approved {} {} (minor units), the payment is for {} {}",
                approved.minor, approved.currency, asked.minor, asked.currency
            ),
        });
    }
    if facts.token_id.is_empty() || facts.token_id.len() > 128 {
        return Err(PaymentError::Plugin(PluginFault {
            plugin: provider.to_owned(),
            kind: crate::plugins::FaultKind::Contract,
            message: "a token id must be 1 to 128 characters".into(),
        }));
    }
    Ok(facts.token_id)
}

/// Asks the provider about (or for) a recorded payment, from its recovery point, and
/// finishes the idempotency key with the outcome.
async fn drive_payment(
    svc: &Payments,
    payment: PaymentRecord,
    wallet_token: Option<&str>,
    claim: &Claim,
    render: RenderPayment<'_>,
) -> Result<Answer, PaymentError> {
    // A link payment waits for the payer to pick a wallet on its page: nothing to ask yet.
    let (payment, answered) = if payment.method == Method::Link {
        (payment, None)
    } else {
        let answering = Answering { claim, render };
        advance(
            svc,
            Fence::Claim(claim),
            &payment,
            wallet_token,
            Some(answering),
        )
        .await?
    };
    let answer = match answered {
        Some(answer) => answer,
        None => {
            let _turn = svc.store.write_turn().await;
            finish_answer(svc, claim, &payment, render).await?
        }
    };
    // Counted from the record when the answer is made, not when it is replayed. A link
    // payment has no provider until its payer picks one.
    let provider = Some(payment.provider.as_str()).filter(|p| !p.is_empty());
    svc.metrics.count_payment(
        provider.unwrap_or("none"),
        payment.method.as_str(),
        payment.status.as_str(),
    );
    Ok(answer)
}

/// Takes a recorded payment one step further at its provider, from its recovery point:
/// creates it there if it was never sent, asks for the outcome if it may have been, and
/// records what the provider said. An answered payment is returned as it is. A
/// wallet-token payment is created only with its token, which only its request has: the
/// janitor never creates one (it queries, and cancels it after the barcode timeout).
pub(crate) async fn advance_payment(
    svc: &Payments,
    fence: Fence<'_>,
    payment: &PaymentRecord,
    wallet_token: Option<&str>,
) -> Result<PaymentRecord, PaymentError> {
    Ok(advance(svc, fence, payment, wallet_token, None).await?.0)
}

/// `advance_payment`; a request `answering` finishes its key with the change that records
/// the provider's answer, and gets that answer back.
async fn advance(
    svc: &Payments,
    fence: Fence<'_>,
    payment: &PaymentRecord,
    wallet_token: Option<&str>,
    answering: Option<Answering<'_>>,
) -> Result<(PaymentRecord, Option<Answer>), PaymentError> {
    let report = match payment.provider_step {
        ProviderStep::Answered => return Ok((payment.clone(), None)),
        // It may have reached the provider: ask for the outcome, never charge again.
        ProviderStep::OutcomeUnknown => {
            reported(svc.plugins.query_payment(payment_ref(svc, payment)?).await)
        }
        // Without its token a wallet-token payment cannot be created, only asked about.
        ProviderStep::NotSent
            if payment.method == Method::WalletToken && wallet_token.is_none() =>
        {
            reported(svc.plugins.query_payment(payment_ref(svc, payment)?).await)
        }
        ProviderStep::NotSent => {
            let request = wit::CreatePaymentRequest {
                payment_id: payment.id.clone(),
                provider: payment.provider.clone(),
                merchant: merchant_for(svc, &payment.provider, &payment.merchant_id)?,
                amount: money_of(payment.amount_minor, &payment.currency),
                method: provider_method(payment.method),
                auth_code: payment.auth_code.clone(),
                description: payment.description.clone(),
                terminal_id: payment.terminal_id.clone(),
                expires_in_seconds: payment
                    .expires_at_ms
                    .map(|at| ((at - svc.clock.now_ms()).max(0) / 1000) as u32),
                wallet_token: wallet_token.map(str::to_owned),
            };
            reported(svc.plugins.create_payment(request).await)
        }
    };
    let _turn = svc.store.write_turn().await;
    record_report(svc, fence, &payment.id, report, answering).await
}

/// What a request on an archived payment gets from its idempotency key: such a payment
/// cannot change, so only a key used before is answered (API.md §5, "Archived payments").
enum ArchivedRetry {
    /// The key was never used: the request is refused.
    New,
    /// The key's first answer, replayed.
    Replay(Answer),
    /// The key's first request died unanswered: answer for this object's final state.
    Resume(String),
}

async fn archived_retry(svc: &Payments, claim: &Claim) -> Result<ArchivedRetry, PaymentError> {
    Ok(match svc.store.known_claim(claim).await? {
        None => ArchivedRetry::New,
        Some(Begin::Replay { status, body }) => {
            ArchivedRetry::Replay(Answer::replayed(status, body))
        }
        Some(Begin::Resume { object_id }) => ArchivedRetry::Resume(object_id),
        Some(Begin::KeyReused) => return Err(PaymentError::Idempotency(Conflict::KeyReused)),
        Some(other) => {
            return Err(StoreError::Corrupt(format!("unexpected claim outcome {other:?}")).into());
        }
    })
}

/// A cancel of an archived payment: the answer of a key used before, or `None` (refused).
pub async fn cancel_archived(
    svc: &Payments,
    claim: Claim,
    payment: PaymentRecord,
    render: RenderPayment<'_>,
) -> Result<Option<Answer>, PaymentError> {
    let Some(_guard) = svc.in_flight.enter(&claim) else {
        return Err(PaymentError::Idempotency(Conflict::InProgress));
    };
    match archived_retry(svc, &claim).await? {
        ArchivedRetry::New => Ok(None),
        ArchivedRetry::Replay(answer) => Ok(Some(answer)),
        ArchivedRetry::Resume(_) if payment.status == PaymentStatus::Succeeded => {
            Err(PaymentError::AlreadySucceeded(payment.id))
        }
        ArchivedRetry::Resume(_) => cancel_answer_as_is(svc, &claim, &payment, render)
            .await
            .map(Some),
    }
}

/// A refund of an archived payment: the answer of a key used before (its replay, or the
/// archived refund's final state), or `None` (refused).
pub async fn refund_archived(
    svc: &Payments,
    claim: Claim,
    render: RenderRefund<'_>,
) -> Result<Option<Answer>, PaymentError> {
    let Some(_guard) = svc.in_flight.enter(&claim) else {
        return Err(PaymentError::Idempotency(Conflict::InProgress));
    };
    match archived_retry(svc, &claim).await? {
        ArchivedRetry::New => Ok(None),
        ArchivedRetry::Replay(answer) => Ok(Some(answer)),
        ArchivedRetry::Resume(refund_id) => {
            let answer = drive_refund(svc, &refund_id, &claim, render).await;
            svc.store.durable().await?;
            answer.map(Some)
        }
    }
}

/// Finishes a cancel's key with `payment` as it is: it had already ended.
async fn cancel_answer_as_is(
    svc: &Payments,
    claim: &Claim,
    payment: &PaymentRecord,
    render: RenderPayment<'_>,
) -> Result<Answer, PaymentError> {
    let (status, body) = render(payment, None);
    svc.store
        .finish_claim(claim, status, &body, svc.clock.now_ms())
        .await?;
    svc.store.durable().await?;
    Ok(Answer {
        status,
        body,
        replayed: false,
    })
}

/// `POST /v1/payments/{id}/cancel`.
pub async fn cancel_payment(
    svc: &Payments,
    claim: Claim,
    payment: PaymentRecord,
    render: RenderPayment<'_>,
) -> Result<Answer, PaymentError> {
    let Some(_guard) = svc.in_flight.enter(&claim) else {
        return Err(PaymentError::Idempotency(Conflict::InProgress));
    };
    match svc
        .store
        .claim(&claim, &payment.id, svc.clock.now_ms())
        .await?
    {
        Begin::Created | Begin::Resume { .. } => {}
        Begin::Replay { status, body } => {
            return Ok(Answer::replayed(status, body));
        }
        Begin::KeyReused => return Err(PaymentError::Idempotency(Conflict::KeyReused)),
        Begin::InProgress => return Err(PaymentError::Idempotency(Conflict::InProgress)),
        other => {
            return Err(StoreError::Corrupt(format!("unexpected claim outcome {other:?}")).into());
        }
    }
    let _lease = idempotency::keep_lease(&svc.store, &claim);
    svc.store.durable().await?;
    let current = svc.store.payment(&payment.id).await?.unwrap_or(payment);
    match current.status {
        PaymentStatus::Succeeded => return Err(PaymentError::AlreadySucceeded(current.id)),
        PaymentStatus::Pending => {}
        // Already ended: answer with it (cancelling twice is not an error).
        _ => {
            let answer = cancel_answer_as_is(svc, &claim, &current, render).await;
            return settle_lease_lost(svc, &claim, answer).await;
        }
    }
    let ended = if current.provider.is_empty() {
        // A link payment whose payer never picked a wallet: no provider knows of it.
        end_locally(
            svc,
            Fence::Claim(&claim),
            &current.id,
            PaymentStatus::Cancelled,
        )
        .await
    } else {
        let report = reported(
            svc.plugins
                .cancel_payment(payment_ref(svc, &current)?)
                .await,
        );
        record_report(svc, Fence::Claim(&claim), &current.id, report, None)
            .await
            .map(|(payment, _)| payment)
    };
    let answer = match ended {
        Ok(payment) => finish_answer(svc, &claim, &payment, render).await,
        Err(e) => Err(e),
    };
    svc.store.durable().await?;
    settle_lease_lost(svc, &claim, answer).await
}

/// Ends a payment that never reached a provider (a link payment without a chosen wallet):
/// moves it to `to` with its event. Returns the payment as it is afterwards.
pub(crate) async fn end_locally(
    svc: &Payments,
    fence: Fence<'_>,
    payment_id: &str,
    to: PaymentStatus,
) -> Result<PaymentRecord, PaymentError> {
    let updated = svc
        .store
        .update_payment(payment_id, fence, &|p| {
            if !p.provider.is_empty() || p.status.transition(to) != Transition::Move {
                return None;
            }
            p.updated_at_ms = svc.clock.now_ms();
            let mut events = Vec::new();
            apply_payment_status(p, svc.clock.now_ms(), to, None, None, &mut events);
            Some(events)
        })
        .await?;
    Ok(updated.ok_or_else(|| StoreError::Corrupt(format!("payment {payment_id} vanished")))?)
}

/// The payer picked `provider` on a link payment's page: records the choice (the first
/// choice stands) and creates the charge at the provider, or asks about it if it was
/// already sent. Returns the payment with its QR code, or why there is none yet.
pub async fn choose_wallet(
    svc: &Payments,
    payment_id: &str,
    provider: &str,
) -> Result<PaymentRecord, PaymentError> {
    // One chooser per payment at a time; a second click waits its turn by retrying.
    let claim = Claim {
        api_key_id: "cashier".into(),
        key: payment_id.to_owned(),
        fingerprint: String::new(),
        lease: Default::default(),
    };
    let Some(_guard) = svc.in_flight.enter(&claim) else {
        return Err(PaymentError::Busy);
    };
    let not_found = || PaymentError::NotFound {
        kind: "payment",
        id: payment_id.to_owned(),
    };
    let payment = svc.store.payment(payment_id).await?.ok_or_else(not_found)?;
    if payment.method != Method::Link {
        return Err(not_found());
    }
    if payment.status != PaymentStatus::Pending {
        return Ok(payment);
    }
    if payment.provider.is_empty() {
        let takes_it = cashier_wallets(svc, &payment)
            .iter()
            .any(|name| name == provider);
        if !takes_it {
            return Err(PaymentError::WalletNotSupported(format!(
                "wallet \"{provider}\" cannot pay this payment"
            )));
        }
        svc.store
            .update_payment(payment_id, Fence::Unleased, &|p| {
                if !p.provider.is_empty() {
                    return None;
                }
                p.provider = provider.to_owned();
                p.updated_at_ms = svc.clock.now_ms();
                Some(Vec::new())
            })
            .await?;
    }
    let payment = svc.store.payment(payment_id).await?.ok_or_else(not_found)?;
    // The choice is on disk before the provider hears of the charge.
    svc.store.durable().await?;
    // The payer's choice: one chooser per payment in this daemon (a second one elsewhere
    // creates the same payment id at the provider, which takes it once).
    let advanced = advance_payment(svc, Fence::Unleased, &payment, None).await;
    svc.store.durable().await?;
    advanced
}

/// The wallets a link payment's page offers: the merchant's, able to take a qr payment in
/// its currency (only the one named at creation, if it was).
pub fn cashier_wallets(svc: &Payments, payment: &PaymentRecord) -> Vec<String> {
    let Some(merchant) = svc.merchants.get(&payment.merchant_id) else {
        return Vec::new();
    };
    usable_providers(svc, &merchant)
        .into_iter()
        .filter(|(name, info)| {
            info.methods.contains(&wit::Method::Qr)
                && info.currencies.iter().any(|c| c == &payment.currency)
                && payment.link_wallet.as_ref().is_none_or(|only| only == name)
        })
        .map(|(name, _)| name)
        .collect()
}

/// `POST /v1/payments/{id}/refunds`.
pub async fn create_refund(
    svc: &Payments,
    caller: &ApiKey,
    claim: Claim,
    payment: PaymentRecord,
    new: NewRefund,
    render: RenderRefund<'_>,
) -> Result<Answer, PaymentError> {
    let Some(_guard) = svc.in_flight.enter(&claim) else {
        return Err(PaymentError::Idempotency(Conflict::InProgress));
    };
    let currency =
        crate::domain::money::Currency::from_code(&payment.currency).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "payment {} has currency {}",
                payment.id, payment.currency
            ))
        })?;
    if let Some(amount) = &new.amount
        && amount.currency() != currency
    {
        return Err(PaymentError::Invalid {
            param: "amount",
            message: format!("payment {} is in {currency}", payment.id),
        });
    }
    let remaining = payment.amount_minor - payment.refund_reserved_minor;
    let amount_minor = new.amount.map_or(remaining, |a| a.minor());
    if amount_minor <= 0 {
        // Nothing left to refund; checked again, atomically, when the refund is recorded.
        return Err(PaymentError::RefundExceedsPayment {
            requested: Money::from_minor(amount_minor.max(0), currency).to_string(),
            refundable: Money::from_minor(remaining.max(0), currency).to_string(),
        });
    }
    let now = svc.clock.now_ms();
    let record = RefundRecord {
        id: new_id("re"),
        payment_id: payment.id.clone(),
        merchant_id: payment.merchant_id.clone(),
        provider: payment.provider.clone(),
        amount_minor,
        currency: payment.currency.clone(),
        status: RefundStatus::Pending,
        reason: new.reason.clone(),
        provider_reference: None,
        failure: None,
        created_at_ms: now,
        updated_at_ms: now,
        provider_step: ProviderStep::NotSent,
        api_key_id: caller.id.clone(),
        version: 0,
    };
    let created = event(
        now,
        EventKind::RefundCreated,
        &record.id,
        // The payment's terminal rides along for the monitor (refund bursts per terminal).
        serde_json::json!({"status": "pending", "payment_id": payment.id,
                           "terminal_id": payment.terminal_id}),
    );
    let begun = {
        let _turn = svc.store.write_turn().await;
        svc.store.begin_refund(&claim, &record, &created).await?
    };
    let refund_id = match begun {
        Begin::Created => record.id.clone(),
        Begin::Replay { status, body } => {
            return Ok(Answer::replayed(status, body));
        }
        Begin::KeyReused => return Err(PaymentError::Idempotency(Conflict::KeyReused)),
        Begin::Resume { object_id } => object_id,
        Begin::InProgress => return Err(PaymentError::Idempotency(Conflict::InProgress)),
        Begin::PaymentMissing => {
            return Err(PaymentError::NotFound {
                kind: "payment",
                id: payment.id,
            });
        }
        Begin::NotRefundable { status } => {
            return Err(PaymentError::WrongState {
                id: payment.id,
                status: status.as_str(),
                action: "refunded",
            });
        }
        Begin::ExceedsPayment { refundable_minor } => {
            return Err(PaymentError::RefundExceedsPayment {
                requested: Money::from_minor(amount_minor, currency).to_string(),
                refundable: Money::from_minor(refundable_minor, currency).to_string(),
            });
        }
        Begin::OrderIdInUse { .. } | Begin::WalletTokenUsed { .. } => {
            return Err(StoreError::Corrupt("a payment's index on a refund".into()).into());
        }
    };
    let _lease = idempotency::keep_lease(&svc.store, &claim);
    svc.store.durable().await?;
    let answer = drive_refund(svc, &refund_id, &claim, render).await;
    svc.store.durable().await?;
    settle_lease_lost(svc, &claim, answer).await
}

async fn drive_refund(
    svc: &Payments,
    refund_id: &str,
    claim: &Claim,
    render: RenderRefund<'_>,
) -> Result<Answer, PaymentError> {
    let Some(refund) = svc.store.refund(refund_id).await? else {
        // As for a payment: a request that died unanswered, its refund final and archived
        // since (with its payment).
        let archived =
            svc.store.archived_refund(refund_id).await?.ok_or_else(|| {
                StoreError::Corrupt(format!("claimed refund {refund_id} is missing"))
            })?;
        let _turn = svc.store.write_turn().await;
        return finish_refund_answer(svc, claim, &archived, render).await;
    };
    let payment = svc
        .store
        .payment(&refund.payment_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("refund {refund_id} without payment")))?;
    let result = match refund.provider_step {
        ProviderStep::Answered => None,
        ProviderStep::OutcomeUnknown => Some(
            svc.plugins
                .query_refund(refund_ref(svc, &refund, &payment)?)
                .await,
        ),
        ProviderStep::NotSent => Some(
            svc.plugins
                .refund(wit::RefundRequest {
                    refund_id: refund.id.clone(),
                    payment: payment_ref(svc, &payment)?,
                    amount: money_of(refund.amount_minor, &refund.currency),
                    reason: refund.reason.clone(),
                })
                .await,
        ),
    };
    let (to, failure, reference, step, amount) = match result {
        None => (None, None, None, ProviderStep::Answered, None),
        Some(Ok(Ok(r))) => (
            Some(refund_status_of(r.status)),
            r.failure.map(|d| Failure {
                code: d.code,
                message: d.message,
            }),
            r.provider_reference,
            ProviderStep::Answered,
            r.amount,
        ),
        Some(Ok(Err(wit::ProviderError::Declined(d)))) => (
            Some(RefundStatus::Failed),
            Some(Failure {
                code: d.code,
                message: d.message,
            }),
            None,
            ProviderStep::Answered,
            None,
        ),
        Some(Ok(Err(wit::ProviderError::InvalidRequest(m)))) => (
            Some(RefundStatus::Failed),
            Some(Failure {
                code: "provider_rejected_request".into(),
                message: m,
            }),
            None,
            ProviderStep::Answered,
            None,
        ),
        Some(other) => {
            let (step, error) = match other {
                Ok(Err(wit::ProviderError::Unavailable(m))) => {
                    (ProviderStep::NotSent, PaymentError::ProviderUnavailable(m))
                }
                Ok(Err(wit::ProviderError::UnknownOutcome(m))) => (
                    ProviderStep::OutcomeUnknown,
                    PaymentError::OutcomeUnknown(m),
                ),
                Err(CallError::Busy) => (ProviderStep::NotSent, PaymentError::Busy),
                Err(e) => (ProviderStep::OutcomeUnknown, call_error(e)),
                Ok(Ok(_)) | Ok(Err(_)) => unreachable!("handled above"),
            };
            svc.store
                .update_refund(refund_id, Fence::Claim(claim), &|r, _| {
                    r.provider_step = step;
                    r.updated_at_ms = svc.clock.now_ms();
                    Some(Vec::new())
                })
                .await?;
            return Err(error);
        }
    };
    let _turn = svc.store.write_turn().await;
    let mismatch = Decided::new(None);
    let updated = svc
        .store
        .update_refund(refund_id, Fence::Claim(claim), &|r, p| {
            let mut events = Vec::new();
            r.updated_at_ms = svc.clock.now_ms();
            mismatch.set(amount_mismatch(
                amount.as_ref(),
                false,
                r.amount_minor,
                &r.currency,
            ));
            if mismatch.read(Option::is_some) {
                r.provider_step = ProviderStep::OutcomeUnknown; // not believed: ask again
                return Some(events);
            }
            r.provider_step = step;
            if reference.is_some() {
                r.provider_reference = reference.clone();
            }
            if let Some(to) = to {
                apply_refund_status(r, p, svc.clock.now_ms(), to, failure.clone(), &mut events);
            }
            Some(events)
        })
        .await?;
    let refund =
        updated.ok_or_else(|| StoreError::Corrupt(format!("refund {refund_id} vanished")))?;
    if let Some(observed) = mismatch.into_inner() {
        report_refused(
            svc,
            &refund.provider,
            &refund.merchant_id,
            "refund",
            &refund.id,
            &observed,
        );
        return Err(PaymentError::OutcomeUnknown(refused_message(&observed)));
    }
    let answer = finish_refund_answer(svc, claim, &refund, render).await?;
    svc.metrics
        .count_refund(&refund.provider, refund.status.as_str());
    Ok(answer)
}

/// Finishes a refund's idempotency key with the answer for its record (a failed refund's
/// answer is its decline).
async fn finish_refund_answer(
    svc: &Payments,
    claim: &Claim,
    refund: &RefundRecord,
    render: RenderRefund<'_>,
) -> Result<Answer, PaymentError> {
    let error = (refund.status == RefundStatus::Failed).then(|| PaymentError::RefundDeclined {
        code: refund
            .failure
            .as_ref()
            .map_or("provider_declined".into(), |f| f.code.clone()),
        message: refund
            .failure
            .as_ref()
            .map_or(String::new(), |f| f.message.clone()),
    });
    let (status, body) = render(refund, error.as_ref());
    svc.store
        .finish_claim(claim, status, &body, svc.clock.now_ms())
        .await?;
    Ok(Answer {
        status,
        body,
        replayed: false,
    })
}

/// Moves a payment to `to` when its state machine allows, with the event that records the
/// move; a report contradicting a final state is recorded as a conflict and changes nothing.
/// `source` names who reported it, when not the answer to our own call.
fn apply_payment_status(
    payment: &mut PaymentRecord,
    now: i64,
    to: PaymentStatus,
    failure: Option<Failure>,
    source: Option<&str>,
    events: &mut Vec<EventRecord>,
) -> Transition {
    let with_source = |mut data: serde_json::Value| {
        if let Some(source) = source {
            data["source"] = source.into();
        }
        data
    };
    let transition = payment.status.transition(to);
    match transition {
        Transition::Move => {
            payment.status = to;
            match to {
                PaymentStatus::Failed => payment.failure = failure,
                PaymentStatus::Succeeded => payment.succeeded_at_ms = Some(now),
                _ => {}
            }
            events.push(event(
                now,
                EventKind::of_payment(to),
                &payment.id,
                with_source(serde_json::json!({"status": to.as_str()})),
            ));
        }
        Transition::Same => {}
        // Terminal states never change: record the contradiction instead.
        Transition::Conflict => events.push(event(
            now,
            EventKind::PaymentConflict,
            &payment.id,
            with_source(
                serde_json::json!({"status": payment.status.as_str(), "reported": to.as_str()}),
            ),
        )),
    }
    transition
}

/// Moves a refund and keeps its payment's totals: a failed refund releases its reserve, a
/// succeeded one adds to `refunded`.
fn apply_refund_status(
    refund: &mut RefundRecord,
    payment: &mut PaymentRecord,
    now: i64,
    to: RefundStatus,
    failure: Option<Failure>,
    events: &mut Vec<EventRecord>,
) {
    match refund.status.transition(to) {
        Transition::Move => {
            refund.status = to;
            match to {
                RefundStatus::Failed => {
                    refund.failure = failure;
                    payment.refund_reserved_minor -= refund.amount_minor;
                }
                RefundStatus::Succeeded => payment.refunded_minor += refund.amount_minor,
                RefundStatus::Pending => {}
            }
            payment.updated_at_ms = now;
            events.push(event(
                now,
                EventKind::of_refund(to),
                &refund.id,
                serde_json::json!({"status": to.as_str(), "payment_id": refund.payment_id}),
            ));
        }
        Transition::Same => {}
        Transition::Conflict => events.push(event(
            now,
            EventKind::RefundConflict,
            &refund.id,
            serde_json::json!({"status": refund.status.as_str(), "reported": to.as_str()}),
        )),
    }
}

/// Tells the monitor (and the metrics) about a verified report that was refused: it named
/// an object of another merchant or provider, or another amount than ours.
pub(crate) fn report_refused(
    svc: &Payments,
    provider: &str,
    merchant_id: &str,
    kind: &'static str,
    object_id: &str,
    observed: &Observed,
) {
    let (reason, detail) = match observed {
        Observed::Foreign => ("foreign_object", serde_json::json!({})),
        Observed::AmountMismatch { ours, reported } => (
            "amount_mismatch",
            serde_json::json!({"ours": ours, "reported": reported}),
        ),
        Observed::ArchivedConflict { ours, reported } => (
            "archived_object",
            serde_json::json!({"ours": ours, "reported": reported}),
        ),
        _ => return,
    };
    tracing::warn!(%provider, %merchant_id, kind, object_id, reason, "verified provider report refused: nothing changed");
    svc.metrics.count_report_refused(provider, reason);
    svc.monitor.observe(crate::monitor::Input::ReportRefused {
        provider: provider.to_owned(),
        merchant_id: merchant_id.to_owned(),
        kind,
        object_id: object_id.to_owned(),
        reason,
        detail,
    });
}

/// Who sent a notice: it may change only objects of its merchant (the one in its URL) and
/// of its provider (whose plugin verified it), and, when that plugin's world reports amounts,
/// must state the amount of whatever it says succeeded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sender<'a> {
    pub merchant_id: &'a str,
    pub provider: &'a str,
    pub reports_amounts: bool,
}

impl Sender<'_> {
    fn owns(&self, merchant_id: &str, provider: &str) -> bool {
        self.merchant_id == merchant_id && self.provider == provider
    }
}

/// The amount a provider reports for one of ours (a payment's order amount, or a refund's
/// own amount), compared with what we recorded. One that differs, in amount or currency, or
/// is no amount anything can have, is a mismatch. A report that states none is a mismatch
/// when `required` (a notice that something succeeded, from a plugin whose world reports
/// amounts), and otherwise taken as it is (plugins built for world 0.1.0; answers the
/// provider gives without one, such as Alipay's to a precreate).
pub(crate) fn amount_mismatch(
    reported: Option<&wit::Money>,
    required: bool,
    ours_minor: i64,
    currency: &str,
) -> Option<Observed> {
    let Some(reported) = reported else {
        return required.then(|| Observed::AmountMismatch {
            ours: shown(ours_minor, currency),
            reported: "no amount".into(),
        });
    };
    if same_amount(reported, ours_minor, currency) {
        return None;
    }
    Some(Observed::AmountMismatch {
        ours: shown(ours_minor, currency),
        reported: match crate::plugins::reported_money(reported) {
            Ok(m) => format!("{m} {}", reported.currency),
            Err(e) => format!(
                "{} at exponent {} {} ({e})",
                reported.minor, reported.exponent, reported.currency
            ),
        },
    })
}

/// Whether `reported` is exactly `ours_minor` minor units of `currency`, whatever exponent
/// the plugin wrote it at (integers only: this runs inside the store's write).
fn same_amount(reported: &wit::Money, ours_minor: i64, currency: &str) -> bool {
    let Some(exponent) = crate::domain::money::Currency::from_code(currency).map(|c| c.exponent())
    else {
        return false;
    };
    if reported.currency != currency || reported.minor <= 0 {
        return false;
    }
    let scale = |digits: u8| 10i64.checked_pow(u32::from(digits));
    match reported.exponent.cmp(&exponent) {
        std::cmp::Ordering::Equal => reported.minor == ours_minor,
        // More decimals than the currency has: only trailing zeros may fill them.
        std::cmp::Ordering::Greater => scale(reported.exponent - exponent)
            .is_some_and(|f| reported.minor % f == 0 && reported.minor / f == ours_minor),
        std::cmp::Ordering::Less => scale(exponent - reported.exponent)
            .and_then(|f| reported.minor.checked_mul(f))
            .is_some_and(|minor| minor == ours_minor),
    }
}

/// An amount of ours as messages show it: `100.00 CNY`.
fn shown(minor: i64, currency: &str) -> String {
    crate::domain::money::Currency::from_code(currency).map_or_else(
        || format!("{minor} minor units of {currency}"),
        |c| format!("{} {currency}", Money::from_minor(minor, c)),
    )
}

/// Applies a status the provider reported (in a notice or to the janitor's query) to a
/// payment, idempotently: a legal move is made with its event, a repeat changes nothing, a
/// contradiction of a terminal state changes nothing and records a `payment.conflict` event.
/// From a notice's `sender`, a payment of another merchant or provider is left as it is
/// (`Foreign`), and so is one whose amount the report contradicts.
pub(crate) async fn observe_status(
    svc: &Payments,
    fence: Fence<'_>,
    payment_id: &str,
    sender: Option<Sender<'_>>,
    to: PaymentStatus,
    reported: &wit::PaymentResult,
    source: &str,
) -> Result<Observed, StoreError> {
    // What the change decided (set by the closure, read after the store returns).
    let decision = Decided::new(Observed::Unknown);
    let found = svc
        .store
        .update_payment(payment_id, fence, &|p| {
            if sender.is_some_and(|s| !s.owns(&p.merchant_id, &p.provider)) {
                decision.set(Observed::Foreign);
                return None;
            }
            let required =
                sender.is_some_and(|s| s.reports_amounts) && to == PaymentStatus::Succeeded;
            if let Some(mismatch) = amount_mismatch(
                reported.amount.as_ref(),
                required,
                p.amount_minor,
                &p.currency,
            ) {
                decision.set(mismatch);
                return None;
            }
            let transition = p.status.transition(to);
            decision.set(Observed::Decided(transition));
            if transition == Transition::Move {
                p.provider_step = ProviderStep::Answered;
                p.updated_at_ms = svc.clock.now_ms();
                if let Some(r) = &reported.provider_reference {
                    p.provider_reference = Some(r.clone());
                }
                if reported.payer.is_some() {
                    p.payer = reported.payer.clone();
                }
                if let Some(card) = &reported.card {
                    p.card = Some(card_summary(card));
                }
            }
            let failure = reported.failure.as_ref().map(|d| Failure {
                code: d.code.clone(),
                message: d.message.clone(),
            });
            let mut events = Vec::new();
            apply_payment_status(
                p,
                svc.clock.now_ms(),
                to,
                failure,
                Some(source),
                &mut events,
            );
            // Nothing to write for a report of the state it is in.
            (transition != Transition::Same).then_some(events)
        })
        .await?;
    Ok(match found {
        Some(_) => decision.into_inner(),
        None => match svc.store.archived_payment(payment_id).await? {
            Some(archived) => observe_archived(
                sender,
                (&archived.merchant_id, &archived.provider),
                archived.status.as_str(),
                to.as_str(),
            ),
            None => Observed::Unknown,
        },
    })
}

/// A report about an archived (final) object: a repeat of its state, or a contradiction
/// that changes nothing (the archive is history) but is reported like a refused one.
fn observe_archived(
    sender: Option<Sender<'_>>,
    (merchant_id, provider): (&str, &str),
    ours: &str,
    reported: &str,
) -> Observed {
    if sender.is_some_and(|s| !s.owns(merchant_id, provider)) {
        Observed::Foreign
    } else if ours == reported {
        Observed::Decided(Transition::Same)
    } else {
        Observed::ArchivedConflict {
            ours: ours.to_owned(),
            reported: reported.to_owned(),
        }
    }
}

fn refund_status_of(status: wit::RefundStatus) -> RefundStatus {
    match status {
        wit::RefundStatus::Pending => RefundStatus::Pending,
        wit::RefundStatus::Succeeded => RefundStatus::Succeeded,
        wit::RefundStatus::Failed => RefundStatus::Failed,
    }
}

/// Applies a refund status the provider reported (in a notice or to the janitor's query),
/// idempotently, as [`observe_status`] does for payments.
pub(crate) async fn observe_refund_status(
    svc: &Payments,
    fence: Fence<'_>,
    refund_id: &str,
    sender: Option<Sender<'_>>,
    reported: &wit::RefundResult,
) -> Result<Observed, StoreError> {
    let to = refund_status_of(reported.status);
    let decision = Decided::new(Observed::Unknown);
    let found = svc
        .store
        .update_refund(refund_id, fence, &|r, p| {
            if sender.is_some_and(|s| !s.owns(&r.merchant_id, &r.provider)) {
                decision.set(Observed::Foreign);
                return None;
            }
            let required =
                sender.is_some_and(|s| s.reports_amounts) && to == RefundStatus::Succeeded;
            if let Some(mismatch) = amount_mismatch(
                reported.amount.as_ref(),
                required,
                r.amount_minor,
                &r.currency,
            ) {
                decision.set(mismatch);
                return None;
            }
            let transition = r.status.transition(to);
            decision.set(Observed::Decided(transition));
            if transition == Transition::Same {
                return None;
            }
            let mut events = Vec::new();
            r.provider_step = ProviderStep::Answered;
            r.updated_at_ms = svc.clock.now_ms();
            if let Some(reference) = &reported.provider_reference {
                r.provider_reference = Some(reference.clone());
            }
            let failure = reported.failure.as_ref().map(|d| Failure {
                code: d.code.clone(),
                message: d.message.clone(),
            });
            apply_refund_status(r, p, svc.clock.now_ms(), to, failure, &mut events);
            Some(events)
        })
        .await?;
    Ok(match found {
        Some(_) => decision.into_inner(),
        None => match svc.store.archived_refund(refund_id).await? {
            Some(archived) => observe_archived(
                sender,
                (&archived.merchant_id, &archived.provider),
                archived.status.as_str(),
                to.as_str(),
            ),
            None => Observed::Unknown,
        },
    })
}

/// What a store change's closure decided, read once the store has returned. The closure
/// is shared with the store (`Sync`: an engine may run it on another thread), hence a lock
/// that is never contended.
struct Decided<T>(std::sync::Mutex<T>);

impl<T> Decided<T> {
    fn new(value: T) -> Decided<T> {
        Decided(std::sync::Mutex::new(value))
    }

    fn set(&self, value: T) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
    }

    fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn into_inner(self) -> T {
        self.0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Harness, cny, new_payment, paid, render_payment, render_refund};

    async fn pay(
        h: &Harness,
        key: &str,
        amount: &str,
        method: Method,
    ) -> Result<Answer, PaymentError> {
        create_payment(
            &h.payments,
            &h.caller,
            h.claim(key),
            new_payment(amount, method),
            &render_payment,
        )
        .await
    }

    fn id_of(answer: &Answer) -> String {
        answer.body.split(' ').next().unwrap().to_owned()
    }

    #[test]
    fn only_a_known_merchant_collects() {
        let h = Harness::new();
        let shop = collecting_merchant(&h.payments, crate::testkit::MERCHANT, None).unwrap();
        assert_eq!(shop.id, crate::testkit::MERCHANT);
        let missing = collecting_merchant(&h.payments, "m_nobody", Some("fake")).unwrap_err();
        assert!(
            matches!(missing, PaymentError::NotFound { kind: "merchant", ref id } if id == "m_nobody"),
            "{missing:?}"
        );
    }

    #[tokio::test]
    async fn a_payment_is_recorded_charged_once_and_replayed_for_its_key() {
        let h = Harness::new();
        let first = pay(&h, "k1", "12.50", Method::Barcode).await.unwrap();
        let id = id_of(&first);
        assert_eq!(first.body, format!("{id} succeeded"));
        assert!(!first.replayed);
        let payment = h.payment(&id);
        assert_eq!(payment.status, PaymentStatus::Succeeded);
        assert_eq!(payment.amount_minor, 1250);
        assert_eq!(payment.provider_reference.as_deref(), Some("fake-ref"));

        let again = pay(&h, "k1", "12.50", Method::Barcode).await.unwrap();
        assert!(again.replayed);
        assert_eq!(again.body, first.body);
        assert_eq!(h.provider.calls(), vec![format!("create {id}")]);
        // Counted once, from the record, not again for the replay.
        let metrics = h.payments.metrics.render();
        assert!(
            metrics.contains(
                "paygate_payments_total{method=\"barcode\",provider=\"fake\",status=\"succeeded\"} 1\n"
            ),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn an_unknown_outcome_is_resumed_by_a_query_never_by_a_second_charge() {
        let h = Harness::new();
        h.provider
            .next_payment(Ok(Err(wit::ProviderError::UnknownOutcome(
                "timed out".into(),
            ))));
        let err = pay(&h, "k1", "8.00", Method::Barcode).await.unwrap_err();
        assert!(matches!(err, PaymentError::OutcomeUnknown(_)), "{err:?}");
        let id = h
            .store
            .pending_payment_ids()
            .unwrap()
            .pop()
            .expect("left pending");
        assert_eq!(h.payment(&id).status, PaymentStatus::Pending);

        // The retry with the same key asks about the same charge.
        let answer = pay(&h, "k1", "8.00", Method::Barcode).await.unwrap();
        assert_eq!(answer.body, format!("{id} succeeded"));
        assert_eq!(
            h.provider.calls(),
            vec![format!("create {id}"), format!("query {id}")]
        );
        assert_eq!(h.payment(&id).status, PaymentStatus::Succeeded);
    }

    #[tokio::test]
    async fn a_key_whose_request_died_answers_with_its_payment_after_the_archive_took_it() {
        let h = Harness::new();
        h.provider
            .next_payment(Ok(Err(wit::ProviderError::UnknownOutcome(
                "timed out".into(),
            ))));
        pay(&h, "k1", "8.00", Method::Barcode).await.unwrap_err();
        let id = h.store.pending_payment_ids().unwrap().pop().unwrap();
        // The janitor finishes the payment; the key stays unanswered.
        let done = advance_payment(&h.payments, Fence::Unleased, &h.payment(&id), None)
            .await
            .unwrap();
        assert_eq!(done.status, PaymentStatus::Succeeded);
        let report = h
            .store
            .archive(&crate::store::archive::ArchivePolicy {
                now_ms: h.payments.clock.now_ms(),
                older_than_days: 0,
                utc_offset_min: &|_| 0,
                segment_payments: 10,
            })
            .unwrap();
        assert_eq!(report.payments, 1);
        assert!(h.store.payment(&id).unwrap().is_none());

        let answer = pay(&h, "k1", "8.00", Method::Barcode).await.unwrap();
        assert_eq!(answer.body, format!("{id} succeeded"));
        // Answered from the archived record: the provider is not asked again.
        assert_eq!(
            h.provider.calls(),
            vec![format!("create {id}"), format!("query {id}")]
        );
        let again = pay(&h, "k1", "8.00", Method::Barcode).await.unwrap();
        assert!(again.replayed);
        assert_eq!(again.body, answer.body);
    }

    #[tokio::test]
    async fn a_provider_amount_other_than_ours_changes_nothing() {
        let h = Harness::new();
        let mut wrong = cny("1.00");
        wrong = Money::from_minor(wrong.minor() * 100, wrong.currency());
        h.provider.next_payment(Ok(Ok(paid(
            wit::PaymentStatus::Succeeded,
            &money_of(wrong.minor(), "CNY"),
        ))));
        let err = pay(&h, "k1", "1.00", Method::Barcode).await.unwrap_err();
        assert!(matches!(err, PaymentError::OutcomeUnknown(_)), "{err:?}");
        let id = h.store.pending_payment_ids().unwrap().pop().unwrap();
        assert_eq!(h.payment(&id).status, PaymentStatus::Pending);
    }

    #[tokio::test]
    async fn a_pending_qr_payment_is_cancelled_at_the_provider() {
        let h = Harness::new();
        h.provider.next_payment(Ok(Ok(paid(
            wit::PaymentStatus::Pending,
            &money_of(300, "CNY"),
        ))));
        let created = pay(&h, "k1", "3.00", Method::Qr).await.unwrap();
        let id = id_of(&created);
        assert_eq!(h.payment(&id).status, PaymentStatus::Pending);
        let cancelled = cancel_payment(&h.payments, h.claim("k2"), h.payment(&id), &render_payment)
            .await
            .unwrap();
        assert_eq!(cancelled.body, format!("{id} cancelled"));
        assert_eq!(h.payment(&id).status, PaymentStatus::Cancelled);
        assert!(h.provider.calls().contains(&format!("cancel {id}")));
    }

    #[tokio::test]
    async fn concurrent_refunds_never_sum_above_the_payment() {
        let h = Harness::new();
        let id = id_of(&pay(&h, "k1", "100.00", Method::Barcode).await.unwrap());
        let payment = h.payment(&id);
        let refunds = (0..6).map(|i| {
            let payments = h.payments.clone();
            let caller = h.caller.clone();
            let claim = h.claim(&format!("r{i}"));
            let payment = payment.clone();
            tokio::spawn(async move {
                let new = NewRefund {
                    payment_id: payment.id.clone(),
                    amount: Some(cny("30.00")),
                    reason: None,
                };
                create_refund(&payments, &caller, claim, payment, new, &render_refund).await
            })
        });
        let mut succeeded = 0;
        let mut refused = 0;
        for task in refunds.collect::<Vec<_>>() {
            match task.await.unwrap() {
                Ok(_) => succeeded += 1,
                Err(PaymentError::RefundExceedsPayment { .. }) => refused += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((succeeded, refused), (3, 3));
        let stored = h.store.refunds_of(&id).unwrap();
        let total: i64 = stored
            .iter()
            .filter(|r| r.status == RefundStatus::Succeeded)
            .map(|r| r.amount_minor)
            .sum();
        assert_eq!(total, 9_000);
        assert_eq!(h.payment(&id).refunded_minor, 9_000);
        let metrics = h.payments.metrics.render();
        assert!(
            metrics.contains("paygate_refunds_total{provider=\"fake\",status=\"succeeded\"} 3\n"),
            "{metrics}"
        );
    }
}
