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
    /// The body did not arrive within `server.body_timeout_ms`; the connection is closed.
    #[error("the request body did not arrive in time; send it at once and retry")]
    BodyTimeout,
    #[error("no such {kind}: {id}")]
    NotFound { kind: &'static str, id: String },
    #[error("no route for {method} {path}; see /openapi.json for the API")]
    RouteNotFound { method: String, path: String },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("{message}")]
    Unauthenticated { message: String },
    /// The key has an authenticator and this operation needs a fresh code from it
    /// (`otp_required`, `otp_invalid`).
    #[error("{message}")]
    SecondFactor { code: &'static str, message: String },
    /// Too many failed attempts (wrong codes for one key): 429 with `Retry-After`.
    #[error("{message}")]
    TooManyAttempts {
        code: &'static str,
        message: String,
        retry_after_s: u64,
    },
    #[error("{message}")]
    Forbidden { message: String },
    /// Refused by a security decision (e.g. a blocked terminal): 403 with its own code.
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    /// The request conflicts with the current state of an object.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        param: Option<String>,
    },
    /// API.md §4: a reused or still-running idempotency key (409 or 422).
    #[error("{message}")]
    Idempotency {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// The provider declined (402), failed to answer (502) or timed out (504). A declined
    /// payment rides along in `error.payment`.
    #[error("{message}")]
    Provider {
        status: StatusCode,
        code: String,
        message: String,
        payment: Option<Box<serde_json::Value>>,
    },
    /// The plugin trapped, ran out of time or memory, or broke its contract.
    #[error("{message}")]
    Plugin { message: String },
    /// Temporarily unable to serve; retry.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
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
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound { .. } | ApiError::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthenticated { .. } | ApiError::SecondFactor { .. } => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden { .. } | ApiError::Denied { .. } => StatusCode::FORBIDDEN,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Idempotency { status, .. } | ApiError::Provider { status, .. } => *status,
            ApiError::Plugin { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn error_type(&self) -> ErrorType {
        match self {
            ApiError::InvalidRequest { .. }
            | ApiError::Unprocessable { .. }
            | ApiError::UnsupportedMediaType { .. }
            | ApiError::PayloadTooLarge { .. }
            | ApiError::BodyTimeout
            | ApiError::NotFound { .. }
            | ApiError::RouteNotFound { .. }
            | ApiError::MethodNotAllowed { .. }
            | ApiError::Conflict { .. } => ErrorType::InvalidRequestError,
            ApiError::Unauthenticated { .. } | ApiError::SecondFactor { .. } => {
                ErrorType::AuthenticationError
            }
            ApiError::TooManyAttempts { .. } => ErrorType::RateLimitError,
            ApiError::Forbidden { .. } | ApiError::Denied { .. } => ErrorType::PermissionError,
            ApiError::Idempotency { .. } => ErrorType::IdempotencyError,
            ApiError::Provider { .. } => ErrorType::ProviderError,
            ApiError::Plugin { .. } => ErrorType::PluginError,
            ApiError::Unavailable { .. } | ApiError::Internal => ErrorType::ApiError,
        }
    }

    pub fn code(&self) -> &str {
        match self {
            ApiError::InvalidRequest { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Idempotency { code, .. }
            | ApiError::Unavailable { code, .. }
            | ApiError::Denied { code, .. }
            | ApiError::SecondFactor { code, .. }
            | ApiError::TooManyAttempts { code, .. } => code,
            ApiError::Provider { code, .. } => code,
            ApiError::Plugin { .. } => "plugin_fault",
            ApiError::UnsupportedMediaType { .. } => "content_type_invalid",
            ApiError::PayloadTooLarge { .. } => "body_too_large",
            ApiError::BodyTimeout => "body_timeout",
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
            ApiError::InvalidRequest { param, .. }
            | ApiError::Unprocessable { param, .. }
            | ApiError::Conflict { param, .. } => param.as_deref(),
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
    pub code: String,
    /// What was wrong and, where possible, how to fix it.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// The `Request-Id` of this response.
    pub request_id: String,
    /// The failed payment, when a payment was declined (402).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payment: Option<serde_json::Value>,
}

impl ApiError {
    /// The JSON body of this error (API.md §3), for the current request.
    pub fn body(&self) -> String {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.error_type(),
                code: self.code().to_owned(),
                message: self.to_string(),
                param: self.param().map(str::to_owned),
                request_id: request_id::current(),
                payment: match self {
                    ApiError::Provider { payment, .. } => payment.as_deref().cloned(),
                    _ => None,
                },
            },
        };
        serde_json::to_string(&body).expect("error bodies always serialize")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, ApiError::Internal) {
            tracing::error!(code = self.code(), "answered 500");
        }
        let mut response = (self.status(), self.body()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(self, ApiError::Unauthenticated { .. }) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::TooManyAttempts { retry_after_s, .. } = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        if matches!(self, ApiError::Unavailable { .. }) {
            // A hint for clients and proxies; the idempotency key makes any retry safe.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
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
