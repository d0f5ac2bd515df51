//! hello-wallet: the smallest complete paygate wallet plugin.
//!
//! It serves provider `hello`, shows a QR code for every payment, and reports the payment
//! paid at the first query. A real wallet would call its provider through
//! `paygate_plugin_api::http::send` and sign with `paygate_plugin_api::keys::sign`; see
//! plugin-api/README.md.

use paygate_plugin_api::*;
use serde::Deserialize;

struct Hello;

/// The plugin's settings (`[plugins.settings]`, overridden per merchant).
#[derive(Deserialize)]
struct Settings {
    /// Where the QR codes point.
    #[serde(default = "default_base")]
    pay_base: String,
}

fn default_base() -> String {
    "https://hello.example/pay".into()
}

impl Provider for Hello {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "hello-wallet".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            providers: vec![ProviderInfo {
                name: "hello".into(),
                display_name: "Hello Wallet".into(),
                methods: vec![Method::Qr],
                currencies: vec!["CNY".into()],
                payment_codes: Vec::new(),
                operations: vec![Operation::CreatePayment, Operation::QueryPayment],
                fees: Vec::new(),
            }],
        }
    }

    fn create_payment(request: CreatePaymentRequest) -> Result<PaymentResult, ProviderError> {
        let settings: Settings = request.merchant.settings()?;
        log::info(&format!(
            "hello: {} {} for {}",
            request.amount.to_decimal_string(),
            request.amount.currency,
            request.merchant.id
        ));
        Ok(PaymentResult {
            qr_code: Some(format!("{}/{}", settings.pay_base, request.payment_id)),
            provider_reference: Some(format!("hello-{}", request.payment_id)),
            ..PaymentResult::with_status(PaymentStatus::Pending)
        })
    }

    fn query_payment(payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        // A real wallet also sets `amount` to the order amount its provider's answer states
        // (and refuses an answer whose amount it cannot read), so that the gateway can
        // compare it with the payment's. This one has no provider, so it states none.
        Ok(PaymentResult {
            provider_reference: Some(format!("hello-{}", payment.payment_id)),
            ..PaymentResult::with_status(PaymentStatus::Succeeded)
        })
    }
}

export_plugin!(Hello);
