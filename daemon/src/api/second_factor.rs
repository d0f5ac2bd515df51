//! The second factor on the API (API.md §2): for a key with an authenticator enrolled, the
//! sensitive operations need a fresh TOTP code in the `Paygate-OTP` header. A code is
//! accepted once; wrong codes are limited per key; a retry of an answered request is
//! answered from the store without one, since it does nothing new.

use axum::http::HeaderMap;

use super::error::ApiError;
use crate::app::AppState;
use crate::auth::ApiKey;
use crate::idempotency::Answer;
use crate::store::Begin;

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

/// [`require_code`] for an operation under an Idempotency-Key: the answer of a request the
/// key already finished (the same request) is returned from the store without a code, and
/// nothing else skips the check (a key in progress, or used for another request, needs a
/// code like a new one; the claim that follows then answers 409 or 422). `Some` is that
/// stored answer: the caller returns it as it is.
pub async fn code_or_replay(
    state: &AppState,
    key: &ApiKey,
    claim: &crate::store::Claim,
    headers: &HeaderMap,
    source: &str,
) -> Result<Option<Answer>, ApiError> {
    if key.second_factor.is_none() {
        return Ok(None);
    }
    let store: &dyn crate::store::port::PaymentStore = state.store.as_ref();
    if let Some(Begin::Replay { status, body }) = store.known_claim(claim).await? {
        state.metrics.count_idempotency_replay();
        return Ok(Some(Answer::replayed(status, body)));
    }
    require_code(state, key, headers, source)
        .await
        .map(|()| None)
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
        state.metrics.count_second_factor("missing");
        return Err(ApiError::SecondFactor {
            code: "otp_required",
            message: format!(
                "this operation needs a fresh code from the authenticator of API key {}: send it in the Paygate-OTP header",
                key.id
            ),
        });
    };
    let now_ms = state.clock.now_ms();
    // Counted as wrong until it proves right, under one lock: parallel guesses cannot all
    // slip past the limit.
    if let Some(retry_after_s) =
        state
            .code_failures
            .reserve(&key.id, now_ms, crate::auth::totp::WRONG_CODES_MAX)
    {
        state.metrics.count_second_factor("locked");
        tracing::warn!(api_key = %key.id, source, "second-factor code refused: too many wrong ones for the key (otp_attempts_exceeded)");
        return Err(ApiError::TooManyAttempts {
            code: "otp_attempts_exceeded",
            message: format!(
                "too many wrong codes for API key {}: try again in {retry_after_s} s",
                key.id
            ),
            retry_after_s,
        });
    }
    let now_s = u64::try_from(now_ms / 1000).unwrap_or_default();
    let Some(step) = factor.check(code, now_s) else {
        state.metrics.count_second_factor("wrong");
        tracing::warn!(api_key = %key.id, source, "second-factor code wrong or expired (otp_invalid)");
        // A wrong code is a failed authentication: the monitor counts them per source.
        state.monitor.observe(crate::monitor::Input::AuthFailure {
            source: source.to_owned(),
        });
        return Err(invalid("wrong or expired"));
    };
    // Right for its step: not a guess.
    state.code_failures.forgive(&key.id, now_ms);
    if !state.store.accept_code_step(&key.id, step.0).await? {
        state.metrics.count_second_factor("reused");
        tracing::warn!(api_key = %key.id, source, "second-factor code already used (otp_invalid)");
        return Err(invalid("already used (wait for the next code)"));
    }
    state.store.durable().await?;
    state.metrics.count_second_factor("accepted");
    Ok(())
}

fn invalid(why: &str) -> ApiError {
    ApiError::SecondFactor {
        code: "otp_invalid",
        message: format!("the Paygate-OTP code is {why}"),
    }
}
