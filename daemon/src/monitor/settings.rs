//! The monitor's settings: its switches, queue and memory bounds, and each rule's effective
//! settings (defaults in code, overridden by `[monitor.rules.<rule>]`, see `config/`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The rules the monitor knows, in the order they are documented.
pub const RULES: &[&str] = &[
    "card_testing",
    "decline_burst",
    "decline_rate",
    "amount_spike",
    "refund_burst",
    "refund_ratio",
    "off_hours",
    "forged_notifications",
    "report_mismatch",
    "credential_abuse",
    "idempotency_abuse",
    "state_conflict",
    "reconciliation_discrepancy",
    "reconciliation_critical",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Raise the alert only.
    Alert,
    /// Also refuse new payments from the terminal for `block_s`.
    BlockTerminal,
}

/// A rule's effective settings: its defaults with the config's overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSettings {
    pub enabled: bool,
    pub severity: Severity,
    pub action: Action,
    pub block_s: u64,
    pub cooldown_s: u64,
    pub window_s: u64,
    pub threshold: f64,
    pub factor: f64,
    pub min_count: u64,
    /// A decimal amount in major units (e.g. "5.00").
    pub amount: rust_decimal::Decimal,
}

/// `rule`'s settings when the config says nothing about it.
pub fn defaults(rule: &str) -> RuleSettings {
    let base = RuleSettings {
        enabled: true,
        severity: Severity::Warning,
        action: Action::Alert,
        block_s: 900,
        cooldown_s: 600,
        window_s: 60,
        threshold: 10.0,
        factor: 3.0,
        min_count: 20,
        amount: rust_decimal::Decimal::ZERO,
    };
    match rule {
        "card_testing" => RuleSettings {
            severity: Severity::Critical,
            action: Action::BlockTerminal,
            amount: rust_decimal::Decimal::new(500, 2),
            ..base
        },
        "decline_rate" => RuleSettings {
            window_s: 3600,
            ..base
        },
        "amount_spike" => RuleSettings {
            factor: 10.0,
            ..base
        },
        "refund_burst" => RuleSettings {
            window_s: 3600,
            ..base
        },
        "refund_ratio" => RuleSettings {
            window_s: 86_400,
            threshold: 0.5,
            amount: rust_decimal::Decimal::new(10_000, 2),
            ..base
        },
        "off_hours" => RuleSettings {
            severity: Severity::Info,
            ..base
        },
        "forged_notifications" => RuleSettings {
            severity: Severity::Critical,
            window_s: 300,
            threshold: 3.0,
            ..base
        },
        "report_mismatch" => RuleSettings {
            severity: Severity::Critical,
            threshold: 1.0,
            ..base
        },
        "credential_abuse" => RuleSettings {
            severity: Severity::Critical,
            ..base
        },
        "idempotency_abuse" => RuleSettings {
            window_s: 300,
            ..base
        },
        "state_conflict" => RuleSettings {
            severity: Severity::Critical,
            threshold: 1.0,
            ..base
        },
        "reconciliation_critical" => RuleSettings {
            severity: Severity::Critical,
            ..base
        },
        _ => base,
    }
}

/// `[monitor]`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSettings {
    pub enabled: bool,
    /// Inputs waiting for the monitor; when full, new input is dropped (and counted), never
    /// waited for: the monitor must not slow payments.
    pub queue_capacity: usize,
    /// Subjects remembered per rule; the least recently seen are forgotten beyond this.
    pub max_subjects: usize,
    /// Every rule of [`RULES`], with its effective settings.
    pub rules: BTreeMap<&'static str, RuleSettings>,
}

impl Default for MonitorSettings {
    fn default() -> MonitorSettings {
        MonitorSettings {
            enabled: true,
            queue_capacity: 65_536,
            max_subjects: 10_000,
            rules: RULES.iter().map(|r| (*r, defaults(r))).collect(),
        }
    }
}

impl MonitorSettings {
    /// The settings of `rule` (one of [`RULES`]).
    pub fn rule(&self, rule: &str) -> &RuleSettings {
        &self.rules[rule]
    }
}
