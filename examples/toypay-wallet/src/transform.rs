//! Our requests into Toy Pay's JSON, and Toy Pay's verified answers into our results. Pure:
//! no host calls, so every mapping is unit-tested natively (`cargo test -p toypay-wallet`).

use paygate_plugin_api::{
    CreatePaymentRequest, Declined, Method, Money, PaymentResult, PaymentStatus, ProviderError,
    RefundRequest, RefundResult, RefundStatus,
};
use serde::Deserialize;
use serde_json::json;

/// Toy Pay takes CNY in fen.
const CURRENCY: &str = "CNY";
const EXPONENT: u8 = 2;

/// What a call is, for its error messages and for what a failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Create,
    Query,
    Cancel,
    Refund,
    QueryRefund,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Create => "create payment",
            Call::Query => "query payment",
            Call::Cancel => "cancel payment",
            Call::Refund => "refund",
            Call::QueryRefund => "query refund",
        }
    }

    /// Whether the call may move money: then an answer we did not get is an unknown outcome.
    fn has_effect(self) -> bool {
        matches!(self, Call::Create | Call::Cancel | Call::Refund)
    }
}

/// An answer we did not get or cannot trust: for a call that may move money, it may have
/// happened (the gateway queries); for a query, nothing is known (ask again).
pub fn uncertain(call: Call, what: impl std::fmt::Display) -> ProviderError {
    let message = format!("toypay {}: {what}", call.name());
    if call.has_effect() {
        ProviderError::UnknownOutcome(message)
    } else {
        ProviderError::Unavailable(message)
    }
}

fn amount_value(amount: &Money) -> Result<i64, ProviderError> {
    if amount.currency != CURRENCY || amount.exponent != EXPONENT || amount.minor <= 0 {
        return Err(ProviderError::InvalidRequest(format!(
            "toypay takes positive CNY amounts in fen, not {} {} (exponent {})",
            amount.minor, amount.currency, amount.exponent
        )));
    }
    Ok(amount.minor)
}

/// `POST /v1/payments`.
pub fn payment_body(request: &CreatePaymentRequest) -> Result<String, ProviderError> {
    let value = amount_value(&request.amount)?;
    let (method, code) = match request.method {
        Method::Qr | Method::Link => ("qr", None),
        Method::Barcode => ("code", request.auth_code.as_deref()),
        Method::WalletToken => {
            return Err(ProviderError::InvalidRequest(
                "toypay takes no wallet tokens".into(),
            ));
        }
    };
    let mut body = json!({
        "reference": request.payment_id,
        "amount": {"value": value, "currency": CURRENCY},
        "method": method,
    });
    if let Some(code) = code {
        body["payment_code"] = json!(code);
    }
    if let Some(description) = &request.description {
        body["description"] = json!(description);
    }
    Ok(body.to_string())
}

/// `POST /v1/payments/{reference}/refunds`.
pub fn refund_body(request: &RefundRequest) -> Result<String, ProviderError> {
    let value = amount_value(&request.amount)?;
    Ok(
        json!({"reference": request.refund_id, "amount": {"value": value, "currency": CURRENCY}})
            .to_string(),
    )
}

#[derive(Debug, Deserialize)]
struct RawAmount {
    value: i64,
    currency: String,
}

#[derive(Debug, Deserialize)]
struct RawPayment {
    id: String,
    status: String,
    amount: RawAmount,
    qr_url: Option<String>,
    failure_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawRefund {
    id: String,
    status: String,
    amount: RawAmount,
}

#[derive(Debug, Deserialize)]
struct RawError {
    error: RawErrorBody,
}

#[derive(Debug, Deserialize)]
struct RawErrorBody {
    code: String,
    message: String,
}

fn money(call: Call, amount: RawAmount) -> Result<Money, ProviderError> {
    if amount.currency != CURRENCY || amount.value <= 0 {
        return Err(uncertain(call, "an answer with an amount we cannot read"));
    }
    Ok(Money {
        minor: amount.value,
        currency: amount.currency,
        exponent: EXPONENT,
    })
}

/// A Toy Pay error answer: its code and message (`unknown` when it is not one).
fn failure(body: &[u8]) -> (String, String) {
    serde_json::from_slice::<RawError>(body)
        .map(|e| (e.error.code, e.error.message))
        .unwrap_or_else(|_| ("unknown".into(), "an answer that is not Toy Pay's".into()))
}

/// The declined code of ours for Toy Pay's `failure_code`.
fn declined(failure_code: Option<&str>) -> Declined {
    let (code, message) = match failure_code {
        Some("invalid_code") => ("auth_code_invalid", "the payment code is not valid"),
        _ => ("insufficient_funds", "the payer's balance is too low"),
    };
    Declined {
        code: code.into(),
        message: message.into(),
    }
}

/// A verified answer about a payment (create, query, cancel).
pub fn payment_answer(
    call: Call,
    status: u16,
    body: &[u8],
) -> Result<PaymentResult, ProviderError> {
    if !(200..300).contains(&status) {
        let (code, message) = failure(body);
        let what = format!("Toy Pay answered {status} {code}: {message}");
        return Err(match (status, code.as_str()) {
            (404, "not_found") if call == Call::Query => ProviderError::Unavailable(format!(
                "toypay: no payment under this reference (nothing was charged under it); {what}"
            )),
            (400 | 401 | 409, _) => {
                ProviderError::InvalidRequest(format!("toypay {}: {what}", call.name()))
            }
            _ => uncertain(call, what),
        });
    }
    let raw: RawPayment = serde_json::from_slice(body)
        .map_err(|e| uncertain(call, format!("an answer that is not a payment: {e}")))?;
    let status = match raw.status.as_str() {
        "pending" => PaymentStatus::Pending,
        "succeeded" => PaymentStatus::Succeeded,
        "failed" => PaymentStatus::Failed,
        "cancelled" => PaymentStatus::Cancelled,
        other => return Err(uncertain(call, format!("an unknown status {other:?}"))),
    };
    if status == PaymentStatus::Failed && call == Call::Create {
        return Err(ProviderError::Declined(declined(
            raw.failure_code.as_deref(),
        )));
    }
    Ok(PaymentResult {
        provider_reference: Some(raw.id),
        qr_code: raw.qr_url,
        failure: (status == PaymentStatus::Failed).then(|| declined(raw.failure_code.as_deref())),
        amount: Some(money(call, raw.amount)?),
        ..PaymentResult::with_status(status)
    })
}

/// A verified answer about a refund.
pub fn refund_answer(call: Call, status: u16, body: &[u8]) -> Result<RefundResult, ProviderError> {
    if !(200..300).contains(&status) {
        let (code, message) = failure(body);
        let what = format!("Toy Pay answered {status} {code}: {message}");
        return Err(match (status, code.as_str()) {
            (404, _) if call == Call::QueryRefund => ProviderError::Unavailable(format!(
                "toypay: no refund under this reference (nothing was refunded under it); {what}"
            )),
            (400 | 401 | 404 | 409 | 422, _) => {
                ProviderError::InvalidRequest(format!("toypay {}: {what}", call.name()))
            }
            _ => uncertain(call, what),
        });
    }
    let raw: RawRefund = serde_json::from_slice(body)
        .map_err(|e| uncertain(call, format!("an answer that is not a refund: {e}")))?;
    let status = match raw.status.as_str() {
        "pending" => RefundStatus::Pending,
        "succeeded" => RefundStatus::Succeeded,
        "failed" => RefundStatus::Failed,
        other => return Err(uncertain(call, format!("an unknown status {other:?}"))),
    };
    Ok(RefundResult {
        provider_reference: Some(raw.id),
        amount: Some(money(call, raw.amount)?),
        ..RefundResult::with_status(status)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paid(status: &str) -> String {
        json!({"id": "tp_1", "reference": "pay_1", "status": status,
               "amount": {"value": 1234, "currency": "CNY"}, "qr_url": null,
               "failure_code": if status == "failed" { json!("insufficient_funds") } else { json!(null) }})
        .to_string()
    }

    #[test]
    fn payment_answers_map_to_results() {
        let ok = payment_answer(Call::Query, 200, paid("succeeded").as_bytes()).unwrap();
        assert_eq!(ok.status, PaymentStatus::Succeeded);
        assert_eq!(ok.amount.unwrap().minor, 1234);
        let failed = payment_answer(Call::Query, 200, paid("failed").as_bytes()).unwrap();
        assert_eq!(failed.failure.unwrap().code, "insufficient_funds");
        // A create the payer declined is a decline.
        assert!(matches!(
            payment_answer(Call::Create, 201, paid("failed").as_bytes()),
            Err(ProviderError::Declined(d)) if d.code == "insufficient_funds"
        ));
    }

    #[test]
    fn failures_are_classed_by_what_they_mean() {
        let not_found = br#"{"error":{"code":"not_found","message":"no such payment"}}"#;
        assert!(matches!(
            payment_answer(Call::Query, 404, not_found),
            Err(ProviderError::Unavailable(_))
        ));
        let reused = br#"{"error":{"code":"reference_reused","message":"x"}}"#;
        assert!(matches!(
            payment_answer(Call::Create, 409, reused),
            Err(ProviderError::InvalidRequest(_))
        ));
        for (status, body) in [
            (500, &b"{}"[..]),
            (200, b"<html>"),
            (200, br#"{"status":"weird"}"#),
        ] {
            assert!(matches!(
                payment_answer(Call::Create, status, body),
                Err(ProviderError::UnknownOutcome(_))
            ));
            assert!(matches!(
                payment_answer(Call::Query, status, body),
                Err(ProviderError::Unavailable(_))
            ));
        }
        let too_much = br#"{"error":{"code":"amount_exceeds_payment","message":"x"}}"#;
        assert!(matches!(
            refund_answer(Call::Refund, 422, too_much),
            Err(ProviderError::InvalidRequest(_))
        ));
        assert!(matches!(
            refund_answer(Call::Refund, 502, b""),
            Err(ProviderError::UnknownOutcome(_))
        ));
        assert!(matches!(
            refund_answer(Call::QueryRefund, 404, b""),
            Err(ProviderError::Unavailable(_))
        ));
    }

    #[test]
    fn amounts_other_than_cny_fen_are_refused_before_sending() {
        let bad = Money {
            minor: 100,
            currency: "USD".into(),
            exponent: 2,
        };
        assert!(matches!(
            amount_value(&bad),
            Err(ProviderError::InvalidRequest(_))
        ));
        let bad = Money {
            minor: 0,
            currency: "CNY".into(),
            exponent: 2,
        };
        assert!(amount_value(&bad).is_err());
        let answer = json!({"id": "tp_1", "status": "succeeded", "amount": {"value": -1, "currency": "CNY"}}).to_string();
        assert!(payment_answer(Call::Query, 200, answer.as_bytes()).is_err());
    }
}
