//! The cashier page of `link` payments (`GET /pay/{id}`, API.md §5): pure HTML rendering, no
//! I/O. One self-contained page (inline CSS, inline SVG QR code, a few lines of vanilla JS, no
//! external assets) showing the amount, the merchant, a button per wallet, the QR code of the
//! chosen wallet and the live status, polled from `GET /pay/{id}/status`. Its words come from
//! `cashier_text` in the page's language; a switch links to the other one.

use std::fmt::Write as _;

use qrcode::QrCode;
use qrcode::render::svg;

use super::cashier_text::{Lang, fill};
use super::html::escape;

/// Everything the cashier page shows; the handler fills it from the payment and the merchant.
pub struct CashierView<'a> {
    pub payment_id: &'a str,
    pub merchant_name: &'a str,
    /// The amount as the API writes it, e.g. "12.50".
    pub amount: &'a str,
    /// ISO 4217 code, e.g. "CNY".
    pub currency: &'a str,
    pub description: Option<&'a str>,
    /// `pending` | `succeeded` | `failed` | `cancelled` | `expired`.
    pub status: &'a str,
    /// The merchant's wallets that take qr payments.
    pub wallets: &'a [WalletChoice<'a>],
    /// The wallet chosen (provider name), if any.
    pub chosen: Option<&'a str>,
    /// The content to encode in the QR code (from the provider), if any.
    pub qr_code: Option<&'a str>,
    /// A message to show the payer, e.g. "the wallet is unavailable, try again".
    pub error: Option<&'a str>,
    /// The Content-Security-Policy nonce of this response's `<style>` and `<script>`.
    pub nonce: &'a str,
    /// The wallet forms' token, which the choice must carry back (no cross-site posts).
    pub form_token: &'a str,
    /// The page's language.
    pub lang: Lang,
}

/// One wallet the payer can pick.
pub struct WalletChoice<'a> {
    /// The provider name, posted back as the `wallet` form field.
    pub provider: &'a str,
    /// What the button says, e.g. "WeChat Pay" (or "微信支付"): `Lang::wallet_name`.
    pub label: &'a str,
}

/// Pixel size the QR code is rendered at, at least (quiet zone included): big enough to scan
/// from a phone screen held by the payer, small enough to fit a 320px-wide viewport.
const QR_MIN_PX: u32 = 240;

/// How often the page polls the status endpoint, in milliseconds.
const POLL_MS: u32 = 2000;

/// Inline stylesheet: system fonts, one centred card, big tap targets.
const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;padding:16px;background:#f2f3f5;color:#1d1d1f;\
font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,\"PingFang SC\",\"Microsoft YaHei\",sans-serif;\
line-height:1.4;-webkit-text-size-adjust:100%}\
main{max-width:420px;margin:24px auto;background:#fff;border-radius:16px;padding:24px 20px;\
box-shadow:0 2px 12px rgba(0,0,0,.08);text-align:center}\
h1{font-size:1.05rem;font-weight:600;margin:0 0 4px;overflow-wrap:anywhere}\
.desc{color:#6e6e73;margin:0 0 8px;overflow-wrap:anywhere}\
.amount{font-size:2.2rem;font-weight:700;margin:8px 0 20px;font-variant-numeric:tabular-nums}\
.amount span{font-size:1rem;font-weight:500;color:#6e6e73}\
form{margin:0 0 12px}\
button{display:block;width:100%;min-height:52px;padding:14px 16px;border:0;border-radius:12px;\
background:#0a66c2;color:#fff;font:inherit;font-size:1.1rem;font-weight:600;cursor:pointer}\
button:active{opacity:.85}\
.qr{display:flex;justify-content:center;margin:0 0 12px}\
.qr svg{width:100%;max-width:280px;height:auto;background:#fff}\
.scan{font-weight:600;margin:0 0 8px}\
.content{font-size:.75rem;color:#6e6e73;overflow-wrap:anywhere;word-break:break-all;margin:0 0 8px}\
.content a{color:inherit}\
.note{color:#6e6e73;margin:0 0 8px}\
.error{background:#fdecea;color:#a50e0e;border-radius:10px;padding:10px 12px;margin:0 0 16px;overflow-wrap:anywhere}\
.final{font-size:1.6rem;font-weight:700;margin:8px 0}\
.succeeded .final{color:#1a7f37}.failed .final{color:#a50e0e}\
.cancelled .final,.expired .final{color:#6e6e73}\
.foot{font-size:.75rem;color:#8e8e93;margin:16px 0 0;overflow-wrap:anywhere}\
.lang{font-size:.85rem;margin:8px 0 0}.lang a{color:#0a66c2}";

/// Renders the whole cashier page.
pub fn render_page(view: &CashierView<'_>) -> String {
    let pending = view.status == "pending";
    let text = view.lang.texts();
    let mut out = String::with_capacity(8 * 1024);

    head(
        &mut out,
        view.lang,
        &fill(text.title, view.merchant_name),
        pending,
        view.nonce,
    );

    let _ = write!(
        out,
        "<main class=\"{s}\" data-status=\"{s}\">",
        s = escape(view.status)
    );
    let _ = write!(out, "<h1>{}</h1>", escape(view.merchant_name));
    if let Some(description) = view.description.filter(|d| !d.is_empty()) {
        let _ = write!(out, "<p class=\"desc\">{}</p>", escape(description));
    }
    match view.lang.amount(view.amount, view.currency) {
        (before, number, "") => {
            let _ = write!(
                out,
                "<p class=\"amount\"><span>{}</span>{}</p>",
                escape(before),
                escape(number)
            );
        }
        (_, number, after) => {
            let _ = write!(
                out,
                "<p class=\"amount\">{} <span>{}</span></p>",
                escape(number),
                escape(after)
            );
        }
    }
    if let Some(error) = view.error.filter(|e| !e.is_empty()) {
        let _ = write!(
            out,
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(error)
        );
    }

    if pending {
        match view.chosen {
            None => wallet_buttons(&mut out, view),
            Some(chosen) => chosen_wallet(&mut out, view, chosen),
        }
    } else {
        let message = match view.status {
            "succeeded" => text.paid.to_owned(),
            "failed" => text.failed.to_owned(),
            "cancelled" => text.cancelled.to_owned(),
            "expired" => text.expired.to_owned(),
            // Not a status the API has; say what it is rather than guess.
            other => fill(text.status_other, other),
        };
        let _ = write!(
            out,
            "<p class=\"final\" role=\"status\">{}</p>",
            escape(&message)
        );
        if view.status == "succeeded" {
            let _ = write!(out, "<p class=\"note\">{}</p>", text.close_page);
        }
    }

    let _ = write!(
        out,
        "<p class=\"foot\">{}</p>",
        escape(&fill(text.payment_id, view.payment_id))
    );
    language_switch(&mut out, view.payment_id, view.lang);
    out.push_str("</main>");
    if pending {
        status_script(&mut out, view.payment_id, view.nonce);
    }
    out.push_str("</body></html>\n");
    out
}

/// The page for an unknown payment id (served with 404).
pub fn render_not_found(nonce: &str, lang: Lang) -> String {
    let text = lang.texts();
    let mut out = String::with_capacity(2 * 1024);
    head(&mut out, lang, text.not_found, false, nonce);
    let _ = writeln!(
        out,
        "<main class=\"not-found\" data-status=\"not_found\">\
         <p class=\"final\">{}</p><p class=\"note\">{}</p></main></body></html>",
        text.not_found, text.not_found_note
    );
    out
}

/// The link to the page in the other language (only for an id that is safe in a URL).
fn language_switch(out: &mut String, payment_id: &str, lang: Lang) {
    if !is_safe_id(payment_id) {
        return;
    }
    let other = lang.other();
    let _ = write!(
        out,
        "<p class=\"lang\"><a href=\"/pay/{payment_id}?lang={}\" hreflang=\"{}\" lang=\"{}\">{}</a></p>",
        other.param(),
        other.param(),
        other.texts().html_lang,
        lang.texts().other_language
    );
}

/// Renders `content` as an inline `<svg>` QR code (quiet zone included, at least
/// [`QR_MIN_PX`] square) named `label` for screen readers. Fails with a message when the
/// content cannot be encoded, e.g. too long for the largest QR version.
pub fn qr_svg(content: &str, label: &str) -> Result<String, String> {
    let code =
        QrCode::new(content.as_bytes()).map_err(|e| format!("cannot encode QR code: {e}"))?;
    let image = code
        .render::<svg::Color<'_>>()
        // Set before `min_dimensions`, which counts the quiet zone in.
        .quiet_zone(true)
        .min_dimensions(QR_MIN_PX, QR_MIN_PX)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    // The renderer writes a standalone document; an XML prolog is not allowed inside HTML.
    let start = image
        .find("<svg")
        .ok_or_else(|| "QR renderer produced no <svg> element".to_owned())?;
    Ok(image[start..].replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{}\" ", escape(label)),
        1,
    ))
}

/// Payment ids are `[A-Za-z0-9_]`; only such an id goes into the script and URLs unquoted.
fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Doctype, `<head>` (title, viewport, inline style) and `<body>` opening tag.
fn head(out: &mut String, lang: Lang, title: &str, refresh: bool, nonce: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex, nofollow\">\
         <title>{}</title>",
        lang.texts().html_lang,
        escape(title)
    );
    if refresh {
        // Without JavaScript the page cannot poll; reloading it shows the new status instead.
        out.push_str("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>");
    }
    let _ = write!(
        out,
        "<style nonce=\"{}\">{STYLE}</style></head><body>",
        escape(nonce)
    );
}

/// One form per wallet; POST, since choosing a wallet creates the charge at the provider.
fn wallet_buttons(out: &mut String, view: &CashierView<'_>) {
    let text = view.lang.texts();
    if view.wallets.is_empty() {
        let _ = write!(out, "<p class=\"note\">{}</p>", text.no_wallet);
        return;
    }
    let _ = write!(out, "<p class=\"note\">{}</p>", text.choose);
    let id = escape(view.payment_id);
    // The choice keeps the page's language (the answer redirects back with it).
    let lang = view.lang.param();
    for wallet in view.wallets {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/pay/{id}/wallet?lang={lang}\">\
             <input type=\"hidden\" name=\"wallet\" value=\"{}\">\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\
             <button type=\"submit\">{}</button></form>",
            escape(wallet.provider),
            escape(view.form_token),
            escape(wallet.label)
        );
    }
}

/// The QR code of the chosen wallet, or a note while there is none yet.
fn chosen_wallet(out: &mut String, view: &CashierView<'_>, chosen: &str) {
    let text = view.lang.texts();
    let label = view
        .wallets
        .iter()
        .find(|w| w.provider == chosen)
        .map_or_else(|| view.lang.wallet_name(chosen), |w| w.label.to_owned());
    let Some(content) = view.qr_code.filter(|c| !c.is_empty()) else {
        let _ = write!(
            out,
            "<p class=\"note\">{}</p>",
            escape(&fill(text.waiting_for, &label))
        );
        return;
    };
    match qr_svg(content, text.qr_label) {
        Ok(svg) => {
            let _ = write!(out, "<div class=\"qr\">{svg}</div>");
        }
        Err(_) => {
            let _ = write!(
                out,
                "<p class=\"error\" role=\"alert\">{}</p>",
                text.qr_unavailable
            );
        }
    }
    let _ = write!(
        out,
        "<p class=\"scan\">{}</p>",
        escape(&fill(text.scan_with, &label))
    );
    // A link only for web URLs: escaping does not stop a `javascript:` href from running.
    let is_web = |scheme: &str| {
        content
            .get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    };
    if is_web("https://") || is_web("http://") {
        let _ = write!(
            out,
            "<p class=\"content\"><a href=\"{c}\" rel=\"noopener noreferrer\">{c}</a></p>",
            c = escape(content)
        );
    } else {
        let _ = write!(out, "<p class=\"content\">{}</p>", escape(content));
    }
}

/// Polls the public status endpoint and reloads the page (with a GET, so never re-posting a
/// wallet choice) once the status differs from the rendered one. Omitted for unsafe ids.
fn status_script(out: &mut String, payment_id: &str, nonce: &str) {
    if !is_safe_id(payment_id) || !is_safe_id(nonce) {
        return;
    }
    // The rendered status is read from the DOM, so only the checked id is interpolated.
    let _ = write!(
        out,
        "<script nonce=\"{nonce}\">(function(){{\
var url=\"/pay/{payment_id}\";\
var main=document.querySelector(\"main\");\
var shown=main?main.getAttribute(\"data-status\"):\"pending\";\
var busy=false,timer;\
function poll(){{\
if(busy)return;busy=true;\
fetch(url+\"/status\",{{cache:\"no-store\",headers:{{\"Accept\":\"application/json\"}}}})\
.then(function(r){{if(r.status===404){{clearInterval(timer);return null;}}return r.ok?r.json():null;}})\
.then(function(b){{if(b&&typeof b.status===\"string\"&&b.status!==shown){{clearInterval(timer);location.replace(url+location.search);}}}})\
.catch(function(){{}})\
.then(function(){{busy=false;}});\
}}\
timer=setInterval(poll,{POLL_MS});\
}})();</script>"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALLETS: &[WalletChoice<'static>] = &[
        WalletChoice {
            provider: "alipay",
            label: "Alipay",
        },
        WalletChoice {
            provider: "wechatpay",
            label: "WeChat Pay",
        },
    ];

    fn view(status: &'static str) -> CashierView<'static> {
        CashierView {
            payment_id: "pay_abc123",
            merchant_name: "Tea House",
            amount: "12.50",
            currency: "CNY",
            description: Some("2 cups"),
            status,
            wallets: WALLETS,
            chosen: None,
            qr_code: None,
            error: None,
            nonce: "n0nce",
            form_token: "tok.en",
            lang: Lang::En,
        }
    }

    #[test]
    fn the_chinese_page_speaks_chinese_throughout() {
        let wallets = [
            WalletChoice {
                provider: "alipay",
                label: "支付宝",
            },
            WalletChoice {
                provider: "wechatpay",
                label: "微信支付",
            },
        ];
        let mut v = view("pending");
        v.lang = Lang::ZhHans;
        v.wallets = &wallets;
        let page = render_page(&v);
        assert!(page.contains("<html lang=\"zh-Hans\">"));
        assert!(page.contains("<title>向Tea House付款</title>"));
        assert!(page.contains("<p class=\"amount\"><span>¥</span>12.50</p>"));
        assert!(page.contains("请选择支付方式"));
        assert!(page.contains(">支付宝</button>") && page.contains(">微信支付</button>"));
        assert!(page.contains("action=\"/pay/pay_abc123/wallet?lang=zh-CN\""));
        assert!(page.contains("付款单号 pay_abc123"));
        // The switch, to the page in English.
        assert!(page.contains(
            "<a href=\"/pay/pay_abc123?lang=en\" hreflang=\"en\" lang=\"en\">English</a>"
        ));
        assert!(!page.contains("Choose how to pay"));
        v.chosen = Some("wechatpay");
        v.qr_code = Some("weixin://wxpay/bizpayurl?pr=abc");
        let page = render_page(&v);
        assert!(page.contains("请使用微信支付扫码付款"));
        assert!(page.contains("aria-label=\"二维码\""));
        let mut paid = view("succeeded");
        paid.lang = Lang::ZhHans;
        let page = render_page(&paid);
        assert!(page.contains("支付成功") && page.contains("您可以关闭此页面。"));
        let page = render_not_found("n0nce", Lang::ZhHans);
        assert!(page.contains("未找到该付款") && page.contains("lang=\"zh-Hans\""));
        // The English page links to the Chinese one.
        let page = render_page(&view("pending"));
        assert!(page.contains(
            "<a href=\"/pay/pay_abc123?lang=zh-CN\" hreflang=\"zh-CN\" lang=\"zh-Hans\">中文</a>"
        ));
    }

    #[test]
    fn escape_covers_html_specials() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain 12.50"), "plain 12.50");
    }

    #[test]
    fn interpolated_strings_are_escaped() {
        let mut v = view("pending");
        v.merchant_name = "<script>alert(1)</script>Shop";
        v.description = Some("<script>alert(2)</script>");
        v.error = Some("<script>alert(3)</script>");
        v.chosen = Some("alipay");
        v.qr_code = Some("https://qr.example/<script>alert(4)</script>");
        let page = render_page(&v);
        for n in 1..=4 {
            assert!(
                !page.contains(&format!("<script>alert({n})")),
                "unescaped script {n}"
            );
            assert!(page.contains(&format!("&lt;script&gt;alert({n})&lt;/script&gt;")));
        }
        // The only script is the status poller, under the response's CSP nonce.
        assert_eq!(page.matches("<script").count(), 1);
        assert_eq!(page.matches("<script nonce=\"n0nce\">").count(), 1);
        assert!(page.contains("<style nonce=\"n0nce\">"));
    }

    #[test]
    fn escaped_wallet_fields_and_id() {
        let wallets = [WalletChoice {
            provider: "x\"><script>",
            label: "<b>",
        }];
        let mut v = view("pending");
        v.wallets = &wallets;
        v.payment_id = "pay_\"<x>";
        let page = render_page(&v);
        assert!(page.contains("value=\"x&quot;&gt;&lt;script&gt;\""));
        assert!(page.contains("<button type=\"submit\">&lt;b&gt;</button>"));
        assert!(page.contains("action=\"/pay/pay_&quot;&lt;x&gt;/wallet?lang=en\""));
        assert!(!page.contains("<x>"));
    }

    #[test]
    fn buttons_when_pending_without_choice() {
        let page = render_page(&view("pending"));
        assert_eq!(
            page.matches("<form method=\"post\" action=\"/pay/pay_abc123/wallet?lang=en\">")
                .count(),
            2
        );
        assert!(page.contains("<input type=\"hidden\" name=\"wallet\" value=\"alipay\">"));
        assert!(page.contains("<input type=\"hidden\" name=\"wallet\" value=\"wechatpay\">"));
        // Each form carries the page's token back.
        assert_eq!(
            page.matches("<input type=\"hidden\" name=\"token\" value=\"tok.en\">")
                .count(),
            2
        );
        assert!(page.contains(">Alipay</button>"));
        assert!(page.contains(">WeChat Pay</button>"));
        assert!(page.contains("data-status=\"pending\""));
        assert!(page.contains("Tea House"));
        assert!(page.contains("12.50"));
        assert!(page.contains("CNY"));
        assert!(page.contains("2 cups"));
        assert!(!page.contains("<svg"));
    }

    #[test]
    fn no_buttons_once_a_wallet_is_chosen() {
        let mut v = view("pending");
        v.chosen = Some("wechatpay");
        let page = render_page(&v);
        assert!(!page.contains("<form"));
        assert!(!page.contains("<svg"));
        assert!(page.contains("Waiting for WeChat Pay"));
    }

    #[test]
    fn no_wallets_says_so() {
        let mut v = view("pending");
        v.wallets = &[];
        let page = render_page(&v);
        assert!(!page.contains("<form"));
        assert!(page.contains("No wallet is available"));
    }

    #[test]
    fn qr_shown_for_chosen_wallet() {
        let mut v = view("pending");
        v.chosen = Some("alipay");
        v.qr_code = Some("https://qr.alipay.com/bax01234");
        let page = render_page(&v);
        assert!(page.contains("<svg"));
        assert!(!page.contains("<?xml"));
        assert!(page.contains("Scan with Alipay"));
        assert!(
            page.contains(
                "<a href=\"https://qr.alipay.com/bax01234\" rel=\"noopener noreferrer\">"
            )
        );
        assert!(!page.contains("<form"));
    }

    #[test]
    fn qr_label_falls_back_to_wallet_label() {
        let mut v = view("pending");
        v.wallets = &[];
        v.chosen = Some("mock");
        v.qr_code = Some("mock://pay/1");
        let page = render_page(&v);
        assert!(page.contains("Scan with Mock wallet"));
    }

    #[test]
    fn non_web_qr_content_is_not_a_link() {
        let mut v = view("pending");
        v.chosen = Some("wechatpay");
        v.qr_code = Some("javascript:alert(1)");
        let page = render_page(&v);
        assert!(!page.contains("href=\"javascript:"));
        assert!(page.contains("<p class=\"content\">javascript:alert(1)</p>"));
    }

    #[test]
    fn unencodable_qr_degrades_to_text() {
        let long = "a".repeat(5000);
        let mut v = view("pending");
        v.chosen = Some("alipay");
        v.qr_code = Some(&long);
        let page = render_page(&v);
        assert!(!page.contains("<svg"));
        assert!(page.contains("The QR code cannot be shown"));
        assert!(page.contains(&long));
    }

    #[test]
    fn final_states_show_message_and_no_form() {
        for (status, message) in [
            ("succeeded", "Paid"),
            ("failed", "Payment failed"),
            ("cancelled", "Cancelled"),
            ("expired", "Expired"),
        ] {
            let mut v = view(status);
            // Even with a stale choice and QR, a final page offers nothing to act on.
            v.chosen = Some("alipay");
            v.qr_code = Some("https://qr.alipay.com/x");
            let page = render_page(&v);
            assert!(page.contains(&format!("data-status=\"{status}\"")));
            assert!(page.contains(&format!(">{message}</p>")), "{status}");
            assert!(!page.contains("<form"), "{status}");
            assert!(!page.contains("<button"), "{status}");
            assert!(!page.contains("<svg"), "{status}");
            assert!(!page.contains("<script"), "{status}");
            assert!(!page.contains("http-equiv=\"refresh\""), "{status}");
        }
    }

    #[test]
    fn unknown_status_is_escaped_and_final() {
        let page = render_page(&view("<weird>"));
        assert!(page.contains("Status: &lt;weird&gt;"));
        assert!(page.contains("data-status=\"&lt;weird&gt;\""));
        assert!(!page.contains("<form"));
        assert!(!page.contains("<script"));
    }

    #[test]
    fn script_and_noscript_only_while_pending() {
        let page = render_page(&view("pending"));
        assert_eq!(page.matches("<script nonce=\"n0nce\">").count(), 1);
        assert!(page.contains("var url=\"/pay/pay_abc123\""));
        assert!(page.contains("/status"));
        assert!(page.contains("setInterval(poll,2000)"));
        assert!(page.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"));
    }

    #[test]
    fn script_omitted_for_unsafe_id() {
        for id in ["pay-1", "pay_1\"", "pay 1", "pay_1</script>", ""] {
            let mut v = view("pending");
            v.payment_id = id;
            let page = render_page(&v);
            assert!(!page.contains("<script"), "{id:?}");
            // The forms still work without the poller.
            assert!(page.contains("<form"), "{id:?}");
        }
    }

    #[test]
    fn page_is_self_contained_and_mobile_ready() {
        let mut v = view("pending");
        v.chosen = Some("alipay");
        v.qr_code = Some("mock://pay/1");
        let page = render_page(&v);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("name=\"viewport\""));
        assert!(page.contains("max-width:420px"));
        assert!(page.contains("system-ui"));
        assert!(!page.contains("<link"));
        assert!(!page.contains("src="));
        assert!(!page.contains("@import"));
        assert!(!page.contains("url("));
    }

    #[test]
    fn not_found_page() {
        let page = render_not_found("n0nce", Lang::En);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("Payment not found"));
        assert!(!page.contains("<script"));
        assert!(!page.contains("<form"));
    }

    #[test]
    fn qr_svg_renders_inline_svg() {
        let svg =
            qr_svg("https://qr.alipay.com/bax01234", "QR code").expect("short content encodes");
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
        let width: u32 = svg
            .split("width=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|w| w.parse().ok())
            .expect("svg has a width");
        assert!(width >= QR_MIN_PX, "width {width}");
    }

    #[test]
    fn qr_svg_fails_cleanly_on_too_long_content() {
        let err =
            qr_svg(&"x".repeat(5000), "QR code").expect_err("5000 bytes exceed any QR version");
        assert!(err.contains("too long"), "{err}");
    }
}
