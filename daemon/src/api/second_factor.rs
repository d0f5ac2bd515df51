//! The second factor on the API (API.md §2): for a key with an authenticator enrolled, the
//! sensitive operations need a fresh TOTP code in the `Paygate-OTP` header. A code is
//! accepted once; a retry of an answered request (its Idempotency-Key known to the store) is
//! replayed without one, since it does nothing new.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::app::AppState;
use crate::auth::ApiKey;

/// The header that carries the code.
pub const HEADER: &str = "paygate-otp";

/// Checks the code `headers` carry for `key`, if the key has an authenticator; the code's
/// step is then used up, durably, before the operation goes on.
pub async fn require_code(
    state: &AppState,
    key: &ApiKey,
    headers: &HeaderMap,
    source: &str,
) -> Result<(), ApiError> {
    let code = match headers.get(HEADER) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| invalid("not a 6-digit code"))?),
    };
    check_code(state, key, code, source).await
}

/// [`require_code`] for an operation under an Idempotency-Key: a key the store already
/// knows (an answered request's retry, or one a crash cut short, resumed) needs no new code.
pub async fn require_code_for(
    state: &AppState,
    key: &ApiKey,
    claim: &crate::store::Claim,
    headers: &HeaderMap,
    source: &str,
) -> Result<(), ApiError> {
    if key.second_factor.is_none() {
        return Ok(());
    }
    let store: &dyn crate::store::port::PaymentStore = state.store.as_ref();
    if store.known_claim(claim)?.is_some() {
        return Ok(());
    }
    require_code(state, key, headers, source).await
}

/// [`require_code`] for a code from elsewhere (a console form).
pub async fn check_code(
    state: &AppState,
    key: &ApiKey,
    code: Option<&str>,
    source: &str,
) -> Result<(), ApiError> {
    let Some(factor) = &key.second_factor else {
        return Ok(());
    };
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        return Err(ApiError::SecondFactor {
            code: "otp_required",
            message: format!(
                "this operation needs a fresh code from the authenticator of API key {}: send it in the Paygate-OTP header",
                key.id
            ),
        });
    };
    let now_s = u64::try_from(state.clock.now_ms() / 1000).unwrap_or_default();
    let Some(step) = factor.check(code, now_s) else {
        // A wrong code is a failed authentication: the monitor counts them per source.
        state.monitor.observe(crate::monitor::Input::AuthFailure {
            source: source.to_owned(),
        });
        return Err(invalid("wrong or expired"));
    };
    if !state.store.accept_code_step(&key.id, step.0)? {
        return Err(invalid("already used (wait for the next code)"));
    }
    state.store.durable().await?;
    Ok(())
}

fn invalid(why: &str) -> ApiError {
    ApiError::SecondFactor {
        code: "otp_invalid",
        message: format!("the Paygate-OTP code is {why}"),
    }
}

/// The client's address as the monitor names sources (`unknown` when the transport gave
/// none).
pub struct ClientSource(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientSource {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientSource(
            parts
                .extensions
                .get::<crate::server::ClientAddr>()
                .map_or_else(|| "unknown".to_owned(), |a| a.0.clone()),
        ))
    }
}
