//! What Alipay's RSA2 signatures cover, and finding it in what Alipay sends. Pure: the
//! signing and verifying themselves are the host's (`keys`), which the flow and the notices
//! reach through `Env`.
//!
//! - A request is signed over every non-empty parameter except `sign` (so `sign_type` *is*
//!   covered), sorted by key, joined as `k=v&k=v` with raw (not URL-encoded) values.
//! - A notice is verified over the same string but without `sign` *and* `sign_type`.
//! - A response `{"alipay_trade_pay_response": {...}, "sign": "..."}` is signed over the raw
//!   text of the `*_response` value exactly as it arrived (byte for byte: re-serialising the
//!   parsed JSON would change spacing, key order or escapes and break the signature), so we
//!   cut that text out of the body with a small scanner instead of a JSON round trip.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use paygate_plugin_api::form;

/// The only signature type the plugin speaks (SHA256withRSA, PKCS#1 v1.5).
pub const SIGN_TYPE: &str = "RSA2";

/// Answers larger than this are refused before scanning (Alipay's are a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// The string a request's `sign` covers: all non-empty parameters but `sign`, sorted.
pub fn request_signing_string(params: &[(String, String)]) -> String {
    form::signing_string(params, &["sign"])
}

/// The string a notice's `sign` covers: all non-empty parameters but `sign` and
/// `sign_type`, sorted.
pub fn notify_signing_string(params: &[(String, String)]) -> String {
    form::signing_string(params, &["sign", "sign_type"])
}

/// A signature as Alipay carries it: standard base64 with padding.
pub fn encode_signature(signature: &[u8]) -> String {
    BASE64.encode(signature)
}

/// Decodes a base64 signature. Surrounding whitespace is ignored; a space inside is read
/// as `+` (what an unencoded `+` becomes after form decoding; base64 has no spaces).
pub fn decode_signature(text: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = text.trim().replace(' ', "+");
    if cleaned.is_empty() {
        return Err("the signature is empty".into());
    }
    BASE64
        .decode(cleaned.as_bytes())
        .map_err(|e| format!("the signature is not base64: {e}"))
}

/// The parts of a response body that the signature ties together.
#[derive(Debug, PartialEq, Eq)]
pub struct SignedResponse<'a> {
    /// Which member held the answer: `alipay_trade_pay_response` or `error_response`.
    pub node_key: String,
    /// The raw text of that member's value, exactly as received.
    pub node: &'a str,
    /// The top-level `sign`, when there is a non-empty one.
    pub sign: Option<String>,
}

/// The member name of `method`'s answer: `alipay.trade.pay` -> `alipay_trade_pay_response`.
pub fn response_key(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// Splits a response body into the raw `*_response` text and its `sign`. The answer is the
/// member named after `method`, or `error_response` (what the gateway uses when it cannot
/// tell the method). Refuses bodies that are not one JSON object, that repeat a top-level
/// member (a second copy could carry an answer other than the one signed), or whose answer
/// is not an object.
pub fn split_response<'a>(body: &'a str, method: &str) -> Result<SignedResponse<'a>, String> {
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(format!(
            "the answer is {} bytes, more than the {MAX_RESPONSE_BYTES} accepted",
            body.len()
        ));
    }
    // A full syntax check first, so the scanner below only ever sees valid JSON.
    serde_json::from_str::<serde::de::IgnoredAny>(body)
        .map_err(|e| format!("the answer is not JSON: {e}"))?;
    let members = top_level_members(body)?;
    for (i, (key, _)) in members.iter().enumerate() {
        if members[..i].iter().any(|(k, _)| k == key) {
            return Err(format!("the answer repeats the member \"{key}\""));
        }
    }
    let wanted = response_key(method);
    let (node_key, node) = members
        .iter()
        .find(|(k, _)| *k == wanted)
        .or_else(|| members.iter().find(|(k, _)| k == "error_response"))
        .map(|(k, v)| (k.clone(), *v))
        .ok_or_else(|| format!("the answer has no \"{wanted}\""))?;
    if !node.starts_with('{') {
        return Err(format!("\"{node_key}\" is not a JSON object"));
    }
    let sign = match members.iter().find(|(k, _)| k == "sign") {
        None => None,
        Some((_, raw)) => {
            let value: String = serde_json::from_str(raw)
                .map_err(|_| "the top-level \"sign\" is not a string".to_string())?;
            (!value.is_empty()).then_some(value)
        }
    };
    Ok(SignedResponse {
        node_key,
        node,
        sign,
    })
}

/// The members of the JSON object `text`, in order: each key (decoded) with the raw text of
/// its value (trimmed of surrounding whitespace, otherwise untouched).
pub fn top_level_members(text: &str) -> Result<Vec<(String, &str)>, String> {
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let mut members = Vec::new();
    scanner.skip_whitespace();
    scanner.expect(b'{')?;
    scanner.skip_whitespace();
    if scanner.peek() == Some(b'}') {
        scanner.pos += 1;
    } else {
        loop {
            scanner.skip_whitespace();
            if scanner.peek() != Some(b'"') {
                return Err(scanner.error("expected a member name"));
            }
            let (key_start, key_end) = scanner.string()?;
            let key: String = serde_json::from_str(&text[key_start..key_end])
                .map_err(|e| format!("bad member name: {e}"))?;
            scanner.skip_whitespace();
            scanner.expect(b':')?;
            scanner.skip_whitespace();
            let (value_start, value_end) = scanner.value()?;
            members.push((key, &text[value_start..value_end]));
            scanner.skip_whitespace();
            match scanner.peek() {
                Some(b',') => scanner.pos += 1,
                Some(b'}') => {
                    scanner.pos += 1;
                    break;
                }
                _ => return Err(scanner.error("expected ',' or '}'")),
            }
        }
    }
    scanner.skip_whitespace();
    if scanner.pos != scanner.bytes.len() {
        return Err(scanner.error("unexpected text after the object"));
    }
    Ok(members)
}

/// A byte cursor over JSON text. Every delimiter it looks for is ASCII, and UTF-8 never
/// uses ASCII bytes inside a multi-byte character, so every span it returns starts and
/// ends on a character boundary.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", byte as char)))
        }
    }

    /// A string starting at the cursor: its span including both quotes.
    fn string(&mut self) -> Result<(usize, usize), String> {
        let start = self.pos;
        self.expect(b'"')?;
        loop {
            match self.peek() {
                None => return Err("unterminated string".into()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok((start, self.pos));
                }
                // An escape: whatever follows (`"`, `\`, `u`...) is part of the string.
                Some(b'\\') => {
                    if self.pos + 1 >= self.bytes.len() {
                        return Err("unterminated string".into());
                    }
                    self.pos += 2;
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Any value starting at the cursor: its span.
    fn value(&mut self) -> Result<(usize, usize), String> {
        let start = self.pos;
        match self.peek() {
            None => Err("expected a value".into()),
            Some(b'"') => self.string(),
            Some(b'{' | b'[') => {
                // Nesting without recursion: the closers we still owe, innermost last.
                let mut owed: Vec<u8> = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err("unterminated object or array".into()),
                        Some(b'"') => {
                            self.string()?;
                        }
                        Some(b'{') => {
                            owed.push(b'}');
                            self.pos += 1;
                        }
                        Some(b'[') => {
                            owed.push(b']');
                            self.pos += 1;
                        }
                        Some(close @ (b'}' | b']')) => {
                            if owed.pop() != Some(close) {
                                return Err(self.error("mismatched bracket"));
                            }
                            self.pos += 1;
                            if owed.is_empty() {
                                return Ok((start, self.pos));
                            }
                        }
                        Some(_) => self.pos += 1,
                    }
                }
            }
            Some(_) => {
                // A number, true, false or null: up to the next delimiter.
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    Err(self.error("expected a value"))
                } else {
                    Ok((start, self.pos))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{rsa2_sign_pem, rsa2_verifies};

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn request_string_covers_sign_type_but_not_sign_or_empties() {
        let params = pairs(&[
            ("timestamp", "2024-01-02 03:04:05"),
            ("method", "alipay.trade.query"),
            ("app_id", "2021000000000000"),
            ("sign_type", "RSA2"),
            ("sign", "abc"),
            ("notify_url", ""),
            ("biz_content", r#"{"out_trade_no":"pay_1"}"#),
            ("charset", "utf-8"),
        ]);
        assert_eq!(
            request_signing_string(&params),
            "app_id=2021000000000000&biz_content={\"out_trade_no\":\"pay_1\"}&charset=utf-8\
             &method=alipay.trade.query&sign_type=RSA2&timestamp=2024-01-02 03:04:05"
        );
    }

    #[test]
    fn notice_string_leaves_out_sign_and_sign_type() {
        let params = pairs(&[
            ("b", "2"),
            ("sign_type", "RSA2"),
            ("a", "x y&z"),
            ("sign", "s"),
        ]);
        assert_eq!(notify_signing_string(&params), "a=x y&z&b=2");
    }

    #[test]
    fn signatures_round_trip_through_base64() {
        let bytes = [0u8, 1, 250, 251, 252, 253, 254, 255];
        let text = encode_signature(&bytes);
        assert_eq!(text, "AAH6+/z9/v8=");
        assert_eq!(decode_signature(&text).unwrap(), bytes);
        // A `+` turned into a space by form decoding still decodes.
        assert_eq!(decode_signature("AAH6 /z9/v8=").unwrap(), bytes);
        assert!(decode_signature("").is_err());
        assert!(decode_signature("not base64!").is_err());
    }

    #[test]
    fn response_keys_follow_the_method() {
        assert_eq!(
            response_key("alipay.trade.pay"),
            "alipay_trade_pay_response"
        );
        assert_eq!(
            response_key("alipay.trade.fastpay.refund.query"),
            "alipay_trade_fastpay_refund_query_response"
        );
    }

    #[test]
    fn the_raw_answer_text_is_cut_out_exactly() {
        let node = r#"{"code":"10000","msg":"Success","out_trade_no":"6823789339978248","qr_code":"https://qr.alipay.com/bavh4wjlxf12tper3a"}"#;
        let body = format!("{{\"alipay_trade_precreate_response\":{node},\"sign\":\"c2ln\"}}");
        let split = split_response(&body, "alipay.trade.precreate").unwrap();
        assert_eq!(split.node, node);
        assert_eq!(split.node_key, "alipay_trade_precreate_response");
        assert_eq!(split.sign.as_deref(), Some("c2ln"));
    }

    #[test]
    fn nesting_escapes_and_unicode_do_not_confuse_the_cut() {
        // Braces and quotes inside strings, escaped quotes and backslashes, \u escapes,
        // raw multi-byte characters, nested objects and arrays, odd spacing, and a `sign`
        // member placed before the answer.
        let node = "{ \"code\" : \"10000\", \"msg\":\"处理成功 }{ \\\"quoted\\\" \\\\\",\n\
                    \"nested\": {\"a\": [1, {\"b\": \"]}\"}, [], {}], \"c\": null},\n\
                    \"u\": \"\\u8bed\\u96c0 \\ud83d\\ude00 😀\", \"n\": -1.5e3, \"t\": true }";
        let body = format!(
            " {{ \"sign\" : \"QUJD\" ,\r\n \"alipay_trade_query_response\" :  {node}  , \"alipay_cert_sn\": \"x\" }} "
        );
        let split = split_response(&body, "alipay.trade.query").unwrap();
        assert_eq!(split.node, node);
        assert_eq!(split.sign.as_deref(), Some("QUJD"));
        // What we cut out is itself the JSON it should be.
        let value: serde_json::Value = serde_json::from_str(split.node).unwrap();
        assert_eq!(value["msg"], "处理成功 }{ \"quoted\" \\");
        assert_eq!(value["nested"]["a"][1]["b"], "]}");
        assert_eq!(value["u"], "语雀 😀 😀");
    }

    #[test]
    fn error_response_is_the_fallback_and_unsigned_answers_have_no_sign() {
        let body = r#"{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}}"#;
        let split = split_response(body, "alipay.trade.pay").unwrap();
        assert_eq!(split.node_key, "error_response");
        assert_eq!(split.sign, None);
        let empty_sign = r#"{"alipay_trade_pay_response":{"code":"10000"},"sign":""}"#;
        assert_eq!(
            split_response(empty_sign, "alipay.trade.pay").unwrap().sign,
            None
        );
    }

    #[test]
    fn malformed_answers_are_refused_with_a_reason() {
        let refused = |body: &str| split_response(body, "alipay.trade.pay").unwrap_err();
        assert!(refused("<html>502 Bad Gateway</html>").contains("not JSON"));
        assert!(refused("").contains("not JSON"));
        assert!(refused("[1,2]").contains("expected '{'"));
        assert!(refused(r#"{"alipay_trade_pay_response":{"code":"10000"}"#).contains("not JSON"));
        assert!(refused(r#"{"other_response":{"code":"10000"},"sign":"x"}"#).contains("has no"));
        assert!(
            refused(r#"{"alipay_trade_pay_response":"10000","sign":"x"}"#)
                .contains("not a JSON object")
        );
        assert!(
            refused(r#"{"alipay_trade_pay_response":{"code":"10000"},"sign":5}"#)
                .contains("not a string")
        );
        let twice = r#"{"alipay_trade_pay_response":{"code":"40004"},"alipay_trade_pay_response":{"code":"10000"},"sign":"x"}"#;
        assert!(refused(twice).contains("repeats"));
        let huge = format!(
            "{{\"alipay_trade_pay_response\":{{\"code\":\"10000\",\"pad\":\"{}\"}}}}",
            "x".repeat(MAX_RESPONSE_BYTES)
        );
        assert!(refused(&huge).contains("more than"));
        // Deep nesting neither overflows a stack here nor when the answer is parsed.
        let deep = format!(
            "{{\"alipay_trade_pay_response\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(refused(&deep).contains("not a JSON object"));
        let deep_inside = format!(
            "{{\"alipay_trade_pay_response\":{{\"code\":\"10000\",\"x\":{}{}}},\"sign\":\"x\"}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let split = split_response(&deep_inside, "alipay.trade.pay").unwrap();
        assert!(crate::transform::Reply::parse(split.node).is_err());
    }

    #[test]
    fn the_scanner_reports_members_in_order() {
        let members = top_level_members(r#"{"a":1,"b\"c":"x","d":[1,{"e":"}"}],"f":{}}"#).unwrap();
        let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b\"c", "d", "f"]);
        assert_eq!(members[2].1, r#"[1,{"e":"}"}]"#);
        assert_eq!(top_level_members("{}").unwrap(), vec![]);
        assert!(top_level_members(r#"{"a":1} x"#).is_err());
        assert!(top_level_members(r#"{"a":[1}}"#).is_err());
    }

    #[test]
    fn a_response_signed_over_the_raw_text_verifies_after_the_cut() {
        // A test key from the repository's vectors plays Alipay's key: sign the raw text of
        // a response object written with unusual spacing and escapes, embed it, cut it out
        // again and check the signature over exactly those bytes.
        let vector: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../tests/vectors/wechatpay/sign_sha256withrsa.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let private_pem = vector["private_key_pem"].as_str().unwrap();
        let public_pem = {
            use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
            rsa::RsaPrivateKey::from_pkcs8_pem(private_pem)
                .unwrap()
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap()
        };
        let node = "{\"code\":\"10000\",\"msg\":\"Success\",\"buyer_logon_id\":\"159****5620\",\
                    \"subject\":\"\\u8bed\\u96c0 \\\"VIP\\\" {500}\",\"trade_no\":\"2013112011001004330000121536\",\
                    \"out_trade_no\":\"pay_1\",\"trade_status\":\"TRADE_SUCCESS\",\"total_amount\":\"88.88\"}";
        let signature = encode_signature(&rsa2_sign_pem(private_pem, node.as_bytes()));
        let body = format!("{{\"alipay_trade_query_response\":{node},\"sign\":\"{signature}\"}}");
        let split = split_response(&body, "alipay.trade.query").unwrap();
        let sig = decode_signature(split.sign.as_deref().unwrap()).unwrap();
        assert!(rsa2_verifies(&public_pem, split.node.as_bytes(), &sig));
        // A re-serialised copy of the same JSON is not what was signed.
        let reserialised =
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(node).unwrap())
                .unwrap();
        assert!(!rsa2_verifies(&public_pem, reserialised.as_bytes(), &sig));
    }
}
