#!/usr/bin/env python3
"""Writes paygate.json, the Grafana dashboard of paygated (run: python3 ops/grafana/make_dashboard.py).

Each panel is (title, unit, [(expr, legend)]); the e2e suite checks that every metric an
expression names is one the daemon exports (tests/e2e/metrics.rs).
"""
import json
from pathlib import Path

RATE = "$__rate_interval"
DS = {"type": "prometheus", "uid": "${datasource}"}

PAYMENT_ROUTES = 'route=~"/v1/payments.*"'
NOT_OK = 'outcome!="ok"'


def q(metric, extra=""):
    """A selector on the chosen instances, with extra matchers."""
    inner = 'instance=~"$instance"' + (", " + extra if extra else "")
    return metric + "{" + inner + "}"

ROWS = [
    ("Payments", [
        ("Payments by provider and status", "reqps", [
            (f"sum by (provider, status) (rate({q('paygate_payments_total')}[{RATE}]))", "{{provider}} {{status}}"),
        ]),
        ("Refunds by provider and status", "reqps", [
            (f"sum by (provider, status) (rate({q('paygate_refunds_total')}[{RATE}]))", "{{provider}} {{status}}"),
        ]),
        ("Collected (minor units per second)", "short", [
            (f"sum by (currency) (rate({q('paygate_payment_volume_minor_total')}[{RATE}]))", "{{currency}}"),
        ]),
        ("Pending payments", "short", [
            (f"sum({q('paygate_pending_payments')})", "pending"),
            (f"sum({q('paygate_pending_payments_overdue')})", "past their schedule"),
        ]),
        ("Oldest pending payment, janitor lag", "s", [
            (f"max({q('paygate_pending_payment_oldest_age_seconds')})", "oldest pending"),
            (f"max({q('paygate_janitor_lag_seconds')})", "since the janitor's last sweep"),
        ]),
    ]),
    ("Latency", [
        ("API latency p50 / p99 (payments and refunds)", "s", [
            (f'histogram_quantile(0.5, sum by (le) (rate({q("paygate_http_request_duration_seconds_bucket", PAYMENT_ROUTES)}[{RATE}])))', "p50"),
            (f'histogram_quantile(0.99, sum by (le) (rate({q("paygate_http_request_duration_seconds_bucket", PAYMENT_ROUTES)}[{RATE}])))', "p99"),
        ]),
        ("Plugin call latency p99", "s", [
            (f"histogram_quantile(0.99, sum by (plugin, operation, le) (rate({q('paygate_plugin_call_duration_seconds_bucket')}[{RATE}])))", "{{plugin}} {{operation}}"),
        ]),
        ("Plugin calls by outcome", "reqps", [
            (f'sum by (plugin, outcome) (rate({q("paygate_plugin_calls_total", NOT_OK)}[{RATE}]))', "{{plugin}} {{outcome}}"),
        ]),
        ("Requests by status", "reqps", [
            (f"sum by (status) (rate({q('paygate_http_requests_total')}[{RATE}]))", "{{status}}"),
        ]),
    ]),
    ("Store", [
        ("Store flush p99, writer busy", "s", [
            (f"histogram_quantile(0.99, sum by (le) (rate({q('paygate_store_flush_duration_seconds_bucket')}[{RATE}])))", "flush p99"),
            (f"sum(rate({q('paygate_store_writer_busy_seconds_total')}[{RATE}]))", "writer busy (s/s)"),
        ]),
        ("Writes per flush", "short", [
            (f"sum(rate({q('paygate_store_flush_waiters_total')}[{RATE}])) / sum(rate({q('paygate_store_flushes_total')}[{RATE}]))", "durable writes per flush"),
        ]),
        ("Free space on the data dir", "bytes", [
            (f"min({q('paygate_store_free_bytes')})", "free"),
        ]),
        ("Accepting new work", "short", [
            (f"min({q('paygate_store_accepting_new_work')})", "accepting"),
        ]),
    ]),
    ("Webhooks and alerts", [
        ("Webhook backlog", "short", [
            (f"sum({q('paygate_webhook_backlog')})", "waiting"),
        ]),
        ("Webhook deliveries by outcome", "reqps", [
            (f"sum by (endpoint, outcome) (rate({q('paygate_webhook_deliveries_total')}[{RATE}]))", "{{endpoint}} {{outcome}}"),
        ]),
        ("Anomaly alerts raised", "short", [
            (f"sum by (rule, severity) (increase({q('paygate_alerts_total')}[{RATE}]))", "{{rule}} ({{severity}})"),
        ]),
        ("Provider reports refused", "short", [
            (f"sum by (provider, reason) (increase({q('paygate_provider_reports_refused_total')}[{RATE}]))", "{{provider}} {{reason}}"),
        ]),
        ("Second-factor codes and console log-ins", "short", [
            (f"sum by (outcome) (increase({q('paygate_second_factor_checks_total')}[{RATE}]))", "code {{outcome}}"),
            (f"sum by (outcome) (increase({q('paygate_console_logins_total')}[{RATE}]))", "log-in {{outcome}}"),
        ]),
    ]),
    ("Process", [
        ("Resident memory", "bytes", [
            (f"{q('process_resident_memory_bytes')}", "{{instance}}"),
        ]),
        ("CPU", "percentunit", [
            (f"rate({q('process_cpu_seconds_total')}[{RATE}])", "{{instance}}"),
        ]),
        ("Open file descriptors, connections", "short", [
            (f"{q('process_open_fds')}", "fds {{instance}}"),
            (f"sum by (instance, listener) ({q('paygate_connections_open')})", "connections {{listener}}"),
        ]),
        ("Uptime", "s", [
            (f"time() - {q('process_start_time_seconds')}", "{{instance}}"),
        ]),
    ]),
]

panels = []
next_id = 1
y = 0
for row_title, row_panels in ROWS:
    panels.append({"type": "row", "title": row_title, "id": next_id, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    next_id += 1
    y += 1
    for n, (title, unit, targets) in enumerate(row_panels):
        x = (n % 3) * 8
        if n and n % 3 == 0:
            y += 8
        panels.append({
            "type": "timeseries",
            "title": title,
            "id": next_id,
            "datasource": DS,
            "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                        "tooltip": {"mode": "multi"}},
            "targets": [{"datasource": DS, "expr": expr, "legendFormat": legend,
                         "refId": chr(ord("A") + i)} for i, (expr, legend) in enumerate(targets)],
        })
        next_id += 1
    y += 8

dashboard = {
    "uid": "paygate",
    "title": "paygate",
    "description": "paygated: payments, latency, plugins, the store, webhooks, alerts, the process. Generated by ops/grafana/make_dashboard.py.",
    "tags": ["paygate"],
    "timezone": "",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [
        {"type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus",
         "current": {}, "hide": 0},
        {"type": "query", "name": "instance", "label": "Instance", "datasource": DS,
         "query": {"query": "label_values(paygate_store_accepting_new_work, instance)", "refId": "instances"},
         "definition": "label_values(paygate_store_accepting_new_work, instance)",
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "hide": 0},
    ]},
    "panels": panels,
}
out = Path(__file__).resolve().parent / "paygate.json"
out.write_text(json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n")
print(f"wrote {out} ({len(panels)} panels)")
