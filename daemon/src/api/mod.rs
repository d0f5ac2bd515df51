//! The HTTP API: routes, authentication, the error model and request parsing. This is the
//! only module that knows HTTP and JSON; it turns requests into calls on the rest of the
//! daemon and their results into responses.

mod alerts;
mod auth;
mod cashier;
pub mod cashier_page;
pub mod cashier_text;
mod console;
pub mod error;
pub mod events;
mod html;
mod idempotency;
pub(crate) mod json;
mod list;
mod merchants;
mod notify;
mod observe;
mod ops;
mod payments;
mod plugins;
mod reconciliations;
mod request_id;
mod second_factor;
#[cfg(feature = "test-hooks")]
mod test_hooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(title = "paygate", description = "The paygate payment gateway API (API.md)."),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorBody, error::ErrorDetail, error::ErrorType))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The error answers any operation can give (API.md §3): the document lists them on every
/// operation, so that a client (or a fuzzer) never meets an undocumented status. 401 and 403
/// only where a key is needed.
fn document_errors(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    let common = [
        (
            "400",
            "The request is malformed (the error names the parameter)",
        ),
        ("404", "No such object or route"),
        ("405", "Method not allowed on this path"),
        ("413", "Body larger than the limit"),
        ("415", "Content-Type is not application/json"),
        (
            "500",
            "Internal error (the request id identifies it in the log)",
        ),
        ("503", "Temporarily unavailable; retry"),
    ];
    let secured = [
        ("401", "Missing or unknown API key"),
        ("403", "The key's role or merchant scope does not allow it"),
    ];
    // Every POST that changes something takes an Idempotency-Key (API.md §4).
    let idempotent = [
        (
            "409",
            "A request with this Idempotency-Key is still being processed",
        ),
        (
            "422",
            "The request cannot be carried out (e.g. the key was used for another request)",
        ),
    ];
    for item in openapi.paths.paths.values_mut() {
        if let Some(post) = item.post.as_mut() {
            for (status, description) in idempotent {
                post.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error(description));
            }
        }
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let needs_key = operation
                .security
                .as_ref()
                .is_some_and(|requirements| !requirements.is_empty());
            let extra = if needs_key { &secured[..] } else { &[][..] };
            for (status, description) in common.iter().chain(extra) {
                operation
                    .responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| error(description));
            }
        }
    }
}

/// The API router for `state`, with its OpenAPI document installed in the state.
pub fn router(state: Arc<AppState>) -> Router {
    let (router, openapi) = router_and_openapi(state.clone());
    let json = serde_json::to_vec_pretty(&openapi).expect("the OpenAPI document serializes");
    let _ = state.openapi_json.set(axum::body::Bytes::from(json));
    router
}

/// The whole API as one axum router, and its OpenAPI document (built from the same routes,
/// so the two cannot disagree about which operations exist).
pub fn router_and_openapi(state: Arc<AppState>) -> (Router, utoipa::openapi::OpenApi) {
    let (routes, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json))
        .routes(routes!(
            merchants::list_merchants,
            merchants::create_merchant
        ))
        .routes(routes!(merchants::get_merchant, merchants::update_merchant))
        .merge(
            // The route that carries images: its own body limit.
            OpenApiRouter::new()
                .routes(routes!(
                    merchants::create_activation,
                    merchants::list_activations
                ))
                .layer(DefaultBodyLimit::max(state.upload_bytes_max))
                .layer(axum::Extension(json::BodyLimit(state.upload_bytes_max))),
        )
        .routes(routes!(merchants::get_activation))
        .routes(routes!(
            merchants::create_bank_account,
            merchants::list_bank_accounts
        ))
        .routes(routes!(merchants::get_bank_account))
        .routes(routes!(merchants::audit_log))
        .routes(routes!(payments::create_payment, payments::list_payments))
        .routes(routes!(payments::get_payment))
        .routes(routes!(payments::cancel_payment))
        .routes(routes!(payments::create_refund, payments::list_refunds))
        .routes(routes!(payments::get_refund))
        .routes(routes!(notify::notify))
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(alerts::alert_stream))
        .routes(routes!(alerts::ack_alert))
        .routes(routes!(alerts::list_blocks))
        .routes(routes!(alerts::lift_block))
        .routes(routes!(cashier::cashier_page))
        .routes(routes!(cashier::choose_wallet))
        .routes(routes!(cashier::cashier_status))
        .merge(
            // The route that carries bill files: its own body limit.
            OpenApiRouter::new()
                .routes(routes!(
                    reconciliations::create_reconciliation,
                    reconciliations::list_reconciliations
                ))
                .layer(DefaultBodyLimit::max(state.bill_upload_bytes_max))
                .layer(axum::Extension(json::BodyLimit(
                    state.bill_upload_bytes_max,
                ))),
        )
        .routes(routes!(reconciliations::get_reconciliation))
        .routes(routes!(reconciliations::list_discrepancies))
        .routes(routes!(plugins::list_plugins))
        .routes(routes!(plugins::reload_plugins))
        .split_for_parts();
    let mut openapi = openapi;
    document_errors(&mut openapi);
    #[cfg(feature = "test-hooks")]
    let routes = routes
        .route("/v1/_test/echo", axum::routing::post(test_hooks::echo))
        .route(
            "/v1/_test/stall-store",
            axum::routing::post(test_hooks::stall_store),
        );
    let router = routes
        .merge(console::router())
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.body_bytes_max))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state);
    (router, openapi)
}

async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::RouteNotFound {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
