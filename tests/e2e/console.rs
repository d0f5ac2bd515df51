//! The console over plain HTTP (API.md §11): log-in with a key and a TOTP code, sessions
//! and their cookies, CSRF tokens, codes used once, refunds above the threshold asking for
//! a fresh code, markup shown as text. The same pages in a real browser: `browser.rs`.

use std::collections::HashMap;

use serde_json::json;

use crate::second_factor::{Authenticators, code, enrolled, now_s};
use crate::support::*;

/// A browser's share of HTTP: cookies kept, redirects not followed.
pub struct Visitor<'a> {
    daemon: &'a Daemon,
    client: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The value of the first form field `name`.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\"");
        let at = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body));
        let tag_start = self.body[..at].rfind('<').unwrap();
        let tag = &self.body[tag_start..tag_start + self.body[tag_start..].find('>').unwrap()];
        let value = tag
            .split("value=\"")
            .nth(1)
            .unwrap_or_else(|| panic!("field {name} has no value: {tag}"));
        value.split('"').next().unwrap().to_owned()
    }
}

impl<'a> Visitor<'a> {
    pub fn new(daemon: &'a Daemon) -> Visitor<'a> {
        Visitor {
            daemon,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = request
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all("set-cookie") {
            let text = set.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(self.daemon.url(path));
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = self
            .client
            .post(self.daemon.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    pub async fn post_owned(&mut self, path: &str, fields: Vec<(String, String)>) -> Page {
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.post(path, &pairs).await
    }

    /// Logs in with `key` and `code`; the answer to the form.
    pub async fn log_in(&mut self, key: &str, code: &str) -> Page {
        let page = self.get("/console/login").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.field("csrf");
        self.post(
            "/console/login",
            &[("csrf", &csrf), ("api_key", key), ("code", code)],
        )
        .await
    }
}

fn console_config() -> (String, Authenticators) {
    enrolled(
        &["key_demo_erp", "key_demo_admin"],
        "[console]\nrefund_confirm_above = { CNY = \"10.00\" }\nlogin_failures_per_minute = 4\n",
    )
}

#[tokio::test]
async fn log_in_with_a_key_and_a_code_once() {
    let (config, apps) = console_config();
    let daemon = Daemon::with_config(config);
    let start = now_s();
    let erp = &apps["key_demo_erp"];
    let mut visitor = Visitor::new(&daemon);
    // Pages need a session.
    let page = visitor.get("/console").await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some("/console/login"))
    );
    // The log-in page: strict headers, no script.
    let login = visitor.get("/console/login").await;
    let csp = login.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        !csp.contains("script-src"),
        "the console runs no script: {csp}"
    );
    assert!(!login.body.contains("<script"));
    assert_eq!(login.headers["cache-control"], "no-store");

    // A wrong code, a pos key, a key without an authenticator: refused.
    let wrong = if code(erp, start, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let page = visitor.log_in(ERP, wrong).await;
    assert_eq!(page.status, 401);
    assert!(!visitor.cookies.contains_key("pg_console"));
    // A code of three steps ago (an expired one) is refused as a wrong one is.
    assert_eq!(
        visitor.log_in(ERP, &code(erp, start - 90, 0)).await.status,
        401
    );
    assert_eq!(visitor.log_in(POS, "123456").await.status, 403);
    assert_eq!(
        visitor.log_in(OTHER_ERP, "123456").await.status,
        403,
        "key_other_erp has no authenticator"
    );

    // A session id planted before log-in is never adopted.
    visitor
        .cookies
        .insert("pg_console".into(), "planted-by-someone-else".into());
    let page = visitor.log_in(ERP, &code(erp, start, 0)).await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some("/console")),
        "{}",
        page.body
    );
    let session = visitor.cookies["pg_console"].clone();
    assert_ne!(session, "planted-by-someone-else");
    assert_eq!(session.len(), 43, "256 random bits");
    let set_cookie: Vec<_> = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session_cookie = set_cookie
        .iter()
        .find(|c| c.starts_with("pg_console="))
        .unwrap();
    assert!(
        session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Strict"),
        "{session_cookie}"
    );
    let today = visitor.get("/console").await;
    assert_eq!(today.status, 200, "{}", today.body);
    assert!(today.body.contains("key_demo_erp"));
    let mut intruder = Visitor::new(&daemon);
    intruder
        .cookies
        .insert("pg_console".into(), "planted-by-someone-else".into());
    assert_eq!(intruder.get("/console").await.status, 303);

    // The same code does not log in twice (another browser, the same person or not).
    let mut second = Visitor::new(&daemon);
    assert_eq!(second.log_in(ERP, &code(erp, start, 0)).await.status, 401);

    // Log-out needs the session's token; then the session is gone.
    let csrf = today.field("csrf");
    let page = visitor.post("/console/logout", &[("csrf", "forged")]).await;
    assert_eq!(page.location.as_deref(), Some("/console"));
    assert_eq!(visitor.get("/console").await.status, 200, "still signed in");
    let page = visitor.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 303);
    let mut replayed = Visitor::new(&daemon);
    replayed.cookies.insert("pg_console".into(), session);
    let page = replayed.get("/console").await;
    assert_eq!(page.location.as_deref(), Some("/console/login?ended=1"));
}

#[tokio::test]
async fn failed_log_ins_are_limited_per_client_and_the_form_needs_its_token() {
    let (config, _apps) = enrolled(
        &["key_demo_erp"],
        "[console]\nlogin_failures_per_minute = 4\n\n[monitor.rules.credential_abuse]\nthreshold = 4\n",
    );
    let daemon = Daemon::with_config(config);
    let mut visitor = Visitor::new(&daemon);
    // Without the form's token, or with a token of another form: refused before anything.
    let page = visitor
        .post("/console/login", &[("api_key", ERP), ("code", "123456")])
        .await;
    assert_eq!(page.status, 403);
    let mut other = Visitor::new(&daemon);
    let foreign = other.get("/console/login").await.field("csrf");
    visitor.get("/console/login").await;
    let page = visitor
        .post(
            "/console/login",
            &[("csrf", &foreign), ("api_key", ERP), ("code", "123456")],
        )
        .await;
    assert_eq!(page.status, 403);
    // A body that is no form at all (bytes that are not UTF-8, a broken escape), or a
    // form with every field twice: refused the same way, nothing logged in.
    for body in [
        vec![0xff, 0xfe, b'=', b'%', b'z'],
        b"csrf=a&csrf=b&api_key=x&code=1".to_vec(),
    ] {
        let response = daemon
            .client
            .post(daemon.url("/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        assert!(
            response
                .headers()
                .get("set-cookie")
                .is_none_or(|c| !c.to_str().unwrap().starts_with("pg_console="))
        );
    }
    // Four failures a minute, then the client waits.
    for _ in 0..4 {
        assert_eq!(visitor.log_in("pg_wrong_key", "123456").await.status, 401);
    }
    let page = visitor.log_in(ERP, "123456").await;
    assert_eq!(page.status, 429);
    assert!(page.headers.contains_key("retry-after"));
    // Each failure reached the monitor: its credential-abuse rule fired for the address.
    for _ in 0..100 {
        let (_, alerts) = daemon
            .get("/v1/alerts?rule=credential_abuse", Some(ADMIN))
            .await;
        if alerts["data"].as_array().is_some_and(|a| !a.is_empty()) {
            assert!(
                alerts["data"][0]["evidence"]
                    .to_string()
                    .contains("127.0.0.1")
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no credential_abuse alert after the failed log-ins");
}

#[tokio::test]
async fn a_refund_above_the_threshold_asks_for_a_fresh_code_and_forms_need_the_sessions_token() {
    let (config, apps) = console_config();
    let daemon = Daemon::with_config(config);
    let start = now_s();
    let erp = &apps["key_demo_erp"];
    // A payment whose fields carry markup: the pages show it as text.
    let mut body = barcode("50.00");
    body["description"] = json!("<script>alert('d')</script>");
    body["metadata"] = json!({"<b>k</b>": "<img src=x onerror=alert(1)>"});
    let (status, _, payment) = daemon.pay("p-console", body).await;
    assert_eq!(status, 201, "{payment}");
    let id = payment["id"].as_str().unwrap();
    let mut visitor = Visitor::new(&daemon);
    assert_eq!(visitor.log_in(ERP, &code(erp, start, 0)).await.status, 303);
    let path = format!("/console/payments/{id}");
    let page = visitor.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>alert"), "markup is escaped");
    assert!(!page.body.contains("<img src=x"));
    assert!(page.body.contains("&lt;script&gt;alert("));
    assert!(page.body.contains("&lt;b&gt;k&lt;/b&gt;"));
    let csrf = page.field("csrf");
    let idem = page.field("idempotency_key");
    let refund_path = format!("{path}/refund");

    // Forms without the session's token, or with another's: refused, nothing refunded.
    let mut other = Visitor::new(&daemon);
    assert_eq!(
        other
            .log_in(ADMIN, &code(&apps["key_demo_admin"], start, 0))
            .await
            .status,
        303
    );
    let foreign = other.get("/console").await.field("csrf");
    for token in ["", foreign.as_str()] {
        let page = visitor
            .post(
                &refund_path,
                &[
                    ("csrf", token),
                    ("idempotency_key", &idem),
                    ("amount", "5.00"),
                ],
            )
            .await;
        assert_eq!(page.status, 403, "token {token:?}");
    }
    // Above 10.00 without a code: asked for one; with a used one: refused.
    let fields = |amount: &str, code: &str| -> Vec<(String, String)> {
        [
            ("csrf", csrf.as_str()),
            ("idempotency_key", idem.as_str()),
            ("amount", amount),
            ("reason", "<i>broken</i>"),
            ("code", code),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let page = visitor.post_owned(&refund_path, fields("20.00", "")).await;
    assert_eq!(page.status, 401);
    assert_eq!(
        page.field("amount"),
        "20.00",
        "the form keeps what was entered"
    );
    let used = fields("20.00", &code(erp, start, 0));
    assert_eq!(
        visitor.post_owned(&refund_path, used).await.status,
        401,
        "the log-in's code"
    );
    let (_, refunds) = daemon
        .get(&format!("/v1/payments/{id}/refunds"), Some(ERP))
        .await;
    assert_eq!(
        refunds["data"].as_array().unwrap().len(),
        0,
        "nothing refunded yet"
    );
    let fresh = fields("20.00", &code(erp, start, 1));
    let page = visitor.post_owned(&refund_path, fresh.clone()).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let shown = visitor.get(page.location.as_deref().unwrap()).await;
    assert!(shown.body.contains("re_"), "the page names the refund");
    assert!(
        shown.body.contains("&lt;i&gt;broken&lt;/i&gt;"),
        "the reason, as text"
    );
    // The same form again (a double submit) makes no second refund.
    assert_eq!(visitor.post_owned(&refund_path, fresh).await.status, 303);
    let (_, refunds) = daemon
        .get(&format!("/v1/payments/{id}/refunds"), Some(ERP))
        .await;
    assert_eq!(refunds["data"].as_array().unwrap().len(), 1, "{refunds}");
    assert_eq!(refunds["data"][0]["amount"], "20.00");
}

#[tokio::test]
async fn pages_stay_within_the_keys_scope() {
    let (config, apps) = console_config();
    let daemon = Daemon::with_config(config);
    let start = now_s();
    let (_, _, payment) = daemon.pay("p-scope", barcode("3.00")).await;
    let id = payment["id"].as_str().unwrap();
    let mut visitor = Visitor::new(&daemon);
    assert_eq!(
        visitor
            .log_in(ERP, &code(&apps["key_demo_erp"], start, 0))
            .await
            .status,
        303
    );
    for path in [
        "/console",
        "/console/payments",
        "/console/alerts",
        "/console/merchants",
        &format!("/console/payments/{id}"),
    ] {
        let page = visitor.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(!page.body.contains("m_other"), "{path} shows only m_demo's");
    }
    // A merchant's name is shown as text (the admin sees every merchant).
    let (status, _, _) = daemon
        .post_idempotent(
            "/v1/merchants",
            ADMIN,
            Some("m-markup"),
            &crate::onboarding::materials("<script>alert(1)</script> Tea"),
        )
        .await;
    assert_eq!(status, 201);
    let mut admin = Visitor::new(&daemon);
    assert_eq!(
        admin
            .log_in(ADMIN, &code(&apps["key_demo_admin"], start, 0))
            .await
            .status,
        303
    );
    let page = admin.get("/console/merchants").await;
    assert!(
        page.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; Tea"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>"));
    let page = visitor.get("/console/merchants").await;
    assert!(
        !page.body.contains("alert(1)"),
        "not the erp key's merchant"
    );
    // Search by order id: found by the index, or not at all.
    let mut with_order = barcode("4.00");
    with_order["order_id"] = json!("ORD-77");
    let (status, _, ordered) = daemon.pay("p-order", with_order).await;
    assert_eq!(status, 201, "{ordered}");
    let ordered_id = ordered["id"].as_str().unwrap();
    let page = visitor.get("/console/payments?order_id=ORD-77").await;
    assert!(page.body.contains(ordered_id), "{}", page.body);
    assert!(
        !page.body.contains(id),
        "only the payment with that order id"
    );
    let page = visitor.get("/console/payments?order_id=ORD-78").await;
    assert!(!page.body.contains(ordered_id) && !page.body.contains(id));
    let page = visitor.get("/console/payments?status=nonsense").await;
    assert_eq!(page.status, 400);
    let page = visitor.get("/console/payments/pay_doesnotexist").await;
    assert_eq!(
        page.status, 403,
        "an erp key cannot tell missing from not its own"
    );
    // The language switch stays on the console.
    let page = visitor
        .get("/console/lang/zh-CN?back=//evil.example/")
        .await;
    assert_eq!(page.location.as_deref(), Some("/console"));
    let page = visitor
        .get("/console/lang/zh-CN?back=/console/payments")
        .await;
    assert_eq!(page.location.as_deref(), Some("/console/payments"));
    let page = visitor.get("/console/payments").await;
    assert!(
        page.body.contains("lang=\"zh-CN\""),
        "{}",
        &page.body[..200]
    );
}

#[tokio::test]
async fn a_session_ends_when_its_keys_authenticator_is_reset_or_its_key_replaced() {
    let (config, apps) = console_config();
    let daemon = Daemon::with_config(config);
    let start = now_s();
    let config_path = daemon.dir.path().join("paygate.toml");
    let mut visitor = Visitor::new(&daemon);
    assert_eq!(
        visitor
            .log_in(ERP, &code(&apps["key_demo_erp"], start, 0))
            .await
            .status,
        303
    );
    let mut admin = Visitor::new(&daemon);
    assert_eq!(
        admin
            .log_in(ADMIN, &code(&apps["key_demo_admin"], start, 0))
            .await
            .status,
        303
    );
    assert_eq!(visitor.get("/console").await.status, 200);

    // The operator resets the erp key's authenticator (a lost phone) and reloads.
    let out = run_paygated(&[
        "keys",
        "totp",
        "reset",
        "--config",
        config_path.to_str().unwrap(),
        "--key-id",
        "key_demo_erp",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And gives the admin key a new value under the same id (a leaked key replaced).
    let text = std::fs::read_to_string(&config_path).unwrap();
    let replaced = text.replace(&sha256_hex(ADMIN), &sha256_hex("pg_new_admin_key"));
    assert_ne!(text, replaced);
    std::fs::write(&config_path, replaced).unwrap();
    signal(daemon.pid(), "HUP");
    let mut ended = (false, false);
    for _ in 0..100 {
        ended = (
            visitor.get("/console").await.status == 303,
            admin.get("/console").await.status == 303,
        );
        if ended == (true, true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ended, (true, true), "both sessions end at the reload");
    assert_eq!(
        visitor.get("/console").await.location.as_deref(),
        Some("/console/login"),
        "the ended session's cookie was removed"
    );
}
