//! Operations endpoints (API.md §11): liveness, readiness, metrics and the OpenAPI document.
//! None of them needs a key.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::store::Room;

/// Health of the process or of its parts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `not_ready`.
    pub status: &'static str,
    /// Per dependency: `ok` or what is wrong with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

/// One readiness check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The process is alive and answering.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        checks: Vec::new(),
    })
}

/// The daemon can serve requests: store open and readable, plugins loaded.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready; `checks` says why", body = Health),
    ))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Health>) {
    let store = match state.store.describe().await {
        Ok(detail) => Check {
            name: "store",
            ok: true,
            detail,
        },
        Err(e) => Check {
            name: "store",
            ok: false,
            detail: e.to_string(),
        },
    };
    let storage = match (state.store.failure(), state.store.room()) {
        (Some(failure), _) => Check {
            name: "storage",
            ok: false,
            detail: format!("a flush failed ({failure}); paygated is restarting"),
        },
        (None, Some(room)) => Check {
            name: "storage",
            ok: room.is_enough(),
            detail: if room.is_enough() {
                room.to_string()
            } else {
                format!("{room}: new work is refused until there is room again")
            },
        },
        // The database server keeps its own disk: the store check above reached it.
        (None, None) => Check {
            name: "storage",
            ok: true,
            detail: "the database server's".into(),
        },
    };
    let plugins = state.plugins.plugins();
    let plugins = Check {
        name: "plugins",
        ok: !plugins.is_empty(),
        detail: if plugins.is_empty() {
            "no plugin loaded: no provider can be called".into()
        } else {
            format!("{} loaded", plugins.len())
        },
    };
    let checks = vec![store, storage, plugins];
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if ready { "ready" } else { "not_ready" },
        checks,
    };
    (status, Json(body))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match &state.sled {
        Some(sled) => {
            let stats = sled.commit_stats();
            let relaxed = std::sync::atomic::Ordering::Relaxed;
            state.metrics.sync_store(
                stats.flushes.load(relaxed),
                stats.requests.load(relaxed),
                stats.flush_micros.load(relaxed) as f64 / 1e6,
                sled.writer_busy().as_secs_f64(),
            );
        }
        // The database server flushes, not the daemon: its counters stay at zero.
        None => state.metrics.sync_store(0, 0, 0.0, 0.0),
    }
    state.metrics.sync_janitor(state.clock.now_ms());
    // A store that cannot be read leaves the gauges where they were (readyz says why).
    if let (Ok(outbox), Ok(pending)) = (
        state.store.outbox_len().await,
        state.store.pending_payment_count().await,
    ) {
        state.metrics.set_backlogs(outbox, pending);
    }
    let room = state.store.room();
    state.metrics.set_storage(
        room.as_ref().and_then(Room::free_bytes),
        room.is_none_or(|r| r.is_enough()) && state.store.failure().is_none(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// This API's OpenAPI 3.1 document, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json.get().cloned().unwrap_or_default(),
    )
        .into_response()
}
