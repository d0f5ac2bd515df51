//! What the host lends a plugin during one call: `http`, `keys`, `clock` and `log`, all
//! bound to the merchant and provider the call is for. Nothing else is linked: the WASI
//! imports a `wasm32-wasip2` component carries are defined as traps.

use std::sync::Arc;
use std::time::Instant;

use super::bindings::paygate::provider::{clock, http, keys, log, types};
use super::keystore::{self, KeyStore};
use super::lending::Lender;
use super::limits::{CallLimiter, PluginLimits};
use super::registry::LoadedPlugin;
use crate::outbound::{OutboundError, OutboundRequest};

/// Longest log line a plugin may write; longer ones are cut.
const LOG_LINE_CHARS_MAX: usize = 2000;

/// The state of one plugin call (one wasmtime `Store`).
pub struct CallState {
    pub limiter: CallLimiter,
    /// The limits of this call (the plugin's bill limits for a bill call).
    pub limits: PluginLimits,
    /// When the call must have answered.
    pub deadline: Instant,
    /// Set by the epoch callback when the deadline passed inside wasm.
    pub timed_out: bool,
    pub plugin: Arc<LoadedPlugin>,
    /// The merchant and provider whose keys this call may use (none for `info`).
    pub scope: Option<(String, String)>,
    pub keys: Arc<KeyStore>,
    /// HTTP, the clock and randomness (the network's, or the plugin kit's).
    pub lender: Arc<dyn Lender>,
    pub log_lines: u32,
    /// Requests refused because their destination was not allow-listed (for tests and logs).
    pub denied_requests: u32,
}

impl CallState {
    /// The key `name` of this call's merchant and provider.
    fn key<'a>(&'a self, name: &'a str) -> Result<keystore::KeyRef<'a>, keys::KeyError> {
        self.scope
            .as_ref()
            .map(|(merchant, provider)| keystore::KeyRef {
                merchant,
                provider,
                name,
            })
            .ok_or_else(|| keys::KeyError::UnknownKey("no merchant keys in this call".into()))
    }
}

impl types::Host for CallState {}

impl http::Host for CallState {
    async fn send(&mut self, request: http::Request) -> Result<http::Response, http::Error> {
        let started = Instant::now();
        let method = request.method.clone();
        let url = redact_query(&request.url);
        let outcome = self
            .lender
            .send(
                OutboundRequest {
                    method: request.method,
                    url: request.url,
                    headers: request.headers,
                    body: request.body,
                },
                &self.plugin.allowed_hosts,
                self.deadline,
                self.limits.http_response_bytes,
            )
            .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(response) => {
                tracing::debug!(plugin = %self.plugin.name, %method, %url, status = response.status, elapsed_ms, "plugin http");
                Ok(http::Response {
                    status: response.status,
                    headers: response.headers,
                    body: response.body,
                })
            }
            Err(error) => {
                if let OutboundError::Denied(reason) = &error {
                    self.denied_requests += 1;
                    tracing::warn!(plugin = %self.plugin.name, %method, %url, %reason, "plugin http request refused");
                } else {
                    tracing::info!(plugin = %self.plugin.name, %method, %url, ?error, elapsed_ms, "plugin http failed");
                }
                Err(match error {
                    OutboundError::Denied(reason) => http::Error::Denied(reason),
                    OutboundError::Timeout => http::Error::Timeout,
                    OutboundError::Connection(reason) => http::Error::Connection(reason),
                    OutboundError::TooLarge => http::Error::TooLarge,
                })
            }
        }
    }
}

/// The URL without its query string, which may carry signatures or personal data.
fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

fn algorithm(a: keys::Algorithm) -> keystore::SignatureAlgorithm {
    match a {
        keys::Algorithm::RsaPkcs1Sha256 => keystore::SignatureAlgorithm::RsaPkcs1Sha256,
        keys::Algorithm::EcdsaP256Sha256 => keystore::SignatureAlgorithm::EcdsaP256Sha256,
    }
}

fn key_error(error: keystore::KeyError) -> keys::KeyError {
    match error {
        keystore::KeyError::UnknownKey(m) => keys::KeyError::UnknownKey(m),
        keystore::KeyError::Unsupported(m) => keys::KeyError::Unsupported(m),
        keystore::KeyError::Failed(m) => keys::KeyError::Failed(m),
    }
}

impl keys::Host for CallState {
    async fn sign(
        &mut self,
        key_name: String,
        alg: keys::Algorithm,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, keys::KeyError> {
        let key = self.key(&key_name)?;
        self.keys
            .sign(key, algorithm(alg), &data)
            .map_err(key_error)
    }

    async fn verify(
        &mut self,
        key_name: String,
        alg: keys::Algorithm,
        data: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<bool, keys::KeyError> {
        let key = self.key(&key_name)?;
        self.keys
            .verify(key, algorithm(alg), &data, &signature)
            .map_err(key_error)
    }

    async fn decrypt(
        &mut self,
        key_name: String,
        cipher: keys::Cipher,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> Result<Vec<u8>, keys::KeyError> {
        let key = self.key(&key_name)?;
        self.keys
            .decrypt(key, keystore_cipher(cipher), &nonce, &aad, &ciphertext)
            .map_err(key_error)
    }

    async fn hmac_sha256(
        &mut self,
        key_name: String,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, keys::KeyError> {
        let key = self.key(&key_name)?;
        self.keys.hmac_sha256(key, &data).map_err(key_error)
    }

    async fn encrypt(
        &mut self,
        key_name: String,
        cipher: keys::Cipher,
        plaintext: Vec<u8>,
    ) -> Result<Vec<u8>, keys::KeyError> {
        let key = self.key(&key_name)?;
        let mut rng = self.lender.rng();
        self.keys
            .encrypt(key, keystore_cipher(cipher), &plaintext, &mut rng)
            .map_err(key_error)
    }

    async fn decrypt_apple_pay_token(
        &mut self,
        key_name: String,
        ephemeral_public_key: Vec<u8>,
        merchant_id_hash: Vec<u8>,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, keys::KeyError> {
        let key = self.key(&key_name)?;
        self.keys
            .decrypt_apple_pay_token(key, &ephemeral_public_key, &merchant_id_hash, &data)
            .map_err(key_error)
    }
}

fn keystore_cipher(cipher: keys::Cipher) -> keystore::Cipher {
    match cipher {
        keys::Cipher::AesGcm => keystore::Cipher::AesGcm,
        keys::Cipher::RsaOaepSha1 => keystore::Cipher::RsaOaepSha1,
        keys::Cipher::RsaOaepSha256 => keystore::Cipher::RsaOaepSha256,
    }
}

impl clock::Host for CallState {
    async fn now_millis(&mut self) -> u64 {
        self.lender.now_millis()
    }
}

impl log::Host for CallState {
    async fn write(&mut self, level: log::Level, message: String) {
        self.log_lines += 1;
        let limit = self.limits.log_lines_per_call;
        if self.log_lines > limit {
            if self.log_lines == limit + 1 {
                tracing::warn!(plugin = %self.plugin.name, limit, "plugin log limit reached; dropping further lines of this call");
            }
            return;
        }
        let message: String = message
            .chars()
            .take(LOG_LINE_CHARS_MAX)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        self.lender.heard(level, &message);
        let plugin = self.plugin.name.as_str();
        let merchant = self.scope.as_ref().map_or("-", |(m, _)| m.as_str());
        match level {
            log::Level::Debug => {
                tracing::debug!(target: "paygate::plugin", plugin, merchant, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "paygate::plugin", plugin, merchant, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "paygate::plugin", plugin, merchant, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "paygate::plugin", plugin, merchant, "{message}")
            }
        }
    }
}
