//! Request bodies and query strings, parsed strictly: JSON only, within the size limit,
//! unknown fields rejected with `param` naming them (API.md §1).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::sync::Arc;

use super::error::ApiError;
use crate::app::AppState;

/// A JSON request body of type `T`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::UnsupportedMediaType {
                message: format!(
                    "request bodies must be JSON with Content-Type: application/json (got \"{}\")",
                    content_type.chars().take(100).collect::<String>()
                ),
            });
        }
        let RawBody(body) = RawBody::from_request(req, state).await?;
        parse_json(&body).map(ApiJson)
    }
}

/// A route's own body limit, where it is not `server.body_bytes_max` (the routes that carry
/// files): set beside axum's `DefaultBodyLimit`, so that a 413 names the limit that applied.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A request body as bytes, within the size limit (413) and the body deadline (408), every
/// failure in the error model (axum's own `Bytes` answers in plain text).
pub struct RawBody(pub Bytes);

impl FromRequest<Arc<AppState>> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let limit_bytes = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(state.body_bytes_max, |limit| limit.0);
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge { limit_bytes }
                } else if body_deadline_passed(&rejection) {
                    ApiError::BodyTimeout
                } else {
                    ApiError::invalid("body_unreadable", rejection.body_text(), None)
                }
            })
    }
}

/// Whether reading the body failed because its deadline passed (the transport's error sits
/// somewhere in the rejection's source chain).
fn body_deadline_passed(rejection: &axum::extract::rejection::BytesRejection) -> bool {
    crate::server::is_body_deadline(rejection)
}

/// Path parameters of type `T`; a segment that is not UTF-8 (or not a `T`) is a 400 in the
/// error model.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection| {
                ApiError::invalid(
                    "path_invalid",
                    format!("invalid path: {}", rejection.body_text()),
                    None,
                )
            })
    }
}

/// Parses `body` as one JSON object of type `T`, mapping every failure to a 400 that names the
/// field at fault.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    from_value(parse_object(body)?)
}

/// Parses `body` as one JSON object whose objects, at any depth, never repeat a key: when two
/// parsers disagree on which of two `amount`s counts, the second is a classic bypass, so a
/// repeated key is refused naming it.
pub fn parse_object(body: &[u8]) -> Result<Value, ApiError> {
    // serde would accept an array for a struct (fields by position); a body is always an object.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
    {
        return Err(ApiError::invalid(
            "parameter_invalid",
            "the request body must be a JSON object",
            None,
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let UniqueKeys(value) = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| field_error(e.path().to_string(), e.into_inner()))?;
    deserializer.end().map_err(|e| {
        ApiError::invalid("json_invalid", format!("body is not valid JSON: {e}"), None)
    })?;
    Ok(value)
}

/// Deserializes a parsed body into `T`, naming the field at fault.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| field_error(e.path().to_string(), e.into_inner()))
}

/// A JSON value built as serde_json builds one, except that an object repeating a key is an
/// error (serde_json keeps the last).
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(UniqueKeys(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                // The key as a JSON string, so that any key (backticks included) reads back.
                let quoted = Value::String(key).to_string();
                return Err(serde::de::Error::custom(format!("{DUPLICATE}{quoted}")));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(UniqueKeys(Value::Object(object)))
    }
}

/// How [`UniqueKeysVisitor`] starts its error (the key follows as a JSON string), so that
/// [`data_error`] can name the field.
const DUPLICATE: &str = "duplicate key ";

fn field_error(path: String, error: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::invalid(
            "json_invalid",
            format!("body is not valid JSON: {error}"),
            None,
        ),
        Category::Data => data_error(path, &error.to_string()),
    }
}

/// Turns a serde "data" error at `path` into an error naming the parameter. For an unknown
/// field, serde_path_to_error's path already ends with the field's name.
fn data_error(path: String, message: &str) -> ApiError {
    if let Some(key) = message.strip_prefix(DUPLICATE).and_then(|rest| {
        // The quoted key, then serde_json's " at line .. column ..".
        serde_json::Deserializer::from_str(rest)
            .into_iter::<String>()
            .next()?
            .ok()
    }) {
        let param = if path == "." {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        };
        return ApiError::invalid(
            "parameter_duplicate",
            format!("parameter \"{param}\" appears more than once; send each field once"),
            Some(&param),
        );
    }
    let param = if path == "." { None } else { Some(path) };
    if unknown_field_name(message).is_some() {
        let param = param.unwrap_or_default();
        return ApiError::invalid(
            "parameter_unknown",
            format!(
                "unknown parameter \"{param}\"; this API rejects fields it does not know, check the spelling"
            ),
            Some(&param),
        );
    }
    let message = match &param {
        Some(param) => format!("invalid parameter \"{param}\": {message}"),
        None => format!("invalid request: {message}"),
    };
    ApiError::invalid("parameter_invalid", message, param.as_deref())
}

/// The field name in serde's "unknown field `x`, expected ..." message.
fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(name, _)| name)
}

/// A query string of type `T`, unknown parameters rejected.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|e| data_error(e.path().to_string(), &e.into_inner().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        amount: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    fn param_and_code(body: &str) -> (Option<String>, &'static str) {
        match parse_json::<Outer>(body.as_bytes()).unwrap_err() {
            ApiError::InvalidRequest { code, param, .. } => (param, code),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        assert_eq!(
            param_and_code(r#"{"amount":"1","amuont":"2"}"#),
            (Some("amuont".into()), "parameter_unknown")
        );
        assert_eq!(
            param_and_code(r#"{"amount":"1","inner":{"name":"a","nmae":"b"}}"#),
            (Some("inner.nmae".into()), "parameter_unknown")
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        assert_eq!(
            param_and_code(r#"{"amount":12.5}"#),
            (Some("amount".into()), "parameter_invalid")
        );
        assert_eq!(param_and_code(r#"{}"#), (None, "parameter_invalid"));
        assert_eq!(
            param_and_code(r#"["1", null]"#),
            (None, "parameter_invalid")
        );
    }

    #[test]
    fn broken_json_and_trailing_garbage_are_refused() {
        assert_eq!(param_and_code(r#"{"amount":"#), (None, "json_invalid"));
        assert_eq!(
            param_and_code(r#"{"amount":"1"} x"#),
            (None, "json_invalid")
        );
        assert_eq!(param_and_code(""), (None, "json_invalid"));
        assert_eq!(param_and_code("\u{feff}{}"), (None, "json_invalid"));
    }
}
