//! `/console`: the merchant's back office, server-rendered pages for staff and operators
//! (API.md §13). Log-in takes an API key of role `erp` or `admin` with an authenticator
//! enrolled, and a code from it; sessions and used codes live in the store. Pages are
//! HTML without script; every form carries the session's CSRF token; the operations that
//! need a fresh code on the API (refunds above `[console] refund_confirm_above`, lifting a
//! block) need one here too.

mod data;
mod render;
mod session;
mod text;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::auth::ClientSource;
use super::error::ApiError;
use super::html::path_segment;
use super::json::{ApiPath, RawBody};
use super::second_factor;
use crate::app::AppState;
use crate::auth::Role;
use crate::domain::money::Money;
use crate::domain::records::SessionRecord;
use session::{NoSession, Signed};
use view::*;

/// The console's routes (not part of the JSON API's OpenAPI document).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/console", get(today))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/lang/{lang}", get(switch_language))
        .route("/console/payments", get(payments))
        .route("/console/payments/{id}", get(payment))
        .route("/console/payments/{id}/refund", post(refund))
        .route("/console/alerts", get(alerts))
        .route("/console/alerts/{id}/ack", post(ack_alert))
        .route("/console/blocks/{id}/lift", post(lift_block))
        .route("/console/merchants", get(merchants))
}

/// A form's fields, decoded (`application/x-www-form-urlencoded`); a field sent twice or a
/// body that is not a form reads as missing fields.
fn form<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> T {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn query<T: for<'de> Deserialize<'de> + Default>(raw: Option<&str>) -> T {
    serde_urlencoded::from_str(raw.unwrap_or_default()).unwrap_or_default()
}

/// The signed-in page's frame.
fn frame<'a>(
    signed: &'a Signed,
    lang: Lang,
    nonce: &'a str,
    section: Section,
    path: &'a str,
    notice: Option<Notice>,
) -> Frame<'a> {
    Frame {
        lang,
        nonce,
        csrf: &signed.record.csrf,
        key_id: &signed.key.id,
        role: signed.key.role.as_str(),
        section,
        path,
        notice,
    }
}

/// The session, or the response that sends the browser to log in.
macro_rules! signed_in {
    ($state:expr, $headers:expr) => {
        match session::current(&$state, &$headers).await? {
            Ok(signed) => signed,
            Err(why) => return Ok(session::to_login(&$state, why)),
        }
    };
}

/// A form post's checks before anything else: from this site, with this session's token.
fn form_ok(headers: &HeaderMap, signed: &Signed, csrf: &str) -> bool {
    !session::is_cross_site(headers) && session::same_token(csrf, &signed.record.csrf)
}

fn problem_page(signed: &Signed, lang: Lang, path: &str, problem: Problem) -> Response {
    let nonce = session::nonce();
    let status = match problem {
        Problem::NotFound => StatusCode::NOT_FOUND,
        Problem::Forbidden => StatusCode::FORBIDDEN,
    };
    let body = render::problem(
        &frame(signed, lang, &nonce, Section::Payments, path, None),
        problem,
    );
    session::page(status, body, &nonce)
}

// ---- log-in, log-out, language ----

#[derive(Debug, Default, Deserialize)]
struct EndedQuery {
    #[serde(default)]
    ended: Option<String>,
}

async fn login_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    if let Ok(_signed) = session::current(&state, &headers).await? {
        return Ok(session::redirect("/console"));
    }
    let ended = query::<EndedQuery>(raw.as_deref()).ended.is_some();
    Ok(login_form(
        &state,
        &headers,
        StatusCode::OK,
        ended.then_some(LoginProblem::SessionEnded),
    ))
}

/// The log-in page with a fresh form token (in the form and in a cookie).
fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    problem: Option<LoginProblem>,
) -> Response {
    let lang = session::language(headers);
    let nonce = session::nonce();
    let csrf = session::random_token();
    let body = render::login(&LoginView {
        lang,
        nonce: &nonce,
        csrf: &csrf,
        problem,
    });
    let mut response = session::page(status, body, &nonce);
    let secure = session::is_tls(state);
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        session::set_cookie(session::LOGIN_COOKIE, &csrf, 3600, secure),
    );
    if let Some(LoginProblem::TooMany { retry_after_s }) = problem {
        cookies.insert(header::RETRY_AFTER, retry_after_s.into());
    }
    response
}

#[derive(Debug, Default, Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    code: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    ClientSource(source): ClientSource,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let fields: LoginForm = form(&body);
    let fail = |status, problem: LoginProblem| {
        state.metrics.count_console_login(match problem {
            LoginProblem::FormExpired => "form_expired",
            LoginProblem::TooMany { .. } => "limited",
            _ => "refused",
        });
        Ok(login_form(&state, &headers, status, Some(problem)))
    };
    let expected = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or_default();
    if session::is_cross_site(&headers) || !session::same_token(&fields.csrf, expected) {
        return fail(StatusCode::FORBIDDEN, LoginProblem::FormExpired);
    }
    let now = state.clock.now_ms();
    let limit = state.console.login_failures_per_minute;
    if let Some(retry_after_s) = state.login_failures.wait_s(&source, now, limit) {
        return fail(
            StatusCode::TOO_MANY_REQUESTS,
            LoginProblem::TooMany { retry_after_s },
        );
    }
    let refused = || {
        state.login_failures.record(&source, now);
        state.metrics.count_console_login("refused");
        login_form(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some(LoginProblem::Refused),
        )
    };
    let Some(key) = state.keys.load().authenticate(fields.api_key.trim()) else {
        state.monitor.observe(crate::monitor::Input::AuthFailure {
            source: source.clone(),
        });
        return Ok(refused());
    };
    if !key.has_role(Role::Erp) {
        return fail(StatusCode::FORBIDDEN, LoginProblem::RoleTooLow);
    }
    let Some(factor) = key.second_factor.clone() else {
        return fail(StatusCode::FORBIDDEN, LoginProblem::NoSecondFactor);
    };
    match second_factor::check_code(&state, &key, Some(&fields.code), &source).await {
        Ok(()) => {}
        Err(ApiError::SecondFactor { .. }) => return Ok(refused()),
        Err(ApiError::TooManyAttempts { retry_after_s, .. }) => {
            return fail(
                StatusCode::TOO_MANY_REQUESTS,
                LoginProblem::TooMany { retry_after_s },
            );
        }
        Err(other) => return Err(other),
    }
    state.login_failures.clear(&source);
    // A fresh session id, whatever cookie the browser brought (it is ended if it was one).
    if let Some(old) = session::cookie(&headers, session::SESSION_COOKIE) {
        state.store.remove_session(&session::id_hash(old)).await?;
    }
    let id = session::random_token();
    let record = SessionRecord {
        key_id: key.id.clone(),
        key_digest: key.digest.clone(),
        factor: factor.fingerprint().to_owned(),
        csrf: session::random_token(),
        created_at_ms: now,
        last_seen_at_ms: now,
    };
    state
        .store
        .put_session(&session::id_hash(&id), &record)
        .await?;
    // Sessions past their time go when someone logs in (there are few).
    let (idle, absolute) = (
        state.console.idle_timeout_ms,
        state.console.absolute_timeout_ms,
    );
    state
        .store
        .remove_sessions(&|s| now - s.last_seen_at_ms > idle || now - s.created_at_ms > absolute)
        .await?;
    state.store.durable().await?;
    tracing::info!(api_key = %key.id, source = %source, "console log-in");
    state.metrics.count_console_login("ok");
    let mut response = session::redirect("/console");
    let secure = session::is_tls(&state);
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        session::set_cookie(
            session::SESSION_COOKIE,
            &id,
            state.console.absolute_timeout_ms / 1000,
            secure,
        ),
    );
    cookies.append(
        header::SET_COOKIE,
        session::set_cookie(session::LOGIN_COOKIE, "", 0, secure),
    );
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let signed = signed_in!(state, headers);
    let fields: CsrfForm = form(&body);
    if !form_ok(&headers, &signed, &fields.csrf) {
        return Ok(session::redirect("/console"));
    }
    state.store.remove_session(&signed.id_hash).await?;
    state.store.durable().await?;
    Ok(session::to_login(&state, NoSession::Absent))
}

#[derive(Debug, Default, Deserialize)]
struct BackQuery {
    #[serde(default)]
    back: String,
}

/// The language switch: remembered in a cookie, then back to the page it was clicked on
/// (a console path only: never another site).
async fn switch_language(
    State(state): State<Arc<AppState>>,
    ApiPath(lang): ApiPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let lang = Lang::negotiate(Some(&lang), None);
    let back = query::<BackQuery>(raw.as_deref()).back;
    let safe = back.starts_with("/console")
        && !back.contains("//")
        && !back.contains('\\')
        && back.bytes().all(|b| b.is_ascii_graphic());
    let mut response = session::redirect(if safe { &back } else { "/console" });
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            session::LANG_COOKIE,
            lang.param(),
            365 * 86_400,
            session::is_tls(&state),
        ),
    );
    Ok(response)
}

// ---- pages ----

async fn today(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let signed = signed_in!(state, headers);
    let lang = session::language(&headers);
    let day = data::today(&state, &signed.key).await?;
    let nonce = session::nonce();
    let body = render::today(&TodayView {
        frame: frame(&signed, lang, &nonce, Section::Today, "/console", None),
        day,
    });
    Ok(session::page(StatusCode::OK, body, &nonce))
}

#[derive(Debug, Default, Deserialize)]
struct SearchQuery {
    #[serde(default)]
    order_id: String,
    #[serde(default)]
    terminal_id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    after: Option<String>,
}

async fn payments(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let signed = signed_in!(state, headers);
    let lang = session::language(&headers);
    let q: SearchQuery = query(raw.as_deref());
    let path = match &raw {
        Some(raw) if !raw.is_empty() => format!("/console/payments?{raw}"),
        _ => "/console/payments".to_owned(),
    };
    let search = PaymentQuery {
        order_id: q.order_id,
        terminal_id: q.terminal_id,
        status: q.status,
        date: q.date,
    };
    let (rows, next, problem) = match data::filters(&search) {
        Err(problem) => (Vec::new(), None, Some(problem)),
        Ok(filters) => {
            let (rows, next) =
                data::search(&state, &signed.key, &filters, q.after.as_deref()).await?;
            let next = next.map(|after| {
                let mut link = form_urlencoded::Serializer::new(String::new());
                for (name, value) in [
                    ("order_id", &search.order_id),
                    ("terminal_id", &search.terminal_id),
                    ("status", &search.status),
                    ("date", &search.date),
                ] {
                    if !value.is_empty() {
                        link.append_pair(name, value);
                    }
                }
                link.append_pair("after", &after);
                format!("/console/payments?{}", link.finish())
            });
            (rows, next, None)
        }
    };
    let nonce = session::nonce();
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = render::payments(&PaymentsView {
        frame: frame(&signed, lang, &nonce, Section::Payments, &path, None),
        query: search,
        problem,
        rows,
        next,
    });
    Ok(session::page(status, body, &nonce))
}

#[derive(Debug, Default, Deserialize)]
struct RefundedQuery {
    #[serde(default)]
    refund: Option<String>,
}

async fn payment(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let signed = signed_in!(state, headers);
    let lang = session::language(&headers);
    // Back from a refund: say what became of it.
    let notice = match query::<RefundedQuery>(raw.as_deref()).refund {
        Some(refund_id) => state
            .store
            .find_refund(&refund_id)
            .await?
            .filter(|r| r.record.payment_id == id)
            .map(|r| Notice::RefundCreated {
                refund_id: r.record.id.clone(),
                status: r.record.status.as_str().to_owned(),
            }),
        None => None,
    };
    payment_response(&state, &signed, lang, &id, StatusCode::OK, notice, None).await
}

/// The payment page, with `notice` on top and `form` kept (a refund form sent back).
async fn payment_response(
    state: &AppState,
    signed: &Signed,
    lang: Lang,
    id: &str,
    status: StatusCode,
    notice: Option<Notice>,
    form: Option<(String, String, String)>,
) -> Result<Response, ApiError> {
    let path = format!("/console/payments/{}", path_segment(id));
    let page = match data::payment_page(state, &signed.key, id).await? {
        data::Lookup::Found(page) => page,
        data::Lookup::NotFound => return Ok(problem_page(signed, lang, &path, Problem::NotFound)),
        data::Lookup::Forbidden => {
            return Ok(problem_page(signed, lang, &path, Problem::Forbidden));
        }
    };
    let currency = page.record.currency.clone();
    let refund_form = (page.refundable_minor > 0).then(|| {
        let (idempotency_key, amount, reason) = form.unwrap_or_else(|| {
            (
                session::random_token(),
                data::amount(page.refundable_minor, &currency),
                String::new(),
            )
        });
        RefundForm {
            idempotency_key,
            amount,
            reason,
            code_above: signed.key.second_factor.as_ref().and(
                state
                    .console
                    .refund_confirm_above
                    .get(&currency)
                    .map(|minor| data::amount(*minor, &currency)),
            ),
        }
    });
    let nonce = session::nonce();
    let body = render::payment(&PaymentView {
        frame: frame(signed, lang, &nonce, Section::Payments, &path, notice),
        payment: page.payment,
        refunds: page.refunds,
        events: page.events,
        events_complete: page.events_complete,
        refund_form,
    });
    Ok(session::page(status, body, &nonce))
}

#[derive(Debug, Default, Deserialize)]
struct RefundFields {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    code: String,
}

async fn refund(
    State(state): State<Arc<AppState>>,
    ClientSource(source): ClientSource,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let signed = signed_in!(state, headers);
    let lang = session::language(&headers);
    let fields: RefundFields = form(&body);
    let kept = Some((
        fields.idempotency_key.clone(),
        fields.amount.clone(),
        fields.reason.clone(),
    ));
    let again = async |status, notice| {
        payment_response(
            &state,
            &signed,
            lang,
            &id,
            status,
            Some(notice),
            kept.clone(),
        )
        .await
    };
    if !form_ok(&headers, &signed, &fields.csrf) {
        return again(StatusCode::FORBIDDEN, Notice::FormExpired).await;
    }
    let Some(found) = state.store.find_payment(&id).await? else {
        return again(StatusCode::NOT_FOUND, Notice::Gone).await;
    };
    let payment = found.record;
    if !signed.key.may_act_for(&payment.merchant_id) || found.archived {
        return again(StatusCode::FORBIDDEN, Notice::NotRefundable).await;
    }
    let fail = async |e: ApiError| again(e.status(), Notice::Failed(e.to_string())).await;
    let amount = match Money::parse(fields.amount.trim(), &payment.currency) {
        Ok(m) => m,
        Err(e) => {
            return fail(ApiError::invalid(
                "amount_invalid",
                e.to_string(),
                Some("amount"),
            ))
            .await;
        }
    };
    let key_ok = (1..=255).contains(&fields.idempotency_key.len())
        && fields
            .idempotency_key
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b));
    if !key_ok {
        return again(StatusCode::BAD_REQUEST, Notice::FormExpired).await;
    }
    let reason = Some(fields.reason.trim().to_owned()).filter(|r| !r.is_empty());
    if let Err(e) = super::payments::check_text(
        &reason,
        "reason",
        super::payments::DESCRIPTION_CHARS_MAX,
        false,
    ) {
        return fail(e).await;
    }
    // The console's own claim (its key prefixed `console:`, its own fingerprint of what the
    // form asks), so that the same form sent twice makes one refund.
    let claim = crate::store::Claim {
        api_key_id: signed.key.id.clone(),
        key: format!("console:{}", fields.idempotency_key),
        fingerprint: hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            format!(
                "console-refund\n{id}\n{}\n{}",
                amount.decimal(),
                reason.as_deref().unwrap_or_default()
            )
            .as_bytes(),
        )),
        lease: Default::default(),
    };
    // The same form sent again after it was answered: its answer, with no new code asked.
    // Anything else above the threshold needs one (API.md §2).
    let known = {
        let store: &dyn crate::store::port::PaymentStore = state.store.as_ref();
        match store.known_claim(&claim).await? {
            Some(crate::store::Begin::Replay { status, body }) => {
                Some(crate::idempotency::Answer::replayed(status, body))
            }
            _ => None,
        }
    };
    let answer = match known {
        Some(answer) => Ok(answer),
        None => {
            if state
                .console
                .refund_needs_code(&payment.currency, amount.minor())
            {
                let code = Some(fields.code.as_str()).filter(|c| !c.trim().is_empty());
                let checked = second_factor::check_code(&state, &signed.key, code, &source).await;
                if let Some(notice) = code_notice(checked)? {
                    return again(StatusCode::UNAUTHORIZED, notice).await;
                }
            }
            let new = crate::payments::service::NewRefund {
                payment_id: id.clone(),
                amount: Some(amount),
                reason,
            };
            crate::payments::service::create_refund(
                &state.payments,
                &signed.key,
                claim,
                payment,
                new,
                &super::payments::render_refund,
            )
            .await
        }
    };
    match answer {
        Ok(answer) if answer.status < 300 => {
            let refund_id = serde_json::from_str::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned))
                .unwrap_or_default();
            Ok(session::redirect(&format!(
                "/console/payments/{}?refund={}",
                path_segment(&id),
                path_segment(&refund_id)
            )))
        }
        Ok(answer) => {
            // That request is answered for good: the form comes back with a new key, so
            // that a changed amount is a new request, not a reuse of the old one.
            let kept = Some((
                session::random_token(),
                fields.amount.clone(),
                fields.reason.clone(),
            ));
            let message = serde_json::from_str::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| format!("refused ({})", answer.status));
            payment_response(
                &state,
                &signed,
                lang,
                &id,
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
                Some(Notice::Failed(message)),
                kept,
            )
            .await
        }
        Err(e) => fail(ApiError::from(e)).await,
    }
}

/// What a form's code check comes to on the page: nothing (accepted, or not needed), or
/// the notice to show; a failure of the store stays an error.
fn code_notice(checked: Result<(), ApiError>) -> Result<Option<Notice>, ApiError> {
    match checked {
        Ok(()) => Ok(None),
        Err(ApiError::SecondFactor {
            code: "otp_required",
            ..
        }) => Ok(Some(Notice::CodeRequired)),
        Err(ApiError::SecondFactor { .. }) => Ok(Some(Notice::CodeInvalid)),
        Err(ApiError::TooManyAttempts { retry_after_s, .. }) => {
            Ok(Some(Notice::TooManyCodes { retry_after_s }))
        }
        Err(other) => Err(other),
    }
}

#[derive(Debug, Default, Deserialize)]
struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

async fn alerts(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let signed = signed_in!(state, headers);
    let lang = session::language(&headers);
    let notice = match query::<DoneQuery>(raw.as_deref()).done.as_deref() {
        Some("ack") => Some(Notice::AlertAcknowledged),
        Some("lift") => Some(Notice::BlockLifted),
        _ => None,
    };
    alerts_response(&state, &signed, lang, StatusCode::OK, notice).await
}

async fn alerts_response(
    state: &AppState,
    signed: &Signed,
    lang: Lang,
    status: StatusCode,
    notice: Option<Notice>,
) -> Result<Response, ApiError> {
    let (alerts, blocks) = data::alerts(state, &signed.key).await?;
    let nonce = session::nonce();
    let body = render::alerts(&AlertsView {
        frame: frame(
            signed,
            lang,
            &nonce,
            Section::Alerts,
            "/console/alerts",
            notice,
        ),
        alerts,
        blocks,
        can_lift: signed.key.role == Role::Admin,
    });
    Ok(session::page(status, body, &nonce))
}

async fn ack_alert(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let signed = signed_in!(state, headers);
    let lang = session::language(&headers);
    let fields: CsrfForm = form(&body);
    if !form_ok(&headers, &signed, &fields.csrf) {
        return alerts_response(
            &state,
            &signed,
            lang,
            StatusCode::FORBIDDEN,
            Some(Notice::FormExpired),
        )
        .await;
    }
    if signed.key.role != Role::Admin {
        return alerts_response(
            &state,
            &signed,
            lang,
            StatusCode::FORBIDDEN,
            Some(Notice::AdminOnly),
        )
        .await;
    }
    let now = state.clock.now_ms();
    let by = signed.key.id.clone();
    let acknowledged = state
        .store
        .update_alert(&id, None, &|a| {
            if a.acknowledged_at_ms.is_none() {
                a.acknowledged_at_ms = Some(now);
                a.acknowledged_by = Some(by.clone());
            }
        })
        .await?;
    if acknowledged.is_none() {
        return alerts_response(
            &state,
            &signed,
            lang,
            StatusCode::NOT_FOUND,
            Some(Notice::Gone),
        )
        .await;
    }
    Ok(session::redirect("/console/alerts?done=ack"))
}

#[derive(Debug, Default, Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

async fn lift_block(
    State(state): State<Arc<AppState>>,
    ClientSource(source): ClientSource,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let signed = signed_in!(state, headers);
    let lang = session::language(&headers);
    let fields: CodeForm = form(&body);
    let again =
        async |status, notice| alerts_response(&state, &signed, lang, status, Some(notice)).await;
    if !form_ok(&headers, &signed, &fields.csrf) {
        return again(StatusCode::FORBIDDEN, Notice::FormExpired).await;
    }
    if signed.key.role != Role::Admin {
        return again(StatusCode::FORBIDDEN, Notice::AdminOnly).await;
    }
    let code = Some(fields.code.as_str()).filter(|c| !c.trim().is_empty());
    let checked = second_factor::check_code(&state, &signed.key, code, &source).await;
    if let Some(notice) = code_notice(checked)? {
        return again(StatusCode::UNAUTHORIZED, notice).await;
    }
    match state.monitor.lift_block(&id).await? {
        Some(block) => {
            tracing::info!(block = %block.id, by = %signed.key.id, "block lifted (console)");
            Ok(session::redirect("/console/alerts?done=lift"))
        }
        None => again(StatusCode::NOT_FOUND, Notice::Gone).await,
    }
}

async fn merchants(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let signed = signed_in!(state, headers);
    let lang = session::language(&headers);
    let merchants = data::merchants(&state, &signed.key).await?;
    let nonce = session::nonce();
    let body = render::merchants(&MerchantsView {
        frame: frame(
            &signed,
            lang,
            &nonce,
            Section::Merchants,
            "/console/merchants",
            None,
        ),
        merchants,
    });
    Ok(session::page(StatusCode::OK, body, &nonce))
}
