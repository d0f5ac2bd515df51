//! Operations endpoints and the OpenAPI document.

use crate::support::*;

#[tokio::test]
async fn health_and_readiness() {
    let daemon = Daemon::start();
    let (status, body) = daemon.get("/healthz", None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = daemon.get("/readyz", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"][0]["name"], "store");
    assert_eq!(body["checks"][0]["ok"], true);
}

#[tokio::test]
async fn openapi_document_describes_the_served_routes() {
    let daemon = Daemon::start();
    let (status, doc) = daemon.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/merchants",
        "/v1/merchants/{id}",
        "/v1/payments",
        "/v1/payments/{id}",
        "/v1/payments/{id}/cancel",
        "/v1/payments/{id}/refunds",
        "/v1/refunds/{id}",
        "/v1/notify/{provider}/{merchant_id}",
        "/v1/plugins",
        "/v1/plugins/reload",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from /openapi.json"
        );
    }
    // Every documented GET path is really served (none answers route_not_found).
    for (path, item) in paths {
        if item.get("get").is_some() {
            let concrete = path.replace("{id}", "m_demo");
            // Event streams answer headers at once and never end: only their status counts.
            let response = daemon
                .client
                .get(daemon.url(&concrete))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap();
            let is_stream = response
                .headers()
                .get("content-type")
                .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
            if is_stream {
                assert_eq!(response.status(), 200, "{path}");
                continue;
            }
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            assert_ne!(body["error"]["code"], "route_not_found", "{path}: {body}");
        }
    }
    // The error model of API.md §3.
    let detail = &doc["components"]["schemas"]["ErrorDetail"]["properties"];
    for field in ["type", "code", "message", "param", "request_id"] {
        assert!(detail.get(field).is_some(), "ErrorDetail.{field} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn demo_keys_and_the_mock_wallet_on_a_network_address_are_warned_about() {
    let daemon = Daemon::start_with(Options {
        extra_args: vec!["--listen".into(), "0.0.0.0:0".into()],
        ..Options::default()
    });
    let logs = daemon.logs();
    assert!(
        logs.contains("demo API keys are enabled on a non-loopback address"),
        "{logs}"
    );
    // The mock wallet's notify secret is published in the quick-start config.
    assert!(
        logs.contains("the mock wallet is enabled on a non-loopback address"),
        "{logs}"
    );

    let local = Daemon::start();
    assert!(!local.logs().contains("non-loopback"), "{}", local.logs());
}

#[tokio::test]
async fn unix_socket_serves_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let config = default_config_text().replace(
        "[server]\n",
        &format!("[server]\nunix_socket = \"{}\"\n", socket.display()),
    );
    let daemon = Daemon::with_config(config);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    stream
        .write_all(format!("GET /v1/merchants/m_demo HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ERP}\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"Demo Coffee\""), "{response}");
    drop(daemon);
}
