//! The outermost layer of every request: gives it a `Request-Id`, logs it once when it is
//! answered, and counts it in the HTTP metrics (by route template, never a raw path).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::request_id;
use crate::app::AppState;

/// Per-request facts that inner layers learn and the access log reports.
#[derive(Debug, Default)]
pub struct RequestContext {
    api_key_id: OnceLock<String>,
}

impl RequestContext {
    /// Records which key the request authenticated with (its id, never the key).
    pub fn set_api_key_id(&self, id: &str) {
        let _ = self.api_key_id.set(id.to_owned());
    }
}

/// Route label for requests that matched no route.
const UNMATCHED: &str = "unmatched";

pub async fn observe(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = request_id::new();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let context = Arc::new(RequestContext::default());
    request.extensions_mut().insert(context.clone());

    // Everything logged while handling the request (plugin calls included) carries its id.
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = request_id::scope(id.clone(), next.run(request))
        .instrument(span)
        .await;

    let status = response.status();
    let elapsed = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("request-id", value);
    }
    state
        .metrics
        .observe_http(&route, method_label(&method), status, elapsed);
    tracing::info!(
        target: "paygate::access",
        request_id = %id,
        method = %method,
        route = %route,
        path = %path,
        status = status.as_u16(),
        duration_us = elapsed.as_micros() as u64,
        api_key_id = context.api_key_id.get().map_or("-", String::as_str),
        "request"
    );
    response
}

/// Methods outside the standard set share one label, so clients cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
