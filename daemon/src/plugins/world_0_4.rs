//! Plugins built for `paygate:provider@0.4.0`, kept loading and running after 0.5.0.
//!
//! Linked with the 0.4.0 bindings (`bindings::v0_4`) and called through them, as the older
//! worlds are (`world_convert.rs` has what they share). 0.4.0 has everything the host asks
//! of a plugin but bills: requests go down whole, answers come up whole (the next step of an
//! onboarding result included) but for bill entries, which have no line; it is never asked
//! to fetch a bill (its `info` cannot list `fetch-bill`). Its imports are the host's current
//! ones.

use wasmtime::Store;

use super::bindings::v0_4::{PluginPre, paygate::provider as old};
use super::bindings::v0_5::paygate::provider as new;
use super::imports::CallState;
use super::world_convert::{
    Convert, common_conversions, records, variants, wallet_token_conversions,
};
use super::{Op, Output};

common_conversions!(old, new);

wallet_token_conversions!(old, new);
records!(old => new, types:
    OnboardingResult { status, provider_reference, rejection_reason, next_step_json }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onboarding_results_keep_their_next_step_and_bill_entries_have_no_line() {
        let result: new::types::OnboardingResult = old::types::OnboardingResult {
            status: old::types::OnboardingStatus::UnderReview,
            provider_reference: Some("A1".into()),
            rejection_reason: None,
            next_step_json: Some("{\"type\":\"sign_agreement\"}".into()),
        }
        .convert();
        assert_eq!(
            result.next_step_json.as_deref(),
            Some("{\"type\":\"sign_agreement\"}")
        );
        let entry: new::types::BillEntry = old::types::BillEntry {
            kind: old::types::BillEntryKind::Refund,
            payment_id: "pay_1".into(),
            refund_id: Some("re_1".into()),
            provider_reference: None,
            amount: old::types::Money {
                minor: 500,
                currency: "CNY".into(),
                exponent: 2,
            },
            fee: None,
            occurred_at: None,
        }
        .convert();
        assert_eq!(entry.kind, new::types::BillEntryKind::Refund);
        assert_eq!(entry.refund_id.as_deref(), Some("re_1"));
        assert_eq!(entry.amount.minor, 500);
        assert_eq!(entry.line, None);
    }
}
