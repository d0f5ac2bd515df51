//! The `Request-Id` of each request: made when the request arrives, put on the response,
//! in every log line of the request and in every error body.
//!
//! It travels in a task-local so that error bodies built deep inside handlers and extractors
//! carry it without threading it through every signature.

tokio::task_local! {
    static REQUEST_ID: String;
}

/// A new request id, `req_` plus a time-ordered random part.
pub fn new() -> String {
    crate::domain::ids::new_id("req")
}

/// Runs `future` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

/// The current request's id, or `req_unknown` outside a request.
pub fn current() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "req_unknown".to_owned())
}
