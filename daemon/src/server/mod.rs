//! The transport under the API: TCP (plain or TLS 1.3) and Unix-socket listeners, one
//! hyper connection task per client, every connection bounded, and graceful shutdown with a
//! bounded drain.
//!
//! The bounds (`[server]`): the first request head must be complete within
//! `request_head_timeout_ms` of accept (TLS handshake and protocol detection included); a
//! request body within `body_timeout_ms` of its head (`body.rs`); a connection with nothing in
//! flight is closed after `idle_timeout_ms`, and HTTP/2 clients are pinged; each listener holds
//! at most `max_connections`, and each TCP peer `max_connections_per_peer`, closing the idle
//! longest to make room (`registry.rs`). `connection.rs` drives each connection and checks its
//! deadlines; a request costs a few atomic operations (and a timer if its body has to be
//! waited for), never a lock.

mod body;
mod connection;
pub mod limits;
mod linger;
mod registry;
pub mod tls;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_rustls::TlsAcceptor;

pub use body::{BodyDeadlineExceeded, is_body_deadline};
pub use limits::FD_RESERVE;

use crate::metrics::Metrics;
use crate::settings::FieldError;
use connection::{Limits, Listener};
use registry::{CloseStats, Registry};

/// Streams one HTTP/2 connection may have open at once (hyper's default is 200).
const HTTP2_MAX_STREAMS: u32 = 64;
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Below this many connections per listener, an automatic cap is worth a warning.
const LOW_MAX_CONNECTIONS: usize = 1024;

/// Where to listen: `[server]`'s addresses, resolved.
#[derive(Debug, Clone)]
pub struct ListenSettings {
    pub listen: SocketAddr,
    pub unix_socket: Option<PathBuf>,
    pub tls: Option<tls::TlsSettings>,
}

/// The bound sockets, ready to serve.
pub struct Listeners {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    unix: Option<(UnixListener, PathBuf)>,
}

impl Listeners {
    /// Binds every listener `settings` asks for. Problems name the config field at fault.
    pub async fn bind(settings: &ListenSettings) -> Result<Listeners, FieldError> {
        let tls = match &settings.tls {
            Some(tls) => Some(TlsAcceptor::from(tls::server_config(tls)?)),
            None => None,
        };
        let addr = settings.listen;
        let tcp = TcpListener::bind(addr).await.map_err(|e| {
            let message = if e.kind() == io::ErrorKind::AddrInUse {
                format!("address {addr} is already in use (another paygated, or another program?)")
            } else {
                format!("cannot listen on {addr}: {e}")
            };
            FieldError::new("server.listen", message)
        })?;
        let unix = match &settings.unix_socket {
            Some(path) => {
                let listener = bind_unix(path)
                    .await
                    .map_err(|message| FieldError::new("server.unix_socket", message))?;
                Some((listener, path.clone()))
            }
            None => None,
        };
        Ok(Listeners { tcp, tls, unix })
    }

    /// Where the daemon listens, as URLs a client can use.
    pub fn urls(&self) -> Vec<String> {
        let mut urls = Vec::new();
        if let Ok(addr) = self.tcp.local_addr() {
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            urls.push(format!("{scheme}://{addr}"));
        }
        if let Some((_, path)) = &self.unix {
            urls.push(format!("unix:{}", path.display()));
        }
        urls
    }

    pub fn tcp_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

async fn bind_unix(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        // A socket file left by a daemon that died is removed; a live one is refused.
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!("{} is in use by a running server", path.display()));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))
}

/// How serving ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Drain {
    /// Every in-flight request finished within the drain time.
    Complete,
    /// The drain time ran out; the remaining connections are dropped.
    TimedOut { connections: usize },
}

/// How the server bounds its connections and its drain: `[server]`, resolved.
pub struct Settings {
    pub drain: Duration,
    pub request_head_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub http2_keep_alive_interval: Duration,
    pub http2_keep_alive_timeout: Duration,
    /// Per listener; `None`: from the open-file limit (see [`FD_RESERVE`]).
    pub max_connections: Option<usize>,
    /// Per TCP peer; `None`: half of the listener's cap.
    pub max_connections_per_peer: Option<usize>,
    pub metrics: Arc<Metrics>,
}

impl Settings {
    /// The HTTP/1 and HTTP/2 settings every connection shares.
    fn http(&self) -> auto::Builder<TokioExecutor> {
        let mut http = auto::Builder::new(TokioExecutor::new());
        // hyper's header-read timer starts when the previous response ends, so it measures
        // idle time plus head time; the connection's own deadlines come first and this is
        // only a backstop (without it hyper would apply its default of 30 s).
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.idle_timeout + self.request_head_timeout);
        http.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(self.http2_keep_alive_interval)
            .keep_alive_timeout(self.http2_keep_alive_timeout)
            // Each stream holds a request in flight: bound what one connection can hold.
            .max_concurrent_streams(HTTP2_MAX_STREAMS);
        http
    }

    fn limits(&self) -> Limits {
        Limits {
            request_head_ms: self.request_head_timeout.as_millis() as u64,
            idle_ms: self.idle_timeout.as_millis() as u64,
            body_timeout: self.body_timeout,
        }
    }
}

/// Serves `router` on `listeners` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish for at most `settings.drain`.
pub async fn serve(
    listeners: Listeners,
    router: Router,
    shutdown: impl Future<Output = ()>,
    settings: Settings,
) -> Drain {
    let Listeners { tcp, tls, unix } = listeners;
    let unix_path = unix.as_ref().map(|(_, path)| path.clone());
    let open_files = limits::raise_open_file_limit();
    let listener_count = 1 + usize::from(unix.is_some());
    let max_connections = settings
        .max_connections
        .unwrap_or_else(|| limits::automatic_max_connections(open_files, listener_count));
    let max_per_peer = settings
        .max_connections_per_peer
        .unwrap_or(max_connections / 2)
        .clamp(1, max_connections);
    tracing::info!(
        open_files,
        max_connections,
        max_connections_per_peer = max_per_peer,
        "connection limits (per listener)"
    );
    if settings.max_connections.is_none() && max_connections < LOW_MAX_CONNECTIONS {
        tracing::warn!(
            open_files,
            max_connections,
            "the open-file limit leaves room for few connections; raise it (e.g. LimitNOFILE=65536)"
        );
    }
    let closes = Arc::new(CloseStats::new(&settings.metrics));
    let http = settings.http();
    let limits = settings.limits();
    let listener = |name, per_peer| {
        Arc::new(Listener {
            router: router.clone(),
            http: http.clone(),
            limits,
            registry: Registry::new(
                name,
                max_connections,
                per_peer,
                &settings.metrics,
                closes.clone(),
            ),
        })
    };
    let tcp_listener = listener("tcp", Some(max_per_peer));
    // Every client of a Unix socket looks the same: no per-peer share there.
    let unix_listener = listener("unix", None);
    tokio::select! {
        () = accept_tcp(tcp, tls, tcp_listener.clone()) => {}
        () = accept_unix(unix.map(|(listener, _)| listener), unix_listener.clone()) => {}
        () = shutdown => {}
    }
    // The accept loops, and with them the listening sockets, are gone: nothing new comes in.
    if let Some(path) = unix_path {
        let _ = std::fs::remove_file(path);
    }
    let registries = [&tcp_listener.registry, &unix_listener.registry];
    let in_flight: usize = registries.iter().map(|r| r.len()).sum();
    tracing::info!(
        connections = in_flight,
        drain_ms = settings.drain.as_millis() as u64,
        "draining"
    );
    for registry in registries {
        registry.close_all();
    }
    let drained = async {
        for registry in registries {
            registry.drained().await;
        }
    };
    match tokio::time::timeout(settings.drain, drained).await {
        Ok(()) => Drain::Complete,
        Err(_) => Drain::TimedOut {
            connections: in_flight,
        },
    }
}

async fn accept_tcp(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Listener>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let registered = shared.registry.admit(Some(peer.ip()));
        if !registered.connection().is_open() {
            // Every connection of the listener (or of this peer) is busy: this one goes.
            continue;
        }
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_tcp(
            stream,
            peer.ip(),
            tls.clone(),
            registered,
            shared.clone(),
        ));
    }
}

async fn serve_tcp(
    stream: TcpStream,
    peer: IpAddr,
    tls: Option<TlsAcceptor>,
    registered: registry::Registered,
    shared: Arc<Listener>,
) {
    let connection = registered.connection();
    let client = ClientAddr(peer.to_string());
    let Some(acceptor) = tls else {
        return connection::serve(stream, connection, client, &shared).await;
    };
    // The handshake counts against the first request head's deadline.
    let handshake = tokio::select! {
        result = acceptor.accept(stream) => result,
        _ = connection.until_close(&shared.limits) => return,
    };
    match handshake {
        Ok(stream) => connection::serve(stream, connection, client, &shared).await,
        Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
    }
}

async fn accept_unix(listener: Option<UnixListener>, shared: Arc<Listener>) {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let registered = shared.registry.admit(None);
                if !registered.connection().is_open() {
                    continue;
                }
                let shared = shared.clone();
                tokio::spawn(async move {
                    let client = ClientAddr("unix".to_owned());
                    connection::serve(stream, registered.connection(), client, &shared).await;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept on unix socket failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

/// The client's address (IP, or `unix`), put on every request of its connection: the
/// monitor counts authentication failures per source.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);
