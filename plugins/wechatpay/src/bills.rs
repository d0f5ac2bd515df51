//! Trade bills (API v3). `fetch_bill`: `GET /v3/bill/tradebill?bill_date=&bill_type=ALL&
//! tar_type=GZIP` (a service provider's sub-merchant adds `sub_mchid`), answered and signed
//! like any call, gives `hash_type`, `hash_value` and `download_url`; the file is
//! downloaded with a signed `GET` (WeChat Pay does not sign the download: its digest, SHA1
//! of the bill before gzip, is checked instead, and a file that does not match is refused).
//! `STATEMENT_CREATING` is "not ready"; `NO_STATEMENT_EXIST` is "no bill": nothing happened
//! that day. `parse_bill` (pure) reads the file, gzipped or not (as downloaded from the
//! merchant platform too): UTF-8 (a BOM is skipped), the header, a row per payment
//! (`SUCCESS`) and refund (`REFUND`) whose every value starts with a backtick, then the
//! summary, whose count and totals must agree with the rows (a bill cut short or altered is
//! refused). Columns are found by their header, not their place.
//!
//! Reading choices (README.md): a payment's amount is `订单金额` (the order's, as the
//! gateway records it), a refund's `申请退款金额` (what was asked); the fee (`手续费`, five
//! decimals, negative on a refund) is read without its sign, exactly; a `REVOKED` row (a
//! payment-code order reversed) and a refund row whose `退款状态` is not `SUCCESS` moved no
//! money and are not entries; any other `交易状态` is refused. Every row must be this
//! merchant's (`商户号`, and `特约商户号` for a sub-merchant); a payment must be on the bill's
//! day (China time), a refund no later (its time is when it was asked for).

use std::io::Read;

use paygate_plugin_api::{
    BillDownload, BillEntry, BillEntryKind, BillFetchRequest, BillFile, BillRequest, Money,
    ProviderError,
};
use serde::Deserialize;
use sha1::Digest;

use crate::env::Env;
use crate::flow::Client;
use crate::payee::Payee;
use crate::settings::Settings;
use crate::transform::{self, Answer, Call, Failure};

/// The largest bill read (unpacked).
const BILL_BYTES_MAX: u64 = 64 << 20;
const SUMMARY_TITLE: &str = "总交易单数";

#[derive(Deserialize)]
struct BillLink {
    hash_type: String,
    hash_value: String,
    download_url: String,
}

/// `fetch-bill`: the day's bill, gzipped, its digest checked.
pub fn fetch_bill(
    env: &impl Env,
    request: &BillFetchRequest,
) -> Result<BillDownload, ProviderError> {
    let settings = Settings::parse(&request.merchant.settings_json)?;
    let payee = Payee::of(&settings)?;
    if !is_date(&request.date) {
        return Err(ProviderError::InvalidRequest(format!(
            "bill date {:?} is not YYYY-MM-DD",
            request.date
        )));
    }
    let client = Client::new(env, &settings, &request.date);
    let mut path = format!(
        "/v3/bill/tradebill?bill_date={}&bill_type=ALL&tar_type=GZIP",
        request.date
    );
    if let Some(sub_mchid) = payee.sub_mchid() {
        path.push_str(&format!("&sub_mchid={sub_mchid}"));
    }
    let call = Call::TradeBill;
    let response = client.send(call, "GET", &path, None)?;
    let answer = Answer {
        status: response.status,
        body: &response.body,
    };
    if !answer.is_success() {
        let failure = Failure::parse(answer);
        return match failure.normalized().as_str() {
            "STATEMENTCREATING" => Ok(BillDownload::NotReady(failure.describe())),
            "NOSTATEMENTEXIST" => Ok(BillDownload::NoBill),
            _ => Err(transform::generic_error(call, &failure)),
        };
    }
    let link: BillLink = transform::parse_body(call, &response.body)?;
    if !link.hash_type.eq_ignore_ascii_case("SHA1") {
        return Err(ProviderError::Unavailable(format!(
            "wechatpay trade bill: hash_type {:?} is not SHA1",
            transform::clip(&link.hash_type)
        )));
    }
    let download = client.download(Call::BillDownload, &link.download_url)?;
    if download.status != 200 {
        return Err(transform::generic_error(
            Call::BillDownload,
            &Failure::parse(Answer {
                status: download.status,
                body: &download.body,
            }),
        ));
    }
    let text = unpack(&download.body)
        .map_err(|e| ProviderError::Unavailable(format!("wechatpay bill download: {e}")))?;
    let digest = hex(&sha1::Sha1::digest(&text));
    if !digest.eq_ignore_ascii_case(link.hash_value.trim()) {
        return Err(ProviderError::Unavailable(format!(
            "wechatpay bill download: the file's SHA1 is {digest}, WeChat Pay stated {} (tampered or cut short)",
            transform::clip(&link.hash_value)
        )));
    }
    Ok(BillDownload::File(BillFile {
        name: format!("wechatpay_tradebill_{}.csv.gz", request.date),
        content: download.body,
    }))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bill's bytes, gunzipped if they are gzip.
fn unpack(content: &[u8]) -> Result<Vec<u8>, String> {
    if !content.starts_with(&[0x1f, 0x8b]) {
        return Ok(content.to_vec());
    }
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(content)
        .take(BILL_BYTES_MAX + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("the gzip does not unpack: {e}"))?;
    if text.len() as u64 > BILL_BYTES_MAX {
        return Err("the bill is larger than 64 MiB unpacked".into());
    }
    Ok(text)
}

fn is_date(date: &str) -> bool {
    let b = date.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// `parse-bill`.
pub fn parse_bill(request: &BillRequest) -> Result<Vec<BillEntry>, ProviderError> {
    let settings = Settings::parse(&request.merchant.settings_json)?;
    let payee = Payee::of(&settings)?;
    parse(
        &request.content,
        &request.date,
        &settings.mchid,
        payee.sub_mchid(),
    )
    .map_err(ProviderError::InvalidRequest)
}

/// The rows of a bill of `date` for `mchid` (and its sub-merchant `sub_mchid`, if named).
pub fn parse(
    content: &[u8],
    date: &str,
    mchid: &str,
    sub_mchid: Option<&str>,
) -> Result<Vec<BillEntry>, String> {
    if !is_date(date) {
        return Err(format!("bill date {date:?} is not YYYY-MM-DD"));
    }
    let bytes = unpack(content)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| format!("the bill is not UTF-8 text (byte {})", e.valid_up_to()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let header: Vec<&str> = lines[0].split(',').map(str::trim).collect();
    let column = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| {
            format!("line 1: the header has no column {name} (not a WeChat Pay trade bill?)")
        })
    };
    let time = column("交易时间")?;
    let merchant = column("商户号")?;
    let sub_merchant = column("特约商户号")?;
    let transaction_id = column("微信订单号")?;
    let out_trade_no = column("商户订单号")?;
    let state = column("交易状态")?;
    let currency = column("货币种类")?;
    let settled = column("应结订单金额")?;
    let out_refund_no = column("商户退款单号")?;
    let refunded = column("退款金额")?;
    let refund_state = column("退款状态")?;
    let fee = column("手续费")?;
    let ordered = header.iter().position(|h| *h == "订单金额");
    let asked = header.iter().position(|h| *h == "申请退款金额");

    let mut entries: Vec<BillEntry> = Vec::new();
    // Rows seen, by what they are about (a BTreeMap: a hash map would ask the OS for a seed,
    // which the sandbox traps).
    let mut seen: std::collections::BTreeMap<(bool, String, Option<String>), usize> =
        std::collections::BTreeMap::new();
    let mut sums = Totals::default();
    let mut summary_at = None;
    for (index, raw) in lines.iter().enumerate().skip(1) {
        let number = index + 1;
        if raw.starts_with(SUMMARY_TITLE) {
            summary_at = Some(index);
            break;
        }
        if raw.trim().is_empty() {
            if number == lines.len() {
                break;
            }
            return Err(format!("line {number}: an empty line among the rows"));
        }
        let cells = backticked(raw).map_err(|e| format!("line {number}: {e}"))?;
        if cells.len() != header.len() {
            return Err(format!(
                "line {number}: {} columns, the header has {}",
                cells.len(),
                header.len()
            ));
        }
        let amount = |i: usize, what: &str| {
            signed(cells[i], 2).map_err(|e| format!("line {number}: {what} {e}"))
        };
        let too_much = || format!("line {number}: the amounts add up past what a bill can hold");
        sums.rows += 1;
        sums.settled = sums
            .settled
            .checked_add(amount(settled, "应结订单金额")?.1)
            .ok_or_else(too_much)?;
        sums.refunded = sums
            .refunded
            .checked_add(amount(refunded, "退款金额")?.1)
            .ok_or_else(too_much)?;
        let (fee_negative, fee_minor) =
            signed(cells[fee], 5).map_err(|e| format!("line {number}: 手续费 {e}"))?;
        sums.fees = sums
            .fees
            .checked_add(if fee_negative { -fee_minor } else { fee_minor })
            .ok_or_else(too_much)?;
        if cells[merchant] != mchid {
            return Err(format!(
                "line {number}: 商户号 {} is not this merchant's ({mchid})",
                cells[merchant]
            ));
        }
        let sub = cells[sub_merchant];
        match sub_mchid {
            Some(expected) if sub != expected => {
                return Err(format!(
                    "line {number}: 特约商户号 {sub} is not this sub-merchant's ({expected})"
                ));
            }
            None if !(sub.is_empty() || sub == "0") => {
                return Err(format!(
                    "line {number}: 特约商户号 {sub}: a sub-merchant's row in this merchant's own bill"
                ));
            }
            _ => {}
        }
        if cells[currency] != "CNY" {
            return Err(format!(
                "line {number}: 货币种类 {:?} is not CNY",
                cells[currency]
            ));
        }
        let at = cells[time];
        let occurred_at = beijing_rfc3339(at)
            .ok_or_else(|| format!("line {number}: 交易时间 {at:?} is not yyyy-MM-dd HH:mm:ss"))?;
        let kind = match cells[state] {
            "SUCCESS" => BillEntryKind::Payment,
            "REFUND" if cells[refund_state] == "SUCCESS" => BillEntryKind::Refund,
            // A refund that failed or is still processing, a reversed payment-code order:
            // no money moved.
            "REFUND" | "REVOKED" => continue,
            other => {
                return Err(format!(
                    "line {number}: 交易状态 {other:?} is not SUCCESS, REFUND or REVOKED"
                ));
            }
        };
        let refund = kind == BillEntryKind::Refund;
        if (refund && &at[..10] > date) || (!refund && &at[..10] != date) {
            return Err(format!("line {number}: 交易时间 {at} is not on {date}"));
        }
        let (what, column) = match (refund, ordered, asked) {
            (false, Some(i), _) => ("订单金额", i),
            (false, None, _) => ("应结订单金额", settled),
            (true, _, Some(i)) => ("申请退款金额", i),
            (true, _, None) => ("退款金额", refunded),
        };
        let (negative, minor) = amount(column, what)?;
        if negative || minor == 0 {
            return Err(format!(
                "line {number}: {what} {} is not a positive amount",
                cells[column]
            ));
        }
        let required = |i: usize, what: &str| {
            Some(cells[i])
                .filter(|c| !c.is_empty() && *c != "0")
                .map(str::to_owned)
                .ok_or_else(|| format!("line {number}: no {what}"))
        };
        let entry = BillEntry {
            kind,
            payment_id: required(out_trade_no, "商户订单号")?,
            refund_id: if refund {
                Some(required(out_refund_no, "商户退款单号")?)
            } else {
                None
            },
            provider_reference: Some(required(transaction_id, "微信订单号")?),
            amount: cny(minor, 2),
            fee: Some(cny(fee_minor, 5)),
            occurred_at: Some(occurred_at),
            line: u32::try_from(number).ok(),
        };
        let row_key = (refund, entry.payment_id.clone(), entry.refund_id.clone());
        if let Some(twin) = seen.insert(row_key, number) {
            return Err(format!("line {number}: repeats line {twin}"));
        }
        entries.push(entry);
    }
    let at = summary_at.ok_or_else(|| {
        format!(
            "line {}: the bill ends without its summary (cut short?)",
            lines.len()
        )
    })?;
    check_summary(&lines, at, &sums)?;
    Ok(entries)
}

/// What the rows add up to, in fen (fees in 10^-5 yuan).
#[derive(Default)]
struct Totals {
    rows: usize,
    settled: i64,
    refunded: i64,
    fees: i64,
}

/// The summary's count and totals must be what the rows add up to.
fn check_summary(lines: &[&str], at: usize, sums: &Totals) -> Result<(), String> {
    let header: Vec<&str> = lines[at].split(',').map(str::trim).collect();
    let number = at + 2;
    let row = lines
        .get(at + 1)
        .filter(|l| !l.trim().is_empty())
        .ok_or_else(|| format!("line {number}: the summary has no row (cut short?)"))?;
    let cells = backticked(row).map_err(|e| format!("line {number}: {e}"))?;
    let cell = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| cells.get(i).copied())
            .ok_or_else(|| format!("line {number}: the summary has no {name}"))
    };
    let count: usize = cell("总交易单数")?
        .parse()
        .map_err(|_| format!("line {number}: 总交易单数 is not a count"))?;
    let total = |name: &str, scale: u8| -> Result<i64, String> {
        let (negative, minor) =
            signed(cell(name)?, scale).map_err(|e| format!("line {number}: {name} {e}"))?;
        Ok(if negative { -minor } else { minor })
    };
    let checks = [
        ("总交易单数", count as i64, sums.rows as i64),
        ("应结订单总金额", total("应结订单总金额", 2)?, sums.settled),
        ("退款总金额", total("退款总金额", 2)?, sums.refunded),
        ("手续费总金额", total("手续费总金额", 5)?, sums.fees),
    ];
    for (name, stated, summed) in checks {
        if stated != summed {
            return Err(format!(
                "line {number}: the summary's {name} does not match the rows (altered or cut short?)"
            ));
        }
    }
    if lines.iter().skip(at + 2).any(|l| !l.trim().is_empty()) {
        return Err(format!("line {}: text after the summary", at + 3));
    }
    Ok(())
}

/// A line's values, each after its backtick.
fn backticked(line: &str) -> Result<Vec<&str>, String> {
    line.split(',')
        .map(|cell| {
            cell.strip_prefix('`')
                .map(str::trim)
                .ok_or_else(|| format!("the value {cell:?} does not start with a backtick"))
        })
        .collect()
}

/// `-1.56000` at scale 5 as (negative, 156000).
fn signed(text: &str, scale: u8) -> Result<(bool, i64), String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    Money::from_decimal(digits, "CNY", scale).map(|m| (negative, m.minor))
}

/// CNY at `scale` decimals, at the yuan's two when nothing is lost.
fn cny(minor: i64, scale: u8) -> Money {
    let (mut minor, mut exponent) = (minor, scale);
    while exponent > 2 && minor % 10 == 0 {
        minor /= 10;
        exponent -= 1;
    }
    Money {
        minor,
        currency: "CNY".into(),
        exponent,
    }
}

/// `2026-12-07 10:55:23` (Beijing time) as `2026-12-07T10:55:23+08:00`.
fn beijing_rfc3339(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let shape = b.len() == 19
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && is_date(&text[..10])
        && [11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    shape.then(|| format!("{}T{}+08:00", &text[..10], &text[11..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MCHID: &str = "1900000001";
    const HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
    const PAID: &str = "`2026-12-07 10:55:23,`wx00000000000sim01,`1900000001,`0,`,`4200000000000000000000000001,`pay_1,`oUser1,`MICROPAY,`SUCCESS,`OTHERS,`CNY,`12.50,`0.00,`0,`0,`0.00,`0.00,`,`,`2 x coffee,`,`0.08000,`0.60%,`12.50,`0.00,`";
    const REFUNDED: &str = "`2026-12-07 11:00:00,`wx00000000000sim01,`1900000001,`0,`,`4200000000000000000000000001,`pay_1,`oUser1,`MICROPAY,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50300000000000000000000001,`re_1,`5.00,`0.00,`ORIGINAL,`SUCCESS,`2 x coffee,`,`-0.03000,`0.60%,`0.00,`5.00,`";

    fn bill(rows: &[&str], summary: &str) -> String {
        let mut text = format!("\u{feff}{HEADER}\r\n");
        for row in rows {
            text.push_str(row);
            text.push_str("\r\n");
        }
        text.push_str("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n");
        text.push_str(summary);
        text.push_str("\r\n");
        text
    }

    const SUMMARY: &str = "`2,`12.50,`5.00,`0.00,`0.05000,`12.50,`5.00";

    fn gzip(text: &str) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_bill_reads_into_its_rows_gzipped_or_not() {
        let text = bill(&[PAID, REFUNDED], SUMMARY);
        let entries = parse(text.as_bytes(), "2026-12-07", MCHID, None).unwrap();
        assert_eq!(entries.len(), 2);
        let (paid, refund) = (&entries[0], &entries[1]);
        assert_eq!(
            (paid.kind, paid.payment_id.as_str()),
            (BillEntryKind::Payment, "pay_1")
        );
        assert_eq!(
            paid.provider_reference.as_deref(),
            Some("4200000000000000000000000001")
        );
        assert_eq!((paid.amount.minor, paid.amount.exponent), (1250, 2));
        let fee = paid.fee.as_ref().unwrap();
        assert_eq!((fee.minor, fee.exponent), (8, 2));
        assert_eq!(
            paid.occurred_at.as_deref(),
            Some("2026-12-07T10:55:23+08:00")
        );
        assert_eq!(paid.line, Some(2));
        assert_eq!(refund.kind, BillEntryKind::Refund);
        assert_eq!(refund.refund_id.as_deref(), Some("re_1"));
        assert_eq!(refund.amount.minor, 500);
        assert_eq!(refund.fee.as_ref().map(|f| f.minor), Some(3));
        let zipped = parse(&gzip(&text), "2026-12-07", MCHID, None).unwrap();
        assert_eq!(format!("{zipped:?}"), format!("{entries:?}"));
        // A fee below the fen is kept exactly.
        let fine = PAID.replace("`0.08000", "`0.07500");
        let summary = SUMMARY.replace("`0.05000", "`0.04500");
        let entries = parse(
            bill(&[&fine, REFUNDED], &summary).as_bytes(),
            "2026-12-07",
            MCHID,
            None,
        )
        .unwrap();
        let fee = entries[0].fee.as_ref().unwrap();
        assert_eq!((fee.minor, fee.exponent), (75, 3));
        // Revoked orders and refunds not (yet) through are not entries, but are counted.
        let revoked = PAID
            .replace("`SUCCESS", "`REVOKED")
            .replace("`pay_1", "`pay_2");
        let processing = REFUNDED.replace("`SUCCESS,", "`PROCESSING,");
        let summary = "`4,`25.00,`10.00,`0.00,`0.10000,`25.00,`10.00";
        let entries = parse(
            bill(&[PAID, REFUNDED, &revoked, &processing], summary).as_bytes(),
            "2026-12-07",
            MCHID,
            None,
        )
        .unwrap();
        assert_eq!(entries.len(), 2);
    }

    fn refused(text: &str) -> String {
        parse(text.as_bytes(), "2026-12-07", MCHID, None).unwrap_err()
    }

    #[test]
    fn bad_bills_are_refused_naming_the_line() {
        // Cut short: no summary, or no summary row.
        let whole = bill(&[PAID, REFUNDED], SUMMARY);
        let cut = &whole[..whole.find("总交易单数").unwrap()];
        assert!(refused(cut).contains("without its summary"));
        assert!(refused(&whole[..whole.rfind('`').unwrap() - 40]).contains("line"));
        // Altered: a row's amount, or a row taken away.
        let altered = bill(
            &[
                &PAID.replace("`12.50,`0.00,`0,", "`13.50,`0.00,`0,"),
                REFUNDED,
            ],
            SUMMARY,
        );
        assert!(
            refused(&altered).contains("应结订单总金额"),
            "{}",
            refused(&altered)
        );
        let fewer = bill(&[PAID], SUMMARY);
        assert!(refused(&fewer).contains("总交易单数"));
        // Another merchant's or sub-merchant's row, another day.
        let other = bill(
            &[&PAID.replace("`1900000001", "`1900000002"), REFUNDED],
            SUMMARY,
        );
        assert!(refused(&other).starts_with("line 2: 商户号"));
        let sub = bill(
            &[&PAID.replace(",`0,`,", ",`1900000009,`,"), REFUNDED],
            SUMMARY,
        );
        assert!(refused(&sub).starts_with("line 2: 特约商户号"));
        assert!(
            parse(
                bill(&[PAID, REFUNDED], SUMMARY).as_bytes(),
                "2026-12-08",
                MCHID,
                None
            )
            .unwrap_err()
            .starts_with("line 2: 交易时间")
        );
        // Unparsable rows: no backtick, a garbled amount, a column missing, a repeat, a state.
        let message = refused(&bill(&[&PAID.replacen('`', "", 1), REFUNDED], SUMMARY));
        assert!(
            message.starts_with("line 2:") && message.contains("backtick"),
            "{message}"
        );
        let message = refused(&bill(
            &[
                &PAID.replace("`12.50,`0.00,`0,", "`12.5.0,`0.00,`0,"),
                REFUNDED,
            ],
            SUMMARY,
        ));
        assert!(message.starts_with("line 2: 应结订单金额"), "{message}");
        let message = refused(&bill(
            &[&PAID.replacen(",`OTHERS", "", 1), REFUNDED],
            SUMMARY,
        ));
        assert!(message.starts_with("line 2: 26 columns"), "{message}");
        let message = refused(&bill(
            &[PAID, PAID],
            "`2,`25.00,`0.00,`0.00,`0.16000,`25.00,`0.00",
        ));
        assert!(message.starts_with("line 3: repeats line 2"), "{message}");
        let message = refused(&bill(
            &[&PAID.replace("`SUCCESS", "`NOTPAY"), REFUNDED],
            SUMMARY,
        ));
        assert!(message.contains("NOTPAY"), "{message}");
        // Not UTF-8, not a bill, a broken gzip, empty.
        let mut latin = whole.clone().into_bytes();
        latin.push(0xff);
        assert!(
            parse(&latin, "2026-12-07", MCHID, None)
                .unwrap_err()
                .contains("not UTF-8")
        );
        assert!(refused("hello").starts_with("line 1"));
        assert!(refused("").starts_with("line 1"));
        let gz = gzip(&whole);
        assert!(
            parse(&gz[..gz.len() / 2], "2026-12-07", MCHID, None)
                .unwrap_err()
                .contains("gzip")
        );
    }

    #[test]
    fn a_sub_merchants_bill_has_its_rows_only() {
        let row = PAID.replace(",`0,`,", ",`1900000009,`,");
        let refund = REFUNDED.replace(",`0,`,", ",`1900000009,`,");
        let text = bill(&[&row, &refund], SUMMARY);
        assert_eq!(
            parse(text.as_bytes(), "2026-12-07", MCHID, Some("1900000009"))
                .unwrap()
                .len(),
            2
        );
        assert!(
            parse(text.as_bytes(), "2026-12-07", MCHID, Some("1900000008"))
                .unwrap_err()
                .contains("特约商户号")
        );
    }
}
