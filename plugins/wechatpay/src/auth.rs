//! WeChat Pay API v3 signatures, as pure functions: the message a request signature covers,
//! the `Authorization` header, the `nonce_str`, and the checks of the `Wechatpay-*` headers
//! that responses and notifications carry. The RSA work itself is the host's
//! (`keys::sign` / `keys::verify`); these functions only build and check what it signs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The scheme of the `Authorization` header (RSA 2048 + SHA-256).
pub const AUTH_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

/// How far a response or notification timestamp may be from our clock (WeChat Pay's SDKs
/// use the same five minutes).
pub const TIMESTAMP_SKEW_SECONDS_MAX: u64 = 300;

/// Bounds on the `Wechatpay-*` header values: a base64 RSA-4096 signature is 684 characters.
const SIGNATURE_CHARS_MAX: usize = 1024;
const NONCE_CHARS_MAX: usize = 64;
const SERIAL_CHARS_MAX: usize = 128;
const TIMESTAMP_DIGITS_MAX: usize = 12;

/// The response / notification headers.
pub const HEADER_TIMESTAMP: &str = "Wechatpay-Timestamp";
pub const HEADER_NONCE: &str = "Wechatpay-Nonce";
pub const HEADER_SIGNATURE: &str = "Wechatpay-Signature";
pub const HEADER_SERIAL: &str = "Wechatpay-Serial";

/// What a request signature covers:
/// `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`, where URL is the path and query as sent (for
/// the simulator, with `base_url`'s path in front) and BODY is empty for a GET.
pub fn request_message(
    method: &str,
    signed_path: &str,
    timestamp: u64,
    nonce: &str,
    body: &str,
) -> String {
    format!("{method}\n{signed_path}\n{timestamp}\n{nonce}\n{body}\n")
}

/// The `Authorization` header value for a signed request.
pub fn authorization(
    mchid: &str,
    nonce: &str,
    signature: &[u8],
    timestamp: u64,
    serial_no: &str,
) -> String {
    format!(
        "{AUTH_SCHEME} mchid=\"{mchid}\",nonce_str=\"{nonce}\",signature=\"{}\",timestamp=\"{timestamp}\",serial_no=\"{serial_no}\"",
        BASE64.encode(signature)
    )
}

/// A `nonce_str` of 32 characters `[0-9A-Z]`, without randomness (WASI's random source
/// traps in the sandbox). WeChat Pay uses the nonce with the timestamp to refuse replays, so
/// it must be unique per request, not secret:
/// - 9 characters: `now_millis` in base 36 (unique over time);
/// - 2 characters: `counter`, the request's number within this call (a call may send
///   several requests in the same millisecond);
/// - 21 characters: a 128-bit mix of `seed` (our payment or refund id), so that two calls
///   for different payments in the same millisecond differ.
pub fn nonce_str(seed: &str, now_millis: u64, counter: u32) -> String {
    let mut nonce = String::with_capacity(32);
    push_base36(&mut nonce, u128::from(now_millis), 9);
    push_base36(&mut nonce, u128::from(counter), 2);
    push_base36(&mut nonce, mix128(seed.as_bytes()), 21);
    nonce
}

/// The lowest `width` base-36 digits of `value`, most significant first.
fn push_base36(out: &mut String, mut value: u128, width: usize) {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = DIGITS[(value % 36) as usize];
        value /= 36;
    }
    out.extend(digits.into_iter().map(char::from));
}

/// A 128-bit non-cryptographic hash: FNV-1a over the bytes with two different offsets,
/// each finished with the SplitMix64 finaliser so that similar ids spread apart.
fn mix128(bytes: &[u8]) -> u128 {
    fn fnv(bytes: &[u8], offset: u64) -> u64 {
        bytes.iter().fold(offset, |hash, &b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }
    fn finish(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let high = finish(fnv(bytes, 0xcbf2_9ce4_8422_2325));
    let low = finish(fnv(bytes, 0x6c62_272e_07bb_0142) ^ bytes.len() as u64);
    (u128::from(high) << 64) | u128::from(low)
}

/// Why the `Wechatpay-*` headers of a response or notification were not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    Missing(&'static str),
    Duplicated(&'static str),
    Malformed(&'static str),
    /// `Wechatpay-Serial` names another key than the merchant's `wechatpay_public_key_id`.
    WrongSerial(String),
    /// The timestamp is more than five minutes away from our clock.
    Stale {
        skew_seconds: u64,
    },
    /// The signature does not verify with the WeChat Pay public key.
    Invalid,
    /// The host could not verify (key missing or unusable).
    Key(String),
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignatureError::Missing(h) => write!(f, "header {h} is missing"),
            SignatureError::Duplicated(h) => write!(f, "header {h} appears more than once"),
            SignatureError::Malformed(h) => write!(f, "header {h} is malformed"),
            SignatureError::WrongSerial(got) => write!(
                f,
                "Wechatpay-Serial {got:?} is not the configured wechatpay_public_key_id"
            ),
            SignatureError::Stale { skew_seconds } => write!(
                f,
                "Wechatpay-Timestamp is {skew_seconds} s away from our clock (at most {TIMESTAMP_SKEW_SECONDS_MAX} s allowed)"
            ),
            SignatureError::Invalid => write!(f, "Wechatpay-Signature does not verify"),
            SignatureError::Key(m) => write!(f, "cannot verify Wechatpay-Signature: {m}"),
        }
    }
}

/// The checked `Wechatpay-*` headers of a response or notification, ready to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub timestamp: String,
    pub nonce: String,
    pub signature: Vec<u8>,
}

impl SignedHeaders {
    /// Reads and checks the four headers: all present once, the serial the configured one,
    /// the timestamp within five minutes of `now_millis`, the signature valid base64.
    pub fn from_headers(
        headers: &[(String, String)],
        expected_serial: &str,
        now_millis: u64,
    ) -> Result<SignedHeaders, SignatureError> {
        let serial = single(headers, HEADER_SERIAL, SERIAL_CHARS_MAX)?;
        if serial != expected_serial {
            return Err(SignatureError::WrongSerial(
                serial.chars().take(SERIAL_CHARS_MAX).collect(),
            ));
        }
        let timestamp = single(headers, HEADER_TIMESTAMP, TIMESTAMP_DIGITS_MAX)?;
        if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignatureError::Malformed(HEADER_TIMESTAMP));
        }
        let seconds: u64 = timestamp
            .parse()
            .map_err(|_| SignatureError::Malformed(HEADER_TIMESTAMP))?;
        let skew_seconds = (now_millis / 1000).abs_diff(seconds);
        if skew_seconds > TIMESTAMP_SKEW_SECONDS_MAX {
            return Err(SignatureError::Stale { skew_seconds });
        }
        let nonce = single(headers, HEADER_NONCE, NONCE_CHARS_MAX)?;
        // A newline would let the nonce move the boundaries of the signed message.
        if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SignatureError::Malformed(HEADER_NONCE));
        }
        let signature = BASE64
            .decode(single(headers, HEADER_SIGNATURE, SIGNATURE_CHARS_MAX)?)
            .map_err(|_| SignatureError::Malformed(HEADER_SIGNATURE))?;
        if signature.is_empty() {
            return Err(SignatureError::Malformed(HEADER_SIGNATURE));
        }
        Ok(SignedHeaders {
            timestamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
            signature,
        })
    }

    /// What the signature covers: `TIMESTAMP\nNONCE\nBODY\n`.
    pub fn message(&self, body: &[u8]) -> Vec<u8> {
        verification_message(&self.timestamp, &self.nonce, body)
    }
}

/// `TIMESTAMP\nNONCE\nBODY\n`, the message of a response or notification signature.
pub fn verification_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(nonce.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(body);
    message.push(b'\n');
    message
}

/// The one value of header `name` (case-insensitive), trimmed; refused when absent,
/// repeated or longer than `chars_max`.
fn single<'a>(
    headers: &'a [(String, String)],
    name: &'static str,
    chars_max: usize,
) -> Result<&'a str, SignatureError> {
    let mut values = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim());
    let value = values.next().ok_or(SignatureError::Missing(name))?;
    if values.next().is_some() {
        return Err(SignatureError::Duplicated(name));
    }
    if value.len() > chars_max {
        return Err(SignatureError::Malformed(name));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_request_message_is_five_lines() {
        assert_eq!(
            request_message(
                "POST",
                "/v3/pay/transactions/native",
                1_554_208_460,
                "593BEC0C930BF1AFEB40B4A08C8FB242",
                "{\"a\":1}"
            ),
            "POST\n/v3/pay/transactions/native\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{\"a\":1}\n"
        );
        // A GET signs an empty body, still followed by its newline.
        assert_eq!(
            request_message("GET", "/v3/x?mchid=1", 1, "N", ""),
            "GET\n/v3/x?mchid=1\n1\nN\n\n"
        );
    }

    #[test]
    fn the_authorization_header_has_the_documented_shape() {
        assert_eq!(
            authorization(
                "1900009191",
                "NONCE",
                &[0xfb, 0xff],
                1_554_208_460,
                "1DDE55AD"
            ),
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1900009191\",nonce_str=\"NONCE\",signature=\"+/8=\",timestamp=\"1554208460\",serial_no=\"1DDE55AD\""
        );
    }

    #[test]
    fn nonces_are_32_uppercase_alphanumerics_and_unique() {
        let n = nonce_str("pay_0Fq3abc", 1_700_000_000_123, 0);
        assert_eq!(n.len(), 32);
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
        assert_eq!(n, nonce_str("pay_0Fq3abc", 1_700_000_000_123, 0));
        let mut seen = std::collections::BTreeSet::new();
        for id in ["pay_a", "pay_b", "re_a", "pay_ab", ""] {
            for millis in [0, 1, 1_700_000_000_123] {
                for counter in 0..4 {
                    assert!(seen.insert(nonce_str(id, millis, counter)));
                }
            }
        }
        // Similar ids spread over the whole hash part.
        let a = nonce_str("pay_0000000000000000000000001", 5, 0);
        let b = nonce_str("pay_0000000000000000000000002", 5, 0);
        let differing = a.bytes().zip(b.bytes()).filter(|(x, y)| x != y).count();
        assert!(differing > 12, "{a} vs {b}");
    }

    const NOW_MILLIS: u64 = 1_624_523_846_000;

    fn good() -> Vec<(String, String)> {
        headers(&[
            ("wechatpay-timestamp", "1624523846"),
            ("Wechatpay-Nonce", "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz"),
            ("WECHATPAY-SIGNATURE", "AAEC"),
            ("Wechatpay-Serial", "D7CE59D1F522D701"),
        ])
    }

    fn with(name: &str, value: Option<&str>) -> Vec<(String, String)> {
        let mut h: Vec<_> = good()
            .into_iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
            .collect();
        if let Some(v) = value {
            h.push((name.to_owned(), v.to_owned()));
        }
        h
    }

    #[test]
    fn headers_are_read_case_insensitively() {
        let signed = SignedHeaders::from_headers(&good(), "D7CE59D1F522D701", NOW_MILLIS).unwrap();
        assert_eq!(signed.signature, vec![0, 1, 2]);
        assert_eq!(
            signed.message(b"{}"),
            b"1624523846\nEcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz\n{}\n"
        );
    }

    #[test]
    fn missing_duplicated_and_malformed_headers_are_refused() {
        let check = |h: Vec<(String, String)>| {
            SignedHeaders::from_headers(&h, "D7CE59D1F522D701", NOW_MILLIS).unwrap_err()
        };
        for name in [
            HEADER_TIMESTAMP,
            HEADER_NONCE,
            HEADER_SIGNATURE,
            HEADER_SERIAL,
        ] {
            assert_eq!(check(with(name, None)), SignatureError::Missing(name));
        }
        let mut twice = good();
        twice.push(("wechatpay-signature".into(), "AAEC".into()));
        assert_eq!(check(twice), SignatureError::Duplicated(HEADER_SIGNATURE));
        assert_eq!(
            check(with(HEADER_SIGNATURE, Some("not base64!"))),
            SignatureError::Malformed(HEADER_SIGNATURE)
        );
        assert_eq!(
            check(with(HEADER_SIGNATURE, Some(""))),
            SignatureError::Malformed(HEADER_SIGNATURE)
        );
        let huge = "A".repeat(1 << 20);
        assert_eq!(
            check(with(HEADER_SIGNATURE, Some(&huge))),
            SignatureError::Malformed(HEADER_SIGNATURE)
        );
        for bad in [
            "",
            "-1624523846",
            "16245e3846",
            "1624523846.5",
            "99999999999999",
        ] {
            assert_eq!(
                check(with(HEADER_TIMESTAMP, Some(bad))),
                SignatureError::Malformed(HEADER_TIMESTAMP),
                "{bad:?}"
            );
        }
        for bad in ["", "a\nb", "a b", &"N".repeat(65)] {
            assert_eq!(
                check(with(HEADER_NONCE, Some(bad))),
                SignatureError::Malformed(HEADER_NONCE),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_serial_must_be_the_configured_key() {
        assert_eq!(
            SignedHeaders::from_headers(&good(), "PUB_KEY_ID_OTHER", NOW_MILLIS).unwrap_err(),
            SignatureError::WrongSerial("D7CE59D1F522D701".into())
        );
    }

    #[test]
    fn timestamps_more_than_five_minutes_away_are_stale() {
        let at = |now_millis| SignedHeaders::from_headers(&good(), "D7CE59D1F522D701", now_millis);
        assert!(at(NOW_MILLIS + 300_999).is_ok());
        assert!(at(NOW_MILLIS - 300_000).is_ok());
        assert_eq!(
            at(NOW_MILLIS + 301_000).unwrap_err(),
            SignatureError::Stale { skew_seconds: 301 }
        );
        assert_eq!(
            at(NOW_MILLIS - 301_000).unwrap_err(),
            SignatureError::Stale { skew_seconds: 301 }
        );
        // Today's clock against the vector's 2021 timestamp.
        assert!(matches!(
            at(1_750_000_000_000).unwrap_err(),
            SignatureError::Stale { .. }
        ));
    }
}
