//! Alipay's trade bills: `alipay.data.dataservice.bill.downloadurl.query` answers a link
//! on the bill host (Alipay's `dwbillcenter.alipay.com`, here the simulator's second
//! listener), valid 30 s, to a zip of two GBK-encoded CSV files: the details
//! (`…_业务明细.csv`: a `#` preface, the 25 columns, a `#` trailer with the day's counts and
//! totals) and the summary (`…_业务明细(汇总).csv`). A day is published once it is over in
//! China time (or closed early by a test); before that the bill "does not exist"
//! (`isp.bill_not_exist`), as Alipay answers. A day without trades gets a bill with no rows.
//!
//! Departures from Alipay, where its public documents leave the format open: the zip's entry
//! names are written in UTF-8 (Alipay's are GBK, without the zip's UTF-8 flag; a reader
//! should find the files by their first line, not their names), lines end in CRLF, and the
//! service fee (服务费) is negative on a payment row (the merchant pays it) and positive on
//! a refund row (it comes back): no published sample shows a fee that is not zero.

use std::collections::BTreeMap;
use std::io::Write;

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::alipay::{Answer, beijing_time, business_error, ok};
use crate::bills::{NotPublished, Row, RowKind};
use crate::ledger::now_ms;
use crate::state::{SharedSim, Sim};

pub const METHOD: &str = "alipay.data.dataservice.bill.downloadurl.query";
/// How long a download link works.
const LINK_LIFETIME_MS: i64 = 30_000;
/// A detail row's columns that end in a TAB (1-based), as Alipay writes them.
const TABBED: [usize; 10] = [1, 2, 3, 7, 8, 9, 10, 11, 20, 22];
const HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";

/// The account Alipay knows an app's merchant by: its partner id (`2088` and 12 digits,
/// here made from the app id) with `0156` after it, as bills name it.
pub fn bill_account(app_id: &str) -> String {
    let digits: String = app_id.chars().filter(char::is_ascii_digit).collect();
    let tail = &digits[digits.len().saturating_sub(12)..];
    format!("2088{tail:0>12}0156")
}

/// The gateway method: a link to the day's bill, or why there is none.
pub fn download_url(sim: &Sim, app_id: &str, biz: &Value) -> Answer {
    let text = |name: &str| biz.get(name).and_then(Value::as_str).unwrap_or("");
    if text("bill_type") != "trade" {
        return business_error(METHOD, "isv.invalid-arguments", "bill_type 只支持 trade");
    }
    let date = text("bill_date");
    let account = bill_account(app_id);
    let now = now_ms();
    let ledger = sim.alipay.ledger.lock().expect("ledger lock");
    let mut bills = sim.alipay.bills.lock().expect("bills lock");
    let published = bills.bill(&ledger, app_id, None, date, now, |rows| {
        render_zip(&account, date, rows, now)
    });
    match published {
        Ok(_) => {}
        Err(NotPublished::BadDate) => {
            return business_error(METHOD, "isv.invalid-arguments", "bill_date 格式不正确");
        }
        Err(NotPublished::NotYet) => {
            return business_error(METHOD, "isp.bill_not_exist", "账单不存在");
        }
    }
    let compact = date.replace('-', "");
    let token = crate::keys::random_token(32);
    bills.add_link(&token, app_id, date, now + LINK_LIFETIME_MS);
    let origin = sim
        .alipay_bill_origin
        .get()
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8431".into());
    let name = format!("{account}_{compact}.csv.zip");
    let url = format!(
        "{origin}/downloadBillFile.resource?bizType=trade&userId={account}&fileType=csv.zip&bizDates={compact}&downloadFileName={name}&fileId=%2Ftrade%2F{account}%2F{compact}.csv.zip&timestamp={}&token={token}",
        now / 1000
    );
    ok(METHOD, json!({ "bill_download_url": url }))
}

/// `GET /downloadBillFile.resource?...&token=`: the bill file, while its link works.
pub async fn download(State(sim): State<SharedSim>, RawQuery(query): RawQuery) -> Response {
    let params: BTreeMap<String, String> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let token = params.get("token").map_or("", String::as_str);
    let bills = sim.alipay.bills.lock().expect("bills lock");
    match bills.linked_file(token, now_ms()) {
        Some(file) => (
            [
                (header::CONTENT_TYPE, "application/oct-stream".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename={}",
                        params
                            .get("downloadFileName")
                            .map_or("bill.csv.zip", String::as_str)
                    ),
                ),
            ],
            file,
        )
            .into_response(),
        None => (StatusCode::FORBIDDEN, "链接已失效").into_response(),
    }
}

fn yuan(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", minor.abs() / 100, minor.abs() % 100)
}

/// `2019年09月16日 00:00:00`.
fn chinese_date(date: &str) -> String {
    let mut parts = date.split('-');
    let (y, m, d) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    format!("{y}年{m}月{d}日 00:00:00")
}

fn next_day(date: &str) -> String {
    crate::bills::day_start_ms(date).map_or_else(String::new, |start| {
        beijing_time(start + 86_400_000)[..10].to_owned()
    })
}

/// `2019年09月17日 05:46:49`.
fn chinese_time(ms: i64) -> String {
    let t = beijing_time(ms);
    format!("{}年{}月{}日 {}", &t[0..4], &t[5..7], &t[8..10], &t[11..])
}

/// Text Alipay would not put in a comma-separated cell.
fn cell(text: &str) -> String {
    text.replace([',', '\r', '\n'], "，")
}

/// The masked payer, as `对方账户` shows one.
fn counterparty(payer: Option<&str>) -> String {
    payer.map_or_else(String::new, |p| {
        let tail: String = p
            .chars()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("*{tail}(***@alipay.sim)")
    })
}

/// The details file's text (before GBK).
pub fn details(account: &str, date: &str, rows: &[Row], now: i64) -> String {
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push_str("\r\n");
    };
    line("#支付宝业务明细查询");
    line(&format!("#账号：[{account}]"));
    line(&format!(
        "#起始日期：[{}]   终止日期：[{}]",
        chinese_date(date),
        chinese_date(&next_day(date))
    ));
    line(&format!(
        "#{}业务明细列表{}",
        "-".repeat(41),
        "-".repeat(40)
    ));
    line(HEADER);
    let (mut payments, mut refunds) = ((0, 0), (0, 0));
    for row in rows {
        let refund = row.kind == RowKind::Refund;
        let (amount, fee) = if refund {
            refunds.0 += 1;
            refunds.1 -= row.amount_minor;
            (-row.amount_minor, row.fee_minor)
        } else {
            payments.0 += 1;
            payments.1 += row.amount_minor;
            (row.amount_minor, -row.fee_minor)
        };
        let cells = [
            row.trade_no.clone(),
            row.out_trade_no.clone(),
            if refund { "退款" } else { "交易" }.to_owned(),
            cell(&row.description),
            beijing_time(row.created_ms),
            beijing_time(row.at_ms),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            counterparty(row.payer_id.as_deref()),
            yuan(amount),
            yuan(amount),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            String::new(),
            "0.00".into(),
            "0.00".into(),
            row.out_refund_no.clone().unwrap_or_default(),
            yuan(fee),
            "0.00".into(),
            cell(&row.description),
        ];
        let text: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if TABBED.contains(&(i + 1)) {
                    format!("{c}\t")
                } else {
                    c
                }
            })
            .collect();
        line(&text.join(","));
    }
    line(&format!(
        "#{}业务明细列表结束{}",
        "-".repeat(41),
        "-".repeat(36)
    ));
    line(&format!(
        "#交易合计：{}笔，商家实收共{}元，商家优惠共0.00元",
        payments.0,
        yuan(payments.1)
    ));
    line(&format!(
        "#退款合计：{}笔，商家实收退款共{}元，商家优惠退款共0.00元",
        refunds.0,
        yuan(refunds.1)
    ));
    line(&format!("#导出时间：[{}]", chinese_time(now)));
    out
}

/// The summary file's text (before GBK): one total row (the simulator has no stores).
fn summary(account: &str, date: &str, rows: &[Row], now: i64) -> String {
    let count = |kind| rows.iter().filter(|r| r.kind == kind).count();
    let sum = |kind, f: fn(&Row) -> i64| rows.iter().filter(|r| r.kind == kind).map(f).sum::<i64>();
    let gross =
        sum(RowKind::Payment, |r| r.amount_minor) - sum(RowKind::Refund, |r| r.amount_minor);
    let fees = sum(RowKind::Refund, |r| r.fee_minor) - sum(RowKind::Payment, |r| r.fee_minor);
    [
        "#支付宝业务汇总查询".to_owned(),
        format!("#账号：[{account}]"),
        format!(
            "#起始日期：[{}]   终止日期：[{}]",
            chinese_date(date),
            chinese_date(&next_day(date))
        ),
        format!("#{}业务汇总列表{}", "-".repeat(41), "-".repeat(40)),
        "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）".to_owned(),
        format!(
            "合计,,{},{},{},{},0.00,0.00,0.00,{},0.00,{}",
            count(RowKind::Payment),
            count(RowKind::Refund),
            yuan(gross),
            yuan(gross),
            yuan(fees),
            yuan(gross + fees)
        ),
        format!("#{}业务汇总列表结束{}", "-".repeat(40), "-".repeat(37)),
        format!("#导出时间：[{}]", chinese_time(now)),
    ]
    .iter()
    .map(|l| format!("{l}\r\n"))
    .collect()
}

fn gbk(text: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(text).0.into_owned()
}

/// The zip Alipay serves: details and summary, GBK.
pub fn render_zip(account: &str, date: &str, rows: &[Row], now: i64) -> Vec<u8> {
    let compact = date.replace('-', "");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in [
        (
            format!("{account}_{compact}_业务明细.csv"),
            details(account, date, rows, now),
        ),
        (
            format!("{account}_{compact}_业务明细(汇总).csv"),
            summary(account, date, rows, now),
        ),
    ] {
        zip.start_file(name, options).expect("a zip entry");
        zip.write_all(&gbk(&text)).expect("zip data");
    }
    zip.finish().expect("a zip").into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_partner_ids_with_0156() {
        assert_eq!(bill_account("2021000000000001"), "20880000000000010156");
    }

    #[test]
    fn an_empty_day_has_its_preface_header_and_trailer() {
        let text = details(
            "208800000000000010156",
            "2026-12-07",
            &[],
            1_796_601_600_000,
        );
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "#支付宝业务明细查询");
        assert_eq!(
            lines[2],
            "#起始日期：[2026年12月07日 00:00:00]   终止日期：[2026年12月08日 00:00:00]"
        );
        assert_eq!(lines[4], HEADER);
        assert!(lines[5].starts_with("#-----"));
        assert_eq!(
            lines[6],
            "#交易合计：0笔，商家实收共0.00元，商家优惠共0.00元"
        );
    }
}
