//! What the plugin needs from the outside world, as one trait: the host's clock, outbound
//! HTTP, the merchant's keys and the log. The flow and the notification handling are
//! written against it, so the tests run them natively against a fake WeChat Pay.

use paygate_plugin_api::{clock, http, keys, log};

use crate::settings::key_names;

pub trait Env {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
    fn send(&self, request: &http::Request) -> Result<http::Response, http::Error>;
    /// SHA256withRSA (PKCS#1 v1.5) with the named key.
    fn sign(&self, key_name: &str, data: &[u8]) -> Result<Vec<u8>, keys::KeyError>;
    /// Verifies a SHA256withRSA signature with the named key.
    fn verify(&self, key_name: &str, data: &[u8], signature: &[u8])
    -> Result<bool, keys::KeyError>;
    /// AES-GCM decryption with the named key; `ciphertext` ends with the 16-byte tag.
    fn decrypt(
        &self,
        key_name: &str,
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, keys::KeyError>;
    /// RSA-OAEP (SHA-1, as WeChat Pay asks) encryption with the named public key: the
    /// sensitive fields of onboarding requests.
    fn encrypt(&self, key_name: &str, plaintext: &[u8]) -> Result<Vec<u8>, keys::KeyError>;
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
        debug_assert_eq!(key_name, key_names::MERCHANT_PRIVATE_KEY);
        keys::sign(key_name, keys::Algorithm::RsaPkcs1Sha256, data)
    }

    fn verify(
        &self,
        key_name: &str,
        data: &[u8],
        signature: &[u8],
    ) -> Result<bool, keys::KeyError> {
        debug_assert_eq!(key_name, key_names::WECHATPAY_PUBLIC_KEY);
        keys::verify(key_name, keys::Algorithm::RsaPkcs1Sha256, data, signature)
    }

    fn decrypt(
        &self,
        key_name: &str,
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, keys::KeyError> {
        debug_assert_eq!(key_name, key_names::APIV3_KEY);
        keys::decrypt(key_name, keys::Cipher::AesGcm, nonce, aad, ciphertext)
    }

    fn encrypt(&self, key_name: &str, plaintext: &[u8]) -> Result<Vec<u8>, keys::KeyError> {
        debug_assert_eq!(key_name, key_names::WECHATPAY_PUBLIC_KEY);
        keys::encrypt(key_name, keys::Cipher::RsaOaepSha1, plaintext)
    }

    fn warn(&self, message: &str) {
        log::warn(message);
    }
}
