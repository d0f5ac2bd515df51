//! The merchant's Apple Pay settings (`merchant.settings_json`), checked once per call. The
//! names are the contract with the config: do not rename them.

use paygate_plugin_api::ProviderError;
use serde::Deserialize;

/// Key names under `[merchants.providers.applepay.keys]`.
pub mod key_names {
    /// The merchant's payment processing private key (EC P-256): the host decrypts tokens
    /// with it (`keys.decrypt-apple-pay-token`); the plugin never sees it.
    pub const PAYMENT_PROCESSING_KEY: &str = "payment_processing_key";
    /// The HMAC secret shared with the card acquirer: signs requests, verifies answers.
    pub const ACQUIRER_SECRET: &str = "acquirer_secret";
}

/// How old a token may be by default (Apple asks for "a few minutes").
const DEFAULT_MAX_TOKEN_AGE_SECONDS: u32 = 300;
/// The most an operator may allow.
const MAX_TOKEN_AGE_SECONDS_CAP: u32 = 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    merchant_identifier: Option<String>,
    acquirer_url: Option<String>,
    acquirer_merchant_id: Option<String>,
    max_token_age_seconds: Option<u32>,
}

/// Valid settings of one merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The Apple Pay merchant identifier (`merchant.com.example.shop`): its SHA-256 is the
    /// key derivation's party V info, so a token made for another merchant does not open.
    pub merchant_identifier: String,
    /// The acquirer's API base URL, without a trailing `/`.
    pub acquirer_url: String,
    pub acquirer_merchant_id: String,
    pub max_token_age_seconds: u32,
}

fn invalid(message: String) -> ProviderError {
    ProviderError::InvalidRequest(format!("applepay settings: {message}"))
}

impl Settings {
    pub fn parse(json: &str) -> Result<Settings, ProviderError> {
        let raw: Raw = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        let required = |name: &str, value: Option<String>| {
            value
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty() && v.len() <= 256)
                .ok_or_else(|| invalid(format!("{name} is required (at most 256 characters)")))
        };
        let merchant_identifier = required("merchant_identifier", raw.merchant_identifier)?;
        if !merchant_identifier.starts_with("merchant.") {
            return Err(invalid(
                "merchant_identifier is Apple's (it starts with \"merchant.\")".into(),
            ));
        }
        let acquirer_url = required("acquirer_url", raw.acquirer_url)?
            .trim_end_matches('/')
            .to_owned();
        if !(acquirer_url.starts_with("https://") || acquirer_url.starts_with("http://")) {
            return Err(invalid("acquirer_url must be an http(s) URL".into()));
        }
        let max_token_age_seconds = raw
            .max_token_age_seconds
            .unwrap_or(DEFAULT_MAX_TOKEN_AGE_SECONDS);
        if !(1..=MAX_TOKEN_AGE_SECONDS_CAP).contains(&max_token_age_seconds) {
            return Err(invalid(format!(
                "max_token_age_seconds is 1 to {MAX_TOKEN_AGE_SECONDS_CAP}"
            )));
        }
        Ok(Settings {
            merchant_identifier,
            acquirer_url,
            acquirer_merchant_id: required("acquirer_merchant_id", raw.acquirer_merchant_id)?,
            max_token_age_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let good = r#"{"merchant_identifier": "merchant.test.spreedly.123merchant",
            "acquirer_url": "http://127.0.0.1:8430/acquirer/", "acquirer_merchant_id": "acq_m1"}"#;
        let settings = Settings::parse(good).unwrap();
        assert_eq!(settings.acquirer_url, "http://127.0.0.1:8430/acquirer");
        assert_eq!(settings.max_token_age_seconds, 300);
        for bad in [
            "{}",
            "not json",
            r#"{"merchant_identifier": "shop", "acquirer_url": "http://a", "acquirer_merchant_id": "m"}"#,
            r#"{"merchant_identifier": "merchant.x", "acquirer_url": "ftp://a", "acquirer_merchant_id": "m"}"#,
            r#"{"merchant_identifier": "merchant.x", "acquirer_url": "http://a", "acquirer_merchant_id": " "}"#,
            r#"{"merchant_identifier": "merchant.x", "acquirer_url": "http://a", "acquirer_merchant_id": "m", "max_token_age_seconds": 0}"#,
            r#"{"merchant_identifier": "merchant.x", "acquirer_url": "http://a", "acquirer_merchant_id": "m", "max_token_age_seconds": 86400}"#,
            r#"{"merchant_identifier": "merchant.x", "acquirer_url": "http://a", "acquirer_merchant_id": "m", "typo": 1}"#,
        ] {
            assert!(Settings::parse(bad).is_err(), "{bad}");
        }
    }
}
