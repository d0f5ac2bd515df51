//! `POST /v1/notify/{provider}/{merchant_id}` (API.md §7): a provider's asynchronous notice,
//! passed raw to the provider's plugin, which verifies it with the merchant's keys. No API
//! key: the provider's signature is the authentication.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorBody};
use super::json::{ApiPath, RawBody};
use crate::app::AppState;
use crate::notices::{self, NoticeError};
use crate::plugins::types::Reply;

fn reply(status: StatusCode, reply: Reply) -> Response {
    let content_type = HeaderValue::from_str(&reply.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("text/plain; charset=utf-8"));
    let mut response = (status, Bytes::from(reply.body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

/// A provider's notice about a payment, refund, activation or bank account.
#[utoipa::path(post, path = "/v1/notify/{provider}/{merchant_id}", tag = "notifications",
    params(("provider" = String, Path, description = "e.g. alipay"), ("merchant_id" = String, Path, description = "m_...")),
    request_body(content = String, description = "The provider's notice, as it sends it", content_type = "*/*"),
    responses(
        (status = 200, description = "Verified (body: what the provider's protocol expects)"),
        (status = 400, description = "Did not verify; nothing changed"),
        (status = 404, description = "No such merchant or wallet", body = ErrorBody),
        (status = 408, description = "The body did not arrive within server.body_timeout_ms", body = ErrorBody),
        (status = 413, description = "Body larger than server.body_bytes_max", body = ErrorBody),
        (status = 502, description = "The plugin failed", body = ErrorBody),
    ))]
pub async fn notify(
    State(state): State<Arc<AppState>>,
    ApiPath((provider, merchant_id)): ApiPath<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    match notices::handle_notice(
        &state.payments,
        &state.onboarding,
        &provider,
        &merchant_id,
        headers,
        body.to_vec(),
    )
    .await
    {
        Ok((answer, outcome)) => {
            tracing::info!(%provider, %merchant_id, ?outcome, "provider notice applied");
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            Ok(reply(status, answer))
        }
        Err(NoticeError::Rejected(rejected)) => {
            tracing::warn!(%provider, %merchant_id, reason = %rejected.reason, "provider notice rejected");
            // A security event: the monitor watches for forged notices.
            state
                .monitor
                .observe(crate::monitor::Input::NoticeRejected {
                    provider: provider.clone(),
                    merchant_id: merchant_id.clone(),
                    reason: rejected.reason.clone(),
                });
            Ok(reply(StatusCode::BAD_REQUEST, rejected.reply))
        }
        Err(NoticeError::UnknownRecipient) => Err(ApiError::NotFound {
            kind: "notification recipient",
            id: format!("{provider}/{merchant_id}"),
        }),
        Err(NoticeError::Plugin(e)) => Err(ApiError::Plugin {
            message: e.to_string(),
        }),
        Err(e @ (NoticeError::Store(_) | NoticeError::Onboarding(_))) => {
            tracing::error!(error = %e, "store failure on a notice");
            Err(ApiError::Internal)
        }
    }
}
