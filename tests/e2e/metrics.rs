//! `/metrics`: Prometheus text that counts the requests just made, by route template.

use crate::support::*;

/// One sample: metric name, labels, value.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses the Prometheus text format strictly enough to catch a broken exposition:
/// returns `(name, labels, value)` for every sample.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            let kind = words.next().unwrap();
            assert!(matches!(kind, "HELP" | "TYPE"), "bad comment line: {line}");
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), Vec::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair
                            .split_once("=\"")
                            .unwrap_or_else(|| panic!("bad label: {line}"));
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let daemon = Daemon::start();
    for _ in 0..3 {
        daemon.get("/v1/merchants/m_demo", Some(ERP)).await;
    }
    daemon.get("/v1/merchants/m_other", Some(ADMIN)).await;
    daemon.get("/v1/merchants/m_demo", None).await;
    daemon.get("/no/such/route/pay_123", None).await;

    let text = daemon.metrics().await;
    let samples = parse_prometheus(&text);
    let route = ("route", "/v1/merchants/{id}");
    assert_eq!(
        value(
            &samples,
            "paygate_http_requests_total",
            &[route, ("method", "GET"), ("status", "200")]
        ),
        4.0
    );
    assert_eq!(
        value(
            &samples,
            "paygate_http_requests_total",
            &[route, ("status", "401")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "paygate_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "paygate_http_request_duration_seconds_count",
            &[route]
        ),
        5.0
    );
    assert!(
        value(
            &samples,
            "paygate_http_request_duration_seconds_bucket",
            &[route, ("le", "+Inf")]
        ) >= 5.0
    );
    // The plugin host's metrics: the mock's `info` call at load is counted.
    assert!(
        value(
            &samples,
            "paygate_plugin_calls_total",
            &[("plugin", "mock"), ("operation", "info"), ("outcome", "ok")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        value(
            &samples,
            "paygate_plugin_call_duration_seconds_count",
            &[("plugin", "mock")]
        ) >= 1.0
    );
    // No raw paths or ids in labels.
    assert!(
        !text.contains("m_demo") && !text.contains("pay_123"),
        "{text}"
    );
}

/// The metric names (`paygate_*`, `process_*`) in PromQL expressions.
fn metric_names<'a>(
    expressions: impl Iterator<Item = &'a str>,
) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for expression in expressions {
        let mut word = String::new();
        for c in expression.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
            } else {
                if word.starts_with("paygate_") || word.starts_with("process_") {
                    names.insert(word.clone());
                }
                word.clear();
            }
        }
    }
    names
}

/// The metric names the expressions of `ops/prometheus/paygate-rules.yml` use (`expr:`
/// lines, and the indented lines of a multi-line `expr: |`).
fn rule_metrics() -> std::collections::BTreeSet<String> {
    let text =
        std::fs::read_to_string(repo_root().join("ops/prometheus/paygate-rules.yml")).unwrap();
    let mut expressions = Vec::new();
    let mut in_expr = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("expr:") {
            in_expr = rest.trim() == "|";
            expressions.push(rest.to_owned());
        } else if in_expr && line.starts_with("          ") {
            expressions.push(trimmed.to_owned());
        } else {
            in_expr = false;
        }
    }
    metric_names(expressions.iter().map(String::as_str))
}

/// The metric names the queries of the Grafana dashboard (`ops/grafana/paygate.json`) use.
fn dashboard_metrics() -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(repo_root().join("ops/grafana/paygate.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let expressions: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    metric_names(expressions.iter().map(String::as_str))
}

/// Every metric the alert rules name is in a fresh daemon's exposition, before any traffic:
/// the labelled series the rules rate exist at zero (a plugin's error outcomes, the
/// monitor's critical alerts), so the first failure or alert moves a rate.
#[tokio::test]
async fn the_alert_rules_name_only_metrics_a_fresh_daemon_exports() {
    let daemon = Daemon::start();
    let text = daemon.metrics().await;
    let samples = parse_prometheus(&text);
    let names = rule_metrics();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        assert!(
            samples.iter().any(|s| &s.name == name),
            "{name} (named by an alert rule) is not exported:\n{text}"
        );
    }
    let series = |name: &str, labels: &[(&str, &str)]| {
        samples.iter().any(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    };
    for plugin in ["mock", "alipay", "wechatpay"] {
        for outcome in ["ok", "unavailable", "unknown_outcome", "timeout"] {
            assert!(
                series(
                    "paygate_plugin_calls_total",
                    &[
                        ("plugin", plugin),
                        ("operation", "create-payment"),
                        ("outcome", outcome)
                    ]
                ),
                "{plugin} {outcome}"
            );
        }
    }
    assert_eq!(
        value(
            &samples,
            "paygate_plugin_calls_total",
            &[("operation", "refund"), ("outcome", "unavailable")]
        ),
        0.0
    );
    assert!(series(
        "paygate_alerts_total",
        &[("rule", "state_conflict"), ("severity", "critical")]
    ));
    // The janitor's gauges: it sweeps every `janitor_interval_ms` (3 s in the tests'
    // config); nothing is pending.
    assert_eq!(
        value(&samples, "paygate_janitor_interval_seconds", &[]),
        3.0
    );
    assert_eq!(
        value(&samples, "paygate_pending_payment_oldest_age_seconds", &[]),
        0.0
    );
    assert!(value(&samples, "process_start_time_seconds", &[]) > 1.7e9);
    assert!(value(&samples, "process_resident_memory_bytes", &[]) > 0.0);
}

/// The janitor's sweeps show in its gauges: the lag since the last sweep stays under a few
/// intervals, and a QR payment still pending (nobody scanned it) is the oldest pending one.
#[tokio::test]
async fn the_janitor_reports_its_lag_and_the_oldest_pending_payment() {
    let daemon = Daemon::start();
    // The mock keeps a payment of x.60 pending however often the janitor asks (any other
    // amount it reports paid, and a sweep that came late would end it before it was seen).
    let (status, _, payment) = daemon
        .pay(
            "metrics-oldest",
            serde_json::json!({"merchant_id": "m_demo", "amount": "3.60", "currency": "CNY",
                               "method": "qr", "provider": "mock"}),
        )
        .await;
    assert_eq!((status, payment["status"].as_str()), (201, Some("pending")));
    // A sweep (3 s apart in the tests' config) has seen it, and 3 s have passed. The bound
    // only stops a broken janitor from hanging the suite.
    let mut age = 0.0;
    for _ in 0..600 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let samples = parse_prometheus(&daemon.metrics().await);
        age = value(&samples, "paygate_pending_payment_oldest_age_seconds", &[]);
        if age >= 3.0 {
            let lag = value(&samples, "paygate_janitor_lag_seconds", &[]);
            assert!(lag < 9.0, "lag {lag}");
            assert_eq!(
                value(&samples, "paygate_pending_payments_overdue", &[]),
                0.0
            );
            return;
        }
    }
    panic!("the oldest pending payment's age never reached 3 s: {age}");
}

/// Every metric the Grafana dashboard's queries name is exported by a daemon that has taken
/// a payment, refunded it, and has a webhook endpoint.
#[tokio::test]
async fn the_dashboard_names_only_metrics_the_daemon_exports() {
    let config = default_config_text();
    assert!(config.contains("\ntimeout_ms = 10000\n"));
    let config = config.replacen(
        "\ntimeout_ms = 10000\n",
        "\ntimeout_ms = 10000\n\n[[webhooks.endpoints]]\nname = \"erp\"\nurl = \"http://127.0.0.1:9/hooks\"\nsecret = \"inline:whsec_dashboard\"\n",
        1,
    );
    let daemon = Daemon::with_config(config);
    let (status, _, paid) = daemon.pay("dashboard-pay", barcode("8.00")).await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (201, Some("succeeded")),
        "{paid}"
    );
    let id = paid["id"].as_str().unwrap();
    let (status, _, refund) = daemon
        .post_idempotent(
            &format!("/v1/payments/{id}/refunds"),
            ERP,
            Some("dashboard-refund"),
            &serde_json::json!({"amount": "1.00"}),
        )
        .await;
    assert_eq!(status, 201, "{refund}");
    let text = daemon.metrics().await;
    let samples = parse_prometheus(&text);
    let names = dashboard_metrics();
    assert!(names.len() >= 20, "{names:?}");
    for name in &names {
        assert!(
            samples.iter().any(|s| &s.name == name),
            "{name} (in the dashboard) is not exported:\n{text}"
        );
    }
}
