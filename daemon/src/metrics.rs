//! Prometheus metrics of the daemon, in one registry served at `/metrics`. Labels never
//! carry ids of merchants, payments or keys: only bounded sets (route templates, methods,
//! status codes).

use std::time::Duration;

use axum::http::StatusCode;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds, from 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    http_requests_total: IntCounterVec,
    http_request_duration_seconds: HistogramVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let http_requests_total = IntCounterVec::new(
            Opts::new("paygate_http_requests_total", "HTTP requests answered"),
            &["route", "method", "status"],
        )
        .expect("valid metric definition");
        let http_request_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "paygate_http_request_duration_seconds",
                "Time from receiving a request to answering it",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(http_requests_total.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(http_request_duration_seconds.clone()))
            .expect("metric registered once");
        Metrics {
            registry,
            http_requests_total,
            http_request_duration_seconds,
        }
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
