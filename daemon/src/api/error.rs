//! The error model of API.md §3, in one place: every failure a handler can return is an
//! [`ApiError`], and [`ApiError::into_response`] is the only mapping to HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

use super::request_id;

/// The `type` field of an error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequestError,
    AuthenticationError,
    PermissionError,
    IdempotencyError,
    ProviderError,
    PluginError,
    RateLimitError,
    ApiError,
}

/// Every error the API answers with.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The request is malformed or violates a rule; `param` names the offending field.
    #[error("{message}")]
    InvalidRequest {
        code: &'static str,
        message: String,
        param: Option<String>,
    },
    /// The request is well-formed but cannot be carried out as asked.
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        param: Option<String>,
    },
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    #[error("request body is larger than the {limit_bytes}-byte limit")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("no such {kind}: {id}")]
    NotFound { kind: &'static str, id: String },
    #[error("no route for {method} {path}; see /openapi.json for the API")]
    RouteNotFound { method: String, path: String },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("{message}")]
    Unauthenticated { message: String },
    #[error("{message}")]
    Forbidden { message: String },
    /// A fault on our side. The message is generic on purpose; details go to the log.
    #[error("internal error; the request id identifies it in the daemon's log")]
    Internal,
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError::InvalidRequest {
            code,
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound { .. } | ApiError::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn error_type(&self) -> ErrorType {
        match self {
            ApiError::InvalidRequest { .. }
            | ApiError::Unprocessable { .. }
            | ApiError::UnsupportedMediaType { .. }
            | ApiError::PayloadTooLarge { .. }
            | ApiError::NotFound { .. }
            | ApiError::RouteNotFound { .. }
            | ApiError::MethodNotAllowed { .. } => ErrorType::InvalidRequestError,
            ApiError::Unauthenticated { .. } => ErrorType::AuthenticationError,
            ApiError::Forbidden { .. } => ErrorType::PermissionError,
            ApiError::Internal => ErrorType::ApiError,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest { code, .. } | ApiError::Unprocessable { code, .. } => code,
            ApiError::UnsupportedMediaType { .. } => "content_type_invalid",
            ApiError::PayloadTooLarge { .. } => "body_too_large",
            ApiError::NotFound { .. } => "resource_missing",
            ApiError::RouteNotFound { .. } => "route_not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Unauthenticated { .. } => "api_key_invalid",
            ApiError::Forbidden { .. } => "permission_denied",
            ApiError::Internal => "internal_error",
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            ApiError::InvalidRequest { param, .. } | ApiError::Unprocessable { param, .. } => {
                param.as_deref()
            }
            _ => None,
        }
    }
}

/// The body of every non-2xx response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for the client and for whoever reads its logs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: ErrorType,
    /// Stable machine-readable code, e.g. `amount_invalid`.
    pub code: &'static str,
    /// What was wrong and, where possible, how to fix it.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// The `Request-Id` of this response.
    pub request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, ApiError::Internal) {
            tracing::error!(code = self.code(), "answered 500");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.error_type(),
                code: self.code(),
                message: self.to_string(),
                param: self.param().map(str::to_owned),
                request_id: request_id::current(),
            },
        };
        let bytes = serde_json::to_vec(&body).expect("error bodies always serialize");
        let mut response = (self.status(), bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(self, ApiError::Unauthenticated { .. }) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_its_documented_status_and_type() {
        let cases = [
            (
                ApiError::invalid("x", "m", None),
                400,
                ErrorType::InvalidRequestError,
            ),
            (
                ApiError::PayloadTooLarge { limit_bytes: 1 },
                413,
                ErrorType::InvalidRequestError,
            ),
            (
                ApiError::NotFound {
                    kind: "merchant",
                    id: "m_x".into(),
                },
                404,
                ErrorType::InvalidRequestError,
            ),
            (
                ApiError::Unauthenticated {
                    message: "m".into(),
                },
                401,
                ErrorType::AuthenticationError,
            ),
            (
                ApiError::Forbidden {
                    message: "m".into(),
                },
                403,
                ErrorType::PermissionError,
            ),
            (ApiError::Internal, 500, ErrorType::ApiError),
        ];
        for (error, status, kind) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.error_type(), kind, "{error:?}");
        }
    }
}
