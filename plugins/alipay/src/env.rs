//! What the plugin needs from the outside world, as one trait: the host's clock, outbound
//! HTTP, the merchant's keys and the log. The flow and the notice handling are written
//! against it, so the tests run them natively against a fake Alipay (`testkit::FakeEnv`).
//! `Host` is the only code that calls the host's imports.

use paygate_plugin_api::{clock, http, keys, log};

use crate::settings::key_names;

pub trait Env {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
    fn send(&self, request: &http::Request) -> Result<http::Response, http::Error>;
    /// RSA2 (SHA256withRSA, PKCS#1 v1.5) with the named key.
    fn sign(&self, key_name: &str, data: &[u8]) -> Result<Vec<u8>, keys::KeyError>;
    /// Verifies an RSA2 signature with the named key.
    fn verify(&self, key_name: &str, data: &[u8], signature: &[u8])
    -> Result<bool, keys::KeyError>;
    fn info(&self, message: &str);
    fn warn(&self, message: &str);
}

/// The real host.
pub struct Host;

impl Env for Host {
    fn now_millis(&self) -> u64 {
        clock::now_millis()
    }

    fn send(&self, request: &http::Request) -> Result<http::Response, http::Error> {
        http::send(request)
    }

    fn sign(&self, key_name: &str, data: &[u8]) -> Result<Vec<u8>, keys::KeyError> {
        debug_assert_eq!(key_name, key_names::APP_PRIVATE_KEY);
        keys::sign(key_name, keys::Algorithm::RsaPkcs1Sha256, data)
    }

    fn verify(
        &self,
        key_name: &str,
        data: &[u8],
        signature: &[u8],
    ) -> Result<bool, keys::KeyError> {
        debug_assert_eq!(key_name, key_names::ALIPAY_PUBLIC_KEY);
        keys::verify(key_name, keys::Algorithm::RsaPkcs1Sha256, data, signature)
    }

    fn info(&self, message: &str) {
        log::info(message);
    }

    fn warn(&self, message: &str) {
        log::warn(message);
    }
}
