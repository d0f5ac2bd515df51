//! The body of the `applepay_token` fuzz target (`fuzz/`), natively: the fuzzer's bytes
//! through every decoder a token meets before anything is charged, as the plugin runs them.
//! The first byte chooses the door (modulo 3):
//!
//! - 0: the rest as a token's text: parsed, then (when it parses) its signature verified
//!   at the published vector's signing time;
//! - 1: the rest as a CMS signature, verified over the published token's signed parts;
//! - 2: the rest as decrypted payment data.
//!
//! Nothing may panic or run away; a refusal must say why. Compiled for the tests (which
//! replay `fuzz/regressions/applepay_token/` and the seed corpus) and with the `fuzzing`
//! feature; never into the component.

use crate::signature::{self, SignedParts};
use crate::token;

/// The published vector's signing time plus ten seconds (unix seconds).
pub const NOW_SECONDS: i64 = 1_630_522_996;

pub fn check(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            match token::parse(text) {
                Ok(token) => refused_or_verified(signature::verify(
                    &token.signature,
                    &SignedParts {
                        ephemeral_public_key: &token.ephemeral_public_key,
                        data: &token.data,
                        transaction_id: &token.transaction_id,
                        application_data: &token.application_data,
                    },
                    NOW_SECONDS,
                    300,
                )),
                Err(reason) => assert!(!reason.trim().is_empty()),
            }
        }
        1 => refused_or_verified(signature::verify(
            rest,
            &SignedParts {
                ephemeral_public_key: b"",
                data: b"",
                transaction_id: b"",
                application_data: b"",
            },
            NOW_SECONDS,
            300,
        )),
        _ => match token::payment(rest) {
            Ok(payment) => {
                assert_eq!(payment.last_four().len(), 4);
                assert!(!format!("{payment:?}").contains(&payment.account_number));
            }
            Err(reason) => assert!(!reason.trim().is_empty()),
        },
    }
}

fn refused_or_verified(outcome: Result<i64, String>) {
    match outcome {
        Ok(signed_at) => assert!(signed_at <= NOW_SECONDS + 60),
        Err(reason) => assert!(!reason.trim().is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn replay(dir: &str) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz")
            .join(dir)
            .join("applepay_token");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        for file in &files {
            let data = std::fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails", file.display());
        }
        files.len()
    }

    #[test]
    fn regressions_and_seeds_hold() {
        assert!(replay("regressions") > 0);
        assert!(replay("corpus") > 0);
    }
}
