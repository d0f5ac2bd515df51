//! The second factor of an API key: a TOTP authenticator (RFC 6238: HMAC-SHA-1, 30-second
//! steps, 6 digits, one step either side accepted for clock drift). What is checked here is
//! only whether a code is right for a step; that each step is accepted once per key (RFC 6238
//! §5.2) is the store's to enforce (`Store::accept_code_step`), so that it holds across
//! restarts.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

/// Seconds per step.
pub const STEP_S: u64 = 30;
/// Digits per code.
pub const DIGITS: u8 = 6;
/// Bytes of a fresh secret: 160 bits, as RFC 4226 §4 recommends.
pub const SECRET_BYTES: usize = 20;
/// Wrong codes a key may be sent per window before codes for it are refused until the
/// oldest leaves the window: 480 guesses a day, with three codes right at a time out of a
/// million, make a stolen key's code about two years' work on average (and every wrong one
/// reaches the monitor).
pub const WRONG_CODES_MAX: u32 = 5;
/// The window those are counted over.
pub const WRONG_CODES_WINDOW_MS: i64 = 15 * 60_000;
/// The issuer authenticator apps show beside the account.
const ISSUER: &str = "paygate";

/// One key's authenticator secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Authenticator {
    totp: Totp,
    /// Names this secret without revealing it: a console session started with one secret
    /// ends when the key is given another (`paygated keys totp reset`).
    fingerprint: String,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authenticator({})", self.fingerprint)
    }
}

/// A code that matched: the step it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step(pub u64);

impl Authenticator {
    /// The authenticator of key `key_id` with `secret` (raw bytes, at least 16).
    pub fn new(key_id: &str, secret: &[u8]) -> Result<Authenticator, String> {
        if secret.len() < 16 {
            return Err(format!(
                "a TOTP secret must be at least 16 bytes, not {}",
                secret.len()
            ));
        }
        // A key id is `key_` and letters, digits or `_`: never the `:` the URI forbids.
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(1)
            .with_step_duration(STEP_S)
            .with_secret(secret.to_vec())
            .with_issuer(Some(ISSUER))
            .with_account_name(key_id)
            .build()
            .map_err(|e| format!("unusable TOTP secret: {e}"))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, secret);
        Ok(Authenticator {
            totp,
            fingerprint: hex::encode(&digest.as_ref()[..8]),
        })
    }

    /// A fresh random secret.
    pub fn generate_secret() -> Zeroizing<Vec<u8>> {
        let mut secret = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        SystemRandom::new()
            .fill(&mut secret)
            .expect("the operating system's random source");
        secret
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The step `code` is right for at `unix_s`, within one step either side. Anything but
    /// six ASCII digits is wrong (spaces are not trimmed here: callers trim user input).
    pub fn check(&self, code: &str, unix_s: u64) -> Option<Step> {
        if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.totp.check(code, unix_s).map(Step)
    }

    /// The code for the step of `unix_s` (tests, and the CLI's check after enrolling).
    pub fn code_at(&self, unix_s: u64) -> String {
        self.totp.generate(unix_s).to_string()
    }

    /// The `otpauth://totp/...` URI an authenticator app enrols from (it holds the secret).
    pub fn uri(&self) -> Zeroizing<String> {
        Zeroizing::new(
            self.totp
                .to_url()
                .expect("the account name was set and checked at construction"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret, "12345678901234567890".
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_match_rfc_6238_test_vectors() {
        let auth = Authenticator::new("key_a", RFC_SECRET).unwrap();
        // Appendix B lists 8-digit codes; a 6-digit code is their last six digits.
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(auth.code_at(time), eight[2..], "at {time}");
            assert_eq!(auth.check(&eight[2..], time), Some(Step(time / STEP_S)));
        }
    }

    #[test]
    fn one_step_either_side_and_no_further() {
        let auth = Authenticator::new("key_a", RFC_SECRET).unwrap();
        let now = 1_700_000_015;
        let step = now / STEP_S;
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let at = (now as i64 + offset * STEP_S as i64) as u64;
            let code = auth.code_at(at);
            let expected = accepted.then_some(Step((step as i64 + offset) as u64));
            assert_eq!(auth.check(&code, now), expected, "offset {offset}");
        }
    }

    #[test]
    fn malformed_codes_are_wrong() {
        let auth = Authenticator::new("key_a", RFC_SECRET).unwrap();
        let good = auth.code_at(1_700_000_000);
        for bad in [
            "",
            "12345",
            "1234567",
            "12 456",
            "１２３４５６",
            "abcdef",
            &format!(" {good}"),
            &format!("{good}\n"),
        ] {
            assert_eq!(auth.check(bad, 1_700_000_000), None, "{bad:?}");
        }
    }

    #[test]
    fn short_secrets_are_refused_and_secrets_are_not_printed() {
        assert!(Authenticator::new("key_a", &[7; 15]).is_err());
        let secret = Authenticator::generate_secret();
        assert_eq!(secret.len(), SECRET_BYTES);
        assert_ne!(*secret, *Authenticator::generate_secret());
        let auth = Authenticator::new("key_ops", &secret).unwrap();
        let debug = format!("{auth:?}");
        assert!(debug.starts_with("Authenticator(") && debug.len() < 40);
        let uri = auth.uri();
        assert!(
            uri.starts_with("otpauth://totp/paygate:key_ops?"),
            "{}",
            *uri
        );
        assert!(uri.contains("issuer=paygate"));
        assert_ne!(
            auth.fingerprint(),
            Authenticator::new("key_ops", RFC_SECRET)
                .unwrap()
                .fingerprint()
        );
    }
}
