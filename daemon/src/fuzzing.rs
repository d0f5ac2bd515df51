//! What the fuzz targets in `fuzz/` check, as plain functions over bytes. The fuzz targets
//! call them; so do the tests below, which replay every input in
//! `fuzz/regressions/<target>/` (hand-picked hostile inputs and the crashes the fuzzer
//! found) and the seed corpus `fuzz/corpus/<target>/` in the normal test suite, on stable,
//! without libFuzzer.
//!
//! Each function asserts properties, not only "no panic": a panic is the finding.

use std::path::PathBuf;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::config::{Config, RULES};
use crate::domain::money::{Currency, Money, MoneyError};

/// `money_parse`: [`Money::parse`] on a currency and an amount cut from `data`.
///
/// The first byte picks the currency: below `0xF0`, one of ours (by its value modulo their
/// number); from `0xF0` up, the next `byte & 0x0F` bytes are the code. The rest is the
/// amount. Invalid UTF-8 becomes U+FFFD (amounts arrive in JSON strings, always UTF-8).
///
/// Whatever parses is positive, held at exactly the currency's scale, shown by the API with
/// exactly that many decimals, parses back to itself from what the API shows, and converts
/// to minor units and back without loss. Whatever does not parse says why.
pub fn money_parse(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let codes = Currency::supported_codes();
    let (code, amount) = if selector < 0xF0 {
        (codes[usize::from(selector) % codes.len()].to_owned(), rest)
    } else {
        let len = usize::from(selector & 0x0F).min(rest.len());
        let (code, amount) = rest.split_at(len);
        (String::from_utf8_lossy(code).into_owned(), amount)
    };
    let amount = String::from_utf8_lossy(amount);
    match Money::parse(&amount, &code) {
        Ok(money) => check_money(&money, &amount, &code),
        Err(error) => {
            assert!(
                !error.to_string().trim().is_empty(),
                "{error:?}: no message"
            );
            assert_eq!(
                matches!(error, MoneyError::UnknownCurrency(..)),
                Currency::from_code(&code).is_none(),
                "{amount:?} {code:?}: {error}"
            );
        }
    }
}

fn check_money(money: &Money, amount: &str, code: &str) {
    let currency = money.currency();
    let exponent = currency.exponent();
    let at = format!("{amount:?} {code}");
    assert_eq!(currency.code(), code, "{at}");
    assert!(money.decimal() > Decimal::ZERO, "{at}: not positive");
    assert_eq!(
        money.decimal().scale(),
        u32::from(exponent),
        "{at}: not at the currency's scale"
    );
    // The same number the client sent (Decimal compares values, not scales).
    assert_eq!(
        Decimal::from_str(amount).ok(),
        Some(money.decimal()),
        "{at}: the value changed"
    );

    // What the API shows (`Display`) has the currency's decimals and parses back.
    let shown = money.to_string();
    let decimals = shown.split_once('.').map_or(0, |(_, d)| d.len());
    assert_eq!(decimals, usize::from(exponent), "{at}: shown as {shown:?}");
    assert_eq!(
        Money::parse(&shown, code).as_ref(),
        Ok(money),
        "{at}: {shown:?} does not parse back"
    );

    // Minor units: what plugins and the store get.
    let minor = money.minor();
    assert!(minor > 0, "{at}: {minor} minor units");
    assert_eq!(
        Decimal::new(minor, u32::from(exponent)),
        money.decimal(),
        "{at}: {minor} minor units at exponent {exponent}"
    );
    assert_eq!(
        Money::from_minor(minor, currency),
        *money,
        "{at}: from_minor"
    );
    assert_eq!(
        minor.to_string(),
        shown.replace('.', "").trim_start_matches('0'),
        "{at}: {minor} minor units vs {shown:?}"
    );
}

/// `config_load`: [`Config::parse`] on `data` as the text of a config file (invalid UTF-8
/// replaced, so every input is a text).
///
/// `parse` never reads or writes a file: `path` (in the temp dir) only names the file in
/// errors, and the validation only asks whether the files a config names exist (`is_file`,
/// `canonicalize`: metadata, never contents) and whether `env:` variables are set.
///
/// A config that loads keeps what validation promised its accessors (they `expect` it);
/// an error names the file, has a message and a position inside the text.
pub fn config_load(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = config_path();
    match Config::parse(&path, &text) {
        Ok(config) => {
            assert_eq!(config.file(), path);
            let _ = config.listen_addr();
            let _ = config.public_url();
            for code in Currency::supported_codes() {
                assert!(
                    config.amount_max(code) > Decimal::ZERO,
                    "amount_max({code})"
                );
            }
            let monitor = config.monitor.settings();
            for rule in RULES {
                let _ = monitor.rule(rule);
            }
        }
        Err(error) => {
            assert!(!error.message.trim().is_empty(), "{error:?}: no message");
            assert_eq!(error.file, path);
            assert!(
                error.to_string().starts_with(&path.display().to_string()),
                "{error}"
            );
            if let Some((line, column)) = error.position {
                let lines = text.split('\n').count();
                assert!(
                    (1..=lines).contains(&line) && column >= 1,
                    "{error}: line {line} column {column} in a text of {lines} lines"
                );
            }
        }
    }
}

/// The file the fuzzed configs pretend to come from (never opened).
fn config_path() -> PathBuf {
    std::env::temp_dir()
        .join("paygate-fuzz")
        .join("paygate.toml")
}

/// `api_body`: [`parse_object`](crate::api::json::parse_object), how every JSON request
/// body is read, on `data` as the body.
///
/// An accepted body is an object, and serde_json reads the same value from it (so the value
/// the fingerprint and the handlers see is the one sent). The same object with its first key
/// sent twice is refused as `parameter_duplicate` naming that key. A refusal is a 400 in the
/// error model with a message.
pub fn api_body(data: &[u8]) {
    use crate::api::error::ApiError;
    use crate::api::json::parse_object;
    match parse_object(data) {
        Ok(value) => {
            let object = value.as_object().expect("an accepted body is an object");
            let plain: serde_json::Value =
                serde_json::from_slice(data).expect("serde_json reads what we accept");
            assert_eq!(plain, value, "serde_json reads another value");
            if let Some((key, first)) = object.iter().next() {
                let rest = std::str::from_utf8(data)
                    .expect("accepted JSON is UTF-8")
                    .trim_start()
                    .strip_prefix('{')
                    .expect("an object starts with {");
                let doubled = format!(
                    "{{{}:{first},{rest}",
                    serde_json::Value::String(key.clone())
                );
                match parse_object(doubled.as_bytes()) {
                    Err(ApiError::InvalidRequest {
                        code: "parameter_duplicate",
                        param: Some(param),
                        ..
                    }) => assert_eq!(&param, key, "{doubled}"),
                    other => panic!("{doubled}: a repeated key was not refused: {other:?}"),
                }
            }
        }
        Err(error) => {
            assert_eq!(
                error.status(),
                axum::http::StatusCode::BAD_REQUEST,
                "{error:?}"
            );
            assert!(
                !error.to_string().trim().is_empty(),
                "{error:?}: no message"
            );
        }
    }
}

/// `store_recovery`: a store whose `meta` holds `data` as the record of its last change
/// (`store/recovery.rs`), as a damaged disk could leave it, opened.
///
/// The store holds a succeeded payment, a refund of it and their events first, so that a
/// record naming them is finished or taken back for real. Opening never panics and never
/// hangs (a record can name any range of events); it either refuses the record as corrupt
/// or opens, and once opened, the record is gone: the next open is clean and the payment
/// still reads.
pub fn store_recovery(data: &[u8]) {
    use crate::store::{Claim, Store, StoreError, open_with_recovery_point};
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("paygate-fuzz-store-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store = Store::open(&dir).expect("a fresh store");
        let claim = |key: &str| Claim {
            api_key_id: "key_a".into(),
            key: key.into(),
            fingerprint: "fp".into(),
            lease: Default::default(),
        };
        let event = |kind: &str, id: &str| {
            serde_json::from_value(serde_json::json!({"id": format!("evt_{kind}"),
                "kind": kind, "created_at_ms": 1, "object_id": id, "data": {}}))
            .expect("an event")
        };
        let payment = serde_json::from_value(serde_json::json!({
            "id": "pay_1", "merchant_id": "m_a", "provider": "mock", "method": "barcode",
            "amount_minor": 1000, "currency": "CNY", "status": "pending", "order_id": "o1",
            "description": null, "terminal_id": null, "auth_code": null,
            "provider_reference": null, "qr_code": null, "payer": null, "failure": null,
            "metadata": {}, "created_at_ms": 1, "updated_at_ms": 1, "expires_at_ms": null,
            "refund_reserved_minor": 0, "refunded_minor": 0, "provider_step": "not_sent",
            "api_key_id": "key_a"}))
        .expect("a payment");
        store
            .begin_payment(&claim("k1"), &payment, &event("payment.created", "pay_1"))
            .expect("begin");
        store
            .update_payment("pay_1", |p| {
                p.status = crate::domain::state::PaymentStatus::Succeeded;
                Some(vec![event("payment.succeeded", "pay_1")])
            })
            .expect("update");
        let refund = serde_json::from_value(serde_json::json!({
            "id": "re_1", "payment_id": "pay_1", "merchant_id": "m_a", "provider": "mock",
            "amount_minor": 300, "currency": "CNY", "status": "pending", "reason": null,
            "provider_reference": null, "failure": null, "created_at_ms": 2,
            "updated_at_ms": 2, "provider_step": "not_sent", "api_key_id": "key_a"}))
        .expect("a refund");
        store
            .begin_refund(&claim("k2"), &refund, &event("refund.created", "re_1"))
            .expect("refund");
    }
    let opened = open_with_recovery_point(&dir, data);
    match opened {
        Ok(store) => {
            drop(store);
            let again = Store::open(&dir).expect("a second open");
            assert!(again.payment("pay_1").expect("reads").is_some());
        }
        Err(StoreError::Corrupt(message)) => assert!(!message.is_empty()),
        Err(other) => panic!("not a corrupt-record refusal: {other}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `archive_files`: a data dir whose archive holds two archived payments, with one of its
/// files replaced by the input (first byte mod 3: `0` the manifest, `1` the payments
/// segment's index, `2` its data file; the rest is the file), as a damaged disk or a hostile
/// hand could leave it.
///
/// Opening the store, looking payments up, listing them and `store verify` never panic,
/// hang or allocate without bound: a damaged manifest refuses the open as corrupt; a
/// damaged segment makes reads fail with an error, and `verify` names it.
pub fn archive_files(data: &[u8]) {
    use crate::store::archive::ArchivePolicy;
    use crate::store::{Claim, Store, StoreError};
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("paygate-fuzz-archive-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let target = {
        let store = Store::open(&dir).expect("a fresh store");
        for n in 1..=2 {
            let id = format!("pay_{n}");
            let claim = Claim {
                api_key_id: "key_a".into(),
                key: id.clone(),
                fingerprint: "fp".into(),
                lease: Default::default(),
            };
            let payment = serde_json::from_value(serde_json::json!({
                "id": id, "merchant_id": "m_a", "provider": "mock", "method": "barcode",
                "amount_minor": 1000, "currency": "CNY", "status": "succeeded",
                "order_id": null, "description": null, "terminal_id": null, "auth_code": null,
                "provider_reference": null, "qr_code": null, "payer": null, "failure": null,
                "metadata": {}, "created_at_ms": 1, "updated_at_ms": 1, "expires_at_ms": null,
                "refund_reserved_minor": 0, "refunded_minor": 0, "provider_step": "answered",
                "api_key_id": "key_a"}))
            .expect("a payment");
            let event = serde_json::from_value(serde_json::json!({"id": format!("evt_{n}"),
                "kind": "payment.created", "created_at_ms": 1, "object_id": id, "data": {}}))
            .expect("an event");
            store
                .begin_payment(&claim, &payment, &event)
                .expect("begin");
        }
        let offset = |_: &str| 0;
        store
            .archive(&ArchivePolicy {
                now_ms: 86_400_000,
                older_than_days: 0,
                utc_offset_min: &offset,
                segment_payments: 10,
            })
            .expect("archived");
        let manifest =
            std::fs::read(store.archive_dir().join("MANIFEST.json")).expect("a manifest");
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("json");
        let name = manifest["segments"][0]["name"]
            .as_str()
            .expect("a segment")
            .to_owned();
        match which % 3 {
            0 => store.archive_dir().join("MANIFEST.json"),
            1 => store.archive_dir().join(format!("{name}.payments.idx")),
            _ => store
                .archive_dir()
                .join(format!("{name}.payments.jsonl.zst")),
        }
    };
    std::fs::write(&target, bytes).expect("writes");
    match Store::open(&dir) {
        Ok(store) => {
            for id in ["pay_1", "pay_2", "pay_0", "re_1", "zzz"] {
                let _ = store.find_payment(id);
                let _ = store.find_refund(id);
                let _ = store.find_refunds_of(id);
            }
            let _ = store.payments_page(None, None, 10, |_| true);
            let _ = store.payments_page(Some("m_a"), Some("pay_2"), 1, |_| true);
            let report = store.verify().expect("verify reports, it does not fail");
            if which % 3 != 0 && report.violations.is_empty() {
                // Only the very bytes that were there pass.
                assert!(store.find_payment("pay_1").expect("reads").is_some());
            }
        }
        Err(StoreError::Corrupt(message)) => assert!(!message.is_empty()),
        Err(other) => panic!("not a corrupt-archive refusal: {other}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Runs `check` on every file of `fuzz/<dir>/<target>/`; returns how many there were.
    fn replay(dir: &str, target: &str, check: fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz")
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
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails", file.display());
        }
        files.len()
    }

    #[test]
    fn money_parse_regressions_and_seeds_hold() {
        assert!(replay("regressions", "money_parse", money_parse) > 0);
        replay("corpus", "money_parse", money_parse);
    }

    #[test]
    fn config_load_regressions_and_seeds_hold() {
        assert!(replay("regressions", "config_load", config_load) > 0);
        replay("corpus", "config_load", config_load);
    }

    #[test]
    fn api_body_regressions_and_seeds_hold() {
        assert!(replay("regressions", "api_body", api_body) > 0);
        replay("corpus", "api_body", api_body);
    }

    #[test]
    fn archive_files_regressions_and_seeds_hold() {
        assert!(replay("regressions", "archive_files", archive_files) > 0);
        replay("corpus", "archive_files", archive_files);
    }

    #[test]
    fn store_recovery_regressions_and_seeds_hold() {
        assert!(replay("regressions", "store_recovery", store_recovery) > 0);
        replay("corpus", "store_recovery", store_recovery);
    }

    #[test]
    fn the_checks_run_on_documented_inputs() {
        api_body(br#"{"merchant_id":"m_demo","amount":"12.50","metadata":{"k":"v"}}"#);
        money_parse(b"\x0012.50");
        money_parse(b"\xF3JPY1500");
        config_load(include_bytes!("../../config/paygate.toml"));
    }
}
