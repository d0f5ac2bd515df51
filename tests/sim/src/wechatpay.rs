//! WeChat Pay API v3 at its own paths (`/v3/...`, and under `/wechatpay` for older configs):
//! JSON over HTTP, requests authenticated by `Authorization: WECHATPAY2-SHA256-RSA2048
//! mchid=..,nonce_str=..,signature=..,timestamp=..,serial_no=..` (SHA256withRSA over
//! `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`, URL being the path and query as requested, or
//! under the prefix the path relative to it), answers signed over `TIMESTAMP\nNONCE\nBODY\n`
//! with the platform key (`Wechatpay-Timestamp`, `-Nonce`, `-Signature`, `-Serial`), amounts
//! in fen, errors as `{"code", "message"}`, notifications whose `resource` is AES-256-GCM
//! under the APIv3 key, and the platform certificate download (`GET /v3/certificates`).
//! A service provider's orders for its sub-merchants (`/v3/pay/partner/transactions/...`,
//! `sp_mchid` / `sub_mchid`, refunds naming the `sub_mchid`) are served by the same handlers:
//! the sub-merchant must be one the caller onboarded and whose applyment is finished, and
//! the order is booked to it. Service-provider onboarding (applyments and settlement
//! accounts) is routed here too and served by `wechatpay_onboarding.rs`.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::faults::FaultKind;
use crate::keys;
use crate::ledger::{Order, OrderStatus, Payer, Refund, RefundStatus, now_ms};
use crate::notifier::{Notice, WECHATPAY_SCHEDULE_S};
use crate::state::{SharedSim, Sim};
use crate::wechatpay_onboarding;

/// The largest media-upload form read: an image of up to 2 MiB (checked after) and its form.
const MEDIA_FORM_BYTES_MAX: usize = 3 << 20;

/// The prefix the simulator also serves WeChat Pay under, for configs written before it
/// served the real paths.
pub const PREFIX: &str = "/wechatpay";

/// WeChat Pay's paths (`/v3/...`); `main.rs` mounts them at the root and under [`PREFIX`].
pub fn router() -> Router<SharedSim> {
    Router::new()
        .route("/v3/certificates", get(certificates))
        .nest("/v3/pay/transactions", transactions())
        .nest("/v3/pay/partner/transactions", transactions())
        .route("/v3/refund/domestic/refunds", post(refund))
        .route(
            "/v3/bill/tradebill",
            get(crate::wechatpay_bills::trade_bill),
        )
        .route(
            "/v3/billdownload/file",
            get(crate::wechatpay_bills::download),
        )
        .route(
            "/v3/refund/domestic/refunds/{out_refund_no}",
            get(query_refund),
        )
        .route(
            "/v3/merchant/media/upload",
            // An image of up to 2 MiB and its form around it.
            post(media_upload).layer(DefaultBodyLimit::max(MEDIA_FORM_BYTES_MAX)),
        )
        .route("/v3/applyment4sub/applyment/", post(applyment))
        .route(
            "/v3/applyment4sub/applyment/business_code/{business_code}",
            get(query_applyment),
        )
        .route(
            "/v3/apply4sub/sub_merchants/{sub_mchid}/modify-settlement",
            post(modify_settlement),
        )
        .route(
            "/v3/apply4sub/sub_merchants/{sub_mchid}/application/{application_no}",
            get(query_settlement_application),
        )
        .route(
            "/v3/apply4sub/sub_merchants/{sub_mchid}/settlement",
            get(query_settlement),
        )
}

/// Orders, under `/v3/pay/transactions` (a merchant's own) and
/// `/v3/pay/partner/transactions` (a service provider's for a sub-merchant: [`is_partner`]).
fn transactions() -> Router<SharedSim> {
    Router::new()
        .route("/native", post(native))
        .route("/codepay", post(codepay))
        .route("/out-trade-no/{out_trade_no}", get(query))
        .route("/id/{transaction_id}", get(query_by_transaction_id))
        .route("/out-trade-no/{out_trade_no}/close", post(close))
        .route("/out-trade-no/{out_trade_no}/reverse", post(reverse))
}

/// Whether a request is a service provider's for one of its sub-merchants.
fn is_partner(uri: &axum::http::Uri) -> bool {
    uri.path().contains("/v3/pay/partner/")
}

/// RFC 3339 with +08:00, WeChat Pay's time format.
pub fn rfc3339_beijing(ms: i64) -> String {
    let utc = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let t = utc.to_offset(time::UtcOffset::from_hms(8, 0, 0).expect("a valid offset"));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+08:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses `2026-11-26T18:00:00+08:00` into unix ms.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The parameters of an `Authorization` header.
fn authorization_params(value: &str) -> Option<BTreeMap<String, String>> {
    let rest = value.strip_prefix("WECHATPAY2-SHA256-RSA2048 ")?;
    let mut params = BTreeMap::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        params.insert(k.to_owned(), v.trim_matches('"').to_owned());
    }
    Some(params)
}

/// A call, authenticated: the merchant (mchid) and the parsed JSON body.
pub(crate) struct Call {
    pub(crate) mchid: String,
    pub(crate) body: Value,
}

pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> (StatusCode, Value) {
    (status, json!({"code": code, "message": message}))
}

/// Checks the request's signature; the error answer otherwise.
pub(crate) fn authenticate(
    sim: &Sim,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Call, (StatusCode, Value)> {
    let unauthorized = |message: &str| error(StatusCode::UNAUTHORIZED, "SIGN_ERROR", message);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(authorization_params)
        .ok_or_else(|| unauthorized("Authorization 头缺失或格式错误"))?;
    let field = |name: &str| auth.get(name).cloned().unwrap_or_default();
    let timestamp: i64 = field("timestamp")
        .parse()
        .map_err(|_| unauthorized("timestamp 无效"))?;
    if (now_ms() / 1000 - timestamp).abs() > 300 {
        return Err(unauthorized("请求时间戳与当前时间相差过大"));
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    // Under the `/wechatpay` prefix, a client may sign the path as requested or, as SDKs do
    // with a base URL, the path relative to it (`/v3/...`, the path the real API has).
    let relative = path.strip_prefix(PREFIX).filter(|p| p.starts_with("/v3/"));
    let signed_over = |path: &str| {
        let message = format!(
            "{method}\n{path}\n{timestamp}\n{}\n{}\n",
            field("nonce_str"),
            String::from_utf8_lossy(body)
        );
        keys::verify(
            &sim.keys.wechatpay_merchant,
            message.as_bytes(),
            &field("signature"),
        )
    };
    if !signed_over(path) && !relative.is_some_and(signed_over) {
        return Err(unauthorized("签名错误"));
    }
    let mchid = field("mchid");
    let parsed = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice::<Value>(body)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "PARAM_ERROR",
                    "请求体不是 JSON 对象",
                )
            })?
    };
    for field in ["mchid", "sp_mchid"] {
        if let Some(body_mchid) = parsed.get(field).and_then(Value::as_str)
            && body_mchid != mchid
        {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "PARAM_ERROR",
                &format!("{field} 与签名不一致"),
            ));
        }
    }
    Ok(Call {
        mchid,
        body: parsed,
    })
}

/// Which key id an answer names in `Wechatpay-Serial`: the platform certificate's serial
/// when the request named it in its own `Wechatpay-Serial` (a client that trusts the
/// certificate), the platform public key id otherwise (what WeChat Pay gives merchants
/// today). Both name the same key.
fn answer_serial<'a>(sim: &'a Sim, headers: &HeaderMap) -> &'a str {
    let certificate = &sim.keys.wechatpay_certificate.serial;
    let named = headers
        .get("wechatpay-serial")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if named.is_some_and(|n| n.eq_ignore_ascii_case(certificate)) {
        certificate
    } else {
        &sim.wechatpay_public_key_id
    }
}

/// Signs and sends an answer, applying the call's fault.
async fn answer(
    sim: &SharedSim,
    fault: Option<crate::faults::Fault>,
    serial: &str,
    status: StatusCode,
    body: Option<Value>,
) -> Response {
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    if let Some(f) = fault {
        match f.kind {
            FaultKind::Timeout => tokio::time::sleep(f.delay).await,
            FaultKind::Malformed => {
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "text/html")],
                    "<html>upstream error</html>",
                )
                    .into_response();
            }
            _ => {}
        }
    }
    let timestamp = (now_ms() / 1000).to_string();
    let nonce = keys::random_token(32);
    let signed = if fault.is_some_and(|f| f.kind == FaultKind::BadSignature) {
        format!("{timestamp}\n{nonce}\n{text} tampered\n")
    } else {
        format!("{timestamp}\n{nonce}\n{text}\n")
    };
    let signature = keys::sign(&sim.keys.wechatpay_platform, signed.as_bytes());
    let mut response = (status, text).into_response();
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    };
    set("content-type", "application/json");
    set("wechatpay-timestamp", &timestamp);
    set("wechatpay-nonce", &nonce);
    set("wechatpay-signature", &signature);
    set("wechatpay-serial", serial);
    set("request-id", &keys::random_token(24));
    response
}

/// Runs a handler body with the call's fault and authentication around it.
pub(crate) async fn serve(
    sim: SharedSim,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
    handle: impl FnOnce(&Sim, Call) -> (StatusCode, Option<Value>),
) -> Response {
    let fault = sim.wechatpay.call_fault();
    if let Some(f) = fault {
        match f.kind {
            FaultKind::Http500 => {
                let (status, body) = error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "SYSTEM_ERROR",
                    "系统错误",
                );
                return answer(
                    &sim,
                    None,
                    answer_serial(&sim, &headers),
                    status,
                    Some(body),
                )
                .await;
            }
            FaultKind::Delay => tokio::time::sleep(f.delay).await,
            _ => {}
        }
    }
    let (status, body) = match authenticate(&sim, &method, &uri, &headers, &body) {
        Ok(call) => handle(&sim, call),
        Err((status, body)) => (status, Some(body)),
    };
    answer(&sim, fault, answer_serial(&sim, &headers), status, body).await
}

fn text(body: &Value, pointer: &str) -> String {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn is_wechat_code(code: &str) -> bool {
    code.len() == 18
        && code.bytes().all(|b| b.is_ascii_digit())
        && code.as_bytes()[0] == b'1'
        && (b'0'..=b'5').contains(&code.as_bytes()[1])
}

fn trade_state(order: &Order) -> &'static str {
    match order.status {
        OrderStatus::WaitingForPayer => "NOTPAY",
        OrderStatus::UserPaying => "USERPAYING",
        OrderStatus::Paid if !order.refunds.is_empty() => "REFUND",
        OrderStatus::Paid => "SUCCESS",
        OrderStatus::Closed => "CLOSED",
        OrderStatus::Revoked => "REVOKED",
        OrderStatus::Failed => "PAYERROR",
    }
}

/// An order as WeChat Pay describes it: a sub-merchant's names its service provider
/// (`sp_appid`, `sp_mchid`) and itself (`sub_mchid`), its payer by `sp_openid`.
fn transaction(order: &Order, appid: &str) -> Value {
    let mut t = json!({
        "out_trade_no": order.out_trade_no,
        "transaction_id": order.trade_no,
        "trade_type": if order.kind == "code" { "MICROPAY" } else { "NATIVE" },
        "trade_state": trade_state(order),
        "trade_state_desc": match order.status {
            OrderStatus::Paid => "支付成功",
            OrderStatus::UserPaying => "需要用户输入支付密码",
            OrderStatus::WaitingForPayer => "未支付",
            OrderStatus::Failed => "支付失败",
            OrderStatus::Revoked => "已撤销",
            OrderStatus::Closed => "已关闭",
        },
        "amount": {"total": order.amount_minor, "currency": order.currency},
    });
    owner(&mut t, order, Some(appid));
    let openid = if order.sub_merchant.is_some() {
        "sp_openid"
    } else {
        "openid"
    };
    if order.status == OrderStatus::Paid {
        t["bank_type"] = json!("OTHERS");
        t["success_time"] = json!(rfc3339_beijing(order.paid_ms.unwrap_or(order.created_ms)));
        t["payer"] = json!({openid: order.payer_id});
        t["amount"]["payer_total"] = json!(order.amount_minor);
        t["amount"]["payer_currency"] = json!(order.currency);
    }
    t
}

/// Names the order's owner in `answer`: `appid` (when given) and `mchid`, or for a
/// sub-merchant's order its service provider's `sp_appid` and `sp_mchid` and its `sub_mchid`.
fn owner(answer: &mut Value, order: &Order, appid: Option<&str>) {
    let (app, merchant) = match &order.sub_merchant {
        None => ("appid", "mchid"),
        Some(sub_mchid) => {
            answer["sub_mchid"] = json!(sub_mchid);
            ("sp_appid", "sp_mchid")
        }
    };
    if let Some(appid) = appid {
        answer[app] = json!(appid);
    }
    answer[merchant] = json!(order.merchant);
}

/// The sub-merchant a call is for: `None` for a merchant's own order; for a partner call,
/// `sub_mchid` (from the body or the query), which must be a sub-merchant the caller
/// onboarded and whose applyment is finished.
pub(crate) fn sub_merchant(
    sim: &Sim,
    call: &Call,
    partner: bool,
    sub_mchid: &str,
) -> Result<Option<String>, (StatusCode, Option<Value>)> {
    if !partner {
        return Ok(None);
    }
    if sub_mchid.is_empty() {
        let (status, body) = error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "sub_mchid 必填");
        return Err((status, Some(body)));
    }
    let onboarding = sim.wechatpay.onboarding.lock().expect("onboarding lock");
    wechatpay_onboarding::collecting_sub_merchant(&onboarding, &call.mchid, sub_mchid)?;
    Ok(Some(sub_mchid.to_owned()))
}

/// The app id field a call names: `appid`, or a service provider's `sp_appid`.
fn appid_field(partner: bool) -> &'static str {
    if partner { "/sp_appid" } else { "/appid" }
}

/// Validates the common fields of a new order, booked to `sub_merchant` when a service
/// provider places it; the error answer otherwise.
fn new_order(
    call: &Call,
    kind: &'static str,
    sub_merchant: Option<String>,
) -> Result<Order, (StatusCode, Value)> {
    let b = &call.body;
    let out_trade_no = text(b, "/out_trade_no");
    let total = b
        .pointer("/amount/total")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let currency = b
        .pointer("/amount/currency")
        .and_then(Value::as_str)
        .unwrap_or("CNY");
    let appid = appid_field(sub_merchant.is_some());
    if text(b, appid).is_empty() || text(b, "/description").is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            &format!("{} 和 description 必填", &appid[1..]),
        ));
    }
    if out_trade_no.len() < 6 || out_trade_no.len() > 32 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "out_trade_no 长度须为 6-32",
        ));
    }
    if total <= 0 || currency != "CNY" {
        return Err(error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "amount 无效"));
    }
    let now = now_ms();
    Ok(Order {
        merchant: call.mchid.clone(),
        sub_merchant,
        out_trade_no,
        app_id: Some(text(b, appid)),
        trade_no: format!(
            "4200{}",
            keys::random_token(24).replace(|c: char| c.is_ascii_alphabetic(), "3")
        ),
        kind,
        amount_minor: total,
        currency: currency.to_owned(),
        description: text(b, "/description"),
        status: OrderStatus::WaitingForPayer,
        qr_code: None,
        auth_code: None,
        payer: None,
        payer_id: None,
        notify_url: Some(text(b, "/notify_url")).filter(|u| !u.is_empty()),
        created_ms: now,
        paid_ms: None,
        confirms_at_ms: None,
        expires_at_ms: Some(parse_rfc3339(&text(b, "/time_expire")).unwrap_or(now + 2 * 3_600_000)),
        charges: 0,
        refunds: BTreeMap::new(),
        notifications_sent: 0,
    })
}

fn repeated(existing: &Order, fresh: &Order) -> Option<(StatusCode, Option<Value>)> {
    if existing.amount_minor != fresh.amount_minor
        || existing.merchant != fresh.merchant
        || existing.sub_merchant != fresh.sub_merchant
    {
        return Some((
            StatusCode::BAD_REQUEST,
            Some(
                error(
                    StatusCode::BAD_REQUEST,
                    "OUT_TRADE_NO_USED",
                    "商户订单号重复",
                )
                .1,
            ),
        ));
    }
    match existing.status {
        OrderStatus::Paid => Some((
            StatusCode::BAD_REQUEST,
            Some(error(StatusCode::BAD_REQUEST, "ORDERPAID", "该订单已支付").1),
        )),
        OrderStatus::Closed | OrderStatus::Revoked | OrderStatus::Failed => Some((
            StatusCode::BAD_REQUEST,
            Some(error(StatusCode::BAD_REQUEST, "ORDERCLOSED", "订单已关闭").1),
        )),
        _ => None,
    }
}

async fn native(
    State(sim): State<SharedSim>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let partner = is_partner(&uri);
    serve(sim, method, uri, headers, body, move |sim, call| {
        let sub = match sub_merchant(sim, &call, partner, &text(&call.body, "/sub_mchid")) {
            Ok(sub) => sub,
            Err(answer) => return answer,
        };
        let fresh = match new_order(&call, "qr", sub) {
            Ok(order) => order,
            Err((status, body)) => return (status, Some(body)),
        };
        let mut ledger = sim.wechatpay.ledger.lock().expect("ledger lock");
        if let Some(existing) = ledger.orders.get_mut(&fresh.out_trade_no) {
            existing.advance(now_ms());
            if let Some(refused) = repeated(existing, &fresh) {
                return refused;
            }
            return (StatusCode::OK, Some(json!({"code_url": existing.qr_code})));
        }
        let mut order = fresh;
        let code_url = format!("weixin://wxpay/bizpayurl?pr={}", keys::random_token(7));
        order.qr_code = Some(code_url.clone());
        ledger.orders.insert(order.out_trade_no.clone(), order);
        (StatusCode::OK, Some(json!({"code_url": code_url})))
    })
    .await
}

async fn codepay(
    State(sim): State<SharedSim>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let partner = is_partner(&uri);
    serve(sim, method, uri, headers, body, move |sim, call| {
        let sub = match sub_merchant(sim, &call, partner, &text(&call.body, "/sub_mchid")) {
            Ok(sub) => sub,
            Err(answer) => return answer,
        };
        let mut order = match new_order(&call, "code", sub) {
            Ok(order) => order,
            Err((status, body)) => return (status, Some(body)),
        };
        let appid = text(&call.body, appid_field(partner));
        let auth_code = text(&call.body, "/payer/auth_code");
        let mut ledger = sim.wechatpay.ledger.lock().expect("ledger lock");
        let now = now_ms();
        if let Some(existing) = ledger.orders.get_mut(&order.out_trade_no) {
            existing.advance(now);
            if let Some(refused) = repeated(existing, &order) {
                return refused;
            }
            return (
                StatusCode::ACCEPTED,
                Some(error(StatusCode::ACCEPTED, "USERPAYING", "需要用户输入支付密码").1),
            );
        }
        if !is_wechat_code(&auth_code) {
            return (
                StatusCode::BAD_REQUEST,
                Some(
                    error(
                        StatusCode::BAD_REQUEST,
                        "AUTH_CODE_INVALID",
                        "付款码无效，请重新扫码",
                    )
                    .1,
                ),
            );
        }
        let payer = Payer::from_code(&auth_code);
        order.auth_code = Some(auth_code);
        order.payer = Some(payer);
        order.expires_at_ms = None;
        let result = match payer {
            Payer::InvalidCode => {
                return (
                    StatusCode::BAD_REQUEST,
                    Some(
                        error(
                            StatusCode::BAD_REQUEST,
                            "AUTH_CODE_INVALID",
                            "付款码无效，请重新扫码",
                        )
                        .1,
                    ),
                );
            }
            Payer::Pays => {
                order.pay(now);
                (StatusCode::OK, Some(transaction(&order, &appid)))
            }
            Payer::PaysBehindSystemError => {
                order.pay(now);
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Some(
                        error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "SYSTEM_ERROR",
                            "系统错误",
                        )
                        .1,
                    ),
                )
            }
            Payer::InsufficientBalance => {
                order.status = OrderStatus::Failed;
                (
                    StatusCode::FORBIDDEN,
                    Some(error(StatusCode::FORBIDDEN, "NOT_ENOUGH", "用户账户余额不足").1),
                )
            }
            Payer::ConfirmsLater | Payer::NeverConfirms => {
                order.status = OrderStatus::UserPaying;
                if payer == Payer::ConfirmsLater {
                    order.confirms_at_ms = Some(now + sim.timings.confirm_after.as_millis() as i64);
                }
                (
                    StatusCode::ACCEPTED,
                    Some(error(StatusCode::ACCEPTED, "USERPAYING", "需要用户输入支付密码").1),
                )
            }
        };
        ledger.orders.insert(order.out_trade_no.clone(), order);
        result
    })
    .await
}

/// The order of `out_trade_no` for this merchant (and sub-merchant), advanced to now.
fn with_order<T>(
    sim: &Sim,
    mchid: &str,
    sub_mchid: Option<&str>,
    out_trade_no: &str,
    f: impl FnOnce(&mut Order) -> T,
) -> Option<T> {
    let mut ledger = sim.wechatpay.ledger.lock().expect("ledger lock");
    let order = ledger
        .orders
        .get_mut(out_trade_no)
        .filter(|o| o.merchant == mchid && o.sub_merchant.as_deref() == sub_mchid)?;
    order.advance(now_ms());
    Some(f(order))
}

fn not_found(what: &str) -> (StatusCode, Option<Value>) {
    let code = if what == "order" {
        "ORDER_NOT_EXIST"
    } else {
        "RESOURCE_NOT_EXISTS"
    };
    (
        StatusCode::NOT_FOUND,
        Some(error(StatusCode::NOT_FOUND, code, "记录不存在").1),
    )
}

/// A query-string parameter (empty when absent).
pub(crate) fn query_param(uri: &axum::http::Uri, name: &str) -> String {
    uri.query()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name))
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Who a query is for: its `mchid` (or a service provider's `sp_mchid`) parameter must
/// name the merchant that signed it; a partner query also names the `sub_mchid`.
struct Asked {
    partner: bool,
    mchid: String,
    sub_mchid: String,
}

impl Asked {
    fn of(uri: &axum::http::Uri) -> Asked {
        let partner = is_partner(uri);
        Asked {
            partner,
            mchid: query_param(uri, if partner { "sp_mchid" } else { "mchid" }),
            sub_mchid: query_param(uri, "sub_mchid"),
        }
    }

    /// The sub-merchant asked about (`None` for a merchant's own), or the error answer.
    fn sub_merchant(
        &self,
        sim: &Sim,
        call: &Call,
    ) -> Result<Option<String>, (StatusCode, Option<Value>)> {
        if self.mchid != call.mchid {
            let field = if self.partner { "sp_mchid" } else { "mchid" };
            let (status, body) = error(
                StatusCode::BAD_REQUEST,
                "PARAM_ERROR",
                &format!("{field} 与签名不一致"),
            );
            return Err((status, Some(body)));
        }
        sub_merchant(sim, call, self.partner, &self.sub_mchid)
    }
}

/// `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=`: by the merchant's number.
async fn query(
    State(sim): State<SharedSim>,
    Path(out_trade_no): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let asked = Asked::of(&uri);
    serve(sim, method, uri, headers, body, move |sim, call| {
        let sub = match asked.sub_merchant(sim, &call) {
            Ok(sub) => sub,
            Err(answer) => return answer,
        };
        with_order(sim, &call.mchid, sub.as_deref(), &out_trade_no, |order| {
            (StatusCode::OK, Some(transaction(order, "")))
        })
        .unwrap_or_else(|| not_found("order"))
    })
    .await
}

/// `GET /v3/pay/transactions/id/{transaction_id}?mchid=`: by WeChat Pay's own number.
async fn query_by_transaction_id(
    State(sim): State<SharedSim>,
    Path(transaction_id): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let asked = Asked::of(&uri);
    serve(sim, method, uri, headers, body, move |sim, call| {
        let sub = match asked.sub_merchant(sim, &call) {
            Ok(sub) => sub,
            Err(answer) => return answer,
        };
        let mut ledger = sim.wechatpay.ledger.lock().expect("ledger lock");
        let Some(order) = ledger.orders.values_mut().find(|o| {
            o.trade_no == transaction_id && o.merchant == call.mchid && o.sub_merchant == sub
        }) else {
            return not_found("order");
        };
        order.advance(now_ms());
        (StatusCode::OK, Some(transaction(order, "")))
    })
    .await
}

async fn close(
    State(sim): State<SharedSim>,
    Path(out_trade_no): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let partner = is_partner(&uri);
    serve(sim, method, uri, headers, body, move |sim, call| {
        let sub = match sub_merchant(sim, &call, partner, &text(&call.body, "/sub_mchid")) {
            Ok(sub) => sub,
            Err(answer) => return answer,
        };
        with_order(
            sim,
            &call.mchid,
            sub.as_deref(),
            &out_trade_no,
            |order| match order.status {
                OrderStatus::Paid => (
                    StatusCode::BAD_REQUEST,
                    Some(error(StatusCode::BAD_REQUEST, "ORDERPAID", "该订单已支付").1),
                ),
                OrderStatus::WaitingForPayer | OrderStatus::UserPaying => {
                    order.status = OrderStatus::Closed;
                    (StatusCode::NO_CONTENT, None)
                }
                _ => (StatusCode::NO_CONTENT, None),
            },
        )
        .unwrap_or_else(|| not_found("order"))
    })
    .await
}

async fn reverse(
    State(sim): State<SharedSim>,
    Path(out_trade_no): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let partner = is_partner(&uri);
    serve(sim, method, uri, headers, body, move |sim, call| {
        let sub = match sub_merchant(sim, &call, partner, &text(&call.body, "/sub_mchid")) {
            Ok(sub) => sub,
            Err(answer) => return answer,
        };
        let appid = text(&call.body, appid_field(partner));
        with_order(sim, &call.mchid, sub.as_deref(), &out_trade_no, |order| {
            if order.status == OrderStatus::Paid {
                // Reversing a paid order gives the payer the money back.
                let refund_no = format!("reverse_{}", order.out_trade_no);
                let remaining = order.amount_minor - order.refunded_minor();
                order.refunds.entry(refund_no.clone()).or_insert(Refund {
                    out_refund_no: refund_no,
                    refund_id: keys::random_token(16),
                    amount_minor: remaining,
                    status: RefundStatus::Succeeded,
                    executions: 1,
                    created_ms: now_ms(),
                    completes_at_ms: None,
                    notify_url: None,
                });
            }
            if !matches!(order.status, OrderStatus::Closed | OrderStatus::Failed) {
                order.status = OrderStatus::Revoked;
            }
            let mut answer = json!({"out_trade_no": order.out_trade_no});
            owner(&mut answer, order, Some(&appid));
            (StatusCode::OK, Some(answer))
        })
        .unwrap_or_else(|| not_found("order"))
    })
    .await
}

fn refund_object(order: &Order, refund: &Refund) -> Value {
    let mut r = json!({
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": order.trade_no,
        "out_trade_no": order.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": rfc3339_beijing(refund.created_ms),
        "status": match refund.status {
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Succeeded => "SUCCESS",
        },
        "amount": {"total": order.amount_minor, "refund": refund.amount_minor,
                   "payer_total": order.amount_minor, "payer_refund": refund.amount_minor,
                   "currency": order.currency},
    });
    if refund.status == RefundStatus::Succeeded {
        r["success_time"] = json!(rfc3339_beijing(
            refund.completes_at_ms.unwrap_or(refund.created_ms)
        ));
    }
    r
}

async fn refund(
    State(sim): State<SharedSim>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(sim, method, uri, headers, body, |sim, call| {
        let b = &call.body;
        let out_trade_no = text(b, "/out_trade_no");
        let out_refund_no = text(b, "/out_refund_no");
        let amount = b
            .pointer("/amount/refund")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let total = b
            .pointer("/amount/total")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if out_refund_no.is_empty() || out_refund_no.len() > 64 || amount <= 0 {
            return (
                StatusCode::BAD_REQUEST,
                Some(
                    error(
                        StatusCode::BAD_REQUEST,
                        "PARAM_ERROR",
                        "out_refund_no 与 amount.refund 必填",
                    )
                    .1,
                ),
            );
        }
        let notify_url = Some(text(b, "/notify_url")).filter(|u| !u.is_empty());
        let refund_after = sim.timings.refund_after.as_millis() as i64;
        // A service provider refunds its sub-merchant's order by naming the sub-merchant.
        let sub_mchid = text(b, "/sub_mchid");
        let sub = match sub_merchant(sim, &call, !sub_mchid.is_empty(), &sub_mchid) {
            Ok(sub) => sub,
            Err(answer) => return answer,
        };
        // Refunds are found by their merchant order; the merchant is the caller.
        let mut ledger = sim.wechatpay.ledger.lock().expect("ledger lock");
        let Some(order) = ledger
            .orders
            .get_mut(&out_trade_no)
            .filter(|o| o.merchant == call.mchid && o.sub_merchant == sub)
        else {
            return not_found("order");
        };
        order.advance(now_ms());
        if let Some(existing) = order.refunds.get(&out_refund_no) {
            return (StatusCode::OK, Some(refund_object(order, existing)));
        }
        if order.status != OrderStatus::Paid {
            return (
                StatusCode::FORBIDDEN,
                Some(
                    error(
                        StatusCode::FORBIDDEN,
                        "INVALID_REQUEST",
                        "订单状态不允许退款",
                    )
                    .1,
                ),
            );
        }
        if total != order.amount_minor {
            return (
                StatusCode::BAD_REQUEST,
                Some(
                    error(
                        StatusCode::BAD_REQUEST,
                        "PARAM_ERROR",
                        "订单金额与原订单不一致",
                    )
                    .1,
                ),
            );
        }
        if order.refunded_minor() + amount > order.amount_minor {
            return (
                StatusCode::FORBIDDEN,
                Some(
                    error(
                        StatusCode::FORBIDDEN,
                        "NOT_ENOUGH",
                        "退款金额超过订单可退金额",
                    )
                    .1,
                ),
            );
        }
        let now = now_ms();
        let processing = amount % 100 == 72;
        let refund = Refund {
            out_refund_no: out_refund_no.clone(),
            refund_id: format!(
                "5030{}",
                keys::random_token(24).replace(|c: char| c.is_ascii_alphabetic(), "1")
            ),
            amount_minor: amount,
            status: if processing {
                RefundStatus::Processing
            } else {
                RefundStatus::Succeeded
            },
            executions: 1,
            created_ms: now,
            completes_at_ms: processing.then_some(now + refund_after),
            notify_url,
        };
        let answer = refund_object(order, &refund);
        order.refunds.insert(out_refund_no, refund);
        (StatusCode::OK, Some(answer))
    })
    .await
}

async fn query_refund(
    State(sim): State<SharedSim>,
    Path(out_refund_no): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sub_mchid = query_param(&uri, "sub_mchid");
    serve(sim, method, uri, headers, body, move |sim, call| {
        let sub = match sub_merchant(sim, &call, !sub_mchid.is_empty(), &sub_mchid) {
            Ok(sub) => sub,
            Err(answer) => return answer,
        };
        let mut ledger = sim.wechatpay.ledger.lock().expect("ledger lock");
        for order in ledger
            .orders
            .values_mut()
            .filter(|o| o.merchant == call.mchid && o.sub_merchant == sub)
        {
            order.advance(now_ms());
            if let Some(refund) = order.refunds.get(&out_refund_no) {
                return (StatusCode::OK, Some(refund_object(order, refund)));
            }
        }
        not_found("refund")
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Service-provider onboarding (the records and their rules are `wechatpay_onboarding`'s).
// ---------------------------------------------------------------------------------------

/// Whether a request with sensitive fields names the platform public key they are sealed
/// with: `Wechatpay-Serial` must be the simulator's public key id (the fields themselves are
/// opened by [`open_sensitive`]).
fn names_the_public_key(sim: &Sim, headers: &HeaderMap) -> bool {
    headers
        .get("wechatpay-serial")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|serial| serial.trim() == sim.wechatpay_public_key_id)
}

fn serial_refused() -> (StatusCode, Option<Value>) {
    let (status, body) = error(
        StatusCode::BAD_REQUEST,
        "PARAM_ERROR",
        "Wechatpay-Serial 缺失或不是微信支付公钥ID",
    );
    (status, Some(body))
}

/// The fields of an applyment WeChat Pay takes only sealed.
pub(crate) const APPLYMENT_SENSITIVE: &[&str] = &[
    "/contact_info/contact_name",
    "/contact_info/contact_id_number",
    "/contact_info/mobile_phone",
    "/contact_info/contact_email",
    "/subject_info/identity_info/id_card_info/id_card_name",
    "/subject_info/identity_info/id_card_info/id_card_number",
    "/subject_info/identity_info/id_card_info/id_card_address",
    "/subject_info/ubo_info_list/0/ubo_id_doc_name",
    "/subject_info/ubo_info_list/0/ubo_id_doc_number",
    "/subject_info/ubo_info_list/0/ubo_id_doc_address",
    "/subject_info/ubo_info_list/1/ubo_id_doc_name",
    "/subject_info/ubo_info_list/1/ubo_id_doc_number",
    "/subject_info/ubo_info_list/1/ubo_id_doc_address",
    "/subject_info/ubo_info_list/2/ubo_id_doc_name",
    "/subject_info/ubo_info_list/2/ubo_id_doc_number",
    "/subject_info/ubo_info_list/2/ubo_id_doc_address",
    "/subject_info/ubo_info_list/3/ubo_id_doc_name",
    "/subject_info/ubo_info_list/3/ubo_id_doc_number",
    "/subject_info/ubo_info_list/3/ubo_id_doc_address",
    "/bank_account_info/account_name",
    "/bank_account_info/account_number",
];
/// The same for a settlement account change.
pub(crate) const SETTLEMENT_SENSITIVE: &[&str] = &["/account_number", "/account_name"];

/// The body with its sensitive fields opened: each, when present, must be the base64 of an
/// RSA-OAEP (SHA-1) ciphertext under the platform public key, as WeChat Pay requires; a
/// field in clear, or sealed under another key, is refused.
fn open_sensitive(
    sim: &Sim,
    body: &Value,
    pointers: &[&str],
) -> Result<Value, (StatusCode, Option<Value>)> {
    let mut opened = body.clone();
    for pointer in pointers {
        let Some(field) = opened.pointer_mut(pointer) else {
            continue;
        };
        let Some(text) = field.as_str().filter(|t| !t.is_empty()) else {
            continue;
        };
        let clear =
            keys::rsa_oaep_sha1_open(&sim.keys.wechatpay_platform, text).ok_or_else(|| {
                let (status, body) = error(
                    StatusCode::BAD_REQUEST,
                    "PARAM_ERROR",
                    &format!(
                        "{} 须使用微信支付公钥加密",
                        pointer.rsplit('/').next().unwrap_or("")
                    ),
                );
                (status, Some(body))
            })?;
        *field = Value::String(clear);
    }
    Ok(opened)
}

/// The two parts of a media upload: `meta` as sent (the signed text) and `file`.
async fn read_upload(
    form: Result<Multipart, MultipartRejection>,
) -> Result<wechatpay_onboarding::Upload, String> {
    let mut form = form.map_err(|e| format!("请求不是 multipart/form-data: {e}"))?;
    let mut upload = wechatpay_onboarding::Upload::default();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| format!("multipart 数据无法解析: {e}"))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "meta" => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| format!("meta 无法读取: {e}"))?;
                upload.meta = Some(bytes.to_vec());
            }
            "file" => {
                upload.file_name = field.file_name().map(str::to_owned);
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| format!("file 无法读取: {e}"))?;
                upload.file = Some(bytes.to_vec());
            }
            _ => {}
        }
    }
    Ok(upload)
}

/// `POST /v3/merchant/media/upload`: `multipart/form-data` with `meta` (`{"filename",
/// "sha256"}`, the text the request's signature covers) and `file`, a JPG, BMP or PNG of at
/// most 2 MiB whose SHA-256 is `meta.sha256`; answers its `media_id`.
async fn media_upload(
    State(sim): State<SharedSim>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    let upload = match read_upload(form).await {
        Ok(upload) => upload,
        Err(message) => {
            let (status, body) = error(StatusCode::BAD_REQUEST, "PARAM_ERROR", &message);
            let serial = answer_serial(&sim, &headers).to_owned();
            return answer(&sim, None, &serial, status, Some(body)).await;
        }
    };
    let meta = Bytes::from(upload.meta.clone().unwrap_or_default());
    serve(sim, method, uri, headers, meta, move |sim, call| {
        let mut onboarding = sim.wechatpay.onboarding.lock().expect("onboarding lock");
        wechatpay_onboarding::upload_media(&mut onboarding, &call.mchid, &call.body, &upload)
    })
    .await
}

async fn applyment(
    State(sim): State<SharedSim>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let serial = names_the_public_key(&sim, &headers);
    serve(sim, method, uri, headers, body, move |sim, call| {
        if !serial {
            return serial_refused();
        }
        let body = match open_sensitive(sim, &call.body, APPLYMENT_SENSITIVE) {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let mut onboarding = sim.wechatpay.onboarding.lock().expect("onboarding lock");
        wechatpay_onboarding::submit(&mut onboarding, &call.mchid, &body, now_ms())
    })
    .await
}

async fn query_applyment(
    State(sim): State<SharedSim>,
    Path(business_code): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(sim, method, uri, headers, body, move |sim, call| {
        let mut onboarding = sim.wechatpay.onboarding.lock().expect("onboarding lock");
        wechatpay_onboarding::query(&mut onboarding, &call.mchid, &business_code, now_ms())
    })
    .await
}

async fn modify_settlement(
    State(sim): State<SharedSim>,
    Path(sub_mchid): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let serial = names_the_public_key(&sim, &headers);
    serve(sim, method, uri, headers, body, move |sim, call| {
        if !serial {
            return serial_refused();
        }
        let body = match open_sensitive(sim, &call.body, SETTLEMENT_SENSITIVE) {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let mut onboarding = sim.wechatpay.onboarding.lock().expect("onboarding lock");
        wechatpay_onboarding::modify_settlement(
            &mut onboarding,
            &call.mchid,
            &sub_mchid,
            &body,
            now_ms(),
        )
    })
    .await
}

async fn query_settlement_application(
    State(sim): State<SharedSim>,
    Path((sub_mchid, application_no)): Path<(String, String)>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(sim, method, uri, headers, body, move |sim, call| {
        let onboarding = sim.wechatpay.onboarding.lock().expect("onboarding lock");
        wechatpay_onboarding::query_application(
            &onboarding,
            &call.mchid,
            &sub_mchid,
            &application_no,
        )
    })
    .await
}

async fn query_settlement(
    State(sim): State<SharedSim>,
    Path(sub_mchid): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(sim, method, uri, headers, body, move |sim, call| {
        let onboarding = sim.wechatpay.onboarding.lock().expect("onboarding lock");
        wechatpay_onboarding::query_settlement(&onboarding, &call.mchid, &sub_mchid)
    })
    .await
}

/// `GET /v3/certificates`: the platform certificates, each sealed under the APIv3 key
/// (AES-256-GCM, associated data `certificate`), as SDKs download them to verify answers.
/// The answer itself is signed under the certificate's serial, so that a client can check
/// it with the certificate it has just unsealed.
async fn certificates(
    State(sim): State<SharedSim>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = sim.wechatpay.call_fault();
    let certificate = &sim.keys.wechatpay_certificate;
    let (status, body) = match authenticate(&sim, &method, &uri, &headers, &body) {
        Ok(_) => {
            let nonce = keys::random_token(12);
            let nonce_bytes: [u8; 12] = nonce.as_bytes().try_into().expect("12 characters");
            let ciphertext = keys::aes_gcm_seal(
                &sim.keys.wechatpay_apiv3,
                &nonce_bytes,
                b"certificate",
                certificate.pem.as_bytes(),
            );
            let item = json!({
                "serial_no": certificate.serial,
                "effective_time": rfc3339_beijing(certificate.not_before * 1000),
                "expire_time": rfc3339_beijing(certificate.not_after * 1000),
                "encrypt_certificate": {
                    "algorithm": "AEAD_AES_256_GCM",
                    "nonce": nonce,
                    "associated_data": "certificate",
                    "ciphertext": ciphertext,
                },
            });
            (StatusCode::OK, Some(json!({"data": [item]})))
        }
        Err((status, body)) => (status, Some(body)),
    };
    answer(&sim, fault, &certificate.serial, status, body).await
}

/// A notification: the event, its resource sealed under the APIv3 key, signed headers.
fn notice(
    sim: &Sim,
    url: String,
    event_type: &str,
    summary: &str,
    original_type: &str,
    resource: &Value,
) -> Notice {
    let nonce = keys::random_token(12);
    let nonce_bytes: [u8; 12] = nonce.as_bytes().try_into().expect("12 characters");
    let ciphertext = keys::aes_gcm_seal(
        &sim.keys.wechatpay_apiv3,
        &nonce_bytes,
        original_type.as_bytes(),
        resource.to_string().as_bytes(),
    );
    let body = json!({
        "id": format!("EV-{}", keys::random_token(20)),
        "create_time": rfc3339_beijing(now_ms()),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": {
            "original_type": original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": ciphertext,
            "associated_data": original_type,
            "nonce": nonce,
        },
    })
    .to_string();
    let timestamp = (now_ms() / 1000).to_string();
    let header_nonce = keys::random_token(32);
    let signature = keys::sign(
        &sim.keys.wechatpay_platform,
        format!("{timestamp}\n{header_nonce}\n{body}\n").as_bytes(),
    );
    Notice {
        url,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("wechatpay-timestamp".into(), timestamp),
            ("wechatpay-nonce".into(), header_nonce),
            ("wechatpay-signature".into(), signature),
            (
                "wechatpay-serial".into(),
                sim.wechatpay_public_key_id.clone(),
            ),
            (
                "wechatpay-signature-type".into(),
                "WECHATPAY2-SHA256-RSA2048".into(),
            ),
        ],
        body: body.into_bytes(),
        acknowledged: |status, _| (200..300).contains(&status),
    }
}

/// `TRANSACTION.SUCCESS` for a paid order, if it gave a notify URL.
pub fn payment_notice(sim: &Sim, order: &Order) -> Option<(Notice, &'static [u64])> {
    let url = order.notify_url.clone()?;
    let resource = transaction(order, "");
    Some((
        notice(
            sim,
            url,
            "TRANSACTION.SUCCESS",
            "支付成功",
            "transaction",
            &resource,
        ),
        WECHATPAY_SCHEDULE_S,
    ))
}

/// `REFUND.SUCCESS` for a completed refund, if it gave a notify URL.
pub fn refund_notice(
    sim: &Sim,
    order: &Order,
    out_refund_no: &str,
) -> Option<(Notice, &'static [u64])> {
    let refund = order.refunds.get(out_refund_no)?;
    let url = refund.notify_url.clone()?;
    let mut resource = json!({
        "out_trade_no": order.out_trade_no,
        "transaction_id": order.trade_no,
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "refund_status": "SUCCESS",
        "success_time": rfc3339_beijing(now_ms()),
        "user_received_account": "支付用户零钱",
        "amount": {"total": order.amount_minor, "refund": refund.amount_minor,
                   "payer_total": order.amount_minor, "payer_refund": refund.amount_minor},
    });
    owner(&mut resource, order, None);
    Some((
        notice(sim, url, "REFUND.SUCCESS", "退款成功", "refund", &resource),
        WECHATPAY_SCHEDULE_S,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_parse_and_garbage_does_not() {
        let params = authorization_params(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1900000001\",nonce_str=\"abc\",signature=\"c2ln\",timestamp=\"1700000000\",serial_no=\"5157\"",
        )
        .unwrap();
        assert_eq!(params["mchid"], "1900000001");
        assert_eq!(params["signature"], "c2ln");
        assert!(authorization_params("Bearer x").is_none());
        assert!(authorization_params("WECHATPAY2-SHA256-RSA2048 garbage").is_none());
    }

    #[test]
    fn times_are_rfc3339_in_beijing() {
        assert_eq!(
            rfc3339_beijing(1_795_710_600_000),
            "2026-11-27T00:30:00+08:00"
        );
        assert_eq!(
            parse_rfc3339("2026-11-27T00:30:00+08:00"),
            Some(1_795_710_600_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn payment_codes_follow_the_prefix_rule() {
        assert!(is_wechat_code("134567890123456789"));
        assert!(!is_wechat_code("164567890123456789"));
        assert!(!is_wechat_code("13456789012345678"));
    }
}
