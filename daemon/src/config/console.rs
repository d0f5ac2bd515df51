//! `[console]`: the back office's sessions, and which refunds need a fresh authenticator
//! code (API.md §2, §13).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Locator};
use crate::domain::money::{Currency, Money};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Per currency: refunds above this amount need a fresh code from keys with an
    /// authenticator. A currency not listed: every refund needs one.
    #[serde(default)]
    pub refund_confirm_above: BTreeMap<String, Spanned<String>>,
    /// A session unused this long ends.
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: Spanned<u64>,
    /// A session ends this long after its log-in, used or not.
    #[serde(default = "default_absolute_timeout_s")]
    pub absolute_timeout_s: Spanned<u64>,
    /// Failed log-ins a client may make per minute before it must wait.
    #[serde(default = "default_login_failures_per_minute")]
    pub login_failures_per_minute: Spanned<u32>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            refund_confirm_above: BTreeMap::new(),
            idle_timeout_s: default_idle_timeout_s(),
            absolute_timeout_s: default_absolute_timeout_s(),
            login_failures_per_minute: default_login_failures_per_minute(),
        }
    }
}

fn default_idle_timeout_s() -> Spanned<u64> {
    Spanned::new(0..0, 15 * 60)
}
fn default_absolute_timeout_s() -> Spanned<u64> {
    Spanned::new(0..0, 8 * 3600)
}
fn default_login_failures_per_minute() -> Spanned<u32> {
    Spanned::new(0..0, 5)
}

/// `[console]` resolved.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// Currency code -> the largest refund (minor units) that needs no code.
    pub refund_confirm_above: BTreeMap<String, i64>,
    pub idle_timeout_ms: i64,
    pub absolute_timeout_ms: i64,
    pub login_failures_per_minute: u32,
}

impl ConsoleSettings {
    /// Whether a refund of `minor` in `currency` needs a fresh code.
    pub fn refund_needs_code(&self, currency: &str, minor: i64) -> bool {
        self.refund_confirm_above
            .get(currency)
            .is_none_or(|above| minor > *above)
    }
}

impl ConsoleConfig {
    pub(super) fn validate(&self, at: &Locator<'_>) -> Result<(), ConfigError> {
        for (currency, amount) in &self.refund_confirm_above {
            let field = format!("console.refund_confirm_above.{currency}");
            if Currency::from_code(currency).is_none() {
                return Err(at.error(
                    amount.span(),
                    field,
                    format!(
                        "unknown currency; use one of {}",
                        Currency::supported_codes().join(", ")
                    ),
                ));
            }
            if let Err(e) = Money::parse(amount.get_ref(), currency) {
                return Err(at.error(amount.span(), field, format!("not an amount: {e}")));
            }
        }
        let day = 24 * 3600;
        for (value, field) in [
            (&self.idle_timeout_s, "console.idle_timeout_s"),
            (&self.absolute_timeout_s, "console.absolute_timeout_s"),
        ] {
            if !(60..=7 * day).contains(value.get_ref()) {
                return Err(at.error(value.span(), field, "must be 60 to 604800 (7 days)"));
            }
        }
        if self.idle_timeout_s.get_ref() > self.absolute_timeout_s.get_ref() {
            return Err(at.error(
                self.idle_timeout_s.span(),
                "console.idle_timeout_s",
                "must not be longer than console.absolute_timeout_s",
            ));
        }
        if !(1..=1000).contains(self.login_failures_per_minute.get_ref()) {
            return Err(at.error(
                self.login_failures_per_minute.span(),
                "console.login_failures_per_minute",
                "must be 1 to 1000",
            ));
        }
        Ok(())
    }

    pub fn settings(&self) -> ConsoleSettings {
        ConsoleSettings {
            refund_confirm_above: self
                .refund_confirm_above
                .iter()
                .filter_map(|(currency, amount)| {
                    let minor = Money::parse(amount.get_ref(), currency).ok()?.minor();
                    Some((currency.clone(), minor))
                })
                .collect(),
            idle_timeout_ms: *self.idle_timeout_s.get_ref() as i64 * 1000,
            absolute_timeout_ms: *self.absolute_timeout_s.get_ref() as i64 * 1000,
            login_failures_per_minute: *self.login_failures_per_minute.get_ref(),
        }
    }
}
