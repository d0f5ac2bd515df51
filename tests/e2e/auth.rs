//! API.md §2: the auth matrix against the real daemon.

use crate::support::*;

#[tokio::test]
async fn missing_or_unknown_or_malformed_key_is_401() {
    let daemon = Daemon::start();
    let (status, body) = daemon.get("/v1/merchants/m_demo", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        error_kind(&body),
        ("authentication_error".into(), "api_key_invalid".into())
    );

    let (status, body) = daemon
        .get("/v1/merchants/m_demo", Some("pg_not_a_key"))
        .await;
    assert_eq!(status, 401);
    assert_eq!(error_kind(&body).0, "authentication_error");

    let response = daemon
        .client
        .get(daemon.url("/v1/merchants/m_demo"))
        .header("authorization", format!("Basic {ERP}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn wrong_role_is_403() {
    let daemon = Daemon::start();
    let (status, body) = daemon.get("/v1/merchants/m_demo", Some(POS)).await;
    assert_eq!(status, 403);
    assert_eq!(
        error_kind(&body),
        ("permission_error".into(), "permission_denied".into())
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("role pos")
    );
    let (status, _) = daemon.get("/v1/merchants", Some(POS)).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn merchant_out_of_scope_is_403_and_looks_like_a_missing_one() {
    let daemon = Daemon::start();
    let (status, body) = daemon.get("/v1/merchants/m_other", Some(ERP)).await;
    assert_eq!(status, 403);
    assert_eq!(error_kind(&body).0, "permission_error");

    // A merchant that does not exist at all answers the same way for a scoped key: only the
    // id it was asked about (and the request id) differ.
    let (missing_status, missing) = daemon.get("/v1/merchants/m_nowhere", Some(ERP)).await;
    assert_eq!(missing_status, 403);
    let normalise = |body: &serde_json::Value, id: &str| {
        let mut error = body["error"].clone();
        error["request_id"] = serde_json::Value::Null;
        error["message"] = error["message"].as_str().unwrap().replace(id, "ID").into();
        error
    };
    assert_eq!(
        normalise(&body, "m_other"),
        normalise(&missing, "m_nowhere")
    );
}

#[tokio::test]
async fn in_scope_and_admin_access_work() {
    let daemon = Daemon::start();
    let (status, body) = daemon.get("/v1/merchants/m_demo", Some(ERP)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "m_demo");
    assert_eq!(body["object"], "merchant");
    assert_eq!(body["name"], "Demo Coffee");

    let (status, body) = daemon.get("/v1/merchants/m_other", Some(OTHER_ERP)).await;
    assert_eq!(status, 200, "{body}");

    // Admin sees every merchant, and a missing one is a plain 404.
    let (status, body) = daemon.get("/v1/merchants/m_other", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = daemon.get("/v1/merchants/m_nowhere", Some(ADMIN)).await;
    assert_eq!(status, 404);
    assert_eq!(
        error_kind(&body),
        ("invalid_request_error".into(), "resource_missing".into())
    );
}

#[tokio::test]
async fn lists_show_only_the_keys_merchants_and_paginate() {
    let daemon = Daemon::start();
    let (status, body) = daemon.get("/v1/merchants", Some(ERP)).await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m_demo"]);
    assert_eq!(body["has_more"], false);

    let (_, first) = daemon.get("/v1/merchants?limit=1", Some(ADMIN)).await;
    assert_eq!(first["data"][0]["id"], "m_demo");
    assert_eq!(first["has_more"], true);
    let (_, second) = daemon
        .get("/v1/merchants?limit=1&starting_after=m_demo", Some(ADMIN))
        .await;
    assert_eq!(second["data"][0]["id"], "m_other");
    assert_eq!(second["has_more"], false);

    let (status, body) = daemon.get("/v1/merchants?limit=0", Some(ADMIN)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "limit");
    let (status, body) = daemon.get("/v1/merchants?limt=5", Some(ADMIN)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "parameter_unknown");
    assert_eq!(body["error"]["param"], "limt");
}

#[tokio::test]
async fn keys_never_reach_the_logs() {
    let daemon = Daemon::start();
    daemon.get("/v1/merchants/m_demo", Some(ERP)).await;
    daemon
        .get("/v1/merchants/m_demo", Some("pg_wrong_secret"))
        .await;
    let logs = daemon.logs();
    assert!(
        logs.contains("key_demo_erp"),
        "the access log names the key id:\n{logs}"
    );
    assert!(
        !logs.contains(ERP) && !logs.contains("pg_wrong_secret"),
        "{logs}"
    );
}
