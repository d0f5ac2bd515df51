//! API.md §1 and §3: malformed, hostile and boundary input gets a clear 4xx, never a 5xx.
//! Uses the test-only echo route (feature `test-hooks`) until real POST routes exist.

use crate::support::*;

const ECHO: &str = "/v1/_test/echo";

#[tokio::test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test-hooks feature, which cargo xtask test turns on"
)]
async fn valid_body_is_accepted() {
    let daemon = Daemon::start();
    let (status, body) = daemon
        .post_raw(
            ECHO,
            Some(POS),
            Some("application/json; charset=utf-8"),
            r#"{"payload":{"a":1}}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"]["a"], 1);
    assert_eq!(body["api_key_id"], "key_demo_pos");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test-hooks feature, which cargo xtask test turns on"
)]
async fn malformed_json_is_400() {
    let daemon = Daemon::start();
    for bad in [
        "{",
        "",
        "[1,2",
        "{\"payload\": }",
        "{} x",
        "\u{0}",
        r#"{"delay_ms":1e400}"#,
    ] {
        let (status, body) = daemon
            .post_raw(ECHO, Some(POS), Some("application/json"), bad)
            .await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert_eq!(
            error_kind(&body),
            ("invalid_request_error".into(), "json_invalid".into())
        );
    }
    let (status, body) = daemon
        .post_raw(
            ECHO,
            Some(POS),
            Some("application/json"),
            vec![0xff, 0xfe, b'{'],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // Valid JSON that is not an object.
    for bad in ["null", "[]", "\"text\"", "12"] {
        let (status, body) = daemon
            .post_raw(ECHO, Some(POS), Some("application/json"), bad)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "parameter_invalid");
    }
}

#[tokio::test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test-hooks feature, which cargo xtask test turns on"
)]
async fn unknown_field_is_named() {
    let daemon = Daemon::start();
    let (status, body) = daemon
        .post_raw(
            ECHO,
            Some(POS),
            Some("application/json"),
            r#"{"payload":1,"delay_sm":5}"#,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "parameter_unknown");
    assert_eq!(body["error"]["param"], "delay_sm");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("delay_sm")
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test-hooks feature, which cargo xtask test turns on"
)]
async fn wrong_types_and_out_of_range_values_name_the_field() {
    let daemon = Daemon::start();
    for bad in [
        r#"{"delay_ms":"5"}"#,
        r#"{"delay_ms":-1}"#,
        r#"{"delay_ms":1.5}"#,
        r#"{"delay_ms":99999999999999999999999}"#,
    ] {
        let (status, body) = daemon
            .post_raw(ECHO, Some(POS), Some("application/json"), bad)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["param"], "delay_ms", "{bad}: {body}");
    }
    let (status, body) = daemon
        .post_raw(
            ECHO,
            Some(POS),
            Some("application/json"),
            r#"{"delay_ms":999999}"#,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "delay_ms");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test-hooks feature, which cargo xtask test turns on"
)]
async fn body_over_the_limit_is_413_and_at_the_limit_is_accepted() {
    let daemon = Daemon::start();
    let limit = 64 * 1024;
    let at_limit = format!(r#"{{"payload":"{}"}}"#, "x".repeat(limit - 14));
    assert_eq!(at_limit.len(), limit);
    let (status, body) = daemon
        .post_raw(ECHO, Some(POS), Some("application/json"), at_limit)
        .await;
    assert_eq!(status, 200, "{body}");

    let over = format!(r#"{{"payload":"{}"}}"#, "x".repeat(limit - 13));
    assert_eq!(over.len(), limit + 1);
    let (status, body) = daemon
        .post_raw(ECHO, Some(POS), Some("application/json"), over)
        .await;
    assert_eq!(status, 413);
    assert_eq!(
        error_kind(&body),
        ("invalid_request_error".into(), "body_too_large".into())
    );

    // Without a Content-Length (chunked), the limit holds as the body streams in. The rest
    // of the body is never read, so the answer closes the connection (the client asked to
    // keep it).
    let mut request = format!(
        "POST {ECHO} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {POS}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..70 {
        request.extend_from_slice(b"400\r\n");
        request.extend_from_slice(&[b' '; 1024]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = daemon.raw(&request).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{response}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test-hooks feature, which cargo xtask test turns on"
)]
async fn wrong_content_type_is_415() {
    let daemon = Daemon::start();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
    ] {
        let (status, body) = daemon
            .post_raw(ECHO, Some(POS), content_type, r#"{"payload":1}"#)
            .await;
        assert_eq!(status, 415, "{content_type:?}");
        assert_eq!(
            error_kind(&body),
            (
                "invalid_request_error".into(),
                "content_type_invalid".into()
            )
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let daemon = Daemon::start();
    let (status, body) = daemon.get("/v1/nothing/here", Some(ADMIN)).await;
    assert_eq!(status, 404);
    assert_eq!(
        error_kind(&body),
        ("invalid_request_error".into(), "route_not_found".into())
    );

    let (status, body) = daemon
        .post_raw("/healthz", None, Some("application/json"), "{}")
        .await;
    assert_eq!(status, 405);
    assert_eq!(
        error_kind(&body),
        ("invalid_request_error".into(), "method_not_allowed".into())
    );

    let response = daemon
        .client
        .delete(daemon.url("/v1/merchants/m_demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn hostile_paths_and_headers_never_give_5xx() {
    let daemon = Daemon::start();
    for path in [
        "/v1/merchants/%00",
        "/v1/merchants/..%2F..%2Fetc",
        "/v1/merchants/%ZZ",
        "/%",
        &format!("/v1/merchants/{}", "a".repeat(8000)),
    ] {
        let response = daemon
            .client
            .get(daemon.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error() || response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
    // Bytes that are legal in a header value but not text reach the API and fail auth.
    let response = daemon
        .raw(b"GET /v1/merchants HTTP/1.1\r\nhost: x\r\nauthorization: Bearer \xff\xfe\r\nconnection: close\r\n\r\n")
        .await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    // Control characters are refused by the HTTP parser itself.
    let response = daemon
        .raw(b"GET /v1/merchants HTTP/1.1\r\nhost: x\r\nauthorization: Bearer \x01\r\nconnection: close\r\n\r\n")
        .await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    let response = daemon.raw(b"GARBAGE\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 400") || response.is_empty(),
        "{response}"
    );
}
