//! Invalid configurations: `serve` and `config check` exit 2 with the file, line and field.

use std::process::Output;

use crate::support::*;

fn serve(text: &str) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let data = dir.path().join("data");
    let output = run_paygated(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        path.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    (dir, output)
}

/// Asserts exit code 2 and a message naming `bad.toml:<line>` and `field`.
fn assert_refused(output: &Output, line: usize, field: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("bad.toml:{line}:")),
        "no line {line} in: {stderr}"
    );
    assert!(stderr.contains(field), "no {field} in: {stderr}");
}

const HASH: &str = "7abe01990236f603771499d60008200d6e0d6d7b728261fc13534a28e953bea5";

#[test]
fn unknown_field() {
    let text = "[server]\nlisten = \"127.0.0.1:0\"\nbody_bytes = 5\n";
    let (_dir, output) = config_check("bad.toml", text);
    assert_refused(&output, 3, "body_bytes");
    let (_dir, output) = serve(text);
    assert_refused(&output, 3, "body_bytes");
}

#[test]
fn wrong_type() {
    let (_dir, output) = config_check("bad.toml", "[server]\n\ndrain_timeout_ms = \"ten\"\n");
    assert_refused(&output, 3, "server.drain_timeout_ms");
}

#[test]
fn bad_key_hash() {
    let text = format!(
        "[[api_keys]]\nid = \"key_ok\"\nrole = \"admin\"\nsha256 = \"{HASH}\"\n\n[[api_keys]]\nid = \"key_bad\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        &HASH[..63]
    );
    let (_dir, output) = serve(&text);
    assert_refused(&output, 9, "api_keys[1].sha256");
    assert!(String::from_utf8_lossy(&output.stderr).contains("64 hex"));
}

#[test]
fn missing_files() {
    let (_dir, output) = config_check(
        "bad.toml",
        "[server.tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n",
    );
    assert_refused(&output, 2, "server.tls.cert_file");
    let (_dir, output) = config_check(
        "bad.toml",
        "[[merchants]]\nid = \"m_a\"\nname = \"A\"\n\n[merchants.providers.alipay.keys]\napp_private_key = \"file:/nonexistent/k.pem\"\n",
    );
    assert_refused(
        &output,
        6,
        "merchants[0].providers.alipay.keys.app_private_key",
    );

    let missing = run_paygated(&["config", "check", "--config", "/nonexistent/paygate.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/paygate.toml"));
}

#[test]
fn unreadable_certificate_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let text = format!(
        "[server.tls]\ncert_file = \"{0}\"\nkey_file = \"{0}\"\n",
        cert.display()
    );
    let (_dir, output) = serve(&text);
    assert_refused(&output, 2, "server.tls.cert_file");
}

#[test]
fn listen_address_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        format!("# a comment\n[server]\nlisten = \"{addr}\"\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let output = run_paygated(&[
        "serve",
        "--config",
        path.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_refused(&output, 3, "server.listen");
    assert!(String::from_utf8_lossy(&output.stderr).contains("already in use"));
}

#[test]
fn bad_command_line_override() {
    let output = run_paygated(&[
        "serve",
        "--listen",
        "localhost",
        "--config",
        "/nonexistent.toml",
    ]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn shipped_config_checks_clean() {
    // From the repository root, as `cargo xtask run` starts it (plugin paths are relative).
    let output = std::process::Command::new(paygated())
        .args(["config", "check", "--config", "config/paygate.toml"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("m_demo"), "{stdout}");
    assert!(stdout.contains("demo keys"), "{stdout}");
}

#[test]
fn keys_new_prints_a_key_and_its_hash() {
    let output = run_paygated(&["keys", "new", "--role", "pos", "--merchant", "m_demo"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let key = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("pg_"))
        .unwrap();
    assert!(
        stdout.contains(&format!("sha256 = \"{}\"", sha256_hex(key))),
        "{stdout}"
    );
    assert!(stdout.contains("role = \"pos\"") && stdout.contains("merchants = [\"m_demo\"]"));

    // The printed lines are a valid config that authenticates the printed key.
    let config = stdout[stdout.find("[[api_keys]]").unwrap()..].to_owned();
    let daemon = Daemon::with_config(format!(
        "{config}\n[[merchants]]\nid = \"m_demo\"\nname = \"D\"\n"
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, _) = rt.block_on(daemon.get("/v1/merchants/m_demo", Some(key)));
    assert_eq!(
        status, 403,
        "a pos key authenticates but may not read merchants"
    );
    let (status, _) = rt.block_on(daemon.get("/v1/merchants/m_demo", Some("pg_other")));
    assert_eq!(status, 401);

    let admin_with_merchant =
        run_paygated(&["keys", "new", "--role", "admin", "--merchant", "m_demo"]);
    assert_eq!(admin_with_merchant.status.code(), Some(2));
    let pos_without = run_paygated(&["keys", "new", "--role", "pos"]);
    assert_eq!(pos_without.status.code(), Some(2));
}

#[test]
fn bad_console_settings_and_second_factors() {
    let key = |role: &str, totp: &str| {
        let scope = if role == "admin" {
            ""
        } else {
            "merchants = [\"m_a\"]\n"
        };
        format!(
            "[[api_keys]]\nid = \"key_x\"\nrole = \"{role}\"\nsha256 = \"{HASH}\"\n{totp}\n{scope}"
        )
    };
    let sealed = "totp = { key_id = \"00\", nonce = \"00\", ciphertext = \"00\" }";
    for (text, line, field) in [
        (
            "[console]\nrefund_confirm_above = { XYZ = \"1.00\" }\n".to_owned(),
            2,
            "console.refund_confirm_above.XYZ",
        ),
        (
            "[console]\nrefund_confirm_above = { CNY = \"1.001\" }\n".to_owned(),
            2,
            "console.refund_confirm_above.CNY",
        ),
        (
            "[console]\n\nidle_timeout_s = 5\n".to_owned(),
            3,
            "console.idle_timeout_s",
        ),
        (
            "[console]\nidle_timeout_s = 7200\nabsolute_timeout_s = 3600\n".to_owned(),
            2,
            "console.idle_timeout_s",
        ),
        (
            "[console]\nlogin_failures_per_minute = 0\n".to_owned(),
            2,
            "console.login_failures_per_minute",
        ),
        ("[console]\nsession_s = 60\n".to_owned(), 2, "session_s"),
        // An authenticator on a till's key; one without a master key to open it; one
        // missing its fields.
        (key("pos", sealed), 5, "api_keys[0].totp"),
        (key("erp", sealed), 5, "api_keys[0].totp"),
        (
            key("admin", "totp = { key_id = \"00\" }"),
            5,
            "api_keys[0].totp",
        ),
    ] {
        let (_dir, output) = config_check("bad.toml", &text);
        assert_refused(&output, line, field);
    }
}

/// A database that cannot be this daemon's is refused at start, exit 2 (a restart would not
/// help), naming the setting: a role or a database the server does not know, another
/// product's database, a schema newer than the binary. Needs a PostgreSQL (the tests' server,
/// or a throwaway cluster), whichever engine this run is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_ours_is_refused_at_start_with_exit_2() {
    use paygate_daemon::store::postgres::testing::server;
    let Some(server) = server().await else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no PostgreSQL for the tests"
        );
        return;
    };
    let base = server.settings("x").url.replace(" dbname=x", "");
    let on = |url: &str| {
        format!(
            "{}\n[store.postgres]\nurl = \"inline:{url}\"\n",
            default_config_text().replace("engine = \"sled\"", "engine = \"postgres\"")
        )
    };
    let foreign = server.fresh_database().await;
    let newer = server.fresh_database().await;
    use paygate_daemon::store::postgres::testing::client_of;
    client_of(&server.settings(&foreign))
        .await
        .batch_execute("CREATE TABLE invoices (id int)")
        .await
        .unwrap();
    let settings = server.settings(&newer);
    paygate_daemon::store::postgres::PgStore::open(&settings)
        .await
        .unwrap();
    client_of(&settings)
        .await
        .execute(
            "INSERT INTO paygate_migrations (version, name, oldest_binary) VALUES ($1, 'x', $1)",
            &[&(paygate_daemon::store::postgres::SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let user_free = base
        .split_whitespace()
        .filter(|kv| !kv.starts_with("user="))
        .collect::<Vec<_>>()
        .join(" ");
    for (url, says) in [
        (
            format!("{user_free} user=paygate_no_such_role dbname={newer}"),
            "store.postgres.url:",
        ),
        (
            format!("{base} dbname=paygate_no_such_database"),
            "store.postgres.url:",
        ),
        (format!("{base} dbname={foreign}"), "another product's"),
        (format!("{base} dbname={newer}"), "run a newer paygated"),
    ] {
        let (_dir, output) = tokio::task::block_in_place(|| serve(&on(&url)));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{url}: {stderr}");
        assert!(stderr.contains(says), "{url}: {stderr}");
    }
}
