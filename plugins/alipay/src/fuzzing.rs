//! The body of the `alipay_notice` fuzz target (`fuzz/`), natively: the fuzzer's bytes as
//! the body of a trade notice, through [`notify::handle`] exactly as the plugin runs it,
//! with a stand-in for the host's signature check that accepts every signature, so the
//! fuzzer reaches what lies behind it. Compiled for the tests (which replay
//! `fuzz/regressions/alipay_notice/` and the seed corpus) and with the `fuzzing` feature;
//! never into the component.

use paygate_plugin_api::{Merchant, Notification, PaymentStatus, Update};

use crate::notify;

/// The application of the published notice (`tests/vectors/alipay/`), so that its seed
/// reaches the updates.
const APP_ID: &str = "2019073166072302";
const SELLER_ID: &str = "2088531891668739";

/// Handles `data` as a notice body for a merchant whose settings name the vector's
/// application and seller. Never panics; a refusal carries a reason and Alipay's `fail`;
/// an accepted notice reports at most its own `out_trade_no`, in a final state, with a
/// positive amount, and names at most a refund of that payment.
pub fn check(data: &[u8]) {
    match notify::handle(&notice(data), |_data, _signature| Ok(true)) {
        Err(rejected) => {
            assert!(
                !rejected.reason.trim().is_empty(),
                "a refusal without reason"
            );
            assert_eq!(rejected.reply.status, 400, "{}", rejected.reason);
            assert_eq!(rejected.reply.body, b"fail", "{}", rejected.reason);
        }
        Ok((parsed, reported)) => {
            let updates = reported.updates;
            assert!(!parsed.signature.is_empty(), "accepted without a signature");
            assert_eq!(
                parsed.params.get("app_id").map(String::as_str),
                Some(APP_ID)
            );
            assert!(
                updates.len() <= 1,
                "{} updates from one notice",
                updates.len()
            );
            for update in &updates {
                let Update::Payment(update) = update else {
                    panic!("a trade notice changed something else than a payment");
                };
                assert!(!update.payment_id.is_empty());
                assert_eq!(
                    parsed.params.get("out_trade_no"),
                    Some(&update.payment_id),
                    "the update is for another payment than the notice's"
                );
                assert!(
                    matches!(
                        update.outcome.status,
                        PaymentStatus::Succeeded | PaymentStatus::Cancelled
                    ),
                    "{:?}",
                    update.outcome.status
                );
                let amount = update.outcome.amount.as_ref();
                assert!(
                    amount.is_some_and(|m| m.minor > 0 && m.currency == "CNY" && m.exponent == 2),
                    "a change reported without a well-formed amount: {amount:?}"
                );
            }
            if let Some(refund) = &reported.refund {
                assert!(
                    !updates.is_empty(),
                    "a refund named by a notice that changes nothing"
                );
                assert!(!refund.refund_id.is_empty());
                assert_eq!(
                    parsed.params.get("out_trade_no"),
                    Some(&refund.out_trade_no)
                );
            }
        }
    }
}

/// A notice with body `data` for the vector's merchant.
fn notice(data: &[u8]) -> Notification {
    Notification {
        provider: "alipay".into(),
        merchant: Merchant {
            id: "m_fuzz".into(),
            settings_json: format!(
                r#"{{"app_id":"{APP_ID}","seller_id":"{SELLER_ID}","gateway_url":"https://openapi.alipay.com/gateway.do"}}"#
            ),
            notify_url: "https://gw.example/v1/notify/alipay/m_fuzz".into(),
        },
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: data.to_vec(),
    }
}

/// The body of the `alipay_bill` fuzz target: the fuzzer's bytes as a bill file (a zip, or
/// the details CSV) for the test kit's seller and day, through [`bills::parse`]. Never panics
/// or allocates without bound; a refusal says why; every entry read has our ids, a positive
/// amount, a fee that is not negative, a time on the day and a line, lines growing.
pub fn bill(data: &[u8]) {
    match crate::bills::parse(data, BILL_DATE, BILL_SELLER) {
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
                assert!(
                    entry
                        .occurred_at
                        .as_deref()
                        .is_some_and(|t| t.starts_with(BILL_DATE))
                );
                let line = entry.line.expect("a line");
                assert!(line > last, "lines grow");
                last = line;
            }
        }
    }
}

/// The seller and day the `alipay_bill` seeds are for.
pub const BILL_SELLER: &str = "2088000000000001";
pub const BILL_DATE: &str = "2026-12-07";

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// Runs [`check`] on every file of `fuzz/<dir>/alipay_notice/`; returns how many.
    fn replay(dir: &str) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz")
            .join(dir)
            .join("alipay_notice");
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

    /// Runs [`bill`] on every file of `fuzz/<dir>/alipay_bill/`; returns how many.
    fn replay_bills(dir: &str) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz")
            .join(dir)
            .join("alipay_bill");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let mut files: Vec<PathBuf> = entries
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        for file in &files {
            let data = std::fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| bill(&data));
            assert!(outcome.is_ok(), "{} fails", file.display());
        }
        files.len()
    }

    #[test]
    fn bill_seeds_hold_and_read() {
        assert!(replay_bills("corpus") >= 2);
        replay_bills("regressions");
        let seed = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/alipay_bill/seed-zip"),
        )
        .unwrap();
        assert_eq!(
            crate::bills::parse(&seed, BILL_DATE, BILL_SELLER)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn regressions_and_seeds_hold() {
        assert!(replay("regressions") > 0);
        replay("corpus");
    }

    #[test]
    fn the_published_notice_reaches_the_updates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/vectors/alipay/notify_trade_success.json");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let params = json["params"].as_object().unwrap();
        let body = paygate_plugin_api::form::encode(
            params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap())),
        );
        check(body.as_bytes());
        let (_, reported) = notify::handle(&notice(body.as_bytes()), |_, _| Ok(true)).unwrap();
        assert_eq!(reported.updates.len(), 1);
    }
}
