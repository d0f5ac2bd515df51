//! The merchant's WeChat Pay settings (`merchant.settings_json`), checked once per call.
//! The names are the contract with the config and the simulator: do not rename them.

use paygate_plugin_api::ProviderError;
use serde::Deserialize;

/// Key names under `[merchants.providers.wechatpay.keys]`.
pub mod key_names {
    /// Signs requests (SHA256withRSA).
    pub const MERCHANT_PRIVATE_KEY: &str = "merchant_private_key";
    /// Verifies responses and notifications.
    pub const WECHATPAY_PUBLIC_KEY: &str = "wechatpay_public_key";
    /// Decrypts notification resources (AES-GCM; 32 bytes in production, 16 in the vectors).
    pub const APIV3_KEY: &str = "apiv3_key";
}

/// Longest value accepted for an id-like setting (WeChat's own limits are 32-64).
const ID_SETTING_CHARS_MAX: usize = 64;
const BASE_URL_CHARS_MAX: usize = 256;

#[derive(Debug, Deserialize)]
struct Raw {
    mchid: Option<String>,
    appid: Option<String>,
    merchant_serial_no: Option<String>,
    wechatpay_public_key_id: Option<String>,
    base_url: Option<String>,
    /// Optional: the store number sent as `scene_info.store_info.out_id` on payment-code
    /// orders (defaults to our merchant id).
    store_id: Option<String>,
    /// Onboarding: the merchant's activation id at this provider (the applyment's
    /// `business_code`), which the gateway passes once the merchant has one. `bind-account`
    /// and `query-binding` find the sub-merchant through it.
    activation_id: Option<String>,
    /// Onboarding: the sub-merchant number (`sub_mchid`) of a merchant onboarded outside
    /// paygate; used when there is no `activation_id`.
    sub_mchid: Option<String>,
    /// The same, under the name the gateway passes it (the activation's provider
    /// reference, which is the `sub_mchid` once active). `sub_mchid` wins when both are set.
    sub_merchant_id: Option<String>,
    /// Onboarding: the applyment's `settlement_info.settlement_id` (WeChat Pay's settlement
    /// rule for the merchant's category and rate).
    settlement_id: Option<String>,
    /// Binding: the administrative division code (6 digits) of the account's branch, which
    /// the gateway passes with a binding (the bank account's `bank_area_code`).
    bank_area_code: Option<String>,
    /// Binding queries: the last four digits of the account, which the gateway passes.
    account_number_last4: Option<String>,
}

/// Valid settings of one merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mchid: String,
    pub appid: String,
    /// Serial of the merchant API certificate, sent as `serial_no` in `Authorization`.
    pub merchant_serial_no: String,
    /// The expected `Wechatpay-Serial` of every response and notification.
    pub wechatpay_public_key_id: String,
    /// `scheme://host[:port]` of `base_url`, e.g. `http://127.0.0.1:8430`.
    pub origin: String,
    /// The path part of `base_url` without a trailing `/`: `""` for the real API,
    /// `/wechatpay` for the simulator. Request paths are appended to it, and it is part of
    /// the signed URL.
    pub base_path: String,
    pub store_id: Option<String>,
    /// The activation id (applyment `business_code`) the gateway passes for onboarded
    /// merchants.
    pub activation_id: Option<String>,
    /// A configured sub-merchant number (merchants onboarded outside paygate).
    pub sub_mchid: Option<String>,
    /// `settlement_info.settlement_id` of applyments; [`DEFAULT_SETTLEMENT_ID`] when unset.
    pub settlement_id: String,
    /// `bank_address_code` of a settlement account change, when the gateway passed one.
    pub bank_area_code: Option<String>,
    /// The last digits of the account a binding query is about, when the gateway passed them.
    pub account_number_last4: Option<String>,
}

/// The settlement rule sent when the merchant's settings name none: the enterprise rule of
/// WeChat Pay's own applyment examples. Check it against WeChat Pay's settlement rule table
/// (费率结算规则对照表) for the merchant's category and set `settlement_id` when it differs.
pub const DEFAULT_SETTLEMENT_ID: &str = "716";

impl Settings {
    /// Parses and checks the merchant's settings JSON.
    pub fn parse(json: &str) -> Result<Settings, ProviderError> {
        let raw: Raw = serde_json::from_str(json).map_err(|e| bad(format!("not valid: {e}")))?;
        let id = |name: &str, value: Option<String>| -> Result<String, ProviderError> {
            let value = value.ok_or_else(|| bad(format!("`{name}` is missing")))?;
            let value = value.trim().to_owned();
            if value.is_empty()
                || value.chars().count() > ID_SETTING_CHARS_MAX
                || !value.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(bad(format!(
                    "`{name}` must be 1 to {ID_SETTING_CHARS_MAX} printable ASCII characters"
                )));
            }
            Ok(value)
        };
        let mchid = id("mchid", raw.mchid)?;
        let appid = id("appid", raw.appid)?;
        let merchant_serial_no = id("merchant_serial_no", raw.merchant_serial_no)?;
        let wechatpay_public_key_id = id("wechatpay_public_key_id", raw.wechatpay_public_key_id)?;
        let base_url = raw
            .base_url
            .ok_or_else(|| bad("`base_url` is missing".into()))?;
        let (origin, base_path) = split_base_url(&base_url)?;
        let onboarded = raw
            .activation_id
            .as_deref()
            .is_some_and(|a| !a.trim().is_empty());
        Ok(Settings {
            mchid,
            appid,
            merchant_serial_no,
            wechatpay_public_key_id,
            origin,
            base_path,
            store_id: raw.store_id.map(|s| id("store_id", Some(s))).transpose()?,
            activation_id: raw
                .activation_id
                .filter(|a| !a.trim().is_empty())
                .map(|a| id("activation_id", Some(a)))
                .transpose()?,
            // A merchant the gateway onboarded (it passes `activation_id`) is the sub-merchant
            // the gateway names, never one the platform's own settings may carry.
            sub_mchid: if onboarded {
                raw.sub_merchant_id
            } else {
                raw.sub_mchid
                    .filter(|s| !s.trim().is_empty())
                    .or(raw.sub_merchant_id)
            }
            .filter(|s| !s.trim().is_empty())
            .map(|s| id("sub_mchid", Some(s)))
            .transpose()?,
            settlement_id: raw
                .settlement_id
                .map(|s| id("settlement_id", Some(s)))
                .transpose()?
                .unwrap_or_else(|| DEFAULT_SETTLEMENT_ID.to_owned()),
            bank_area_code: raw
                .bank_area_code
                .filter(|c| !c.trim().is_empty())
                .map(|c| {
                    let c = c.trim().to_owned();
                    if c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()) {
                        Ok(c)
                    } else {
                        Err(bad("`bank_area_code` must be 6 digits".into()))
                    }
                })
                .transpose()?,
            account_number_last4: raw
                .account_number_last4
                .map(|l| l.trim().to_owned())
                .filter(|l| {
                    !l.is_empty() && l.len() <= 4 && l.bytes().all(|b| b.is_ascii_alphanumeric())
                }),
        })
    }

    /// The full URL of a request path such as `/v3/pay/transactions/native`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.origin, self.signed_path(path_and_query))
    }

    /// The URL as it is signed: path and query as sent to the server, base path included.
    pub fn signed_path(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base_path, path_and_query)
    }
}

fn bad(message: String) -> ProviderError {
    ProviderError::InvalidRequest(format!("wechatpay merchant settings: {message}"))
}

/// Splits `base_url` into its origin and its path (no trailing `/`). Refuses anything but
/// `http(s)://host[:port][/path]`: no user info, query or fragment.
fn split_base_url(base_url: &str) -> Result<(String, String), ProviderError> {
    let invalid = || {
        bad(format!(
            "`base_url` must look like https://api.mch.weixin.qq.com (got {:?})",
            base_url.chars().take(80).collect::<String>()
        ))
    };
    let text = base_url.trim();
    if text.len() > BASE_URL_CHARS_MAX || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(invalid)?;
    let scheme_len = text.len() - rest.len();
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains(['@', '?', '#']) || path.contains(['?', '#']) {
        return Err(invalid());
    }
    let origin = format!("{}{authority}", &text[..scheme_len]);
    Ok((origin, path.trim_end_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(base_url: &str) -> String {
        serde_json::json!({
            "mchid": "1900000109",
            "appid": "wxd678efh567hg6787",
            "merchant_serial_no": "F5765756002FDD77",
            "wechatpay_public_key_id": "PUB_KEY_ID_0114",
            "base_url": base_url,
        })
        .to_string()
    }

    #[test]
    fn the_real_api_has_an_empty_base_path() {
        let s = Settings::parse(&json("https://api.mch.weixin.qq.com")).unwrap();
        assert_eq!(s.origin, "https://api.mch.weixin.qq.com");
        assert_eq!(s.base_path, "");
        assert_eq!(
            s.url("/v3/pay/transactions/native"),
            "https://api.mch.weixin.qq.com/v3/pay/transactions/native"
        );
        assert_eq!(
            s.signed_path("/v3/pay/transactions/native"),
            "/v3/pay/transactions/native"
        );
        assert_eq!(s.store_id, None);
    }

    #[test]
    fn the_simulator_base_path_is_part_of_the_url_and_the_signature() {
        for base in [
            "http://127.0.0.1:8430/wechatpay",
            "http://127.0.0.1:8430/wechatpay/",
        ] {
            let s = Settings::parse(&json(base)).unwrap();
            assert_eq!(s.origin, "http://127.0.0.1:8430");
            assert_eq!(
                s.url("/v3/refund/domestic/refunds"),
                "http://127.0.0.1:8430/wechatpay/v3/refund/domestic/refunds"
            );
            assert_eq!(
                s.signed_path("/v3/pay/transactions/out-trade-no/pay_1?mchid=1900000109"),
                "/wechatpay/v3/pay/transactions/out-trade-no/pay_1?mchid=1900000109"
            );
        }
    }

    #[test]
    fn missing_or_malformed_settings_are_refused_clearly() {
        let err = |json: &str| match Settings::parse(json) {
            Err(ProviderError::InvalidRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err("not json").contains("not valid"));
        assert!(err("{}").contains("`mchid` is missing"));
        let mut value: serde_json::Value = serde_json::from_str(&json("https://x")).unwrap();
        value["mchid"] = "".into();
        assert!(err(&value.to_string()).contains("`mchid`"));
        value["mchid"] = "19 00".into();
        assert!(err(&value.to_string()).contains("`mchid`"));
        value["mchid"] = "1".repeat(65).into();
        assert!(err(&value.to_string()).contains("`mchid`"));
        for base in [
            "",
            "api.mch.weixin.qq.com",
            "ftp://x",
            "https://",
            "https://user@host",
            "https://host/path?query=1",
            "https://host/#frag",
            "https://host with space",
        ] {
            assert!(err(&json(base)).contains("base_url"), "{base:?}");
        }
        assert!(err(&json(&format!("https://{}", "h".repeat(300)))).contains("base_url"));
    }

    #[test]
    fn the_optional_store_id_is_read() {
        let mut value: serde_json::Value = serde_json::from_str(&json("https://x")).unwrap();
        value["store_id"] = "SZ-001".into();
        value["unrelated_setting"] = true.into();
        let s = Settings::parse(&value.to_string()).unwrap();
        assert_eq!(s.store_id.as_deref(), Some("SZ-001"));
    }

    #[test]
    fn the_onboarding_settings_are_optional() {
        let s = Settings::parse(&json("https://x")).unwrap();
        assert_eq!(s.activation_id, None);
        assert_eq!(s.sub_mchid, None);
        assert_eq!(s.settlement_id, DEFAULT_SETTLEMENT_ID);
        let mut value: serde_json::Value = serde_json::from_str(&json("https://x")).unwrap();
        value["activation_id"] = "act_0Fq3Zx9AbCdEfGhIjKlMnOpQ".into();
        value["sub_mchid"] = "1900006491".into();
        value["settlement_id"] = "719".into();
        let s = Settings::parse(&value.to_string()).unwrap();
        assert_eq!(
            s.activation_id.as_deref(),
            Some("act_0Fq3Zx9AbCdEfGhIjKlMnOpQ")
        );
        // A merchant the gateway onboarded is not the sub-merchant the platform's own
        // settings name.
        assert_eq!(s.sub_mchid, None);
        assert_eq!(s.settlement_id, "719");
        // It is the one the gateway names.
        value["sub_merchant_id"] = "1900006492".into();
        let s = Settings::parse(&value.to_string()).unwrap();
        assert_eq!(s.sub_mchid.as_deref(), Some("1900006492"));
        // Without an activation, a configured sub-merchant wins over the gateway's name.
        value.as_object_mut().unwrap().remove("activation_id");
        let s = Settings::parse(&value.to_string()).unwrap();
        assert_eq!(s.sub_mchid.as_deref(), Some("1900006491"));
        value["activation_id"] = "act_0Fq3Zx9AbCdEfGhIjKlMnOpQ".into();
        value.as_object_mut().unwrap().remove("sub_mchid");
        // Empty means "none yet"; a wrong type is refused.
        value["activation_id"] = "".into();
        assert_eq!(
            Settings::parse(&value.to_string()).unwrap().activation_id,
            None
        );
        value["activation_id"] = 5.into();
        assert!(Settings::parse(&value.to_string()).is_err());
        value["activation_id"] = "act 1".into();
        assert!(Settings::parse(&value.to_string()).is_err());
    }
}
