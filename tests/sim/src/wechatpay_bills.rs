//! WeChat Pay's trade bills (API v3): `GET /v3/bill/tradebill?bill_date=&bill_type=ALL`
//! (`tar_type=GZIP` for a gzipped file; a service provider names its `sub_mchid`) answers,
//! signed like any v3 answer, `hash_type` `SHA1`, `hash_value` (of the bill as text, before
//! any gzip) and a `download_url`; `GET` on that URL, authenticated like any v3 call,
//! answers the file itself, with no signature headers (WeChat Pay's download is not signed:
//! its digest is what a client checks). The file is UTF-8 with a BOM: the 27-column header,
//! a row per payment and refund whose every value starts with a backtick, then the
//! 7-column summary and its row. A day not yet published is `STATEMENT_CREATING`, a
//! published day without a payment or refund `NO_STATEMENT_EXIST` (both 400), as WeChat Pay
//! answers.
//!
//! Departures where WeChat Pay's documents leave it open: lines end in CRLF, and the fee
//! (手续费) is the row's fee rounded half up to the fen, printed with 5 decimals, negative
//! on a refund row (given back).

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha1::Digest;
use std::io::Write;

use crate::bills::{NotPublished, Row, RowKind};
use crate::ledger::now_ms;
use crate::state::SharedSim;
use crate::wechatpay::{PREFIX, authenticate, error, query_param, serve, sub_merchant};

/// How long a download URL works (WeChat Pay says 5 minutes).
const LINK_LIFETIME_MS: i64 = 300_000;
const HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// `GET /v3/bill/tradebill`.
pub async fn trade_bill(
    State(sim): State<SharedSim>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8430")
        .to_owned();
    let prefix = if uri.path().starts_with(PREFIX) {
        PREFIX
    } else {
        ""
    };
    let date = query_param(&uri, "bill_date");
    let bill_type = query_param(&uri, "bill_type");
    let gzip = query_param(&uri, "tar_type");
    let sub_mchid = query_param(&uri, "sub_mchid");
    serve(sim, method, uri, headers, body, move |sim, call| {
        let refuse = |code: &str, message: &str| {
            let (status, body) = error(StatusCode::BAD_REQUEST, code, message);
            (status, Some(body))
        };
        if !bill_type.is_empty() && bill_type != "ALL" {
            return refuse("PARAM_ERROR", "模拟器只提供 bill_type=ALL 的账单");
        }
        if !gzip.is_empty() && gzip != "GZIP" {
            return refuse("PARAM_ERROR", "tar_type 只能为 GZIP");
        }
        let scope = if sub_mchid.is_empty() {
            None
        } else {
            match sub_merchant(sim, &call, true, &sub_mchid) {
                Ok(scope) => scope,
                Err(answer) => return answer,
            }
        };
        let now = now_ms();
        let ledger = sim.wechatpay.ledger.lock().expect("ledger lock");
        let mut bills = sim.wechatpay.bills.lock().expect("bills lock");
        let published = bills.bill(&ledger, &call.mchid, scope.as_deref(), &date, now, |rows| {
            render(rows)
        });
        let published = match published {
            Ok(published) => published,
            Err(NotPublished::BadDate) => return refuse("PARAM_ERROR", "bill_date 格式不正确"),
            Err(NotPublished::NotYet) => return refuse("STATEMENT_CREATING", "请求的账单正在生成中"),
        };
        if published.rows == 0 {
            return refuse("NO_STATEMENT_EXIST", "账单文件不存在");
        }
        let token = crate::keys::random_token(32);
        bills.add_scoped_link(&token, &call.mchid, scope.as_deref(), &date, now + LINK_LIFETIME_MS);
        let tar = if gzip.is_empty() { "" } else { "&tartype=gzip" };
        (
            StatusCode::OK,
            Some(json!({
                "hash_type": "SHA1",
                "hash_value": hex::encode(sha1::Sha1::digest(&published.file)),
                "download_url": format!("http://{host}{prefix}/v3/billdownload/file?token={token}{tar}"),
            })),
        )
    })
    .await
}

/// `GET /v3/billdownload/file?token=`: the file, authenticated, unsigned.
pub async fn download(
    State(sim): State<SharedSim>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err((status, body)) = authenticate(&sim, &method, &uri, &headers, &body) {
        return (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let file = {
        let bills = sim.wechatpay.bills.lock().expect("bills lock");
        bills.linked_file(&query_param(&uri, "token"), now_ms())
    };
    let Some(file) = file else {
        let (status, body) = error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "下载链接已失效");
        return (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    };
    let bytes = if query_param(&uri, "tartype") == "gzip" {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&file).expect("gzip in memory");
        encoder.finish().expect("gzip in memory")
    } else {
        file
    };
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

fn yuan(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", minor.abs() / 100, minor.abs() % 100)
}

/// A fee in fen with WeChat Pay's five decimals (`1.56000`).
fn fee_text(minor: i64) -> String {
    format!("{}000", yuan(minor))
}

/// `0.60%`.
fn rate_text(basis_points: u32) -> String {
    format!("{}.{:02}%", basis_points / 100, basis_points % 100)
}

/// The bill's text: BOM, header, rows, summary.
pub fn render(rows: &[Row]) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    out.push_str(HEADER);
    out.push_str("\r\n");
    let (mut settled, mut refunded, mut fees, mut ordered) = (0, 0, 0, 0);
    for row in rows {
        let refund = row.kind == RowKind::Refund;
        let (settle, refund_amount, fee) = if refund {
            (0, row.amount_minor, -row.fee_minor)
        } else {
            (row.amount_minor, 0, row.fee_minor)
        };
        settled += settle;
        refunded += refund_amount;
        fees += fee;
        ordered += settle;
        let cells = [
            crate::alipay::beijing_time(row.at_ms),
            row.app_id.clone().unwrap_or_default(),
            row.merchant.clone(),
            row.sub_merchant.clone().unwrap_or_else(|| "0".into()),
            String::new(),
            row.trade_no.clone(),
            row.out_trade_no.clone(),
            row.payer_id.clone().unwrap_or_default(),
            if row.order_kind == "code" {
                "MICROPAY"
            } else {
                "NATIVE"
            }
            .into(),
            if refund { "REFUND" } else { "SUCCESS" }.into(),
            "OTHERS".into(),
            "CNY".into(),
            yuan(settle),
            "0.00".into(),
            row.refund_id.clone().unwrap_or_else(|| "0".into()),
            row.out_refund_no.clone().unwrap_or_else(|| "0".into()),
            yuan(refund_amount),
            "0.00".into(),
            if refund { "ORIGINAL" } else { "" }.into(),
            if refund { "SUCCESS" } else { "" }.into(),
            row.description.replace([',', '`', '\r', '\n'], " "),
            String::new(),
            fee_text(fee),
            rate_text(row.rate_basis_points),
            yuan(settle),
            yuan(refund_amount),
            String::new(),
        ];
        out.push_str(&with_backticks(cells.iter().map(String::as_str)));
    }
    out.push_str(SUMMARY_HEADER);
    out.push_str("\r\n");
    let total = [
        rows.len().to_string(),
        yuan(settled),
        yuan(refunded),
        "0.00".into(),
        fee_text(fees),
        yuan(ordered),
        yuan(refunded),
    ];
    out.push_str(&with_backticks(total.iter().map(String::as_str)));
    out.into_bytes()
}

fn with_backticks<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let cells: Vec<String> = cells.map(|c| format!("`{c}")).collect();
    format!("{}\r\n", cells.join(","))
}
