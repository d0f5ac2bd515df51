//! What the simulator's HMAC-signed JSON parties share (the card acquirer, Toy Pay):
//! requests carry `{party}-merchant` and `{party}-signature: t={unix s},v1={hex
//! HMAC-SHA256(secret, "{t}\n{METHOD}\n{path}\n{body}")}`, answers carry `{party}-signature`
//! over `"{t}\n{status}\n{body}"`, errors are `{"error": {"code", "message"}}`, and a
//! request more than 300 s from the party's clock is refused.

use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::{Fault, FaultKind};
use crate::keys;
use crate::ledger::{Order, OrderStatus, Refund, RefundStatus, now_ms};

/// Requests older or newer than this (seconds) are refused.
const MAX_SKEW_SECONDS: i64 = 300;

/// One signed party: its secret and its headers (lowercase).
pub struct Party<'a> {
    pub secret: &'a [u8],
    pub merchant_header: &'static str,
    pub signature_header: &'static str,
    /// Its clock, in unix seconds.
    pub now_s: i64,
}

pub fn error(status: StatusCode, code: &str, message: &str) -> (StatusCode, Value) {
    (status, json!({"error": {"code": code, "message": message}}))
}

impl Party<'_> {
    /// A signed answer, with the call's fault applied.
    pub async fn answer(&self, fault: Option<Fault>, status: StatusCode, body: Value) -> Response {
        let mut text = body.to_string().into_bytes();
        if let Some(f) = fault {
            match f.kind {
                FaultKind::Timeout => tokio::time::sleep(f.delay).await,
                FaultKind::Malformed => text = b"<html>gateway error</html>".to_vec(),
                _ => {}
            }
        }
        let t = self.now_s;
        let mut message = format!("{t}\n{}\n", status.as_u16()).into_bytes();
        message.extend_from_slice(&text);
        let mut mac = keys::hmac_sha256(self.secret, &message);
        if fault.is_some_and(|f| f.kind == FaultKind::BadSignature) {
            mac[0] ^= 1;
        }
        let mut response = (status, text).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            "application/json".parse().expect("a header value"),
        );
        if let Ok(value) = format!("t={t},v1={}", hex::encode(&mac)).parse() {
            headers.insert(HeaderName::from_static(self.signature_header), value);
        }
        response
    }

    /// The merchant a request is signed for, or the refusal.
    pub fn authenticate(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<String, (StatusCode, Value)> {
        let unauthorized = |m: &str| error(StatusCode::UNAUTHORIZED, "signature_invalid", m);
        let merchant = headers
            .get(self.merchant_header)
            .and_then(|v| v.to_str().ok())
            .filter(|m| !m.is_empty())
            .ok_or_else(|| unauthorized(&format!("{} missing", self.merchant_header)))?
            .to_owned();
        let signature = headers
            .get(self.signature_header)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized(&format!("{} missing", self.signature_header)))?;
        let mut t = None;
        let mut v1 = None;
        for part in signature.split(',') {
            match part.trim().split_once('=') {
                Some(("t", value)) => t = value.parse::<i64>().ok(),
                Some(("v1", value)) => v1 = Some(value.to_owned()),
                _ => {}
            }
        }
        let (Some(t), Some(v1)) = (t, v1) else {
            return Err(unauthorized(&format!(
                "{} malformed",
                self.signature_header
            )));
        };
        if (self.now_s - t).abs() > MAX_SKEW_SECONDS {
            return Err(unauthorized("the request's timestamp is too far from now"));
        }
        let mut message = format!("{t}\n{method}\n{path}\n").into_bytes();
        message.extend_from_slice(body);
        if hex::encode(keys::hmac_sha256(self.secret, &message)) != v1 {
            return Err(unauthorized("the signature does not verify"));
        }
        Ok(merchant)
    }
}

/// Refunds `amount` of `order` under `reference`, once (the refund's id starts with
/// `id_prefix`): the refund, and whether it is new (the same reference again answers the same
/// refund and moves nothing). Refused when the order is not paid, or for more than is left.
pub fn refund_once<'o>(
    order: &'o mut Order,
    reference: &str,
    amount: i64,
    id_prefix: &str,
) -> Result<(&'o Refund, bool), (StatusCode, Value)> {
    if order.refunds.contains_key(reference) {
        return Ok((&order.refunds[reference], false));
    }
    if order.status != OrderStatus::Paid {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_refundable",
            "only a paid payment can be refunded",
        ));
    }
    if order.refunded_minor() + amount > order.amount_minor {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_exceeds_payment",
            "more than what is left to refund",
        ));
    }
    let refund = Refund {
        out_refund_no: reference.to_owned(),
        refund_id: format!("{id_prefix}{}", keys::random_token(16).to_ascii_lowercase()),
        amount_minor: amount,
        status: RefundStatus::Succeeded,
        executions: 1,
        created_ms: now_ms(),
        completes_at_ms: None,
        notify_url: None,
    };
    Ok((
        order.refunds.entry(reference.to_owned()).or_insert(refund),
        true,
    ))
}

/// The client side, for the parties' tests: a signed request, and an answer whose signature
/// is checked.
#[cfg(test)]
pub mod testing {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::Party;
    use crate::keys;
    use crate::state::SharedSim;

    /// A request from `merchant` to `uri`, signed over `signed_path` as the party's clients
    /// sign it.
    pub fn signed(
        party: &Party<'_>,
        merchant: &str,
        method: &str,
        uri: &str,
        signed_path: &str,
        body: &str,
    ) -> Request<Body> {
        let t = party.now_s;
        let mac = keys::hmac_sha256(
            party.secret,
            format!("{t}\n{method}\n{signed_path}\n{body}").as_bytes(),
        );
        Request::builder()
            .method(method)
            .uri(uri)
            .header(party.merchant_header, merchant)
            .header(
                party.signature_header,
                format!("t={t},v1={}", hex::encode(&mac)),
            )
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    /// Sends `request` through the simulator's router; the answer, once its signature (over
    /// its status and body) verifies.
    pub async fn send(
        sim: &SharedSim,
        party: &Party<'_>,
        request: Request<Body>,
    ) -> (StatusCode, Value) {
        let response = crate::router(sim.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let signature = response.headers()[party.signature_header]
            .to_str()
            .unwrap()
            .to_owned();
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let (t, v1) = signature.split_once(",v1=").unwrap();
        let t: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
        let mut message = format!("{t}\n{}\n", status.as_u16()).into_bytes();
        message.extend_from_slice(&body);
        assert_eq!(v1, hex::encode(keys::hmac_sha256(party.secret, &message)));
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}
