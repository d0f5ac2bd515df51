//! What the plugin needs from the outside world, as one trait: the host's clock, outbound
//! HTTP and the merchant's keys (by name). The flow is written against it, so the
//! tests run it natively against a fake acquirer and a stand-in host.

use paygate_plugin_api::{clock, http, keys};

use crate::settings::key_names;

pub trait Env {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
    fn send(&self, request: &http::Request) -> Result<http::Response, http::Error>;
    /// HMAC-SHA256 with the acquirer secret.
    fn hmac(&self, data: &[u8]) -> Result<Vec<u8>, keys::KeyError>;
    /// The host's `EC_v1` decryption with the merchant's payment processing key.
    fn decrypt_token(
        &self,
        ephemeral_public_key: &[u8],
        merchant_id_hash: &[u8],
        data: &[u8],
    ) -> Result<Vec<u8>, keys::KeyError>;
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

    fn hmac(&self, data: &[u8]) -> Result<Vec<u8>, keys::KeyError> {
        keys::hmac_sha256(key_names::ACQUIRER_SECRET, data)
    }

    fn decrypt_token(
        &self,
        ephemeral_public_key: &[u8],
        merchant_id_hash: &[u8],
        data: &[u8],
    ) -> Result<Vec<u8>, keys::KeyError> {
        keys::decrypt_apple_pay_token(
            key_names::PAYMENT_PROCESSING_KEY,
            ephemeral_public_key,
            merchant_id_hash,
            data,
        )
    }
}
