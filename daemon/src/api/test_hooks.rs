//! Test-only routes, compiled with the `test-hooks` feature (never in shipped builds). They
//! let the end-to-end suite exercise request parsing and graceful shutdown before the
//! payment routes exist.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::ApiError;
use super::json::ApiJson;
use crate::app::AppState;

/// Longest delay a test may ask for.
const DELAY_MS_MAX: u64 = 30_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoRequest {
    /// How long to wait before answering.
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    payload: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct EchoResponse {
    api_key_id: String,
    payload: serde_json::Value,
}

/// `POST /v1/_test/echo`: authenticates, parses strictly, waits `delay_ms`, echoes `payload`.
pub async fn echo(
    State(_state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(request): ApiJson<EchoRequest>,
) -> Result<Json<EchoResponse>, ApiError> {
    if request.delay_ms > DELAY_MS_MAX {
        return Err(ApiError::invalid(
            "parameter_invalid",
            format!("delay_ms must be at most {DELAY_MS_MAX}"),
            Some("delay_ms"),
        ));
    }
    tokio::time::sleep(Duration::from_millis(request.delay_ms)).await;
    Ok(Json(EchoResponse {
        api_key_id: caller.0.id.clone(),
        payload: request.payload,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StallRequest {
    ms: u64,
}

/// `POST /v1/_test/stall-store`: the next store flush hangs `ms` first (admin only), to test
/// the flush watchdog without waiting for a real deadlock.
pub async fn stall_store(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(request): ApiJson<StallRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_role(crate::auth::Role::Admin)?;
    let Some(sled) = &state.sled else {
        return Err(ApiError::invalid(
            "engine_has_no_flush",
            "only the embedded engine has a flush to stall",
            None,
        ));
    };
    sled.stall_next_flush(request.ms);
    Ok(Json(
        serde_json::json!({"stalling_next_flush_ms": request.ms}),
    ))
}
