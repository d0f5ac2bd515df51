//! The card acquirer's API, which authorizes the device account number and cryptogram a
//! token carries (PROTOCOL.md has the wire format). Pure: requests built, answers read and
//! their signatures' messages made here; the flow sends them and signs through the host.
//!
//! Every request is signed `Acquirer-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `t \n METHOD \n path \n body` with the merchant's acquirer secret, and every answer over
//! `t \n status \n body`; an answer more than 5 minutes off the host's clock is refused.

use paygate_plugin_api::{Card, Money, PaymentResult, PaymentStatus, RefundResult, RefundStatus};
use serde::Deserialize;
use serde_json::json;

use crate::token::Payment;

/// How far an answer's timestamp may be from the host's clock.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// What a request's signature covers.
pub fn request_message(timestamp: i64, method: &str, path: &str, body: &str) -> String {
    format!("{timestamp}\n{method}\n{path}\n{body}")
}

/// What an answer's signature covers.
pub fn answer_message(timestamp: i64, status: u16, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{timestamp}\n{status}\n").into_bytes();
    message.extend_from_slice(body);
    message
}

/// `t=...,v1=...` of a signature header.
pub fn signature_header(timestamp: i64, mac: &[u8]) -> String {
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// The timestamp and MAC of a signature header.
pub fn parse_signature_header(value: &str) -> Option<(i64, Vec<u8>)> {
    let mut timestamp = None;
    let mut mac = None;
    for part in value.split(',') {
        match part.trim().split_once('=')? {
            ("t", t) => timestamp = t.parse().ok(),
            ("v1", hex) if hex.len() == 64 => {
                mac = (0..64)
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                    .collect::<Option<Vec<u8>>>();
            }
            _ => {}
        }
    }
    Some((timestamp?, mac?))
}

/// The authorization request for our payment `reference`.
pub fn authorization(reference: &str, payment: &Payment) -> String {
    let (year, month) = (&payment.expiration[..2], &payment.expiration[2..4]);
    json!({
        "reference": reference,
        "amount": {"value": payment.amount_minor, "currency": payment.currency},
        "source": {
            "type": "network_token",
            "wallet": "apple_pay",
            "number": payment.account_number,
            "expiry_month": month,
            "expiry_year": format!("20{year}"),
            "cryptogram": payment.cryptogram,
            "eci": payment.eci,
        },
    })
    .to_string()
}

/// A refund of `amount` under our refund id.
pub fn refund(reference: &str, amount: &Money) -> String {
    json!({"reference": reference, "amount": {"value": amount.minor, "currency": amount.currency}})
        .to_string()
}

#[derive(Deserialize)]
struct AmountJson {
    value: i64,
    currency: String,
}

#[derive(Deserialize)]
struct PaymentJson {
    id: String,
    reference: String,
    status: String,
    amount: AmountJson,
    network: Option<String>,
    last_four: Option<String>,
    decline_code: Option<String>,
    decline_message: Option<String>,
}

#[derive(Deserialize)]
struct RefundJson {
    id: String,
    reference: String,
    status: String,
    amount: AmountJson,
}

fn money(amount: AmountJson, exponent: u8) -> Money {
    Money {
        minor: amount.value,
        currency: amount.currency,
        exponent,
    }
}

/// A payment answer as our result; `Err` if it is not one, or not the payment asked for.
pub fn payment_result(body: &[u8], reference: &str, exponent: u8) -> Result<PaymentResult, String> {
    let answer: PaymentJson =
        serde_json::from_slice(body).map_err(|e| format!("acquirer payment answer: {e}"))?;
    if answer.reference != reference {
        return Err(format!(
            "the acquirer answered for {:?}, not {reference:?}",
            answer.reference
        ));
    }
    let status = match answer.status.as_str() {
        "authorized" | "captured" => PaymentStatus::Succeeded,
        "declined" => PaymentStatus::Failed,
        "voided" => PaymentStatus::Cancelled,
        "pending" => PaymentStatus::Pending,
        other => return Err(format!("unknown acquirer payment status {other:?}")),
    };
    let card = match (answer.network, answer.last_four) {
        (Some(network), Some(last_four))
            if last_four.len() == 4 && last_four.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(Card { network, last_four })
        }
        _ => None,
    };
    let failure = (status == PaymentStatus::Failed).then(|| paygate_plugin_api::Declined {
        code: match answer.decline_code.as_deref() {
            Some("insufficient_funds") => "insufficient_funds",
            Some("expired_card") => "card_expired",
            Some("do_not_honor" | "fraud_suspected") => "risk_rejected",
            _ => "provider_declined",
        }
        .into(),
        message: answer
            .decline_message
            .unwrap_or_else(|| "declined by the card acquirer".into()),
    });
    Ok(PaymentResult {
        status,
        provider_reference: Some(answer.id),
        qr_code: None,
        failure,
        payer: None,
        amount: Some(money(answer.amount, exponent)),
        card,
    })
}

/// A refund answer as our result.
pub fn refund_result(body: &[u8], reference: &str, exponent: u8) -> Result<RefundResult, String> {
    let answer: RefundJson =
        serde_json::from_slice(body).map_err(|e| format!("acquirer refund answer: {e}"))?;
    if answer.reference != reference {
        return Err(format!(
            "the acquirer answered for {:?}, not {reference:?}",
            answer.reference
        ));
    }
    let status = match answer.status.as_str() {
        "succeeded" => RefundStatus::Succeeded,
        "pending" => RefundStatus::Pending,
        "failed" => RefundStatus::Failed,
        other => return Err(format!("unknown acquirer refund status {other:?}")),
    };
    Ok(RefundResult {
        status,
        provider_reference: Some(answer.id),
        failure: (status == RefundStatus::Failed).then(|| paygate_plugin_api::Declined {
            code: "provider_declined".into(),
            message: "the acquirer refused the refund".into(),
        }),
        amount: Some(money(answer.amount, exponent)),
    })
}
