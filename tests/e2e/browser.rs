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
