//! Which Toy Pay endpoint each operation calls, how requests are signed and how answers are
//! authenticated before `transform` reads them. Tested with the plugin kit's cassettes
//! (`cassettes/`): recorded exchanges with the simulator's Toy Pay, replayed exactly.
//!
//! Requests: `Toypay-Merchant: {merchant}` and `Toypay-Signature: t={unix seconds},v1={hex
//! HMAC-SHA256(secret, "{t}\n{METHOD}\n{path}\n{body}")}`, `path` being the URL's path. An
//! answer is read only once its `Toypay-Signature` (over `"{t}\n{status}\n{body}"`) verifies
//! and its `t` is within 5 minutes of our clock.

use paygate_plugin_api::{
    CreatePaymentRequest, PaymentRef, PaymentResult, PaymentStatus, ProviderError, RefundRef,
    RefundRequest, RefundResult, clock, http, keys,
};

use crate::settings::{SECRET_KEY, Settings};
use crate::transform::{self, Call};

/// How far an answer's timestamp may be from our clock.
const SKEW_SECONDS_MAX: u64 = 300;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(message: &[u8]) -> Result<Vec<u8>, ProviderError> {
    keys::hmac_sha256(SECRET_KEY, message).map_err(|e| {
        ProviderError::InvalidRequest(format!("toypay: cannot use key {SECRET_KEY}: {e:?}"))
    })
}

/// Sends a signed request; the answer's status and body once its signature verifies.
fn send(
    settings: &Settings,
    call: Call,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, Vec<u8>), ProviderError> {
    let now = clock::now_millis() / 1000;
    let signature =
        hmac(format!("{now}\n{method}\n{}\n{body}", path_of(settings, path)).as_bytes())?;
    let mut request = http::Request::new(method, &format!("{}{path}", settings.base_url))
        .header("Toypay-Merchant", &settings.merchant)
        .header(
            "Toypay-Signature",
            &format!("t={now},v1={}", hex(&signature)),
        );
    if method == "POST" {
        request = request
            .header("Content-Type", "application/json")
            .body(body.as_bytes().to_vec());
    }
    let response = http::send(&request).map_err(|e| match e {
        http::Error::Connection(m) => {
            ProviderError::Unavailable(format!("toypay {call:?}: connection failed: {m}"))
        }
        http::Error::Denied(m) => ProviderError::InvalidRequest(format!(
            "toypay: the host refused the request (is base_url in allowed_hosts?): {m}"
        )),
        http::Error::Timeout => transform::uncertain(call, "no answer in time"),
        http::Error::TooLarge => transform::uncertain(call, "an answer too large"),
    })?;
    authenticate(call, now, &response)?;
    Ok((response.status, response.body))
}

/// The path Toy Pay signs: the URL's, `base_url`'s own path included.
fn path_of(settings: &Settings, path: &str) -> String {
    let base_path = settings
        .base_url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
        .unwrap_or("");
    format!("{base_path}{path}")
}

fn authenticate(call: Call, now: u64, response: &http::Response) -> Result<(), ProviderError> {
    let untrusted = |what: &str| transform::uncertain(call, format!("answer not trusted: {what}"));
    let header = response
        .header("Toypay-Signature")
        .ok_or_else(|| untrusted("no Toypay-Signature"))?;
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(untrusted("a malformed Toypay-Signature"));
    };
    if t.abs_diff(now) > SKEW_SECONDS_MAX {
        return Err(untrusted("its timestamp is too far from our clock"));
    }
    let mut message = format!("{t}\n{}\n", response.status).into_bytes();
    message.extend_from_slice(&response.body);
    if hex(&hmac(&message)?) != v1 {
        return Err(untrusted("its signature does not verify"));
    }
    Ok(())
}

pub fn create_payment(request: CreatePaymentRequest) -> Result<PaymentResult, ProviderError> {
    let settings = Settings::of(&request.merchant)?;
    let body = transform::payment_body(&request)?;
    let (status, answer) = send(&settings, Call::Create, "POST", "/v1/payments", &body)?;
    transform::payment_answer(Call::Create, status, &answer)
}

pub fn query_payment(payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
    let settings = Settings::of(&payment.merchant)?;
    let path = format!("/v1/payments/{}", payment.payment_id);
    let (status, answer) = send(&settings, Call::Query, "GET", &path, "")?;
    transform::payment_answer(Call::Query, status, &answer)
}

/// Cancels an unpaid payment. One Toy Pay never saw is as good as cancelled; one already
/// paid stays paid (the gateway refunds it if it must).
pub fn cancel_payment(payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
    let settings = Settings::of(&payment.merchant)?;
    let path = format!("/v1/payments/{}/cancel", payment.payment_id);
    let (status, answer) = send(&settings, Call::Cancel, "POST", &path, "{}")?;
    match status {
        404 => Ok(PaymentResult::with_status(PaymentStatus::Cancelled)),
        409 => query_payment(payment),
        _ => transform::payment_answer(Call::Cancel, status, &answer),
    }
}

pub fn refund(request: RefundRequest) -> Result<RefundResult, ProviderError> {
    let settings = Settings::of(&request.payment.merchant)?;
    let body = transform::refund_body(&request)?;
    let path = format!("/v1/payments/{}/refunds", request.payment.payment_id);
    let (status, answer) = send(&settings, Call::Refund, "POST", &path, &body)?;
    transform::refund_answer(Call::Refund, status, &answer)
}

pub fn query_refund(refund: RefundRef) -> Result<RefundResult, ProviderError> {
    let settings = Settings::of(&refund.payment.merchant)?;
    let path = format!("/v1/refunds/{}", refund.refund_id);
    let (status, answer) = send(&settings, Call::QueryRefund, "GET", &path, "")?;
    transform::refund_answer(Call::QueryRefund, status, &answer)
}
