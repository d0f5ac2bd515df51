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
