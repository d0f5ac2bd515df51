//! Authentication of API requests: the `Authorization: Bearer` header becomes a [`Caller`],
//! whose role and merchant scope the handlers check (API.md §2).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use super::observe::RequestContext;
use crate::app::AppState;
use crate::auth::{ApiKey, Role};

/// The authenticated key behind a request.
pub struct Caller(pub Arc<ApiKey>);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state);
        if caller.is_err() {
            // A security event: the monitor watches for credential stuffing per source.
            let source = ClientSource::of(parts);
            state
                .monitor
                .observe(crate::monitor::Input::AuthFailure { source });
        }
        caller
    }
}

fn authenticate(parts: &mut Parts, state: &Arc<AppState>) -> Result<Caller, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthenticated {
            message: "no API key: send it as Authorization: Bearer <key>".into(),
        })?;
    let presented = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::Unauthenticated {
            message: "the Authorization header must be \"Bearer <key>\"".into(),
        })?;
    let key =
        state
            .keys
            .load()
            .authenticate(presented)
            .ok_or_else(|| ApiError::Unauthenticated {
                message: "the API key is not valid".into(),
            })?;
    if let Some(context) = parts.extensions.get::<Arc<RequestContext>>() {
        context.set_api_key_id(&key.id);
    }
    Ok(Caller(key))
}

impl Caller {
    /// Fails with 403 unless the key's role includes `needed`.
    pub fn require_role(&self, needed: Role) -> Result<(), ApiError> {
        if self.0.has_role(needed) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                message: format!(
                    "this API key has role {}; this operation needs role {needed} or higher",
                    self.0.role
                ),
            })
        }
    }

    /// Fails with 403 unless the key may act for `merchant_id`. The answer is the same
    /// whether or not the merchant exists (API.md §2).
    pub fn require_merchant(&self, merchant_id: &str) -> Result<(), ApiError> {
        if self.0.may_act_for(merchant_id) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                message: format!("this API key may not act for merchant {merchant_id}"),
            })
        }
    }
}

/// The client's address as the monitor names sources (`unknown` when the transport gave
/// none).
pub struct ClientSource(pub String);

impl ClientSource {
    pub fn of(parts: &Parts) -> String {
        parts
            .extensions
            .get::<crate::server::ClientAddr>()
            .map_or_else(|| "unknown".to_owned(), |a| a.0.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientSource {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientSource(ClientSource::of(parts)))
    }
}
