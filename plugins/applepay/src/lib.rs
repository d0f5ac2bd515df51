//! Apple Pay as a paygate wallet plugin, for merchants whose app or site receives an Apple
//! Pay payment token (`EC_v1`) and passes it on as a `wallet_token` payment.
//!
//! - `inspect-wallet-token`: verifies the token (its CMS signature, the chain to Apple Root
//!   CA - G3, the signing time against the host's clock) and has the host decrypt it with the
//!   merchant's payment processing key; tells the host the token's id and approved amount.
//! - `create-payment`: the same checks, the approved amount compared with the payment's,
//!   then the device account number and cryptogram authorized at the merchant's card
//!   acquirer under our payment id. Only the card's network and last four digits come back.
//! - query, void (cancel), refund and refund query at the acquirer.
//!
//! Layout: `token` parses the token and its payment data (pure); `der` reads ASN.1 and
//! `signature` verifies Apple's signature (pure); `acquirer` is the acquirer's wire format
//! (pure); `flow` runs the operations against `env`, the one door to the host, which the
//! tests replace. README.md has the settings and keys, PROTOCOL.md the wire format.

use paygate_plugin_api::*;

mod acquirer;
mod der;
mod env;
mod flow;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod settings;
mod signature;
mod token;

#[cfg(test)]
mod tests;

use env::Host;

pub struct ApplePay;

/// The currencies an Apple Pay token may carry here (`token::CURRENCIES`).
const CURRENCIES: [&str; 12] = [
    "CNY", "HKD", "MOP", "USD", "EUR", "GBP", "JPY", "KRW", "SGD", "AUD", "CAD", "TWD",
];

impl Provider for ApplePay {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "applepay".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            providers: vec![ProviderInfo {
                name: "applepay".into(),
                display_name: "Apple Pay".into(),
                methods: vec![Method::WalletToken],
                currencies: CURRENCIES.iter().map(|c| (*c).to_owned()).collect(),
                payment_codes: Vec::new(),
                operations: vec![
                    Operation::InspectWalletToken,
                    Operation::CreatePayment,
                    Operation::QueryPayment,
                    Operation::CancelPayment,
                    Operation::Refund,
                    Operation::QueryRefund,
                ],
                fees: Vec::new(),
            }],
        }
    }

    fn inspect_wallet_token(request: CreatePaymentRequest) -> Result<TokenFacts, ProviderError> {
        flow::inspect(&Host, &request)
    }

    fn create_payment(request: CreatePaymentRequest) -> Result<PaymentResult, ProviderError> {
        flow::create_payment(&Host, &request)
    }

    fn query_payment(payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        flow::query_payment(&Host, &payment)
    }

    fn cancel_payment(payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        flow::cancel_payment(&Host, &payment)
    }

    fn refund(request: RefundRequest) -> Result<RefundResult, ProviderError> {
        flow::refund(&Host, &request)
    }

    fn query_refund(refund: RefundRef) -> Result<RefundResult, ProviderError> {
        flow::query_refund(&Host, &refund)
    }
}

// Exported only in the component: a native build (the tests) links no component exports.
#[cfg(target_arch = "wasm32")]
export_plugin!(ApplePay);
