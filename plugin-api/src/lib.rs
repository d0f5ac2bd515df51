//! `paygate-plugin-api`: everything a wallet plugin author needs, and nothing of the
//! component-model plumbing.
//!
//! A plugin is a `cdylib` crate built for `wasm32-wasip2`. It implements [`Provider`] for a
//! type and exports it with [`export_plugin!`]:
//!
//! ```ignore
//! use paygate_plugin_api::*;
//!
//! struct Hello;
//!
//! impl Provider for Hello {
//!     fn info() -> PluginInfo { /* name, version, the providers it serves */ }
//!     fn create_payment(request: CreatePaymentRequest) -> Result<PaymentResult, ProviderError> {
//!         /* talk to the provider through `http::send`, sign with `keys::sign` */
//!     }
//! }
//!
//! export_plugin!(Hello);
//! ```
//!
//! Every operation has a default that answers "not supported"; `info` must list the
//! operations a plugin really implements, and the host never calls the others.
//!
//! The sandbox: a plugin reaches the world only through [`http`] (allow-listed hosts),
//! [`keys`] (named keys, never their bytes), [`clock`] and [`log`]. WASI calls (files,
//! environment, sockets, the OS clock and random source) trap, so avoid `std::fs`,
//! `std::env`, `std::time::SystemTime` and `HashMap::new()` (its random seed); use
//! [`clock::now_millis`] and `BTreeMap`. A panic is logged through [`log`] and ends the call
//! with a plugin error.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "paygate_plugin_api::bindings",
        generate_all,
    });
}

pub mod form;
pub mod money;

pub use bindings::paygate::provider::types::{
    BillDownload, BillEntry, BillEntryKind, BillFetchRequest, BillFile, BillRequest, BindingRef,
    BindingRequest, BindingResult, BindingStatus, BindingUpdate, Card, CodePattern,
    CreatePaymentRequest, Declined, Fee, Merchant, Method, Money, Notification,
    NotificationRejected, NotificationResult, OnboardingRef, OnboardingRequest, OnboardingResult,
    OnboardingStatus, OnboardingUpdate, Operation, PaymentRef, PaymentResult, PaymentStatus,
    PaymentUpdate, PluginInfo, ProviderError, ProviderInfo, RefundRef, RefundRequest, RefundResult,
    RefundStatus, RefundUpdate, Reply, TokenFacts, Update,
};

/// The version of the WIT package this SDK was built against (`wit/provider.wit`). A plugin
/// built with this SDK targets it; paygated also keeps loading plugins built for the older
/// versions it shipped (`wit/0.1.0/` to `wit/0.4.0/`).
pub const WORLD_VERSION: &str = "0.5.0";

/// Outbound HTTP through the host. Only hosts the operator allow-listed for the plugin are
/// reachable; the host applies its own timeout and response size cap.
pub mod http {
    use crate::bindings::paygate::provider::http as raw;
    pub use crate::bindings::paygate::provider::http::{Error, Request, Response};

    impl Request {
        /// A request with no headers and an empty body.
        pub fn new(method: &str, url: &str) -> Request {
            Request {
                method: method.to_owned(),
                url: url.to_owned(),
                headers: Vec::new(),
                body: Vec::new(),
            }
        }

        pub fn header(mut self, name: &str, value: &str) -> Request {
            self.headers.push((name.to_owned(), value.to_owned()));
            self
        }

        pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
            self.body = body.into();
            self
        }
    }

    impl Response {
        /// The first header of that name (case-insensitive).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// Sends `request` and waits for the answer.
    pub fn send(request: &Request) -> Result<Response, Error> {
        raw::send(request)
    }

    impl From<Error> for crate::ProviderError {
        /// The safe default reading of a transport failure: a timeout may have reached the
        /// provider (unknown outcome), a failed connection did not (unavailable).
        fn from(error: Error) -> Self {
            match error {
                Error::Denied(reason) => crate::ProviderError::InvalidRequest(format!(
                    "host refused the request: {reason}"
                )),
                Error::Timeout => crate::ProviderError::UnknownOutcome("provider timed out".into()),
                Error::Connection(reason) => crate::ProviderError::Unavailable(reason),
                Error::TooLarge => {
                    crate::ProviderError::UnknownOutcome("provider answer too large".into())
                }
            }
        }
    }
}

/// Cryptography with the merchant's keys, by name.
pub mod keys {
    use crate::bindings::paygate::provider::keys as raw;
    pub use crate::bindings::paygate::provider::keys::{Algorithm, Cipher, KeyError};

    pub fn sign(key_name: &str, algorithm: Algorithm, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        raw::sign(key_name, algorithm, data)
    }

    pub fn verify(
        key_name: &str,
        algorithm: Algorithm,
        data: &[u8],
        signature: &[u8],
    ) -> Result<bool, KeyError> {
        raw::verify(key_name, algorithm, data, signature)
    }

    pub fn decrypt(
        key_name: &str,
        cipher: Cipher,
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        raw::decrypt(key_name, cipher, nonce, aad, ciphertext)
    }

    pub fn hmac_sha256(key_name: &str, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        raw::hmac_sha256(key_name, data)
    }

    /// RSA-OAEP encryption with a named public key (a provider's platform key).
    pub fn encrypt(key_name: &str, cipher: Cipher, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        raw::encrypt(key_name, cipher, plaintext)
    }

    /// An Apple Pay `EC_v1` token's `data`, decrypted by the host with the named payment
    /// processing key: see the WIT for the steps. The plugin gets the plaintext only.
    pub fn decrypt_apple_pay_token(
        key_name: &str,
        ephemeral_public_key: &[u8],
        merchant_id_hash: &[u8],
        data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        raw::decrypt_apple_pay_token(key_name, ephemeral_public_key, merchant_id_hash, data)
    }

    impl From<KeyError> for crate::ProviderError {
        /// A key problem is the merchant's configuration, not the payer: final.
        fn from(error: KeyError) -> Self {
            crate::ProviderError::InvalidRequest(format!("key error: {error:?}"))
        }
    }
}

/// The host's clock.
pub mod clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_millis() -> u64 {
        crate::bindings::paygate::provider::clock::now_millis()
    }
}

/// The daemon's log, attributed to the plugin and the request.
pub mod log {
    pub use crate::bindings::paygate::provider::log::Level;

    pub fn write(level: Level, message: &str) {
        crate::bindings::paygate::provider::log::write(level, message)
    }
    pub fn info(message: &str) {
        write(Level::Info, message)
    }
    pub fn warn(message: &str) {
        write(Level::Warn, message)
    }
}

impl Merchant {
    /// The merchant's settings for this provider, parsed into `T`.
    pub fn settings<T: serde::de::DeserializeOwned>(&self) -> Result<T, ProviderError> {
        serde_json::from_str(&self.settings_json)
            .map_err(|e| ProviderError::InvalidRequest(format!("merchant settings: {e}")))
    }
}

impl ProviderError {
    /// The error for an operation the plugin does not implement.
    pub fn unsupported(operation: &str) -> ProviderError {
        ProviderError::InvalidRequest(format!("{operation} is not supported by this plugin"))
    }

    /// A final decline with our failure code.
    pub fn declined(code: &str, message: impl Into<String>) -> ProviderError {
        ProviderError::Declined(Declined {
            code: code.to_owned(),
            message: message.into(),
        })
    }
}

impl PaymentResult {
    /// A result with only a status (and no reported amount: set `amount` whenever the
    /// provider's answer carries one).
    pub fn with_status(status: PaymentStatus) -> PaymentResult {
        PaymentResult {
            status,
            provider_reference: None,
            qr_code: None,
            failure: None,
            payer: None,
            amount: None,
            card: None,
        }
    }
}

impl RefundResult {
    /// A result with only a status (and no reported amount: set `amount` to this refund's
    /// own amount whenever the provider's answer carries it).
    pub fn with_status(status: RefundStatus) -> RefundResult {
        RefundResult {
            status,
            provider_reference: None,
            failure: None,
            amount: None,
        }
    }
}

impl Reply {
    /// A reply with a text body.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: body.as_bytes().to_vec(),
        }
    }
}

/// A wallet plugin. Implement the operations your provider supports and list them in
/// [`Provider::info`]; the defaults answer "not supported".
pub trait Provider {
    fn info() -> PluginInfo;

    fn create_payment(_request: CreatePaymentRequest) -> Result<PaymentResult, ProviderError> {
        Err(ProviderError::unsupported("create-payment"))
    }
    fn query_payment(_payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        Err(ProviderError::unsupported("query-payment"))
    }
    fn cancel_payment(_payment: PaymentRef) -> Result<PaymentResult, ProviderError> {
        Err(ProviderError::unsupported("cancel-payment"))
    }
    fn refund(_request: RefundRequest) -> Result<RefundResult, ProviderError> {
        Err(ProviderError::unsupported("refund"))
    }
    fn query_refund(_refund: RefundRef) -> Result<RefundResult, ProviderError> {
        Err(ProviderError::unsupported("query-refund"))
    }
    fn parse_notification(
        _notice: Notification,
    ) -> Result<NotificationResult, NotificationRejected> {
        Err(NotificationRejected {
            reason: "notifications are not supported by this plugin".into(),
            reply: Reply::text(400, "unsupported"),
        })
    }
    fn onboard(_request: OnboardingRequest) -> Result<OnboardingResult, ProviderError> {
        Err(ProviderError::unsupported("onboard"))
    }
    fn query_onboarding(_application: OnboardingRef) -> Result<OnboardingResult, ProviderError> {
        Err(ProviderError::unsupported("query-onboarding"))
    }
    fn bind_account(_request: BindingRequest) -> Result<BindingResult, ProviderError> {
        Err(ProviderError::unsupported("bind-account"))
    }
    fn query_binding(_binding: BindingRef) -> Result<BindingResult, ProviderError> {
        Err(ProviderError::unsupported("query-binding"))
    }
    fn parse_bill(_request: BillRequest) -> Result<Vec<BillEntry>, ProviderError> {
        Err(ProviderError::unsupported("parse-bill"))
    }
    fn inspect_wallet_token(_request: CreatePaymentRequest) -> Result<TokenFacts, ProviderError> {
        Err(ProviderError::unsupported("inspect-wallet-token"))
    }
    fn fetch_bill(_request: BillFetchRequest) -> Result<BillDownload, ProviderError> {
        Err(ProviderError::unsupported("fetch-bill"))
    }
}

/// Installed before the first call of a plugin: a panic's message goes to the daemon's log
/// (WASI stderr does not exist in the sandbox) before the call ends in a trap.
#[doc(hidden)]
pub fn __install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            log::write(log::Level::Error, &format!("plugin panicked: {info}"));
        }));
    });
}

/// Exports a [`Provider`] implementation as the plugin's `provider` interface.
#[macro_export]
macro_rules! export_plugin {
    ($provider:ty) => {
        #[doc(hidden)]
        pub struct __PaygatePluginExport;

        impl $crate::bindings::exports::paygate::provider::provider::Guest for __PaygatePluginExport {
            fn info() -> $crate::PluginInfo {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::info()
            }
            fn create_payment(
                request: $crate::CreatePaymentRequest,
            ) -> Result<$crate::PaymentResult, $crate::ProviderError> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::create_payment(request)
            }
            fn query_payment(
                payment: $crate::PaymentRef,
            ) -> Result<$crate::PaymentResult, $crate::ProviderError> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::query_payment(payment)
            }
            fn cancel_payment(
                payment: $crate::PaymentRef,
            ) -> Result<$crate::PaymentResult, $crate::ProviderError> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::cancel_payment(payment)
            }
            fn refund(
                request: $crate::RefundRequest,
            ) -> Result<$crate::RefundResult, $crate::ProviderError> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::refund(request)
            }
            fn query_refund(
                refund: $crate::RefundRef,
            ) -> Result<$crate::RefundResult, $crate::ProviderError> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::query_refund(refund)
            }
            fn parse_notification(
                notice: $crate::Notification,
            ) -> Result<$crate::NotificationResult, $crate::NotificationRejected> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::parse_notification(notice)
            }
            fn onboard(
                request: $crate::OnboardingRequest,
            ) -> Result<$crate::OnboardingResult, $crate::ProviderError> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::onboard(request)
            }
            fn query_onboarding(
                application: $crate::OnboardingRef,
            ) -> Result<$crate::OnboardingResult, $crate::ProviderError> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::query_onboarding(application)
            }
            fn bind_account(
                request: $crate::BindingRequest,
            ) -> Result<$crate::BindingResult, $crate::ProviderError> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::bind_account(request)
            }
            fn query_binding(
                binding: $crate::BindingRef,
            ) -> Result<$crate::BindingResult, $crate::ProviderError> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::query_binding(binding)
            }
            fn parse_bill(
                request: $crate::BillRequest,
            ) -> Result<Vec<$crate::BillEntry>, $crate::ProviderError> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::parse_bill(request)
            }
            fn inspect_wallet_token(
                request: $crate::CreatePaymentRequest,
            ) -> Result<$crate::TokenFacts, $crate::ProviderError> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::inspect_wallet_token(request)
            }
            fn fetch_bill(
                request: $crate::BillFetchRequest,
            ) -> Result<$crate::BillDownload, $crate::ProviderError> {
                $crate::__install_panic_hook();
                <$provider as $crate::Provider>::fetch_bill(request)
            }
        }

        $crate::bindings::__export_plugin_world!(__PaygatePluginExport with_types_in $crate::bindings);
    };
}
