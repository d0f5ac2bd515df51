//! API.md §4 at the HTTP edge: the `Idempotency-Key` header, and the fingerprint that
//! decides whether a repeated key carries "the same request" (method, path, canonical body).

use std::marker::PhantomData;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::json::ApiJson;
use crate::app::AppState;
use crate::idempotency::Answer;
use crate::store::Claim;

/// Longest key accepted (API.md §4: 1..255 printable ASCII).
const KEY_CHARS_MAX: usize = 255;

/// A JSON body, with the idempotency key and the request's fingerprint. The body is read and
/// parsed as JSON on extraction, but typed (validated field by field) only by [`body`],
/// which a handler calls after checking the caller's role: a caller who may not make the
/// request learns nothing of its shape.
///
/// [`body`]: Idempotent::body
pub struct Idempotent<T> {
    raw: serde_json::Value,
    pub key: String,
    pub fingerprint: String,
    typed: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Idempotent<T> {
    /// The typed body (once; later calls see an empty body).
    pub fn body(&mut self) -> Result<T, ApiError> {
        super::json::from_value(std::mem::take(&mut self.raw))
    }
}

impl<T> Idempotent<T> {
    /// The claim for `api_key_id`.
    pub fn claim(&self, api_key_id: &str) -> Claim {
        Claim {
            api_key_id: api_key_id.to_owned(),
            key: self.key.clone(),
            fingerprint: self.fingerprint.clone(),
            lease: Default::default(),
        }
    }
}

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for Idempotent<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let key = idempotency_key(req.headers().get("idempotency-key"))?;
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let ApiJson(raw): ApiJson<serde_json::Value> = ApiJson::from_request(req, state).await?;
        // serde_json's map is ordered by key: `to_string` is a canonical form.
        let canonical = raw.to_string();
        let fingerprint = hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            format!("{method}\n{path}\n{canonical}").as_bytes(),
        ));
        Ok(Idempotent {
            raw,
            key,
            fingerprint,
            typed: PhantomData,
        })
    }
}

/// The validated `Idempotency-Key`.
pub fn idempotency_key(header: Option<&HeaderValue>) -> Result<String, ApiError> {
    let Some(value) = header else {
        return Err(ApiError::invalid(
            "idempotency_key_missing",
            "this request changes something: send an Idempotency-Key header (a unique string per operation, e.g. a UUID), and resend the same key when you retry",
            None,
        ));
    };
    let valid = value.to_str().ok().filter(|k| {
        (1..=KEY_CHARS_MAX).contains(&k.len()) && k.bytes().all(|b| (0x20..0x7f).contains(&b))
    });
    valid.map(str::to_owned).ok_or_else(|| {
        ApiError::invalid(
            "idempotency_key_invalid",
            format!("Idempotency-Key must be 1 to {KEY_CHARS_MAX} printable ASCII characters"),
            None,
        )
    })
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Bytes::from(self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if self.replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}
