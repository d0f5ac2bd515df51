//! Alipay's asynchronous trade notices (`notify_type=trade_status_sync`): a form-encoded
//! POST to the `notify_url` we sent, signed RSA2 by Alipay over the sorted non-empty
//! parameters without `sign` and `sign_type`, to be answered with the plain text
//! `success` (anything else and Alipay sends it again, up to 8 times over about 25 hours).
//!
//! [`parse_notification`] is the entry point (`lib.rs` calls it with the real host). The
//! steps are pure: [`read`] builds what the signature covers, the host verifies it, then
//! [`updates`] turns the verified parameters into what changed; [`handle`] chains the three
//! with the signature check it is given (the `Env`'s, or the fuzz target's stand-in). A
//! notice about a refund needs one more step, a call to Alipay: the refund query
//! (`flow::query_refund_state`), whose answer [`refund_update`] reads; see [`RefundNotice`].

use std::collections::BTreeMap;

use paygate_plugin_api::keys::KeyError;
use paygate_plugin_api::{
    Money, Notification, NotificationRejected, NotificationResult, PaymentResult, PaymentStatus,
    PaymentUpdate, RefundResult, RefundStatus, RefundUpdate, Reply, Update, form,
};

use crate::auth;
use crate::env::Env;
use crate::flow::{self, Client};
use crate::settings::{Settings, key_names::ALIPAY_PUBLIC_KEY};
use crate::transform::{Effect, reported_amount, status_of_trade};

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

/// What a verified notice reports.
#[derive(Debug, Default)]
pub struct Reported {
    /// What changed (at most the notice's payment).
    pub updates: Vec<Update>,
    /// The refund the notice is about, if it names one: [`parse_notification`] asks the
    /// refund query for its own amount and state ([`refund_update`]).
    pub refund: Option<RefundNotice>,
}

/// A refund a trade notice names (`out_biz_no`, our refund id). Its `refund_fee` is the
/// trade's cumulative refunded total (every refund of the payment so far, this one
/// included), and nothing else in the notice (`gmt_refund` is only a time) tells this
/// refund's own amount: `alipay.trade.fastpay.refund.query` by `out_trade_no` and
/// `out_request_no` = `out_biz_no` does (`refund_amount`), whatever other refunds happened
/// before or since. `refund_fee` then bounds it: a refund is never more than the total.
#[derive(Debug, Clone)]
pub struct RefundNotice {
    pub out_trade_no: String,
    /// `out_biz_no`: our refund id.
    pub refund_id: String,
    /// `refund_fee`, when the notice has one.
    pub refunded_total: Option<Money>,
}

/// `parse-notification`: verifies an Alipay trade notice (RSA2 with `alipay_public_key`),
/// checks it is for this merchant's application, and reports what changed; answers
/// `success`. A notice about a refund (`out_biz_no`) also reports the refund, with its own
/// amount from `alipay.trade.fastpay.refund.query` (the notice's `refund_fee` is the
/// trade's cumulative total: see [`RefundNotice`]).
pub fn parse_notification(
    env: &impl Env,
    notice: &Notification,
) -> Result<NotificationResult, NotificationRejected> {
    let (parsed, reported) = handle(notice, |data, signature| {
        env.verify(ALIPAY_PUBLIC_KEY, data, signature)
    })?;
    let mut updates = reported.updates;
    if let Some(refund) = &reported.refund {
        let settings = flow::settings(&notice.merchant, Effect::Read)
            .map_err(|e| rejected(format!("{e:?}")))?;
        let client = Client::new(env, &settings);
        match flow::query_refund_state(&client, &refund.out_trade_no, &refund.refund_id) {
            Ok(outcome) => updates.extend(refund_update(refund, outcome).map_err(rejected)?),
            Err(e) => env.warn(&format!(
                "alipay notice names refund {}, but its query failed ({e:?}); query-refund settles it",
                refund.refund_id
            )),
        }
    }
    if updates.is_empty() {
        env.info(&format!(
            "alipay notice acknowledged without a change (notify_type {:?}, trade_status {:?})",
            parsed.params.get("notify_type"),
            parsed.params.get("trade_status"),
        ));
    }
    Ok(NotificationResult {
        updates,
        reply: accepted(),
    })
}

/// A notice read, verified and turned into what changed: [`read`], then `verify` (the
/// `Env`'s, with `alipay_public_key`, in [`parse_notification`]; a stand-in when fuzzed
/// natively) over the signing string and the signature, then [`updates`]. Returns the
/// notice too, for the log.
pub fn handle(
    notice: &Notification,
    verify: impl FnOnce(&[u8], &[u8]) -> Result<bool, KeyError>,
) -> Result<(Notice, Reported), NotificationRejected> {
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
    let reported = updates(&parsed.params, &settings).map_err(rejected)?;
    Ok((parsed, reported))
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
    let signature = auth::decode_signature(sign_text)?;
    if let Some(sign_type) = params.get("sign_type").filter(|t| !t.is_empty())
        && sign_type != auth::SIGN_TYPE
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
        signing_string: auth::notify_signing_string(&pairs),
        params,
        signature,
    })
}

/// What a verified notice changes. Refuses a notice for another application (`app_id`)
/// or, when the merchant's `seller_id` is configured, another seller; a trade notice
/// without `out_trade_no` or `trade_status`; one with a malformed `total_amount` or
/// `refund_fee` (see `transform::reported_amount`); and one that reports a change without
/// `total_amount` (Alipay sends it in every trade notice).
///
/// The payment update carries `total_amount` (the order's amount, CNY; not
/// `receipt_amount` or `buyer_pay_amount`, which discounts lower) as its `amount`.
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
/// A notice with `out_biz_no` (a refund's notice: `out_biz_no` is our refund id,
/// `refund_fee` the trade's refunded total) that reports a change also names the refund
/// ([`Reported::refund`]) for [`parse_notification`] to settle with the refund query.
pub fn updates(params: &BTreeMap<String, String>, settings: &Settings) -> Result<Reported, String> {
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
        return Ok(Reported::default());
    }
    let out_trade_no = field("out_trade_no").ok_or("the notice has no out_trade_no")?;
    let trade_status = field("trade_status").ok_or("the notice has no trade_status")?;
    // Amounts are checked whatever the notice reports: a malformed one means the notice
    // cannot be trusted at all.
    let total = reported_amount(field("total_amount"), "total_amount")?;
    let refunded_total = reported_amount(field("refund_fee"), "refund_fee")?;
    let refunded = ["out_biz_no", "refund_fee", "gmt_refund"]
        .iter()
        .any(|name| field(name).is_some());
    let status = match status_of_trade(trade_status) {
        None | Some(PaymentStatus::Pending) => return Ok(Reported::default()),
        Some(PaymentStatus::Cancelled) if refunded => PaymentStatus::Succeeded,
        Some(status) => status,
    };
    let total = total.ok_or("the notice reports a change without total_amount")?;
    let payer = ["buyer_id", "buyer_open_id", "buyer_logon_id"]
        .iter()
        .find_map(|name| field(name))
        .map(str::to_owned);
    let refund = field("out_biz_no").map(|refund_id| RefundNotice {
        out_trade_no: out_trade_no.to_owned(),
        refund_id: refund_id.to_owned(),
        refunded_total,
    });
    Ok(Reported {
        updates: vec![Update::Payment(PaymentUpdate {
            payment_id: out_trade_no.to_owned(),
            outcome: PaymentResult {
                provider_reference: field("trade_no").map(str::to_owned),
                payer,
                amount: Some(total),
                ..PaymentResult::with_status(status)
            },
        })],
        refund,
    })
}

/// The refund update for a notice's refund, from the refund query's answer for it
/// (`query-refund`'s reading: its `refund_amount` is this refund's own amount):
/// - succeeded: the update, with the queried amount; refused if that amount is more than
///   the notice's `refund_fee` (the trade's refunded total includes this refund);
/// - pending: none yet (the gateway's own `query-refund` settles it later).
///
/// (When the query fails or is unusable [`parse_notification`] reports no refund update
/// either, for the same reason, and the notice's payment update still stands: refusing the
/// notice would make Alipay resend it, but would also count a genuine notice as a forged
/// one.)
pub fn refund_update(
    refund: &RefundNotice,
    outcome: RefundResult,
) -> Result<Option<Update>, String> {
    if outcome.status == RefundStatus::Pending {
        return Ok(None);
    }
    if let (Some(amount), Some(total)) = (&outcome.amount, &refund.refunded_total)
        && (amount.currency != total.currency
            || amount.exponent != total.exponent
            || amount.minor > total.minor)
    {
        return Err(format!(
            "refund {} of {} CNY is more than the trade's refunded total refund_fee {} CNY",
            refund.refund_id.escape_debug(),
            amount.to_decimal_string(),
            total.to_decimal_string(),
        ));
    }
    Ok(Some(Update::Refund(RefundUpdate {
        refund_id: refund.refund_id.clone(),
        outcome,
    })))
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
    use crate::testkit::rsa2_verifies;

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
        let with_sign_type = auth::request_signing_string(&v.params);
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
        let reported = updates(&notice.params, &settings("2019073166072302")).unwrap();
        assert!(reported.refund.is_none());
        let updates = reported.updates;
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
        // total_amount, not receipt_amount or buyer_pay_amount (equal here).
        let amount = update.outcome.amount.as_ref().unwrap();
        assert_eq!(
            (amount.minor, amount.currency.as_str(), amount.exponent),
            (10, "CNY", 2)
        );
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
            .updates
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
            ("total_amount", "12.50"),
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
            ("total_amount", "12.50"),
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
        for name in ["app_id", "out_trade_no", "trade_status", "total_amount"] {
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

    /// A trade notice for `pay_1` of app `app1` with `extra` parameters.
    fn notice_with(extra: &[(&'static str, &'static str)]) -> Result<Reported, String> {
        let mut items = vec![
            ("app_id", "app1"),
            ("notify_type", "trade_status_sync"),
            ("out_trade_no", "pay_1"),
            ("trade_no", "T1"),
            ("trade_status", "TRADE_SUCCESS"),
        ];
        items.extend_from_slice(extra);
        updates(&params(&items), &settings("app1"))
    }

    fn reported_minor(reported: &Reported) -> Option<i64> {
        match reported.updates.as_slice() {
            [Update::Payment(u)] => u.outcome.amount.as_ref().map(|m| m.minor),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_payment_update_carries_the_orders_total_amount() {
        let reported = notice_with(&[("total_amount", "100.00")]).unwrap();
        assert_eq!(reported_minor(&reported), Some(10_000));
        // The order's amount, not what the payer paid after a discount.
        let discounted = notice_with(&[
            ("total_amount", "100.00"),
            ("receipt_amount", "90.00"),
            ("buyer_pay_amount", "90.00"),
            ("point_amount", "10.00"),
        ])
        .unwrap();
        assert_eq!(reported_minor(&discounted), Some(10_000));
        // The boundaries of Alipay's range.
        assert_eq!(
            reported_minor(&notice_with(&[("total_amount", "0.01")]).unwrap()),
            Some(1)
        );
        assert_eq!(
            reported_minor(&notice_with(&[("total_amount", "100000000.00")]).unwrap()),
            Some(10_000_000_000)
        );
    }

    #[test]
    fn a_notice_with_a_missing_or_malformed_amount_is_refused() {
        let missing = notice_with(&[]).unwrap_err();
        assert!(missing.contains("total_amount"), "{missing}");
        for bad in [
            "abc",
            "-100.00",
            "-0.01",
            "0.00",
            "0",
            "100.001",
            "1e2",
            "100000000.01",
            "99999999999999999999",
            "92233720368547758.08",
            "１00.00",
            " 100.00",
        ] {
            let error = notice_with(&[("total_amount", bad)]).unwrap_err();
            assert!(error.contains("total_amount"), "{bad}: {error}");
            // Also in a notice that changes nothing: the notice as a whole is not trusted.
            let error = updates(
                &params(&[
                    ("app_id", "app1"),
                    ("out_trade_no", "pay_1"),
                    ("trade_status", "WAIT_BUYER_PAY"),
                    ("total_amount", bad),
                ]),
                &settings("app1"),
            )
            .unwrap_err();
            assert!(error.contains("total_amount"), "{bad}: {error}");
        }
        for bad in ["abc", "-1.00", "0.00", "1.001", "100000000.01"] {
            let error = notice_with(&[
                ("total_amount", "100.00"),
                ("out_biz_no", "re_1"),
                ("refund_fee", bad),
            ])
            .unwrap_err();
            assert!(error.contains("refund_fee"), "{bad}: {error}");
        }
        // A notice that changes nothing needs no amount.
        assert!(
            updates(
                &params(&[
                    ("app_id", "app1"),
                    ("out_trade_no", "pay_1"),
                    ("trade_status", "WAIT_BUYER_PAY"),
                ]),
                &settings("app1"),
            )
            .unwrap()
            .updates
            .is_empty()
        );
    }

    fn cny(minor: i64) -> Money {
        Money {
            minor,
            currency: "CNY".into(),
            exponent: 2,
        }
    }

    fn queried(status: RefundStatus, amount: Option<i64>) -> RefundResult {
        RefundResult {
            amount: amount.map(cny),
            ..RefundResult::with_status(status)
        }
    }

    #[test]
    fn a_refund_notice_names_its_refund_with_the_cumulative_total() {
        // A second partial refund of a 100.00 trade: 30.00 before, 20.00 now.
        let reported = notice_with(&[
            ("total_amount", "100.00"),
            ("out_biz_no", "re_2"),
            ("refund_fee", "50.00"),
            ("gmt_refund", "2024-01-01 12:00:00.000"),
        ])
        .unwrap();
        assert_eq!(reported_minor(&reported), Some(10_000));
        let refund = reported.refund.clone().unwrap();
        assert_eq!(
            (refund.out_trade_no.as_str(), refund.refund_id.as_str()),
            ("pay_1", "re_2")
        );
        assert_eq!(refund.refunded_total.as_ref().map(|m| m.minor), Some(5_000));
        // The refund query says this refund's own amount: 20.00, not the 50.00 total.
        let update = refund_update(&refund, queried(RefundStatus::Succeeded, Some(2_000)))
            .unwrap()
            .unwrap();
        let Update::Refund(update) = update else {
            panic!("a refund update");
        };
        assert_eq!(update.refund_id, "re_2");
        assert_eq!(update.outcome.status, RefundStatus::Succeeded);
        assert_eq!(update.outcome.amount.map(|m| m.minor), Some(2_000));
        // Equal to the total (the first refund, or a full one): fine.
        assert!(
            refund_update(&refund, queried(RefundStatus::Succeeded, Some(5_000)))
                .unwrap()
                .is_some()
        );
        // More than the trade's refunded total: the two signed messages disagree.
        let error =
            refund_update(&refund, queried(RefundStatus::Succeeded, Some(5_001))).unwrap_err();
        assert!(error.contains("refund_fee"), "{error}");
        // Not done yet: nothing to report (query-refund settles it).
        assert!(
            refund_update(&refund, queried(RefundStatus::Pending, Some(2_000)))
                .unwrap()
                .is_none()
        );
        // The query said no amount: the refund is reported without one.
        let unknown = refund_update(&refund, queried(RefundStatus::Succeeded, None))
            .unwrap()
            .unwrap();
        assert!(matches!(unknown, Update::Refund(u) if u.outcome.amount.is_none()));
        // A refund notice without our refund number names no refund.
        let anonymous =
            notice_with(&[("total_amount", "100.00"), ("refund_fee", "50.00")]).unwrap();
        assert!(anonymous.refund.is_none());
        // A payment notice names none either.
        assert!(
            notice_with(&[("total_amount", "100.00")])
                .unwrap()
                .refund
                .is_none()
        );
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

/// [`parse_notification`] as the plugin runs it, against a fake Alipay: notices signed (or
/// not) with the sandbox platform key, and the refund query a refund's notice needs.
#[cfg(test)]
mod parse_notification_tests {
    use super::*;
    use crate::testkit::*;
    use crate::transform::METHOD_REFUND_QUERY;
    use serde_json::json;

    fn rejection(env: &FakeEnv, notice: &Notification) -> String {
        match parse_notification(env, notice) {
            Err(rejected) => {
                assert_eq!(rejected.reply.status, 400);
                assert_eq!(rejected.reply.body, b"fail");
                rejected.reason
            }
            Ok(result) => panic!("accepted: {:?}", result.updates),
        }
    }

    fn with(
        params: &[(&'static str, &'static str)],
        extra: &[(&'static str, &'static str)],
    ) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<_> = params
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        out.extend_from_slice(extra);
        out
    }

    fn payment_update(update: &Update) -> &PaymentUpdate {
        match update {
            Update::Payment(update) => update,
            other => panic!("a payment update expected, got {other:?}"),
        }
    }

    #[test]
    fn a_signed_trade_notice_is_accepted_and_reports_the_payment() {
        let env = FakeEnv::new(vec![]);
        let result = parse_notification(&env, &env.notice(&paid_notice(), Signing::Good)).unwrap();
        assert_eq!(result.reply.status, 200);
        assert_eq!(result.reply.body, b"success");
        let [update] = &result.updates[..] else {
            panic!("one update expected: {:?}", result.updates);
        };
        let update = payment_update(update);
        assert_eq!(update.payment_id, PAYMENT_ID);
        assert_eq!(update.outcome.status, PaymentStatus::Succeeded);
        assert_eq!(update.outcome.provider_reference.as_deref(), Some(TRADE_NO));
        assert_eq!(update.outcome.payer.as_deref(), Some(BUYER_ID));
        let amount = update.outcome.amount.as_ref().unwrap();
        assert_eq!((amount.minor, amount.currency.as_str()), (1250, "CNY"));
        // Nothing to ask Alipay, nothing to log.
        assert!(env.sent.borrow().is_empty());
        assert!(env.infos.borrow().is_empty());
        // A closed, unpaid trade: cancelled.
        let closed = with(&paid_notice(), &[("trade_status", "TRADE_CLOSED")]);
        let result = parse_notification(&env, &env.notice(&closed, Signing::Good)).unwrap();
        assert_eq!(
            payment_update(&result.updates[0]).outcome.status,
            PaymentStatus::Cancelled
        );
    }

    #[test]
    fn a_notice_that_changes_nothing_is_acknowledged_and_logged() {
        let env = FakeEnv::new(vec![]);
        let waiting = with(&paid_notice(), &[("trade_status", "WAIT_BUYER_PAY")]);
        let result = parse_notification(&env, &env.notice(&waiting, Signing::Good)).unwrap();
        assert!(result.updates.is_empty());
        assert_eq!(result.reply.body, b"success");
        let infos = env.infos.borrow();
        assert_eq!(infos.len(), 1);
        assert!(infos[0].contains("WAIT_BUYER_PAY"), "{}", infos[0]);
    }

    #[test]
    fn forged_tampered_or_foreign_notices_are_rejected() {
        let env = FakeEnv::new(vec![]);
        for signing in [Signing::Forged, Signing::WrongKey] {
            let reason = rejection(&env, &env.notice(&paid_notice(), signing));
            assert!(reason.contains("does not verify"), "{signing:?}: {reason}");
        }
        let reason = rejection(&env, &env.notice(&paid_notice(), Signing::Unsigned));
        assert!(reason.contains("no sign"), "{reason}");
        // Signed, then changed on the way: 0.01 cannot become 1250.00.
        let mut tampered = env.notice(&paid_notice(), Signing::Good);
        let body = String::from_utf8(tampered.body).unwrap();
        assert!(body.contains("total_amount=12.50"));
        tampered.body = body
            .replace("total_amount=12.50", "total_amount=1250.00")
            .into_bytes();
        assert!(rejection(&env, &tampered).contains("does not verify"));
        // Genuine, but for another application or seller.
        let other_app = with(&paid_notice(), &[("app_id", "2021000000009999")]);
        let reason = rejection(&env, &env.notice(&other_app, Signing::Good));
        assert!(reason.contains("app_id"), "{reason}");
        let other_seller = with(&paid_notice(), &[("seller_id", "2088999999999999")]);
        let reason = rejection(&env, &env.notice(&other_seller, Signing::Good));
        assert!(reason.contains("seller_id"), "{reason}");
        // Genuine, but without the fields a change needs.
        let no_amount: Vec<_> = paid_notice()
            .into_iter()
            .filter(|(k, _)| *k != "total_amount")
            .collect();
        let reason = rejection(&env, &env.notice(&no_amount, Signing::Good));
        assert!(reason.contains("total_amount"), "{reason}");
        // Not a form at all.
        let mut garbage = env.notice(&paid_notice(), Signing::Good);
        garbage.body = b"{\"trade_status\":\"TRADE_SUCCESS\"}".to_vec();
        assert!(rejection(&env, &garbage).contains("no sign"));
        assert!(env.sent.borrow().is_empty());
    }

    fn refund_notice() -> Vec<(&'static str, &'static str)> {
        with(
            &paid_notice(),
            &[
                ("out_biz_no", REFUND_ID),
                ("refund_fee", "5.00"),
                ("gmt_refund", "2024-03-15 10:00:00.000"),
            ],
        )
    }

    fn refund_queried(amount: &str) -> Scripted {
        answer(
            METHOD_REFUND_QUERY,
            json!({"code": "10000", "out_trade_no": PAYMENT_ID, "out_request_no": REFUND_ID,
                   "total_amount": "12.50", "refund_amount": amount,
                   "refund_status": "REFUND_SUCCESS"}),
        )
    }

    #[test]
    fn a_refund_notice_reports_the_refund_with_its_own_amount_from_the_query() {
        let env = FakeEnv::new(vec![refund_queried("5.00")]);
        let result =
            parse_notification(&env, &env.notice(&refund_notice(), Signing::Good)).unwrap();
        let [payment, Update::Refund(refund)] = &result.updates[..] else {
            panic!(
                "a payment and a refund update expected: {:?}",
                result.updates
            );
        };
        assert_eq!(
            payment_update(payment).outcome.status,
            PaymentStatus::Succeeded
        );
        assert_eq!(refund.refund_id, REFUND_ID);
        assert_eq!(refund.outcome.status, RefundStatus::Succeeded);
        assert_eq!(refund.outcome.amount.as_ref().map(|m| m.minor), Some(500));
        assert_eq!(
            env.sent_biz(0),
            json!({"out_trade_no": PAYMENT_ID, "out_request_no": REFUND_ID})
        );
        assert_eq!(env.sent_methods(), [METHOD_REFUND_QUERY]);
    }

    #[test]
    fn a_refund_notice_whose_query_fails_still_reports_the_payment() {
        let env = FakeEnv::new(vec![Scripted::Fail(http_timeout())]);
        let result =
            parse_notification(&env, &env.notice(&refund_notice(), Signing::Good)).unwrap();
        assert_eq!(result.updates.len(), 1);
        payment_update(&result.updates[0]);
        let warnings = env.warnings.borrow();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains(REFUND_ID), "{}", warnings[0]);
    }

    #[test]
    fn a_refund_larger_than_the_notices_refunded_total_is_rejected() {
        let env = FakeEnv::new(vec![refund_queried("6.00")]);
        let reason = rejection(&env, &env.notice(&refund_notice(), Signing::Good));
        assert!(reason.contains("refund_fee"), "{reason}");
    }

    fn http_timeout() -> paygate_plugin_api::http::Error {
        paygate_plugin_api::http::Error::Timeout
    }
}
