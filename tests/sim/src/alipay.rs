//! Alipay Open Platform, face-to-face payment, at `/gateway.do` (and `/alipay/gateway.do`),
//! GET or POST: form-encoded common parameters with a `biz_content` JSON, RSA2 (SHA256withRSA) request signatures over
//! the sorted `k=v&...` string of every non-empty parameter but `sign`; answers
//! `{"<method>_response": {...}, "sign": "..."}` signed over the raw text of the response
//! object; trade notices as signed form posts (sorted non-empty parameters, `sign` and
//! `sign_type` excluded), acknowledged by the text `success`. The sub-merchant onboarding
//! methods (`ant.merchant.expand.*`) are served by `alipay_onboarding.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::faults::FaultKind;
use crate::keys;
use crate::ledger::{Order, OrderStatus, Payer, Refund, RefundStatus, now_ms};
use crate::notifier::{ALIPAY_SCHEDULE_S, Notice};
use crate::state::{SharedSim, Sim};

/// The gateway; `main.rs` mounts it at Alipay's own path (`/gateway.do`) and under
/// `/alipay` for configs written before the simulator served the real one. Like Alipay's,
/// it takes GET (every parameter in the query string) as well as POST (parameters in the
/// query string, the form body, or both).
pub fn router() -> Router<SharedSim> {
    Router::new().route("/gateway.do", get(gateway).post(gateway))
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time, Alipay's timestamp format.
pub fn beijing_time(ms: i64) -> String {
    let utc = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let t = utc.to_offset(time::UtcOffset::from_hms(8, 0, 0).expect("a valid offset"));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The string Alipay signs: sorted `k=v` pairs of the non-empty parameters, minus `skip`.
pub fn signing_string(params: &BTreeMap<String, String>, skip: &[&str]) -> String {
    params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn yuan(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// Parses a yuan amount ("12.50") into fen, strictly.
fn fen(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || whole.len() > 10
        || fraction.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let fraction = format!("{fraction:0<2}");
    Some(whole.parse::<i64>().ok()? * 100 + fraction.parse::<i64>().ok()?)
}

fn is_alipay_code(code: &str) -> bool {
    let digits = code.bytes().all(|b| b.is_ascii_digit());
    let prefix = code
        .get(..2)
        .and_then(|p| p.parse::<u8>().ok())
        .is_some_and(|p| (25..=30).contains(&p));
    digits && prefix && (16..=24).contains(&code.len())
}

/// One answer: the `*_response` object, to be signed.
pub(crate) struct Answer {
    pub(crate) method: String,
    pub(crate) object: Value,
}

pub(crate) fn ok(method: &str, mut fields: Value) -> Answer {
    fields["code"] = json!("10000");
    fields["msg"] = json!("Success");
    Answer {
        method: method.to_owned(),
        object: fields,
    }
}

pub(crate) fn fail(method: &str, code: &str, msg: &str, sub_code: &str, sub_msg: &str) -> Answer {
    Answer {
        method: method.to_owned(),
        object: json!({"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}),
    }
}

pub(crate) fn business_error(method: &str, sub_code: &str, sub_msg: &str) -> Answer {
    fail(method, "40004", "Business Failed", sub_code, sub_msg)
}

/// The response body: the object's text, signed as sent.
pub(crate) fn render(sim: &Sim, answer: &Answer, bad_signature: bool) -> String {
    let key = format!("{}_response", answer.method.replace('.', "_"));
    let object = answer.object.to_string();
    let mut signature = keys::sign(&sim.keys.alipay_platform, object.as_bytes());
    if bad_signature {
        // A signature over other bytes: well-formed, and wrong.
        signature = keys::sign(&sim.keys.alipay_platform, b"not the response");
    }
    format!(
        "{{{}:{object},\"sign\":{}}}",
        Value::String(key),
        Value::String(signature)
    )
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html;charset=utf-8")], body).into_response()
}

async fn gateway(State(sim): State<SharedSim>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let fault = sim.alipay.call_fault();
    if let Some(f) = fault {
        match f.kind {
            FaultKind::Http500 => {
                return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                    .into_response();
            }
            FaultKind::Delay => tokio::time::sleep(f.delay).await,
            _ => {}
        }
    }
    // Common parameters may come in the query string, the rest in the form body.
    let mut params = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .chain(form_urlencoded::parse(&body))
    {
        params.insert(k.into_owned(), v.into_owned());
    }
    let method = params.get("method").cloned().unwrap_or_default();
    let answer = handle(&sim, &method, &params);
    let body = render(
        &sim,
        &answer,
        fault.is_some_and(|f| f.kind == FaultKind::BadSignature),
    );
    match fault.map(|f| (f.kind, f.delay)) {
        Some((FaultKind::Timeout, delay)) => {
            tokio::time::sleep(delay).await;
            json_response(body)
        }
        Some((FaultKind::Malformed, _)) => {
            json_response("<html><body>502 Bad Gateway</body></html>".into())
        }
        _ => json_response(body),
    }
}

pub(crate) fn handle(sim: &Arc<Sim>, method: &str, params: &BTreeMap<String, String>) -> Answer {
    let method_or = if method.is_empty() { "error" } else { method };
    for required in [
        "app_id",
        "method",
        "sign",
        "sign_type",
        "timestamp",
        "charset",
        "version",
    ] {
        if params.get(required).is_none_or(|v| v.is_empty()) {
            return fail(
                method_or,
                "40001",
                "Missing Required Arguments",
                &format!("isv.missing-{}", required.replace('_', "-")),
                &format!("缺少{required}参数"),
            );
        }
    }
    if params.get("sign_type").map(String::as_str) != Some("RSA2") {
        return fail(
            method_or,
            "40002",
            "Invalid Arguments",
            "isv.invalid-signature-type",
            "无效的签名类型",
        );
    }
    let signed = signing_string(params, &["sign"]);
    if !keys::verify(&sim.keys.alipay_app, signed.as_bytes(), &params["sign"]) {
        return fail(
            method_or,
            "40002",
            "Invalid Arguments",
            "isv.invalid-signature",
            "验签出错",
        );
    }
    let biz: Value = match params.get("biz_content").map(|b| serde_json::from_str(b)) {
        Some(Ok(v @ Value::Object(_))) => v,
        _ => {
            return fail(
                method,
                "40002",
                "Invalid Arguments",
                "isv.invalid-biz-content",
                "biz_content 不是 JSON 对象",
            );
        }
    };
    let app_id = params["app_id"].clone();
    if method == crate::alipay_bills::METHOD {
        return crate::alipay_bills::download_url(sim, &app_id, &biz);
    }
    let notify_url = params.get("notify_url").filter(|u| !u.is_empty()).cloned();
    // Sub-merchant onboarding and settlement accounts (`alipay_onboarding.rs`).
    if let Some(answer) =
        crate::alipay_onboarding::handle(sim, method, &app_id, &biz, notify_url.as_deref())
    {
        return answer;
    }
    let text = |name: &str| {
        biz.get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let out_trade_no = text("out_trade_no");
    // A platform's trade for one of its 直付通 sub-merchants is booked to the sub-merchant.
    let sub_merchant = if matches!(method, "alipay.trade.precreate" | "alipay.trade.pay") {
        match crate::alipay_onboarding::trade_sub_merchant(sim, method, &app_id, &biz) {
            Ok(sub_merchant) => sub_merchant,
            Err(refused) => return refused,
        }
    } else {
        None
    };
    let mut ledger = sim.alipay.ledger.lock().expect("ledger lock");
    let now = now_ms();
    if let Some(order) = ledger.orders.get_mut(&out_trade_no) {
        order.advance(now);
    }
    // An order belongs to the app that created it.
    if ledger
        .orders
        .get(&out_trade_no)
        .is_some_and(|o| o.merchant != app_id)
    {
        return business_error(method, "ACQ.TRADE_NOT_EXIST", "交易不存在");
    }
    match method {
        "alipay.trade.precreate" | "alipay.trade.pay" => {
            let Some(amount) = fen(&text("total_amount")).filter(|a| *a > 0) else {
                return fail(
                    method,
                    "40002",
                    "Invalid Arguments",
                    "isv.invalid-parameter",
                    "total_amount 无效",
                );
            };
            if out_trade_no.is_empty() || out_trade_no.len() > 64 {
                return fail(
                    method,
                    "40002",
                    "Invalid Arguments",
                    "isv.invalid-parameter",
                    "out_trade_no 无效",
                );
            }
            if let Some(existing) = ledger.orders.get(&out_trade_no) {
                return repeated_create(method, existing, amount, sub_merchant.as_deref());
            }
            let trade_no = format!(
                "2026{}",
                keys::random_token(24)
                    .to_ascii_lowercase()
                    .replace(|c: char| c.is_ascii_alphabetic(), "7")
            );
            let mut order = Order {
                merchant: app_id,
                out_trade_no: out_trade_no.clone(),
                app_id: None,
                trade_no,
                kind: "qr",
                amount_minor: amount,
                currency: "CNY".into(),
                description: text("subject"),
                status: OrderStatus::WaitingForPayer,
                qr_code: None,
                auth_code: None,
                payer: None,
                payer_id: None,
                notify_url,
                created_ms: now,
                paid_ms: None,
                confirms_at_ms: None,
                expires_at_ms: timeout_ms(&text("timeout_express")).map(|t| now + t),
                charges: 0,
                refunds: BTreeMap::new(),
                notifications_sent: 0,
                sub_merchant,
            };
            if method == "alipay.trade.precreate" {
                let qr = format!(
                    "https://qr.alipay.com/{}",
                    keys::random_token(22).to_ascii_lowercase()
                );
                order.qr_code = Some(qr.clone());
                ledger.orders.insert(out_trade_no.clone(), order);
                return ok(method, json!({"out_trade_no": out_trade_no, "qr_code": qr}));
            }
            let auth_code = text("auth_code");
            if text("scene") != "bar_code" || !is_alipay_code(&auth_code) {
                return business_error(
                    method,
                    "ACQ.PAYMENT_AUTH_CODE_INVALID",
                    "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款",
                );
            }
            let payer = Payer::from_code(&auth_code);
            order.kind = "code";
            order.auth_code = Some(auth_code);
            order.payer = Some(payer);
            order.expires_at_ms = None;
            let answer = match payer {
                Payer::Pays | Payer::PaysBehindSystemError => {
                    order.pay(now);
                    if payer == Payer::PaysBehindSystemError {
                        fail(
                            method,
                            "20000",
                            "Service Currently Unavailable",
                            "ACQ.SYSTEM_ERROR",
                            "系统异常",
                        )
                    } else {
                        ok(method, trade_fields(&order))
                    }
                }
                Payer::InsufficientBalance => {
                    order.status = OrderStatus::Failed;
                    business_error(method, "ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足")
                }
                Payer::InvalidCode => {
                    return business_error(
                        method,
                        "ACQ.PAYMENT_AUTH_CODE_INVALID",
                        "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款",
                    );
                }
                Payer::ConfirmsLater | Payer::NeverConfirms => {
                    order.status = OrderStatus::UserPaying;
                    if payer == Payer::ConfirmsLater {
                        order.confirms_at_ms =
                            Some(now + sim.timings.confirm_after.as_millis() as i64);
                    }
                    Answer {
                        method: method.to_owned(),
                        object: json!({"code": "10003", "msg": "order success pay inprocess",
                            "out_trade_no": order.out_trade_no, "trade_no": order.trade_no,
                            "total_amount": yuan(order.amount_minor)}),
                    }
                }
            };
            ledger.orders.insert(out_trade_no, order);
            answer
        }
        "alipay.trade.query" => match ledger.orders.get(&out_trade_no) {
            None => business_error(method, "ACQ.TRADE_NOT_EXIST", "交易不存在"),
            Some(order) => ok(method, trade_fields(order)),
        },
        "alipay.trade.close" => match ledger.orders.get_mut(&out_trade_no) {
            None => business_error(method, "ACQ.TRADE_NOT_EXIST", "交易不存在"),
            Some(order) => match order.status {
                OrderStatus::WaitingForPayer | OrderStatus::UserPaying => {
                    order.status = OrderStatus::Closed;
                    ok(
                        method,
                        json!({"out_trade_no": order.out_trade_no, "trade_no": order.trade_no}),
                    )
                }
                OrderStatus::Paid => {
                    business_error(method, "ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
                }
                _ => ok(
                    method,
                    json!({"out_trade_no": order.out_trade_no, "trade_no": order.trade_no}),
                ),
            },
        },
        "alipay.trade.cancel" => match ledger.orders.get_mut(&out_trade_no) {
            // Nothing to cancel: Alipay answers success (the order can no longer be paid).
            None => ok(
                method,
                json!({"out_trade_no": out_trade_no, "retry_flag": "N", "action": "close"}),
            ),
            Some(order) => {
                let action = match order.status {
                    OrderStatus::Paid => {
                        // Cancelling a paid face-to-face trade refunds it in full.
                        let refund_no = format!("cancel_{}", order.out_trade_no);
                        let remaining = order.amount_minor - order.refunded_minor();
                        order.refunds.entry(refund_no.clone()).or_insert(Refund {
                            out_refund_no: refund_no,
                            refund_id: keys::random_token(16),
                            amount_minor: remaining,
                            status: RefundStatus::Succeeded,
                            executions: 1,
                            created_ms: now,
                            completes_at_ms: None,
                            notify_url: None,
                        });
                        order.status = OrderStatus::Closed;
                        "refund"
                    }
                    OrderStatus::WaitingForPayer | OrderStatus::UserPaying => {
                        order.status = if order.kind == "code" {
                            OrderStatus::Revoked
                        } else {
                            OrderStatus::Closed
                        };
                        "close"
                    }
                    _ => "close",
                };
                ok(
                    method,
                    json!({"out_trade_no": order.out_trade_no, "trade_no": order.trade_no,
                    "retry_flag": "N", "action": action}),
                )
            }
        },
        "alipay.trade.refund" => {
            let out_request_no = {
                let given = text("out_request_no");
                if given.is_empty() {
                    out_trade_no.clone()
                } else {
                    given
                }
            };
            let Some(amount) = fen(&text("refund_amount")).filter(|a| *a > 0) else {
                return fail(
                    method,
                    "40002",
                    "Invalid Arguments",
                    "isv.invalid-parameter",
                    "refund_amount 无效",
                );
            };
            let refund_after = sim.timings.refund_after.as_millis() as i64;
            match ledger.orders.get_mut(&out_trade_no) {
                None => business_error(method, "ACQ.TRADE_NOT_EXIST", "交易不存在"),
                Some(order) if order.status != OrderStatus::Paid => {
                    business_error(method, "ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
                }
                Some(order) => {
                    if let Some(existing) = order.refunds.get(&out_request_no) {
                        if existing.amount_minor != amount {
                            return business_error(
                                method,
                                "ACQ.REFUND_AMT_RESTRICTION",
                                "同一退款请求号金额不一致",
                            );
                        }
                        // A repeated request: answered again, no money moves (fund_change N).
                        return ok(method, refund_fields(order, "N"));
                    }
                    if order.refunded_minor() + amount > order.amount_minor {
                        return business_error(
                            method,
                            "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                            "退款金额超限",
                        );
                    }
                    let processing = amount % 100 == 72;
                    order.refunds.insert(
                        out_request_no.clone(),
                        Refund {
                            out_refund_no: out_request_no,
                            refund_id: keys::random_token(16),
                            amount_minor: amount,
                            status: if processing {
                                RefundStatus::Processing
                            } else {
                                RefundStatus::Succeeded
                            },
                            executions: 1,
                            created_ms: now,
                            completes_at_ms: processing.then_some(now + refund_after),
                            notify_url: None,
                        },
                    );
                    ok(
                        method,
                        refund_fields(order, if processing { "N" } else { "Y" }),
                    )
                }
            }
        }
        "alipay.trade.fastpay.refund.query" => {
            let out_request_no = text("out_request_no");
            match ledger.orders.get(&out_trade_no) {
                None => business_error(method, "ACQ.TRADE_NOT_EXIST", "交易不存在"),
                Some(order) => match order.refunds.get(&out_request_no) {
                    // Unknown or still processing: success without refund_status.
                    Some(refund) if refund.status == RefundStatus::Succeeded => ok(
                        method,
                        json!({
                            "out_trade_no": order.out_trade_no, "trade_no": order.trade_no,
                            "out_request_no": refund.out_refund_no,
                            "total_amount": yuan(order.amount_minor),
                            "refund_amount": yuan(refund.amount_minor),
                            "refund_status": "REFUND_SUCCESS",
                            "gmt_refund_pay": beijing_time(refund.created_ms),
                        }),
                    ),
                    _ => ok(
                        method,
                        json!({"out_trade_no": order.out_trade_no, "trade_no": order.trade_no,
                        "out_request_no": out_request_no}),
                    ),
                },
            }
        }
        _ => fail(
            method_or,
            "40002",
            "Invalid Arguments",
            "isv.invalid-method",
            "不存在的方法名",
        ),
    }
}

/// `5m`, `2h`, `1d`, `90c` (Alipay's timeout_express) in ms; 90m without one.
fn timeout_ms(text: &str) -> Option<i64> {
    if text.is_empty() {
        return Some(90 * 60_000);
    }
    let (number, unit) = text.split_at(text.len() - 1);
    let n: i64 = number.parse().ok()?;
    Some(match unit {
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" | "c" => n * 86_400_000,
        _ => return None,
    })
}

fn repeated_create(
    method: &str,
    existing: &Order,
    amount: i64,
    sub_merchant: Option<&str>,
) -> Answer {
    if existing.amount_minor != amount || existing.sub_merchant.as_deref() != sub_merchant {
        return business_error(method, "ACQ.CONTEXT_INCONSISTENT", "参数不一致");
    }
    match (method, existing.status) {
        (_, OrderStatus::Paid) => business_error(method, "ACQ.TRADE_HAS_SUCCESS", "交易已被支付"),
        (_, OrderStatus::Closed | OrderStatus::Revoked | OrderStatus::Failed) => {
            business_error(method, "ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
        }
        ("alipay.trade.precreate", _) => ok(
            method,
            json!({"out_trade_no": existing.out_trade_no,
            "qr_code": existing.qr_code}),
        ),
        _ => Answer {
            method: method.to_owned(),
            object: json!({"code": "10003", "msg": "order success pay inprocess",
                "out_trade_no": existing.out_trade_no, "trade_no": existing.trade_no}),
        },
    }
}

fn trade_status(order: &Order) -> &'static str {
    match order.status {
        OrderStatus::WaitingForPayer | OrderStatus::UserPaying => "WAIT_BUYER_PAY",
        OrderStatus::Paid if order.refunded_minor() >= order.amount_minor => "TRADE_CLOSED",
        OrderStatus::Paid => "TRADE_SUCCESS",
        OrderStatus::Closed | OrderStatus::Revoked | OrderStatus::Failed => "TRADE_CLOSED",
    }
}

fn trade_fields(order: &Order) -> Value {
    let mut fields = json!({
        "out_trade_no": order.out_trade_no,
        "trade_no": order.trade_no,
        "trade_status": trade_status(order),
        "total_amount": yuan(order.amount_minor),
    });
    if order.status == OrderStatus::Paid {
        fields["buyer_logon_id"] = json!("sim***@example.com");
        fields["buyer_user_id"] = json!(order.payer_id);
        fields["receipt_amount"] = json!(yuan(order.amount_minor));
        fields["gmt_payment"] = json!(beijing_time(order.paid_ms.unwrap_or(order.created_ms)));
        fields["send_pay_date"] = fields["gmt_payment"].clone();
    }
    fields
}

fn refund_fields(order: &Order, fund_change: &str) -> Value {
    json!({
        "out_trade_no": order.out_trade_no,
        "trade_no": order.trade_no,
        "buyer_logon_id": "sim***@example.com",
        "fund_change": fund_change,
        "refund_fee": yuan(order.refunded_minor()),
        "gmt_refund_pay": beijing_time(now_ms()),
    })
}

/// The trade notice for a paid order (form post, RSA2), if it gave a notify URL.
pub fn payment_notice(sim: &Sim, order: &Order) -> Option<(Notice, &'static [u64])> {
    let url = order.notify_url.clone()?;
    let now = now_ms();
    let mut params: BTreeMap<String, String> = [
        ("notify_time", beijing_time(now)),
        ("notify_type", "trade_status_sync".into()),
        ("notify_id", keys::random_token(32).to_ascii_lowercase()),
        ("app_id", order.merchant.clone()),
        ("charset", "utf-8".into()),
        ("version", "1.0".into()),
        ("sign_type", "RSA2".into()),
        ("trade_no", order.trade_no.clone()),
        ("out_trade_no", order.out_trade_no.clone()),
        ("trade_status", trade_status(order).into()),
        ("total_amount", yuan(order.amount_minor)),
        ("receipt_amount", yuan(order.amount_minor)),
        ("buyer_id", order.payer_id.clone().unwrap_or_default()),
        ("buyer_logon_id", "sim***@example.com".into()),
        ("subject", order.description.clone()),
        ("gmt_create", beijing_time(order.created_ms)),
        ("gmt_payment", beijing_time(order.paid_ms.unwrap_or(now))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let signed = signing_string(&params, &["sign", "sign_type"]);
    params.insert(
        "sign".into(),
        keys::sign(&sim.keys.alipay_platform, signed.as_bytes()),
    );
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    Some((
        Notice {
            url,
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            )],
            body: body.into_bytes(),
            acknowledged: |status, text| status == 200 && text.trim() == "success",
        },
        ALIPAY_SCHEDULE_S,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_convert_exactly_both_ways() {
        assert_eq!(fen("12.50"), Some(1250));
        assert_eq!(fen("0.01"), Some(1));
        assert_eq!(fen("7"), Some(700));
        assert_eq!(fen("7.5"), Some(750));
        for bad in ["", ".5", "1.234", "-1", "1e3", "abc", "12345678901.00"] {
            assert_eq!(fen(bad), None, "{bad}");
        }
        assert_eq!(yuan(1250), "12.50");
        assert_eq!(yuan(5), "0.05");
    }

    #[test]
    fn signing_string_sorts_and_skips_empty_and_excluded() {
        let params: BTreeMap<String, String> = [
            ("b", "2"),
            ("a", "1"),
            ("sign", "x"),
            ("c", ""),
            ("sign_type", "RSA2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(signing_string(&params, &["sign"]), "a=1&b=2&sign_type=RSA2");
        assert_eq!(signing_string(&params, &["sign", "sign_type"]), "a=1&b=2");
    }

    #[test]
    fn payment_codes_follow_the_prefix_rule() {
        assert!(is_alipay_code("286754308888888888"));
        assert!(is_alipay_code("3012345678901234"));
        assert!(!is_alipay_code("246754308888888888"));
        assert!(!is_alipay_code("28675430888"));
        assert!(!is_alipay_code("28675430888888888x"));
    }

    #[test]
    fn beijing_time_is_utc_plus_8() {
        // 2026-11-26T16:30:00Z is 2026-11-27 00:30:00 in Beijing.
        assert_eq!(beijing_time(1_795_710_600_000), "2026-11-27 00:30:00");
    }
}
