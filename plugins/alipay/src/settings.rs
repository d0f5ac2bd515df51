//! The merchant's Alipay settings (`merchant.settings_json`) and the names of its keys,
//! checked once per call. The names are the contract with the config and the simulator: do
//! not rename them. A broken setting is refused before anything is sent (the flow reports it
//! according to what the call may do: `transform::Effect::refused`).

use serde::Deserialize;

/// Key names under `[merchants.providers.alipay.keys]`.
pub mod key_names {
    /// Signs requests (RSA2).
    pub const APP_PRIVATE_KEY: &str = "app_private_key";
    /// Verifies answers and notices (RSA2).
    pub const ALIPAY_PUBLIC_KEY: &str = "alipay_public_key";
}

/// The merchant's non-secret settings (`merchant.settings_json`).
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// The Alipay application id (`app_id`).
    pub app_id: String,
    /// The full URL of `gateway.do`.
    pub gateway_url: String,
    /// The seller's Alipay user id (2088...); sent when set, and notices must match it.
    #[serde(default)]
    pub seller_id: Option<String>,
    /// The sub-merchant id (`smid`) Alipay gave a merchant onboarded through the platform
    /// (the gateway passes its activation's provider reference): the trades are the
    /// sub-merchant's (`sub_merchant.merchant_id`, settled to it), and it names the
    /// sub-merchant a settlement account is bound for.
    #[serde(default)]
    pub sub_merchant_id: Option<String>,
    /// The activation id the gateway passes for a merchant onboarded through the platform.
    #[serde(default)]
    pub activation_id: Option<String>,
}

impl Settings {
    pub fn parse(json: &str) -> Result<Settings, String> {
        let settings: Settings =
            serde_json::from_str(json).map_err(|e| format!("alipay settings: {e}"))?;
        if settings.app_id.trim().is_empty() {
            return Err("alipay settings: app_id is empty".into());
        }
        let url = settings.gateway_url.as_str();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "alipay settings: gateway_url \"{url}\" is not an http(s) URL"
            ));
        }
        Ok(Settings {
            seller_id: settings.seller_id.filter(|s| !s.trim().is_empty()),
            sub_merchant_id: settings
                .sub_merchant_id
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            activation_id: settings
                .activation_id
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            ..settings
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::parse(r#"{"app_id":"2021000000000001","gateway_url":"http://127.0.0.1:8430/alipay/gateway.do"}"#)
            .unwrap()
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(settings().app_id, "2021000000000001");
        assert_eq!(settings().seller_id, None);
        let with_seller = Settings::parse(
            r#"{"app_id":"1","gateway_url":"https://openapi.alipay.com/gateway.do","seller_id":"2088","extra":1}"#,
        )
        .unwrap();
        assert_eq!(with_seller.seller_id.as_deref(), Some("2088"));
        assert!(Settings::parse("{}").unwrap_err().contains("app_id"));
        assert!(
            Settings::parse(r#"{"app_id":"1"}"#)
                .unwrap_err()
                .contains("gateway_url")
        );
        assert!(Settings::parse(r#"{"app_id":" ","gateway_url":"https://x"}"#).is_err());
        assert!(Settings::parse(r#"{"app_id":"1","gateway_url":"ftp://x"}"#).is_err());
        assert!(Settings::parse(r#"{"app_id":1,"gateway_url":"https://x"}"#).is_err());
        assert!(Settings::parse("not json").is_err());
    }
}
