//! The mock wallet: deterministic, no outbound I/O, every operation supported. Behaviour is
//! chosen by the last two digits of the amount in minor units (see README.md), so a test
//! picks an outcome by picking an amount. It keeps no state: a fresh instance serves every
//! call, so "pending, then succeeded at the first query" is a rule, not a memory.

use paygate_plugin_api::*;

mod behaviour;

use behaviour::{Create, Query, RefundCreate, RefundQuery};

pub struct Mock;

/// Payment codes of the mock wallet: 18 digits starting with 99.
const CODE_PREFIX: &str = "99";

impl Provider for Mock {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "mock".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            providers: vec![ProviderInfo {
                name: "mock".into(),
                display_name: "Mock Wallet".into(),
                methods: vec![Method::Qr, Method::Barcode, Method::Link],
                currencies: ["CNY", "USD", "EUR", "HKD", "JPY", "KRW", "GBP", "SGD"]
                    .map(String::from)
                    .to_vec(),
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
                    Operation::Onboard,
                    Operation::QueryOnboarding,
                    Operation::BindAccount,
                    Operation::QueryBinding,
                    Operation::ParseBill,
                ],
                fees: vec![Fee {
                    method: None,
                    rate_basis_points: 60,
                }],
            }],
        }
    }

    fn create_payment(request: CreatePaymentRequest) -> Result<PaymentResult, ProviderError> {
        if request.method == Method::Barcode {
            let code = request.auth_code.as_deref().unwrap_or("");
            if !(code.len() == 18
                && code.starts_with(CODE_PREFIX)
                && code.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(ProviderError::declined(
                    "auth_code_invalid",
                    "mock payment codes are 18 digits starting with 99",
                ));
            }
        }
        let reference = Some(reference_for(&request.payment_id));
        // The mock "provider" reports the order's amount in every answer, as real ones do.
        let pending = PaymentResult {
            provider_reference: reference.clone(),
            qr_code: (request.method != Method::Barcode)
                .then(|| format!("mock://pay/{}", request.payment_id)),
            amount: Some(request.amount.clone()),
            ..PaymentResult::with_status(PaymentStatus::Pending)
        };
        match behaviour::create(request.amount.minor) {
            Create::Approve if request.method == Method::Barcode => Ok(PaymentResult {
                status: PaymentStatus::Succeeded,
                payer: Some(payer_for(request.auth_code.as_deref().unwrap_or(""))),
                ..pending
            }),
            Create::Approve | Create::Pending => Ok(pending),
            Create::Decline(code) if request.method == Method::Barcode => Err(
                ProviderError::declined(code, format!("mock wallet declined: {code}")),
            ),
            Create::Decline(_) => Ok(pending),
            Create::UnknownOutcome => Err(ProviderError::UnknownOutcome(
                "mock: the answer was lost".into(),
            )),
            Create::Unavailable => Err(ProviderError::Unavailable("mock: try again".into())),
            Create::Slow(ms) => {
                let until = clock::now_millis() + ms;
                while clock::now_millis() < until {
                    std::hint::spin_loop();
                }
                Ok(PaymentResult {
                    status: if request.method == Method::Barcode {
                        PaymentStatus::Succeeded
                    } else {
                        PaymentStatus::Pending
                    },
                    ..pending
                })
            }
        }
    }

    fn query_payment(payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        let reference = Some(reference_for(&payment.payment_id));
        let result = |status| PaymentResult {
            provider_reference: reference.clone(),
            amount: Some(payment.amount.clone()),
            ..PaymentResult::with_status(status)
        };
        match behaviour::query(payment.amount.minor) {
            Query::Succeeded => Ok(result(PaymentStatus::Succeeded)),
            Query::Pending => Ok(result(PaymentStatus::Pending)),
            Query::Failed(code) => Ok(PaymentResult {
                failure: Some(Declined {
                    code: code.into(),
                    message: format!("mock wallet declined: {code}"),
                }),
                ..result(PaymentStatus::Failed)
            }),
            Query::Unavailable => Err(ProviderError::Unavailable("mock: try again".into())),
        }
    }

    fn cancel_payment(payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        Ok(PaymentResult {
            provider_reference: Some(reference_for(&payment.payment_id)),
            amount: Some(payment.amount),
            ..PaymentResult::with_status(PaymentStatus::Cancelled)
        })
    }

    fn refund(request: RefundRequest) -> Result<RefundResult, ProviderError> {
        let reference = Some(reference_for(&request.refund_id));
        let result = |status| refund_result(status, reference, request.amount.clone());
        match behaviour::refund_create(request.amount.minor) {
            RefundCreate::Succeed => Ok(result(RefundStatus::Succeeded)),
            RefundCreate::Pending => Ok(result(RefundStatus::Pending)),
            RefundCreate::Decline => Err(ProviderError::declined(
                "provider_declined",
                "mock wallet declined the refund",
            )),
            RefundCreate::UnknownOutcome => Err(ProviderError::UnknownOutcome(
                "mock: the refund answer was lost".into(),
            )),
        }
    }

    fn query_refund(refund: RefundRef) -> Result<RefundResult, ProviderError> {
        let reference = Some(reference_for(&refund.refund_id));
        match behaviour::refund_query(refund.amount.minor) {
            RefundQuery::Succeeded => Ok(refund_result(
                RefundStatus::Succeeded,
                reference,
                refund.amount,
            )),
        }
    }

    fn parse_notification(
        notice: Notification,
    ) -> Result<NotificationResult, NotificationRejected> {
        behaviour::parse_notification(&notice)
    }

    fn onboard(request: OnboardingRequest) -> Result<OnboardingResult, ProviderError> {
        // A merchant named "Unsigned ..." must sign the agreement before the review goes on.
        let unsigned = serde_json::from_str::<serde_json::Value>(&request.materials_json)
            .ok()
            .and_then(|m| m["name"].as_str().map(|n| n.starts_with("Unsigned ")))
            .unwrap_or(false);
        Ok(OnboardingResult {
            status: OnboardingStatus::UnderReview,
            provider_reference: Some(reference_for(&request.activation_id)),
            rejection_reason: None,
            next_step_json: unsigned.then(|| {
                serde_json::json!({"type": "sign_agreement",
                                   "url": format!("https://mock.example/sign/{}", request.activation_id)})
                .to_string()
            }),
        })
    }

    fn query_onboarding(application: OnboardingRef) -> Result<OnboardingResult, ProviderError> {
        let rejected = application
            .merchant
            .settings_json
            .contains("\"mock_reject\":true");
        Ok(OnboardingResult {
            status: if rejected {
                OnboardingStatus::Rejected
            } else {
                OnboardingStatus::Active
            },
            provider_reference: Some(reference_for(&application.activation_id)),
            rejection_reason: rejected.then(|| "mock: business licence unreadable".into()),
            next_step_json: None,
        })
    }

    fn bind_account(request: BindingRequest) -> Result<BindingResult, ProviderError> {
        Ok(BindingResult {
            status: BindingStatus::PendingVerification,
            provider_reference: Some(reference_for(&request.bank_account_id)),
            verification_json: Some(
                serde_json::json!({"type": "remittance", "amount": "0.01", "to_account": "mock-verification-account"})
                    .to_string(),
            ),
            failure: None,
        })
    }

    fn query_binding(binding: BindingRef) -> Result<BindingResult, ProviderError> {
        Ok(BindingResult {
            status: BindingStatus::Verified,
            provider_reference: Some(reference_for(&binding.bank_account_id)),
            verification_json: None,
            failure: None,
        })
    }

    fn parse_bill(request: BillRequest) -> Result<Vec<BillEntry>, ProviderError> {
        behaviour::parse_bill(&request.content)
    }
}

/// A refund answer; the mock reports the refund's own amount.
fn refund_result(
    status: RefundStatus,
    provider_reference: Option<String>,
    amount: Money,
) -> RefundResult {
    RefundResult {
        provider_reference,
        amount: Some(amount),
        ..RefundResult::with_status(status)
    }
}

/// The mock's own id for one of ours: deterministic, so a repeated request gets the same.
fn reference_for(id: &str) -> String {
    format!("mock_{id}")
}

fn payer_for(auth_code: &str) -> String {
    format!(
        "mock_payer_{}",
        &auth_code[auth_code.len().saturating_sub(4)..]
    )
}

export_plugin!(Mock);
