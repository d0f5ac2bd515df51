//! The operations: verify and open a token, check it against the payment, and authorize,
//! query, void and refund at the card acquirer. Written against [`Env`], so the tests run
//! them natively.

use paygate_plugin_api::http::{Error as HttpError, Request, Response};
use paygate_plugin_api::*;
use sha2::{Digest, Sha256};

use crate::acquirer;
use crate::env::Env;
use crate::settings::Settings;
use crate::signature::{self, SignedParts};
use crate::token::{self, Payment, Token};

fn declined(code: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::declined(code, message)
}

/// A verified, decrypted token: what it says, and what it charges, with the merchant's
/// settings it was opened under.
pub struct Opened {
    pub settings: Settings,
    pub token: Token,
    pub payment: Payment,
    pub exponent: u8,
}

/// Verifies the request's token (signature, chain, age) and has the host decrypt it. A
/// token that fails any check is declined as `token_invalid`: final, nothing was charged.
pub fn open(env: &impl Env, request: &CreatePaymentRequest) -> Result<Opened, ProviderError> {
    let settings = Settings::parse(&request.merchant.settings_json)?;
    if request.method != Method::WalletToken {
        return Err(ProviderError::InvalidRequest(
            "Apple Pay takes wallet tokens only".into(),
        ));
    }
    let text = request
        .wallet_token
        .as_deref()
        .ok_or_else(|| ProviderError::InvalidRequest("the payment carries no token".into()))?;
    let token = token::parse(text).map_err(|e| declined("token_invalid", e))?;
    let now_seconds = (env.now_millis() / 1000) as i64;
    signature::verify(
        &token.signature,
        &SignedParts {
            ephemeral_public_key: &token.ephemeral_public_key,
            data: &token.data,
            transaction_id: &token.transaction_id,
            application_data: &token.application_data,
        },
        now_seconds,
        i64::from(settings.max_token_age_seconds),
    )
    .map_err(|e| declined("token_invalid", e))?;
    let merchant_id_hash = Sha256::digest(settings.merchant_identifier.as_bytes());
    let plaintext = env
        .decrypt_token(&token.ephemeral_public_key, &merchant_id_hash, &token.data)
        .map_err(|e| match e {
            keys::KeyError::Failed(m) => declined("token_invalid", m),
            other => ProviderError::from(other),
        })?;
    let payment = token::payment(&plaintext).map_err(|e| declined("token_invalid", e))?;
    let (_, exponent) = token::currency_exponent(&payment.currency)
        .ok_or_else(|| declined("token_invalid", "unknown currency"))?;
    Ok(Opened {
        settings,
        token,
        payment,
        exponent,
    })
}

/// The token's id and amount, for the host's checks before it records the payment.
pub fn inspect(
    env: &impl Env,
    request: &CreatePaymentRequest,
) -> Result<TokenFacts, ProviderError> {
    let opened = open(env, request)?;
    Ok(TokenFacts {
        token_id: opened.token.transaction_id_hex.clone(),
        amount: Money {
            minor: opened.payment.amount_minor,
            currency: opened.payment.currency.clone(),
            exponent: opened.exponent,
        },
    })
}

/// Verifies the token, checks that it approves exactly this payment's amount, and
/// authorizes it at the acquirer under our payment id (a repeat never charges twice).
pub fn create_payment(
    env: &impl Env,
    request: &CreatePaymentRequest,
) -> Result<PaymentResult, ProviderError> {
    let opened = open(env, request)?;
    let approved = (
        &opened.payment.currency,
        opened.payment.amount_minor,
        opened.exponent,
    );
    let asked = (
        &request.amount.currency,
        request.amount.minor,
        request.amount.exponent,
    );
    if approved != asked {
        return Err(declined(
            "token_amount_mismatch",
            format!(
                "the payer approved {} {} (minor units), the payment is for {} {}",
                opened.payment.amount_minor,
                opened.payment.currency,
                request.amount.minor,
                request.amount.currency
            ),
        ));
    }
    let body = acquirer::authorization(&request.payment_id, &opened.payment);
    let response =
        call(env, &opened.settings, "POST", "/v1/payments", Some(body)).map_err(unknown_if_sent)?;
    let result = acquirer::payment_result(&response.body, &request.payment_id, opened.exponent)
        .map_err(ProviderError::UnknownOutcome)?;
    Ok(result)
}

/// The payment at the acquirer under our id.
pub fn query_payment(env: &impl Env, payment: &PaymentRef) -> Result<PaymentResult, ProviderError> {
    let settings = Settings::parse(&payment.merchant.settings_json)?;
    let path = format!("/v1/payments/{}", reference(&payment.payment_id)?);
    let response = call(env, &settings, "GET", &path, None).map_err(learnt_nothing)?;
    // None there: nothing was charged; not `failed` (a create on its way may yet arrive).
    if response.status == 404 {
        return Err(ProviderError::Unavailable(
            "no such payment at the acquirer; nothing was charged".into(),
        ));
    }
    acquirer::payment_result(&response.body, &payment.payment_id, payment.amount.exponent)
        .map_err(ProviderError::Unavailable)
}

/// Voids an authorization. One the acquirer never had is cancelled as it is: nothing was
/// authorized, and nothing can charge it later (the token is not kept).
pub fn cancel_payment(
    env: &impl Env,
    payment: &PaymentRef,
) -> Result<PaymentResult, ProviderError> {
    let settings = Settings::parse(&payment.merchant.settings_json)?;
    let path = format!("/v1/payments/{}/void", reference(&payment.payment_id)?);
    let response =
        call(env, &settings, "POST", &path, Some("{}".into())).map_err(unknown_if_sent)?;
    if response.status == 404 {
        return Ok(PaymentResult::with_status(PaymentStatus::Cancelled));
    }
    acquirer::payment_result(&response.body, &payment.payment_id, payment.amount.exponent)
        .map_err(ProviderError::UnknownOutcome)
}

pub fn refund(env: &impl Env, request: &RefundRequest) -> Result<RefundResult, ProviderError> {
    let payment = &request.payment;
    let settings = Settings::parse(&payment.merchant.settings_json)?;
    let path = format!("/v1/payments/{}/refunds", reference(&payment.payment_id)?);
    let body = acquirer::refund(reference(&request.refund_id)?, &request.amount);
    let response = call(env, &settings, "POST", &path, Some(body)).map_err(unknown_if_sent)?;
    acquirer::refund_result(&response.body, &request.refund_id, request.amount.exponent)
        .map_err(ProviderError::UnknownOutcome)
}

pub fn query_refund(env: &impl Env, refund: &RefundRef) -> Result<RefundResult, ProviderError> {
    let settings = Settings::parse(&refund.payment.merchant.settings_json)?;
    let path = format!("/v1/refunds/{}", reference(&refund.refund_id)?);
    let response = call(env, &settings, "GET", &path, None).map_err(learnt_nothing)?;
    if response.status == 404 {
        return Err(ProviderError::Unavailable(
            "no such refund at the acquirer; nothing was refunded".into(),
        ));
    }
    acquirer::refund_result(&response.body, &refund.refund_id, refund.amount.exponent)
        .map_err(ProviderError::Unavailable)
}

/// Our ids go into paths: only the characters they are made of.
fn reference(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(ProviderError::InvalidRequest(format!(
            "unusable reference {id:?}"
        )))
    }
}

/// A failure of a call that may have changed something: only "unavailable" is sure that
/// nothing happened; anything else may have, so the outcome is unknown.
fn unknown_if_sent(error: ProviderError) -> ProviderError {
    match error {
        ProviderError::Unavailable(m) if m.starts_with("acquirer answered 5") => {
            ProviderError::UnknownOutcome(m)
        }
        other => other,
    }
}

/// A failure of a query: it changed nothing, so its outcome is never unknown; the query
/// learnt nothing, and may be asked again (the contract's `unavailable`).
fn learnt_nothing(error: ProviderError) -> ProviderError {
    match error {
        ProviderError::UnknownOutcome(m) => ProviderError::Unavailable(m),
        other => other,
    }
}

/// Sends one signed request and checks the answer's signature.
fn call(
    env: &impl Env,
    settings: &Settings,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<Response, ProviderError> {
    let body = body.unwrap_or_default();
    let timestamp = (env.now_millis() / 1000) as i64;
    let mac = env.hmac(acquirer::request_message(timestamp, method, path, &body).as_bytes())?;
    let request = Request::new(method, &format!("{}{path}", settings.acquirer_url))
        .header("Content-Type", "application/json")
        .header("Acquirer-Merchant", &settings.acquirer_merchant_id)
        .header(
            "Acquirer-Signature",
            &acquirer::signature_header(timestamp, &mac),
        )
        .body(body.into_bytes());
    let response = env.send(&request).map_err(|e| match e {
        HttpError::Timeout => ProviderError::UnknownOutcome("the acquirer timed out".into()),
        other => ProviderError::from(other),
    })?;
    let signed = response
        .header("Acquirer-Signature")
        .and_then(acquirer::parse_signature_header);
    let Some((answered_at, mac)) = signed else {
        return Err(ProviderError::UnknownOutcome(format!(
            "the acquirer's answer ({}) is not signed",
            response.status
        )));
    };
    let expected = env.hmac(&acquirer::answer_message(
        answered_at,
        response.status,
        &response.body,
    ))?;
    if expected != mac {
        return Err(ProviderError::UnknownOutcome(
            "the acquirer's answer signature does not verify".into(),
        ));
    }
    if (answered_at - timestamp).abs() > acquirer::MAX_SKEW_SECONDS {
        return Err(ProviderError::UnknownOutcome(
            "the acquirer's answer is stale".into(),
        ));
    }
    match response.status {
        // 404: the callers that look things up decide what "none there" means.
        200..=299 | 404 => Ok(response),
        status @ 400..=499 => Err(ProviderError::InvalidRequest(format!(
            "acquirer refused ({status}): {}",
            String::from_utf8_lossy(&response.body)
                .chars()
                .take(200)
                .collect::<String>()
        ))),
        status => Err(ProviderError::Unavailable(format!(
            "acquirer answered {status}"
        ))),
    }
}
