//! The cashier page in a real browser: Debian's Chromium, headless, driven through
//! chromedriver (WebDriver, `fantoccini`). A payer whose browser asks for Chinese gets the
//! Chinese page, chooses Alipay (支付宝, at the provider simulator), the QR code decoded back
//! from a screenshot is the payment's, and after the simulator's scan the page turns to paid
//! by itself (its status polling really runs). Screenshots are kept in
//! `target/browser-artefacts/`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::*;

/// A chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; `cargo xtask test` installs it)");
        Driver { child, port }
    }

    /// A headless Chromium session whose payer reads `languages` (Accept-Language), with a
    /// phone's viewport. The flags keep Chromium off the network it cannot reach here.
    async fn session(&self, languages: &str, profile: &std::path::Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=390,844",
                         format!("--lang={}", languages.split(',').next().unwrap_or("en")),
                         format!("--user-data-dir={}", profile.display())],
                "prefs": {"intl": {"accept_languages": languages}},
            }),
        );
        let url = format!("http://127.0.0.1:{}", self.port);
        for _ in 0..300 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return client,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("chromedriver never answered at {url}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the screenshots go.
fn artefact(name: &str, png: &[u8]) -> std::path::PathBuf {
    let dir = repo_root().join("target/browser-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    path
}

/// The QR codes a screenshot shows, decoded.
fn qr_codes(png: &[u8]) -> Vec<String> {
    let image = image::load_from_memory(png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    prepared
        .detect_grids()
        .into_iter()
        .filter_map(|grid| grid.decode().ok().map(|(_, content)| content))
        .collect()
}

/// The text of the page's `<main>`.
async fn main_text(browser: &Client) -> String {
    browser
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits for the page's `data-status` to be `want` (the bound only stops a broken page
/// from hanging the suite).
async fn wait_for_status(browser: &Client, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..600 {
        if let Ok(main) = browser.find(Locator::Css("main")).await {
            last = main
                .attr("data-status")
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            if last == want {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page's status never became {want}: {last}");
}

#[tokio::test]
async fn a_payer_reading_chinese_pays_by_the_qr_code_and_sees_it_paid() {
    let simulator = crate::simulator::Simulator::spawn();
    let daemon = Daemon::with_config(simulator.daemon_config());
    let (status, _, payment) = daemon
        .pay(
            "browser-1",
            json!({"merchant_id": "m_demo", "amount": "18.00", "currency": "CNY",
                   "method": "link", "description": "两杯咖啡"}),
        )
        .await;
    assert_eq!(status, 201, "{payment}");
    let id = payment["id"].as_str().unwrap().to_owned();
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session("zh-CN,zh", profile.path()).await;

    browser
        .goto(payment["payment_url"].as_str().unwrap())
        .await
        .unwrap();
    let html = browser.find(Locator::Css("html")).await.unwrap();
    assert_eq!(html.attr("lang").await.unwrap().as_deref(), Some("zh-Hans"));
    let text = main_text(&browser).await;
    assert!(
        text.contains("请选择支付方式") && text.contains("¥18.00"),
        "{text}"
    );
    assert!(text.contains("两杯咖啡"), "{text}");
    artefact(
        "cashier-zh-choose.png",
        &browser.screenshot().await.unwrap(),
    );

    // The payer picks Alipay; the page shows its QR code, which is the payment's.
    let alipay = browser
        .find(Locator::Css(
            "form:has(input[name=wallet][value=alipay]) button",
        ))
        .await
        .unwrap();
    assert_eq!(alipay.text().await.unwrap(), "支付宝");
    alipay.click().await.unwrap();
    browser
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css(".qr svg"))
        .await
        .unwrap();
    let shown = main_text(&browser).await;
    assert!(shown.contains("请使用支付宝扫码付款"), "{shown}");
    let png = browser.screenshot().await.unwrap();
    let path = artefact("cashier-zh-qr.png", &png);
    let (_, stored) = daemon.get(&format!("/v1/payments/{id}"), Some(ADMIN)).await;
    let qr_code = stored["qr_code"].as_str().unwrap().to_owned();
    assert_eq!(
        qr_codes(&png),
        vec![qr_code.clone()],
        "the QR code in {}",
        path.display()
    );

    // The payer scans and pays at Alipay (the simulator), whose notice settles the payment:
    // the page turns by itself.
    let (status, scanned) = simulator
        .control("alipay/scan", json!({"qr_code": qr_code, "outcome": "pay"}))
        .await;
    assert_eq!(status, 200, "{scanned}");
    wait_for_status(&browser, "succeeded").await;
    let paid = main_text(&browser).await;
    assert!(paid.contains("支付成功"), "{paid}");
    artefact("cashier-zh-paid.png", &browser.screenshot().await.unwrap());
    let (_, stored): (u16, Value) = daemon.get(&format!("/v1/payments/{id}"), Some(ADMIN)).await;
    assert_eq!(stored["status"], "succeeded");
    browser.close().await.unwrap();
}

/// The page's width against the window's: nothing may scroll sideways.
async fn assert_fits(browser: &Client, what: &str) {
    let widths = browser
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    let (page, window) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(
        page <= window,
        "{what}: {page} px wide in a {window} px window"
    );
}

/// Fills the fields of `form` and sends it; returns once the answer's page has replaced
/// this one.
async fn fill(browser: &Client, form: &str, fields: &[(&str, &str)]) {
    let before = browser.find(Locator::Css("html")).await.unwrap();
    for (name, value) in fields {
        let input = browser
            .find(Locator::Css(&format!("{form} [name={name}]")))
            .await
            .unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    browser
        .find(Locator::Css(&format!("{form} button[type=submit]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for _ in 0..200 {
        if before.tag_name().await.is_err() {
            return; // stale: the new page is in
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sending {form} never loaded a page");
}

#[tokio::test]
async fn a_shop_owner_logs_in_with_a_code_reads_the_day_and_refunds_with_a_fresh_code() {
    use crate::second_factor::{code, enrolled, now_s};
    let (config, apps) = enrolled(
        &["key_demo_erp"],
        "[console]\nrefund_confirm_above = { CNY = \"10.00\" }\n",
    );
    // The shop keeps China time: its day begins at 16:00 UTC.
    let config = config.replacen(
        "name = \"Demo Coffee\"\n",
        "name = \"Demo Coffee\"\nutc_offset = \"+08:00\"\n",
        1,
    );
    let daemon = Daemon::with_config(config);
    let start = now_s();
    let erp = &apps["key_demo_erp"];
    let mut big = String::new();
    for (n, amount) in ["12.00", "3.50", "7.25"].into_iter().enumerate() {
        let (status, _, paid) = daemon.pay(&format!("b-{n}"), barcode(amount)).await;
        assert_eq!(
            (status, paid["status"].as_str()),
            (201, Some("succeeded")),
            "{paid}"
        );
        if amount == "12.00" {
            big = paid["id"].as_str().unwrap().to_owned();
        }
    }
    // One the payer has not paid (the mock wallet keeps a .60 QR payment pending).
    assert_eq!(daemon.pay("b-qr", qr("9.60")).await.0, 201);

    // What the API says the day took, by wallet.
    let midnight = {
        let china = time::UtcOffset::from_hms(8, 0, 0).unwrap();
        let now = time::OffsetDateTime::now_utc().to_offset(china);
        now.replace_time(time::Time::MIDNIGHT)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (status, listed) = daemon
        .get(
            &format!(
                "/v1/payments?status=succeeded&limit=100&created_gte={}",
                midnight.replace('+', "%2B")
            ),
            Some(ERP),
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let mut by_wallet: std::collections::BTreeMap<String, (usize, rust_decimal::Decimal)> =
        Default::default();
    for p in listed["data"].as_array().unwrap() {
        let entry = by_wallet
            .entry(p["provider"].as_str().unwrap().to_owned())
            .or_default();
        entry.0 += 1;
        entry.1 += p["amount"]
            .as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap();
    }
    assert_eq!(by_wallet.len(), 1, "{by_wallet:?}");

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session("zh-CN,zh", profile.path()).await;
    browser.set_window_size(375, 812).await.unwrap();
    browser.goto(&daemon.url("/console")).await.unwrap();
    // Sent to log in; the code is the one the app shows now.
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/login")
    );
    assert_fits(&browser, "log-in").await;
    artefact("console-login.png", &browser.screenshot().await.unwrap());
    fill(
        &browser,
        "form[action='/console/login']",
        &[("api_key", ERP), ("code", &code(erp, start, 0))],
    )
    .await;
    for _ in 0..100 {
        if browser.current_url().await.unwrap().path() == "/console" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        "/console",
        "signed in"
    );

    // Today's takings on the page are the API's sums.
    let rows = browser
        .find_all(Locator::Css("main table tbody tr"))
        .await
        .unwrap();
    let mut shown = Vec::new();
    for row in &rows {
        let cells = row.find_all(Locator::Css("td")).await.unwrap();
        let mut texts = Vec::new();
        for cell in cells {
            texts.push(cell.text().await.unwrap());
        }
        shown.push(texts);
    }
    let (wallet, (count, sum)) = by_wallet.iter().next().unwrap();
    assert_eq!(wallet, "mock");
    let want = vec![
        "模拟钱包".to_owned(),
        count.to_string(),
        format!("¥{sum:.2}"),
    ];
    assert_eq!(shown.first(), Some(&want), "takings rows: {shown:?}");
    assert_eq!(sum.to_string(), "22.75");
    let text = main_text(&browser).await;
    assert!(text.contains("今日") || text.contains("今天"), "{text}");
    assert!(
        browser
            .find(Locator::Css("main svg[role=img]"))
            .await
            .is_ok(),
        "the 30-day chart"
    );
    assert_fits(&browser, "today").await;
    artefact("console-today.png", &browser.screenshot().await.unwrap());

    for (path, name) in [
        ("/console/payments", "console-payments.png"),
        ("/console/alerts", "console-alerts.png"),
        ("/console/merchants", "console-merchants.png"),
    ] {
        browser.goto(&daemon.url(path)).await.unwrap();
        assert_fits(&browser, path).await;
        artefact(name, &browser.screenshot().await.unwrap());
    }

    // A refund above 10.00 asks for a fresh code; the log-in's is refused; the next works.
    browser
        .goto(&daemon.url(&format!("/console/payments/{big}")))
        .await
        .unwrap();
    assert_fits(&browser, "payment").await;
    artefact("console-payment.png", &browser.screenshot().await.unwrap());
    let refund_form = format!("form[action='/console/payments/{big}/refund']");
    fill(&browser, &refund_form, &[("amount", "12.00"), ("code", "")]).await;
    let asked = browser
        .find(Locator::Css("[role=alert]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(asked.contains("验证码"), "{asked}");
    fill(
        &browser,
        &refund_form,
        &[("amount", "12.00"), ("code", &code(erp, start, 0))],
    )
    .await;
    let refused = browser
        .find(Locator::Css("[role=alert]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_ne!(refused, asked, "a used code is refused as such: {refused}");
    let (_, refunds) = daemon
        .get(&format!("/v1/payments/{big}/refunds"), Some(ERP))
        .await;
    assert!(refunds["data"].as_array().unwrap().is_empty());
    fill(
        &browser,
        &refund_form,
        &[("amount", "12.00"), ("code", &code(erp, start, 1))],
    )
    .await;
    let done = browser
        .find(Locator::Css("[role=status]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (_, refunds) = daemon
        .get(&format!("/v1/payments/{big}/refunds"), Some(ERP))
        .await;
    let refund_id = refunds["data"][0]["id"].as_str().unwrap();
    assert!(done.contains(refund_id), "{done}");
    assert_eq!(refunds["data"][0]["amount"], "12.00");
    artefact("console-refunded.png", &browser.screenshot().await.unwrap());
    browser.close().await.unwrap();
}
