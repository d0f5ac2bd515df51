//! WeChat Pay (API v3, direct merchants) as a paygate wallet plugin.
//!
//! - `qr` / `link`: a Native order (`/v3/pay/transactions/native`), pending with its
//!   `code_url` as the QR code.
//! - `barcode`: payment-code pay (`/v3/pay/transactions/codepay`) with the payer's code.
//! - query, cancel (query, then close or reverse), refunds and refund queries, and verified,
//!   decrypted notifications.
//! - merchant onboarding as a service provider: applyments (特约商户进件) and their queries,
//!   and settlement accounts (`modify-settlement` and its queries).
//!
//! Layout (the Hyperswitch connector split): `flow` decides which endpoint, signs and
//! authenticates; `transform` turns our requests into WeChat Pay's JSON and its answers
//! into our results (pure); `onboarding` does the same for onboarding and settlement
//! accounts (pure); `auth` builds and checks signatures (pure); `notify` handles
//! notifications; `time` formats `+08:00` times; `settings` reads the merchant's
//! configuration; `env` is the one door to the host, which the tests replace with a fake
//! WeChat Pay. README.md has the mappings, PROTOCOL.md the wire format.

use paygate_plugin_api::*;

mod auth;
mod bills;
mod details;
mod env;
mod flow;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod media;
mod notify;
mod onboarding;
mod payee;
mod settings;
mod time;
mod transform;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod vectors;

use env::Host;

pub struct WechatPay;

/// WeChat Pay's published standard rate for most merchant categories (0.6%); a merchant's
/// contract may differ.
const STANDARD_FEE_BASIS_POINTS: u32 = 60;

fn provider_info() -> ProviderInfo {
    ProviderInfo {
        name: "wechatpay".into(),
        display_name: "WeChat Pay".into(),
        methods: vec![Method::Qr, Method::Barcode, Method::Link],
        currencies: vec![transform::CURRENCY.into()],
        payment_codes: vec![CodePattern {
            prefixes: transform::PAYMENT_CODE_PREFIXES.map(String::from).to_vec(),
            min_length: transform::PAYMENT_CODE_LENGTH,
            max_length: transform::PAYMENT_CODE_LENGTH,
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
        fees: vec![Fee {
            method: None,
            rate_basis_points: STANDARD_FEE_BASIS_POINTS,
        }],
    }
}

impl Provider for WechatPay {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "wechatpay".into(),
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
export_plugin!(WechatPay);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lists_the_provider_as_the_config_expects() {
        let info = WechatPay::info();
        assert_eq!(info.name, "wechatpay");
        let [provider] = &info.providers[..] else {
            panic!("one provider expected");
        };
        assert_eq!(provider.name, "wechatpay");
        assert_eq!(provider.display_name, "WeChat Pay");
        assert_eq!(
            provider.methods,
            vec![Method::Qr, Method::Barcode, Method::Link]
        );
        assert_eq!(provider.currencies, vec!["CNY".to_string()]);
        let [codes] = &provider.payment_codes[..] else {
            panic!("one code pattern expected");
        };
        assert_eq!(codes.prefixes, ["10", "11", "12", "13", "14", "15"]);
        assert_eq!((codes.min_length, codes.max_length), (18, 18));
        assert_eq!(
            provider.operations,
            vec![
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
            ]
        );
        assert!(provider.operations.contains(&Operation::FetchBill));
        assert!(provider.operations.contains(&Operation::ParseBill));
    }
}
