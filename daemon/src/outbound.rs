//! Outbound HTTP, for plugins and webhook deliveries: the only code in the daemon that sends
//! HTTP requests.
//!
//! Every request is checked against the calling plugin's allowlist of `scheme://host:port`
//! origins before a connection is opened; anything else is refused inside the host and
//! logged. Redirects are never followed (a redirect could leave the allowlist). Responses
//! are capped in size and the whole exchange in time.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An allowed destination: `https://openapi.alipay.com:443`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (no path, query or user info).
    pub fn parse(text: &str) -> Result<Origin, String> {
        let uri: hyper::Uri = text
            .parse()
            .map_err(|e| format!("\"{text}\" is not a URL: {e}"))?;
        let origin = Origin::of(&uri).ok_or_else(|| {
            format!("\"{text}\" must be http:// or https:// followed by a host and optional port")
        })?;
        let has_path = uri.path_and_query().is_some_and(|p| p.as_str() != "/");
        if has_path || text.contains('@') {
            return Err(format!(
                "\"{text}\" must be an origin only (scheme://host[:port])"
            ));
        }
        Ok(origin)
    }

    /// The origin a request URI goes to.
    pub fn of(uri: &hyper::Uri) -> Option<Origin> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let host = uri.host()?.to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        Some(Origin {
            scheme,
            host,
            port: uri.port_u16().unwrap_or(default_port),
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// A request a plugin asked for.
pub struct OutboundRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    Denied(String),
    Timeout,
    Connection(String),
    TooLarge,
}

/// One shared client (connection pool, TLS) for every plugin.
#[derive(Clone)]
pub struct OutboundClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Headers a plugin may not set: the host owns framing and routing.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
];

/// The URL, if its origin is on the allow-list; the refusal otherwise.
pub fn admit(url: &str, allowed: &[Origin]) -> Result<hyper::Uri, OutboundError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| OutboundError::Denied(format!("not a URL: {e}")))?;
    let origin = Origin::of(&uri)
        .ok_or_else(|| OutboundError::Denied("only http and https URLs with a host".into()))?;
    if !allowed.contains(&origin) {
        return Err(OutboundError::Denied(format!(
            "{origin} is not on the plugin's allowlist"
        )));
    }
    Ok(uri)
}

impl OutboundClient {
    /// A client trusting the Web PKI roots plus `extra_roots` (e.g. a provider simulator's CA).
    pub fn new(
        extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> Result<OutboundClient, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for root in extra_roots {
            roots
                .add(root)
                .map_err(|e| format!("unusable CA certificate: {e}"))?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(OutboundClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Sends `request` if its origin is in `allowed`, waiting at most until `deadline` and
    /// reading at most `response_bytes_max` of body.
    pub async fn send(
        &self,
        request: OutboundRequest,
        allowed: &[Origin],
        deadline: Instant,
        response_bytes_max: usize,
    ) -> Result<OutboundResponse, OutboundError> {
        let uri = admit(&request.url, allowed)?;
        let method: hyper::Method = request
            .method
            .parse()
            .map_err(|_| OutboundError::Denied(format!("bad method {:?}", request.method)))?;
        let mut builder = hyper::Request::builder().method(method).uri(uri);
        for (name, value) in &request.headers {
            if FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(OutboundError::Denied(format!(
                    "header {name} is set by the host"
                )));
            }
            builder = builder.header(name, value);
        }
        let outgoing = builder
            .body(Full::new(Bytes::from(request.body)))
            .map_err(|e| OutboundError::Denied(format!("malformed request: {e}")))?;

        let exchange = async {
            let response = self.client.request(outgoing).await.map_err(|e| {
                if e.is_connect() {
                    OutboundError::Connection(e.to_string())
                } else {
                    // The request may have been written: the provider may have acted on it.
                    OutboundError::Timeout
                }
            })?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = Limited::new(response.into_body(), response_bytes_max)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        OutboundError::TooLarge
                    } else {
                        OutboundError::Timeout
                    }
                })?
                .to_bytes()
                .to_vec();
            Ok(OutboundResponse {
                status,
                headers,
                body,
            })
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(OutboundError::Timeout);
        }
        tokio::time::timeout(remaining.min(Duration::from_secs(60)), exchange)
            .await
            .unwrap_or(Err(OutboundError::Timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_with_default_ports() {
        assert_eq!(
            Origin::parse("https://openapi.alipay.com")
                .unwrap()
                .to_string(),
            "https://openapi.alipay.com:443"
        );
        assert_eq!(Origin::parse("http://127.0.0.1:9001").unwrap().port, 9001);
        assert_eq!(
            Origin::parse("HTTPS://Example.COM/").unwrap().host,
            "example.com"
        );
        for bad in [
            "ftp://x",
            "https://x/path",
            "https://user@x",
            "x",
            "https://",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn requests_off_the_allowlist_are_denied_without_connecting() {
        let client = OutboundClient::new(Vec::new()).unwrap();
        let allowed = vec![Origin::parse("https://api.example.com").unwrap()];
        let deadline = Instant::now() + Duration::from_secs(1);
        let request = |url: &str| OutboundRequest {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        for url in [
            "https://evil.example.com/",
            "http://api.example.com/",
            "https://api.example.com:8443/",
            "file:///etc/passwd",
            "https://api.example.com@evil.com/",
        ] {
            let result = client.send(request(url), &allowed, deadline, 1024).await;
            assert!(matches!(result, Err(OutboundError::Denied(_))), "{url}");
        }
        let mut smuggle = request("https://api.example.com/");
        smuggle.headers.push(("Host".into(), "evil.com".into()));
        assert!(matches!(
            client.send(smuggle, &allowed, deadline, 1024).await,
            Err(OutboundError::Denied(_))
        ));
    }

    /// A local server: `/ok` answers 200 with a header, `/big` 64 KiB, `/slow` after 5 s.
    async fn local_server() -> String {
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/ok", get(|| async { ([("x-reply", "yes")], "pong") }))
            .route("/big", get(|| async { vec![b'x'; 64 * 1024] }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn allowed_requests_go_through_within_their_caps() {
        let base = local_server().await;
        let client = OutboundClient::new(Vec::new()).unwrap();
        let allowed = vec![Origin::parse(&base).unwrap()];
        let get = |path: &str| OutboundRequest {
            method: "GET".into(),
            url: format!("{base}{path}"),
            headers: vec![("accept".into(), "text/plain".into())],
            body: Vec::new(),
        };
        let soon = || Instant::now() + Duration::from_secs(2);

        let ok = client
            .send(get("/ok"), &allowed, soon(), 1024)
            .await
            .unwrap();
        assert_eq!((ok.status, ok.body.as_slice()), (200, &b"pong"[..]));
        assert!(ok.headers.iter().any(|(k, v)| k == "x-reply" && v == "yes"));

        let big = client.send(get("/big"), &allowed, soon(), 1024).await;
        assert_eq!(big.err(), Some(OutboundError::TooLarge));

        let started = Instant::now();
        let slow = client
            .send(
                get("/slow"),
                &allowed,
                Instant::now() + Duration::from_millis(200),
                1024,
            )
            .await;
        assert_eq!(slow.err(), Some(OutboundError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(4));

        let closed = format!("http://127.0.0.1:{}", unused_port());
        let refused = client
            .send(
                OutboundRequest {
                    url: format!("{closed}/"),
                    ..get("/ok")
                },
                &[Origin::parse(&closed).unwrap()],
                soon(),
                1024,
            )
            .await;
        assert!(
            matches!(refused, Err(OutboundError::Connection(_))),
            "{:?}",
            refused.err()
        );
    }

    fn unused_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}
