//! Plugins built for `paygate:provider@0.1.0`, the first world, kept loading and running.
//!
//! Such a plugin is linked with the 0.1.0 bindings (`bindings::v0_1`) and called through
//! them; the rest of the daemon never sees 0.1.0 types (`world_convert.rs` has what the
//! older worlds share):
//! - requests go down: the host's (0.5.0) requests are converted to 0.1.0 ones (identical
//!   but for wallet tokens and bill downloads, which 0.1.0 lacks and the host never asks of
//!   it);
//! - answers come up: 0.1.0 results become 0.5.0 results with the fields 0.1.0 lacks left
//!   absent (`payment-result.amount`, `refund-result.amount`: "the provider reported no
//!   amount"; `payment-result.card`; `onboarding-result.next-step-json`;
//!   `bill-entry.line`);
//! - its imports (`http`, `keys`, `clock`, `log` @0.1.0) are the host's current imports
//!   (`imports.rs`), with their arguments and answers converted.

use wasmtime::Store;

use super::bindings::v0_1::{PluginPre, paygate::provider as old};
use super::bindings::v0_5::paygate::provider as new;
use super::imports::CallState;
use super::world_convert::{Convert, records, shared_conversions, variants};
use super::{Op, Output};

shared_conversions!(old, new);

/// 0.1.0 has no reported amount: the provider said nothing about it, as far as the host
/// can tell.
impl Convert<new::types::PaymentResult> for old::types::PaymentResult {
    fn convert(self) -> new::types::PaymentResult {
        new::types::PaymentResult {
            status: self.status.convert(),
            provider_reference: self.provider_reference,
            qr_code: self.qr_code,
            failure: self.failure.convert(),
            payer: self.payer,
            amount: None,
            card: None,
        }
    }
}

/// As for payments: no reported refund amount in 0.1.0.
impl Convert<new::types::RefundResult> for old::types::RefundResult {
    fn convert(self) -> new::types::RefundResult {
        new::types::RefundResult {
            status: self.status.convert(),
            provider_reference: self.provider_reference,
            failure: self.failure.convert(),
            amount: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money() -> old::types::Money {
        old::types::Money {
            minor: 1250,
            currency: "CNY".into(),
            exponent: 2,
        }
    }

    #[test]
    fn answers_come_up_with_no_reported_amount() {
        let result: Result<new::types::PaymentResult, new::types::ProviderError> =
            Ok::<_, old::types::ProviderError>(old::types::PaymentResult {
                status: old::types::PaymentStatus::Succeeded,
                provider_reference: Some("T1".into()),
                qr_code: None,
                failure: None,
                payer: Some("p".into()),
            })
            .convert();
        let result = result.unwrap();
        assert_eq!(result.status, new::types::PaymentStatus::Succeeded);
        assert_eq!(result.provider_reference.as_deref(), Some("T1"));
        assert_eq!(result.payer.as_deref(), Some("p"));
        assert!(result.amount.is_none());
        assert!(result.card.is_none());

        let notice: new::types::NotificationResult = old::types::NotificationResult {
            updates: vec![
                old::types::Update::Payment(old::types::PaymentUpdate {
                    payment_id: "pay_1".into(),
                    outcome: old::types::PaymentResult {
                        status: old::types::PaymentStatus::Failed,
                        provider_reference: None,
                        qr_code: None,
                        failure: Some(old::types::Declined {
                            code: "risk_rejected".into(),
                            message: "no".into(),
                        }),
                        payer: None,
                    },
                }),
                old::types::Update::Refund(old::types::RefundUpdate {
                    refund_id: "re_1".into(),
                    outcome: old::types::RefundResult {
                        status: old::types::RefundStatus::Succeeded,
                        provider_reference: None,
                        failure: None,
                    },
                }),
            ],
            reply: old::types::Reply {
                status: 200,
                content_type: "text/plain".into(),
                body: b"success".to_vec(),
            },
        }
        .convert();
        match &notice.updates[..] {
            [
                new::types::Update::Payment(p),
                new::types::Update::Refund(r),
            ] => {
                assert_eq!(p.payment_id, "pay_1");
                assert_eq!(p.outcome.status, new::types::PaymentStatus::Failed);
                assert_eq!(p.outcome.failure.as_ref().unwrap().code, "risk_rejected");
                assert!(p.outcome.amount.is_none());
                assert_eq!(r.refund_id, "re_1");
                assert!(r.outcome.amount.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(notice.reply.body, b"success");

        let error: new::types::ProviderError =
            old::types::ProviderError::UnknownOutcome("lost".into()).convert();
        assert!(matches!(error, new::types::ProviderError::UnknownOutcome(m) if m == "lost"));
        let entry: new::types::BillEntry = old::types::BillEntry {
            kind: old::types::BillEntryKind::Refund,
            payment_id: "pay_1".into(),
            refund_id: Some("re_1".into()),
            provider_reference: None,
            amount: money(),
            fee: Some(money()),
            occurred_at: None,
        }
        .convert();
        assert_eq!(entry.kind, new::types::BillEntryKind::Refund);
        assert_eq!(entry.amount.minor, 1250);
    }

    #[test]
    fn requests_go_down_unchanged() {
        let merchant = new::types::Merchant {
            id: "m_1".into(),
            settings_json: "{}".into(),
            notify_url: "http://x".into(),
        };
        let request: old::types::RefundRequest = new::types::RefundRequest {
            refund_id: "re_1".into(),
            payment: new::types::PaymentRef {
                payment_id: "pay_1".into(),
                provider: "legacy".into(),
                merchant,
                amount: new::types::Money {
                    minor: 1250,
                    currency: "CNY".into(),
                    exponent: 2,
                },
                provider_reference: Some("T1".into()),
            },
            amount: new::types::Money {
                minor: 500,
                currency: "CNY".into(),
                exponent: 2,
            },
            reason: Some("broken".into()),
        }
        .convert();
        assert_eq!(request.refund_id, "re_1");
        assert_eq!(request.payment.merchant.notify_url, "http://x");
        assert_eq!(request.payment.amount.minor, 1250);
        assert_eq!(request.amount.minor, 500);
        assert_eq!(request.reason.as_deref(), Some("broken"));
    }
}
