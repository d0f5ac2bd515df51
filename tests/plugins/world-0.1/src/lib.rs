//! A wallet plugin built for `paygate:provider@0.1.0` (`plugin-api/wit/0.1.0/provider.wit`,
//! frozen), as one built before 0.2.0 was: the proof that paygated keeps loading and
//! running plugins of every world version it has shipped (tests/e2e/world_versions.rs).
//!
//! It serves provider `legacy`: payment codes are 18 digits starting with `97`; a barcode
//! payment succeeds at once, a qr payment is pending with a QR code and succeeded at the
//! first query; refunds succeed; cancels cancel. Notices are JSON `{"payment_id": "...",
//! "status": "succeeded" | "failed"}` or `{"refund_id": "...", "status": "succeeded"}` with
//! `Legacy-Signature: <hex HMAC-SHA256 of the body>` under the merchant's key
//! `notify_secret`. It uses each import (`keys`, `clock`, `log`; `http` answers "denied"
//! without an allow-listed host) so that the 0.1.0 imports are exercised too.

wit_bindgen::generate!({ path: "../../../plugin-api/wit/0.1.0", world: "plugin" });

use exports::paygate::provider::provider::Guest;
use paygate::provider::types::*;
use paygate::provider::{clock, http, keys, log};

struct Legacy;

const CODE_PREFIX: &str = "97";

fn reference(id: &str) -> Option<String> {
    Some(format!("legacy_{id}"))
}

fn payment(status: PaymentStatus, payment_id: &str) -> PaymentResult {
    PaymentResult {
        status,
        provider_reference: reference(payment_id),
        qr_code: None,
        failure: None,
        payer: None,
    }
}

fn refund(status: RefundStatus, refund_id: &str) -> RefundResult {
    RefundResult {
        status,
        provider_reference: reference(refund_id),
        failure: None,
    }
}

fn unsupported(operation: &str) -> ProviderError {
    ProviderError::InvalidRequest(format!("{operation} is not supported by this plugin"))
}

fn reply(status: u16, text: &str) -> Reply {
    Reply {
        status,
        content_type: "text/plain; charset=utf-8".into(),
        body: text.as_bytes().to_vec(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Guest for Legacy {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "legacy".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            providers: vec![ProviderInfo {
                name: "legacy".into(),
                display_name: "Legacy Wallet (world 0.1.0)".into(),
                methods: vec![Method::Qr, Method::Barcode],
                currencies: vec!["CNY".into()],
                payment_codes: vec![CodePattern {
                    prefixes: vec![CODE_PREFIX.into()],
                    min_length: 18,
                    max_length: 18,
                }],
                operations: vec![
                    Operation::CreatePayment,
                    Operation::QueryPayment,
                    Operation::CancelPayment,
                    Operation::Refund,
                    Operation::QueryRefund,
                    Operation::ParseNotification,
                ],
                fees: vec![Fee {
                    method: None,
                    rate_basis_points: 38,
                }],
            }],
        }
    }

    fn create_payment(request: CreatePaymentRequest) -> Result<PaymentResult, ProviderError> {
        log::write(
            log::Level::Info,
            &format!(
                "legacy: {} minor {} at {}",
                request.amount.minor,
                request.amount.currency,
                clock::now_millis()
            ),
        );
        match request.method {
            Method::Barcode => {
                let code = request.auth_code.as_deref().unwrap_or("");
                if !(code.len() == 18
                    && code.starts_with(CODE_PREFIX)
                    && code.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err(ProviderError::Declined(Declined {
                        code: "auth_code_invalid".into(),
                        message: "legacy payment codes are 18 digits starting with 97".into(),
                    }));
                }
                Ok(PaymentResult {
                    payer: Some(format!("legacy_payer_{}", &code[14..])),
                    ..payment(PaymentStatus::Succeeded, &request.payment_id)
                })
            }
            Method::Qr | Method::Link => Ok(PaymentResult {
                qr_code: Some(format!("legacy://pay/{}", request.payment_id)),
                ..payment(PaymentStatus::Pending, &request.payment_id)
            }),
        }
    }

    fn query_payment(payment_ref: PaymentRef) -> Result<PaymentResult, ProviderError> {
        Ok(payment(PaymentStatus::Succeeded, &payment_ref.payment_id))
    }

    fn cancel_payment(payment_ref: PaymentRef) -> Result<PaymentResult, ProviderError> {
        Ok(payment(PaymentStatus::Cancelled, &payment_ref.payment_id))
    }

    fn refund(request: RefundRequest) -> Result<RefundResult, ProviderError> {
        Ok(refund(RefundStatus::Succeeded, &request.refund_id))
    }

    fn query_refund(refund_ref: RefundRef) -> Result<RefundResult, ProviderError> {
        Ok(refund(RefundStatus::Succeeded, &refund_ref.refund_id))
    }

    fn parse_notification(
        notice: Notification,
    ) -> Result<NotificationResult, NotificationRejected> {
        let reject = |reason: String| NotificationRejected {
            reason,
            reply: reply(400, "FAIL"),
        };
        // No host is allow-listed for this plugin: the host refuses, and the 0.1.0 http
        // import's error comes back converted.
        match http::send(&http::Request {
            method: "GET".into(),
            url: "https://legacy.example/ping".into(),
            headers: Vec::new(),
            body: Vec::new(),
        }) {
            Err(http::Error::Denied(_)) => {}
            other => return Err(reject(format!("the host did not refuse: {other:?}"))),
        }
        let signature = notice
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("legacy-signature"))
            .map(|(_, v)| v.trim().to_owned())
            .ok_or_else(|| reject("no Legacy-Signature header".into()))?;
        let expected = keys::hmac_sha256("notify_secret", &notice.body)
            .map_err(|e| reject(format!("cannot verify: {e:?}")))?;
        if hex(&expected) != signature {
            return Err(reject("signature does not verify".into()));
        }
        let body: serde_json::Value = serde_json::from_slice(&notice.body)
            .map_err(|e| reject(format!("body is not JSON: {e}")))?;
        let update = if let Some(refund_id) = body["refund_id"].as_str() {
            match body["status"].as_str() {
                Some("succeeded") => Update::Refund(RefundUpdate {
                    refund_id: refund_id.to_owned(),
                    outcome: refund(RefundStatus::Succeeded, refund_id),
                }),
                other => return Err(reject(format!("unknown refund status {other:?}"))),
            }
        } else {
            let payment_id = body["payment_id"]
                .as_str()
                .ok_or_else(|| reject("payment_id missing".into()))?;
            let status = match body["status"].as_str() {
                Some("succeeded") => PaymentStatus::Succeeded,
                Some("failed") => PaymentStatus::Failed,
                other => return Err(reject(format!("unknown status {other:?}"))),
            };
            Update::Payment(PaymentUpdate {
                payment_id: payment_id.to_owned(),
                outcome: PaymentResult {
                    failure: (status == PaymentStatus::Failed).then(|| Declined {
                        code: "provider_declined".into(),
                        message: "legacy notice: failed".into(),
                    }),
                    ..payment(status, payment_id)
                },
            })
        };
        Ok(NotificationResult {
            updates: vec![update],
            reply: reply(200, "OK"),
        })
    }

    fn onboard(_request: OnboardingRequest) -> Result<OnboardingResult, ProviderError> {
        Err(unsupported("onboard"))
    }

    fn query_onboarding(_application: OnboardingRef) -> Result<OnboardingResult, ProviderError> {
        Err(unsupported("query-onboarding"))
    }

    fn bind_account(_request: BindingRequest) -> Result<BindingResult, ProviderError> {
        Err(unsupported("bind-account"))
    }

    fn query_binding(_binding: BindingRef) -> Result<BindingResult, ProviderError> {
        Err(unsupported("query-binding"))
    }

    fn parse_bill(_request: BillRequest) -> Result<Vec<BillEntry>, ProviderError> {
        Err(unsupported("parse-bill"))
    }
}

export!(Legacy);
