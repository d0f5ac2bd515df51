//! WeChat Pay v3 notifications (`POST /v1/notify/wechatpay/{merchant}`): authenticate the
//! `Wechatpay-*` headers and signature, decrypt the `resource` with the APIv3 key, check it
//! is for this merchant, and say what changed. Every step is a function of its inputs, the
//! clock included, so the published vector (years old) and hostile notices are tested
//! natively.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use paygate_plugin_api::{
    Notification, NotificationRejected, NotificationResult, PaymentStatus, PaymentUpdate,
    RefundStatus, RefundUpdate, Reply, Update,
};
use serde::Deserialize;

use crate::auth::SignedHeaders;
use crate::env::Env;
use crate::payee::{Owner, Payee};
use crate::settings::{Settings, key_names};
use crate::transform::{
    self, Call, ExpectedOrder, ExpectedRefund, RawRefund, RawTransaction, Trade,
};

/// Notifications are small JSON documents; anything larger is refused unread.
pub const NOTIFY_BODY_BYTES_MAX: usize = 64 * 1024;
/// The only `resource.algorithm` WeChat Pay v3 uses (the key's length picks AES-128 or
/// AES-256: the published test keys are 16 bytes, production keys 32).
pub const RESOURCE_ALGORITHM: &str = "AEAD_AES_256_GCM";
const EVENT_TYPE_CHARS_MAX: usize = 64;
const NONCE_BYTES_MAX: usize = 64;
const ASSOCIATED_DATA_BYTES_MAX: usize = 1024;
/// The GCM tag at the end of the ciphertext.
const TAG_BYTES: usize = 16;

/// Why a notice was refused, with the HTTP status WeChat Pay should get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    /// What the reply body says (short, no details for a forger).
    pub public: &'static str,
    /// What the log and the anomaly monitor get.
    pub reason: String,
}

impl Rejection {
    fn unauthenticated(reason: impl Into<String>) -> Rejection {
        Rejection {
            status: 401,
            public: "signature verification failed",
            reason: reason.into(),
        }
    }

    fn bad(reason: impl Into<String>) -> Rejection {
        Rejection {
            status: 400,
            public: "invalid notification",
            reason: reason.into(),
        }
    }

    fn ours(reason: impl Into<String>) -> Rejection {
        Rejection {
            status: 500,
            public: "cannot process the notification now",
            reason: reason.into(),
        }
    }

    pub fn into_rejected(self) -> NotificationRejected {
        let body = serde_json::json!({"code": "FAIL", "message": self.public}).to_string();
        NotificationRejected {
            reason: format!("wechatpay notification: {}", self.reason),
            reply: Reply {
                status: self.status,
                content_type: "application/json".into(),
                body: body.into_bytes(),
            },
        }
    }
}

/// What WeChat Pay expects when a notice was received: HTTP 200 (or 204); the
/// `{"code": "SUCCESS"}` body satisfies both the current and the older documentation.
pub fn success_reply() -> Reply {
    Reply {
        status: 200,
        content_type: "application/json".into(),
        body: br#"{"code":"SUCCESS","message":"OK"}"#.to_vec(),
    }
}

/// Handles one notice end to end.
pub fn parse_notification(
    env: &impl Env,
    notice: &Notification,
) -> Result<NotificationResult, NotificationRejected> {
    // The host logs the reason of a rejection (and feeds the anomaly monitor).
    handle(env, notice).map_err(Rejection::into_rejected)
}

fn handle(env: &impl Env, notice: &Notification) -> Result<NotificationResult, Rejection> {
    let settings = Settings::parse(&notice.merchant.settings_json)
        .map_err(|e| Rejection::ours(format!("{e:?}")))?;
    if notice.body.len() > NOTIFY_BODY_BYTES_MAX {
        return Err(Rejection::bad(format!(
            "body of {} bytes exceeds {NOTIFY_BODY_BYTES_MAX}",
            notice.body.len()
        )));
    }
    authenticate(
        env,
        &settings,
        &notice.headers,
        &notice.body,
        env.now_millis(),
    )?;
    let envelope = Envelope::decode(&notice.body)?;
    let plaintext = env
        .decrypt(
            key_names::APIV3_KEY,
            &envelope.nonce,
            &envelope.associated_data,
            &envelope.ciphertext,
        )
        .map_err(|e| Rejection::bad(format!("resource does not decrypt: {e:?}")))?;
    let updates = updates(&settings, &envelope.event_type, &plaintext)?;
    Ok(NotificationResult {
        updates,
        reply: success_reply(),
    })
}

/// Checks the headers (serial, freshness against `now_millis`) and the signature over
/// `TIMESTAMP\nNONCE\nBODY\n` with the merchant's `wechatpay_public_key`.
pub fn authenticate(
    env: &impl Env,
    settings: &Settings,
    headers: &[(String, String)],
    body: &[u8],
    now_millis: u64,
) -> Result<(), Rejection> {
    let signed =
        SignedHeaders::from_headers(headers, &settings.wechatpay_public_key_id, now_millis)
            .map_err(|e| Rejection::unauthenticated(e.to_string()))?;
    match env.verify(
        key_names::WECHATPAY_PUBLIC_KEY,
        &signed.message(body),
        &signed.signature,
    ) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Rejection::unauthenticated(
            crate::auth::SignatureError::Invalid.to_string(),
        )),
        Err(e) => Err(Rejection::ours(format!(
            "cannot verify with key {}: {e:?}",
            key_names::WECHATPAY_PUBLIC_KEY
        ))),
    }
}

#[derive(Deserialize)]
struct RawEnvelope {
    event_type: Option<String>,
    resource: Option<RawResource>,
}

#[derive(Deserialize)]
struct RawResource {
    algorithm: Option<String>,
    ciphertext: Option<String>,
    associated_data: Option<String>,
    nonce: Option<String>,
}

/// The parts of a notice needed to decrypt its resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub event_type: String,
    pub nonce: Vec<u8>,
    pub associated_data: Vec<u8>,
    /// Ciphertext with the 16-byte tag at its end.
    pub ciphertext: Vec<u8>,
}

impl Envelope {
    pub fn decode(body: &[u8]) -> Result<Envelope, Rejection> {
        let raw: RawEnvelope = serde_json::from_slice(body)
            .map_err(|e| Rejection::bad(format!("body is not a notification: {e}")))?;
        let event_type = raw
            .event_type
            .filter(|e| !e.is_empty() && e.len() <= EVENT_TYPE_CHARS_MAX)
            .ok_or_else(|| Rejection::bad("event_type is missing or too long"))?;
        let resource = raw
            .resource
            .ok_or_else(|| Rejection::bad("resource is missing"))?;
        match resource.algorithm.as_deref() {
            Some(RESOURCE_ALGORITHM) => {}
            other => {
                return Err(Rejection::bad(format!(
                    "resource.algorithm {:?} is not {RESOURCE_ALGORITHM}",
                    other.map(|a| a.chars().take(40).collect::<String>())
                )));
            }
        }
        let nonce = resource
            .nonce
            .filter(|n| !n.is_empty() && n.len() <= NONCE_BYTES_MAX)
            .ok_or_else(|| Rejection::bad("resource.nonce is missing or too long"))?;
        let associated_data = resource.associated_data.unwrap_or_default();
        if associated_data.len() > ASSOCIATED_DATA_BYTES_MAX {
            return Err(Rejection::bad("resource.associated_data is too long"));
        }
        let ciphertext = BASE64
            .decode(resource.ciphertext.unwrap_or_default())
            .map_err(|_| Rejection::bad("resource.ciphertext is not base64"))?;
        if ciphertext.len() <= TAG_BYTES {
            return Err(Rejection::bad(
                "resource.ciphertext is too short to hold a tag",
            ));
        }
        Ok(Envelope {
            event_type,
            nonce: nonce.into_bytes(),
            associated_data: associated_data.into_bytes(),
            ciphertext,
        })
    }
}

/// What a decrypted resource changes.
/// - `TRANSACTION.*` (`TRANSACTION.SUCCESS`): the payment `out_trade_no` moves to its
///   `trade_state` (a still-pending state changes nothing), with `transaction_id`,
///   `payer.openid` and the order's amount, `amount.total` (not `payer_total`, which
///   coupons lower) in `amount.currency` (CNY only).
/// - `REFUND.*` (`REFUND.SUCCESS` / `REFUND.ABNORMAL` / `REFUND.CLOSED`): the refund
///   `out_refund_no` moves to its `refund_status` (which is authoritative over the event
///   name), with this refund's amount, `amount.refund` (the resource has no currency:
///   CNY).
///
/// A resource that reports a change without its amount, or with a malformed one (not a
/// positive integer of fen, another currency), is refused.
/// - anything else is acknowledged with no update.
///
/// The resource must be the merchant's order (`Payee::check`): its `mchid`, or for a
/// sub-merchant its `sp_mchid` and `sub_mchid`, are required for the two kinds we act on,
/// and checked on any other when present.
pub fn updates(
    settings: &Settings,
    event_type: &str,
    plaintext: &[u8],
) -> Result<Vec<Update>, Rejection> {
    let payee = Payee::of(settings).map_err(|e| Rejection::bad(format!("{e:?}")))?;
    let owner: Owner = serde_json::from_slice(plaintext)
        .map_err(|e| Rejection::bad(format!("resource is not a JSON object: {e}")))?;
    let acted_on = event_type.starts_with("TRANSACTION.") || event_type.starts_with("REFUND.");
    payee
        .check(&owner, acted_on)
        .map_err(|not_ours| Rejection::bad(format!("resource {not_ours}")))?;
    let wrong = |e: String| Rejection::bad(format!("{event_type} resource: {e}"));
    if event_type.starts_with("TRANSACTION.") {
        let raw: RawTransaction =
            serde_json::from_slice(plaintext).map_err(|e| wrong(e.to_string()))?;
        let out_trade_no = raw
            .out_trade_no
            .clone()
            .ok_or_else(|| Rejection::bad("resource has no out_trade_no"))?;
        transform::check_out_trade_no(&out_trade_no).map_err(|e| wrong(format!("{e:?}")))?;
        let expected = ExpectedOrder {
            payee,
            out_trade_no: &out_trade_no,
            total: None,
        };
        let trade = Trade::check(Call::QueryPayment, raw, &expected)
            .map_err(|e| wrong(format!("{e:?}")))?;
        let outcome = trade.result();
        if outcome.status == PaymentStatus::Pending {
            return Ok(Vec::new());
        }
        if outcome.amount.is_none() {
            return Err(wrong("no amount.total".into()));
        }
        return Ok(vec![Update::Payment(PaymentUpdate {
            payment_id: out_trade_no,
            outcome,
        })]);
    }
    if event_type.starts_with("REFUND.") {
        let raw: RawRefund = serde_json::from_slice(plaintext).map_err(|e| wrong(e.to_string()))?;
        let out_refund_no = raw
            .out_refund_no
            .clone()
            .ok_or_else(|| Rejection::bad("resource has no out_refund_no"))?;
        transform::check_out_refund_no(&out_refund_no).map_err(|e| wrong(format!("{e:?}")))?;
        let out_trade_no = raw.out_trade_no.clone().unwrap_or_default();
        let expected = ExpectedRefund {
            payee,
            out_refund_no: &out_refund_no,
            out_trade_no: &out_trade_no,
            amounts: None,
        };
        let (refund_id, outcome) = transform::check_refund(Call::QueryRefund, raw, &expected)
            .map_err(|e| wrong(format!("{e:?}")))?;
        if outcome.status == RefundStatus::Pending {
            return Ok(Vec::new());
        }
        if outcome.amount.is_none() {
            return Err(wrong("no amount.refund".into()));
        }
        return Ok(vec![Update::Refund(RefundUpdate { refund_id, outcome })]);
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use serde_json::{Value, json};

    const NONCE: &str = "fdasflkja484";

    fn transaction_resource(state: &str) -> Value {
        json!({
            "mchid": MCHID,
            "appid": APPID,
            "out_trade_no": PAYMENT_ID,
            "transaction_id": "4200000000202403140000000001",
            "trade_type": "NATIVE",
            "trade_state": state,
            "trade_state_desc": "支付成功",
            "bank_type": "CMC",
            "attach": "",
            "success_time": "2024-03-14T23:51:02+08:00",
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            "amount": {"total": 1250, "payer_total": 1250, "currency": "CNY", "payer_currency": "CNY"},
        })
    }

    fn refund_resource(status: &str) -> Value {
        json!({
            "mchid": MCHID,
            "out_trade_no": PAYMENT_ID,
            "transaction_id": "4200000000202403140000000001",
            "out_refund_no": REFUND_ID,
            "refund_id": "50000000382019052709732678859",
            "refund_status": status,
            "success_time": "2024-03-14T23:59:02+08:00",
            "user_received_account": "招商银行信用卡0403",
            "amount": {"total": 1250, "refund": 500, "payer_total": 1250, "payer_refund": 500},
        })
    }

    /// A notification body with `plaintext` encrypted under the env's APIv3 key.
    fn body_with(env: &FakeEnv, event_type: &str, plaintext: &[u8]) -> String {
        let ciphertext = gcm_encrypt(&env.apiv3_key, NONCE.as_bytes(), b"transaction", plaintext);
        json!({
            "id": "EV-2018022511223320873",
            "create_time": "2024-03-14T23:51:03+08:00",
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64::engine::general_purpose::STANDARD.encode(ciphertext),
                "associated_data": "transaction",
                "nonce": NONCE,
            },
        })
        .to_string()
    }

    fn signed(env: &FakeEnv, body: &str, signing: Signing) -> Notification {
        Notification {
            provider: "wechatpay".into(),
            merchant: merchant(),
            headers: env.wechatpay_headers(body.as_bytes(), signing),
            body: body.as_bytes().to_vec(),
        }
    }

    fn notice(env: &FakeEnv, event_type: &str, resource: &Value) -> Notification {
        let body = body_with(env, event_type, resource.to_string().as_bytes());
        signed(env, &body, Signing::Good)
    }

    fn rejected(env: &FakeEnv, notice: &Notification) -> (u16, String) {
        match parse_notification(env, notice) {
            Err(r) => {
                let reply: Value = serde_json::from_slice(&r.reply.body).unwrap();
                assert_eq!(reply["code"], "FAIL");
                assert!(reply["message"].is_string());
                assert_eq!(r.reply.content_type, "application/json");
                (r.reply.status, r.reason)
            }
            Ok(result) => panic!("accepted: {:?}", result.updates.len()),
        }
    }

    #[test]
    fn a_transaction_success_notice_updates_the_payment() {
        for key in [
            &b"0123456789abcdef0123456789abcdef"[..],
            b"testMchAPIv3Key0",
        ] {
            let mut env = FakeEnv::new(vec![]);
            env.apiv3_key = key.to_vec();
            let result = parse_notification(
                &env,
                &notice(
                    &env,
                    "TRANSACTION.SUCCESS",
                    &transaction_resource("SUCCESS"),
                ),
            )
            .unwrap();
            assert_eq!(result.reply.status, 200);
            assert_eq!(result.reply.body, br#"{"code":"SUCCESS","message":"OK"}"#);
            let [Update::Payment(update)] = &result.updates[..] else {
                panic!("one payment update expected");
            };
            assert_eq!(update.payment_id, PAYMENT_ID);
            assert_eq!(update.outcome.status, PaymentStatus::Succeeded);
            assert_eq!(
                update.outcome.provider_reference.as_deref(),
                Some("4200000000202403140000000001")
            );
            assert_eq!(
                update.outcome.payer.as_deref(),
                Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
            );
            let amount = update.outcome.amount.as_ref().unwrap();
            assert_eq!(
                (amount.minor, amount.currency.as_str(), amount.exponent),
                (1250, "CNY", 2)
            );
        }
    }

    /// The one update of a notice of `event` with `resource`, or the rejection's reason.
    fn outcome_of(env: &FakeEnv, event: &str, resource: &Value) -> Result<Update, String> {
        outcome_of_text(env, event, &resource.to_string())
    }

    /// [`outcome_of`] with the resource's plaintext as written (numbers JSON cannot hold).
    fn outcome_of_text(env: &FakeEnv, event: &str, plaintext: &str) -> Result<Update, String> {
        let body = body_with(env, event, plaintext.as_bytes());
        match parse_notification(env, &signed(env, &body, Signing::Good)) {
            Ok(result) => match <[Update; 1]>::try_from(result.updates) {
                Ok([update]) => Ok(update),
                Err(updates) => panic!("{} updates", updates.len()),
            },
            Err(rejected) => {
                assert_eq!(rejected.reply.status, 400, "{}", rejected.reason);
                Err(rejected.reason)
            }
        }
    }

    #[test]
    fn a_transaction_notice_reports_the_orders_amount_not_what_the_payer_paid() {
        let env = FakeEnv::new(vec![]);
        let mut resource = transaction_resource("SUCCESS");
        // 100.00 ordered, 90.00 paid after a 10.00 coupon.
        resource["amount"] = json!({"total": 10000, "payer_total": 9000, "currency": "CNY", "payer_currency": "CNY"});
        resource["promotion_detail"] = json!([{"coupon_id": "1", "amount": 1000}]);
        let Ok(Update::Payment(update)) = outcome_of(&env, "TRANSACTION.SUCCESS", &resource) else {
            panic!("a payment update");
        };
        assert_eq!(update.outcome.amount.map(|m| m.minor), Some(10_000));
        // The boundary: one fen.
        resource["amount"] = json!({"total": 1, "payer_total": 1, "currency": "CNY"});
        let Ok(Update::Payment(update)) = outcome_of(&env, "TRANSACTION.SUCCESS", &resource) else {
            panic!("a payment update");
        };
        assert_eq!(update.outcome.amount.map(|m| m.minor), Some(1));
        // Without a currency: CNY, the only one WeChat Pay (domestic) settles.
        resource["amount"] = json!({"total": 1250});
        let Ok(Update::Payment(update)) = outcome_of(&env, "TRANSACTION.SUCCESS", &resource) else {
            panic!("a payment update");
        };
        assert_eq!(
            update.outcome.amount.map(|m| m.currency),
            Some("CNY".to_owned())
        );
    }

    #[test]
    fn a_transaction_notice_with_a_missing_or_malformed_amount_is_refused() {
        let env = FakeEnv::new(vec![]);
        for amount in [
            None,
            Some(json!({})),
            Some(json!({"payer_total": 1250, "currency": "CNY"})),
            Some(json!({"total": "abc", "currency": "CNY"})),
            Some(json!({"total": "12.50", "currency": "CNY"})),
            Some(json!({"total": 12.5, "currency": "CNY"})),
            Some(json!({"total": -1250, "currency": "CNY"})),
            Some(json!({"total": 0, "currency": "CNY"})),
            Some(json!({"total": null, "currency": "CNY"})),
            Some(json!({"total": 1250, "currency": "USD"})),
            Some(json!("1250")),
        ] {
            let mut resource = transaction_resource("SUCCESS");
            match &amount {
                None => {
                    resource.as_object_mut().unwrap().remove("amount");
                }
                Some(a) => resource["amount"] = a.clone(),
            }
            assert!(
                outcome_of(&env, "TRANSACTION.SUCCESS", &resource).is_err(),
                "{amount:?}"
            );
        }
        // Numbers no amount can be: refused, not wrapped or rounded.
        let text = transaction_resource("SUCCESS").to_string();
        assert!(text.contains(r#""total":1250"#));
        for total in [
            "1e400",
            "99999999999999999999",
            "-9223372036854775809",
            "1250.0",
            "0x4e2",
        ] {
            let plaintext = text.replace(r#""total":1250"#, &format!(r#""total":{total}"#));
            assert!(
                outcome_of_text(&env, "TRANSACTION.SUCCESS", &plaintext).is_err(),
                "{total}"
            );
        }
        // The largest integer is well-formed: reported as it is (the gateway compares it).
        let mut resource = transaction_resource("SUCCESS");
        resource["amount"] = json!({"total": i64::MAX, "currency": "CNY"});
        let Ok(Update::Payment(update)) = outcome_of(&env, "TRANSACTION.SUCCESS", &resource) else {
            panic!("a payment update");
        };
        assert_eq!(update.outcome.amount.map(|m| m.minor), Some(i64::MAX));
    }

    #[test]
    fn a_refund_notice_reports_this_refunds_amount_and_refuses_a_malformed_one() {
        let env = FakeEnv::new(vec![]);
        let Ok(Update::Refund(update)) =
            outcome_of(&env, "REFUND.SUCCESS", &refund_resource("SUCCESS"))
        else {
            panic!("a refund update");
        };
        // amount.refund (500), not the payment's total (1250).
        let amount = update.outcome.amount.unwrap();
        assert_eq!(
            (amount.minor, amount.currency.as_str(), amount.exponent),
            (500, "CNY", 2)
        );
        for amount in [
            None,
            Some(json!({"total": 1250, "payer_refund": 500})),
            Some(json!({"total": 1250, "refund": "5.00"})),
            Some(json!({"total": 1250, "refund": -500})),
            Some(json!({"total": 1250, "refund": 0})),
            Some(json!({"total": 1250, "refund": 5.5})),
            Some(json!({"total": 1250, "refund": 500, "currency": "HKD"})),
        ] {
            let mut resource = refund_resource("SUCCESS");
            match &amount {
                None => {
                    resource.as_object_mut().unwrap().remove("amount");
                }
                Some(a) => resource["amount"] = a.clone(),
            }
            assert!(
                outcome_of(&env, "REFUND.SUCCESS", &resource).is_err(),
                "{amount:?}"
            );
        }
    }

    #[test]
    fn an_empty_appid_is_as_good_as_none() {
        let env = FakeEnv::new(vec![]);
        let mut resource = transaction_resource("SUCCESS");
        resource["appid"] = "".into();
        let result =
            parse_notification(&env, &notice(&env, "TRANSACTION.SUCCESS", &resource)).unwrap();
        assert_eq!(result.updates.len(), 1);
    }

    #[test]
    fn refund_notices_update_the_refund_by_its_status() {
        let env = FakeEnv::new(vec![]);
        for (event, status, expected) in [
            ("REFUND.SUCCESS", "SUCCESS", Some(RefundStatus::Succeeded)),
            ("REFUND.ABNORMAL", "ABNORMAL", Some(RefundStatus::Failed)),
            ("REFUND.CLOSED", "CLOSED", Some(RefundStatus::Failed)),
            ("REFUND.PROCESSING", "PROCESSING", None),
        ] {
            let result =
                parse_notification(&env, &notice(&env, event, &refund_resource(status))).unwrap();
            assert_eq!(result.reply.status, 200);
            match (expected, &result.updates[..]) {
                (None, []) => {}
                (Some(expected), [Update::Refund(update)]) => {
                    assert_eq!(update.refund_id, REFUND_ID);
                    assert_eq!(update.outcome.status, expected);
                    assert_eq!(
                        update.outcome.provider_reference.as_deref(),
                        Some("50000000382019052709732678859")
                    );
                }
                (expected, updates) => panic!("{event}: {expected:?} vs {}", updates.len()),
            }
        }
    }

    #[test]
    fn pending_states_and_other_events_are_acknowledged_without_updates() {
        let env = FakeEnv::new(vec![]);
        for (event, resource) in [
            ("TRANSACTION.SUCCESS", transaction_resource("NOTPAY")),
            (
                "PAYSCORE.USER_OPEN_SERVICE",
                json!({"mchid": MCHID, "x": 1}),
            ),
            ("SOMETHING.NEW", json!({"no_mchid": true})),
        ] {
            let result = parse_notification(&env, &notice(&env, event, &resource)).unwrap();
            assert!(result.updates.is_empty(), "{event}");
            assert_eq!(result.reply.status, 200);
        }
    }

    #[test]
    fn notices_that_do_not_authenticate_are_401() {
        let env = FakeEnv::new(vec![]);
        let body = body_with(
            &env,
            "TRANSACTION.SUCCESS",
            transaction_resource("SUCCESS").to_string().as_bytes(),
        );
        for signing in [
            Signing::Forged,
            Signing::WrongSerial,
            Signing::Stale,
            Signing::Unsigned,
        ] {
            let (status, reason) = rejected(&env, &signed(&env, &body, signing));
            assert_eq!(status, 401, "{signing:?}: {reason}");
        }
        // A body changed after signing.
        let mut tampered = signed(&env, &body, Signing::Good);
        tampered.body = body
            .replace("TRANSACTION.SUCCESS", "TRANSACTION.SUCCESS ")
            .into_bytes();
        assert_eq!(rejected(&env, &tampered).0, 401);
        // Headers dropped one by one.
        for name in [
            "Wechatpay-Timestamp",
            "Wechatpay-Nonce",
            "Wechatpay-Signature",
            "Wechatpay-Serial",
        ] {
            let mut notice = signed(&env, &body, Signing::Good);
            notice.headers.retain(|(k, _)| k != name);
            let (status, reason) = rejected(&env, &notice);
            assert_eq!(status, 401);
            assert!(reason.contains(name), "{reason}");
        }
        // The clock moved on: the same notice replayed later is stale.
        env.now_millis.set(NOW_MILLIS + 301_000);
        let (status, reason) = rejected(&env, &signed_at(&body, NOW_MILLIS));
        assert_eq!(status, 401);
        assert!(reason.contains("away from our clock"), "{reason}");
    }

    fn signed_at(body: &str, now_millis: u64) -> Notification {
        let env = FakeEnv::new(vec![]);
        env.now_millis.set(now_millis);
        signed(&env, body, Signing::Good)
    }

    #[test]
    fn authenticated_but_malformed_notices_are_400() {
        let env = FakeEnv::new(vec![]);
        let good = body_with(
            &env,
            "TRANSACTION.SUCCESS",
            transaction_resource("SUCCESS").to_string().as_bytes(),
        );
        let mut envelope: Value = serde_json::from_str(&good).unwrap();
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut v = envelope.clone();
            f(&mut v);
            v.to_string()
        };
        let cases: Vec<(&str, String)> = vec![
            ("not JSON", "this is not json".into()),
            ("empty", String::new()),
            (
                "no resource",
                edit(&|v| {
                    v.as_object_mut().unwrap().remove("resource");
                }),
            ),
            (
                "no event_type",
                edit(&|v| {
                    v.as_object_mut().unwrap().remove("event_type");
                }),
            ),
            (
                "other algorithm",
                edit(&|v| v["resource"]["algorithm"] = "AEAD_SM4_GCM".into()),
            ),
            (
                "bad base64",
                edit(&|v| v["resource"]["ciphertext"] = "!!!not base64!!!".into()),
            ),
            (
                "short ciphertext",
                edit(&|v| v["resource"]["ciphertext"] = "AAAA".into()),
            ),
            ("no nonce", edit(&|v| v["resource"]["nonce"] = Value::Null)),
            (
                "huge nonce",
                edit(&|v| v["resource"]["nonce"] = "n".repeat(100).into()),
            ),
            (
                "wrong aad",
                edit(&|v| v["resource"]["associated_data"] = "certificate".into()),
            ),
            (
                "huge aad",
                edit(&|v| v["resource"]["associated_data"] = "a".repeat(5000).into()),
            ),
            (
                "wrong nonce",
                edit(&|v| v["resource"]["nonce"] = "aaaaaaaaaaaa".into()),
            ),
            (
                "huge event_type",
                edit(&|v| v["event_type"] = "E".repeat(100).into()),
            ),
        ];
        envelope["resource"]["ciphertext"] = {
            let ct = envelope["resource"]["ciphertext"]
                .as_str()
                .unwrap()
                .to_owned();
            let mut bytes = base64::engine::general_purpose::STANDARD
                .decode(ct)
                .unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            base64::engine::general_purpose::STANDARD
                .encode(bytes)
                .into()
        };
        let wrong_tag = envelope.to_string();
        for (what, body) in cases.into_iter().chain([("wrong tag", wrong_tag)]) {
            let (status, reason) = rejected(&env, &signed(&env, &body, Signing::Good));
            assert_eq!(status, 400, "{what}: {reason}");
        }
        // Too large to read at all, even signed.
        let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(NOTIFY_BODY_BYTES_MAX));
        let (status, reason) = rejected(&env, &signed(&env, &huge, Signing::Good));
        assert_eq!(status, 400);
        assert!(reason.contains("exceeds"), "{reason}");
    }

    #[test]
    fn a_notice_for_another_merchant_is_refused() {
        let env = FakeEnv::new(vec![]);
        let mut resource = transaction_resource("SUCCESS");
        resource["mchid"] = "1900000999".into();
        let (status, reason) = rejected(&env, &notice(&env, "TRANSACTION.SUCCESS", &resource));
        assert_eq!(status, 400);
        assert!(reason.contains("mchid"), "{reason}");
        let mut resource = transaction_resource("SUCCESS");
        resource.as_object_mut().unwrap().remove("mchid");
        assert_eq!(
            rejected(&env, &notice(&env, "TRANSACTION.SUCCESS", &resource)).0,
            400
        );
        let mut resource = refund_resource("SUCCESS");
        resource["mchid"] = "1900000999".into();
        assert_eq!(
            rejected(&env, &notice(&env, "REFUND.SUCCESS", &resource)).0,
            400
        );
        let mut resource = transaction_resource("SUCCESS");
        resource["appid"] = "wx_other".into();
        assert_eq!(
            rejected(&env, &notice(&env, "TRANSACTION.SUCCESS", &resource)).0,
            400
        );
        let other = json!({"mchid": "1900000999"});
        assert_eq!(
            rejected(&env, &notice(&env, "SOMETHING.NEW", &other)).0,
            400
        );
    }

    #[test]
    fn a_sub_merchants_notice_must_name_it_and_its_service_provider() {
        let env = FakeEnv::new(vec![]);
        let resource = as_sub_merchants(transaction_resource("SUCCESS"));
        let for_sub_merchant = |mut notice: Notification| {
            notice.merchant = sub_merchant_record();
            notice
        };
        let result = parse_notification(
            &env,
            &for_sub_merchant(notice(&env, "TRANSACTION.SUCCESS", &resource)),
        )
        .unwrap();
        assert_eq!(result.updates.len(), 1);
        // The service provider's own merchant does not take its sub-merchant's notice.
        let (status, reason) = rejected(&env, &notice(&env, "TRANSACTION.SUCCESS", &resource));
        assert_eq!(status, 400);
        assert!(reason.contains("sub_mchid"), "{reason}");
        // Another sub-merchant's, one without sub_mchid, the provider's own order.
        let mut other = resource.clone();
        other["sub_mchid"] = "1900006492".into();
        let mut unnamed = resource.clone();
        unnamed.as_object_mut().unwrap().remove("sub_mchid");
        for resource in [other, unnamed, transaction_resource("SUCCESS")] {
            let notice = for_sub_merchant(notice(&env, "TRANSACTION.SUCCESS", &resource));
            let (status, reason) = rejected(&env, &notice);
            assert_eq!(status, 400);
            assert!(reason.contains("mchid"), "{reason}");
        }
        let refund = as_sub_merchants(refund_resource("SUCCESS"));
        let result = parse_notification(
            &env,
            &for_sub_merchant(notice(&env, "REFUND.SUCCESS", &refund)),
        )
        .unwrap();
        assert_eq!(result.updates.len(), 1);
    }

    #[test]
    fn hostile_resources_are_400_not_panics() {
        let env = FakeEnv::new(vec![]);
        let huge = "9".repeat(100_000);
        for (event, plaintext) in [
            ("TRANSACTION.SUCCESS", b"not json".to_vec()),
            ("TRANSACTION.SUCCESS", b"[1,2,3]".to_vec()),
            ("TRANSACTION.SUCCESS", vec![0xff, 0xfe, 0x00]),
            (
                "TRANSACTION.SUCCESS",
                json!({"mchid": MCHID, "trade_state": "SUCCESS"}).to_string().into_bytes(),
            ),
            (
                "TRANSACTION.SUCCESS",
                json!({"mchid": MCHID, "out_trade_no": PAYMENT_ID, "trade_state": "WHATEVER"})
                    .to_string()
                    .into_bytes(),
            ),
            (
                "TRANSACTION.SUCCESS",
                json!({"mchid": MCHID, "out_trade_no": "../../etc", "trade_state": "SUCCESS"})
                    .to_string()
                    .into_bytes(),
            ),
            (
                "TRANSACTION.SUCCESS",
                json!({"mchid": MCHID, "out_trade_no": PAYMENT_ID, "trade_state": "SUCCESS", "transaction_id": huge})
                    .to_string()
                    .into_bytes(),
            ),
            (
                "REFUND.SUCCESS",
                json!({"mchid": MCHID, "refund_status": "SUCCESS"}).to_string().into_bytes(),
            ),
            (
                "REFUND.SUCCESS",
                json!({"mchid": MCHID, "out_refund_no": REFUND_ID, "refund_status": "MAYBE"})
                    .to_string()
                    .into_bytes(),
            ),
        ] {
            let body = body_with(&env, event, &plaintext);
            let (status, reason) = rejected(&env, &signed(&env, &body, Signing::Good));
            assert_eq!(status, 400, "{reason}");
        }
    }

    #[test]
    fn our_own_problems_are_500_so_wechat_pay_retries() {
        let env = FakeEnv::new(vec![]);
        let mut notice = notice(
            &env,
            "TRANSACTION.SUCCESS",
            &transaction_resource("SUCCESS"),
        );
        notice.merchant.settings_json = "{}".into();
        assert_eq!(rejected(&env, &notice).0, 500);
    }
}
