//! Whose order it is, and so where its money goes.
//!
//! - **Direct**: the merchant's own WeChat Pay account (`appid` / `mchid`), at
//!   `/v3/pay/transactions/...`.
//! - **Partner** (服务商模式): a sub-merchant (`sub_mchid`) whose order its service provider
//!   places with the provider's keys (`sp_appid` / `sp_mchid`), at
//!   `/v3/pay/partner/transactions/...`; refunds name the `sub_mchid`. WeChat Pay settles a
//!   partner order to the sub-merchant. A merchant onboarded through paygate collects this
//!   way: the gateway passes its `sub_merchant_id` once the applyment is finished.
//!
//! A merchant that was onboarded (its settings carry an `activation_id`) but has no
//! sub-merchant number is refused: placing its order directly would put its money in the
//! service provider's own account.
//!
//! Answers and notifications name the order's owner; [`Payee::check`] refuses one that
//! names another (or, for a notification we act on, none).

use paygate_plugin_api::ProviderError;
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

/// `sub_mchid`: digits (WeChat Pay's are 8-10); at most this many.
const SUB_MCHID_DIGITS_MAX: usize = 32;

/// Refunds, direct or partner (a partner refund names its `sub_mchid` in the body).
pub const REFUNDS_PATH: &str = "/v3/refund/domestic/refunds";

/// A sub-merchant number: ASCII digits only (it goes into URL paths and queries).
pub fn is_sub_mchid(id: &str) -> bool {
    (1..=SUB_MCHID_DIGITS_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payee<'a> {
    Direct {
        appid: &'a str,
        mchid: &'a str,
    },
    Partner {
        sp_appid: &'a str,
        sp_mchid: &'a str,
        sub_mchid: &'a str,
    },
}

/// The owner fields of a request body, flattened into it: `appid`/`mchid`, or
/// `sp_appid`/`sp_mchid`/`sub_mchid`.
#[derive(Debug, Serialize)]
pub struct Ids<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    appid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mchid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sp_appid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sp_mchid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_mchid: Option<&'a str>,
}

/// The owner fields of an answer or a notification's resource.
#[derive(Debug, Default, Deserialize)]
pub struct Owner {
    pub appid: Option<String>,
    pub mchid: Option<String>,
    pub sp_appid: Option<String>,
    pub sp_mchid: Option<String>,
    pub sub_mchid: Option<String>,
}

/// Why an answer's owner is not ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotOurs {
    /// A field we need (for a notification we act on) is missing.
    Missing(&'static str),
    /// A field names someone else (the value, clipped).
    Other(&'static str, String),
}

impl NotOurs {
    pub fn field(&self) -> &'static str {
        match self {
            NotOurs::Missing(field) | NotOurs::Other(field, _) => field,
        }
    }
}

impl std::fmt::Display for NotOurs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotOurs::Missing(field) => write!(f, "names no {field}"),
            NotOurs::Other(field, value) => {
                write!(f, "names {field} {value:?}, not this merchant's")
            }
        }
    }
}

/// An empty string counts as absent (WeChat Pay sends `""` for unset fields).
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl<'a> Payee<'a> {
    /// The payee of a payment, refund or notification under these settings.
    pub fn of(settings: &'a Settings) -> Result<Payee<'a>, ProviderError> {
        match (settings.sub_mchid.as_deref(), settings.activation_id.as_deref()) {
            (Some(sub_mchid), _) if is_sub_mchid(sub_mchid) => Ok(Payee::Partner {
                sp_appid: &settings.appid,
                sp_mchid: &settings.mchid,
                sub_mchid,
            }),
            (Some(_), _) => Err(ProviderError::InvalidRequest(
                "wechatpay merchant settings: the sub-merchant number (`sub_mchid` / `sub_merchant_id`) must be digits"
                    .into(),
            )),
            (None, Some(activation_id)) => Err(ProviderError::InvalidRequest(format!(
                "wechatpay: merchant onboarded under application {activation_id} has no sub-merchant number (`sub_merchant_id`) yet; its payments are refused rather than collected into the service provider's own account"
            ))),
            (None, None) => Ok(Payee::own(settings)),
        }
    }

    /// The account of the settings themselves: a direct merchant's, or the service
    /// provider's own (for orders it placed as its own).
    pub fn own(settings: &'a Settings) -> Payee<'a> {
        Payee::Direct {
            appid: &settings.appid,
            mchid: &settings.mchid,
        }
    }

    /// The sub-merchant, for a partner order.
    pub fn sub_mchid(&self) -> Option<&'a str> {
        match *self {
            Payee::Direct { .. } => None,
            Payee::Partner { sub_mchid, .. } => Some(sub_mchid),
        }
    }

    /// The owner fields of an order's body: with the app id (`native`, `codepay`,
    /// `reverse`) or without (`close`).
    pub fn ids(&self, with_appid: bool) -> Ids<'a> {
        match *self {
            Payee::Direct { appid, mchid } => Ids {
                appid: with_appid.then_some(appid),
                mchid: Some(mchid),
                sp_appid: None,
                sp_mchid: None,
                sub_mchid: None,
            },
            Payee::Partner {
                sp_appid,
                sp_mchid,
                sub_mchid,
            } => Ids {
                appid: None,
                mchid: None,
                sp_appid: with_appid.then_some(sp_appid),
                sp_mchid: Some(sp_mchid),
                sub_mchid: Some(sub_mchid),
            },
        }
    }

    /// `/v3/pay/transactions` or `/v3/pay/partner/transactions`.
    fn transactions(&self) -> &'static str {
        match self {
            Payee::Direct { .. } => "/v3/pay/transactions",
            Payee::Partner { .. } => "/v3/pay/partner/transactions",
        }
    }

    pub fn native_path(&self) -> String {
        format!("{}/native", self.transactions())
    }

    pub fn codepay_path(&self) -> String {
        format!("{}/codepay", self.transactions())
    }

    /// The order query: `?mchid=`, or `?sp_mchid=&sub_mchid=`.
    pub fn query_path(&self, out_trade_no: &str) -> String {
        let base = format!("{}/out-trade-no/{out_trade_no}", self.transactions());
        match *self {
            Payee::Direct { mchid, .. } => format!("{base}?mchid={}", percent_encode(mchid)),
            Payee::Partner {
                sp_mchid,
                sub_mchid,
                ..
            } => format!(
                "{base}?sp_mchid={}&sub_mchid={}",
                percent_encode(sp_mchid),
                percent_encode(sub_mchid)
            ),
        }
    }

    pub fn close_path(&self, out_trade_no: &str) -> String {
        format!("{}/out-trade-no/{out_trade_no}/close", self.transactions())
    }

    pub fn reverse_path(&self, out_trade_no: &str) -> String {
        format!(
            "{}/out-trade-no/{out_trade_no}/reverse",
            self.transactions()
        )
    }

    /// The refund query: partner refunds are found under their `sub_mchid`.
    pub fn refund_query_path(&self, out_refund_no: &str) -> String {
        let base = format!("{REFUNDS_PATH}/{out_refund_no}");
        match self.sub_mchid() {
            None => base,
            Some(sub_mchid) => format!("{base}?sub_mchid={}", percent_encode(sub_mchid)),
        }
    }

    /// Whether `owner` names this payee's merchant numbers. A number that is present must
    /// be ours; a direct merchant's order never names a sub-merchant, a partner order never
    /// a bare `mchid`. With `required`, ours must be present too (notifications we act on:
    /// they are the only proof of whose order it is besides the signature).
    pub fn check(&self, owner: &Owner, required: bool) -> Result<(), NotOurs> {
        let field = |name: &'static str, value: &Option<String>, ours: &str| match given(value) {
            Some(theirs) if theirs != ours => Err(NotOurs::Other(name, clip(theirs))),
            Some(_) => Ok(()),
            None if required => Err(NotOurs::Missing(name)),
            None => Ok(()),
        };
        let absent = |name: &'static str, value: &Option<String>| match given(value) {
            Some(theirs) => Err(NotOurs::Other(name, clip(theirs))),
            None => Ok(()),
        };
        match *self {
            Payee::Direct { mchid, .. } => {
                absent("sub_mchid", &owner.sub_mchid)?;
                absent("sp_mchid", &owner.sp_mchid)?;
                field("mchid", &owner.mchid, mchid)
            }
            Payee::Partner {
                sp_mchid,
                sub_mchid,
                ..
            } => {
                absent("mchid", &owner.mchid)?;
                field("sp_mchid", &owner.sp_mchid, sp_mchid)?;
                field("sub_mchid", &owner.sub_mchid, sub_mchid)
            }
        }
    }

    /// Whether the app id `owner` names, if any, is ours (`appid`, or `sp_appid`). An order's
    /// answers carry it; other notifications may name another app (a service's own).
    pub fn check_app(&self, owner: &Owner) -> Result<(), NotOurs> {
        let (name, theirs, ours) = match *self {
            Payee::Direct { appid, .. } => ("appid", &owner.appid, appid),
            Payee::Partner { sp_appid, .. } => ("sp_appid", &owner.sp_appid, sp_appid),
        };
        match given(theirs) {
            Some(theirs) if theirs != ours => Err(NotOurs::Other(name, clip(theirs))),
            _ => Ok(()),
        }
    }
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Query-string encoding of everything but the unreserved characters.
pub fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn settings(extra: Value) -> Settings {
        let mut value = json!({
            "mchid": "1900000109",
            "appid": "wxd678efh567hg6787",
            "merchant_serial_no": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
            "wechatpay_public_key_id": "PUB_KEY_ID_0114232134912410000000000000",
            "base_url": "https://api.mch.weixin.qq.com",
        });
        for (k, v) in extra.as_object().unwrap() {
            value[k] = v.clone();
        }
        Settings::parse(&value.to_string()).unwrap()
    }

    fn owner(value: Value) -> Owner {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_merchant_of_its_own_collects_directly() {
        let s = settings(json!({}));
        let payee = Payee::of(&s).unwrap();
        assert_eq!(payee.sub_mchid(), None);
        assert_eq!(payee.native_path(), "/v3/pay/transactions/native");
        assert_eq!(payee.codepay_path(), "/v3/pay/transactions/codepay");
        assert_eq!(
            payee.query_path("pay_1"),
            "/v3/pay/transactions/out-trade-no/pay_1?mchid=1900000109"
        );
        assert_eq!(
            payee.close_path("pay_1"),
            "/v3/pay/transactions/out-trade-no/pay_1/close"
        );
        assert_eq!(
            payee.refund_query_path("ref_1"),
            "/v3/refund/domestic/refunds/ref_1"
        );
        assert_eq!(
            serde_json::to_value(payee.ids(true)).unwrap(),
            json!({"appid": "wxd678efh567hg6787", "mchid": "1900000109"})
        );
        assert_eq!(
            serde_json::to_value(payee.ids(false)).unwrap(),
            json!({"mchid": "1900000109"})
        );
    }

    #[test]
    fn a_sub_merchant_collects_through_its_service_provider() {
        // Configured (a merchant onboarded outside paygate), or named by the gateway.
        for extra in [
            json!({"sub_mchid": "1900006491"}),
            json!({"sub_merchant_id": "1900006491", "activation_id": "act_1"}),
        ] {
            let s = settings(extra);
            let payee = Payee::of(&s).unwrap();
            assert_eq!(payee.sub_mchid(), Some("1900006491"));
            assert_eq!(payee.native_path(), "/v3/pay/partner/transactions/native");
            assert_eq!(payee.codepay_path(), "/v3/pay/partner/transactions/codepay");
            assert_eq!(
                payee.query_path("pay_1"),
                "/v3/pay/partner/transactions/out-trade-no/pay_1?sp_mchid=1900000109&sub_mchid=1900006491"
            );
            assert_eq!(
                payee.reverse_path("pay_1"),
                "/v3/pay/partner/transactions/out-trade-no/pay_1/reverse"
            );
            assert_eq!(
                payee.refund_query_path("ref_1"),
                "/v3/refund/domestic/refunds/ref_1?sub_mchid=1900006491"
            );
            assert_eq!(
                serde_json::to_value(payee.ids(true)).unwrap(),
                json!({"sp_appid": "wxd678efh567hg6787", "sp_mchid": "1900000109",
                       "sub_mchid": "1900006491"})
            );
            assert_eq!(
                serde_json::to_value(payee.ids(false)).unwrap(),
                json!({"sp_mchid": "1900000109", "sub_mchid": "1900006491"})
            );
        }
    }

    #[test]
    fn an_onboarded_merchant_without_its_sub_merchant_number_is_refused() {
        let s = settings(json!({"activation_id": "act_1"}));
        let Err(ProviderError::InvalidRequest(message)) = Payee::of(&s) else {
            panic!("an onboarded merchant without sub_mchid must not collect directly");
        };
        assert!(message.contains("act_1") && message.contains("sub_merchant_id"));
        // The platform's own configured sub-merchant is not the onboarded merchant's.
        let s = settings(json!({"activation_id": "act_1", "sub_mchid": "1900006491"}));
        assert!(matches!(
            Payee::of(&s),
            Err(ProviderError::InvalidRequest(_))
        ));
        let s = settings(json!({"sub_mchid": "19000x6491"}));
        assert!(matches!(
            Payee::of(&s),
            Err(ProviderError::InvalidRequest(m)) if m.contains("digits")
        ));
    }

    #[test]
    fn sub_merchant_numbers_are_digits() {
        assert!(is_sub_mchid("1900006491"));
        for bad in [
            "",
            "19000064x1",
            "1900 6491",
            "1900/6491",
            &"1".repeat(33),
            "../1",
        ] {
            assert!(!is_sub_mchid(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_owner_naming_someone_else_is_not_ours() {
        let direct = Payee::Direct {
            appid: "wx_a",
            mchid: "1900000109",
        };
        assert_eq!(
            direct.check(&owner(json!({"mchid": "1900000109"})), true),
            Ok(())
        );
        assert_eq!(direct.check(&owner(json!({})), false), Ok(()));
        assert_eq!(
            direct.check(&owner(json!({})), true),
            Err(NotOurs::Missing("mchid"))
        );
        assert_eq!(
            direct
                .check(&owner(json!({"mchid": "1900000999"})), false)
                .unwrap_err()
                .field(),
            "mchid"
        );
        assert_eq!(
            direct
                .check_app(&owner(json!({"mchid": "1900000109", "appid": "wx_b"})))
                .unwrap_err()
                .field(),
            "appid"
        );
        assert_eq!(direct.check_app(&owner(json!({"appid": "wx_a"}))), Ok(()));
        // A sub-merchant's order is not the service provider's own.
        assert_eq!(
            direct
                .check(
                    &owner(json!({"sp_mchid": "1900000109", "sub_mchid": "1900006491"})),
                    false
                )
                .unwrap_err()
                .field(),
            "sub_mchid"
        );

        let partner = Payee::Partner {
            sp_appid: "wx_a",
            sp_mchid: "1900000109",
            sub_mchid: "1900006491",
        };
        let ours = json!({"sp_appid": "wx_a", "sp_mchid": "1900000109", "sub_mchid": "1900006491"});
        assert_eq!(partner.check(&owner(ours.clone()), true), Ok(()));
        for (field, value) in [
            ("sub_mchid", "1900006492"),
            ("sp_mchid", "1900000999"),
            ("sp_appid", "wx_b"),
        ] {
            let mut other = ours.clone();
            other[field] = value.into();
            let other = owner(other);
            let err = if field == "sp_appid" {
                partner.check_app(&other)
            } else {
                partner.check(&other, false)
            }
            .unwrap_err();
            assert_eq!(err, NotOurs::Other(field, value.into()));
            assert!(err.to_string().contains(value), "{err}");
        }
        // Another sub-merchant of the same provider, or the provider's own order.
        assert!(
            partner
                .check(&owner(json!({"mchid": "1900000109"})), false)
                .is_err()
        );
        let mut without = ours.clone();
        without.as_object_mut().unwrap().remove("sub_mchid");
        assert_eq!(partner.check(&owner(without.clone()), false), Ok(()));
        assert_eq!(
            partner.check(&owner(without), true),
            Err(NotOurs::Missing("sub_mchid"))
        );
        // Empty strings are absent.
        assert_eq!(
            partner.check(
                &owner(json!({"sp_mchid": "1900000109", "sub_mchid": "1900006491", "mchid": ""})),
                true
            ),
            Ok(())
        );
    }
}
