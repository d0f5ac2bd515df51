//! The rules: pure evaluation of one input against bounded per-subject state. No I/O, no
//! clock (time comes in), so every rule is unit-tested with made-up time.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::Input;
use super::bounded::BoundedMap;
use super::ewma::{Ewma, RateBaseline};
use super::settings::{MonitorSettings, RuleSettings};
use super::window::WindowCounter;
use crate::domain::events::EventKind;
use crate::domain::hours::OpeningHours;
use crate::domain::records::{AlertSubject, EventRecord};

/// What a rule found: the alert to raise (before de-duplication).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: &'static str,
    pub subject: AlertSubject,
    /// What else tells subjects apart for de-duplication when the subject's fields do not
    /// (the source address of failed authentications).
    pub scope: Option<String>,
    pub summary: String,
    pub evidence: Value,
}

impl Finding {
    /// What a `block_terminal` action stops for this finding, as (kind, terminal, key): the
    /// subject's terminal; or, for card testing that spans terminals (or names none), the
    /// subject's API key. Other findings without a terminal place no block.
    pub fn block_target(&self) -> Option<(&'static str, String, Option<String>)> {
        match (&self.subject.terminal_id, &self.subject.api_key_id) {
            (Some(terminal), _) if self.subject.merchant_id.is_some() => {
                Some(("terminal", terminal.clone(), None))
            }
            (None, Some(key)) if self.rule == "card_testing" => {
                Some(("api_key", String::new(), Some(key.clone())))
            }
            _ => None,
        }
    }
}

/// Buckets per sliding window: the window's trailing edge is exact to 1/60 of its length.
const BUCKETS: usize = 60;
/// The decline-rate baseline assumed for a terminal without history.
const DEFAULT_DECLINE_BASELINE: f64 = 0.05;
/// A decline rate under this never alarms, whatever the baseline.
const DECLINE_RATE_FLOOR: f64 = 0.5;

/// The state of every rule.
pub struct Rules {
    settings: BTreeMap<&'static str, RuleSettings>,
    card_testing: WindowCounter<String>,
    /// Card testing per API key, across terminals (and requests naming none).
    card_testing_by_key: WindowCounter<String>,
    declines_by_terminal: WindowCounter<String>,
    declines_by_payer: WindowCounter<String>,
    attempts_by_terminal: WindowCounter<String>,
    failures_by_terminal: WindowCounter<String>,
    decline_baselines: BoundedMap<String, (RateBaseline, i64)>,
    amount_baselines: BoundedMap<String, Ewma>,
    refunds_by_key: WindowCounter<String>,
    collected: WindowCounter<String>,
    refunded: WindowCounter<String>,
    forged: WindowCounter<String>,
    auth_failures: WindowCounter<String>,
    idempotency: WindowCounter<String>,
}

fn ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

impl Rules {
    pub fn new(config: &MonitorSettings) -> Rules {
        let settings = config.rules.clone();
        let max = config.max_subjects;
        let counter = |rule: &str| WindowCounter::new(ms(settings[rule].window_s), BUCKETS, max);
        Rules {
            card_testing: counter("card_testing"),
            card_testing_by_key: counter("card_testing"),
            declines_by_terminal: counter("decline_burst"),
            declines_by_payer: counter("decline_burst"),
            attempts_by_terminal: counter("decline_rate"),
            failures_by_terminal: counter("decline_rate"),
            decline_baselines: BoundedMap::new(max),
            amount_baselines: BoundedMap::new(max),
            refunds_by_key: counter("refund_burst"),
            collected: counter("refund_ratio"),
            refunded: counter("refund_ratio"),
            forged: counter("forged_notifications"),
            auth_failures: counter("credential_abuse"),
            idempotency: counter("idempotency_abuse"),
            settings,
        }
    }

    pub fn settings(&self, rule: &str) -> &RuleSettings {
        &self.settings[rule]
    }

    fn on(&self, rule: &str) -> bool {
        self.settings[rule].enabled
    }

    fn reached(&self, rule: &str, count: i64) -> bool {
        count as f64 >= self.settings[rule].threshold
    }

    /// Forgets subjects whose windows are empty (called now and then).
    pub fn prune(&mut self, now_ms: i64) {
        for counter in [
            &mut self.card_testing,
            &mut self.card_testing_by_key,
            &mut self.declines_by_terminal,
            &mut self.declines_by_payer,
            &mut self.attempts_by_terminal,
            &mut self.failures_by_terminal,
            &mut self.refunds_by_key,
            &mut self.collected,
            &mut self.refunded,
            &mut self.forged,
            &mut self.auth_failures,
            &mut self.idempotency,
        ] {
            counter.prune(now_ms);
        }
    }

    /// Evaluates one input. `opening_hours` finds a merchant's hours.
    pub fn evaluate(
        &mut self,
        input: &Input,
        now_ms: i64,
        opening_hours: &dyn Fn(&str) -> Option<OpeningHours>,
    ) -> Vec<Finding> {
        let mut found = Vec::new();
        match input {
            Input::Event(event) => self.event(event, now_ms, opening_hours, &mut found),
            Input::AuthFailure { source } => {
                if self.on("credential_abuse") {
                    let count = self.auth_failures.add(source.clone(), now_ms, 1);
                    if self.reached("credential_abuse", count) {
                        found.push(Finding {
                            rule: "credential_abuse",
                            subject: AlertSubject::default(),
                            scope: Some(source.clone()),
                            summary: format!(
                                "{count} failed authentications from {source} within {} s",
                                self.settings["credential_abuse"].window_s
                            ),
                            evidence: json!({"source": source, "failures": count}),
                        });
                    }
                }
            }
            Input::IdempotencyConflict { api_key_id, code } => {
                if self.on("idempotency_abuse") {
                    let count = self.idempotency.add(api_key_id.clone(), now_ms, 1);
                    if self.reached("idempotency_abuse", count) {
                        found.push(Finding {
                            rule: "idempotency_abuse",
                            scope: None,
                            subject: AlertSubject {
                                api_key_id: Some(api_key_id.clone()),
                                ..AlertSubject::default()
                            },
                            summary: format!(
                                "{count} idempotency conflicts by API key {api_key_id} within {} s",
                                self.settings["idempotency_abuse"].window_s
                            ),
                            evidence: json!({"conflicts": count, "last_code": code}),
                        });
                    }
                }
            }
            Input::NoticeRejected {
                provider,
                merchant_id,
                reason,
            } => {
                if self.on("forged_notifications") {
                    let count = self.forged.add(provider.clone(), now_ms, 1);
                    if self.reached("forged_notifications", count) {
                        found.push(Finding {
                            rule: "forged_notifications",
                            scope: None,
                            subject: AlertSubject {
                                provider: Some(provider.clone()),
                                merchant_id: Some(merchant_id.clone()),
                                ..AlertSubject::default()
                            },
                            summary: format!(
                                "{count} {provider} notices failed verification within {} s",
                                self.settings["forged_notifications"].window_s
                            ),
                            evidence: json!({"rejected": count, "last_reason": reason}),
                        });
                    }
                }
            }
            Input::ReportRefused {
                provider,
                merchant_id,
                kind,
                object_id,
                reason,
                detail,
            } => {
                // Every one is a finding: a validly signed report that contradicts our books
                // is a leaked key, a confused provider, or an attack.
                if self.on("report_mismatch") {
                    let what = match *reason {
                        "amount_mismatch" => "reported another amount for",
                        _ => "named, from the wrong merchant or provider,",
                    };
                    found.push(Finding {
                        rule: "report_mismatch",
                        scope: Some(format!("{reason}:{object_id}")),
                        subject: AlertSubject {
                            provider: Some(provider.clone()),
                            merchant_id: Some(merchant_id.clone()),
                            ..AlertSubject::default()
                        },
                        summary: format!(
                            "a verified {provider} report {what} {kind} {object_id}; nothing changed"
                        ),
                        evidence: json!({"reason": reason, "kind": kind, "object_id": object_id,
                                         "detail": detail}),
                    });
                }
            }
        }
        found
    }

    /// Card testing: many small payments from one terminal (its block stops the terminal);
    /// or, by one API key, many small payments each from a terminal not seen in the window
    /// before, or naming none (`threshold` x `factor` of them; the block stops the key). A
    /// tester who rotates or omits terminal ids makes every payment such a one; a shop whose
    /// tills share a key does so only for each till's first payment of the window.
    fn card_testing(
        &mut self,
        event: &EventRecord,
        on_terminal: Option<(&String, AlertSubject)>,
        api_key: Option<&str>,
        merchant: &str,
        now_ms: i64,
        found: &mut Vec<Finding>,
    ) {
        let settings = &self.settings["card_testing"];
        let (window_s, limit) = (settings.window_s, settings.amount);
        let key_limit = settings.threshold * settings.factor;
        let terminal_id = on_terminal
            .as_ref()
            .and_then(|(_, s)| s.terminal_id.clone());
        let mut unseen_terminal = true;
        if let Some((key, subject)) = on_terminal {
            let count = self.card_testing.add(key.clone(), now_ms, 1);
            unseen_terminal = count == 1;
            if self.reached("card_testing", count) {
                let terminal = subject.terminal_id.clone().unwrap_or_default();
                found.push(Finding {
                    rule: "card_testing",
                    scope: None,
                    subject,
                    summary: format!(
                        "{count} small payment attempts (<= {limit}) from terminal {terminal} within {window_s} s"
                    ),
                    evidence: json!({"attempts": count, "last_payment": event.object_id}),
                });
                return;
            }
        }
        let Some(key) = api_key.filter(|_| unseen_terminal) else {
            return;
        };
        let count = self.card_testing_by_key.add(key.to_owned(), now_ms, 1);
        if count as f64 >= key_limit {
            found.push(Finding {
                rule: "card_testing",
                scope: Some("api_key".into()),
                subject: AlertSubject {
                    merchant_id: Some(merchant.to_owned()),
                    api_key_id: Some(key.to_owned()),
                    ..AlertSubject::default()
                },
                summary: format!(
                    "{count} small payment attempts (<= {limit}) by API key {key} from new or no terminal ids within {window_s} s"
                ),
                evidence: json!({"attempts": count, "last_payment": event.object_id,
                                 "last_terminal": terminal_id}),
            });
        }
    }

    fn event(
        &mut self,
        event: &EventRecord,
        now_ms: i64,
        opening_hours: &dyn Fn(&str) -> Option<OpeningHours>,
        found: &mut Vec<Finding>,
    ) {
        let fields = event.fields();
        let merchant = fields.merchant_id.unwrap_or_default();
        let terminal = fields.terminal_id;
        let currency = fields.currency.unwrap_or_default();
        let minor = fields.amount_minor.unwrap_or(0);
        let amount = major(minor, &currency);
        let terminal_key = terminal.as_ref().map(|t| format!("{merchant}\0{t}"));
        let terminal_subject = || AlertSubject {
            merchant_id: Some(merchant.clone()),
            terminal_id: terminal.clone(),
            ..AlertSubject::default()
        };
        match event.kind {
            EventKind::PaymentCreated => {
                if self.on("card_testing") && amount <= self.settings["card_testing"].amount {
                    let on_terminal = terminal_key.as_ref().map(|key| (key, terminal_subject()));
                    let api_key = fields.api_key_id.as_deref();
                    self.card_testing(event, on_terminal, api_key, &merchant, now_ms, found);
                }
                if let Some(key) = &terminal_key {
                    self.attempts_by_terminal.add(key.clone(), now_ms, 1);
                }
                if self.on("amount_spike") {
                    let settings = &self.settings["amount_spike"];
                    let (factor, min_count) = (settings.factor, settings.min_count);
                    let baseline = self
                        .amount_baselines
                        .get_or_insert_with(format!("{merchant}\0{currency}"), || Ewma::new(0.05));
                    if let Some(mean) = baseline.mean()
                        && baseline.count() >= min_count
                        && (minor as f64) > factor * mean
                    {
                        found.push(Finding {
                            rule: "amount_spike",
                            scope: None,
                            subject: AlertSubject {
                                merchant_id: Some(merchant.clone()),
                                terminal_id: terminal.clone(),
                                ..AlertSubject::default()
                            },
                            summary: format!(
                                "payment of {amount} {currency} is over {factor}x the merchant's usual {:.2}",
                                mean / 10f64.powi(exponent(&currency) as i32)
                            ),
                            evidence: json!({"payment": event.object_id, "amount_minor": minor,
                                             "baseline_minor": mean.round(), "factor": factor}),
                        });
                    }
                    baseline.observe(minor as f64);
                }
                if self.on("off_hours")
                    && let Some(hours) = opening_hours(&merchant)
                {
                    let at = fields.created_at_ms.unwrap_or(now_ms);
                    if !hours.is_open(at) {
                        found.push(Finding {
                            rule: "off_hours",
                            scope: None,
                            subject: terminal_subject(),
                            summary: format!(
                                "payment {} created outside merchant {merchant}'s opening hours",
                                event.object_id
                            ),
                            evidence: json!({"payment": event.object_id, "created_at_ms": at}),
                        });
                    }
                }
            }
            EventKind::PaymentFailed => {
                let payer = fields.payer;
                if self.on("decline_burst") {
                    let mut subjects = Vec::new();
                    if let Some(key) = &terminal_key {
                        let count = self.declines_by_terminal.add(key.clone(), now_ms, 1);
                        subjects.push((count, terminal_subject(), "terminal"));
                    }
                    if let Some(payer) = &payer {
                        let key = format!("{merchant}\0{payer}");
                        let count = self.declines_by_payer.add(key, now_ms, 1);
                        let subject = AlertSubject {
                            merchant_id: Some(merchant.clone()),
                            payer: Some(payer.clone()),
                            ..AlertSubject::default()
                        };
                        subjects.push((count, subject, "payer"));
                    }
                    for (count, subject, by) in subjects {
                        if self.reached("decline_burst", count) {
                            found.push(Finding {
                                rule: "decline_burst",
                                scope: None,
                                subject,
                                summary: format!(
                                    "{count} declined payments by one {by} within {} s",
                                    self.settings["decline_burst"].window_s
                                ),
                                evidence: json!({"declines": count, "last_payment": event.object_id}),
                            });
                        }
                    }
                }
                if let Some(key) = &terminal_key {
                    let failures = self.failures_by_terminal.add(key.clone(), now_ms, 1);
                    if self.on("decline_rate")
                        && let Some(finding) =
                            self.decline_rate(key, failures, now_ms, terminal_subject())
                    {
                        found.push(finding);
                    }
                }
            }
            EventKind::PaymentSucceeded if self.on("refund_ratio") => {
                self.collected
                    .add(format!("{merchant}\0{currency}"), now_ms, minor);
            }
            EventKind::RefundCreated if self.on("refund_burst") => {
                let window_s = self.settings["refund_burst"].window_s;
                let mut subjects = Vec::new();
                if let Some(key) = fields.api_key_id {
                    let count = self.refunds_by_key.add(key.clone(), now_ms, 1);
                    let subject = AlertSubject {
                        merchant_id: Some(merchant.clone()),
                        api_key_id: Some(key.clone()),
                        ..AlertSubject::default()
                    };
                    subjects.push((count, subject, format!("API key {key}")));
                }
                // The refunded payment's terminal (carried in the event's data).
                if let Some(terminal) = event.data.get("terminal_id").and_then(Value::as_str) {
                    let key = format!("terminal\0{merchant}\0{terminal}");
                    let count = self.refunds_by_key.add(key, now_ms, 1);
                    let subject = AlertSubject {
                        merchant_id: Some(merchant.clone()),
                        terminal_id: Some(terminal.to_owned()),
                        ..AlertSubject::default()
                    };
                    subjects.push((count, subject, format!("terminal {terminal}")));
                }
                for (count, subject, by) in subjects {
                    if self.reached("refund_burst", count) {
                        found.push(Finding {
                            rule: "refund_burst",
                            scope: None,
                            subject,
                            summary: format!("{count} refunds by {by} within {window_s} s"),
                            evidence: json!({"refunds": count, "last_refund": event.object_id}),
                        });
                    }
                }
            }
            EventKind::RefundSucceeded if self.on("refund_ratio") => {
                let key = format!("{merchant}\0{currency}");
                let refunded = self.refunded.add(key.clone(), now_ms, minor);
                let collected = self.collected.sum(&key, now_ms);
                let settings = &self.settings["refund_ratio"];
                let ratio = refunded as f64 / collected.max(1) as f64;
                if major(collected, &currency) >= settings.amount && ratio > settings.threshold {
                    found.push(Finding {
                            rule: "refund_ratio",
                            scope: None,
                            subject: AlertSubject {
                                merchant_id: Some(merchant.clone()),
                                ..AlertSubject::default()
                            },
                            summary: format!(
                                "merchant {merchant} refunded {:.0} % of what it collected in {currency} within {} s",
                                ratio * 100.0,
                                settings.window_s
                            ),
                            evidence: json!({"refunded_minor": refunded, "collected_minor": collected,
                                             "ratio": ratio, "last_refund": event.object_id}),
                        });
                }
            }
            EventKind::ReconciliationCompleted => {
                let count = event.data["discrepancies"].as_u64().unwrap_or(0);
                let critical = event.data["critical"].as_u64().unwrap_or(0);
                let rule = if critical > 0 {
                    "reconciliation_critical"
                } else {
                    "reconciliation_discrepancy"
                };
                // The event names its run's merchant and provider itself.
                let named = |field: &str| event.data[field].as_str().map(str::to_owned);
                let merchant = named("merchant_id").unwrap_or(merchant);
                if count > 0 && self.on(rule) {
                    found.push(Finding {
                        rule,
                        scope: None,
                        subject: AlertSubject {
                            merchant_id: Some(merchant.clone()),
                            provider: named("provider").or(fields.provider),
                            ..AlertSubject::default()
                        },
                        summary: format!(
                            "reconciling {merchant}'s {} bill of {} found {count} discrepancies ({critical} critical)",
                            event.data["provider"].as_str().unwrap_or("?"),
                            event.data["date"].as_str().unwrap_or("?"),
                        ),
                        evidence: json!({"reconciliation": event.object_id, "event": event.id,
                                         "discrepancies": count, "critical": critical}),
                    });
                }
            }
            EventKind::PaymentConflict | EventKind::RefundConflict if self.on("state_conflict") => {
                found.push(Finding {
                    rule: "state_conflict",
                    scope: None,
                    subject: AlertSubject {
                        merchant_id: Some(merchant.clone()),
                        terminal_id: terminal.clone(),
                        provider: fields.provider,
                        ..AlertSubject::default()
                    },
                    summary: format!(
                        "the provider reported {} for {} {}, which is already {}",
                        event.data["reported"].as_str().unwrap_or("?"),
                        if event.kind == EventKind::RefundConflict {
                            "refund"
                        } else {
                            "payment"
                        },
                        event.object_id,
                        event.data["status"].as_str().unwrap_or("?"),
                    ),
                    evidence: json!({"object_id": event.object_id, "event": event.id,
                                         "report": event.data}),
                });
            }
            _ => {}
        }
    }

    /// The decline-rate rule for one terminal after a failure; also rolls the terminal's
    /// baseline over once per window.
    fn decline_rate(
        &mut self,
        key: &str,
        failures: i64,
        now_ms: i64,
        subject: AlertSubject,
    ) -> Option<Finding> {
        let settings = self.settings["decline_rate"].clone();
        let attempts = self
            .attempts_by_terminal
            .sum(&key.to_owned(), now_ms)
            .max(failures);
        let ratio = failures as f64 / attempts.max(1) as f64;
        let (baseline, period_start) = self
            .decline_baselines
            .get_or_insert_with(key.to_owned(), || (RateBaseline::new(0.2), now_ms));
        let reference = baseline.baseline().unwrap_or(DEFAULT_DECLINE_BASELINE);
        if now_ms - *period_start >= ms(settings.window_s) {
            // One observation per window keeps the baseline about normal times.
            baseline.observe_ratio(ratio);
            *period_start = now_ms;
        }
        let alarming = attempts as u64 >= settings.min_count
            && ratio > DECLINE_RATE_FLOOR
            && ratio > settings.factor * reference;
        alarming.then(|| Finding {
            rule: "decline_rate",
            scope: None,
            subject,
            summary: format!(
                "{:.0} % of the terminal's {attempts} payments declined within {} s (usually {:.0} %)",
                ratio * 100.0,
                settings.window_s,
                reference * 100.0
            ),
            evidence: json!({"declines": failures, "attempts": attempts, "ratio": ratio,
                             "baseline": reference}),
        })
    }
}

fn exponent(currency: &str) -> u32 {
    crate::domain::money::Currency::from_code(currency).map_or(2, |c| c.exponent() as u32)
}

/// `minor` units of `currency` as a decimal amount in major units.
fn major(minor: i64, currency: &str) -> Decimal {
    Decimal::new(minor, exponent(currency))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::records::Snapshot;

    fn config(toml_text: &str) -> MonitorSettings {
        toml::from_str::<crate::config::MonitorConfig>(toml_text)
            .unwrap()
            .settings()
    }

    fn payment_event(
        kind: &str,
        id: &str,
        terminal: &str,
        minor: i64,
        payer: Option<&str>,
    ) -> Input {
        Input::Event(Arc::new(EventRecord {
            id: format!("evt_{id}_{kind}"),
            kind: EventKind::parse(kind).expect("a known kind"),
            created_at_ms: 0,
            object_id: id.into(),
            data: json!({"status": "x"}),
            object_version: 0,
            object: Some(Snapshot::of(
                &json!({"merchant_id": "m_a", "terminal_id": terminal, "amount_minor": minor,
                                "currency": "CNY", "payer": payer, "provider": "mock",
                                "api_key_id": "key_pos", "created_at_ms": 1_000}),
            )),
        }))
    }

    fn no_hours(_: &str) -> Option<OpeningHours> {
        None
    }

    #[test]
    fn card_testing_counts_small_attempts_per_terminal_within_the_window() {
        let mut rules = Rules::new(&config(
            "[rules.card_testing]\nthreshold = 3\nwindow_s = 60\n",
        ));
        let mut fired = Vec::new();
        for (i, (terminal, minor, at)) in [
            ("T1", 100, 0),
            ("T1", 100_000, 1_000), // not small: not counted
            ("T2", 100, 2_000),     // another terminal
            ("T1", 100, 3_000),
            ("T1", 100, 4_000), // the third small one
        ]
        .into_iter()
        .enumerate()
        {
            let input = payment_event(
                "payment.created",
                &format!("pay_{i}"),
                terminal,
                minor,
                None,
            );
            fired.extend(rules.evaluate(&input, at, &no_hours));
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].rule, "card_testing");
        assert_eq!(fired[0].subject.terminal_id.as_deref(), Some("T1"));
        // Outside the window the count starts over.
        let late = payment_event("payment.created", "pay_late", "T1", 100, None);
        assert!(rules.evaluate(&late, 200_000, &no_hours).is_empty());
    }

    #[test]
    fn card_testing_by_one_key_counts_new_terminals_and_none_but_not_busy_tills() {
        let mut rules = Rules::new(&config(
            "[rules.card_testing]\nthreshold = 3\nfactor = 2\nwindow_s = 60\n",
        ));
        // A shop's two tills share a key: after each till's first, nothing counts for the key.
        let mut fired = Vec::new();
        for i in 0..10 {
            let till = if i % 2 == 0 { "T1" } else { "T2" };
            let input = payment_event("payment.created", &format!("s{i}"), till, 100, None);
            fired.extend(rules.evaluate(&input, i * 10_000, &no_hours));
        }
        assert!(
            fired.iter().all(|f| f.scope.is_none()),
            "only the tills' own alerts: {fired:?}"
        );
        // Rotating the terminal id: every payment is from a terminal new in the window.
        let mut rules = Rules::new(&config(
            "[rules.card_testing]\nthreshold = 3\nfactor = 2\nwindow_s = 60\n",
        ));
        let mut fired = Vec::new();
        for i in 0..6 {
            let input = payment_event(
                "payment.created",
                &format!("r{i}"),
                &format!("X{i}"),
                100,
                None,
            );
            fired.extend(rules.evaluate(&input, i, &no_hours));
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].scope.as_deref(), Some("api_key"));
        assert_eq!(fired[0].subject.api_key_id.as_deref(), Some("key_pos"));
        assert_eq!(fired[0].subject.terminal_id, None);
        assert_eq!(
            fired[0].block_target(),
            Some(("api_key", String::new(), Some("key_pos".into())))
        );
    }

    #[test]
    fn disabled_rules_never_fire_and_conflicts_always_do() {
        let mut rules = Rules::new(&config("[rules.credential_abuse]\nenabled = false\n"));
        for i in 0..50 {
            let input = Input::AuthFailure {
                source: "10.0.0.1".into(),
            };
            assert!(rules.evaluate(&input, i, &no_hours).is_empty());
        }
        let conflict = payment_event("payment.conflict", "pay_1", "T1", 100, None);
        let found = rules.evaluate(&conflict, 0, &no_hours);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, "state_conflict");
        assert_eq!(found[0].evidence["object_id"], "pay_1");
    }

    #[test]
    fn a_reconciliation_with_discrepancies_alerts_critical_ones_critically() {
        let mut rules = Rules::new(&config(""));
        let run = |discrepancies: u64, critical: u64| EventRecord {
            id: format!("evt_{discrepancies}_{critical}"),
            kind: EventKind::ReconciliationCompleted,
            created_at_ms: 0,
            object_id: "rec_1".into(),
            data: json!({"merchant_id": "m_a", "provider": "alipay", "date": "2026-12-07",
                         "discrepancies": discrepancies, "critical": critical}),
            object_version: 1,
            object: Some(crate::domain::records::Snapshot::of(
                &json!({"merchant_id": "m_a", "provider": "alipay"}),
            )),
        };
        assert!(
            rules
                .evaluate(&Input::Event(std::sync::Arc::new(run(0, 0))), 0, &no_hours)
                .is_empty()
        );
        let found = rules.evaluate(&Input::Event(std::sync::Arc::new(run(2, 0))), 0, &no_hours);
        assert_eq!(found[0].rule, "reconciliation_discrepancy");
        assert_eq!(found[0].subject.merchant_id.as_deref(), Some("m_a"));
        let found = rules.evaluate(&Input::Event(std::sync::Arc::new(run(3, 1))), 0, &no_hours);
        assert_eq!(found[0].rule, "reconciliation_critical");
        assert_eq!(found[0].evidence["reconciliation"], "rec_1");
    }

    #[test]
    fn amount_spike_needs_a_baseline_first() {
        let mut rules = Rules::new(&config("[rules.amount_spike]\nmin_count = 5\nfactor = 5\n"));
        let mut fired = Vec::new();
        for i in 0..5 {
            let input = payment_event("payment.created", &format!("p{i}"), "T1", 1_000, None);
            fired.extend(rules.evaluate(&input, i, &no_hours));
        }
        assert!(fired.is_empty(), "no alarm while the baseline builds");
        let spike = payment_event("payment.created", "big", "T1", 10_000, None);
        let found = rules.evaluate(&spike, 10, &no_hours);
        assert_eq!(
            found.iter().map(|f| f.rule).collect::<Vec<_>>(),
            ["amount_spike"]
        );
    }

    #[test]
    fn off_hours_uses_the_merchants_hours() {
        let mut rules = Rules::new(&MonitorSettings::default());
        let closed = |_: &str| OpeningHours::parse("12:00-13:00", None).ok();
        let input = payment_event("payment.created", "p", "T1", 1_000, None);
        let found = rules.evaluate(&input, 0, &closed);
        assert!(found.iter().any(|f| f.rule == "off_hours"), "{found:?}");
        let open = |_: &str| OpeningHours::parse("00:00-23:59", None).ok();
        assert!(rules.evaluate(&input, 0, &open).is_empty());
    }
}
