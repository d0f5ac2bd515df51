//! The second factor (API.md §2): `paygated keys totp enroll | reset` seals an
//! authenticator's secret into the key's config entry; a key that has one needs a fresh
//! `Paygate-OTP` code for the sensitive operations, each code accepted once, and a retry of
//! an answered request replays without one.

use std::collections::HashMap;

use serde_json::{Value, json};
use totp_rs::Totp;

use crate::support::*;

/// The authenticators the CLI printed, by key id.
pub type Authenticators = HashMap<String, Totp>;

/// The tests' config with `extra` appended and authenticators enrolled for `keys` by the
/// CLI; the config's text and the authenticators, as their apps would hold them.
pub fn enrolled(keys: &[&str], extra: &str) -> (String, Authenticators) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paygate.toml");
    std::fs::write(&path, format!("{}\n{extra}", default_config_text())).unwrap();
    let mut apps = HashMap::new();
    for key in keys {
        let out = run_paygated(&[
            "keys",
            "totp",
            "enroll",
            "--config",
            path.to_str().unwrap(),
            "--key-id",
            key,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "enroll {key}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        apps.insert(key.to_string(), app_of(&stdout));
    }
    (std::fs::read_to_string(&path).unwrap(), apps)
}

/// The authenticator an app makes of the `otpauth://` URI the CLI printed.
fn app_of(stdout: &str) -> Totp {
    let uri = stdout
        .lines()
        .find(|l| l.starts_with("otpauth://totp/"))
        .expect("the CLI prints the otpauth URI");
    Totp::from_url(uri).unwrap()
}

pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code of `app` for the step `steps` after the current one (0: now). The daemon
/// accepts one step either side of its own, so a test that uses the current step and the
/// next stays valid across one step boundary.
pub fn code(app: &Totp, start_s: u64, steps: u64) -> String {
    app.generate(start_s + steps * 30).to_string()
}

#[test]
fn enrolling_seals_the_secret_into_the_keys_entry_and_resetting_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paygate.toml");
    std::fs::write(&path, default_config_text()).unwrap();
    let file = path.to_str().unwrap();
    let enroll = |verb: &str, key: &str| {
        run_paygated(&["keys", "totp", verb, "--config", file, "--key-id", key])
    };
    let out = enroll("enroll", "key_demo_erp");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    let app = app_of(&stdout);
    // A QR code in the terminal (half blocks), and the URI with the issuer.
    assert!(stdout.contains('▀') || stdout.contains('▄'), "{stdout}");
    assert!(stdout.contains("otpauth://totp/paygate:key_demo_erp?"));
    assert!(stdout.contains("issuer=paygate"));
    let text = std::fs::read_to_string(&path).unwrap();
    let secret = app.secret().to_base32();
    assert!(
        !text.contains(&secret),
        "the secret is sealed, not written in clear"
    );
    assert_eq!(text.matches("totp = { key_id = ").count(), 1);
    // The rest of the file is as it was, comments included.
    assert!(text.contains("role = \"pos\"                   # pos | erp | admin"));
    let check = run_paygated(&["config", "check", "--config", file]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(
        summary.contains("erp   keys   2 (1 with an authenticator)"),
        "{summary}"
    );

    // Once only; a reset replaces it with another secret.
    let again = enroll("enroll", "key_demo_erp");
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("totp reset"));
    let reset = enroll("reset", "key_demo_erp");
    assert!(reset.status.success());
    let new_app = app_of(&String::from_utf8_lossy(&reset.stdout));
    assert_ne!(new_app.secret().to_base32(), secret);
    assert_eq!(
        std::fs::read_to_string(&path)
            .unwrap()
            .matches("totp = {")
            .count(),
        1
    );

    // Refused: a pos key, an unknown key, a reset of a key without one.
    for (verb, key, says) in [
        ("enroll", "key_demo_pos", "pos key"),
        ("enroll", "key_nobody", "no [[api_keys]] entry"),
        ("reset", "key_demo_admin", "no authenticator to reset"),
    ] {
        let out = enroll(verb, key);
        assert_eq!(out.status.code(), Some(2), "{verb} {key}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{verb} {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A secret moved to another key does not open (it is bound to its key's id): the
    // config is refused, naming the key.
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("totp = {"))
        .unwrap()
        .to_owned();
    let moved = text.replace(&format!("{line}\n"), "").replace(
        "id = \"key_demo_admin\"\n",
        &format!("id = \"key_demo_admin\"\n{line}\n"),
    );
    let (_dir, out) = config_check("moved.toml", &moved);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("key_demo_admin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn without_a_master_key_there_is_nothing_to_seal_with() {
    let text = default_config_text();
    let without = text
        .lines()
        .filter(|l| !l.starts_with("master_key ="))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paygate.toml");
    std::fs::write(&path, &without).unwrap();
    let out = run_paygated(&[
        "keys",
        "totp",
        "enroll",
        "--config",
        path.to_str().unwrap(),
        "--key-id",
        "key_demo_erp",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("master_key"));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        without,
        "the file is untouched"
    );
    let check = run_paygated(&["config", "check", "--config", path.to_str().unwrap()]);
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).contains("no authenticator can be enrolled"));
    // A config that has a sealed secret but no master key is refused by `config check`.
    let (with, _) = enrolled(&["key_demo_erp"], "");
    let stripped: String = with
        .lines()
        .filter(|l| !l.starts_with("master_key ="))
        .map(|l| format!("{l}\n"))
        .collect();
    let (_dir, out) = config_check("no-master.toml", &stripped);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("api_keys[1].totp"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn refund(
    daemon: &Daemon,
    payment: &str,
    key: &str,
    idem: &str,
    amount: &str,
    code: Option<&str>,
) -> (u16, bool, Value) {
    let mut request = daemon
        .client
        .post(daemon.url(&format!("/v1/payments/{payment}/refunds")))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header("idempotency-key", idem)
        .body(json!({"amount": amount}).to_string());
    if let Some(code) = code {
        request = request.header("paygate-otp", code);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    (status, replayed, response.json().await.unwrap())
}

#[tokio::test]
async fn sensitive_operations_need_a_fresh_code_once() {
    let (config, apps) = enrolled(
        &["key_demo_erp", "key_demo_admin"],
        "[console]\nrefund_confirm_above = { CNY = \"10.00\" }\n",
    );
    let daemon = Daemon::with_config(config);
    let erp = &apps["key_demo_erp"];
    let start = now_s();
    let (status, _, payment) = daemon.pay("p-otp", barcode("50.00")).await;
    assert_eq!(status, 201, "{payment}");
    let id = payment["id"].as_str().unwrap();

    // At or below the threshold: no code.
    assert_eq!(
        refund(&daemon, id, ERP, "r-small", "10.00", None).await.0,
        201
    );
    // Above it: none, then a wrong one.
    let (status, _, body) = refund(&daemon, id, ERP, "r-big", "20.00", None).await;
    assert_eq!(
        (status, error_kind(&body).1.as_str()),
        (401, "otp_required"),
        "{body}"
    );
    let wrong = if code(erp, start, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (status, _, body) = refund(&daemon, id, ERP, "r-big", "20.00", Some(wrong)).await;
    assert_eq!((status, error_kind(&body).1.as_str()), (401, "otp_invalid"));
    // Neither was kept as the key's answer: the right code now refunds.
    let now = code(erp, start, 0);
    let (status, replayed, first) = refund(&daemon, id, ERP, "r-big", "20.00", Some(&now)).await;
    assert_eq!((status, replayed), (201, false), "{first}");
    // The retry replays without a code.
    let (status, replayed, again) = refund(&daemon, id, ERP, "r-big", "20.00", None).await;
    assert_eq!((status, replayed, &again), (201, true, &first));
    // A code is accepted once.
    let (status, _, body) = refund(&daemon, id, ERP, "r-big-2", "15.00", Some(&now)).await;
    assert_eq!((status, error_kind(&body).1.as_str()), (401, "otp_invalid"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    let next = code(erp, start, 1);
    assert_eq!(
        refund(&daemon, id, ERP, "r-big-2", "15.00", Some(&next))
            .await
            .0,
        201
    );
    // Each key has its own authenticator and its own used steps: the admin key is asked
    // for its own code. (Keys without one are never asked: every other test's refunds.)
    let (_, _, other) = daemon
        .post_idempotent("/v1/payments", POS, Some("p-otp-2"), &barcode("30.00"))
        .await;
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(
        refund(&daemon, other_id, ADMIN, "r-admin", "25.00", None)
            .await
            .0,
        401,
        "the admin key has one"
    );

    // The admin's operations: a reload, lifting a block.
    let admin = &apps["key_demo_admin"];
    let reload = |code: Option<String>| {
        let mut request = daemon
            .client
            .post(daemon.url("/v1/plugins/reload"))
            .bearer_auth(ADMIN);
        if let Some(code) = code {
            request = request.header("paygate-otp", code);
        }
        request.send()
    };
    assert_eq!(reload(None).await.unwrap().status(), 401);
    assert_eq!(reload(Some("12345".into())).await.unwrap().status(), 401);
    assert_eq!(
        reload(Some(code(admin, start, 0))).await.unwrap().status(),
        200
    );
    let lift = |code: Option<String>| {
        let mut request = daemon
            .client
            .delete(daemon.url("/v1/blocks/blk_none"))
            .bearer_auth(ADMIN);
        if let Some(code) = code {
            request = request.header("paygate-otp", code);
        }
        request.send()
    };
    let response = lift(None).await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_kind(&body).1, "otp_required");
    // With a code, the request goes through to the lookup.
    assert_eq!(
        lift(Some(code(admin, start, 1))).await.unwrap().status(),
        404
    );

    // Operators see the checks by outcome.
    for (outcome, at_least) in [
        ("accepted", 4.0),
        ("missing", 3.0),
        ("wrong", 2.0),
        ("reused", 1.0),
        ("locked", 0.0),
    ] {
        let series = format!("paygate_second_factor_checks_total{{outcome=\"{outcome}\"}}");
        let value = daemon
            .metric(&series)
            .await
            .unwrap_or_else(|| panic!("{series} is exported"));
        assert!(value >= at_least, "{series} = {value}");
    }
    // Binding a settlement account, for a merchant the admin onboarded.
    let (status, _, merchant) = daemon
        .post_idempotent(
            "/v1/merchants",
            ADMIN,
            Some("m-otp"),
            &crate::onboarding::materials("OTP Shop"),
        )
        .await;
    assert_eq!(status, 201, "{merchant}");
    let account = json!({"provider": "mock", "account_holder": "OTP Shop",
                         "account_number": "6217000010012345678901", "bank_name": "B"});
    let path = format!(
        "/v1/merchants/{}/bank_accounts",
        merchant["id"].as_str().unwrap()
    );
    let (status, _, body) = daemon
        .post_idempotent(&path, ADMIN, Some("ba-otp"), &account)
        .await;
    assert_eq!(
        (status, error_kind(&body).1.as_str()),
        (401, "otp_required"),
        "{body}"
    );
}

#[tokio::test]
async fn wrong_codes_are_limited_per_key_and_a_used_idempotency_key_is_no_way_around() {
    let (config, apps) = enrolled(
        &["key_demo_erp", "key_demo_admin"],
        "[console]\nrefund_confirm_above = { CNY = \"10.00\" }\n",
    );
    let daemon = Daemon::with_config(config);
    let start = now_s();
    let erp = &apps["key_demo_erp"];
    let (_, _, payment) = daemon.pay("p-limit", barcode("80.00")).await;
    let id = payment["id"].as_str().unwrap();

    // A key used for a small refund (no code) cannot carry a large one without a code: the
    // code is asked before the key's reuse is found out.
    assert_eq!(
        refund(&daemon, id, ERP, "r-reuse", "5.00", None).await.0,
        201
    );
    let (status, _, body) = refund(&daemon, id, ERP, "r-reuse", "50.00", None).await;
    assert_eq!(
        (status, error_kind(&body).1.as_str()),
        (401, "otp_required"),
        "{body}"
    );

    // Five wrong codes, then even the right one waits.
    let right = code(erp, start, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for n in 0..5 {
        let (status, _, body) = refund(
            &daemon,
            id,
            ERP,
            &format!("r-guess-{n}"),
            "20.00",
            Some(wrong),
        )
        .await;
        assert_eq!(
            (status, error_kind(&body).1.as_str()),
            (401, "otp_invalid"),
            "{n}: {body}"
        );
    }
    let response = daemon
        .client
        .post(daemon.url(&format!("/v1/payments/{id}/refunds")))
        .bearer_auth(ERP)
        .header("content-type", "application/json")
        .header("idempotency-key", "r-right")
        .header("paygate-otp", &right)
        .body(json!({"amount": "20.00"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        error_kind(&body),
        (
            "rate_limit_error".to_owned(),
            "otp_attempts_exceeded".to_owned()
        )
    );
    // Per key: the admin key is not held back by the erp key's guesses.
    let admin = &apps["key_demo_admin"];
    assert_eq!(
        refund(
            &daemon,
            id,
            ADMIN,
            "r-admin",
            "20.00",
            Some(&code(admin, start, 0))
        )
        .await
        .0,
        201
    );

    // An application naming the account the provider settles to needs a code as binding
    // one does.
    let (status, _, merchant) = daemon
        .post_idempotent(
            "/v1/merchants",
            ADMIN,
            Some("m-otp-act"),
            &crate::onboarding::materials("Act Shop"),
        )
        .await;
    assert_eq!(status, 201, "{merchant}");
    let details = crate::onboarding::details("Act Shop");
    let path = format!(
        "/v1/merchants/{}/activations",
        merchant["id"].as_str().unwrap()
    );
    let body = json!({"provider": "mock", "details": {"settlement_account": details["settlement_account"]}});
    let (status, _, answer) = daemon
        .post_idempotent(&path, ADMIN, Some("act-otp"), &body)
        .await;
    assert_eq!(
        (status, error_kind(&answer).1.as_str()),
        (401, "otp_required"),
        "{answer}"
    );
}
