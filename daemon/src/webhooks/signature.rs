//! `Paygate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
//! (API.md §9), and its verification for receivers (and tests).

use ring::hmac;

/// The header value for `body` sent at `unix_seconds`.
pub fn sign(secret: &[u8], unix_seconds: i64, body: &[u8]) -> String {
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac(secret, unix_seconds, body))
    )
}

fn mac(secret: &[u8], unix_seconds: i64, body: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(unix_seconds.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    context.sign().as_ref().to_vec()
}

/// Checks a header against `body`: the MAC (in constant time) and that `t` is within
/// `tolerance_s` of `now_s` (a replayed old delivery is refused). Returns `t`.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<i64, String> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                timestamp = Some(value.parse::<i64>().map_err(|_| "t is not a number")?)
            }
            Some(("v1", value)) => {
                signatures.push(hex::decode(value).map_err(|_| "v1 is not hex")?)
            }
            _ => {}
        }
    }
    let t = timestamp.ok_or("no t= in the header")?;
    if (now_s - t).abs() > tolerance_s {
        return Err(format!(
            "timestamp {t} is more than {tolerance_s} s from now"
        ));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    if signatures
        .iter()
        .any(|s| hmac::verify(&key, &message, s).is_ok())
    {
        Ok(t)
    } else {
        Err("no v1 signature matches".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_body_verifies_and_any_change_does_not() {
        let header = sign(b"whsec", 1_700_000_000, b"{\"id\":\"evt_1\"}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify(b"whsec", &header, b"{\"id\":\"evt_1\"}", 1_700_000_010, 300),
            Ok(1_700_000_000)
        );
        assert!(verify(b"whsec", &header, b"{\"id\":\"evt_2\"}", 1_700_000_010, 300).is_err());
        assert!(verify(b"other", &header, b"{\"id\":\"evt_1\"}", 1_700_000_010, 300).is_err());
        // Too old: a replay of a captured delivery.
        assert!(verify(b"whsec", &header, b"{\"id\":\"evt_1\"}", 1_700_001_000, 300).is_err());
        // A timestamp moved forward without re-signing.
        let moved = header.replace("t=1700000000", "t=1700000005");
        assert!(verify(b"whsec", &moved, b"{\"id\":\"evt_1\"}", 1_700_000_010, 300).is_err());
    }

    #[test]
    fn malformed_headers_are_refused_not_panicked_on() {
        for header in [
            "",
            "t=",
            "t=abc,v1=00",
            "v1=zz",
            "t=1",
            "t=1,v1=",
            ",,,",
            "t=1=2",
        ] {
            assert!(verify(b"k", header, b"", 1, 300).is_err(), "{header}");
        }
    }
}
