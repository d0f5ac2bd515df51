//! A cassette: one plugin call and the provider exchanges it made, as recorded. Stored as
//! JSON (`{name}.json` beside the kit's `kit.toml`), written by `paygated plugin record` and
//! replayed by `paygated plugin test`.
//!
//! ```json
//! {"format": "paygate-cassette/1", "name": "code-payment-succeeds",
//!  "clock_ms": 1765000000000, "seed": 1234,
//!  "call": {"operation": "create-payment", "request": {...}},
//!  "exchanges": [{"request": {"method": "POST", "url": "...", "headers": [["k", "v"]], "body": "..."},
//!                 "answer": {"status": 201, "headers": [...], "body": "..."}}],
//!  "result": {"Ok": {...}}}
//! ```
//!
//! A body is a string when it is UTF-8, else `{"base64": "..."}`. An exchange that failed in
//! transport has `"answer": {"failure": "timeout" | "connection" | "too-large" | "denied",
//! "message": "..."}`. `call.request` and `result` are the world's own records (field
//! names as in `provider.wit`, with `_` for `-`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::outbound::{OutboundError, OutboundRequest, OutboundResponse};
use crate::plugins::types as wit;

/// The format this kit writes and reads.
pub const FORMAT: &str = "paygate-cassette/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cassette {
    pub format: String,
    pub name: String,
    /// The clock the plugin saw (unix ms), frozen for the whole call.
    pub clock_ms: u64,
    /// The seed of the randomness lent to the call's key operations.
    pub seed: u64,
    pub call: Call,
    pub exchanges: Vec<Exchange>,
    /// What the call answered: `{"Ok": ...}` or `{"Err": ...}`.
    pub result: serde_json::Value,
}

/// The plugin call a cassette holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "operation", content = "request", rename_all = "kebab-case")]
pub enum Call {
    CreatePayment(wit::CreatePaymentRequest),
    QueryPayment(wit::PaymentRef),
    CancelPayment(wit::PaymentRef),
    Refund(wit::RefundRequest),
    QueryRefund(wit::RefundRef),
    Onboard(wit::OnboardingRequest),
    QueryOnboarding(wit::OnboardingRef),
    BindAccount(wit::BindingRequest),
    QueryBinding(wit::BindingRef),
}

impl Call {
    pub fn operation(&self) -> &'static str {
        match self {
            Call::CreatePayment(_) => "create-payment",
            Call::QueryPayment(_) => "query-payment",
            Call::CancelPayment(_) => "cancel-payment",
            Call::Refund(_) => "refund",
            Call::QueryRefund(_) => "query-refund",
            Call::Onboard(_) => "onboard",
            Call::QueryOnboarding(_) => "query-onboarding",
            Call::BindAccount(_) => "bind-account",
            Call::QueryBinding(_) => "query-binding",
        }
    }

    /// Whether the call may move money or change the provider's state (its failures in
    /// transport are then unknown outcomes, never "nothing happened").
    pub fn has_effect(&self) -> bool {
        matches!(
            self,
            Call::CreatePayment(_)
                | Call::CancelPayment(_)
                | Call::Refund(_)
                | Call::Onboard(_)
                | Call::BindAccount(_)
        )
    }

    /// What the gateway queries after this call's unknown outcome: the operation and the id.
    pub fn follow_up(&self) -> Option<(&'static str, &str)> {
        match self {
            Call::CreatePayment(r) => Some(("query-payment", &r.payment_id)),
            Call::CancelPayment(r) => Some(("query-payment", &r.payment_id)),
            Call::Refund(r) => Some(("query-refund", &r.refund_id)),
            Call::Onboard(r) => Some(("query-onboarding", &r.activation_id)),
            Call::BindAccount(r) => Some(("query-binding", &r.bank_account_id)),
            Call::QueryPayment(_)
            | Call::QueryRefund(_)
            | Call::QueryOnboarding(_)
            | Call::QueryBinding(_) => None,
        }
    }

    /// The payment, refund, activation or bank account id the call is about.
    pub fn subject(&self) -> &str {
        match self {
            Call::CreatePayment(r) => &r.payment_id,
            Call::QueryPayment(r) | Call::CancelPayment(r) => &r.payment_id,
            Call::Refund(r) => &r.refund_id,
            Call::QueryRefund(r) => &r.refund_id,
            Call::Onboard(r) => &r.activation_id,
            Call::QueryOnboarding(r) => &r.activation_id,
            Call::BindAccount(r) => &r.bank_account_id,
            Call::QueryBinding(r) => &r.bank_account_id,
        }
    }
}

/// A body: text when it is UTF-8, base64 otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Body {
    Text(String),
    Binary { base64: String },
}

impl Body {
    pub fn of(bytes: &[u8]) -> Body {
        match std::str::from_utf8(bytes) {
            Ok(text) => Body::Text(text.to_owned()),
            Err(_) => Body::Binary {
                base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
        }
    }

    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            Body::Text(text) => Ok(text.as_bytes().to_vec()),
            Body::Binary { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map_err(|e| format!("a body's base64 does not decode: {e}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Request {
    pub fn of(request: &OutboundRequest) -> Request {
        Request {
            method: request.method.clone(),
            url: request.url.clone(),
            headers: request.headers.clone(),
            body: Body::of(&request.body),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Body,
    },
    Failure {
        failure: Failure,
        #[serde(default)]
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    Timeout,
    Connection,
    TooLarge,
    Denied,
}

impl Answer {
    pub fn of(outcome: &Result<OutboundResponse, OutboundError>) -> Answer {
        match outcome {
            Ok(response) => Answer::Response {
                status: response.status,
                headers: response.headers.clone(),
                body: Body::of(&response.body),
            },
            Err(OutboundError::Timeout) => Answer::Failure {
                failure: Failure::Timeout,
                message: String::new(),
            },
            Err(OutboundError::Connection(m)) => Answer::Failure {
                failure: Failure::Connection,
                message: m.clone(),
            },
            Err(OutboundError::TooLarge) => Answer::Failure {
                failure: Failure::TooLarge,
                message: String::new(),
            },
            Err(OutboundError::Denied(m)) => Answer::Failure {
                failure: Failure::Denied,
                message: m.clone(),
            },
        }
    }

    /// What the plugin is handed.
    pub fn outcome(&self) -> Result<Result<OutboundResponse, OutboundError>, String> {
        Ok(match self {
            Answer::Response {
                status,
                headers,
                body,
            } => Ok(OutboundResponse {
                status: *status,
                headers: headers.clone(),
                body: body.bytes()?,
            }),
            Answer::Failure { failure, message } => Err(match failure {
                Failure::Timeout => OutboundError::Timeout,
                Failure::Connection => OutboundError::Connection(message.clone()),
                Failure::TooLarge => OutboundError::TooLarge,
                Failure::Denied => OutboundError::Denied(message.clone()),
            }),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub request: Request,
    pub answer: Answer,
}

impl Cassette {
    /// Reads a cassette, refusing another format.
    pub fn parse(text: &str) -> Result<Cassette, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
        if format != FORMAT {
            return Err(format!("format {format:?}; this kit reads {FORMAT:?}"));
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a cassette serializes");
        text.push('\n');
        text
    }
}
