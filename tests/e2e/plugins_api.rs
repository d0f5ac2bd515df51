//! `GET /v1/plugins`, `POST /v1/plugins/reload`, SIGHUP, and pinned plugins, against the
//! real daemon.

use std::time::Duration;

use crate::support::*;

/// The default config with the mock plugin copied into the test's dir and pinned.
fn pinned_config(dir: &std::path::Path) -> (String, std::path::PathBuf, String) {
    let copy = dir.join("mock.wasm");
    std::fs::copy(plugin_dir().join("paygate-plugin-mock.wasm"), &copy).unwrap();
    let hash = sha256_file(&copy);
    let text = default_config_text().replace(
        &format!(
            "path = \"{}\"",
            plugin_dir().join("paygate-plugin-mock.wasm").display()
        ),
        &format!("path = \"{}\"\nsha256 = \"{hash}\"", copy.display()),
    );
    assert!(text.contains(&hash));
    (text, copy, hash)
}

fn tamper(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn plugins_are_listed_for_admins_only() {
    let daemon = Daemon::start();
    let (status, body) = daemon.get("/v1/plugins", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    let mock = &body["data"][0];
    assert_eq!(mock["name"], "mock");
    assert_eq!(mock["object"], "plugin");
    assert_eq!(mock["world_version"], "0.5.0");
    assert_eq!(mock["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(mock["providers"][0]["name"], "mock");
    assert_eq!(
        mock["providers"][0]["methods"],
        serde_json::json!(["qr", "barcode", "link"])
    );
    assert_eq!(
        mock["providers"][0]["payment_codes"][0]["prefixes"],
        serde_json::json!(["99"])
    );
    assert!(mock["providers"][0]["operations"].as_array().unwrap().len() == 11);
    assert!(
        mock["calls"].as_u64().unwrap() >= 1,
        "the info call at load counts"
    );
    assert_eq!(mock["faults"], 0);
    assert!(mock["loaded_at"].as_str().unwrap().ends_with('Z'));

    let (status, _) = daemon.get("/v1/plugins", Some(ERP)).await;
    assert_eq!(status, 403);
    let (status, body) = daemon.get("/readyz", None).await;
    assert_eq!(status, 200);
    assert!(body.to_string().contains("3 loaded"), "{body}");
}

#[tokio::test]
async fn a_tampered_pinned_plugin_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (text, copy, _) = pinned_config(dir.path());
    tamper(&copy);
    let config = dir.path().join("paygate.toml");
    std::fs::write(&config, text).unwrap();
    let output = run_paygated(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("plugins[0].sha256") && stderr.contains("changed or replaced"),
        "{stderr}"
    );
}

#[tokio::test]
async fn reload_through_the_api_refuses_a_tampered_plugin_and_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (text, copy, hash) = pinned_config(dir.path());
    let daemon = Daemon::with_config(text);

    let reload = |key| {
        daemon
            .client
            .post(daemon.url("/v1/plugins/reload"))
            .bearer_auth(key)
            .send()
    };
    let ok = reload(ADMIN).await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(
        body["plugins"],
        serde_json::json!(["mock", "alipay", "wechatpay"]),
        "every [[plugins]] entry, in config order"
    );
    assert_eq!(body["changed"], serde_json::json!([]));
    assert_eq!(reload(ERP).await.unwrap().status(), 403);

    tamper(&copy);
    let refused = reload(ADMIN).await.unwrap();
    assert_eq!(refused.status(), 422);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "plugin_reload_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("changed or replaced"),
        "{body}"
    );

    let (_, plugins) = daemon.get("/v1/plugins", Some(ADMIN)).await;
    assert_eq!(
        plugins["data"][0]["sha256"],
        hash.as_str(),
        "the old plugin stays in service"
    );
}

#[tokio::test]
async fn sighup_reloads_a_changed_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("plugin.wasm");
    std::fs::copy(plugin_dir().join("paygate-plugin-mock.wasm"), &copy).unwrap();
    let text = default_config_text().replace(
        &plugin_dir()
            .join("paygate-plugin-mock.wasm")
            .display()
            .to_string(),
        &copy.display().to_string(),
    );
    let daemon = Daemon::with_config(text);
    let (_, before) = daemon.get("/v1/plugins", Some(ADMIN)).await;

    // A changed file that still serves provider `mock`: the same component with an empty
    // custom section (id 0, named "note") appended.
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes.extend_from_slice(&[0x00, 0x05, 0x04, b'n', b'o', b't', b'e']);
    std::fs::write(&copy, bytes).unwrap();
    signal(daemon.pid(), "HUP");

    let mut after = serde_json::Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, now) = daemon.get("/v1/plugins", Some(ADMIN)).await;
        if now["data"][0]["sha256"] != before["data"][0]["sha256"] {
            after = now;
            break;
        }
    }
    assert_ne!(
        after,
        serde_json::Value::Null,
        "SIGHUP did not reload: {}",
        daemon.logs()
    );
    assert_eq!(after["data"][0]["name"], "mock");
}

#[test]
fn plugin_inspect_describes_a_component_and_refuses_a_foreign_world() {
    let mock = plugin_dir().join("paygate-plugin-mock.wasm");
    let output = run_paygated(&["plugin", "inspect", mock.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hash = sha256_file(&mock);
    assert!(stdout.contains(&hash), "{stdout}");
    assert!(
        stdout.contains("paygate:provider@0.5.0 (compatible)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("provider  mock (Mock Wallet): methods [qr, barcode, link]"),
        "{stdout}"
    );

    let future = test_plugin("paygate-test-plugin-future-world");
    let output = run_paygated(&["plugin", "inspect", future.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stdout.contains("paygate:provider@0.9.0") && stdout.contains("paygate:provider@0.5.0"),
        "{stdout}"
    );

    let output = run_paygated(&["plugin", "inspect", "/nonexistent.wasm"]);
    assert_eq!(output.status.code(), Some(2));
    let not_wasm = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_wasm.path(), b"hello").unwrap();
    let output = run_paygated(&["plugin", "inspect", not_wasm.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a valid component"));
}

/// `POST /v1/plugins/reload` (and SIGHUP) applies the config file's API keys and merchants'
/// provider keys as well as its plugins, all or nothing: a config that fails anywhere leaves
/// the running set in service and says why.
#[tokio::test]
async fn reload_applies_api_keys_and_merchant_keys_all_or_nothing() {
    let daemon = Daemon::start();
    let config_path = daemon.dir.path().join("paygate.toml");
    let original = std::fs::read_to_string(&config_path).unwrap();
    let (status, _, pending) = daemon.pay("reload-qr", qr("3.00")).await;
    assert_eq!((status, pending["status"].as_str()), (201, Some("pending")));
    let id = pending["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/payments/{id}");
    let reload = || async {
        let response = daemon
            .client
            .post(daemon.url("/v1/plugins/reload"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().await.unwrap())
    };

    // The till's key replaced by a new one; m_demo's mock notice secret rotated.
    const NEW_POS: &str = "pg_reload_pos_5d41402abc4b2a76";
    const NEW_SECRET: &str = "rotated-notify-secret";
    let old_pos_hash = sha256_hex(POS);
    assert!(original.contains(&old_pos_hash));
    assert!(original.contains("inline:demo-notify-secret"));
    let rotated = original
        .replace(&old_pos_hash, &sha256_hex(NEW_POS))
        .replace("inline:demo-notify-secret", &format!("inline:{NEW_SECRET}"));
    std::fs::write(&config_path, &rotated).unwrap();
    let (status, report) = reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["api_keys"],
        original.matches("[[api_keys]]").count(),
        "{report}"
    );
    assert!(report["merchants"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(daemon.get(&path, Some(POS)).await.0, 401);
    assert_eq!(daemon.get(&path, Some(NEW_POS)).await.0, 200);
    // The provider key: a notice signed with the old secret is refused, the new one applies.
    let paid = serde_json::json!({"payment_id": id, "status": "succeeded", "amount": "3.00", "currency": "CNY"});
    assert_eq!(
        mock_notice(&daemon, "m_demo", DEMO_NOTIFY_SECRET, &paid).await,
        400
    );
    assert_eq!(mock_notice(&daemon, "m_demo", NEW_SECRET, &paid).await, 200);
    assert_eq!(
        daemon.get(&path, Some(NEW_POS)).await.1["status"],
        "succeeded"
    );

    // A config whose merchant key cannot be read, then one that does not parse: refused,
    // naming why; the keys and secrets of the last good reload stay in service.
    let broken_key = rotated.replace(
        &format!("inline:{NEW_SECRET}"),
        "file:/nonexistent/paygate/notify-secret",
    );
    for (broken, says) in [
        (broken_key, "notify_secret"),
        (format!("{rotated}\n[[api_keys]\n"), "invalid config"),
    ] {
        std::fs::write(&config_path, broken).unwrap();
        let (status, refused) = reload().await;
        assert_eq!(status, 422, "{refused}");
        assert_eq!(refused["error"]["code"], "plugin_reload_failed");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(says) && message.contains("stay in service"),
            "{message}"
        );
        assert_eq!(daemon.get(&path, Some(NEW_POS)).await.0, 200);
        assert_eq!(daemon.get(&path, Some(POS)).await.0, 401);
    }
    // The rotated notice secret stays: a repeat of the notice verifies, the old one does not.
    assert_eq!(mock_notice(&daemon, "m_demo", NEW_SECRET, &paid).await, 200);
    assert_eq!(
        mock_notice(&daemon, "m_demo", DEMO_NOTIFY_SECRET, &paid).await,
        400
    );
}
