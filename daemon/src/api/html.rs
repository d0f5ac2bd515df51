//! What every server-rendered page (the cashier page, the console) needs to put text into
//! HTML and URLs safely.

use std::fmt::Write;

/// 16 random bytes, hex: a Content-Security-Policy nonce, or a token's salt.
pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    hex::encode(bytes)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A URL path segment: everything outside `[A-Za-z0-9_-]` percent-encoded.
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specials_are_escaped_and_segments_encoded() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("支付宝 ¥1"), "支付宝 ¥1");
        assert_eq!(path_segment("pay_A-1"), "pay_A-1");
        assert_eq!(path_segment("a/b\"c d"), "a%2Fb%22c%20d");
        assert_eq!(path_segment("é"), "%C3%A9");
    }
}
