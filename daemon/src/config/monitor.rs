//! `[monitor]` and `[monitor.rules.<rule>]`: the anomaly monitor's switches and thresholds
//! (API.md §10). Every rule has defaults in code; a table only overrides what it names.

pub use crate::domain::hours::OpeningHours;
pub use crate::monitor::settings::{Action, MonitorSettings, RULES, RuleSettings, Severity};
use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Locator};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Inputs waiting for the monitor; when full, new input is dropped (and counted), never
    /// waited for: the monitor must not slow payments.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: Spanned<usize>,
    /// Subjects (terminals, payers, keys, ...) remembered per rule; the least recently seen
    /// are forgotten beyond this.
    #[serde(default = "default_max_subjects")]
    pub max_subjects: Spanned<usize>,
    #[serde(default)]
    pub rules: BTreeMap<String, Spanned<RuleOverrides>>,
}

/// What a `[monitor.rules.<rule>]` table may set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverrides {
    pub enabled: Option<bool>,
    pub severity: Option<Severity>,
    pub action: Option<Action>,
    pub block_s: Option<u64>,
    pub cooldown_s: Option<u64>,
    pub window_s: Option<u64>,
    pub threshold: Option<f64>,
    pub factor: Option<f64>,
    pub min_count: Option<u64>,
    pub amount: Option<String>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            enabled: true,
            queue_capacity: default_queue_capacity(),
            max_subjects: default_max_subjects(),
            rules: BTreeMap::new(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_queue_capacity() -> Spanned<usize> {
    Spanned::new(0..0, MonitorSettings::default().queue_capacity)
}
fn default_max_subjects() -> Spanned<usize> {
    Spanned::new(0..0, MonitorSettings::default().max_subjects)
}

impl MonitorConfig {
    /// The monitor's settings: every rule's defaults with the file's overrides applied.
    pub fn settings(&self) -> MonitorSettings {
        let mut settings = MonitorSettings {
            enabled: self.enabled,
            queue_capacity: *self.queue_capacity.get_ref(),
            max_subjects: *self.max_subjects.get_ref(),
            ..MonitorSettings::default()
        };
        for (rule, overrides) in &self.rules {
            let Some(s) = settings.rules.get_mut(rule.as_str()) else {
                continue; // validation refused unknown rules
            };
            let o = overrides.get_ref();
            s.enabled = o.enabled.unwrap_or(s.enabled);
            s.severity = o.severity.unwrap_or(s.severity);
            s.action = o.action.unwrap_or(s.action);
            s.block_s = o.block_s.unwrap_or(s.block_s);
            s.cooldown_s = o.cooldown_s.unwrap_or(s.cooldown_s);
            s.window_s = o.window_s.unwrap_or(s.window_s);
            s.threshold = o.threshold.unwrap_or(s.threshold);
            s.factor = o.factor.unwrap_or(s.factor);
            s.min_count = o.min_count.unwrap_or(s.min_count);
            if let Some(amount) = o.amount.as_ref().and_then(|a| a.parse().ok()) {
                s.amount = amount;
            }
        }
        if let Some(conflict) = settings.rules.get_mut("state_conflict") {
            // A contradiction of a terminal state is always critical.
            conflict.severity = Severity::Critical;
        }
        settings
    }

    pub(super) fn validate(&self, at: &Locator<'_>) -> Result<(), ConfigError> {
        if !(1..=10_000_000).contains(self.queue_capacity.get_ref()) {
            return Err(at.error(
                self.queue_capacity.span(),
                "monitor.queue_capacity",
                "must be 1 to 10000000",
            ));
        }
        if !(1..=10_000_000).contains(self.max_subjects.get_ref()) {
            return Err(at.error(
                self.max_subjects.span(),
                "monitor.max_subjects",
                "must be 1 to 10000000",
            ));
        }
        for (name, overrides) in &self.rules {
            let field = |key: &str| format!("monitor.rules.{name}.{key}");
            let span = overrides.span();
            if !RULES.contains(&name.as_str()) {
                return Err(at.error(
                    span,
                    format!("monitor.rules.{name}"),
                    format!("unknown rule; the rules are {}", RULES.join(", ")),
                ));
            }
            let o = overrides.get_ref();
            if o.window_s == Some(0) || o.window_s.is_some_and(|w| w > 30 * 86_400) {
                return Err(at.error(span, field("window_s"), "must be 1 to 2592000 seconds"));
            }
            if o.block_s == Some(0) {
                return Err(at.error(span, field("block_s"), "must be at least 1 second"));
            }
            for (key, value) in [("threshold", o.threshold), ("factor", o.factor)] {
                if value.is_some_and(|v| !v.is_finite() || v <= 0.0) {
                    return Err(at.error(span.clone(), field(key), "must be a positive number"));
                }
            }
            if let Some(amount) = &o.amount
                && amount
                    .parse::<rust_decimal::Decimal>()
                    .map_or(true, |a| a < rust_decimal::Decimal::ZERO)
            {
                return Err(at.error(
                    span,
                    field("amount"),
                    format!("\"{amount}\" is not a decimal amount like \"5.00\""),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_hours_parse_and_wrap_midnight() {
        let day = OpeningHours::parse("08:00-22:00", Some("+08:00")).unwrap();
        // 2026-11-26T00:30Z is 08:30 in UTC+8: open; 15:00Z is 23:00 there: closed.
        let midnight_utc = 1_795_651_200_000;
        assert!(day.is_open(midnight_utc + 30 * 60_000));
        assert!(!day.is_open(midnight_utc + 15 * 3_600_000));
        let night = OpeningHours::parse("22:00-06:00", None).unwrap();
        assert!(night.is_open(midnight_utc + 23 * 3_600_000));
        assert!(night.is_open(midnight_utc + 3_600_000));
        assert!(!night.is_open(midnight_utc + 12 * 3_600_000));
        for bad in ["8-22", "08:00", "25:00-26:00", "08:00-08:00", "08:60-09:00"] {
            assert!(OpeningHours::parse(bad, None).is_err(), "{bad}");
        }
        assert!(OpeningHours::parse("08:00-22:00", Some("08:00")).is_err());
        assert!(OpeningHours::parse("08:00-22:00", Some("+15:00")).is_err());
    }

    #[test]
    fn overrides_apply_over_each_rules_defaults() {
        let config: MonitorConfig = toml::from_str(
            "[rules.card_testing]\nthreshold = 3\naction = \"alert\"\n[rules.state_conflict]\nseverity = \"info\"\n",
        )
        .unwrap();
        let settings = config.settings();
        let card = settings.rule("card_testing");
        assert_eq!(card.threshold, 3.0);
        assert_eq!(card.action, Action::Alert);
        assert_eq!(card.severity, Severity::Critical, "kept from the defaults");
        assert_eq!(card.amount.to_string(), "5.00");
        assert_eq!(settings.rule("decline_burst").threshold, 10.0);
        assert_eq!(
            settings.rule("state_conflict").severity,
            Severity::Critical,
            "state conflicts are always critical"
        );
        assert!(
            toml::from_str::<MonitorConfig>("[rules.card_testing]\nthreshhold = 3\n").is_err(),
            "typos are refused"
        );
    }
}
