//! One client connection: its shared state (requests in flight, idle since when, a requested
//! close), the service that counts its requests and bounds their bodies, and the task that
//! drives hyper and closes the connection when one of its bounds passes.
//!
//! A request is *in flight* from its complete head until its response body has finished (or
//! been dropped), so a streaming response keeps its connection busy; anything else, a partly
//! received head included, is idle time. Per request this costs two atomic counts and the
//! `Arc` of its guard; the connection's deadlines are checked by one timer per connection,
//! which sleeps until the next one can pass.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Request, Response, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tower::ServiceExt;

use super::ClientAddr;
use super::body::DeadlineBody;
use super::linger::Lingering;
use super::registry::Registry;

/// After a graceful close has begun, how long a connection with nothing in flight may take
/// to finish (flush its last answer, say goodbye) before it is dropped.
const CLOSE_GRACE_MS: u64 = 1000;

/// Why the server closes a connection. The values label `paygate_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CloseReason {
    /// No complete first request head within `request_head_timeout_ms` of accept.
    RequestHeadTimeout = 1,
    /// Nothing in flight for `idle_timeout_ms`.
    IdleTimeout = 2,
    /// A request body not complete within `body_timeout_ms` of its head.
    BodyTimeout = 3,
    /// Closed to make room: the listener was at `max_connections`.
    MaxConnections = 4,
    /// Closed to make room: its peer was at `max_connections_per_peer`.
    MaxConnectionsPerPeer = 5,
    /// The daemon is draining.
    Shutdown = 6,
    /// A request in flight (not an event stream) made no progress for `idle_timeout_ms`:
    /// its client stopped reading the answer.
    Stalled = 7,
}

impl CloseReason {
    /// The reasons counted in metrics (a shutdown is not a bound).
    pub(crate) const COUNTED: [CloseReason; 6] = [
        CloseReason::RequestHeadTimeout,
        CloseReason::IdleTimeout,
        CloseReason::Stalled,
        CloseReason::BodyTimeout,
        CloseReason::MaxConnections,
        CloseReason::MaxConnectionsPerPeer,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            CloseReason::RequestHeadTimeout => "request_head_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::BodyTimeout => "body_timeout",
            CloseReason::MaxConnections => "max_connections",
            CloseReason::MaxConnectionsPerPeer => "max_connections_per_peer",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Stalled => "stalled",
        }
    }

    fn from_u8(value: u8) -> Option<CloseReason> {
        Some(match value {
            1 => CloseReason::RequestHeadTimeout,
            2 => CloseReason::IdleTimeout,
            3 => CloseReason::BodyTimeout,
            4 => CloseReason::MaxConnections,
            5 => CloseReason::MaxConnectionsPerPeer,
            6 => CloseReason::Shutdown,
            7 => CloseReason::Stalled,
            _ => return None,
        })
    }
}

/// `Connection::close` while no close has been requested.
pub(super) const OPEN: u8 = 0;
/// `Connection::close` once the registry has forgotten the connection.
pub(super) const REMOVED: u8 = u8::MAX;

static EPOCH: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);

/// Milliseconds since the first call: the connections' clock, cheap to store in an atomic.
pub(super) fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

fn instant_at(ms: u64) -> tokio::time::Instant {
    tokio::time::Instant::from_std(*EPOCH + Duration::from_millis(ms))
}

/// The state of one connection that its requests, its task and its listener's registry share.
pub(crate) struct Connection {
    pub(super) id: u64,
    /// Whom the per-peer share counts it against (`None` on the Unix socket).
    pub(super) peer: Option<IpAddr>,
    accepted_ms: u64,
    in_flight: AtomicU32,
    /// Streaming responses (server-sent events) in flight: they may wait for news for long.
    streaming: AtomicU32,
    /// When a request in flight last moved: its head arrived, its response handed a frame to
    /// hyper, or it finished.
    progress_ms: AtomicU64,
    /// When the last request finished (accept time until then).
    idle_since_ms: AtomicU64,
    seen_request: AtomicBool,
    /// `OPEN`, a [`CloseReason`] once a close is requested, or `REMOVED`.
    pub(super) close: AtomicU8,
    wake: Notify,
    registry: Arc<Registry>,
}

impl Connection {
    pub(super) fn new(id: u64, peer: Option<IpAddr>, registry: Arc<Registry>) -> Connection {
        let now = now_ms();
        Connection {
            id,
            peer,
            accepted_ms: now,
            in_flight: AtomicU32::new(0),
            streaming: AtomicU32::new(0),
            progress_ms: AtomicU64::new(now),
            idle_since_ms: AtomicU64::new(now),
            seen_request: AtomicBool::new(false),
            close: AtomicU8::new(OPEN),
            wake: Notify::new(),
            registry,
        }
    }

    pub(super) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub(super) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// When the connection last became idle; meaningful while nothing is in flight.
    pub(super) fn idle_since_ms(&self) -> u64 {
        self.idle_since_ms.load(Ordering::Relaxed)
    }

    fn seen_request(&self) -> bool {
        self.seen_request.load(Ordering::Acquire)
    }

    pub(super) fn is_open(&self) -> bool {
        self.close.load(Ordering::Acquire) == OPEN
    }

    fn close_reason(&self) -> Option<CloseReason> {
        CloseReason::from_u8(self.close.load(Ordering::Acquire))
    }

    /// Whether its requests in flight, none of them an event stream, have not moved for the
    /// idle time (the client stopped reading).
    fn stalled(&self, limits: &Limits) -> bool {
        self.streaming.load(Ordering::Acquire) == 0
            && now_ms() >= self.progress_ms.load(Ordering::Relaxed) + limits.idle_ms
    }

    /// Asks the connection's task to close it (gracefully once it has served a request);
    /// false if a close was already requested.
    pub(crate) fn request_close(&self, reason: CloseReason) -> bool {
        if !self.is_open() {
            return false;
        }
        let marked = self.registry.mark_closing(self, reason);
        if marked {
            self.wake();
        }
        marked
    }

    /// Wakes the connection's task to look at its close request.
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when the connection is to close: a close was requested (an eviction, a body
    /// deadline, the drain), or its own deadline passed: the first request head's, or the
    /// idle one's.
    pub(super) async fn until_close(&self, limits: &Limits) -> CloseReason {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(reason) = self.close_reason() {
                return reason;
            }
            let (at_ms, reason) = if !self.seen_request() {
                (
                    self.accepted_ms + limits.request_head_ms,
                    Some(CloseReason::RequestHeadTimeout),
                )
            } else if self.in_flight() == 0 {
                (
                    self.idle_since_ms() + limits.idle_ms,
                    Some(CloseReason::IdleTimeout),
                )
            } else if self.streaming.load(Ordering::Acquire) == 0 {
                // Busy, but a request or response that has not moved for the idle time is a
                // client that stopped reading (an HTTP/2 window of 0, say): not busy, stalled.
                (
                    self.progress_ms.load(Ordering::Relaxed) + limits.idle_ms,
                    Some(CloseReason::Stalled),
                )
            } else {
                // Streaming: look again when an idle period starting now could end.
                (now_ms() + limits.idle_ms, None)
            };
            if let Some(reason) = reason
                && now_ms() >= at_ms
            {
                self.request_close(reason);
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep_until(instant_at(at_ms)) => {}
                () = &mut notified => {}
            }
        }
    }
}

/// Counts one request in flight on its connection, from its head until its response is done.
pub(crate) struct InFlight(Arc<Connection>);

impl InFlight {
    pub(super) fn begin(connection: &Arc<Connection>) -> InFlight {
        connection.progress_ms.store(now_ms(), Ordering::Relaxed);
        connection.in_flight.fetch_add(1, Ordering::AcqRel);
        if !connection.seen_request() {
            // Release: whoever sees it sees the request counted in flight above.
            connection.seen_request.store(true, Ordering::Release);
            // The watcher sleeps until the request-head deadline: from now on it is the
            // stall deadline that counts (a client that stops reading this very answer).
            connection.wake();
        }
        InFlight(connection.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Idle since now, written before the count drops, so that whoever sees no request in
        // flight sees when the last one ended.
        let now = now_ms();
        self.0.progress_ms.store(now, Ordering::Relaxed);
        self.0.idle_since_ms.store(now, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// A response body that keeps its request in flight until it has finished streaming, and
/// marks the connection's progress at each frame it hands to hyper.
pub(crate) struct TrackedBody {
    inner: axum::body::Body,
    in_flight: InFlight,
    /// A server-sent event stream, counted in `Connection::streaming`.
    streaming: bool,
}

impl TrackedBody {
    fn new(inner: axum::body::Body, in_flight: InFlight, streaming: bool) -> TrackedBody {
        if streaming {
            in_flight.0.streaming.fetch_add(1, Ordering::AcqRel);
        }
        TrackedBody {
            inner,
            in_flight,
            streaming,
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if self.streaming {
            self.in_flight.0.streaming.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            this.in_flight
                .0
                .progress_ms
                .store(now_ms(), Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The bounds every connection of a listener checks, in the connections' clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) request_head_ms: u64,
    pub(crate) idle_ms: u64,
    pub(crate) body_timeout: Duration,
}

/// What the connections of one listener share.
pub(crate) struct Listener {
    pub(crate) router: Router,
    pub(crate) http: auto::Builder<TokioExecutor>,
    pub(crate) limits: Limits,
    pub(crate) registry: Arc<Registry>,
}

/// The router, as hyper calls it for each request of one connection: counts the request in
/// flight, bounds its body, tells it the client's address.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    connection: Arc<Connection>,
    client: ClientAddr,
    body_timeout: Duration,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<TrackedBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Incoming>) -> ResponseFuture {
        let in_flight = InFlight::begin(&self.connection);
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(self.client.clone());
        let body = if body.is_end_stream() {
            axum::body::Body::new(body)
        } else {
            axum::body::Body::new(DeadlineBody::new(
                body,
                self.body_timeout,
                Some(self.connection.clone()),
            ))
        };
        let http1 = parts.version < Version::HTTP_2;
        let call = self
            .router
            .clone()
            .oneshot(Request::from_parts(parts, body));
        Box::pin(async move {
            let mut response = call.await?;
            // A body refused for its size was not read to its end, so nothing more can be read
            // on this connection either.
            let unread = response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE;
            if http1 && (unread || !in_flight.0.is_open()) {
                // Closing (say, its body was too slow, or too large): tell the client this is
                // the last answer here; hyper then closes the connection once it is written.
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            let streaming = response
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
            Ok(response.map(|inner| TrackedBody::new(inner, in_flight, streaming)))
        })
    }
}

/// Serves HTTP on `io` until the client leaves or one of the connection's bounds closes it.
pub(crate) async fn serve<I>(
    io: I,
    connection: &Arc<Connection>,
    client: ClientAddr,
    listener: &Listener,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = ConnectionService {
        router: listener.router.clone(),
        connection: connection.clone(),
        client,
        body_timeout: listener.limits.body_timeout,
    };
    let http = listener
        .http
        .serve_connection_with_upgrades(TokioIo::new(Lingering::new(io)), service);
    tokio::pin!(http);
    let reason = tokio::select! {
        result = http.as_mut() => return ended(result),
        reason = connection.until_close(&listener.limits) => reason,
    };
    if !connection.seen_request() || reason == CloseReason::Stalled {
        // Nothing was ever asked, or the client stopped reading: nothing to finish (this
        // also ends protocol detection).
        return;
    }
    // Let requests in flight finish (HTTP/2 says GOAWAY), then drop the connection if it has
    // not ended once nothing has been in flight for the grace time.
    http.as_mut().graceful_shutdown();
    let closing_since = now_ms();
    loop {
        let next_check = if connection.in_flight() == 0 {
            let drop_at = connection.idle_since_ms().max(closing_since) + CLOSE_GRACE_MS;
            if now_ms() >= drop_at {
                return;
            }
            drop_at
        } else if connection.stalled(&listener.limits) {
            return;
        } else {
            now_ms() + CLOSE_GRACE_MS
        };
        tokio::select! {
            result = http.as_mut() => return ended(result),
            () = tokio::time::sleep_until(instant_at(next_check)) => {}
        }
    }
}

fn ended(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
