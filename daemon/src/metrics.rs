//! Prometheus metrics of the daemon, in one registry served at `/metrics`. Labels never
//! carry ids of merchants, payments or keys: only bounded sets (route templates, methods,
//! status codes).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;

use prometheus::core::{Atomic, GenericCounterVec};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds, from 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    http_requests_total: IntCounterVec,
    http_request_duration_seconds: HistogramVec,
    plugin_calls_total: IntCounterVec,
    plugin_call_duration_seconds: HistogramVec,
    plugin_faults_total: IntCounterVec,
    payments_total: IntCounterVec,
    refunds_total: IntCounterVec,
    idempotency_replays_total: IntCounterVec,
    idempotency_conflicts_total: IntCounterVec,
    second_factor_checks_total: IntCounterVec,
    console_logins_total: IntCounterVec,
    store_flushes_total: IntCounterVec,
    store_flush_waiters_total: IntCounterVec,
    store_flush_seconds_total: prometheus::CounterVec,
    store_writer_busy_seconds_total: prometheus::CounterVec,
    store_flush_duration_seconds: HistogramVec,
    payment_volume_minor_total: IntCounterVec,
    events_total: IntCounterVec,
    webhook_deliveries_total: IntCounterVec,
    webhook_backlog: IntGaugeVec,
    pending_payments: IntGaugeVec,
    store_free_bytes: IntGaugeVec,
    store_accepting: IntGaugeVec,
    alerts_total: IntCounterVec,
    monitor_events_total: IntCounterVec,
    monitor_dropped_total: IntCounterVec,
    reports_refused_total: IntCounterVec,
    monitor_lag_seconds: prometheus::Gauge,
    connections_open: IntGaugeVec,
    connections_closed_total: IntCounterVec,
    pending_oldest_age_seconds: prometheus::Gauge,
    pending_overdue: prometheus::IntGauge,
    janitor_lag_seconds: prometheus::Gauge,
    janitor_interval_seconds: prometheus::Gauge,
    janitor: JanitorWatch,
}

/// What the janitor's last sweep saw, for the gauges computed at scrape time.
struct JanitorWatch {
    /// When these metrics were made (the lag before the first sweep counts from here).
    started_ms: i64,
    /// When the last sweep finished (0: none yet).
    last_sweep_ms: AtomicI64,
    /// When the oldest payment pending at the last sweep was created (0: none).
    oldest_pending_ms: AtomicI64,
}

/// The plugin operations that move money, whose outcome series exist from the start.
const MONEY_OPERATIONS: [&str; 5] = [
    "create-payment",
    "query-payment",
    "cancel-payment",
    "refund",
    "query-refund",
];
/// Every outcome label of a plugin call: `ok`, a provider error kind, or a fault kind.
const CALL_OUTCOMES: [&str; 9] = [
    "ok",
    "declined",
    "invalid_request",
    "unavailable",
    "unknown_outcome",
    "trap",
    "timeout",
    "memory",
    "contract",
];
const FAULT_KINDS: [&str; 4] = ["trap", "timeout", "memory", "contract"];
const DELIVERY_OUTCOMES: [&str; 3] = ["delivered", "failed", "abandoned"];
/// What a second-factor check came to (`count_second_factor`).
pub const SECOND_FACTOR_OUTCOMES: [&str; 5] = ["accepted", "missing", "wrong", "reused", "locked"];
/// What a console log-in came to (`count_console_login`).
pub const CONSOLE_LOGIN_OUTCOMES: [&str; 4] = ["ok", "refused", "limited", "form_expired"];
/// Why a verified provider report changed nothing (`count_report_refused`).
const REPORT_REFUSALS: [&str; 3] = ["foreign_object", "amount_mismatch", "archived_object"];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `vec` with a series at zero for each of `values` of its one label.
fn at_zero(vec: IntCounterVec, values: &[&str]) -> IntCounterVec {
    for value in values {
        vec.with_label_values(&[*value]).inc_by(0);
    }
    vec
}

fn plain_gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Gauge {
    let gauge = prometheus::Gauge::new(name, help).expect("valid metric definition");
    registry
        .register(Box::new(gauge.clone()))
        .expect("metric registered once");
    gauge
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), &[]).expect("valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

/// A registered counter: of whole numbers (`IntCounterVec`) or of seconds (`CounterVec`),
/// as the field it fills says.
fn counter<P: Atomic + 'static>(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> GenericCounterVec<P> {
    let metric =
        GenericCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

/// Raises a counter without labels to `total`, a total kept elsewhere (read at scrape time).
fn catch_up<P: Atomic>(metric: &GenericCounterVec<P>, total: P::T) {
    let counter = metric.with_label_values::<&str>(&[]);
    let seen = counter.get();
    if total > seen {
        let mut missing = total;
        missing -= seen;
        counter.inc_by(missing);
    }
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let metric = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        Metrics {
            http_requests_total: counter(
                &registry,
                "paygate_http_requests_total",
                "HTTP requests answered",
                &["route", "method", "status"],
            ),
            http_request_duration_seconds: histogram(
                &registry,
                "paygate_http_request_duration_seconds",
                "Time from receiving a request to answering it",
                &["route"],
            ),
            plugin_calls_total: counter(
                &registry,
                "paygate_plugin_calls_total",
                "Plugin calls, by outcome (ok, a provider error kind, or a fault kind)",
                &["plugin", "operation", "outcome"],
            ),
            plugin_call_duration_seconds: histogram(
                &registry,
                "paygate_plugin_call_duration_seconds",
                "Plugin call time, instantiation and host I/O included",
                &["plugin", "operation"],
            ),
            plugin_faults_total: counter(
                &registry,
                "paygate_plugin_faults_total",
                "Plugin calls that trapped, timed out, ran out of memory or broke the contract",
                &["plugin", "kind"],
            ),
            payments_total: counter(
                &registry,
                "paygate_payments_total",
                "Payment requests answered, by the payment's status in the answer",
                &["provider", "method", "status"],
            ),
            refunds_total: counter(
                &registry,
                "paygate_refunds_total",
                "Refund requests answered, by the refund's status in the answer",
                &["provider", "status"],
            ),
            idempotency_replays_total: counter(
                &registry,
                "paygate_idempotency_replays_total",
                "Requests answered by replaying a stored response",
                &[],
            ),
            idempotency_conflicts_total: counter(
                &registry,
                "paygate_idempotency_conflicts_total",
                "Idempotency keys reused for another request or still in progress",
                &["code"],
            ),
            second_factor_checks_total: at_zero(
                counter(
                    &registry,
                    "paygate_second_factor_checks_total",
                    "Second-factor codes asked for (API and console), by outcome: accepted, missing, wrong, reused, locked (too many wrong ones for the key)",
                    &["outcome"],
                ),
                &SECOND_FACTOR_OUTCOMES,
            ),
            console_logins_total: at_zero(
                counter(
                    &registry,
                    "paygate_console_logins_total",
                    "Console log-ins, by outcome: ok, refused (key or code), limited (too many failures from the client), form_expired",
                    &["outcome"],
                ),
                &CONSOLE_LOGIN_OUTCOMES,
            ),
            store_flushes_total: counter(
                &registry,
                "paygate_store_flushes_total",
                "Store flushes made by the group committer",
                &[],
            ),
            store_flush_waiters_total: counter(
                &registry,
                "paygate_store_flush_waiters_total",
                "Durable writes served by those flushes (waiters / flushes = batch size)",
                &[],
            ),
            store_flush_seconds_total: counter(
                &registry,
                "paygate_store_flush_seconds_total",
                "Time spent flushing the store",
                &[],
            ),
            store_writer_busy_seconds_total: counter(
                &registry,
                "paygate_store_writer_busy_seconds_total",
                "Time the store's single writer was held (changes computed and applied); \
                 a rate near 1 means writes queue behind each other",
                &[],
            ),
            store_flush_duration_seconds: {
                let metric = histogram(
                    &registry,
                    "paygate_store_flush_duration_seconds",
                    "Time one store flush (shared by its group of writers) took",
                    &[],
                );
                // Its buckets exist (at zero) before the first flush.
                metric.with_label_values::<&str>(&[]);
                metric
            },
            payment_volume_minor_total: counter(
                &registry,
                "paygate_payment_volume_minor_total",
                "Money collected by succeeded payments, in minor units of the currency",
                &["currency"],
            ),
            events_total: counter(
                &registry,
                "paygate_events_total",
                "Events recorded, by kind (payment.succeeded, payment.conflict, ...)",
                &["kind"],
            ),
            webhook_deliveries_total: counter(
                &registry,
                "paygate_webhook_deliveries_total",
                "Webhook delivery attempts, by endpoint name and outcome (delivered, failed, abandoned)",
                &["endpoint", "outcome"],
            ),
            webhook_backlog: gauge(
                &registry,
                "paygate_webhook_backlog",
                "Events whose webhook delivery is not finished yet",
            ),
            pending_payments: gauge(
                &registry,
                "paygate_pending_payments",
                "Payments not in a terminal state yet",
            ),
            store_free_bytes: gauge(
                &registry,
                "paygate_store_free_bytes",
                "Bytes free on the data dir's file system (-1 when it is read-only)",
            ),
            store_accepting: gauge(
                &registry,
                "paygate_store_accepting_new_work",
                "1 while the store accepts new payments, refunds and onboarding requests; 0 while the data dir is below its free-space reserve, read-only, or the store has failed",
            ),
            alerts_total: counter(
                &registry,
                "paygate_alerts_total",
                "Alerts raised by the anomaly monitor (repeats within a cool-down not counted)",
                &["rule", "severity"],
            ),
            monitor_events_total: counter(
                &registry,
                "paygate_monitor_events_total",
                "Inputs the anomaly monitor evaluated",
                &[],
            ),
            monitor_dropped_total: counter(
                &registry,
                "paygate_monitor_dropped_total",
                "Inputs the anomaly monitor dropped because it was behind (never back-pressure)",
                &[],
            ),
            reports_refused_total: counter(
                &registry,
                "paygate_provider_reports_refused_total",
                "Verified provider reports (notices, query answers) that changed nothing because they named another merchant's or provider's object (foreign_object) or another amount (amount_mismatch), or contradicted an archived object (archived_object)",
                &["provider", "reason"],
            ),
            monitor_lag_seconds: plain_gauge(
                &registry,
                "paygate_monitor_lag_seconds",
                "Time the last evaluated input waited in the monitor's queue",
            ),
            connections_open: {
                let metric = IntGaugeVec::new(
                    Opts::new(
                        "paygate_connections_open",
                        "Client connections open, by listener (tcp, unix)",
                    ),
                    &["listener"],
                )
                .expect("valid metric definition");
                registry
                    .register(Box::new(metric.clone()))
                    .expect("metric registered once");
                metric
            },
            connections_closed_total: counter(
                &registry,
                "paygate_connections_closed_total",
                "Client connections the daemon closed to bound them, by reason (request_head_timeout, idle_timeout, body_timeout, max_connections, max_connections_per_peer)",
                &["reason"],
            ),
            pending_oldest_age_seconds: plain_gauge(
                &registry,
                "paygate_pending_payment_oldest_age_seconds",
                "Age of the oldest payment not in a terminal state at the janitor's last sweep (0: none)",
            ),
            pending_overdue: {
                let gauge = prometheus::IntGauge::new(
                "paygate_pending_payments_overdue",
                    "Payments past their schedule (a QR code's expiry, the payment-code timeout) that the janitor's last sweep could not end",
                )
                .expect("valid metric definition");
                registry
                    .register(Box::new(gauge.clone()))
                    .expect("metric registered once");
                gauge
            },
            janitor_lag_seconds: plain_gauge(
                &registry,
                "paygate_janitor_lag_seconds",
                "Time since the janitor last finished a sweep (since the start before the first)",
            ),
            janitor_interval_seconds: plain_gauge(
                &registry,
                "paygate_janitor_interval_seconds",
                "How often the janitor sweeps ([payments] janitor_interval_ms)",
            ),
            janitor: JanitorWatch {
                started_ms: now_ms(),
                last_sweep_ms: AtomicI64::new(0),
                oldest_pending_ms: AtomicI64::new(0),
            },
            registry: {
                // The process's own metrics (resident memory, CPU, open fds, start time).
                #[cfg(target_os = "linux")]
                registry
                    .register(Box::new(
                        prometheus::process_collector::ProcessCollector::for_self(),
                    ))
                    .expect("process metrics registered once");
                registry
            },
        }
    }

    /// Makes a loaded plugin's series exist at zero (every outcome of the calls that move
    /// money, every fault kind), so that an alert on their rate sees the first one.
    pub fn init_plugin(&self, plugin: &str) {
        for operation in MONEY_OPERATIONS {
            for outcome in CALL_OUTCOMES {
                self.plugin_calls_total
                    .with_label_values(&[plugin, operation, outcome]);
            }
        }
        for kind in FAULT_KINDS {
            self.plugin_faults_total.with_label_values(&[plugin, kind]);
        }
    }

    /// Makes a provider's refused-report counters exist at zero.
    pub fn init_provider(&self, provider: &str) {
        for reason in REPORT_REFUSALS {
            self.reports_refused_total
                .with_label_values(&[provider, reason]);
        }
    }

    /// Makes a monitor rule's alert counter exist at zero.
    pub fn init_alert_rule(&self, rule: &str, severity: &str) {
        self.alerts_total.with_label_values(&[rule, severity]);
    }

    /// Makes a webhook endpoint's delivery counters exist at zero.
    pub fn init_webhook_endpoint(&self, endpoint: &str) {
        for outcome in DELIVERY_OUTCOMES {
            self.webhook_deliveries_total
                .with_label_values(&[endpoint, outcome]);
        }
    }

    /// The janitor's sweep interval.
    pub fn set_janitor_interval(&self, interval: Duration) {
        self.janitor_interval_seconds.set(interval.as_secs_f64());
    }

    /// A finished sweep: when, the creation time of the oldest payment still pending, and
    /// how many are past their schedule.
    pub fn janitor_swept(&self, at_ms: i64, oldest_pending_ms: Option<i64>, overdue: usize) {
        self.janitor.last_sweep_ms.store(at_ms, Ordering::Relaxed);
        self.janitor
            .oldest_pending_ms
            .store(oldest_pending_ms.unwrap_or(0), Ordering::Relaxed);
        self.pending_overdue.set(overdue as i64);
    }

    /// Sets the janitor's gauges for `now_ms` (called at scrape time).
    pub fn sync_janitor(&self, now_ms: i64) {
        let seconds = |from_ms: i64| (now_ms - from_ms).max(0) as f64 / 1000.0;
        let last = self.janitor.last_sweep_ms.load(Ordering::Relaxed);
        self.janitor_lag_seconds.set(seconds(if last == 0 {
            self.janitor.started_ms
        } else {
            last
        }));
        let oldest = self.janitor.oldest_pending_ms.load(Ordering::Relaxed);
        self.pending_oldest_age_seconds
            .set(if oldest == 0 { 0.0 } else { seconds(oldest) });
    }

    /// The open-connections gauge of one listener (`tcp` or `unix`), for the server to keep.
    pub fn connections_open(&self, listener: &str) -> prometheus::IntGauge {
        self.connections_open.with_label_values(&[listener])
    }

    /// The counter of connections closed for `reason` (a fixed set the server owns).
    pub fn connections_closed(&self, reason: &str) -> prometheus::IntCounter {
        self.connections_closed_total.with_label_values(&[reason])
    }

    pub fn count_alert(&self, rule: &str, severity: &str) {
        self.alerts_total.with_label_values(&[rule, severity]).inc();
    }

    pub fn count_monitor_event(&self) {
        self.monitor_events_total
            .with_label_values::<&str>(&[])
            .inc();
    }

    pub fn count_monitor_dropped(&self, n: u64) {
        self.monitor_dropped_total
            .with_label_values::<&str>(&[])
            .inc_by(n);
    }

    /// Counts a verified provider report that was refused (`reason`: `foreign_object`,
    /// `amount_mismatch`, or `archived_object`: it contradicts an archived object).
    pub fn count_report_refused(&self, provider: &str, reason: &str) {
        self.reports_refused_total
            .with_label_values(&[provider, reason])
            .inc();
    }

    pub fn set_monitor_lag(&self, seconds: f64) {
        self.monitor_lag_seconds.set(seconds);
    }

    /// Counts an answered payment request.
    pub fn count_payment(&self, provider: &str, method: &str, status: &str) {
        self.payments_total
            .with_label_values(&[provider, method, status])
            .inc();
    }

    /// Counts an answered refund request.
    pub fn count_refund(&self, provider: &str, status: &str) {
        self.refunds_total
            .with_label_values(&[provider, status])
            .inc();
    }

    pub fn count_idempotency_replay(&self) {
        self.idempotency_replays_total
            .with_label_values::<&str>(&[])
            .inc();
    }

    pub fn count_second_factor(&self, outcome: &str) {
        self.second_factor_checks_total
            .with_label_values(&[outcome])
            .inc();
    }

    pub fn count_console_login(&self, outcome: &str) {
        self.console_logins_total
            .with_label_values(&[outcome])
            .inc();
    }

    pub fn count_idempotency_conflict(&self, code: &str) {
        self.idempotency_conflicts_total
            .with_label_values(&[code])
            .inc();
    }

    /// Brings the store counters up to the committer's totals (called at scrape time).
    pub fn sync_store(
        &self,
        flushes: u64,
        waiters: u64,
        flush_seconds: f64,
        writer_busy_seconds: f64,
    ) {
        catch_up(&self.store_flushes_total, flushes);
        catch_up(&self.store_flush_waiters_total, waiters);
        catch_up(&self.store_flush_seconds_total, flush_seconds);
        catch_up(&self.store_writer_busy_seconds_total, writer_busy_seconds);
    }

    pub fn observe_store_flush(&self, elapsed: Duration) {
        self.store_flush_duration_seconds
            .with_label_values::<&str>(&[])
            .observe(elapsed.as_secs_f64());
    }

    /// Adds a succeeded payment's amount to its currency's volume.
    pub fn add_payment_volume(&self, currency: &str, minor: i64) {
        if let Ok(minor) = u64::try_from(minor) {
            self.payment_volume_minor_total
                .with_label_values(&[currency])
                .inc_by(minor);
        }
    }

    /// Counts a recorded event; `kind` comes from the code's fixed set of kinds.
    pub fn count_event(&self, kind: &str) {
        self.events_total.with_label_values(&[kind]).inc();
    }

    pub fn count_webhook_delivery(&self, endpoint: &str, outcome: &str) {
        self.webhook_deliveries_total
            .with_label_values(&[endpoint, outcome])
            .inc();
    }

    /// Sets the gauges read from the store (called at scrape time).
    pub fn set_backlogs(&self, webhook_backlog: usize, pending_payments: usize) {
        self.webhook_backlog
            .with_label_values::<&str>(&[])
            .set(webhook_backlog as i64);
        self.pending_payments
            .with_label_values::<&str>(&[])
            .set(pending_payments as i64);
    }

    /// Sets the data dir's gauges (called at scrape time).
    pub fn set_storage(&self, free_bytes: Option<u64>, accepting: bool) {
        self.store_free_bytes
            .with_label_values::<&str>(&[])
            .set(free_bytes.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)));
        self.store_accepting
            .with_label_values::<&str>(&[])
            .set(i64::from(accepting));
    }

    /// Counts one plugin call.
    pub fn observe_plugin_call(
        &self,
        plugin: &str,
        operation: &str,
        outcome: &str,
        elapsed: Duration,
    ) {
        self.plugin_calls_total
            .with_label_values(&[plugin, operation, outcome])
            .inc();
        self.plugin_call_duration_seconds
            .with_label_values(&[plugin, operation])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one plugin fault.
    pub fn count_plugin_fault(&self, plugin: &str, kind: &str) {
        self.plugin_faults_total
            .with_label_values(&[plugin, kind])
            .inc();
    }

    /// Counts one answered HTTP request.
    pub fn observe_http(&self, route: &str, method: &str, status: StatusCode, elapsed: Duration) {
        self.http_requests_total
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        self.http_request_duration_seconds
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding into a Vec cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn the_janitor_gauges_follow_its_sweeps() {
        let metrics = Metrics::new();
        let start = metrics.janitor.started_ms;
        // Before any sweep: the lag counts from the start; nothing known pending.
        metrics.sync_janitor(start + 4_000);
        let text = metrics.render();
        assert_eq!(sample(&text, "paygate_janitor_lag_seconds"), Some(4.0));
        assert_eq!(
            sample(&text, "paygate_pending_payment_oldest_age_seconds"),
            Some(0.0)
        );
        // A sweep that left a payment created at `start` pending, and two overdue.
        metrics.janitor_swept(start + 5_000, Some(start), 2);
        metrics.sync_janitor(start + 6_500);
        let text = metrics.render();
        assert_eq!(sample(&text, "paygate_janitor_lag_seconds"), Some(1.5));
        assert_eq!(
            sample(&text, "paygate_pending_payment_oldest_age_seconds"),
            Some(6.5)
        );
        assert_eq!(sample(&text, "paygate_pending_payments_overdue"), Some(2.0));
        // The next found none pending.
        metrics.janitor_swept(start + 8_000, None, 0);
        metrics.sync_janitor(start + 8_000);
        let text = metrics.render();
        assert_eq!(
            sample(&text, "paygate_pending_payment_oldest_age_seconds"),
            Some(0.0)
        );
        assert_eq!(sample(&text, "paygate_pending_payments_overdue"), Some(0.0));
    }

    #[test]
    fn a_loaded_plugins_series_exist_at_zero() {
        let metrics = Metrics::new();
        metrics.init_plugin("alipay");
        metrics.init_alert_rule("state_conflict", "critical");
        metrics.init_webhook_endpoint("erp");
        let text = metrics.render();
        for series in [
            r#"paygate_plugin_calls_total{operation="refund",outcome="unknown_outcome",plugin="alipay"}"#,
            r#"paygate_plugin_faults_total{kind="timeout",plugin="alipay"}"#,
            r#"paygate_alerts_total{rule="state_conflict",severity="critical"}"#,
            r#"paygate_webhook_deliveries_total{endpoint="erp",outcome="abandoned"}"#,
        ] {
            assert_eq!(sample(&text, series), Some(0.0), "{series}\n{text}");
        }
    }
}
