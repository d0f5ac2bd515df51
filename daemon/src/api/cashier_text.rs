//! The cashier page's words: one catalogue per language, so no page string lives in the
//! page's code, and the choice of language: the page's own switch (`?lang=`) first, else the
//! payer's `Accept-Language` (any `zh-*` reads Simplified Chinese), else English.

/// A language the cashier page speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    /// Simplified Chinese.
    ZhHans,
}

/// Every string the cashier page shows, in one language. `{}` in a template is replaced by
/// the one value it names.
pub struct Texts {
    /// `<html lang>`.
    pub html_lang: &'static str,
    /// The page title, around the merchant's name.
    pub title: &'static str,
    pub paid: &'static str,
    pub failed: &'static str,
    pub cancelled: &'static str,
    pub expired: &'static str,
    /// A status the API does not have, named as it is.
    pub status_other: &'static str,
    pub close_page: &'static str,
    /// The foot, around the payment id.
    pub payment_id: &'static str,
    pub not_found: &'static str,
    pub not_found_note: &'static str,
    pub no_wallet: &'static str,
    pub choose: &'static str,
    /// While the chosen wallet has given no QR code yet, around its name.
    pub waiting_for: &'static str,
    pub qr_unavailable: &'static str,
    /// Under the QR code, around the wallet's name.
    pub scan_with: &'static str,
    /// The QR code's accessible name.
    pub qr_label: &'static str,
    pub page_expired: &'static str,
    pub busy: &'static str,
    /// Around the wallet asked for.
    pub not_a_wallet: &'static str,
    /// Around the error.
    pub wallet_failed: &'static str,
    /// The switch to the other language: its name, in that language.
    pub other_language: &'static str,
}

const EN: Texts = Texts {
    html_lang: "en",
    title: "Pay {}",
    paid: "Paid",
    failed: "Payment failed",
    cancelled: "Cancelled",
    expired: "Expired",
    status_other: "Status: {}",
    close_page: "You can close this page.",
    payment_id: "Payment {}",
    not_found: "Payment not found",
    not_found_note: "Check the link you were given, or ask the merchant for a new one.",
    no_wallet: "No wallet is available for this payment right now.",
    choose: "Choose how to pay",
    waiting_for: "Waiting for {}\u{2026}",
    qr_unavailable: "The QR code cannot be shown; use the link below instead.",
    scan_with: "Scan with {}",
    qr_label: "QR code",
    page_expired: "This page has expired. Please choose your wallet again.",
    busy: "Another choice for this payment is being made; reload the page.",
    not_a_wallet: "\"{}\" is not a wallet this payment can be paid with.",
    wallet_failed: "The wallet could not start the payment ({}). Please try again.",
    other_language: "中文",
};

const ZH_HANS: Texts = Texts {
    html_lang: "zh-Hans",
    title: "向{}付款",
    paid: "支付成功",
    failed: "支付失败",
    cancelled: "已取消",
    expired: "已过期",
    status_other: "状态：{}",
    close_page: "您可以关闭此页面。",
    payment_id: "付款单号 {}",
    not_found: "未找到该付款",
    not_found_note: "请检查您收到的链接，或向商家索取新的付款链接。",
    no_wallet: "此笔付款暂时没有可用的支付方式。",
    choose: "请选择支付方式",
    waiting_for: "正在等待{}\u{2026}",
    qr_unavailable: "无法显示二维码，请使用下方链接付款。",
    scan_with: "请使用{}扫码付款",
    qr_label: "二维码",
    page_expired: "页面已过期，请重新选择支付方式。",
    busy: "此笔付款正在选择其他支付方式，请刷新页面。",
    not_a_wallet: "“{}”不是此笔付款可用的支付方式。",
    wallet_failed: "支付方式暂时无法发起付款（{}），请重试。",
    other_language: "English",
};

impl Lang {
    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::En => &EN,
            Lang::ZhHans => &ZH_HANS,
        }
    }

    /// The `?lang=` value that asks for this language.
    pub fn param(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhHans => "zh-CN",
        }
    }

    /// The other language (the page's switch).
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::ZhHans,
            Lang::ZhHans => Lang::En,
        }
    }

    /// The language a tag names, if the page speaks it (`zh`, `zh-CN`, `zh-Hant-TW`, ...:
    /// Simplified Chinese; `en`, `en-GB`, ...: English).
    fn of_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("zh") {
            Some(Lang::ZhHans)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The page's language: `?lang=` when it names one the page speaks, else the first of
    /// `Accept-Language`'s languages by preference (`q`, then order) that it speaks, else
    /// English.
    pub fn negotiate(lang_param: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(lang) = lang_param.and_then(Lang::of_tag) {
            return lang;
        }
        let mut best: Option<(u16, Lang)> = None;
        for item in accept_language.unwrap_or_default().split(',').take(32) {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Lang::of_tag) else {
                continue;
            };
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1000), quality);
            let Some(quality) = quality.filter(|q| *q > 0) else {
                continue;
            };
            if best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    /// The name a wallet is known by in this language.
    pub fn wallet_name(self, provider: &str) -> String {
        let name = match (provider, self) {
            ("alipay", Lang::En) => "Alipay",
            ("alipay", Lang::ZhHans) => "支付宝",
            ("wechatpay", Lang::En) => "WeChat Pay",
            ("wechatpay", Lang::ZhHans) => "微信支付",
            ("applepay", _) => "Apple Pay",
            ("mock", Lang::En) => "Mock wallet",
            ("mock", Lang::ZhHans) => "模拟钱包",
            (other, _) => other,
        };
        name.to_owned()
    }

    /// An amount as payers of this language read it: `12.50 CNY` in English, `¥12.50` in
    /// Chinese for yuan (other currencies keep their code). `(before, number, after)`.
    pub fn amount<'a>(self, amount: &'a str, currency: &'a str) -> (&'a str, &'a str, &'a str) {
        match (self, currency) {
            (Lang::ZhHans, "CNY") => ("¥", amount, ""),
            _ => ("", amount, currency),
        }
    }
}

/// A `q=` value in thousandths (`1`, `0.8`, `0.125`), if well-formed.
fn quality(text: &str) -> Option<u16> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "1" if thousandths == 0 => Some(1000),
        "0" => Some(thousandths),
        _ => None,
    }
}

/// `template` with its `{}` replaced by `value`.
pub fn fill(template: &str, value: &str) -> String {
    template.replacen("{}", value, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_wins_then_the_payers_preferences_then_english() {
        let negotiate = Lang::negotiate;
        assert_eq!(negotiate(None, None), Lang::En);
        assert_eq!(
            negotiate(None, Some("zh-CN,zh;q=0.9,en;q=0.8")),
            Lang::ZhHans
        );
        assert_eq!(negotiate(None, Some("zh-TW")), Lang::ZhHans);
        assert_eq!(negotiate(None, Some("zh_Hans_CN")), Lang::ZhHans);
        assert_eq!(negotiate(None, Some("en-US,en;q=0.9,zh;q=0.8")), Lang::En);
        // By quality, not order; unknown languages and q=0 skipped.
        assert_eq!(negotiate(None, Some("en;q=0.5, zh-CN;q=0.9")), Lang::ZhHans);
        assert_eq!(
            negotiate(None, Some("fr-FR, de;q=0.9, zh;q=0.1")),
            Lang::ZhHans
        );
        assert_eq!(negotiate(None, Some("zh;q=0, en;q=0.2")), Lang::En);
        assert_eq!(negotiate(None, Some("fr, de")), Lang::En);
        // Malformed qualities are ignored, not trusted.
        assert_eq!(negotiate(None, Some("zh;q=2, en;q=0.3")), Lang::En);
        assert_eq!(negotiate(None, Some("zh;q=abc")), Lang::En);
        assert_eq!(negotiate(None, Some("*;q=1, ,;;,")), Lang::En);
        // The page's switch.
        assert_eq!(negotiate(Some("zh-CN"), Some("en")), Lang::ZhHans);
        assert_eq!(negotiate(Some("en"), Some("zh-CN")), Lang::En);
        assert_eq!(negotiate(Some("klingon"), Some("zh-CN")), Lang::ZhHans);
        let hostile = "zh,".repeat(10_000);
        assert_eq!(negotiate(None, Some(&hostile)), Lang::ZhHans);
    }

    #[test]
    fn qualities_are_read_in_thousandths() {
        assert_eq!(quality("1"), Some(1000));
        assert_eq!(quality("1.000"), Some(1000));
        assert_eq!(quality("0.8"), Some(800));
        assert_eq!(quality("0.125"), Some(125));
        for bad in ["1.5", "0.1234", "-1", "", "0.x", "2"] {
            assert_eq!(quality(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn wallets_and_amounts_as_payers_read_them() {
        assert_eq!(Lang::ZhHans.wallet_name("alipay"), "支付宝");
        assert_eq!(Lang::ZhHans.wallet_name("wechatpay"), "微信支付");
        assert_eq!(Lang::En.wallet_name("wechatpay"), "WeChat Pay");
        assert_eq!(Lang::ZhHans.wallet_name("toypay"), "toypay");
        assert_eq!(Lang::ZhHans.amount("12.50", "CNY"), ("¥", "12.50", ""));
        assert_eq!(Lang::ZhHans.amount("12.50", "USD"), ("", "12.50", "USD"));
        assert_eq!(Lang::En.amount("12.50", "CNY"), ("", "12.50", "CNY"));
        assert_eq!(
            fill(Lang::ZhHans.texts().scan_with, "支付宝"),
            "请使用支付宝扫码付款"
        );
    }

    #[test]
    fn every_template_has_its_one_placeholder_in_both_languages() {
        for texts in [&EN, &ZH_HANS] {
            for template in [
                texts.title,
                texts.status_other,
                texts.payment_id,
                texts.waiting_for,
                texts.scan_with,
                texts.not_a_wallet,
                texts.wallet_failed,
            ] {
                assert_eq!(template.matches("{}").count(), 1, "{template}");
            }
        }
    }
}
