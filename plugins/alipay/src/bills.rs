//! Trade bills. `fetch_bill`: `alipay.data.dataservice.bill.downloadurl.query` (`bill_type`
//! `trade`, `bill_date`) answers, signed like any gateway answer, a link on Alipay's bill
//! host (`dwbillcenter.alipay.com`, not the gateway's: name it in `allowed_hosts`), valid
//! for 30 s, which is downloaded at once; `isp.bill_not_exist` (or `BILL_NOT_EXIST`) is "not
//! ready": Alipay gives it both before a day's bill is out and, by some accounts, for a day
//! without trades, and the two cannot be told apart. `parse_bill` (pure) reads the zip as
//! downloaded, or the details CSV taken out of it: GBK text, a `#` preface naming the
//! account (the merchant's `seller_id` with `0156` after it) and the day, the header, a row
//! per trade (`交易`) and refund (`退款`), and a `#` trailer with the day's counts, which must
//! agree with the rows (a bill cut short or altered is refused). Columns are found by their
//! header, not their place; the summary file, when present, must agree too.
//!
//! Reading choices where Alipay's documents are silent (README.md): the service fee (服务费)
//! is read without its sign (a payment's is what Alipay kept, a refund's what it gave back);
//! a row of any other business type is refused rather than skipped, so that no money moves
//! unseen; a trade must have completed on the bill's day (China time).

use paygate_plugin_api::{
    BillDownload, BillEntry, BillEntryKind, BillFetchRequest, BillFile, BillRequest, Money,
    ProviderError, http,
};
use serde::Serialize;

use crate::env::Env;
use crate::flow::{Client, settings};
use crate::transform::{Code, Effect};

pub const METHOD_BILL_URL: &str = "alipay.data.dataservice.bill.downloadurl.query";
/// The largest file read out of a bill zip (a day's details are megabytes).
const ENTRY_BYTES_MAX: u64 = 64 << 20;
/// A bill zip holds the details and the summary; more is not Alipay's.
const ENTRIES_MAX: usize = 8;
const DETAILS_TITLE: &str = "#支付宝业务明细查询";
const SUMMARY_TITLE: &str = "#支付宝业务汇总查询";

#[derive(Serialize)]
struct BillUrlBiz<'a> {
    bill_type: &'static str,
    bill_date: &'a str,
}

/// `fetch-bill`: the day's zip, as Alipay serves it.
pub fn fetch_bill(
    env: &impl Env,
    request: &BillFetchRequest,
) -> Result<BillDownload, ProviderError> {
    let settings = settings(&request.merchant, Effect::Read)?;
    refuse_sub_merchants(&settings)?;
    if !is_date(&request.date) {
        return Err(ProviderError::InvalidRequest(format!(
            "bill date {:?} is not YYYY-MM-DD",
            request.date
        )));
    }
    let client = Client::new(env, &settings);
    let reply = client.call(
        METHOD_BILL_URL,
        &BillUrlBiz {
            bill_type: "trade",
            bill_date: &request.date,
        },
        None,
        Effect::Read,
    )?;
    match reply.kind() {
        Code::Success => {}
        _ if matches!(
            reply.sub_code.as_deref(),
            Some("isp.bill_not_exist" | "BILL_NOT_EXIST")
        ) =>
        {
            return Ok(BillDownload::NotReady(reply.decline_message()));
        }
        Code::ServiceUnavailable | Code::Other => {
            return Err(ProviderError::Unavailable(reply.describe()));
        }
        _ => return Err(ProviderError::InvalidRequest(reply.describe())),
    }
    let url = reply
        .text("bill_download_url")
        .map_err(ProviderError::Unavailable)?
        .ok_or_else(|| ProviderError::Unavailable("Alipay gave no bill_download_url".into()))?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(ProviderError::Unavailable(format!(
            "bill_download_url {url:?} is not an http(s) URL"
        )));
    }
    let response = env
        .send(&http::Request::new("GET", url))
        .map_err(|e| Effect::Read.transport(e))?;
    if response.status != 200 {
        return Err(ProviderError::Unavailable(format!(
            "the bill host answered HTTP {}",
            response.status
        )));
    }
    Ok(BillDownload::File(BillFile {
        name: file_name(url).unwrap_or_else(|| format!("{}.csv.zip", request.date)),
        content: response.body,
    }))
}

/// A 直付通 sub-merchant's trades are in its platform's bill, among every other
/// sub-merchant's: its own bill is not the platform's to give, and reading the platform's as
/// its own would report the others' trades as unknown to it.
fn refuse_sub_merchants(settings: &crate::settings::Settings) -> Result<(), ProviderError> {
    if settings.sub_merchant_id.is_some() || settings.activation_id.is_some() {
        return Err(ProviderError::InvalidRequest(
            "a 直付通 sub-merchant's trades are in its platform's bill, which this plugin does not split by sub-merchant yet".into(),
        ));
    }
    Ok(())
}

/// `downloadFileName` of a bill link.
fn file_name(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("downloadFileName="))
        .map(|name| {
            name.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(120)
                .collect()
        })
        .filter(|name: &String| !name.is_empty())
}

/// `parse-bill`.
pub fn parse_bill(request: &BillRequest) -> Result<Vec<BillEntry>, ProviderError> {
    let settings = settings(&request.merchant, Effect::Charge)?;
    refuse_sub_merchants(&settings)?;
    let seller = settings.seller_id.as_deref().ok_or_else(|| {
        ProviderError::InvalidRequest(
            "alipay settings: seller_id (the 2088... partner id) is needed to check that a bill is this merchant's".into(),
        )
    })?;
    parse(&request.content, &request.date, seller).map_err(ProviderError::InvalidRequest)
}

/// The rows of a bill (a zip, or its details CSV) for `date` and the account of `seller`.
pub fn parse(content: &[u8], date: &str, seller: &str) -> Result<Vec<BillEntry>, String> {
    if !is_date(date) {
        return Err(format!("bill date {date:?} is not YYYY-MM-DD"));
    }
    let (details, summary) = if content.starts_with(b"PK\x03\x04") {
        unzip(content)?
    } else {
        (Some(decode(content, "the bill")?), None)
    };
    let details = details.ok_or("the zip holds no 业务明细 (details) file")?;
    let read = read_details(&details, date, seller)?;
    if let Some(summary) = summary {
        check_summary(&summary, &read)?;
    }
    Ok(read.entries)
}

/// The details and summary texts of a bill zip, found by their first line (Alipay names
/// them in GBK without saying so, which no zip reader decodes reliably).
fn unzip(content: &[u8]) -> Result<(Option<String>, Option<String>), String> {
    let files = crate::unzip::entries(content, ENTRIES_MAX, ENTRY_BYTES_MAX)
        .map_err(|e| format!("the bill zip: {e}"))?;
    let (mut details, mut summary) = (None, None);
    for (n, file) in files.iter().enumerate() {
        if file.name.ends_with(b"/") {
            continue;
        }
        let text = decode(&file.content, &format!("the bill zip's file {}", n + 1))?;
        let first = text.lines().next().unwrap_or("").trim().to_owned();
        let slot = match first.as_str() {
            DETAILS_TITLE => &mut details,
            SUMMARY_TITLE => &mut summary,
            _ => continue,
        };
        if slot.replace(text).is_some() {
            return Err(format!("the bill zip holds two files titled {first}"));
        }
    }
    Ok((details, summary))
}

/// A bill file's text: GBK, as Alipay writes it, or UTF-8 if it is an Alipay bill in
/// UTF-8 (a merchant's editor may have saved it so; the content is the same).
fn decode(bytes: &[u8], what: &str) -> Result<String, String> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let text = text.trim_start_matches('\u{feff}');
        if text.starts_with("#支付宝") {
            return Ok(text.to_owned());
        }
    }
    encoding_rs::GBK
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
        .ok_or_else(|| format!("{what} is not GBK text (Alipay's bills are GBK-encoded)"))
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

/// `2026年12月07日 00:00:00` for `2026-12-07`.
fn chinese_midnight(date: &str) -> String {
    format!(
        "{}年{}月{}日 00:00:00",
        &date[0..4],
        &date[5..7],
        &date[8..10]
    )
}

/// What the details file said.
struct Details {
    entries: Vec<BillEntry>,
    payments: usize,
    refunds: usize,
}

/// The text between `[` and `]` after `prefix` on `line`.
fn bracketed<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(prefix)?.strip_prefix('[')?;
    rest.split_once(']').map(|(inside, _)| inside)
}

fn read_details(text: &str, date: &str, seller: &str) -> Result<Details, String> {
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let line = |n: usize| lines.get(n - 1).copied().unwrap_or("");
    if line(1).trim() != DETAILS_TITLE {
        return Err(format!(
            "line 1: expected {DETAILS_TITLE}, not an Alipay trade bill"
        ));
    }
    let account = bracketed(line(2), "#账号：").ok_or("line 2: no #账号：[...] line")?;
    let expected = format!("{seller}0156");
    if account != expected && account != seller {
        return Err(format!(
            "line 2: the bill is for account {account}, not this merchant's ({expected})"
        ));
    }
    let (from, to) = line(3)
        .split_once("终止日期：")
        .ok_or("line 3: no 起始日期/终止日期 line")?;
    let from = bracketed(from.trim(), "#起始日期：").ok_or("line 3: no 起始日期")?;
    if from != chinese_midnight(date) {
        return Err(format!("line 3: the bill starts {from}, not on {date}"));
    }
    let to = to.trim().trim_start_matches('[').trim_end_matches(']');
    if !to.ends_with(" 00:00:00") {
        return Err(format!("line 3: the bill ends {to}, not at a midnight"));
    }
    if !line(4).starts_with("#-") {
        return Err("line 4: expected the 业务明细列表 line".into());
    }
    let header: Vec<&str> = line(5).split(',').map(clean).collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("line 5: the header has no column {name}"))
    };
    let trade_no = column("支付宝交易号")?;
    let order_no = column("商户订单号")?;
    let business = column("业务类型")?;
    let completed = column("完成时间")?;
    let amount = column("订单金额（元）")?;
    let refund_no = column("退款批次号/请求号")?;
    let fee = column("服务费（元）")?;

    let mut entries: Vec<BillEntry> = Vec::new();
    // Rows seen, by what they are about (a BTreeMap: a hash map would ask the OS for a seed,
    // which the sandbox traps).
    let mut seen: std::collections::BTreeMap<(bool, String, Option<String>), usize> =
        std::collections::BTreeMap::new();
    let mut end = None;
    for (index, raw) in lines.iter().enumerate().skip(5) {
        let number = index + 1;
        if raw.starts_with('#') {
            end = Some(index);
            break;
        }
        if raw.trim().is_empty() {
            if number == lines.len() {
                break; // the file's last line break
            }
            return Err(format!("line {number}: an empty line among the rows"));
        }
        let cells: Vec<&str> = raw.split(',').map(clean).collect();
        if cells.len() != header.len() {
            return Err(format!(
                "line {number}: {} columns, the header has {}",
                cells.len(),
                header.len()
            ));
        }
        let at = |what: &str, i: usize| -> Result<&str, String> {
            Some(cells[i])
                .filter(|c| !c.is_empty())
                .ok_or_else(|| format!("line {number}: no {what}"))
        };
        let kind = match cells[business] {
            "交易" => BillEntryKind::Payment,
            "退款" => BillEntryKind::Refund,
            other => {
                return Err(format!(
                    "line {number}: business type {other:?} is neither 交易 nor 退款"
                ));
            }
        };
        let refund = kind == BillEntryKind::Refund;
        let (negative, money) = signed_yuan(at("订单金额", amount)?)
            .map_err(|e| format!("line {number}: 订单金额 {e}"))?;
        if negative != refund || money.minor == 0 {
            return Err(format!(
                "line {number}: 订单金额 {} for a {}",
                cells[amount],
                if refund {
                    "refund (must be negative)"
                } else {
                    "trade (must be positive)"
                }
            ));
        }
        let (_, fee_money) = signed_yuan(if cells[fee].is_empty() {
            "0.00"
        } else {
            cells[fee]
        })
        .map_err(|e| format!("line {number}: 服务费 {e}"))?;
        let time = at("完成时间", completed)?;
        let occurred_at = beijing_rfc3339(time).ok_or_else(|| {
            format!("line {number}: 完成时间 {time:?} is not yyyy-MM-dd HH:mm:ss")
        })?;
        if &time[..10] != date {
            return Err(format!("line {number}: completed {time}, not on {date}"));
        }
        let entry = BillEntry {
            kind,
            payment_id: at("商户订单号", order_no)?.to_owned(),
            refund_id: if refund {
                Some(at("退款批次号/请求号", refund_no)?.to_owned())
            } else {
                None
            },
            provider_reference: Some(at("支付宝交易号", trade_no)?.to_owned()),
            amount: money,
            fee: Some(fee_money),
            occurred_at: Some(occurred_at),
            line: u32::try_from(number).ok(),
        };
        let row_key = (refund, entry.payment_id.clone(), entry.refund_id.clone());
        if let Some(twin) = seen.insert(row_key, number) {
            return Err(format!(
                "line {number}: repeats line {twin} ({} {})",
                if refund { "refund" } else { "trade" },
                entry.refund_id.as_deref().unwrap_or(&entry.payment_id)
            ));
        }
        entries.push(entry);
    }
    let end = end.ok_or_else(|| {
        format!(
            "line {}: the bill ends without its #…业务明细列表结束 trailer (cut short?)",
            lines.len()
        )
    })?;
    if !lines[end].contains("业务明细列表结束") {
        return Err(format!(
            "line {}: expected the 业务明细列表结束 line",
            end + 1
        ));
    }
    let payments = entries
        .iter()
        .filter(|e| e.kind == BillEntryKind::Payment)
        .count();
    let refunds = entries.len() - payments;
    for (offset, (title, count, what)) in [
        ("#交易合计：", payments, "trades"),
        ("#退款合计：", refunds, "refunds"),
    ]
    .into_iter()
    .enumerate()
    {
        let number = end + 2 + offset;
        let text = lines.get(number - 1).copied().unwrap_or("");
        let stated = text
            .strip_prefix(title)
            .and_then(|rest| rest.split_once('笔'))
            .and_then(|(n, _)| n.trim().parse::<usize>().ok())
            .ok_or_else(|| format!("line {number}: expected {title}N笔… (cut short?)"))?;
        if stated != count {
            return Err(format!(
                "line {number}: the trailer counts {stated} {what}, the bill lists {count}"
            ));
        }
    }
    Ok(Details {
        entries,
        payments,
        refunds,
    })
}

/// The summary's 合计 row must count what the details list.
fn check_summary(text: &str, details: &Details) -> Result<(), String> {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let header_at = lines
        .iter()
        .position(|l| !l.starts_with('#'))
        .ok_or("the summary file has no header")?;
    let header: Vec<&str> = lines[header_at].split(',').map(clean).collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("summary line {}: no column {name}", header_at + 1))
    };
    let (trades, refunds) = (column("交易订单总笔数")?, column("退款订单总笔数")?);
    let (number, total) = lines
        .iter()
        .enumerate()
        .skip(header_at + 1)
        .find(|(_, l)| l.split(',').next().map(clean) == Some("合计"))
        .ok_or("the summary file has no 合计 row")?;
    let cells: Vec<&str> = total.split(',').map(clean).collect();
    let count = |i: usize| cells.get(i).and_then(|c| c.parse::<usize>().ok());
    if count(trades) != Some(details.payments) || count(refunds) != Some(details.refunds) {
        return Err(format!(
            "summary line {}: counts {} trades and {} refunds, the details list {} and {}",
            number + 1,
            cells.get(trades).unwrap_or(&"?"),
            cells.get(refunds).unwrap_or(&"?"),
            details.payments,
            details.refunds
        ));
    }
    Ok(())
}

/// A cell without Alipay's padding (a TAB after some values) and spaces.
fn clean(cell: &str) -> &str {
    cell.trim_matches(|c: char| c == '\t' || c == ' ')
}

/// `-12.50` as (negative, 12.50 CNY).
fn signed_yuan(text: &str) -> Result<(bool, Money), String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    Money::from_decimal(digits, "CNY", 2).map(|m| (negative, m))
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
    use std::io::Cursor;

    pub const SELLER: &str = "2088000000000001";

    /// A details file as Alipay lays it out (TABs after the values it pads).
    pub fn details(rows: &[&str], trailer: (usize, usize)) -> String {
        let mut text = String::new();
        text.push_str("#支付宝业务明细查询\r\n#账号：[20880000000000010156]\r\n");
        text.push_str(
            "#起始日期：[2026年12月07日 00:00:00]   终止日期：[2026年12月08日 00:00:00]\r\n",
        );
        text.push_str(&format!(
            "#{}业务明细列表{}\r\n",
            "-".repeat(41),
            "-".repeat(40)
        ));
        text.push_str("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注\r\n");
        for row in rows {
            text.push_str(row);
            text.push_str("\r\n");
        }
        text.push_str(&format!(
            "#{}业务明细列表结束{}\r\n",
            "-".repeat(41),
            "-".repeat(36)
        ));
        text.push_str(&format!(
            "#交易合计：{}笔，商家实收共12.50元，商家优惠共0.00元\r\n",
            trailer.0
        ));
        text.push_str(&format!(
            "#退款合计：{}笔，商家实收退款共-5.00元，商家优惠退款共0.00元\r\n",
            trailer.1
        ));
        text.push_str("#导出时间：[2026年12月08日 09:10:11]\r\n");
        text
    }

    pub const PAID: &str = "2026120722001400000000000001\t,pay_1\t,交易\t,2 x coffee,2026-12-07 10:55:16,2026-12-07 10:55:23,\t,\t,\t,\t,*abc(***@alipay.sim)\t,12.50,12.50,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,-0.08,0.00,2 x coffee";
    pub const REFUNDED: &str = "2026120722001400000000000001\t,pay_1\t,退款\t,2 x coffee,2026-12-07 10:55:16,2026-12-07 11:00:00,\t,\t,\t,\t,*abc(***@alipay.sim)\t,-5.00,-5.00,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,re_1\t,0.03,0.00,2 x coffee";

    fn gbk_bytes(text: &str) -> Vec<u8> {
        encoding_rs::GBK.encode(text).0.into_owned()
    }

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, text) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(&gbk_bytes(text)).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn summary(trades: usize, refunds: usize) -> String {
        format!(
            "#支付宝业务汇总查询\r\n#账号：[20880000000000010156]\r\n#起始日期：[2026年12月07日 00:00:00]   终止日期：[2026年12月08日 00:00:00]\r\n#{}业务汇总列表{}\r\n门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）\r\n合计,,{trades},{refunds},7.50,7.50,0.00,0.00,0.00,-0.05,0.00,7.45\r\n#{}业务汇总列表结束{}\r\n#导出时间：[2026年12月08日 09:10:11]\r\n",
            "-".repeat(41),
            "-".repeat(40),
            "-".repeat(40),
            "-".repeat(37)
        )
    }

    #[test]
    fn a_zip_of_details_and_summary_reads_into_its_rows() {
        let zip = zip_of(&[
            (
                "20880000000000010156_20261207_业务明细.csv",
                &details(&[PAID, REFUNDED], (1, 1)),
            ),
            (
                "20880000000000010156_20261207_业务明细(汇总).csv",
                &summary(1, 1),
            ),
        ]);
        let entries = parse(&zip, "2026-12-07", SELLER).unwrap();
        assert_eq!(entries.len(), 2);
        let (paid, refund) = (&entries[0], &entries[1]);
        assert_eq!(paid.kind, BillEntryKind::Payment);
        assert_eq!(paid.payment_id, "pay_1");
        assert_eq!(paid.refund_id, None);
        assert_eq!(
            paid.provider_reference.as_deref(),
            Some("2026120722001400000000000001")
        );
        assert_eq!((paid.amount.minor, paid.amount.exponent), (1250, 2));
        assert_eq!(paid.fee.as_ref().map(|f| f.minor), Some(8));
        assert_eq!(
            paid.occurred_at.as_deref(),
            Some("2026-12-07T10:55:23+08:00")
        );
        assert_eq!(paid.line, Some(6));
        assert_eq!(refund.kind, BillEntryKind::Refund);
        assert_eq!(refund.refund_id.as_deref(), Some("re_1"));
        assert_eq!(refund.amount.minor, 500);
        assert_eq!(refund.fee.as_ref().map(|f| f.minor), Some(3));
        assert_eq!(refund.line, Some(7));
        // The details file alone (taken out of the zip) reads the same.
        let alone = parse(
            &gbk_bytes(&details(&[PAID, REFUNDED], (1, 1))),
            "2026-12-07",
            SELLER,
        )
        .unwrap();
        assert_eq!(format!("{alone:?}"), format!("{entries:?}"));
        // A day without trades: no rows.
        let empty = parse(&gbk_bytes(&details(&[], (0, 0))), "2026-12-07", SELLER).unwrap();
        assert!(empty.is_empty());
    }

    fn refused(content: &[u8], date: &str, seller: &str) -> String {
        parse(content, date, seller).unwrap_err()
    }

    #[test]
    fn bills_for_another_account_or_day_are_refused() {
        let bill = gbk_bytes(&details(&[PAID], (1, 0)));
        assert!(refused(&bill, "2026-12-07", "2088999999999999").contains("line 2"));
        assert!(refused(&bill, "2026-12-08", SELLER).contains("line 3"));
        assert!(refused(&bill, "07/12/2026", SELLER).contains("not YYYY-MM-DD"));
        let late = PAID.replace("2026-12-07 10:55:23", "2026-12-08 00:00:01");
        let bill = gbk_bytes(&details(&[&late], (1, 0)));
        assert!(refused(&bill, "2026-12-07", SELLER).contains("line 6: completed"));
    }

    #[test]
    fn cut_altered_and_mis_encoded_bills_are_refused_naming_the_line() {
        let whole = details(&[PAID, REFUNDED], (1, 1));
        // Cut before the trailer.
        let cut = &whole[..whole
            .find("#-----------------------------------------业务明细列表结束")
            .unwrap()];
        assert!(refused(&gbk_bytes(cut), "2026-12-07", SELLER).contains("cut short"));
        // A row removed: the trailer's count disagrees.
        let fewer = details(&[PAID], (1, 1));
        let message = refused(&gbk_bytes(&fewer), "2026-12-07", SELLER);
        assert!(
            message.contains("counts 1 refunds, the bill lists 0"),
            "{message}"
        );
        // A row's amount garbled.
        let garbled = PAID.replace(",12.50,12.50,", ",12.5x,12.50,");
        let message = refused(
            &gbk_bytes(&details(&[&garbled], (1, 0))),
            "2026-12-07",
            SELLER,
        );
        assert!(message.starts_with("line 6: 订单金额"), "{message}");
        // A refund with a positive amount, a row with a column missing, a repeated row.
        let positive = REFUNDED.replace(",-5.00,-5.00,", ",5.00,-5.00,");
        assert!(
            refused(
                &gbk_bytes(&details(&[&positive], (0, 1))),
                "2026-12-07",
                SELLER
            )
            .contains("line 6")
        );
        let short = PAID.replacen(",2 x coffee", "", 1);
        assert!(
            refused(
                &gbk_bytes(&details(&[&short], (1, 0))),
                "2026-12-07",
                SELLER
            )
            .contains("line 6: 24 columns")
        );
        let message = refused(
            &gbk_bytes(&details(&[PAID, PAID], (2, 0))),
            "2026-12-07",
            SELLER,
        );
        assert!(message.contains("line 7: repeats line 6"), "{message}");
        // Another business type is not skipped.
        let other = PAID.replace("交易\t", "分账\t");
        assert!(
            refused(
                &gbk_bytes(&details(&[&other], (1, 0))),
                "2026-12-07",
                SELLER
            )
            .contains("neither")
        );
        // Bytes that are not GBK, UTF-16, not a bill, an empty file; the same bill saved
        // as UTF-8 reads the same.
        let mut broken = gbk_bytes(&details(&[PAID], (1, 0)));
        broken.extend_from_slice(&[0x81, 0x20]);
        assert!(refused(&broken, "2026-12-07", SELLER).contains("not GBK"));
        let utf16: Vec<u8> = details(&[PAID], (1, 0))
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(parse(&utf16, "2026-12-07", SELLER).is_err());
        let utf8 = details(&[PAID], (1, 0));
        assert_eq!(
            parse(utf8.as_bytes(), "2026-12-07", SELLER).unwrap().len(),
            1
        );
        assert!(refused(b"hello", "2026-12-07", SELLER).contains("line 1"));
        assert!(refused(b"", "2026-12-07", SELLER).contains("line 1"));
        // A zip that is not whole, and one whose summary disagrees.
        let zip = zip_of(&[("d.csv", &details(&[PAID], (1, 0)))]);
        assert!(refused(&zip[..zip.len() - 10], "2026-12-07", SELLER).contains("zip"));
        let zip = zip_of(&[
            ("d.csv", &details(&[PAID], (1, 0))),
            ("s.csv", &summary(2, 0)),
        ]);
        assert!(refused(&zip, "2026-12-07", SELLER).contains("summary line 6"));
        let zip = zip_of(&[("s.csv", &summary(0, 0))]);
        assert!(refused(&zip, "2026-12-07", SELLER).contains("no 业务明细"));
    }

    #[test]
    fn a_zip_written_as_a_stream_reads_too() {
        // Java's ZipOutputStream (Alipay's) writes sizes after the data (data descriptors).
        use std::io::Write;
        let mut zip = zip::ZipWriter::new_stream(Vec::new());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("d.csv", options).unwrap();
        zip.write_all(&gbk_bytes(&details(&[PAID, REFUNDED], (1, 1))))
            .unwrap();
        zip.start_file("s.csv", options).unwrap();
        zip.write_all(&gbk_bytes(&summary(1, 1))).unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        assert_eq!(parse(&bytes, "2026-12-07", SELLER).unwrap().len(), 2);
    }

    #[test]
    fn the_link_names_the_file() {
        assert_eq!(
            file_name("http://dwbillcenter.alipay.com/downloadBillFile.resource?bizType=trade&downloadFileName=2088_20261207.csv.zip&token=x").as_deref(),
            Some("2088_20261207.csv.zip")
        );
        assert_eq!(file_name("http://x/y"), None);
    }
}
