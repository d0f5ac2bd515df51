//! Link payments and their cashier page (API.md §5 `link`): the page, the payer's choice of
//! wallet, the QR code, the public status, cancel and expiry.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn link(amount: &str) -> Value {
    json!({"merchant_id": "m_demo", "amount": amount, "currency": "CNY", "method": "link",
           "description": "2 x coffee <b>hot</b>"})
}

/// A client that shows redirects instead of following them.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn page(daemon: &Daemon, id: &str) -> (u16, String) {
    let response = daemon
        .client
        .get(daemon.url(&format!("/pay/{id}")))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    (status, response.text().await.unwrap())
}

/// The token the page's wallet forms carry (none on a page without forms).
pub fn form_token(page: &str) -> Option<String> {
    let (_, rest) = page.split_once("name=\"token\" value=\"")?;
    rest.split_once('"').map(|(token, _)| token.to_owned())
}

/// Chooses `wallet` as the payer does: loads the page, posts its form.
pub async fn choose(daemon: &Daemon, id: &str, wallet: &str) -> reqwest::Response {
    let (_, html) = page(daemon, id).await;
    post_choice(daemon, id, wallet, &form_token(&html).unwrap_or_default()).await
}

/// Posts the wallet form with `token`.
pub async fn post_choice(
    daemon: &Daemon,
    id: &str,
    wallet: &str,
    token: &str,
) -> reqwest::Response {
    no_redirects()
        .post(daemon.url(&format!("/pay/{id}/wallet")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("wallet={wallet}&token={token}"))
        .send()
        .await
        .unwrap()
}

async fn public_status(daemon: &Daemon, id: &str) -> (u16, Value) {
    daemon.get(&format!("/pay/{id}/status"), None).await
}

#[tokio::test]
async fn a_link_payment_is_paid_through_its_page() {
    let daemon = Daemon::with_config(
        default_config_text().replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200"),
    );
    let (status, _, payment) = daemon.pay("link-1", link("18.00")).await;
    assert_eq!(status, 201, "{payment}");
    let id = payment["id"].as_str().unwrap();
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["method"], "link");
    assert_eq!(
        payment["provider"],
        Value::Null,
        "the payer picks the wallet"
    );
    assert_eq!(payment["qr_code"], Value::Null);
    assert!(
        payment["expires_at"].is_string(),
        "link pages expire by default"
    );
    let url = payment["payment_url"].as_str().unwrap();
    assert_eq!(url, daemon.url(&format!("/pay/{id}")));

    // The page: amount, merchant, one button per wallet, no QR yet, escaped text.
    let (status, html) = page(&daemon, id).await;
    assert_eq!(status, 200);
    assert!(html.contains("18.00") && html.contains("CNY"), "{html}");
    assert!(html.contains("Demo"), "the merchant's name: {html}");
    assert!(html.contains("name=\"wallet\" value=\"mock\""), "{html}");
    assert!(html.contains("data-status=\"pending\""));
    assert!(!html.contains("<svg"));
    assert!(!html.contains("<b>hot</b>") && html.contains("&lt;b&gt;hot"));
    assert!(
        !html.contains("src=\"http") && !html.contains("<link"),
        "no external assets"
    );

    // The public status reveals the status and nothing else.
    let (status, body) = public_status(&daemon, id).await;
    assert_eq!((status, body.clone()), (200, json!({"status": "pending"})));

    let token = form_token(&page(&daemon, id).await.1).expect("the page's forms carry a token");
    // A wallet the merchant does not accept is refused on the page.
    let refused = choose(&daemon, id, "applepay").await;
    assert_eq!(refused.status().as_u16(), 422);
    assert!(refused.text().await.unwrap().contains("is not a wallet"));

    // The payer picks the mock wallet: the charge is made and the page shows its QR code.
    let chosen = choose(&daemon, id, "mock").await;
    assert_eq!(chosen.status().as_u16(), 303);
    // Back to the page, in the language it was chosen in (English without a preference).
    assert_eq!(chosen.headers()["location"], format!("/pay/{id}?lang=en"));
    let (_, html) = page(&daemon, id).await;
    assert!(html.contains("<svg"), "inline QR code: {html}");
    assert!(html.contains("mock://pay/"), "{html}");
    assert!(
        !html.contains("name=\"wallet\""),
        "no more choice once chosen"
    );
    let (_, fetched) = daemon.get(&format!("/v1/payments/{id}"), Some(POS)).await;
    assert_eq!(fetched["provider"], "mock");
    assert!(
        fetched["qr_code"]
            .as_str()
            .unwrap()
            .starts_with("mock://pay/")
    );
    // A second choice (a double tap on the page as it was) changes nothing.
    assert_eq!(
        post_choice(&daemon, id, "mock", &token)
            .await
            .status()
            .as_u16(),
        303
    );

    // The payer pays (the janitor's query learns it); the page and the status follow.
    for _ in 0..100 {
        if public_status(&daemon, id).await.1["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(public_status(&daemon, id).await.1["status"], "succeeded");
    let (_, html) = page(&daemon, id).await;
    assert!(html.contains("data-status=\"succeeded\"") && html.contains("Paid"));
    assert!(!html.contains("<svg") && !html.contains("<form"));
}

/// The page in the payer's language: `Accept-Language: zh-CN` reads Chinese (the wallets named
/// as they name themselves, yuan as `¥`), the switch reads the other language, and choosing a
/// wallet keeps it.
#[tokio::test]
async fn the_page_speaks_the_payers_language_and_keeps_it() {
    let daemon = Daemon::start();
    let (status, _, payment) = daemon.pay("link-zh", link("18.00")).await;
    assert_eq!(status, 201, "{payment}");
    let id = payment["id"].as_str().unwrap();
    let get = |path: String, accept: &'static str| {
        let request = daemon.client.get(daemon.url(&path));
        async move {
            let response = request
                .header("accept-language", accept)
                .send()
                .await
                .unwrap();
            let vary = response.headers()["vary"].to_str().unwrap().to_owned();
            (vary, response.text().await.unwrap())
        }
    };
    let (vary, html) = get(format!("/pay/{id}"), "zh-CN,zh;q=0.9,en;q=0.8").await;
    assert!(vary.contains("Accept-Language"), "{vary}");
    assert!(html.contains("<html lang=\"zh-Hans\">"), "{html}");
    assert!(
        html.contains("请选择支付方式") && html.contains("¥</span>18.00"),
        "{html}"
    );
    assert!(html.contains("付款单号"), "{html}");
    assert!(
        html.contains(&format!("href=\"/pay/{id}?lang=en\"")),
        "{html}"
    );
    // English when the payer prefers it, or asks for it with the switch.
    let (_, html) = get(format!("/pay/{id}"), "en-GB,zh;q=0.5").await;
    assert!(html.contains("Choose how to pay") && html.contains("18.00 <span>CNY</span>"));
    let (_, html) = get(format!("/pay/{id}?lang=en"), "zh-CN").await;
    assert!(html.contains("Choose how to pay"), "{html}");
    let (_, html) = get(format!("/pay/{id}?lang=zh-CN"), "en").await;
    assert!(html.contains("请选择支付方式"), "{html}");
    // A choice made in Chinese comes back to the Chinese page.
    let token = form_token(&html).unwrap();
    let chosen = no_redirects()
        .post(daemon.url(&format!("/pay/{id}/wallet?lang=zh-CN")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("wallet=mock&token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), 303);
    assert_eq!(
        chosen.headers()["location"],
        format!("/pay/{id}?lang=zh-CN")
    );
    let (_, html) = get(format!("/pay/{id}?lang=zh-CN"), "en").await;
    assert!(html.contains("请使用模拟钱包扫码付款"), "{html}");
    // An unknown payment's page in Chinese too.
    let (_, html) = get("/pay/pay_nothing_here".to_owned(), "zh").await;
    assert!(html.contains("未找到该付款"), "{html}");
}

#[tokio::test]
async fn unknown_and_non_link_payments_have_no_page() {
    let daemon = Daemon::start();
    let (status, html) = page(&daemon, "pay_doesnotexist").await;
    assert_eq!(status, 404);
    assert!(html.to_lowercase().contains("not found"));
    let (_, _, qr) = daemon.pay("qr-1", qr("1.00")).await;
    let qr_id = qr["id"].as_str().unwrap();
    assert_eq!(
        page(&daemon, qr_id).await.0,
        404,
        "only link payments have a page"
    );
    assert_eq!(public_status(&daemon, qr_id).await.0, 404);
    assert_eq!(choose(&daemon, qr_id, "mock").await.status().as_u16(), 404);
    let hostile = format!("/pay/{}", "x".repeat(5000));
    let (status, _) = daemon.get(&hostile, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_unchosen_link_payment_can_be_cancelled_and_otherwise_expires() {
    let daemon = Daemon::with_config(
        default_config_text()
            .replace("janitor_interval_ms = 3000", "janitor_interval_ms = 200")
            .replace("link_expires_in_s = 900", "link_expires_in_s = 1"),
    );
    let (_, _, cancelled) = daemon.pay("link-c", link("2.00")).await;
    let id = cancelled["id"].as_str().unwrap();
    let (status, _, body) = daemon
        .post_idempotent(
            &format!("/v1/payments/{id}/cancel"),
            POS,
            Some("c-1"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    assert_eq!(public_status(&daemon, id).await.1["status"], "cancelled");

    let (_, _, expiring) = daemon.pay("link-e", link("3.00")).await;
    let id = expiring["id"].as_str().unwrap();
    // The payer's page, loaded while the payment was open.
    let token = form_token(&page(&daemon, id).await.1).expect("an open payment's page has forms");
    for _ in 0..100 {
        if public_status(&daemon, id).await.1["status"] == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(public_status(&daemon, id).await.1["status"], "expired");
    let chosen = post_choice(&daemon, id, "mock", &token).await;
    assert_eq!(
        chosen.status().as_u16(),
        303,
        "an ended payment just shows its page"
    );
    let (_, html) = page(&daemon, id).await;
    assert!(html.contains("Expired") && !html.contains("<svg"));
}
