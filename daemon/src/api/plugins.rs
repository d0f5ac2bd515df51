//! `GET /v1/plugins` and `POST /v1/plugins/reload` (API.md §11), for admin keys.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::list::List;
use crate::app::AppState;
use crate::auth::Role;
use crate::plugins::{self, PluginSummary, types};

/// A loaded plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginObject {
    pub name: String,
    /// Always `"plugin"`.
    pub object: &'static str,
    /// The plugin's own version.
    pub version: String,
    /// The `paygate:provider` WIT version it targets.
    pub world_version: String,
    /// Hex SHA-256 of the component file.
    pub sha256: String,
    pub providers: Vec<ProviderObject>,
    /// RFC 3339.
    pub loaded_at: String,
    /// Calls since it was loaded.
    pub calls: u64,
    /// Calls that trapped, timed out, ran out of memory or broke the contract.
    pub faults: u64,
}

/// A provider a plugin serves.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderObject {
    pub name: String,
    pub display_name: String,
    /// `qr`, `barcode`, `link`.
    pub methods: Vec<&'static str>,
    pub currencies: Vec<String>,
    /// Operations it supports, by WIT name.
    pub operations: Vec<&'static str>,
    /// Payment codes it recognises: digits, one of the prefixes, length in range.
    pub payment_codes: Vec<CodePatternObject>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CodePatternObject {
    pub prefixes: Vec<String>,
    pub min_length: u8,
    pub max_length: u8,
}

impl From<&types::ProviderInfo> for ProviderObject {
    fn from(p: &types::ProviderInfo) -> Self {
        ProviderObject {
            name: p.name.clone(),
            display_name: p.display_name.clone(),
            methods: p
                .methods
                .iter()
                .copied()
                .map(plugins::method_name)
                .collect(),
            currencies: p.currencies.clone(),
            operations: p
                .operations
                .iter()
                .copied()
                .map(plugins::operation_name)
                .collect(),
            payment_codes: p
                .payment_codes
                .iter()
                .map(|c| CodePatternObject {
                    prefixes: c.prefixes.clone(),
                    min_length: c.min_length,
                    max_length: c.max_length,
                })
                .collect(),
        }
    }
}

impl From<PluginSummary> for PluginObject {
    fn from(p: PluginSummary) -> Self {
        PluginObject {
            object: "plugin",
            version: p.version,
            world_version: p.world_version,
            sha256: p.sha256,
            providers: p.providers.iter().map(ProviderObject::from).collect(),
            loaded_at: rfc3339(p.loaded_at),
            calls: p.calls,
            faults: p.faults,
            name: p.name,
        }
    }
}

fn rfc3339(at: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Every loaded plugin.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The loaded plugins", body = List<PluginObject>),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ))]
pub async fn list_plugins(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<List<PluginObject>>, ApiError> {
    caller.require_role(Role::Admin)?;
    let plugins = state.plugins.plugins().into_iter().map(PluginObject::from);
    Ok(Json(List::page(plugins, usize::MAX - 1)))
}

/// What a reload did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadObject {
    /// Always `"plugin_reload"`.
    pub object: &'static str,
    /// The plugins now in service.
    pub plugins: Vec<String>,
    /// Those whose file changed.
    pub changed: Vec<String>,
    /// How many API keys are accepted now.
    pub api_keys: usize,
    /// How many merchants the config declares now.
    pub merchants: usize,
}

/// Re-reads the config file and applies its API keys, its merchants (their providers'
/// settings and keys) and its plugins (from disk), all or nothing, without dropping calls
/// in flight. A config that fails anywhere (a plugin that fails to load or verify, a key
/// file that cannot be read, a merchant's provider no plugin serves) leaves the running set
/// serving.
#[utoipa::path(post, path = "/v1/plugins/reload", tag = "plugins",
    params(("Paygate-OTP" = Option<String>, Header, description = "A fresh code from the key's authenticator, when it has one (API.md §2)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Reloaded", body = ReloadObject),
        (status = 401, description = "Missing or unknown API key, or a code needed: otp_required, otp_invalid", body = ErrorBody),
        (status = 429, description = "Too many wrong codes for the key: otp_attempts_exceeded, Retry-After", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 422, description = "A plugin failed to load or verify; nothing changed", body = ErrorBody),
    ))]
pub async fn reload_plugins(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    source: super::auth::ClientSource,
    headers: axum::http::HeaderMap,
) -> Result<Json<ReloadObject>, ApiError> {
    caller.require_role(Role::Admin)?;
    super::second_factor::require_code(&state, &caller.0, &headers, &source.0).await?;
    let report = state
        .reload()
        .await
        .map_err(|message| ApiError::Unprocessable {
            code: "plugin_reload_failed",
            message: format!(
                "{message}; the running API keys, merchants and plugins stay in service"
            ),
            param: None,
        })?;
    Ok(Json(ReloadObject {
        object: "plugin_reload",
        plugins: report.plugins.plugins,
        changed: report.plugins.changed,
        api_keys: report.api_keys,
        merchants: report.merchants,
    }))
}
