//! A wallet plugin built for `paygate:provider@0.2.0` (`plugin-api/wit/0.2.0/provider.wit`,
//! frozen), as one built before 0.3.0 was (tests/e2e/world_versions.rs).
//!
//! It serves provider `legacy2`: payment codes are 18 digits starting with `96`. A barcode
//! payment succeeds at once and reports its amount; its provider reference is
//! `l2_<first 8 hex digits of HMAC-SHA256(notify_secret, payment id)>`, so that the 0.2.0
//! `keys` import is exercised (and `clock` and `log` with it). A qr payment is pending and
//! succeeded at the first query; refunds succeed and report their amount. No notices.

wit_bindgen::generate!({ path: "../../../plugin-api/wit/0.2.0", world: "plugin" });

use exports::paygate::provider::provider::Guest;
use paygate::provider::types::*;
use paygate::provider::{clock, keys, log};

struct Legacy2;

fn refused(operation: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!("legacy2 does not {operation}"))
}

fn reference(payment_id: &str) -> Result<String, ProviderError> {
    let mac = keys::hmac_sha256("notify_secret", payment_id.as_bytes())
        .map_err(|e| ProviderError::InvalidRequest(format!("no key: {e:?}")))?;
    Ok(format!(
        "l2_{}",
        mac.iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

fn result(status: PaymentStatus, amount: &Money) -> PaymentResult {
    PaymentResult {
        status,
        provider_reference: None,
        qr_code: None,
        failure: None,
        payer: None,
        amount: Some(amount.clone()),
    }
}

impl Guest for Legacy2 {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "legacy2".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            providers: vec![ProviderInfo {
                name: "legacy2".into(),
                display_name: "Legacy Wallet (world 0.2.0)".into(),
                methods: vec![Method::Qr, Method::Barcode],
                currencies: vec!["CNY".into()],
                payment_codes: vec![CodePattern {
                    prefixes: vec!["96".into()],
                    min_length: 18,
                    max_length: 18,
                }],
                operations: vec![
                    Operation::CreatePayment,
                    Operation::QueryPayment,
                    Operation::Refund,
                    Operation::QueryRefund,
                ],
                fees: Vec::new(),
            }],
        }
    }

    fn create_payment(request: CreatePaymentRequest) -> Result<PaymentResult, ProviderError> {
        log::write(
            log::Level::Info,
            &format!("legacy2: {} at {}", request.payment_id, clock::now_millis()),
        );
        let provider_reference = Some(reference(&request.payment_id)?);
        Ok(match request.method {
            Method::Barcode => PaymentResult {
                provider_reference,
                payer: Some("legacy2_payer".into()),
                ..result(PaymentStatus::Succeeded, &request.amount)
            },
            Method::Qr | Method::Link => PaymentResult {
                provider_reference,
                qr_code: Some(format!("legacy2://pay/{}", request.payment_id)),
                ..result(PaymentStatus::Pending, &request.amount)
            },
        })
    }

    fn query_payment(payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        Ok(result(PaymentStatus::Succeeded, &payment.amount))
    }

    fn cancel_payment(_payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        Err(refused("cancel"))
    }

    fn refund(request: RefundRequest) -> Result<RefundResult, ProviderError> {
        Ok(RefundResult {
            status: RefundStatus::Succeeded,
            provider_reference: Some(format!("l2_{}", request.refund_id)),
            failure: None,
            amount: Some(request.amount),
        })
    }

    fn query_refund(refund: RefundRef) -> Result<RefundResult, ProviderError> {
        Ok(RefundResult {
            status: RefundStatus::Succeeded,
            provider_reference: refund.provider_reference,
            failure: None,
            amount: Some(refund.amount),
        })
    }

    fn parse_notification(
        _notice: Notification,
    ) -> Result<NotificationResult, NotificationRejected> {
        Err(NotificationRejected {
            reason: "legacy2 sends no notices".into(),
            reply: Reply {
                status: 400,
                content_type: "text/plain".into(),
                body: b"no".to_vec(),
            },
        })
    }

    fn onboard(_request: OnboardingRequest) -> Result<OnboardingResult, ProviderError> {
        Err(refused("onboard"))
    }

    fn query_onboarding(_application: OnboardingRef) -> Result<OnboardingResult, ProviderError> {
        Err(refused("onboard"))
    }

    fn bind_account(_request: BindingRequest) -> Result<BindingResult, ProviderError> {
        Err(refused("bind accounts"))
    }

    fn query_binding(_binding: BindingRef) -> Result<BindingResult, ProviderError> {
        Err(refused("bind accounts"))
    }

    fn parse_bill(_request: BillRequest) -> Result<Vec<BillEntry>, ProviderError> {
        Err(refused("parse bills"))
    }
}

export!(Legacy2);
