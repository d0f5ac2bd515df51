//! Plugins built for `paygate:provider@0.3.0`, kept loading and running after 0.4.0 and 0.5.0.
//!
//! Linked with the 0.3.0 bindings (`bindings::v0_3`) and called through them, as the older
//! worlds are (`world_convert.rs` has what they share). 0.3.0 has everything the host asks
//! of a plugin but the next step of an onboarding result: requests go down whole (wallet
//! tokens included, and `inspect-wallet-token` is called), answers come up whole but for
//! `onboarding-result.next-step-json`, which is absent (and bill entries, which have no
//! line), and no bill is fetched; the 0.3.0 imports (`keys.encrypt`
//! and `keys.decrypt-apple-pay-token` included) are the host's current ones.

use wasmtime::Store;

use super::bindings::v0_3::{PluginPre, paygate::provider as old};
use super::bindings::v0_5::paygate::provider as new;
use super::imports::CallState;
use super::world_convert::{
    Convert, common_conversions, no_next_step, records, variants, wallet_token_conversions,
};
use super::{Op, Output};

common_conversions!(old, new);
no_next_step!(old, new);

wallet_token_conversions!(old, new);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onboarding_results_come_up_with_no_next_step() {
        let result: new::types::OnboardingResult = old::types::OnboardingResult {
            status: old::types::OnboardingStatus::UnderReview,
            provider_reference: Some("A1".into()),
            rejection_reason: None,
        }
        .convert();
        assert_eq!(result.status, new::types::OnboardingStatus::UnderReview);
        assert_eq!(result.provider_reference.as_deref(), Some("A1"));
        assert!(result.next_step_json.is_none());
    }

    #[test]
    fn wallet_token_payments_go_down_whole_and_cards_come_up() {
        let request = new::types::CreatePaymentRequest {
            payment_id: "pay_1".into(),
            provider: "applepay".into(),
            merchant: new::types::Merchant {
                id: "m_1".into(),
                settings_json: "{}".into(),
                notify_url: "http://x".into(),
            },
            amount: new::types::Money {
                minor: 1250,
                currency: "USD".into(),
                exponent: 2,
            },
            method: new::types::Method::WalletToken,
            auth_code: None,
            description: None,
            terminal_id: None,
            expires_in_seconds: None,
            wallet_token: Some("{\"version\":\"EC_v1\"}".into()),
        };
        let down = create_payment_request(request).unwrap();
        assert_eq!(down.method, old::types::Method::WalletToken);
        assert_eq!(
            down.wallet_token.as_deref(),
            Some("{\"version\":\"EC_v1\"}")
        );
        let result: new::types::PaymentResult = old::types::PaymentResult {
            status: old::types::PaymentStatus::Succeeded,
            provider_reference: None,
            qr_code: None,
            failure: None,
            payer: None,
            amount: None,
            card: Some(old::types::Card {
                network: "visa".into(),
                last_four: "4242".into(),
            }),
        }
        .convert();
        assert_eq!(result.card.unwrap().last_four, "4242");
    }
}
