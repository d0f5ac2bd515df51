//! The Alipay wallet plugin: face-to-face payment on the Alipay Open Platform gateway
//! (`gateway.do`, RSA2). See README.md for what it does and PROTOCOL.md for exactly what it
//! sends and reads.
//!
//! This file is the world's exports only, each handing the real host (`env::Host`) to the
//! code that does the work. Layout (the Hyperswitch connector split, the same in every
//! bundled plugin: plugins/README.md): `flow` decides which gateway method each operation
//! calls and makes the signed exchange; `transform` turns our requests into Alipay's
//! parameters and its answers into our results (pure); `onboarding` does the same for
//! sub-merchant applications and settlement accounts (pure); `auth` says what signatures
//! cover and cuts the signed text out of answers (pure); `notify` handles trade notices;
//! `time` formats Alipay's Beijing timestamps; `settings` reads the merchant's
//! configuration; `env` is the one door to the host, which the tests replace with a fake
//! Alipay (`testkit`).

use paygate_plugin_api::*;

mod auth;
mod bills;
mod env;
mod flow;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod notify;
mod onboarding;
mod settings;
mod time;
mod transform;
mod unzip;

#[cfg(test)]
mod testkit;

use env::Host;

pub struct Alipay;

fn provider_info() -> ProviderInfo {
    ProviderInfo {
        name: "alipay".into(),
        display_name: "Alipay".into(),
        methods: vec![Method::Qr, Method::Barcode, Method::Link],
        currencies: vec!["CNY".into()],
        payment_codes: vec![CodePattern {
            prefixes: transform::CODE_PREFIXES.map(String::from).to_vec(),
            min_length: transform::CODE_MIN_LENGTH,
            max_length: transform::CODE_MAX_LENGTH,
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
            Operation::FetchBill,
            Operation::ParseBill,
        ],
        // Alipay's rate is negotiated per merchant: nothing to state here.
        fees: Vec::new(),
    }
}

impl Provider for Alipay {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "alipay".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            providers: vec![provider_info()],
        }
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

    fn parse_notification(
        notice: Notification,
    ) -> Result<NotificationResult, NotificationRejected> {
        notify::parse_notification(&Host, &notice)
    }

    fn onboard(request: OnboardingRequest) -> Result<OnboardingResult, ProviderError> {
        flow::onboard(&Host, &request)
    }

    fn query_onboarding(application: OnboardingRef) -> Result<OnboardingResult, ProviderError> {
        flow::query_onboarding(&Host, &application)
    }

    fn bind_account(request: BindingRequest) -> Result<BindingResult, ProviderError> {
        flow::bind_account(&Host, &request)
    }

    fn query_binding(binding: BindingRef) -> Result<BindingResult, ProviderError> {
        flow::query_binding(&Host, &binding)
    }

    fn fetch_bill(request: BillFetchRequest) -> Result<BillDownload, ProviderError> {
        bills::fetch_bill(&Host, &request)
    }

    fn parse_bill(request: BillRequest) -> Result<Vec<BillEntry>, ProviderError> {
        bills::parse_bill(&request)
    }
}

// Only the component exports: a native build (the tests, the fuzz targets) links the
// `cdylib` too, and the export names (`paygate:provider/provider@0.2.0#...`) are not
// symbol names a native linker takes.
#[cfg(target_arch = "wasm32")]
export_plugin!(Alipay);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lists_the_provider_as_the_config_expects() {
        let info = Alipay::info();
        assert_eq!(info.name, "alipay");
        let [provider] = &info.providers[..] else {
            panic!("one provider expected");
        };
        assert_eq!(provider.name, "alipay");
        assert_eq!(provider.display_name, "Alipay");
        assert_eq!(
            provider.methods,
            vec![Method::Qr, Method::Barcode, Method::Link]
        );
        assert_eq!(provider.currencies, vec!["CNY".to_string()]);
        let [codes] = &provider.payment_codes[..] else {
            panic!("one code pattern expected");
        };
        assert_eq!(codes.prefixes, ["25", "26", "27", "28", "29", "30"]);
        assert_eq!((codes.min_length, codes.max_length), (16, 24));
        assert_eq!(provider.operations.len(), 12);
        assert!(provider.operations.contains(&Operation::ParseNotification));
        assert!(provider.operations.contains(&Operation::FetchBill));
        assert!(provider.operations.contains(&Operation::ParseBill));
        assert!(provider.fees.is_empty());
    }
}
