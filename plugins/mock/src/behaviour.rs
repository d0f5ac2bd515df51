//! The mock's rules, pure functions of the request (unit-tested natively).
//!
//! Payments are steered by `amount.minor % 100`, refunds by the refund amount's:
//! see README.md for the table.

use paygate_plugin_api::{
    BillEntry, BillEntryKind, BindingResult, BindingStatus, BindingUpdate, Money, Notification,
    NotificationRejected, NotificationResult, OnboardingResult, OnboardingStatus, OnboardingUpdate,
    PaymentResult, PaymentStatus, PaymentUpdate, ProviderError, RefundResult, RefundStatus,
    RefundUpdate, Reply, Update, keys,
};

/// What `create-payment` does.
#[derive(Debug, PartialEq, Eq)]
pub enum Create {
    /// Barcode: succeeded at once. QR/link: pending.
    Approve,
    /// Pending at create (barcode "user paying").
    Pending,
    /// Barcode: declined with the code at once. QR/link: pending, failed at query.
    Decline(&'static str),
    UnknownOutcome,
    Unavailable,
    /// Answers after this many milliseconds.
    Slow(u64),
}

/// What `query-payment` reports.
#[derive(Debug, PartialEq, Eq)]
pub enum Query {
    Succeeded,
    Pending,
    Failed(&'static str),
    Unavailable,
}

const DECLINES: [(i64, &str); 6] = [
    (51, "insufficient_funds"),
    (52, "auth_code_invalid"),
    (53, "auth_code_expired"),
    (54, "payer_cancelled"),
    (55, "risk_rejected"),
    (56, "provider_declined"),
];

fn decline_code(trigger: i64) -> Option<&'static str> {
    DECLINES
        .iter()
        .find(|(t, _)| *t == trigger)
        .map(|(_, code)| *code)
}

pub fn create(minor: i64) -> Create {
    let trigger = minor.rem_euclid(100);
    if let Some(code) = decline_code(trigger) {
        return Create::Decline(code);
    }
    match trigger {
        60 | 61 => Create::Pending,
        62 | 65 => Create::UnknownOutcome,
        63 => Create::Unavailable,
        64 => Create::Slow(1500),
        _ => Create::Approve,
    }
}

pub fn query(minor: i64) -> Query {
    let trigger = minor.rem_euclid(100);
    if let Some(code) = decline_code(trigger) {
        return Query::Failed(code);
    }
    match trigger {
        60 => Query::Pending,
        65 => Query::Unavailable,
        _ => Query::Succeeded,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum RefundCreate {
    Succeed,
    Pending,
    Decline,
    UnknownOutcome,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RefundQuery {
    Succeeded,
}

pub fn refund_create(minor: i64) -> RefundCreate {
    match minor.rem_euclid(100) {
        71 => RefundCreate::Decline,
        72 => RefundCreate::Pending,
        73 => RefundCreate::UnknownOutcome,
        _ => RefundCreate::Succeed,
    }
}

pub fn refund_query(_minor: i64) -> RefundQuery {
    RefundQuery::Succeeded
}

/// Mock notices: a JSON body `{"payment_id": "...", "status": "succeeded" | "failed" |
/// "cancelled" | "expired"}` with header `Mock-Signature: <hex HMAC-SHA256 of the body>`
/// under the merchant's key `notify_secret`. A payment or refund notice may state an amount
/// (`"amount": "12.50", "currency": "CNY"`: the order's, or the refund's own), which is
/// reported as `outcome.amount`; a malformed one refuses the notice.
pub fn parse_notification(
    notice: &Notification,
) -> Result<NotificationResult, NotificationRejected> {
    let reject = |reason: String| NotificationRejected {
        reason,
        reply: Reply::text(400, "FAIL"),
    };
    let signature = notice
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("mock-signature"))
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| reject("no Mock-Signature header".into()))?;
    let expected = keys::hmac_sha256("notify_secret", &notice.body)
        .map_err(|e| reject(format!("cannot verify: {e}")))?;
    if !constant_time_eq(hex(&expected).as_bytes(), signature.trim().as_bytes()) {
        return Err(reject("signature does not verify".into()));
    }
    let body: serde_json::Value = serde_json::from_slice(&notice.body)
        .map_err(|e| reject(format!("body is not JSON: {e}")))?;
    if let Some(activation_id) = body["activation_id"].as_str() {
        let status = match body["status"].as_str() {
            Some("under_review") => OnboardingStatus::UnderReview,
            Some("active") => OnboardingStatus::Active,
            Some("rejected") => OnboardingStatus::Rejected,
            other => return Err(reject(format!("unknown onboarding status {other:?}"))),
        };
        return Ok(NotificationResult {
            updates: vec![Update::Onboarding(OnboardingUpdate {
                activation_id: activation_id.to_owned(),
                outcome: OnboardingResult {
                    status,
                    provider_reference: Some(format!("mock_{activation_id}")),
                    rejection_reason: body["reason"].as_str().map(str::to_owned),
                    next_step_json: None,
                },
            })],
            reply: Reply::text(200, "OK"),
        });
    }
    if let Some(account_id) = body["bank_account_id"].as_str() {
        let status = match body["status"].as_str() {
            Some("verified") => BindingStatus::Verified,
            Some("failed") => BindingStatus::Failed,
            other => return Err(reject(format!("unknown binding status {other:?}"))),
        };
        return Ok(NotificationResult {
            updates: vec![Update::Binding(BindingUpdate {
                bank_account_id: account_id.to_owned(),
                outcome: BindingResult {
                    status,
                    provider_reference: Some(format!("mock_{account_id}")),
                    verification_json: None,
                    failure: body["reason"].as_str().map(str::to_owned),
                },
            })],
            reply: Reply::text(200, "OK"),
        });
    }
    if let Some(refund_id) = body["refund_id"].as_str() {
        let status = match body["status"].as_str() {
            Some("succeeded") => RefundStatus::Succeeded,
            Some("failed") => RefundStatus::Failed,
            other => return Err(reject(format!("unknown refund status {other:?}"))),
        };
        let amount = notice_amount(&body).map_err(reject)?;
        return Ok(NotificationResult {
            updates: vec![Update::Refund(RefundUpdate {
                refund_id: refund_id.to_owned(),
                outcome: RefundResult {
                    status,
                    provider_reference: Some(format!("mock_{refund_id}")),
                    failure: (status == RefundStatus::Failed).then(|| {
                        paygate_plugin_api::Declined {
                            code: "provider_declined".into(),
                            message: "mock notice: refund failed".into(),
                        }
                    }),
                    amount,
                },
            })],
            reply: Reply::text(200, "OK"),
        });
    }
    let payment_id = body["payment_id"]
        .as_str()
        .ok_or_else(|| reject("payment_id missing".into()))?;
    let status = match body["status"].as_str() {
        Some("succeeded") => PaymentStatus::Succeeded,
        Some("failed") => PaymentStatus::Failed,
        Some("cancelled") => PaymentStatus::Cancelled,
        Some("expired") => PaymentStatus::Expired,
        other => return Err(reject(format!("unknown status {other:?}"))),
    };
    let amount = notice_amount(&body).map_err(reject)?;
    Ok(NotificationResult {
        updates: vec![Update::Payment(PaymentUpdate {
            payment_id: payment_id.to_owned(),
            outcome: PaymentResult {
                provider_reference: Some(format!("mock_{payment_id}")),
                failure: (status == PaymentStatus::Failed).then(|| paygate_plugin_api::Declined {
                    code: "provider_declined".into(),
                    message: "mock notice: failed".into(),
                }),
                amount,
                ..PaymentResult::with_status(status)
            },
        })],
        reply: Reply::text(200, "OK"),
    })
}

/// The amount a notice states: `"amount"` (a plain decimal string, more than zero, at
/// most the currency's decimals) with `"currency"` (one the mock serves); `None` when the
/// notice states none. Anything else is malformed.
pub fn notice_amount(body: &serde_json::Value) -> Result<Option<Money>, String> {
    let (amount, currency) = match (body.get("amount"), body.get("currency")) {
        (None, None) => return Ok(None),
        (Some(serde_json::Value::String(a)), Some(serde_json::Value::String(c))) => (a, c),
        (Some(_), None) | (None, Some(_)) => {
            return Err("amount and currency come together".into());
        }
        _ => return Err("amount and currency must be strings".into()),
    };
    let exponent = match currency.as_str() {
        "JPY" | "KRW" => 0,
        "CNY" | "USD" | "EUR" | "HKD" | "GBP" | "SGD" => 2,
        other => return Err(format!("currency {other:?} is not one the mock serves")),
    };
    let money = Money::from_decimal(amount, currency, exponent)
        .map_err(|e| format!("malformed amount: {e}"))?;
    if money.minor <= 0 {
        return Err(format!("amount {amount:?} is not more than zero"));
    }
    Ok(Some(money))
}

/// Mock bills: CSV lines `kind,payment_id,refund_id,amount_minor,currency,fee_minor`
/// (`kind` is `payment` or `refund`; `refund_id` empty for payments), exponent 2.
pub fn parse_bill(content: &[u8]) -> Result<Vec<BillEntry>, ProviderError> {
    let text = std::str::from_utf8(content)
        .map_err(|_| ProviderError::InvalidRequest("bill is not UTF-8".into()))?;
    let mut entries = Vec::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad =
            |what: &str| ProviderError::InvalidRequest(format!("bill line {}: {what}", number + 1));
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [kind, payment_id, refund_id, amount, currency, fee] = fields[..] else {
            return Err(bad("expected 6 fields"));
        };
        let kind = match kind {
            "payment" => BillEntryKind::Payment,
            "refund" => BillEntryKind::Refund,
            _ => return Err(bad("kind must be payment or refund")),
        };
        let money = |minor: &str| -> Result<Money, ProviderError> {
            Ok(Money {
                minor: minor.parse().map_err(|_| bad("amount is not an integer"))?,
                currency: currency.to_owned(),
                exponent: 2,
            })
        };
        entries.push(BillEntry {
            kind,
            payment_id: payment_id.to_owned(),
            refund_id: (!refund_id.is_empty()).then(|| refund_id.to_owned()),
            provider_reference: Some(format!("mock_{payment_id}")),
            amount: money(amount)?,
            fee: Some(money(fee)?),
            occurred_at: None,
            line: u32::try_from(number + 1).ok(),
        });
    }
    Ok(entries)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_pick_the_documented_behaviour() {
        assert_eq!(create(1250), Create::Approve);
        assert_eq!(create(1251), Create::Decline("insufficient_funds"));
        assert_eq!(create(1256), Create::Decline("provider_declined"));
        assert_eq!(create(1260), Create::Pending);
        assert_eq!(query(1260), Query::Pending);
        assert_eq!(create(1261), Create::Pending);
        assert_eq!(query(1261), Query::Succeeded);
        assert_eq!(create(1262), Create::UnknownOutcome);
        assert_eq!(create(1263), Create::Unavailable);
        assert_eq!(create(1264), Create::Slow(1500));
        assert_eq!(query(1265), Query::Unavailable);
        assert_eq!(query(1253), Query::Failed("auth_code_expired"));
    }

    #[test]
    fn refunds_pick_the_documented_behaviour() {
        assert_eq!(refund_create(500), RefundCreate::Succeed);
        assert_eq!(refund_create(571), RefundCreate::Decline);
        assert_eq!(refund_create(572), RefundCreate::Pending);
        assert_eq!(refund_create(573), RefundCreate::UnknownOutcome);
    }

    #[test]
    fn notice_amounts_are_read_strictly() {
        use serde_json::json;
        let read = |body: serde_json::Value| notice_amount(&body).map(|m| m.map(|m| m.minor));
        assert_eq!(read(json!({"payment_id": "pay_1"})), Ok(None));
        assert_eq!(
            read(json!({"amount": "0.01", "currency": "CNY"})),
            Ok(Some(1))
        );
        assert_eq!(
            read(json!({"amount": "12.50", "currency": "CNY"})),
            Ok(Some(1250))
        );
        assert_eq!(
            read(json!({"amount": "1500", "currency": "JPY"})),
            Ok(Some(1500))
        );
        for bad in [
            json!({"amount": "abc", "currency": "CNY"}),
            json!({"amount": "-1.00", "currency": "CNY"}),
            json!({"amount": "0.00", "currency": "CNY"}),
            json!({"amount": "1.001", "currency": "CNY"}),
            json!({"amount": "1.5", "currency": "JPY"}),
            json!({"amount": "99999999999999999999", "currency": "CNY"}),
            json!({"amount": "", "currency": "CNY"}),
            json!({"amount": 12.5, "currency": "CNY"}),
            json!({"amount": "12.50"}),
            json!({"currency": "CNY"}),
            json!({"amount": "12.50", "currency": "XXX"}),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn bills_parse_and_bad_lines_are_named() {
        let entries =
            parse_bill(b"payment,pay_1,,1250,CNY,8\nrefund,pay_1,re_1,500,CNY,0\n").unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].amount.minor, 1250);
        assert_eq!(entries[1].refund_id.as_deref(), Some("re_1"));
        assert_eq!((entries[0].line, entries[1].line), (Some(1), Some(2)));
        match parse_bill(b"payment,pay_1,,12.50,CNY,8").unwrap_err() {
            ProviderError::InvalidRequest(m) => assert!(m.contains("line 1"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(parse_bill(b"payment,pay_1").is_err());
        assert!(parse_bill(&[0xff]).is_err());
    }
}
