//! The transport under the API: TCP (plain or TLS 1.3) and Unix-socket listeners, one
//! hyper connection task per client, and graceful shutdown with a bounded drain.

mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, ConfigError};

/// A client that sends its request head slower than this is cut off (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A TLS handshake that takes longer than this is abandoned.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// The bound sockets, ready to serve.
pub struct Listeners {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    unix: Option<(UnixListener, PathBuf)>,
}

impl Listeners {
    /// Binds every listener the config asks for. Problems are config errors naming the field.
    pub async fn bind(config: &Config) -> Result<Listeners, ConfigError> {
        let tls = match &config.server.tls {
            Some(tls_config) => Some(TlsAcceptor::from(tls::server_config(config, tls_config)?)),
            None => None,
        };
        let addr = config.listen_addr();
        let tcp = TcpListener::bind(addr).await.map_err(|e| {
            let message = if e.kind() == io::ErrorKind::AddrInUse {
                format!("address {addr} is already in use (another paygated, or another program?)")
            } else {
                format!("cannot listen on {addr}: {e}")
            };
            config.error_at(config.server.listen.span(), "server.listen", message)
        })?;
        let unix = match &config.server.unix_socket {
            Some(path) => {
                let listener = bind_unix(path.get_ref()).await.map_err(|message| {
                    config.error_at(path.span(), "server.unix_socket", message)
                })?;
                Some((listener, path.get_ref().clone()))
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

/// Serves `router` on `listeners` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish for at most `drain`.
pub async fn serve(
    listeners: Listeners,
    router: Router,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> Drain {
    let graceful = GracefulShutdown::new();
    let Listeners { tcp, tls, unix } = listeners;
    let unix_path = unix.as_ref().map(|(_, path)| path.clone());
    tokio::select! {
        () = accept_tcp(tcp, tls, router.clone(), &graceful) => {}
        () = accept_unix(unix.map(|(listener, _)| listener), router, &graceful) => {}
        () = shutdown => {}
    }
    // The accept loops, and with them the listening sockets, are gone: nothing new comes in.
    if let Some(path) = unix_path {
        let _ = std::fs::remove_file(path);
    }
    let in_flight = graceful.count();
    tracing::info!(
        connections = in_flight,
        drain_ms = drain.as_millis() as u64,
        "draining"
    );
    match tokio::time::timeout(drain, graceful.shutdown()).await {
        Ok(()) => Drain::Complete,
        Err(_) => Drain::TimedOut {
            connections: in_flight,
        },
    }
}

async fn accept_tcp(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    graceful: &GracefulShutdown,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let router = router
            .clone()
            .layer(axum::Extension(ClientAddr(peer.ip().to_string())));
        match tls.clone() {
            None => {
                tokio::spawn(serve_connection(stream, router, watcher));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => serve_connection(stream, router, watcher).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

async fn accept_unix(listener: Option<UnixListener>, router: Router, graceful: &GracefulShutdown) {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let router = router
                    .clone()
                    .layer(axum::Extension(ClientAddr("unix".to_owned())));
                tokio::spawn(serve_connection(stream, router, graceful.watcher()));
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

async fn serve_connection<I>(io: I, router: Router, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let service = TowerToHyperService::new(router);
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
