//! Toy Pay, under `/toypay/v1/...`: a small wallet that exists only here, for the plugin
//! kit's walkthrough (a plugin author's first wallet). It is deliberately plain, and still
//! has what every real wallet has: signed requests and answers, idempotent references, a
//! payer who confirms later, refunds, and the simulator's faults.
//!
//! - Requests carry `Toypay-Merchant: {merchant}` and `Toypay-Signature: t={unix
//!   seconds},v1={hex HMAC-SHA256(secret, "{t}\n{METHOD}\n{path}\n{body}")}`, `path` being
//!   the request's path and query as sent (`/toypay/v1/payments`). The secret is
//!   `config/sandbox-keys/toypay_secret.txt`. A timestamp more than 300 s from now is refused.
//! - Answers carry `Toypay-Signature: t=..,v1={hex HMAC-SHA256(secret, "{t}\n{status}\n{body}")}`.
//! - Amounts are `{"value": minor units, "currency": "CNY"}`; errors `{"error": {"code",
//!   "message"}}`.
//!
//! | call | answer |
//! | --- | --- |
//! | `POST /v1/payments` `{"reference", "amount", "method": "qr"\|"code", "payment_code"?, "description"?}` | `201` the payment; the same reference again: `200` the same payment (`409 reference_reused` for another amount) |
//! | `GET /v1/payments/{reference}` | the payment, or `404 not_found` |
//! | `POST /v1/payments/{reference}/cancel` | the payment, `cancelled` unless it was paid (`409 already_paid`) |
//! | `POST /v1/payments/{reference}/refunds` `{"reference", "amount"}` | `201` the refund (`succeeded`); again: `200` the same; more than is left: `422 amount_exceeds_payment` |
//! | `GET /v1/refunds/{reference}` | the refund, or `404 not_found` |
//!
//! A payment is `{"id", "reference", "status": "pending"|"succeeded"|"failed"|"cancelled",
//! "amount", "qr_url"?, "failure_code"?}`; `failure_code` is `insufficient_funds` or
//! `invalid_code`. A `qr` payment waits for the payer (`POST /_sim/toypay/scan` with its
//! `qr_url`); a `code` payment (18 digits starting `88`) goes by its last two digits, as the
//! other wallets' do (`51` insufficient funds, `52` invalid code, `61` confirms after a while).
//! Toy Pay sends no notices: the gateway asks.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::faults::FaultKind;
use crate::hmac_json::{Party, error, refund_once};
use crate::keys;
use crate::ledger::{Order, OrderStatus, Payer, Refund, RefundStatus, now_ms};
use crate::state::{SharedSim, Sim};

/// How long an unpaid QR payment waits for its payer.
const QR_EXPIRES_AFTER_MS: i64 = 15 * 60 * 1000;

pub fn router() -> Router<SharedSim> {
    Router::new()
        .route("/v1/payments", post(create))
        .route("/v1/payments/{reference}", get(query))
        .route("/v1/payments/{reference}/cancel", post(cancel))
        .route("/v1/payments/{reference}/refunds", post(refund))
        .route("/v1/refunds/{reference}", get(query_refund))
}

/// Toy Pay as a signed party, at this instant.
fn party(sim: &Sim) -> Party<'_> {
    Party {
        secret: &sim.keys.toypay_secret,
        merchant_header: "toypay-merchant",
        signature_header: "toypay-signature",
        now_s: now_ms() / 1000,
    }
}

fn payment_object(order: &Order) -> Value {
    let (status, failure) = match order.status {
        OrderStatus::Paid => ("succeeded", None),
        OrderStatus::Failed => (
            "failed",
            Some(match order.payer {
                Some(Payer::InvalidCode) => "invalid_code",
                _ => "insufficient_funds",
            }),
        ),
        OrderStatus::Closed | OrderStatus::Revoked => ("cancelled", None),
        OrderStatus::WaitingForPayer | OrderStatus::UserPaying => ("pending", None),
    };
    json!({
        "id": order.trade_no,
        "reference": order.out_trade_no,
        "status": status,
        "amount": {"value": order.amount_minor, "currency": order.currency},
        "qr_url": order.qr_code,
        "failure_code": failure,
    })
}

fn refund_object(refund: &Refund, payment: &str, currency: &str) -> Value {
    json!({
        "id": refund.refund_id,
        "reference": refund.out_refund_no,
        "payment_reference": payment,
        "status": match refund.status {
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Processing => "pending",
        },
        "amount": {"value": refund.amount_minor, "currency": currency},
    })
}

/// Runs `handle` for an authenticated call, with the call's fault around it.
async fn serve(
    sim: SharedSim,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
    handle: impl FnOnce(&Sim, &str) -> (StatusCode, Value),
) -> Response {
    let fault = sim.toypay.call_fault();
    if let Some(f) = fault {
        match f.kind {
            FaultKind::Http500 => {
                let (status, body) =
                    error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "try again");
                return party(&sim).answer(None, status, body).await;
            }
            FaultKind::Delay => tokio::time::sleep(f.delay).await,
            _ => {}
        }
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let (status, body) = match party(&sim).authenticate(&method, path, &headers, &body) {
        Ok(merchant) => handle(&sim, &merchant),
        Err(refused) => refused,
    };
    party(&sim).answer(fault, status, body).await
}

fn parse(body: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
}

fn reference_ok(reference: &str) -> bool {
    (1..=64).contains(&reference.len())
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

async fn create(
    State(sim): State<SharedSim>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse(&body);
    serve(sim, method, uri, headers, body, move |sim, merchant| {
        let Some(request) = request else {
            return error(StatusCode::BAD_REQUEST, "invalid_request", "the body is not a JSON object");
        };
        let text = |p: &str| request.pointer(p).and_then(Value::as_str).unwrap_or("").to_owned();
        let reference = text("/reference");
        let amount = request.pointer("/amount/value").and_then(Value::as_i64).unwrap_or(0);
        let currency = text("/amount/currency");
        let kind = match text("/method").as_str() {
            "qr" => "qr",
            "code" => "code",
            _ => return error(StatusCode::BAD_REQUEST, "invalid_request", "method must be qr or code"),
        };
        let code = text("/payment_code");
        if !reference_ok(&reference) || amount <= 0 || currency != "CNY" {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "reference (1-64 of [0-9A-Za-z_-]), a positive amount and currency CNY are required",
            );
        }
        let mut ledger = sim.toypay.ledger.lock().expect("ledger lock");
        if let Some(existing) = ledger.orders.get(&reference) {
            if existing.merchant != merchant || existing.amount_minor != amount {
                return error(StatusCode::CONFLICT, "reference_reused", "this reference names another payment");
            }
            return (StatusCode::OK, payment_object(existing));
        }
        let now = now_ms();
        let trade_no = format!("tp_{}", keys::random_token(20).to_ascii_lowercase());
        let mut order = Order {
            merchant: merchant.to_owned(),
            out_trade_no: reference.clone(),
            app_id: None,
            trade_no: trade_no.clone(),
            kind,
            amount_minor: amount,
            currency,
            description: text("/description"),
            status: OrderStatus::WaitingForPayer,
            qr_code: None,
            auth_code: None,
            payer: None,
            payer_id: None,
            notify_url: None,
            created_ms: now,
            paid_ms: None,
            confirms_at_ms: None,
            expires_at_ms: None,
            charges: 0,
            refunds: Default::default(),
            notifications_sent: 0,
            sub_merchant: None,
        };
        if kind == "qr" {
            order.qr_code = Some(format!("https://toypay.example/qr/{trade_no}"));
            order.expires_at_ms = Some(now + QR_EXPIRES_AFTER_MS);
        } else {
            if code.len() != 18 || !code.starts_with("88") || !code.bytes().all(|b| b.is_ascii_digit()) {
                return error(StatusCode::BAD_REQUEST, "invalid_request", "payment_code must be 18 digits starting 88");
            }
            let payer = Payer::from_code(&code);
            order.auth_code = Some(code);
            order.payer = Some(payer);
            match payer {
                Payer::InsufficientBalance | Payer::InvalidCode => order.status = OrderStatus::Failed,
                Payer::ConfirmsLater => {
                    order.status = OrderStatus::UserPaying;
                    order.confirms_at_ms = Some(now + sim.timings.confirm_after.as_millis() as i64);
                }
                Payer::NeverConfirms => order.status = OrderStatus::UserPaying,
                Payer::Pays | Payer::PaysBehindSystemError => order.pay(now),
            }
        }
        let object = payment_object(&order);
        ledger.orders.insert(reference, order);
        (StatusCode::CREATED, object)
    })
    .await
}

async fn query(
    State(sim): State<SharedSim>,
    Path(reference): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(sim, method, uri, headers, body, move |sim, merchant| {
        let mut ledger = sim.toypay.ledger.lock().expect("ledger lock");
        match ledger.order_of(&reference, merchant) {
            Some(order) => {
                order.advance(now_ms());
                (StatusCode::OK, payment_object(order))
            }
            None => error(StatusCode::NOT_FOUND, "not_found", "no such payment"),
        }
    })
    .await
}

async fn cancel(
    State(sim): State<SharedSim>,
    Path(reference): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(sim, method, uri, headers, body, move |sim, merchant| {
        let mut ledger = sim.toypay.ledger.lock().expect("ledger lock");
        let Some(order) = ledger.order_of(&reference, merchant) else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such payment");
        };
        order.advance(now_ms());
        match order.status {
            OrderStatus::Paid => error(
                StatusCode::CONFLICT,
                "already_paid",
                "a paid payment cannot be cancelled; refund it",
            ),
            OrderStatus::WaitingForPayer | OrderStatus::UserPaying => {
                order.status = OrderStatus::Closed;
                (StatusCode::OK, payment_object(order))
            }
            OrderStatus::Failed | OrderStatus::Closed | OrderStatus::Revoked => {
                (StatusCode::OK, payment_object(order))
            }
        }
    })
    .await
}

async fn refund(
    State(sim): State<SharedSim>,
    Path(payment): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = parse(&body);
    serve(sim, method, uri, headers, body, move |sim, merchant| {
        let Some(request) = request else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body is not a JSON object",
            );
        };
        let reference = request["reference"].as_str().unwrap_or("").to_owned();
        let amount = request
            .pointer("/amount/value")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if !reference_ok(&reference) || amount <= 0 {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "reference and a positive amount are required",
            );
        }
        let mut ledger = sim.toypay.ledger.lock().expect("ledger lock");
        let Some(order) = ledger.order_of(&payment, merchant) else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such payment");
        };
        let (payment, currency) = (order.out_trade_no.clone(), order.currency.clone());
        match refund_once(order, &reference, amount, "tp_re_") {
            Ok((refund, new)) => {
                let status = if new {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                (status, refund_object(refund, &payment, &currency))
            }
            Err(refused) => refused,
        }
    })
    .await
}

async fn query_refund(
    State(sim): State<SharedSim>,
    Path(reference): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(sim, method, uri, headers, body, move |sim, merchant| {
        let ledger = sim.toypay.ledger.lock().expect("ledger lock");
        match ledger.refund_of(&reference, merchant) {
            Some((order, refund)) => (
                StatusCode::OK,
                refund_object(refund, &order.out_trade_no, &order.currency),
            ),
            None => error(StatusCode::NOT_FOUND, "not_found", "no such refund"),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;

    use super::*;
    use crate::faults::FaultRequest;
    use crate::hmac_json::testing;
    use crate::tests::sim;

    /// A request signed as a Toy Pay client signs it: over the full path sent.
    fn signed(sim: &Sim, method: &str, path: &str, body: &str) -> Request<Body> {
        let path = format!("/toypay{path}");
        testing::signed(&party(sim), "toy_m_1", method, &path, &path, body)
    }

    async fn send(sim: &SharedSim, request: Request<Body>) -> (StatusCode, Value) {
        testing::send(sim, &party(sim), request).await
    }

    fn payment(reference: &str, method: &str, code: &str) -> String {
        json!({"reference": reference, "amount": {"value": 1234, "currency": "CNY"},
               "method": method, "payment_code": code})
        .to_string()
    }

    #[tokio::test]
    async fn a_code_payment_is_charged_once_and_refunded_no_more_than_was_paid() {
        let sim = sim();
        let body = payment("pay_1", "code", "880000000000000001");
        let (status, paid) = send(&sim, signed(&sim, "POST", "/v1/payments", &body)).await;
        assert_eq!(status, StatusCode::CREATED, "{paid}");
        assert_eq!(paid["status"], "succeeded");
        let (status, again) = send(&sim, signed(&sim, "POST", "/v1/payments", &body)).await;
        assert_eq!((status, &again["id"]), (StatusCode::OK, &paid["id"]));
        let other = payment("pay_1", "code", "880000000000000001").replace("1234", "99");
        let (status, _) = send(&sim, signed(&sim, "POST", "/v1/payments", &other)).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let refund = r#"{"reference":"re_1","amount":{"value":1000,"currency":"CNY"}}"#;
        let path = "/v1/payments/pay_1/refunds";
        let (status, _) = send(&sim, signed(&sim, "POST", path, refund)).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = send(&sim, signed(&sim, "POST", path, refund)).await;
        assert_eq!(status, StatusCode::OK, "a repeated refund moves nothing");
        let too_much = r#"{"reference":"re_2","amount":{"value":235,"currency":"CNY"}}"#;
        let (status, body) = send(&sim, signed(&sim, "POST", path, too_much)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("amount_exceeds_payment")
            )
        );
        let (status, found) = send(&sim, signed(&sim, "GET", "/v1/refunds/re_1", "")).await;
        assert_eq!(
            (status, found["amount"]["value"].as_i64()),
            (StatusCode::OK, Some(1000))
        );
        let (status, cancel) = send(
            &sim,
            signed(&sim, "POST", "/v1/payments/pay_1/cancel", "{}"),
        )
        .await;
        assert_eq!(
            (status, cancel["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("already_paid"))
        );
        let ledger = sim.toypay.ledger.lock().unwrap();
        assert_eq!(ledger.orders["pay_1"].charges, 1);
        assert!(ledger.violations().is_empty());
    }

    #[tokio::test]
    async fn payers_decline_qr_payments_wait_and_cancel_and_forgeries_are_refused() {
        let sim = sim();
        let (_, poor) = send(
            &sim,
            signed(
                &sim,
                "POST",
                "/v1/payments",
                &payment("pay_2", "code", "880000000000000051"),
            ),
        )
        .await;
        assert_eq!(
            (poor["status"].as_str(), poor["failure_code"].as_str()),
            (Some("failed"), Some("insufficient_funds"))
        );
        let (_, bad) = send(
            &sim,
            signed(
                &sim,
                "POST",
                "/v1/payments",
                &payment("pay_3", "code", "880000000000000052"),
            ),
        )
        .await;
        assert_eq!(bad["failure_code"], "invalid_code");
        let (status, _) = send(
            &sim,
            signed(
                &sim,
                "POST",
                "/v1/payments",
                &payment("pay_4", "code", "130000000000000001"),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "not a Toy Pay code");
        let (_, qr) = send(
            &sim,
            signed(&sim, "POST", "/v1/payments", &payment("pay_5", "qr", "")),
        )
        .await;
        assert_eq!(qr["status"], "pending");
        assert!(
            qr["qr_url"]
                .as_str()
                .unwrap()
                .starts_with("https://toypay.example/qr/")
        );
        let (_, cancelled) = send(
            &sim,
            signed(&sim, "POST", "/v1/payments/pay_5/cancel", "{}"),
        )
        .await;
        assert_eq!(cancelled["status"], "cancelled");

        let mut forged = signed(&sim, "POST", "/v1/payments", &payment("pay_6", "qr", ""));
        *forged.body_mut() = Body::from(payment("pay_6", "qr", "").replace("1234", "1"));
        let (status, body) = send(&sim, forged).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("signature_invalid"))
        );
        sim.toypay.faults.lock().unwrap().add(FaultRequest {
            kind: FaultKind::Http500,
            count: 1,
            delay_ms: None,
            amount_minor: None,
        });
        let (status, _) = send(&sim, signed(&sim, "GET", "/v1/payments/pay_5", "")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let (status, _) = send(&sim, signed(&sim, "GET", "/v1/payments/pay_none", "")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
