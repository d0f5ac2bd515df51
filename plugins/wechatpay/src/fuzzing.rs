//! The body of the `wechatpay_notice` fuzz target (`fuzz/`), natively: notices made from the
//! fuzzer's bytes, through [`notify::parse_notification`] exactly as the plugin runs it,
//! against [`StandIn`], a host whose signature check passes and whose decryption is the
//! identity, so the fuzzer reaches the parsing behind both. Compiled for the tests (which
//! replay `fuzz/regressions/wechatpay_notice/` and the seed corpus) and with the `fuzzing`
//! feature; never into the component.

use paygate_plugin_api::keys::KeyError;
use paygate_plugin_api::{
    Merchant, Notification, NotificationRejected, NotificationResult, PaymentStatus, RefundStatus,
    Update, http,
};

use crate::auth::{HEADER_NONCE, HEADER_SERIAL, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use crate::env::Env;
use crate::notify;
use crate::settings::Settings;
use crate::transform;

/// The merchant the notices are for (the test kit's fixtures).
pub const MCHID: &str = "1900000109";
pub const APPID: &str = "wxd678efh567hg6787";
pub const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0114";
/// The stand-in's clock: 2024-03-14T15:50:00Z. A notice is fresh at `NOW_MILLIS / 1000`.
pub const NOW_MILLIS: u64 = 1_710_431_400_000;
/// The "tag" the stand-in's decryption expects at the end of a ciphertext.
pub const TAG: [u8; 16] = [0; 16];

/// The host the fuzzer talks to: a fixed clock, a signature check that accepts every
/// signature, and an "AES-GCM" without the AES (a ciphertext is the plaintext followed by
/// [`TAG`]; any other tag does not authenticate). No HTTP and no signing: a notification
/// needs neither.
pub struct StandIn;

impl Env for StandIn {
    fn now_millis(&self) -> u64 {
        NOW_MILLIS
    }

    fn send(&self, _request: &http::Request) -> Result<http::Response, http::Error> {
        Err(http::Error::Denied("no HTTP while fuzzing".into()))
    }

    fn sign(&self, key_name: &str, _data: &[u8]) -> Result<Vec<u8>, KeyError> {
        Err(KeyError::UnknownKey(key_name.into()))
    }

    fn verify(&self, _key_name: &str, _data: &[u8], _signature: &[u8]) -> Result<bool, KeyError> {
        Ok(true)
    }

    fn decrypt(
        &self,
        _key_name: &str,
        _nonce: &[u8],
        _aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        match ciphertext.split_last_chunk::<16>() {
            Some((plaintext, tag)) if *tag == TAG => Ok(plaintext.to_vec()),
            _ => Err(KeyError::Failed("tag mismatch".into())),
        }
    }

    fn encrypt(&self, key_name: &str, _plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        Err(KeyError::UnknownKey(key_name.into()))
    }

    fn warn(&self, _message: &str) {}
}

/// One input, three ways in, chosen by the first byte (modulo 3):
///
/// - 0: the rest is `Name: value` header lines, a blank line, and the body: the whole
///   notice, headers included;
/// - 1: the rest is the body, sent with fresh `Wechatpay-*` headers: the envelope;
/// - 2: the first line of the rest is the `event_type`, the remainder the decrypted
///   resource, handed to [`notify::updates`]: the resource parsing directly.
///
/// Never panics. A refusal carries a reason and WeChat Pay's `FAIL` reply; an accepted
/// notice changes at most one payment or refund, identified by a valid id, to a final state.
pub fn check(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            let (head, body) = split_once(rest, b"\n\n");
            let headers = String::from_utf8_lossy(head)
                .lines()
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.to_owned(), value.trim_start().to_owned()))
                .collect();
            check_notice(notice(headers, body));
        }
        1 => check_notice(notice(fresh_headers(), rest)),
        _ => {
            let (event_type, plaintext) = split_once(rest, b"\n");
            let event_type = String::from_utf8_lossy(event_type);
            match notify::updates(&settings(), &event_type, plaintext) {
                Ok(updates) => check_updates(&event_type, &updates),
                Err(rejection) => {
                    assert!(!rejection.reason.trim().is_empty(), "{rejection:?}");
                    assert_eq!(rejection.status, 400, "{rejection:?}");
                }
            }
        }
    }
}

fn check_notice(notice: Notification) {
    match notify::parse_notification(&StandIn, &notice) {
        Ok(NotificationResult { updates, reply }) => {
            assert_eq!(reply.status, 200);
            // Read as the plugin reads it: serde skips the fields it ignores without
            // checking them, invalid UTF-8 included (a signed body is taken as sent).
            let envelope =
                notify::Envelope::decode(&notice.body).expect("an accepted notice has an envelope");
            check_updates(&envelope.event_type, &updates);
        }
        Err(NotificationRejected { reason, reply }) => {
            let why = reason
                .strip_prefix("wechatpay notification: ")
                .unwrap_or_else(|| panic!("{reason:?}: not ours"));
            assert!(!why.trim().is_empty(), "a refusal without reason");
            assert!(
                [400, 401, 500].contains(&reply.status),
                "{reason}: HTTP {}",
                reply.status
            );
            assert_eq!(reply.content_type, "application/json");
            let body: serde_json::Value =
                serde_json::from_slice(&reply.body).expect("the FAIL reply is JSON");
            assert_eq!(body["code"], "FAIL", "{reason}");
            assert!(
                body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{reason}"
            );
        }
    }
}

fn check_updates(event_type: &str, updates: &[Update]) {
    assert!(
        updates.len() <= 1,
        "{} updates from one notice",
        updates.len()
    );
    for update in updates {
        match update {
            Update::Payment(update) => {
                assert!(event_type.starts_with("TRANSACTION."), "{event_type}");
                assert!(transform::check_out_trade_no(&update.payment_id).is_ok());
                assert_ne!(update.outcome.status, PaymentStatus::Pending);
            }
            Update::Refund(update) => {
                assert!(event_type.starts_with("REFUND."), "{event_type}");
                assert!(transform::check_out_refund_no(&update.refund_id).is_ok());
                assert_ne!(update.outcome.status, RefundStatus::Pending);
            }
            other => panic!("{event_type} changed {other:?}"),
        }
    }
}

fn settings_json() -> String {
    serde_json::json!({
        "mchid": MCHID,
        "appid": APPID,
        "merchant_serial_no": "F5765756002FDD77",
        "wechatpay_public_key_id": PUBLIC_KEY_ID,
        "base_url": "https://api.mch.weixin.qq.com",
    })
    .to_string()
}

fn settings() -> Settings {
    Settings::parse(&settings_json()).expect("the fuzzing merchant's settings are valid")
}

fn notice(headers: Vec<(String, String)>, body: &[u8]) -> Notification {
    Notification {
        provider: "wechatpay".into(),
        merchant: Merchant {
            id: "m_fuzz".into(),
            settings_json: settings_json(),
            notify_url: "https://gw.example/v1/notify/wechatpay/m_fuzz".into(),
        },
        headers,
        body: body.to_vec(),
    }
}

/// `Wechatpay-*` headers that pass every check but the signature's (which the stand-in
/// accepts).
fn fresh_headers() -> Vec<(String, String)> {
    [
        (HEADER_TIMESTAMP, (NOW_MILLIS / 1000).to_string()),
        (HEADER_NONCE, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS".into()),
        (HEADER_SIGNATURE, "c2lnbmF0dXJl".into()),
        (HEADER_SERIAL, PUBLIC_KEY_ID.into()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// `data` cut at the first `separator` (which neither side keeps), or all of it and nothing.
fn split_once<'a>(data: &'a [u8], separator: &[u8]) -> (&'a [u8], &'a [u8]) {
    match data
        .windows(separator.len())
        .position(|window| window == separator)
    {
        Some(at) => (&data[..at], &data[at + separator.len()..]),
        None => (data, &[]),
    }
}

/// The body of the `wechatpay_materials` fuzz target: the fuzzer's bytes as an onboarding's
/// `materials-json`, through everything the plugin does with it before the first request
/// (the materials and their details, the images, the completeness check, the applyment with
/// a seal that marks what it sealed). Never panics; a refusal is `invalid-request` with a
/// message; an applyment is a JSON object with our business code, whose sensitive fields
/// are all sealed. Whether it got that far.
pub fn materials(data: &[u8]) -> bool {
    use paygate_plugin_api::ProviderError;

    use crate::{media, onboarding};

    let Ok(json) = std::str::from_utf8(data) else {
        return false;
    };
    let refused = |error: ProviderError| match error {
        ProviderError::InvalidRequest(message) => {
            assert!(!message.trim().is_empty());
            false
        }
        other => panic!("materials refused as {other:?}"),
    };
    let (materials, documents) = match onboarding::Materials::parse(json)
        .and_then(|m| media::Documents::parse(json).map(|d| (m, d)))
    {
        Ok(parsed) => parsed,
        Err(error) => return refused(error),
    };
    let complete = match onboarding::check_complete(&materials, &documents) {
        Ok(complete) => complete,
        Err(error) => return refused(error),
    };
    let mut ids = media::MediaIds::default();
    for (n, (key, _)) in onboarding::needed_images(&materials)
        .into_iter()
        .enumerate()
    {
        ids.0.insert(key, format!("V1_{n}"));
    }
    let seal = |text: &str| Ok(format!("sealed:{}", text.len()));
    match onboarding::applyment(&settings(), "act_fuzz", &complete, &ids, &seal) {
        Ok(body) => {
            let body: serde_json::Value =
                serde_json::from_str(&body).expect("an applyment is JSON");
            assert_eq!(body["business_code"], "act_fuzz");
            for pointer in [
                "/contact_info/contact_name",
                "/contact_info/mobile_phone",
                "/subject_info/identity_info/id_card_info/id_card_number",
                "/subject_info/identity_info/id_card_info/id_card_address",
                "/bank_account_info/account_number",
            ] {
                let field = body.pointer(pointer).and_then(|v| v.as_str()).unwrap_or("");
                assert!(
                    field.starts_with("sealed:"),
                    "{pointer} not sealed: {field}"
                );
            }
            true
        }
        Err(error) => refused(error),
    }
}

/// The body of the `wechatpay_bill` fuzz target: the fuzzer's bytes as a bill file (gzipped
/// or not) of [`MCHID`] for [`BILL_DATE`], through [`bills::parse`](crate::bills::parse).
/// Never panics or allocates without bound (a gzip unpacks to 64 MiB at most); a refusal
/// says why; every entry read has our ids, a positive amount, a fee that is not negative
/// and a line, lines growing.
pub fn bill(data: &[u8]) {
    match crate::bills::parse(data, BILL_DATE, MCHID, None) {
        Err(reason) => assert!(!reason.trim().is_empty(), "a refusal without reason"),
        Ok(entries) => {
            let mut last = 0;
            for entry in &entries {
                assert!(!entry.payment_id.is_empty());
                assert_eq!(
                    entry.refund_id.is_some(),
                    entry.kind == paygate_plugin_api::BillEntryKind::Refund
                );
                assert!(entry.amount.minor > 0 && entry.amount.currency == "CNY");
                assert!(entry.fee.as_ref().is_some_and(|f| f.minor >= 0));
                let line = entry.line.expect("a line");
                assert!(line > last, "lines grow");
                last = line;
            }
        }
    }
}

/// The day the `wechatpay_bill` seeds are for.
pub const BILL_DATE: &str = "2026-12-07";

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use base64::Engine as _;

    use super::*;

    /// Runs [`check`] on every file of `fuzz/<dir>/wechatpay_notice/`; returns how many.
    fn replay(dir: &str) -> usize {
        replay_target(dir, "wechatpay_notice", check)
    }

    /// Runs `run` on every file of `fuzz/<dir>/<target>/`; returns how many.
    fn replay_target(dir: &str, target: &str, run: fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz")
            .join(dir)
            .join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        for file in &files {
            let data = std::fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{} fails", file.display());
        }
        files.len()
    }

    #[test]
    fn bill_seeds_hold_and_read() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut seeds = 0;
        for sub in ["corpus/wechatpay_bill", "regressions/wechatpay_bill"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for entry in entries {
                let data = std::fs::read(entry.unwrap().path()).unwrap();
                bill(&data);
                seeds += 1;
            }
        }
        assert!(seeds >= 2);
        let seed = std::fs::read(dir.join("corpus/wechatpay_bill/seed-csv")).unwrap();
        assert_eq!(
            crate::bills::parse(&seed, BILL_DATE, MCHID, None)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn regressions_and_seeds_hold() {
        assert!(replay("regressions") > 0);
        replay("corpus");
        assert!(
            replay_target("corpus", "wechatpay_materials", |data| {
                assert!(materials(data), "a seed reaches the applyment");
            }) > 0
        );
    }

    /// The materials target reaches the applyment: the test kit's complete materials pass,
    /// and hostile variants are refused, never a panic.
    #[test]
    fn the_materials_target_reaches_the_applyment() {
        let mut complete = crate::testkit::materials();
        complete["documents"] = crate::testkit::documents();
        assert!(materials(complete.to_string().as_bytes()));
        for hostile in [
            "",
            "null",
            "[]",
            "{\"details\": {\"beneficial_owners\": [{}, {}, {}, {}, {}]}}",
            "{\"documents\": {\"x\": 1}}",
            "{\"details\": {\"legal_person\": {\"id_valid_from\": \"9999-99-99\"}}}",
        ] {
            assert!(!materials(hostile.as_bytes()), "{hostile}");
        }
        // An agent contact without the agent's details: refused.
        let mut agent = complete.clone();
        agent["contact"]["name"] = "李四".into();
        assert!(!materials(agent.to_string().as_bytes()));
    }

    #[test]
    fn the_stand_in_reaches_the_updates() {
        let resource = serde_json::json!({
            "mchid": MCHID,
            "appid": APPID,
            "out_trade_no": "pay_0Fq3Zx9AbCdEfGhIjKlMnOpQ",
            "transaction_id": "4200000000202403140000000001",
            "trade_type": "NATIVE",
            "trade_state": "SUCCESS",
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            "amount": {"total": 1250, "payer_total": 1250, "currency": "CNY", "payer_currency": "CNY"},
        });
        let mut ciphertext = resource.to_string().into_bytes();
        ciphertext.extend(TAG);
        let body = serde_json::json!({
            "event_type": "TRANSACTION.SUCCESS",
            "resource": {
                "algorithm": notify::RESOURCE_ALGORITHM,
                "ciphertext": base64::engine::general_purpose::STANDARD.encode(ciphertext),
                "associated_data": "transaction",
                "nonce": "fdasflkja484",
            },
        })
        .to_string();
        let result =
            notify::parse_notification(&StandIn, &notice(fresh_headers(), body.as_bytes()))
                .unwrap();
        assert_eq!(result.updates.len(), 1);
        let mut input = vec![1];
        input.extend(body.as_bytes());
        check(&input);
    }
}
