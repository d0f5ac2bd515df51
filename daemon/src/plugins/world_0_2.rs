//! Plugins built for `paygate:provider@0.2.0`, kept loading and running after 0.3.0, 0.4.0 and 0.5.0.
//!
//! Linked with the 0.2.0 bindings (`bindings::v0_2`) and called through them, as
//! `world_0_1.rs` does for 0.1.0 (`world_convert.rs` has what the older worlds share):
//! requests go down unchanged (the host never sends a wallet token to a world without
//! them), answers come up with no card and no next step, and the 0.2.0 imports are the
//! host's current ones.

use wasmtime::Store;

use super::bindings::v0_2::{PluginPre, paygate::provider as old};
use super::bindings::v0_5::paygate::provider as new;
use super::imports::CallState;
use super::world_convert::{Convert, records, shared_conversions, variants};
use super::{Op, Output};

shared_conversions!(old, new);

records!(old => new, types: RefundResult { status, provider_reference, failure, amount });

/// 0.2.0 reports amounts but knows no cards.
impl Convert<new::types::PaymentResult> for old::types::PaymentResult {
    fn convert(self) -> new::types::PaymentResult {
        new::types::PaymentResult {
            status: self.status.convert(),
            provider_reference: self.provider_reference,
            qr_code: self.qr_code,
            failure: self.failure.convert(),
            payer: self.payer,
            amount: self.amount.convert(),
            card: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(minor: i64) -> new::types::Money {
        new::types::Money {
            minor,
            currency: "CNY".into(),
            exponent: 2,
        }
    }

    fn request(method: new::types::Method) -> new::types::CreatePaymentRequest {
        new::types::CreatePaymentRequest {
            payment_id: "pay_1".into(),
            provider: "legacy".into(),
            merchant: new::types::Merchant {
                id: "m_1".into(),
                settings_json: "{}".into(),
                notify_url: "http://x".into(),
            },
            amount: money(1250),
            method,
            auth_code: Some("970000000000000000".into()),
            description: None,
            terminal_id: Some("T-01".into()),
            expires_in_seconds: None,
            wallet_token: None,
        }
    }

    #[test]
    fn answers_keep_their_amounts_and_have_no_card() {
        let result: new::types::PaymentResult = old::types::PaymentResult {
            status: old::types::PaymentStatus::Succeeded,
            provider_reference: Some("T1".into()),
            qr_code: None,
            failure: None,
            payer: None,
            amount: Some(old::types::Money {
                minor: 1250,
                currency: "CNY".into(),
                exponent: 2,
            }),
        }
        .convert();
        assert_eq!(result.amount.unwrap().minor, 1250);
        assert!(result.card.is_none());
        let refund: new::types::RefundResult = old::types::RefundResult {
            status: old::types::RefundStatus::Pending,
            provider_reference: None,
            failure: None,
            amount: None,
        }
        .convert();
        assert_eq!(refund.status, new::types::RefundStatus::Pending);
    }

    #[test]
    fn payment_requests_go_down_and_wallet_tokens_do_not() {
        let down = create_payment_request(request(new::types::Method::Barcode)).unwrap();
        assert_eq!(down.method, old::types::Method::Barcode);
        assert_eq!(down.auth_code.as_deref(), Some("970000000000000000"));
        assert_eq!(down.terminal_id.as_deref(), Some("T-01"));
        assert_eq!(down.amount.minor, 1250);
        let mut token = request(new::types::Method::WalletToken);
        token.wallet_token = Some("{}".into());
        assert!(matches!(
            create_payment_request(token),
            Err(new::types::ProviderError::InvalidRequest(m)) if m.contains("wallet tokens")
        ));
    }
}
