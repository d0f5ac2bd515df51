//! Alerts and blocks of the anomaly monitor (API.md §10): `GET /v1/alerts`,
//! `GET /v1/alerts/stream` (Server-Sent Events), `POST /v1/alerts/{id}/ack`,
//! `GET /v1/blocks` and `DELETE /v1/blocks/{id}`. Admins see everything; an erp key sees
//! the alerts of its merchants; blocks are admin-only.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::idempotency::Idempotent;
use super::json::{ApiPath, ApiQuery};
use super::list::{List, PageParams};
use super::payments::{parse_time, rfc3339_ms};
use crate::app::AppState;
use crate::auth::Role;
use crate::domain::records::{AlertRecord, AlertSubject, BlockRecord};
use crate::monitor::settings::{RULES, Severity};

/// Who or what an alert is about.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectObject {
    pub merchant_id: Option<String>,
    pub terminal_id: Option<String>,
    pub api_key_id: Option<String>,
    pub payer: Option<String>,
    pub provider: Option<String>,
}

/// An alert (API.md §10).
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertObject {
    pub id: String,
    /// Always `"alert"`.
    pub object: &'static str,
    pub rule: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub subject: SubjectObject,
    pub summary: String,
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    /// Times the rule fired for this subject within the cool-down.
    pub count: u64,
    pub created_at: String,
    pub last_seen_at: String,
    pub acknowledged_at: Option<String>,
    /// The block the rule placed, if any (`blk_...`).
    pub block: Option<String>,
}

impl From<&AlertRecord> for AlertObject {
    fn from(a: &AlertRecord) -> Self {
        let AlertSubject {
            merchant_id,
            terminal_id,
            api_key_id,
            payer,
            provider,
        } = a.subject.clone();
        AlertObject {
            id: a.id.clone(),
            object: "alert",
            rule: a.rule.clone(),
            severity: a.severity.clone(),
            subject: SubjectObject {
                merchant_id,
                terminal_id,
                api_key_id,
                payer,
                provider,
            },
            summary: a.summary.clone(),
            evidence: a.evidence.clone(),
            count: a.count,
            created_at: rfc3339_ms(a.created_at_ms),
            last_seen_at: rfc3339_ms(a.last_seen_at_ms),
            acknowledged_at: a.acknowledged_at_ms.map(rfc3339_ms),
            block: a.block_id.clone(),
        }
    }
}

/// A block placed by a rule's action.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockObject {
    pub id: String,
    /// Always `"block"`.
    pub object: &'static str,
    /// `terminal` (payments from `terminal_id` of `merchant_id` are refused) or `api_key`
    /// (payments by `api_key_id` are refused, whatever terminal they name).
    pub kind: String,
    pub merchant_id: String,
    /// The blocked terminal (`terminal` blocks).
    pub terminal_id: Option<String>,
    /// The blocked API key (`api_key` blocks).
    pub api_key_id: Option<String>,
    pub rule: String,
    pub alert_id: String,
    pub created_at: String,
    pub expires_at: String,
}

impl From<&BlockRecord> for BlockObject {
    fn from(b: &BlockRecord) -> Self {
        BlockObject {
            id: b.id.clone(),
            object: "block",
            kind: b.kind.clone(),
            merchant_id: b.merchant_id.clone(),
            terminal_id: Some(b.terminal_id.clone()).filter(|t| !t.is_empty()),
            api_key_id: b.api_key_id.clone(),
            rule: b.rule.clone(),
            alert_id: b.alert_id.clone(),
            created_at: rfc3339_ms(b.created_at_ms),
            expires_at: rfc3339_ms(b.expires_at_ms),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertFilters {
    /// `info`, `warning` or `critical`.
    pub severity: Option<String>,
    pub rule: Option<String>,
    pub merchant_id: Option<String>,
    /// RFC 3339: raised at or after.
    pub since: Option<String>,
    pub limit: Option<usize>,
    pub starting_after: Option<String>,
}

/// An acknowledgement (no fields).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {}

/// Whether the caller may see `alert`: admins all, erp keys their merchants' alerts.
fn visible(caller: &Caller, alert: &AlertRecord) -> bool {
    visible_to(&caller.0, alert)
}

/// Whether `key` may see `alert`: an admin sees all, others the alerts about their
/// merchants (API.md §2).
pub(super) fn visible_to(key: &crate::auth::ApiKey, alert: &AlertRecord) -> bool {
    key.role == Role::Admin
        || alert
            .subject
            .merchant_id
            .as_ref()
            .is_some_and(|m| key.may_act_for(m))
}

/// Lists alerts, newest first.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts",
    params(AlertFilters),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "A page of alerts", body = List<AlertObject>),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 403, description = "Role below erp", body = ErrorBody),
    ))]
pub async fn list_alerts(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(filters): ApiQuery<AlertFilters>,
) -> Result<Json<List<AlertObject>>, ApiError> {
    caller.require_role(Role::Erp)?;
    if let Some(merchant) = &filters.merchant_id {
        caller.require_merchant(merchant)?;
    }
    let limit = PageParams {
        limit: filters.limit,
        starting_after: None,
    }
    .limit()?;
    if let Some(severity) = &filters.severity
        && Severity::parse(severity).is_none()
    {
        return Err(ApiError::invalid(
            "parameter_invalid",
            format!("severity \"{severity}\" is not one of info, warning, critical"),
            Some("severity"),
        ));
    }
    if let Some(rule) = &filters.rule
        && !RULES.contains(&rule.as_str())
    {
        return Err(ApiError::invalid(
            "parameter_invalid",
            format!("rule \"{rule}\" is not one of {}", RULES.join(", ")),
            Some("rule"),
        ));
    }
    let since = parse_time(&filters.since, "since")?;
    let keep = |a: &AlertRecord| {
        visible(&caller, a)
            && filters.severity.as_ref().is_none_or(|s| &a.severity == s)
            && filters.rule.as_ref().is_none_or(|r| &a.rule == r)
            && filters
                .merchant_id
                .as_ref()
                .is_none_or(|m| a.subject.merchant_id.as_ref() == Some(m))
            && since.is_none_or(|t| a.created_at_ms >= t)
    };
    let page = state
        .store
        .alerts_page(filters.starting_after.as_deref(), limit, &keep)
        .await?;
    Ok(Json(List::page(page.iter().map(AlertObject::from), limit)))
}

/// One event of the alert stream: `event: alert` with the alert's id and, as `data`, the
/// alert's JSON; or `event: lagged` with the number of alerts a slow client missed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertStreamEvent {
    /// `alert` or `lagged`.
    pub event: String,
    /// The alert's id (`alert` events).
    pub id: Option<String>,
    /// The alert object as JSON text (`alert`), or the number of missed alerts (`lagged`).
    pub data: String,
}

/// New alerts as Server-Sent Events (`event: alert`, `data:` the alert).
#[utoipa::path(get, path = "/v1/alerts/stream", tag = "alerts",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = AlertStreamEvent),
        (status = 403, description = "Role below erp", body = ErrorBody),
    ))]
pub async fn alert_stream(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require_role(Role::Erp)?;
    let receiver = state.monitor.subscribe();
    Ok(Sse::new(alert_events(receiver, caller)).keep_alive(KeepAlive::default()))
}

/// The alerts `caller` may see, as SSE events; a client that falls behind is told how many
/// it missed (`event: lagged`) and carries on.
fn alert_events(
    receiver: broadcast::Receiver<Arc<AlertRecord>>,
    caller: Caller,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold((receiver, caller), |(mut receiver, caller)| async move {
        loop {
            let event = match receiver.recv().await {
                Ok(alert) if visible(&caller, &alert) => {
                    Event::default().event("alert").id(alert.id.clone()).data(
                        serde_json::to_string(&AlertObject::from(alert.as_ref()))
                            .unwrap_or_default(),
                    )
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Event::default().event("lagged").data(missed.to_string())
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            return Some((Ok(event), (receiver, caller)));
        }
    })
}

/// Acknowledges an alert (admin). Acknowledging again changes nothing.
#[utoipa::path(post, path = "/v1/alerts/{id}/ack", tag = "alerts",
    request_body = AckBody,
    params(("id" = String, Path, description = "al_..."), ("Idempotency-Key" = String, Header, description = "Unique per operation")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The alert, acknowledged", body = AlertObject),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
    ))]
pub async fn ack_alert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    mut request: Idempotent<AckBody>,
) -> Result<Json<AlertObject>, ApiError> {
    caller.require_role(Role::Admin)?;
    request.body()?; // checked (no fields), after the role
    let now = state.clock.now_ms();
    let by = caller.0.id.clone();
    let alert = state
        .store
        .update_alert(&id, None, &|a| {
            if a.acknowledged_at_ms.is_none() {
                a.acknowledged_at_ms = Some(now);
                a.acknowledged_by = Some(by.clone());
            }
        })
        .await?
        .ok_or(ApiError::NotFound { kind: "alert", id })?;
    Ok(Json(AlertObject::from(&alert)))
}

/// Blocks in force (admin).
#[utoipa::path(get, path = "/v1/blocks", tag = "alerts",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The blocks in force", body = List<BlockObject>),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ))]
pub async fn list_blocks(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<List<BlockObject>>, ApiError> {
    caller.require_role(Role::Admin)?;
    let blocks = state.monitor.active_blocks();
    let count = blocks.len();
    Ok(Json(List::page(
        blocks.iter().map(BlockObject::from),
        count.max(1),
    )))
}

/// Lifts a block (admin): the terminal may pay again.
#[utoipa::path(delete, path = "/v1/blocks/{id}", tag = "alerts",
    params(("id" = String, Path, description = "blk_..."), ("Paygate-OTP" = Option<String>, Header, description = "A fresh code from the key's authenticator, when it has one (API.md §2)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The lifted block", body = BlockObject),
        (status = 401, description = "Unknown key, or a code needed: otp_required, otp_invalid", body = ErrorBody),
        (status = 429, description = "Too many wrong codes for the key: otp_attempts_exceeded, Retry-After", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such block in force", body = ErrorBody),
    ))]
pub async fn lift_block(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    source: super::auth::ClientSource,
    headers: axum::http::HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BlockObject>, ApiError> {
    caller.require_role(Role::Admin)?;
    super::second_factor::require_code(&state, &caller.0, &headers, &source.0).await?;
    let block = state
        .monitor
        .lift_block(&id)
        .await?
        .ok_or(ApiError::NotFound { kind: "block", id })?;
    tracing::info!(block = %block.id, by = %caller.0.id, "block lifted");
    Ok(Json(BlockObject::from(&block)))
}
