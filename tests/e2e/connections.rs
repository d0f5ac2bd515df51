//! Connection bounds (`[server]`): connections that never send a request, slow bodies, idle
//! keep-alive connections, floods of connections; and what must survive them (an open event
//! stream, a well-behaved client). Deadlines are configured short (1 s) and checked with a
//! generous bound ([`WITHIN`]): these tests check behaviour, not speed.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::*;

/// How long a connection past its deadline may take to be closed.
const WITHIN: Duration = Duration::from_secs(10);
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The test config with `settings` (`(key, value)`) in `[server]`, replacing the shipped
/// values of the same keys.
fn config_with(settings: &[(&str, &str)]) -> String {
    let shipped = default_config_text();
    let kept: Vec<&str> = shipped
        .lines()
        .filter(|line| {
            !settings
                .iter()
                .any(|(key, _)| line.trim_start().starts_with(&format!("{key} =")))
        })
        .collect();
    let lines: String = settings
        .iter()
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
    let text = kept.join("\n") + "\n";
    assert!(
        text.contains("\n[server]\n"),
        "the shipped config has a [server] section"
    );
    text.replacen("\n[server]\n", &format!("\n[server]\n{lines}"), 1)
}

/// Reads (and discards) what the daemon sends until it closes the connection; the time that
/// took, or `None` if it was still open after `within`.
async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads until the stream holds a complete response head, and returns it.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(WITHIN, stream.read(&mut byte))
            .await
            .expect("a response head in time")
            .unwrap();
        assert_eq!(read, 1, "closed before a response head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a content-length")
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_request_head_timeout() {
    let daemon = Daemon::with_config(config_with(&[("request_head_timeout_ms", "1000")]));
    let mut silent = TcpStream::connect(daemon.tcp_addr()).await.unwrap();
    let closed = closed_within(&mut silent, WITHIN).await;
    let closed = closed.expect("a silent connection is closed");
    assert!(
        closed >= Duration::from_millis(500),
        "closed too early: {closed:?}"
    );
    let (status, _) = daemon.get("/healthz", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_partial_http2_preface_is_closed() {
    let daemon = Daemon::with_config(config_with(&[("request_head_timeout_ms", "1000")]));
    let mut stream = TcpStream::connect(daemon.tcp_addr()).await.unwrap();
    stream.write_all(&HTTP2_PREFACE[..8]).await.unwrap();
    assert!(
        closed_within(&mut stream, WITHIN).await.is_some(),
        "a connection stuck in protocol detection is closed"
    );
}

#[tokio::test]
async fn a_full_http2_preface_then_silence_is_closed() {
    let daemon = Daemon::with_config(config_with(&[("request_head_timeout_ms", "1000")]));
    let mut stream = TcpStream::connect(daemon.tcp_addr()).await.unwrap();
    stream.write_all(HTTP2_PREFACE).await.unwrap();
    assert!(
        closed_within(&mut stream, WITHIN).await.is_some(),
        "an HTTP/2 connection without a request is closed"
    );
}

/// A CA and a `localhost` certificate it signed, written to `dir`; a client trusting the CA.
fn tls_setup(dir: &Path) -> (String, tokio_rustls::TlsConnector) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    let config = format!(
        "{}\n[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        config_with(&[("request_head_timeout_ms", "1000")]),
        dir.join("server.crt").display(),
        dir.join("server.key").display(),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::pem::PemObject::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    (config, tokio_rustls::TlsConnector::from(Arc::new(client)))
}

#[tokio::test]
async fn a_tls_handshake_then_silence_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (config_text, connector) = tls_setup(dir.path());
    let daemon = Daemon::with_config(config_text);
    let tcp = TcpStream::connect(daemon.tcp_addr()).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the handshake completes");
    assert!(
        closed_within(&mut tls, WITHIN).await.is_some(),
        "a TLS connection without a request is closed"
    );
}

#[tokio::test]
async fn a_slow_body_is_answered_408_and_its_connection_closed() {
    let daemon = Daemon::with_config(config_with(&[("body_timeout_ms", "1000")]));
    let body = barcode("1.00").to_string();
    let head = format!(
        "POST /v1/payments HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {POS}\r\ncontent-type: application/json\r\nidempotency-key: slow-body\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let stream = TcpStream::connect(daemon.tcp_addr()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    // One byte every 300 ms: the whole body would take far longer than the deadline.
    let trickle = tokio::spawn(async move {
        for byte in body.into_bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let started = Instant::now();
    let response_head = read_head(&mut reader).await;
    assert!(response_head.starts_with("HTTP/1.1 408"), "{response_head}");
    assert!(
        response_head.contains("connection: close"),
        "{response_head}"
    );
    let mut answer = vec![0u8; content_length(&response_head)];
    reader.read_exact(&mut answer).await.unwrap();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(error_kind(&answer).1, "body_timeout", "{answer}");
    let closed = closed_within(&mut reader, WITHIN).await;
    assert!(closed.is_some(), "the connection is closed after the 408");
    assert!(started.elapsed() < WITHIN);
    trickle.abort();
}

/// A body past `body_bytes_max` is refused before it has all arrived, and the connection
/// closes: the client, still sending, must get the 413 all the same (the daemon reads and
/// drops the rest for a while before closing; closing with unread bytes would reset the
/// connection and destroy the answer in the client's socket).
#[tokio::test]
async fn a_client_still_sending_a_body_too_large_gets_its_413() {
    let daemon = Daemon::with_config(config_with(&[("body_bytes_max", "65536")]));
    let body = vec![b' '; 8 << 20];
    // As a client that sends its whole request before it reads (most do).
    for attempt in 0..3 {
        let head = format!(
            "POST /v1/payments HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {POS}\r\ncontent-type: application/json\r\nidempotency-key: big-{attempt}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let mut stream = TcpStream::connect(daemon.tcp_addr()).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let sent = stream.write_all(&body).await;
        assert!(sent.is_ok(), "attempt {attempt}: {sent:?}");
        let response_head = read_head(&mut stream).await;
        assert!(response_head.starts_with("HTTP/1.1 413"), "{response_head}");
        assert!(
            response_head.contains("connection: close"),
            "{response_head}"
        );
        let mut answer = vec![0u8; content_length(&response_head)];
        stream.read_exact(&mut answer).await.unwrap();
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(error_kind(&answer).1, "body_too_large", "{answer}");
        assert!(closed_within(&mut stream, WITHIN).await.is_some());
    }
    // As reqwest does it (the e2e tests' client, and many a POS system's).
    for attempt in 0..50 {
        let response = reqwest::Client::new()
            .post(daemon.url("/v1/payments"))
            .bearer_auth(POS)
            .header("idempotency-key", format!("big-reqwest-{attempt}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let status = response.as_ref().map(reqwest::Response::status);
        assert_eq!(
            status.ok(),
            Some(reqwest::StatusCode::PAYLOAD_TOO_LARGE),
            "{response:?}"
        );
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let daemon = Daemon::with_config(config_with(&[("idle_timeout_ms", "1000")]));
    let mut stream = TcpStream::connect(daemon.tcp_addr()).await.unwrap();
    for _ in 0..2 {
        // Requests within the idle timeout keep the connection.
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let mut body = vec![0u8; content_length(&head)];
        stream.read_exact(&mut body).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let closed = closed_within(&mut stream, WITHIN).await;
    let closed = closed.expect("an idle keep-alive connection is closed");
    assert!(
        closed >= Duration::from_millis(400),
        "closed too early: {closed:?}"
    );
}

#[tokio::test]
async fn an_open_event_stream_is_not_idle() {
    let daemon = Daemon::with_config(config_with(&[
        ("idle_timeout_ms", "1000"),
        ("request_head_timeout_ms", "1000"),
    ]));
    let mut stream = TcpStream::connect(daemon.tcp_addr()).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /v1/alerts/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    assert_eq!(
        closed_within(&mut stream, Duration::from_secs(3)).await,
        None,
        "an open stream is a request in flight, never idle"
    );
}

/// A client that asks, then never reads the answer (an HTTP/2 receive window of 0): it
/// answers the daemon's pings, so only the lack of progress shows; its connection is closed
/// once its request has not moved for the idle time.
#[tokio::test]
async fn a_client_that_stops_reading_is_closed() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let daemon = Daemon::with_config(config_with(&[
        ("idle_timeout_ms", "1000"),
        ("http2_keep_alive_interval_ms", "300"),
    ]));
    let stream = TcpStream::connect(daemon.tcp_addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake::<_, Empty<axum::body::Bytes>>(TokioIo::new(stream))
        .await
        .unwrap();
    let driven = tokio::spawn(connection);
    let request = hyper::Request::get(format!("http://{}/openapi.json", daemon.tcp_addr()))
        .body(Empty::new())
        .unwrap();
    // The head is not flow-controlled: it arrives; the body cannot.
    let response = tokio::time::timeout(WITHIN, sender.send_request(request))
        .await
        .expect("a response head in time")
        .unwrap();
    assert_eq!(response.status(), 200);
    let ended = tokio::time::timeout(WITHIN, driven).await;
    assert!(
        ended.is_ok(),
        "a connection whose client stopped reading stays open"
    );
    assert!(closed_total(&daemon, "stalled").await >= 1);
}

/// Connects to `daemon` from `source` (a loopback address) without sending anything; the
/// socket is non-blocking, for [`still_open`].
async fn silent_from(daemon: &Daemon, source: Ipv4Addr) -> std::net::TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).unwrap();
    let stream = socket
        .connect(daemon.tcp_addr().parse().unwrap())
        .await
        .unwrap();
    stream.into_std().unwrap()
}

/// Whether the daemon has left `stream` open (a read would block rather than see EOF).
fn still_open(mut stream: &std::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Opens `count` silent connections from `source` at a moderate pace, dropping those the
/// daemon closes as it goes (so the test holds few descriptors); returns those still open.
async fn flood(daemon: &Daemon, source: Ipv4Addr, count: usize) -> Vec<std::net::TcpStream> {
    let mut open = Vec::new();
    for batch in 0..count.div_ceil(50) {
        for _ in 0..50.min(count - batch * 50) {
            open.push(silent_from(daemon, source).await);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        open.retain(still_open);
    }
    settle(open).await
}

/// Gives the daemon time to close what it is closing; the connections still open.
async fn settle(mut open: Vec<std::net::TcpStream>) -> Vec<std::net::TcpStream> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    open.retain(still_open);
    open
}

/// The value of `paygate_connections_closed_total{reason="<reason>"}`.
async fn closed_total(daemon: &Daemon, reason: &str) -> u64 {
    daemon
        .metric(&format!(
            "paygate_connections_closed_total{{reason=\"{reason}\"}}"
        ))
        .await
        .map_or(0, |value| value as u64)
}

#[tokio::test]
async fn a_flood_of_silent_connections_leaves_room_for_a_well_behaved_client() {
    let daemon = Daemon::with_config(config_with(&[
        ("max_connections", "100"),
        ("max_connections_per_peer", "100"),
        ("request_head_timeout_ms", "60000"),
    ]));
    let open = flood(&daemon, Ipv4Addr::LOCALHOST, 2000).await;
    assert!(
        (50..=100).contains(&open.len()),
        "{} of 2000 silent connections left open; the cap is 100",
        open.len()
    );

    // A client from the same address, on fresh connections, is still served.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health = client.get(daemon.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let payment = client
        .post(daemon.url("/v1/payments"))
        .bearer_auth(POS)
        .header("idempotency-key", "after-the-flood")
        .json(&barcode_at("T-07", "12.50"))
        .send()
        .await
        .unwrap();
    assert_eq!(payment.status(), 201);
    let payment: Value = payment.json().await.unwrap();
    assert_eq!(payment["status"], "succeeded", "{payment}");

    let evicted = closed_total(&daemon, "max_connections").await;
    assert!(
        evicted >= 1800,
        "{evicted} closes counted for max_connections"
    );
    drop(open);
}

#[tokio::test]
async fn one_peer_gets_only_its_share_of_the_connections() {
    let daemon = Daemon::with_config(config_with(&[
        ("max_connections", "100"),
        ("request_head_timeout_ms", "60000"),
    ]));
    // The default share is half of max_connections.
    let greedy = flood(&daemon, Ipv4Addr::new(127, 0, 0, 2), 300).await;
    assert!(
        (25..=50).contains(&greedy.len()),
        "{} of 300 connections of one peer left open; its share is 50",
        greedy.len()
    );
    let mut other = Vec::new();
    for _ in 0..30 {
        other.push(silent_from(&daemon, Ipv4Addr::new(127, 0, 0, 3)).await);
    }
    let other = settle(other).await;
    assert_eq!(
        other.len(),
        30,
        "another peer is not cut by the first one's share"
    );
    assert!(closed_total(&daemon, "max_connections_per_peer").await >= 250);
    assert_eq!(closed_total(&daemon, "max_connections").await, 0);
    let (status, _) = daemon.get("/healthz", None).await;
    assert_eq!(status, 200);
}

#[test]
fn zero_and_inconsistent_bounds_are_refused_naming_the_field() {
    let check = |text: &str| {
        let (_dir, output) = config_check("bad.toml", text);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        stderr
    };
    for field in [
        "request_head_timeout_ms",
        "body_timeout_ms",
        "idle_timeout_ms",
        "http2_keep_alive_interval_ms",
        "http2_keep_alive_timeout_ms",
        "max_connections",
        "max_connections_per_peer",
    ] {
        let stderr = check(&format!("[server]\n\n{field} = 0\n"));
        assert!(
            stderr.contains("bad.toml:3:") && stderr.contains(&format!("server.{field}")),
            "{stderr}"
        );
        assert!(stderr.contains("must be between 1 and"), "{stderr}");
    }
    let stderr = check("[server]\nmax_connections = 10\nmax_connections_per_peer = 20\n");
    assert!(
        stderr.contains("bad.toml:3:") && stderr.contains("server.max_connections_per_peer"),
        "{stderr}"
    );
}
