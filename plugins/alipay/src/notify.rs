//! Alipay's asynchronous trade notices (`notify_type=trade_status_sync`): a form-encoded
//! POST to the `notify_url` we sent, signed RSA2 by Alipay over the sorted non-empty
//! parameters without `sign` and `sign_type`, to be answered with the plain text
//! `success` (anything else and Alipay sends it again, up to 8 times over about 25 hours).
//!
//! Pure: [`read`] builds what the signature covers, the flow has the host verify it, then
//! [`updates`] turns the verified parameters into what changed; [`handle`] chains the three
//! with the signature check it is given (the host's, or the fuzz target's stand-in).

use std::collections::BTreeMap;

use paygate_plugin_api::keys::KeyError;
use paygate_plugin_api::{
    Notification, NotificationRejected, PaymentResult, PaymentStatus, PaymentUpdate, Reply, Update,
    form,
};

use crate::sign;
use crate::transform::{ALIPAY_PUBLIC_KEY, Settings, status_of_trade};

/// Notices larger than this are refused unread (Alipay's are a few KiB).
pub const MAX_NOTICE_BYTES: usize = 256 * 1024;

/// The notice type of trade state changes.
pub const TRADE_STATUS_SYNC: &str = "trade_status_sync";

/// A notice, parsed but not yet verified.
#[derive(Debug)]
pub struct Notice {
    /// Every parameter, decoded.
    pub params: BTreeMap<String, String>,
    /// What `sign` must be a signature of.
    pub signing_string: String,
    /// `sign`, decoded from base64.
    pub signature: Vec<u8>,
}

/// A notice read, verified and turned into what changed: [`read`], then `verify` (the
/// host's `keys::verify` with `alipay_public_key` in the plugin; a stand-in when fuzzed
/// natively) over the signing string and the signature, then [`updates`]. Returns the
/// notice too, for the log.
pub fn handle(
    notice: &Notification,
    verify: impl FnOnce(&[u8], &[u8]) -> Result<bool, KeyError>,
) -> Result<(Notice, Vec<Update>), NotificationRejected> {
    let settings = Settings::parse(&notice.merchant.settings_json).map_err(rejected)?;
    let parsed = read(&notice.body).map_err(rejected)?;
    match verify(parsed.signing_string.as_bytes(), &parsed.signature) {
        Ok(true) => {}
        Ok(false) => return Err(rejected("the signature does not verify".into())),
        Err(e) => {
            return Err(rejected(format!(
                "cannot verify with {ALIPAY_PUBLIC_KEY}: {e:?}"
            )));
        }
    }
    let updates = updates(&parsed.params, &settings).map_err(rejected)?;
    Ok((parsed, updates))
}

/// Parses a notice body and prepares its verification. Refuses empty or oversized bodies,
/// repeated parameters (which copy would the signature be over?), a missing `sign`, a
/// `sign_type` other than RSA2 and a `charset` other than UTF-8. A missing `sign_type` is
/// accepted: it is not part of what is signed, and the signature is checked as RSA2
/// (the only type this plugin asks Alipay for) either way.
pub fn read(body: &[u8]) -> Result<Notice, String> {
    if body.len() > MAX_NOTICE_BYTES {
        return Err(format!(
            "the notice is {} bytes, more than the {MAX_NOTICE_BYTES} accepted",
            body.len()
        ));
    }
    let pairs = form::decode(body);
    if pairs.is_empty() {
        return Err("the notice is empty".into());
    }
    let mut params = BTreeMap::new();
    for (key, value) in &pairs {
        if params.insert(key.clone(), value.clone()).is_some() {
            return Err(format!("the notice repeats the parameter \"{key}\""));
        }
    }
    let sign_text = params
        .get("sign")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "the notice has no sign".to_string())?;
    let signature = sign::decode_signature(sign_text)?;
    if let Some(sign_type) = params.get("sign_type").filter(|t| !t.is_empty())
        && sign_type != sign::SIGN_TYPE
    {
        return Err(format!(
            "sign_type \"{}\" is not supported (RSA2 only)",
            sign_type.escape_debug()
        ));
    }
    if let Some(charset) = params.get("charset").filter(|c| !c.is_empty())
        && !charset.eq_ignore_ascii_case("utf-8")
    {
        return Err(format!(
            "charset \"{}\" is not supported (utf-8 only)",
            charset.escape_debug()
        ));
    }
    Ok(Notice {
        signing_string: sign::notify_signing_string(&pairs),
        params,
        signature,
    })
}

/// What a verified notice changes. Refuses a notice for another application (`app_id`)
/// or, when the merchant's `seller_id` is configured, another seller; and a trade notice
/// without `out_trade_no` or `trade_status`.
///
/// - `TRADE_SUCCESS` / `TRADE_FINISHED`: the payment `out_trade_no` succeeded.
/// - `TRADE_CLOSED`: cancelled (closed unpaid, by timeout or a close/cancel). A trade
///   closed by a *full refund* (the notice carries `out_biz_no`, `refund_fee` or
///   `gmt_refund`) had been paid: it is reported as succeeded, never as cancelled.
/// - `WAIT_BUYER_PAY`: nothing (pending is what the gateway already has, and reporting it
///   after a later state would look like a contradiction).
/// - Another `notify_type`, or an unknown `trade_status`: nothing (acknowledged; the
///   gateway's own queries reconcile the payment).
///
/// Refund details in notices (`out_biz_no` is our refund id, `refund_fee` the refunded
/// total) are not turned into refund updates: refunds are settled by `refund` and
/// `query-refund`.
pub fn updates(
    params: &BTreeMap<String, String>,
    settings: &Settings,
) -> Result<Vec<Update>, String> {
    let field = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    match field("app_id") {
        Some(app_id) if app_id == settings.app_id => {}
        Some(app_id) => {
            return Err(format!(
                "app_id {} is not this merchant's ({})",
                app_id.escape_debug(),
                settings.app_id
            ));
        }
        None => return Err("the notice has no app_id".into()),
    }
    if let (Some(expected), Some(seller)) = (&settings.seller_id, field("seller_id"))
        && seller != expected
    {
        return Err(format!(
            "seller_id {} is not this merchant's ({expected})",
            seller.escape_debug()
        ));
    }
    if field("notify_type").is_some_and(|t| t != TRADE_STATUS_SYNC) {
        return Ok(Vec::new());
    }
    let out_trade_no = field("out_trade_no").ok_or("the notice has no out_trade_no")?;
    let trade_status = field("trade_status").ok_or("the notice has no trade_status")?;
    let refunded = ["out_biz_no", "refund_fee", "gmt_refund"]
        .iter()
        .any(|name| field(name).is_some());
    let status = match status_of_trade(trade_status) {
        None | Some(PaymentStatus::Pending) => return Ok(Vec::new()),
        Some(PaymentStatus::Cancelled) if refunded => PaymentStatus::Succeeded,
        Some(status) => status,
    };
    let payer = ["buyer_id", "buyer_open_id", "buyer_logon_id"]
        .iter()
        .find_map(|name| field(name))
        .map(str::to_owned);
    Ok(vec![Update::Payment(PaymentUpdate {
        payment_id: out_trade_no.to_owned(),
        outcome: PaymentResult {
            provider_reference: field("trade_no").map(str::to_owned),
            payer,
            ..PaymentResult::with_status(status)
        },
    })])
}

/// What Alipay expects for a notice we took: the plain text `success`.
pub fn accepted() -> Reply {
    Reply::text(200, "success")
}

/// A refused notice: nothing changes, and Alipay will send it again.
pub fn rejected(reason: String) -> NotificationRejected {
    NotificationRejected {
        reason,
        reply: Reply::text(400, "fail"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::tests::rsa2_verifies;

    struct Vector {
        public_key_pem: String,
        params: Vec<(String, String)>,
    }

    fn vector() -> Vector {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/vectors/alipay/notify_trade_success.json");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        Vector {
            public_key_pem: json["alipay_public_key_pem"].as_str().unwrap().to_owned(),
            params: json["params"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect(),
        }
    }

    fn body(params: &[(String, String)]) -> Vec<u8> {
        form::encode(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into_bytes()
    }

    fn verifies(v: &Vector, notice: &Notice) -> bool {
        rsa2_verifies(
            &v.public_key_pem,
            notice.signing_string.as_bytes(),
            &notice.signature,
        )
    }

    fn settings(app_id: &str) -> Settings {
        Settings::parse(&format!(
            r#"{{"app_id":"{app_id}","gateway_url":"https://openapi.alipay.com/gateway.do"}}"#
        ))
        .unwrap()
    }

    fn with(params: &[(String, String)], key: &str, value: Option<&str>) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            params.iter().filter(|(k, _)| k != key).cloned().collect();
        if let Some(value) = value {
            out.push((key.to_owned(), value.to_owned()));
        }
        out
    }

    #[test]
    fn the_published_vector_verifies() {
        let v = vector();
        let notice = read(&body(&v.params)).unwrap();
        assert!(verifies(&v, &notice));
        assert!(!notice.signing_string.contains("sign_type="));
        assert!(
            notice
                .signing_string
                .starts_with("app_id=2019073166072302&auth_app_id=")
        );
        assert!(
            notice
                .signing_string
                .contains("&subject=语雀空间 500人规模&")
        );
    }

    #[test]
    fn the_vector_only_verifies_without_sign_type() {
        let v = vector();
        let notice = read(&body(&v.params)).unwrap();
        let with_sign_type = sign::request_signing_string(&v.params);
        assert!(with_sign_type.contains("sign_type=RSA2"));
        assert!(!rsa2_verifies(
            &v.public_key_pem,
            with_sign_type.as_bytes(),
            &notice.signature
        ));
    }

    #[test]
    fn any_changed_parameter_breaks_the_vector() {
        let v = vector();
        for (key, value) in &v.params {
            if key == "sign" || key == "sign_type" {
                continue;
            }
            let changed = with(&v.params, key, Some(&format!("{value}0")));
            // Refused outright (a changed charset) or read and not verified.
            if let Ok(notice) = read(&body(&changed)) {
                assert!(
                    !verifies(&v, &notice),
                    "changing {key} should break the signature"
                );
            }
        }
        // An added parameter breaks it too; an added empty one does not (empties are skipped).
        let added = with(&v.params, "extra", Some("1"));
        assert!(!verifies(&v, &read(&body(&added)).unwrap()));
        let empty = with(&v.params, "extra", Some(""));
        assert!(verifies(&v, &read(&body(&empty)).unwrap()));
    }

    #[test]
    fn a_missing_sign_type_still_verifies_and_a_foreign_one_is_refused() {
        let v = vector();
        let without = with(&v.params, "sign_type", None);
        assert!(verifies(&v, &read(&body(&without)).unwrap()));
        let rsa = with(&v.params, "sign_type", Some("RSA"));
        assert!(read(&body(&rsa)).unwrap_err().contains("sign_type"));
        let gbk = with(&v.params, "charset", Some("GBK"));
        assert!(read(&body(&gbk)).unwrap_err().contains("charset"));
    }

    #[test]
    fn broken_notices_are_refused_with_a_reason() {
        let v = vector();
        assert!(read(b"").unwrap_err().contains("empty"));
        assert!(read(b"{\"json\":true}").unwrap_err().contains("no sign"));
        let no_sign = with(&v.params, "sign", None);
        assert!(read(&body(&no_sign)).unwrap_err().contains("no sign"));
        let empty_sign = with(&v.params, "sign", Some(""));
        assert!(read(&body(&empty_sign)).unwrap_err().contains("no sign"));
        let bad_sign = with(&v.params, "sign", Some("%%%"));
        assert!(read(&body(&bad_sign)).unwrap_err().contains("base64"));
        let mut twice = v.params.clone();
        twice.push(("trade_status".into(), "TRADE_CLOSED".into()));
        assert!(read(&body(&twice)).unwrap_err().contains("repeats"));
        let huge = vec![b'a'; MAX_NOTICE_BYTES + 1];
        assert!(read(&huge).unwrap_err().contains("more than"));
        // Invalid percent-encoding or UTF-8 does not panic; it just cannot verify.
        let notice = read(b"sign=QUJD&out_trade_no=%FF%FE&app_id=1").unwrap();
        assert!(notice.signing_string.contains('\u{FFFD}'));
    }

    #[test]
    fn the_vector_reports_its_payment_succeeded() {
        let v = vector();
        let notice = read(&body(&v.params)).unwrap();
        let updates = updates(&notice.params, &settings("2019073166072302")).unwrap();
        assert_eq!(updates.len(), 1);
        let Update::Payment(update) = &updates[0] else {
            panic!("a payment update");
        };
        assert_eq!(update.payment_id, "20190815155618536-564-57");
        assert_eq!(update.outcome.status, PaymentStatus::Succeeded);
        assert_eq!(
            update.outcome.provider_reference.as_deref(),
            Some("2019081522001468450512505578")
        );
        assert_eq!(update.outcome.payer.as_deref(), Some("2088102534368455"));
    }

    fn params(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn status(items: &[(&str, &str)]) -> Option<PaymentStatus> {
        match updates(&params(items), &settings("app1"))
            .unwrap()
            .as_slice()
        {
            [] => None,
            [Update::Payment(u)] => Some(u.outcome.status),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_trade_status_maps() {
        let base = [
            ("app_id", "app1"),
            ("notify_type", "trade_status_sync"),
            ("out_trade_no", "pay_1"),
            ("trade_no", "T1"),
        ];
        let at = |s: &'static str| {
            let mut p = base.to_vec();
            p.push(("trade_status", s));
            p
        };
        assert_eq!(status(&at("TRADE_SUCCESS")), Some(PaymentStatus::Succeeded));
        assert_eq!(
            status(&at("TRADE_FINISHED")),
            Some(PaymentStatus::Succeeded)
        );
        assert_eq!(status(&at("TRADE_CLOSED")), Some(PaymentStatus::Cancelled));
        assert_eq!(status(&at("WAIT_BUYER_PAY")), None);
        assert_eq!(status(&at("SOMETHING_NEW")), None);
        // Closed by a full refund: it had been paid.
        let mut refunded = at("TRADE_CLOSED");
        refunded.extend([
            ("out_biz_no", "re_1"),
            ("refund_fee", "12.50"),
            ("gmt_refund", "2024-01-01 00:00:00"),
        ]);
        assert_eq!(status(&refunded), Some(PaymentStatus::Succeeded));
        // A partial refund leaves the trade TRADE_SUCCESS.
        let mut partial = at("TRADE_SUCCESS");
        partial.push(("out_biz_no", "re_1"));
        assert_eq!(status(&partial), Some(PaymentStatus::Succeeded));
        // Another kind of notice: acknowledged, nothing changes.
        let mut other = at("TRADE_SUCCESS");
        other.retain(|(k, _)| *k != "notify_type");
        other.push(("notify_type", "some_other_sync"));
        assert_eq!(status(&other), None);
        // Without notify_type it is still read as a trade notice.
        let mut untyped = at("TRADE_SUCCESS");
        untyped.retain(|(k, _)| *k != "notify_type");
        assert_eq!(status(&untyped), Some(PaymentStatus::Succeeded));
    }

    #[test]
    fn notices_for_others_or_without_their_fields_are_refused() {
        let good = [
            ("app_id", "app1"),
            ("out_trade_no", "pay_1"),
            ("trade_status", "TRADE_SUCCESS"),
        ];
        assert!(updates(&params(&good), &settings("app1")).is_ok());
        assert!(
            updates(&params(&good), &settings("app2"))
                .unwrap_err()
                .contains("not this merchant's")
        );
        let refused = |drop: &str, empty: bool| {
            let items: Vec<(&str, &str)> = good
                .iter()
                .map(|&(k, v)| (k, if empty && k == drop { "" } else { v }))
                .filter(|(k, _)| empty || *k != drop)
                .collect();
            updates(&params(&items), &settings("app1")).unwrap_err()
        };
        for name in ["app_id", "out_trade_no", "trade_status"] {
            assert!(refused(name, false).contains(name), "{name} missing");
            assert!(refused(name, true).contains(name), "{name} empty");
        }
        let seller = Settings {
            seller_id: Some("2088000000000001".into()),
            ..settings("app1")
        };
        let mut other_seller = good.to_vec();
        other_seller.push(("seller_id", "2088999999999999"));
        assert!(
            updates(&params(&other_seller), &seller)
                .unwrap_err()
                .contains("seller_id")
        );
        let mut same_seller = good.to_vec();
        same_seller.push(("seller_id", "2088000000000001"));
        assert!(updates(&params(&same_seller), &seller).is_ok());
    }

    #[test]
    fn replies_are_what_alipay_expects() {
        let ok = accepted();
        assert_eq!(
            (ok.status, ok.body.as_slice()),
            (200, b"success".as_slice())
        );
        let no = rejected("bad".into());
        assert_eq!(
            (no.reply.status, no.reply.body.as_slice()),
            (400, b"fail".as_slice())
        );
    }
}
