//! A card acquirer under `/acquirer/v1/...`: it authorizes the device account numbers and
//! cryptograms that Apple Pay tokens carry, voids and refunds them. paygate's Apple Pay
//! plugin talks to it (its PROTOCOL.md has the wire format): JSON, requests signed
//! `Acquirer-Signature: t=..,v1=<hex HMAC-SHA256(secret, t \n METHOD \n path \n body)>` with
//! the sandbox secret `config/sandbox-keys/acquirer_secret.txt`, answers signed over
//! `t \n status \n body`. A repeated reference answers the same payment or refund and moves
//! no money. The fault `decline` makes the next authorization a decline (insufficient
//! funds); the others apply as to the wallets.

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
use crate::ledger::{Order, OrderStatus, Refund, RefundStatus, now_ms};
use crate::state::{CardSummary, SharedSim, Sim};

pub fn router() -> Router<SharedSim> {
    Router::new()
        .route("/v1/payments", post(authorize))
        .route("/v1/payments/{reference}", get(query))
        .route("/v1/payments/{reference}/void", post(void))
        .route("/v1/payments/{reference}/refunds", post(refund))
        .route("/v1/refunds/{reference}", get(query_refund))
}

/// The acquirer as a signed party, at this instant.
fn party(sim: &Sim) -> Party<'_> {
    Party {
        secret: &sim.keys.acquirer_secret,
        merchant_header: "acquirer-merchant",
        signature_header: "acquirer-signature",
        now_s: sim.acquirer_now_ms() / 1000,
    }
}

/// The path as the client signs it: without `/acquirer`.
fn signed_path(uri: &axum::http::Uri) -> &str {
    uri.path().strip_prefix("/acquirer").unwrap_or(uri.path())
}

fn payment_object(order: &Order, card: Option<&CardSummary>) -> Value {
    let (status, decline) = match order.status {
        OrderStatus::Paid => ("authorized", None),
        OrderStatus::Failed => ("declined", Some("insufficient_funds")),
        OrderStatus::Closed | OrderStatus::Revoked => ("voided", None),
        OrderStatus::WaitingForPayer | OrderStatus::UserPaying => ("pending", None),
    };
    json!({
        "id": order.trade_no,
        "reference": order.out_trade_no,
        "status": status,
        "amount": {"value": order.amount_minor, "currency": order.currency},
        "network": card.map(|c| c.network.clone()),
        "last_four": card.map(|c| c.last_four.clone()),
        "decline_code": decline,
        "decline_message": decline.map(|_| "insufficient funds"),
    })
}

fn refund_object(refund: &Refund, currency: &str) -> Value {
    json!({
        "id": refund.refund_id,
        "reference": refund.out_refund_no,
        "status": match refund.status {
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Processing => "pending",
        },
        "amount": {"value": refund.amount_minor, "currency": currency},
    })
}

/// The network of a card number, by issuer range (as the plugin reads it).
fn network(number: &str) -> &'static str {
    match number.as_bytes().first() {
        Some(b'4') => "visa",
        Some(b'5' | b'2') => "mastercard",
        Some(b'3') => "amex",
        Some(b'6') => "unionpay",
        _ => "other",
    }
}

/// Runs `handle` for an authenticated call, with the call's fault around it.
async fn serve(
    sim: SharedSim,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
    handle: impl FnOnce(&Sim, &str, Option<crate::faults::Fault>) -> (StatusCode, Value),
) -> Response {
    let fault = sim.acquirer.call_fault();
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
    let (status, body) = match party(&sim).authenticate(&method, signed_path(&uri), &headers, &body)
    {
        Ok(merchant) => handle(&sim, &merchant, fault),
        Err(refused) => refused,
    };
    party(&sim).answer(fault, status, body).await
}

async fn authorize(
    State(sim): State<SharedSim>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: Option<Value> = serde_json::from_slice(&body).ok();
    serve(sim, method, uri, headers, body, move |sim, merchant, fault| {
        let Some(request) = request else {
            return error(StatusCode::BAD_REQUEST, "invalid_request", "the body is not JSON");
        };
        let text = |pointer: &str| request.pointer(pointer).and_then(Value::as_str).unwrap_or("").to_owned();
        let reference = text("/reference");
        let number = text("/source/number");
        let amount = request.pointer("/amount/value").and_then(Value::as_i64).unwrap_or(0);
        let currency = text("/amount/currency");
        if reference.is_empty()
            || reference.len() > 64
            || amount <= 0
            || currency.len() != 3
            || !(12..=19).contains(&number.len())
            || !number.bytes().all(|b| b.is_ascii_digit())
            || text("/source/cryptogram").is_empty()
            || text("/source/type") != "network_token"
        {
            return error(StatusCode::BAD_REQUEST, "invalid_request", "reference, amount, currency and a network token (number, cryptogram) are required");
        }
        let mut ledger = sim.acquirer.ledger.lock().expect("ledger lock");
        let mut cards = sim.acquirer_cards.lock().expect("cards lock");
        if let Some(existing) = ledger.orders.get(&reference) {
            if existing.merchant != merchant || existing.amount_minor != amount {
                return error(StatusCode::CONFLICT, "reference_reused", "this reference names another payment");
            }
            return (StatusCode::OK, payment_object(existing, cards.get(&reference)));
        }
        let declined = fault.is_some_and(|f| f.kind == FaultKind::Decline);
        let now = now_ms();
        let order = Order {
            merchant: merchant.to_owned(),
            out_trade_no: reference.clone(),
            app_id: None,
            trade_no: format!("acq_{}", keys::random_token(20).to_ascii_lowercase()),
            kind: "card",
            amount_minor: amount,
            currency,
            description: String::new(),
            status: if declined { OrderStatus::Failed } else { OrderStatus::Paid },
            qr_code: None,
            auth_code: None,
            payer: None,
            payer_id: None,
            notify_url: None,
            created_ms: now,
            paid_ms: (!declined).then_some(now),
            confirms_at_ms: None,
            expires_at_ms: None,
            charges: u32::from(!declined),
            refunds: Default::default(),
            notifications_sent: 0,
            sub_merchant: None,
        };
        let card = CardSummary {
            network: network(&number).to_owned(),
            last_four: number[number.len() - 4..].to_owned(),
        };
        let object = payment_object(&order, Some(&card));
        cards.insert(reference.clone(), card);
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
    serve(sim, method, uri, headers, body, move |sim, merchant, _| {
        let mut ledger = sim.acquirer.ledger.lock().expect("ledger lock");
        let cards = sim.acquirer_cards.lock().expect("cards lock");
        match ledger.order_of(&reference, merchant) {
            Some(order) => (StatusCode::OK, payment_object(order, cards.get(&reference))),
            None => error(StatusCode::NOT_FOUND, "not_found", "no such payment"),
        }
    })
    .await
}

async fn void(
    State(sim): State<SharedSim>,
    Path(reference): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(sim, method, uri, headers, body, move |sim, merchant, _| {
        let mut ledger = sim.acquirer.ledger.lock().expect("ledger lock");
        let cards = sim.acquirer_cards.lock().expect("cards lock");
        let Some(order) = ledger.order_of(&reference, merchant) else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such payment");
        };
        if !order.refunds.is_empty() {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "refunded",
                "a refunded payment cannot be voided",
            );
        }
        if order.status == OrderStatus::Paid {
            // A void releases the authorization: no money moved.
            order.status = OrderStatus::Closed;
            order.charges = 0;
        }
        (StatusCode::OK, payment_object(order, cards.get(&reference)))
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
    let request: Option<Value> = serde_json::from_slice(&body).ok();
    serve(sim, method, uri, headers, body, move |sim, merchant, _| {
        let Some(request) = request else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body is not JSON",
            );
        };
        let reference = request["reference"].as_str().unwrap_or("").to_owned();
        let amount = request
            .pointer("/amount/value")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if reference.is_empty() || reference.len() > 64 || amount <= 0 {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "reference and a positive amount are required",
            );
        }
        let mut ledger = sim.acquirer.ledger.lock().expect("ledger lock");
        let Some(order) = ledger.order_of(&payment, merchant) else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such payment");
        };
        let currency = order.currency.clone();
        match refund_once(order, &reference, amount, "acq_re_") {
            Ok((refund, new)) => {
                let status = if new {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                (status, refund_object(refund, &currency))
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
    serve(sim, method, uri, headers, body, move |sim, merchant, _| {
        let ledger = sim.acquirer.ledger.lock().expect("ledger lock");
        match ledger.refund_of(&reference, merchant) {
            Some((order, refund)) => (StatusCode::OK, refund_object(refund, &order.currency)),
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

    /// A request signed as the Apple Pay plugin signs it: over the path without `/acquirer`.
    fn signed(sim: &Sim, method: &str, path: &str, body: &str) -> Request<Body> {
        let uri = format!("/acquirer{path}");
        testing::signed(&party(sim), "acq_m_1", method, &uri, path, body)
    }

    async fn send(sim: &SharedSim, request: Request<Body>) -> (StatusCode, Value) {
        testing::send(sim, &party(sim), request).await
    }

    const PAYMENT: &str = r#"{"reference":"pay_1","amount":{"value":100,"currency":"USD"},"source":{"type":"network_token","wallet":"apple_pay","number":"5353756319181169","expiry_month":"09","expiry_year":"2024","cryptogram":"AMwB","eci":null}}"#;

    #[tokio::test]
    async fn authorizes_once_per_reference_and_refunds_no_more_than_was_paid() {
        let sim = sim();
        let (status, paid) = send(&sim, signed(&sim, "POST", "/v1/payments", PAYMENT)).await;
        assert_eq!(status, StatusCode::CREATED, "{paid}");
        assert_eq!(
            (paid["status"].as_str(), paid["last_four"].as_str()),
            (Some("authorized"), Some("1169"))
        );
        assert_eq!(paid["network"], "mastercard");
        let (status, again) = send(&sim, signed(&sim, "POST", "/v1/payments", PAYMENT)).await;
        assert_eq!((status, &again["id"]), (StatusCode::OK, &paid["id"]));
        let refund = r#"{"reference":"re_1","amount":{"value":60,"currency":"USD"}}"#;
        let (status, _) = send(
            &sim,
            signed(&sim, "POST", "/v1/payments/pay_1/refunds", refund),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = send(
            &sim,
            signed(&sim, "POST", "/v1/payments/pay_1/refunds", refund),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "a repeated refund moves nothing");
        let too_much = r#"{"reference":"re_2","amount":{"value":41,"currency":"USD"}}"#;
        let (status, body) = send(
            &sim,
            signed(&sim, "POST", "/v1/payments/pay_1/refunds", too_much),
        )
        .await;
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
            (StatusCode::OK, Some(60))
        );
        let ledger = sim.acquirer.ledger.lock().unwrap();
        assert_eq!(ledger.orders["pay_1"].charges, 1);
        assert!(ledger.violations().is_empty());
    }

    #[tokio::test]
    async fn bad_signatures_are_refused_and_a_decline_fault_declines() {
        let sim = sim();
        let mut forged = signed(&sim, "POST", "/v1/payments", PAYMENT);
        *forged.body_mut() = Body::from(PAYMENT.replace("100", "1"));
        let (status, body) = send(&sim, forged).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("signature_invalid"))
        );
        sim.acquirer.faults.lock().unwrap().add(FaultRequest {
            kind: FaultKind::Decline,
            count: 1,
            delay_ms: None,
            amount_minor: None,
        });
        let (_, declined) = send(&sim, signed(&sim, "POST", "/v1/payments", PAYMENT)).await;
        assert_eq!(
            (
                declined["status"].as_str(),
                declined["decline_code"].as_str()
            ),
            (Some("declined"), Some("insufficient_funds"))
        );
        assert_eq!(
            sim.acquirer.ledger.lock().unwrap().orders["pay_1"].charges,
            0
        );
        let (status, _) = send(&sim, signed(&sim, "GET", "/v1/payments/pay_none", "")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
