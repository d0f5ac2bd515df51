//! The console's session: cookies, the signed-in key, CSRF tokens, and the headers every
//! page carries. A session id is 256 random bits, only ever in the `HttpOnly`,
//! `SameSite=Strict` cookie; the store keeps its SHA-256. A new id is made at each log-in
//! and an id the browser brings is never adopted (no session fixation).

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;

use super::view::Lang;
use crate::api::error::ApiError;
use crate::app::AppState;
use crate::auth::{ApiKey, Role};
use crate::domain::records::SessionRecord;

pub const SESSION_COOKIE: &str = "pg_console";
/// The log-in form's CSRF token (double-submit: the form and this cookie must agree).
pub const LOGIN_COOKIE: &str = "pg_console_login";
pub const LANG_COOKIE: &str = "pg_console_lang";
/// A session's last use is written at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;

/// 32 random bytes, base64url: a session id, a CSRF token, an idempotency key.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub use crate::api::html::nonce;

pub fn id_hash(id: &str) -> [u8; 32] {
    crate::auth::sha256(id)
}

/// Whether two tokens are equal, in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name`, if the request carries it once.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v);
    let first = found.next();
    // Two cookies of one name (one planted for a parent path or domain): trust neither.
    if found.next().is_some() { None } else { first }
}

/// A `Set-Cookie` for the console's paths: `HttpOnly`, `SameSite=Strict`, `Secure` under
/// TLS; `max_age_s` 0 removes it.
pub fn set_cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/console; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{secure}")
        .parse()
        .expect("tokens are base64url")
}

pub fn is_tls(state: &AppState) -> bool {
    state.config.server.tls.is_some()
}

/// The page's language: the console's own switch (a cookie), else `Accept-Language`.
pub fn language(headers: &HeaderMap) -> Lang {
    Lang::negotiate(
        cookie(headers, LANG_COOKIE),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// A browser says when another site's page sends a request; the console takes none.
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
}

/// A signed-in session.
pub struct Signed {
    pub id_hash: [u8; 32],
    pub record: SessionRecord,
    pub key: Arc<ApiKey>,
}

/// Why there is no session.
pub enum NoSession {
    /// The request brought no session cookie.
    Absent,
    /// It brought one that is unknown, timed out, or whose key changed.
    Ended,
}

/// The session the request's cookie names, if it is still good; its last use is recorded.
pub async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Result<Signed, NoSession>, ApiError> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(Err(NoSession::Absent));
    };
    let id_hash = id_hash(id);
    let Some(mut record) = state.store.session(&id_hash).await? else {
        return Ok(Err(NoSession::Ended));
    };
    let now = state.clock.now_ms();
    let settings = &state.console;
    let key = state.keys.load().by_id(&record.key_id);
    let good = !timed_out(&record, now, settings)
        && key.as_ref().is_some_and(|k| still_its_key(&record, k));
    let Some(key) = key.filter(|_| good) else {
        state.store.remove_session(&id_hash).await?;
        return Ok(Err(NoSession::Ended));
    };
    // Written at most every minute, and often enough that the idle timeout is kept to a
    // tenth of itself.
    if now - record.last_seen_at_ms >= TOUCH_EVERY_MS.min(settings.idle_timeout_ms / 10) {
        let before = record.clone();
        record.last_seen_at_ms = now;
        // Only if it is still there: a log-out meanwhile stays a log-out.
        if !state
            .store
            .touch_session(&id_hash, &before, &record)
            .await?
        {
            return Ok(Err(NoSession::Ended));
        }
    }
    Ok(Ok(Signed {
        id_hash,
        record,
        key,
    }))
}

/// Whether `session` is past its idle or absolute time at `now`.
pub fn timed_out(
    session: &SessionRecord,
    now: i64,
    settings: &crate::config::ConsoleSettings,
) -> bool {
    now - session.created_at_ms > settings.absolute_timeout_ms
        || now - session.last_seen_at_ms > settings.idle_timeout_ms
}

/// Whether `key` is still the key `session` was opened with: the same value, a role that
/// may use the console, the same authenticator.
fn still_its_key(session: &SessionRecord, key: &ApiKey) -> bool {
    key.has_role(Role::Erp)
        && key.digest == session.key_digest
        && key
            .second_factor
            .as_ref()
            .is_some_and(|f| f.fingerprint() == session.factor)
}

/// Where a request without a session goes: the log-in page (saying the session ended, if
/// it did), the stale cookie removed.
pub fn to_login(state: &AppState, why: NoSession) -> Response {
    let target = match why {
        NoSession::Absent => "/console/login",
        NoSession::Ended => "/console/login?ended=1",
    };
    let mut response = redirect(target);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, is_tls(state)),
    );
    response
}

pub fn redirect(target: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(target).unwrap_or(HeaderValue::from_static("/console")),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A console page: nothing may run, load or frame it but its own nonce'd style; never cached.
pub fn page(status: StatusCode, body: String, nonce: &str) -> Response {
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept-Language, Cookie"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    let policy = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        policy.parse().expect("a hex nonce is a valid header value"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_read_only_when_it_is_there_once() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; pg_console=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "pg"), None);
        headers.append(header::COOKIE, "pg_console=planted".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), None);
    }

    #[test]
    fn tokens_compare_whole() {
        let t = random_token();
        assert_eq!(t.len(), 43);
        assert!(same_token(&t, &t.clone()));
        assert!(!same_token(&t, &random_token()));
        assert!(!same_token(&t, &t[..42]));
        assert!(!same_token("", ""));
    }

    fn settings() -> crate::config::ConsoleSettings {
        crate::config::ConsoleSettings {
            refund_confirm_above: Default::default(),
            idle_timeout_ms: 900_000,
            absolute_timeout_ms: 8 * 3_600_000,
            login_failures_per_minute: 5,
        }
    }

    fn session(created_at_ms: i64, last_seen_at_ms: i64) -> SessionRecord {
        SessionRecord {
            key_id: "key_a".into(),
            key_digest: "d".into(),
            factor: "f".into(),
            csrf: "c".into(),
            created_at_ms,
            last_seen_at_ms,
        }
    }

    #[test]
    fn a_session_ends_when_idle_or_old_enough() {
        let s = settings();
        assert!(
            !timed_out(&session(0, 0), 900_000, &s),
            "idle exactly the limit"
        );
        assert!(timed_out(&session(0, 0), 900_001, &s), "idle past it");
        let busy = session(0, 8 * 3_600_000 - 1_000);
        assert!(!timed_out(&busy, 8 * 3_600_000, &s));
        assert!(
            timed_out(&busy, 8 * 3_600_000 + 1, &s),
            "absolute, however busy"
        );
    }

    #[test]
    fn a_session_belongs_to_its_keys_value_role_and_authenticator() {
        let factor = crate::auth::Authenticator::new("key_a", &[7; 20]).unwrap();
        let mut record = session(0, 0);
        record.factor = factor.fingerprint().to_owned();
        let key = ApiKey {
            id: "key_a".into(),
            role: Role::Erp,
            merchants: Default::default(),
            is_demo: false,
            digest: "d".into(),
            second_factor: Some(factor),
        };
        assert!(still_its_key(&record, &key));
        let replaced = ApiKey {
            digest: "e".into(),
            ..key.clone()
        };
        assert!(!still_its_key(&record, &replaced));
        let lowered = ApiKey {
            role: Role::Pos,
            ..key.clone()
        };
        assert!(!still_its_key(&record, &lowered));
        let reset = ApiKey {
            second_factor: Some(crate::auth::Authenticator::new("key_a", &[8; 20]).unwrap()),
            ..key.clone()
        };
        assert!(!still_its_key(&record, &reset));
        let removed = ApiKey {
            second_factor: None,
            ..key
        };
        assert!(!still_its_key(&record, &removed));
    }

    #[test]
    fn cookies_are_strict_and_http_only() {
        let c = set_cookie(SESSION_COOKIE, "x", 60, true);
        let c = c.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/console",
            "Max-Age=60",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(
            !set_cookie("a", "b", 0, false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
}
