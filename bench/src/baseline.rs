//! The baseline the durable-payment benchmark is compared with: a bare axum handler that
//! does the same HTTP and JSON work as `POST /v1/payments` (bearer header, strict parsing of
//! the same body, a payment-shaped answer) with no store, no plugin and no idempotency.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // parsed for the work, as the daemon does; not all fields are read
struct Body {
    merchant_id: String,
    amount: String,
    currency: String,
    method: String,
    auth_code: Option<String>,
    terminal_id: Option<String>,
    provider: Option<String>,
    order_id: Option<String>,
    description: Option<String>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

async fn create(
    headers: HeaderMap,
    Json(body): Json<Body>,
) -> (StatusCode, Json<serde_json::Value>) {
    if headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| !v.starts_with("Bearer "))
        || headers.get("idempotency-key").is_none()
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "api_key_invalid"}})),
        );
    }
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::CREATED,
        Json(json!({
            "id": format!("pay_{n:026}"), "object": "payment", "status": "succeeded",
            "merchant_id": body.merchant_id, "amount": body.amount, "currency": body.currency,
            "method": body.method, "provider": "mock", "order_id": body.order_id,
            "provider_reference": format!("mock_pay_{n}"), "qr_code": null, "payment_url": null,
            "amount_refunded": "0.00", "failure": null, "terminal_id": body.terminal_id,
            "metadata": {}, "created_at": "2026-11-26T00:00:00.000Z",
            "updated_at": "2026-11-26T00:00:00.000Z", "expires_at": null,
        })),
    )
}

/// Serves the baseline on a free loopback port; prints `baseline listening on <url>`.
pub fn serve() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        println!(
            "baseline listening on http://{}",
            listener.local_addr().expect("an address")
        );
        let app = axum::Router::new().route("/v1/payments", post(create));
        axum::serve(listener, app).await.expect("serve");
    });
}
