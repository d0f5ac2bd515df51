//! `GET /v1/merchants` and `GET /v1/merchants/{id}` (API.md §8): the merchants a key may see.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::json::ApiQuery;
use super::list::{List, PageParams};
use crate::app::AppState;
use crate::auth::Role;
use crate::merchants::{Merchant, MerchantSource};

/// A merchant.
#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantObject {
    pub id: String,
    /// Always `"merchant"`.
    pub object: &'static str,
    pub name: String,
    /// `active` for merchants declared in the config.
    pub status: &'static str,
    /// `config` (declared in the config file) or `api` (created through the API).
    pub source: &'static str,
    /// Providers configured for the merchant.
    pub providers: Vec<String>,
}

impl From<&Merchant> for MerchantObject {
    fn from(m: &Merchant) -> Self {
        let (status, source) = match m.source {
            MerchantSource::Config => ("active", "config"),
        };
        MerchantObject {
            id: m.id.clone(),
            object: "merchant",
            name: m.name.clone(),
            status,
            source,
            providers: m.providers.keys().cloned().collect(),
        }
    }
}

/// Lists the merchants this key may act for (all of them for admin keys).
#[utoipa::path(get, path = "/v1/merchants", tag = "merchants",
    params(PageParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "A page of merchants", body = List<MerchantObject>),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Role below erp", body = ErrorBody),
    ))]
pub async fn list_merchants(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<List<MerchantObject>>, ApiError> {
    caller.require_role(Role::Erp)?;
    let limit = page.limit()?;
    let visible = state
        .merchants
        .iter_from(page.starting_after.as_deref())
        .filter(|m| caller.0.may_act_for(&m.id))
        .map(MerchantObject::from);
    Ok(Json(List::page(visible, limit)))
}

/// One merchant.
#[utoipa::path(get, path = "/v1/merchants/{id}", tag = "merchants",
    params(("id" = String, Path, description = "Merchant id, m_...")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The merchant", body = MerchantObject),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Role below erp, or merchant outside the key's scope", body = ErrorBody),
        (status = 404, description = "No such merchant (admin keys only)", body = ErrorBody),
    ))]
pub async fn get_merchant(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MerchantObject>, ApiError> {
    caller.require_role(Role::Erp)?;
    // Scope before existence, so a merchant outside the scope looks exactly like a missing one.
    caller.require_merchant(&id)?;
    state
        .merchants
        .get(&id)
        .map(|m| Json(MerchantObject::from(m)))
        .ok_or(ApiError::NotFound {
            kind: "merchant",
            id,
        })
}
