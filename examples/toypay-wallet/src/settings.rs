//! The merchant's settings (`[merchants.providers.toypay] settings`, over the plugin's
//! `[plugins.settings]`), as `settings.schema.json` describes them.

use paygate_plugin_api::{Merchant, ProviderError};
use serde::Deserialize;

/// The key the merchant's secret is configured under (`keys = { toypay_secret = "file:..." }`).
pub const SECRET_KEY: &str = "toypay_secret";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The provider's API, without a trailing `/`.
    pub base_url: String,
    /// The merchant's id at the provider.
    pub merchant: String,
}

impl Settings {
    pub fn of(merchant: &Merchant) -> Result<Settings, ProviderError> {
        let settings: Settings = merchant.settings()?;
        if settings.merchant.is_empty() || settings.base_url.ends_with('/') {
            return Err(ProviderError::InvalidRequest(
                "toypay: settings need `merchant` and a `base_url` without a trailing /".into(),
            ));
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merchant(settings: &str) -> Merchant {
        Merchant {
            id: "m_1".into(),
            settings_json: settings.into(),
            notify_url: String::new(),
        }
    }

    #[test]
    fn settings_are_read_and_checked() {
        let good = merchant(r#"{"base_url": "https://api.example", "merchant": "m-7"}"#);
        assert_eq!(Settings::of(&good).unwrap().merchant, "m-7");
        for bad in [
            r#"{"base_url": "https://api.example/", "merchant": "m-7"}"#,
            r#"{"base_url": "https://api.example", "merchant": ""}"#,
            r#"{"base_url": "https://api.example"}"#,
            r#"{"base_url": "https://api.example", "merchant": "m-7", "typo": 1}"#,
        ] {
            assert!(Settings::of(&merchant(bad)).is_err(), "{bad}");
        }
    }
}
