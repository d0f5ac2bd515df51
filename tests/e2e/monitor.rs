//! The real-time anomaly monitor (API.md §10) against the real daemon with the mock wallet:
//! each rule raised through the public API, dedup and disabled rules, terminal blocks, the
//! alert list, its event stream, acks, `alert.raised` webhooks, and a normal day of traffic
//! that raises nothing.
//!
//! The monitor reads the event stream after the triggering response is sent, so every
//! assertion about alerts polls (`wait_for_alerts` and friends) rather than expecting them at
//! once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::*;

/// The ids of the `POS` and `ERP` keys in config/paygate.toml.
const POS_KEY_ID: &str = "key_demo_pos";
const ERP_KEY_ID: &str = "key_demo_erp";
/// The secret of the webhook endpoint that receives alerts.
const WEBHOOK_SECRET: &str = "whsec_monitor_e2e";
/// How long a test gives the monitor: 100 steps of 100 ms.
const WAIT_STEPS: usize = 100;
const WAIT_STEP: Duration = Duration::from_millis(100);

// ----------------------------------------------------------------------------------------
// Config

/// The tests' config with `[monitor.rules.<rule>]` tables appended at its end. Values are
/// TOML literals: `("threshold", "3")`, `("action", "\"alert\"")`, `("enabled", "false")`.
fn config_with_rules(rules: &[(&str, &[(&str, &str)])]) -> String {
    let mut config = default_config_text();
    for (rule, settings) in rules {
        config.push_str(&format!("\n[monitor.rules.{rule}]\n"));
        for (key, value) in settings.iter() {
            config.push_str(&format!("{key} = {value}\n"));
        }
    }
    config
}

/// Gives m_demo opening hours (`"HH:MM-HH:MM"`, local time at `utc_offset`).
fn with_opening_hours(config: String, hours: &str, utc_offset: &str) -> String {
    let anchor = "name = \"Demo Coffee\"\n";
    assert!(
        config.contains(anchor),
        "m_demo's entry changed in config/paygate.toml"
    );
    config.replacen(
        anchor,
        &format!("{anchor}opening_hours = \"{hours}\"\nutc_offset = \"{utc_offset}\"\n"),
        1,
    )
}

/// Adds a webhook endpoint on `port` that wants only `alert.raised`.
fn with_alert_endpoint(mut config: String, port: u16) -> String {
    config.push_str(&format!(
        "\n[[webhooks.endpoints]]\nname = \"alerts\"\nurl = \"http://127.0.0.1:{port}/hooks\"\nsecret = \"inline:{WEBHOOK_SECRET}\"\nevents = [\"alert.raised\"]\n"
    ));
    config
}

/// The hour of the day now, in UTC.
fn utc_hour_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        % 24
}

/// Opening hours of `length` hours from `start` o'clock (any hour count: taken modulo 24),
/// wrapping midnight where they must, e.g. `"22:00-06:00"`.
fn hours_from(start: u64, length: u64) -> String {
    format!("{:02}:00-{:02}:00", start % 24, (start + length) % 24)
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text.find(needle).unwrap_or_else(|| panic!("no {needle:?}"));
    text[..at].matches('\n').count() + 1
}

// ----------------------------------------------------------------------------------------
// Requests

/// An 18-digit mock payment code of payer number `n`.
fn payer_code(n: u64) -> String {
    format!("99{n:016}")
}

/// Pays `amount` by barcode at `terminal` and asserts it succeeded; returns the payment.
async fn paid(daemon: &Daemon, key: &str, terminal: &str, amount: &str) -> Value {
    let (status, _, payment) = daemon.pay(key, barcode_at(terminal, amount)).await;
    assert_eq!(
        (status, payment["status"].as_str()),
        (201, Some("succeeded")),
        "{payment}"
    );
    payment
}

/// Sends a payment the mock declines (amount ending .51) and asserts the 402.
async fn declined(daemon: &Daemon, key: &str, body: Value) {
    let (status, _, answer) = daemon.pay(key, body).await;
    assert_eq!(status, 402, "{answer}");
    assert_eq!(answer["error"]["payment"]["status"], "failed", "{answer}");
}

/// Refunds `amount` of a payment with the erp key and asserts it succeeded.
async fn refunded(daemon: &Daemon, key: &str, payment_id: &str, amount: &str) -> Value {
    let (status, _, refund) = daemon
        .post_idempotent(
            &format!("/v1/payments/{payment_id}/refunds"),
            ERP,
            Some(key),
            &json!({"amount": amount}),
        )
        .await;
    assert_eq!(
        (status, refund["status"].as_str()),
        (201, Some("succeeded")),
        "{refund}"
    );
    refund
}

/// Sends `n` requests with an unknown Bearer key; each must be refused with 401.
async fn bad_key_requests(daemon: &Daemon, n: usize) {
    for _ in 0..n {
        let (status, body) = daemon.get("/v1/merchants/m_demo", Some("wrong_key")).await;
        assert_eq!(status, 401, "{body}");
    }
}

/// `DELETE path` with `key`. It carries an Idempotency-Key too, which a DELETE may ignore.
async fn delete(daemon: &Daemon, path: &str, key: &str, idempotency_key: &str) -> (u16, Value) {
    let response = daemon
        .client
        .delete(daemon.url(path))
        .bearer_auth(key)
        .header("idempotency-key", idempotency_key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

// ----------------------------------------------------------------------------------------
// Alerts and blocks

/// `GET /v1/alerts?<query>` with `key`.
async fn list_alerts(daemon: &Daemon, key: &str, query: &str) -> (u16, Value) {
    let path = if query.is_empty() {
        "/v1/alerts".to_owned()
    } else {
        format!("/v1/alerts?{query}")
    };
    daemon.get(&path, Some(key)).await
}

/// The alerts an admin sees for `query` right now, newest first.
async fn alerts(daemon: &Daemon, query: &str) -> Vec<Value> {
    let (status, list) = list_alerts(daemon, ADMIN, query).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["object"], "list", "{list}");
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {list}"))
        .clone()
}

fn pretty(alerts: &[Value]) -> String {
    serde_json::to_string_pretty(alerts).unwrap()
}

/// Polls `GET /v1/alerts?<query>` until `done` holds for the alerts (10 s at most).
async fn wait_until(
    daemon: &Daemon,
    query: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..WAIT_STEPS {
        last = alerts(daemon, query).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
    panic!(
        "no {what} for ?{query} within 10 s; alerts:\n{}",
        pretty(&last)
    );
}

/// Waits until at least `n` alerts match `query`; returns them, newest first.
async fn wait_for_alerts(daemon: &Daemon, query: &str, n: usize) -> Vec<Value> {
    wait_until(daemon, query, &format!("{n} alert(s)"), |alerts| {
        alerts.len() >= n
    })
    .await
}

/// Waits for an alert matching `query` whose `subject.<field>` is `value`; returns it.
async fn wait_for_subject(daemon: &Daemon, query: &str, field: &str, value: &str) -> Value {
    let matching = |alert: &Value| alert["subject"][field] == value;
    let alerts = wait_until(
        daemon,
        query,
        &format!("alert with subject.{field} = {value}"),
        |alerts| alerts.iter().any(matching),
    )
    .await;
    alerts.into_iter().find(|alert| matching(alert)).unwrap()
}

/// Gives the monitor a moment to act on anything still in flight before a negative check.
async fn let_the_monitor_settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Asserts the API.md §10 shape of a fresh (unacknowledged) alert and its rule and severity.
fn assert_alert(alert: &Value, rule: &str, severity: &str) {
    assert!(
        alert["id"].as_str().is_some_and(|id| id.starts_with("al_")),
        "{alert}"
    );
    assert_eq!(alert["object"], "alert", "{alert}");
    assert_eq!(alert["rule"], rule, "{alert}");
    assert_eq!(alert["severity"], severity, "{alert}");
    for field in [
        "merchant_id",
        "terminal_id",
        "api_key_id",
        "payer",
        "provider",
    ] {
        assert!(
            alert["subject"]
                .get(field)
                .is_some_and(|v| v.is_null() || v.is_string()),
            "subject.{field} in {alert}"
        );
    }
    assert!(
        alert["summary"].as_str().is_some_and(|s| !s.is_empty()),
        "{alert}"
    );
    assert!(alert["evidence"].is_object(), "{alert}");
    assert!(alert["count"].as_u64().is_some_and(|n| n >= 1), "{alert}");
    for field in ["created_at", "last_seen_at"] {
        assert!(
            alert[field].as_str().is_some_and(|t| t.ends_with('Z')),
            "{field} in {alert}"
        );
    }
    assert!(
        alert
            .get("acknowledged_at")
            .is_some_and(|value| value.is_null()),
        "{alert}"
    );
}

/// The rules of `alerts`, in order.
fn rules_of(alerts: &[Value]) -> Vec<&str> {
    alerts
        .iter()
        .map(|alert| alert["rule"].as_str().unwrap())
        .collect()
}

/// Milliseconds from one RFC 3339 timestamp to another.
fn millis_between(from: &Value, to: &Value) -> i128 {
    let parse = |value: &Value| {
        let text = value
            .as_str()
            .unwrap_or_else(|| panic!("not a timestamp: {value}"));
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
    };
    (parse(to) - parse(from)).whole_milliseconds()
}

/// The blocks an admin sees right now.
async fn blocks(daemon: &Daemon) -> Vec<Value> {
    let (status, list) = daemon.get("/v1/blocks", Some(ADMIN)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["object"], "list", "{list}");
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {list}"))
        .clone()
}

/// Waits until at least `n` blocks are listed (10 s at most).
async fn wait_for_blocks(daemon: &Daemon, n: usize) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..WAIT_STEPS {
        last = blocks(daemon).await;
        if last.len() >= n {
            return last;
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
    panic!("not {n} block(s) within 10 s:\n{}", pretty(&last));
}

// ----------------------------------------------------------------------------------------
// Metrics

/// The sum of every sample of metric `name`, whatever its labels; `None` if none is exposed.
fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                return None;
            }
            line.rsplit_once(' ')?.1.parse().ok()
        })
        .collect();
    if values.is_empty() {
        None
    } else {
        Some(values.iter().sum())
    }
}

/// Polls `/metrics` until `done` holds for its text (10 s at most); returns the text.
async fn wait_for_metrics(daemon: &Daemon, what: &str, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..WAIT_STEPS {
        text = daemon.metrics().await;
        if done(&text) {
            return text;
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
    panic!("{what}: not within 10 s; metrics:\n{text}");
}

// ----------------------------------------------------------------------------------------
// Server-Sent Events

/// One Server-Sent Event: its `event:` name ("message" when absent) and its `data:` lines.
struct SseEvent {
    name: String,
    data: String,
}

/// Takes the complete events (each ended by a blank line) out of `buffer`, leaving a partial
/// one in it. `buffer` holds the stream with any `\r` removed.
fn take_sse_events(buffer: &mut Vec<u8>) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while let Some(end) = buffer.windows(2).position(|pair| pair == b"\n\n") {
        let block: Vec<u8> = buffer.drain(..end + 2).collect();
        let text = String::from_utf8(block).expect("an SSE stream is UTF-8");
        let mut event = SseEvent {
            name: "message".to_owned(),
            data: String::new(),
        };
        let mut has_data = false;
        for line in text.lines() {
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "event" => event.name = value.to_owned(),
                "data" => {
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                    has_data = true;
                }
                // Comments (keep-alives), `id:` and `retry:` lines.
                _ => {}
            }
        }
        if has_data {
            events.push(event);
        }
    }
    events
}

/// Reads an SSE response until an `alert` event for `rule` arrives; returns its alert.
pub async fn next_alert_event(mut response: reqwest::Response, rule: &str) -> Value {
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .expect("the alert stream broke")
            .expect("the alert stream ended before the alert");
        buffer.extend(chunk.iter().filter(|byte| **byte != b'\r'));
        for event in take_sse_events(&mut buffer) {
            if event.name != "alert" {
                continue;
            }
            assert!(
                !event.data.contains('\n'),
                "one data line per alert: {}",
                event.data
            );
            let alert: Value = serde_json::from_str(&event.data)
                .unwrap_or_else(|e| panic!("not an alert ({e}): {}", event.data));
            if alert["rule"] == rule {
                return alert;
            }
        }
    }
}

// ----------------------------------------------------------------------------------------
// A day of ordinary traffic

/// A deterministic pseudo-random sequence (Knuth's MMIX LCG): the same day on every run.
struct Lcg(u64);

impl Lcg {
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Whether the mock wallet reacts to an amount in minor units (declines, delays, lost answers,
/// refund faults: see plugins/mock/README.md).
fn is_mock_trigger(cents: u64) -> bool {
    matches!(cents % 100, 51..=56 | 60..=65 | 71..=73)
}

/// An everyday amount in minor units, 8.00 to 79.99, that the mock simply accepts. With
/// nothing under 8.00 no amount reaches ten times any mean of the others: a normal day has
/// no spike.
fn everyday_cents(rng: &mut Lcg) -> u64 {
    loop {
        let cents = 800 + rng.below(7_200);
        if !is_mock_trigger(cents) {
            return cents;
        }
    }
}

/// Minor units as a decimal string: 1234 -> "12.34".
fn major(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

// ----------------------------------------------------------------------------------------
// Config of the rules

/// Every documented rule key is accepted (and a disabled rule); typos and unknown values are
/// refused like any other config error, naming the field.
#[test]
fn rule_tables_are_checked_like_the_rest_of_the_config() {
    let every_key = config_with_rules(&[
        (
            "card_testing",
            &[
                ("enabled", "true"),
                ("severity", "\"critical\""),
                ("action", "\"block_terminal\""),
                ("block_s", "900"),
                ("cooldown_s", "600"),
                ("window_s", "60"),
                ("threshold", "10"),
                ("factor", "3.0"),
                ("min_count", "20"),
                ("amount", "\"5.00\""),
            ],
        ),
        ("decline_rate", &[("enabled", "false")]),
    ]);
    let (_dir, output) = config_check("monitor.toml", &every_key);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    for (rule, setting, field) in [
        ("card_testing", "threshhold = 3", "threshhold"),
        ("card_tesitng", "threshold = 3", "card_tesitng"),
        ("decline_burst", "severity = \"urgent\"", "severity"),
        ("refund_burst", "action = \"ban\"", "action"),
    ] {
        let text = format!(
            "{}\n[monitor.rules.{rule}]\n{setting}\n",
            default_config_text()
        );
        let (_dir, output) = config_check("monitor.toml", &text);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{setting}: {stderr}");
        assert!(stderr.contains(field), "no {field} in: {stderr}");
        if field == "threshhold" {
            // The key's line, or its table's header just above.
            let line = line_of(&text, setting);
            assert!(
                [line, line - 1]
                    .iter()
                    .any(|at| stderr.contains(&format!("monitor.toml:{at}:"))),
                "no line {line} in: {stderr}"
            );
        }
    }
}

// ----------------------------------------------------------------------------------------
// One scenario per rule

/// card_testing: small payments hammered from one terminal raise one critical alert and
/// block that terminal (only it) until an admin lifts the block.
#[tokio::test]
async fn card_testing_raises_a_critical_alert_and_blocks_the_terminal() {
    let daemon = Daemon::with_config(config_with_rules(&[(
        "card_testing",
        &[("threshold", "3"), ("window_s", "60")],
    )]));
    for i in 1..=3 {
        paid(&daemon, &format!("ct-{i}"), "T-card", "1.00").await;
    }
    let alerts = wait_for_alerts(&daemon, "rule=card_testing", 1).await;
    assert_eq!(alerts.len(), 1, "{}", pretty(&alerts));
    let alert = &alerts[0];
    assert_alert(alert, "card_testing", "critical");
    assert_eq!(alert["subject"]["merchant_id"], "m_demo");
    assert_eq!(alert["subject"]["terminal_id"], "T-card");
    assert_eq!(alert["count"], 1, "{alert}");

    let metrics = wait_for_metrics(&daemon, "paygate_alerts_total for card_testing", |text| {
        metric_value(
            text,
            "paygate_alerts_total{rule=\"card_testing\",severity=\"critical\"}",
        ) == Some(1.0)
    })
    .await;
    assert!(
        metric_sum(&metrics, "paygate_monitor_events_total").is_some_and(|n| n > 0.0),
        "{metrics}"
    );
    assert_eq!(
        metric_sum(&metrics, "paygate_monitor_dropped_total").unwrap_or(0.0),
        0.0,
        "{metrics}"
    );
    assert!(
        metric_sum(&metrics, "paygate_monitor_lag_seconds").is_some(),
        "{metrics}"
    );

    // The block, listed for admins only, lasts the default block_s (900 s).
    let listed = wait_for_blocks(&daemon, 1).await;
    assert_eq!(listed.len(), 1, "{}", pretty(&listed));
    let block = &listed[0];
    assert!(
        block["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("blk_")),
        "{block}"
    );
    assert_eq!(block["object"], "block", "{block}");
    assert_eq!(block["kind"], "terminal", "{block}");
    assert_eq!(block["merchant_id"], "m_demo", "{block}");
    assert_eq!(block["terminal_id"], "T-card", "{block}");
    assert_eq!(block["rule"], "card_testing", "{block}");
    let lasts_ms = millis_between(&block["created_at"], &block["expires_at"]);
    assert!(
        (898_000..=902_000).contains(&lasts_ms),
        "block_s defaults to 900: {block}"
    );
    let (status, body) = daemon.get("/v1/blocks", Some(ERP)).await;
    assert_eq!(status, 403, "{body}");

    // The blocked terminal is refused whatever the method; other terminals still pay.
    for (key, body) in [
        ("ct-4", barcode_at("T-card", "1.00")),
        ("ct-5", qr_at("T-card", "20.00")),
    ] {
        let (status, _, refused) = daemon.pay(key, body).await;
        assert_eq!(status, 403, "{refused}");
        assert_eq!(
            error_kind(&refused),
            ("permission_error".into(), "terminal_blocked".into())
        );
    }
    paid(&daemon, "ct-6", "T-card-2", "1.00").await;

    // An admin lifts the block: the terminal pays again.
    let block_id = block["id"].as_str().unwrap();
    let (status, removed) = delete(
        &daemon,
        &format!("/v1/blocks/{block_id}"),
        ADMIN,
        "unblock-1",
    )
    .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["id"], block_id);
    assert_eq!(removed["terminal_id"], "T-card");
    assert!(blocks(&daemon).await.is_empty());
    paid(&daemon, "ct-7", "T-card", "1.00").await;
}

/// decline_burst: a run of declines at one terminal raises a warning for that terminal; fewer
/// declines at another raise nothing for it.
#[tokio::test]
async fn decline_burst_raises_a_warning_for_the_terminal() {
    let daemon = Daemon::with_config(config_with_rules(&[(
        "decline_burst",
        &[("threshold", "3"), ("window_s", "60")],
    )]));
    // Each decline by another payer: only the terminal repeats.
    for i in 1..=2 {
        let body = barcode_with_code("T-decl-2", "3.51", &payer_code(100 + i));
        declined(&daemon, &format!("db-other-{i}"), body).await;
    }
    for i in 1..=3 {
        let body = barcode_with_code("T-decl", "3.51", &payer_code(200 + i));
        declined(&daemon, &format!("db-{i}"), body).await;
    }
    let alert = wait_for_subject(&daemon, "rule=decline_burst", "terminal_id", "T-decl").await;
    assert_alert(&alert, "decline_burst", "warning");
    assert_eq!(alert["subject"]["merchant_id"], "m_demo");

    let_the_monitor_settle().await;
    let raised = alerts(&daemon, "rule=decline_burst").await;
    assert!(
        !raised
            .iter()
            .any(|alert| alert["subject"]["terminal_id"] == "T-decl-2"),
        "two declines are under the threshold:\n{}",
        pretty(&raised)
    );
}

/// decline_rate: a fresh terminal (baseline 0.05) whose declines pass half its attempts,
/// once min_count attempts are in, raises a warning.
#[tokio::test]
async fn decline_rate_raises_a_warning_for_a_terminal_declining_most_payments() {
    let daemon = Daemon::with_config(config_with_rules(&[(
        "decline_rate",
        &[("min_count", "5")],
    )]));
    for i in 1..=2 {
        paid(&daemon, &format!("dr-ok-{i}"), "T-rate", "8.00").await;
    }
    // 4 of 6 declined: 0.67 > 0.5 and > 3 x 0.05.
    for i in 1..=4 {
        declined(&daemon, &format!("dr-{i}"), barcode_at("T-rate", "8.51")).await;
    }
    let alert = wait_for_subject(&daemon, "rule=decline_rate", "terminal_id", "T-rate").await;
    assert_alert(&alert, "decline_rate", "warning");
    assert_eq!(alert["subject"]["merchant_id"], "m_demo");
}

/// amount_spike: once min_count payments built the merchant's mean, one far above it raises
/// a warning for the merchant.
#[tokio::test]
async fn amount_spike_raises_a_warning_for_the_merchant() {
    let daemon = Daemon::with_config(config_with_rules(&[(
        "amount_spike",
        &[("min_count", "5"), ("factor", "5")],
    )]));
    for i in 1..=5 {
        paid(&daemon, &format!("as-{i}"), "T-spike", "10.00").await;
    }
    paid(&daemon, "as-spike", "T-spike", "100.00").await;
    let alerts = wait_for_alerts(&daemon, "rule=amount_spike", 1).await;
    assert_eq!(alerts.len(), 1, "{}", pretty(&alerts));
    assert_alert(&alerts[0], "amount_spike", "warning");
    assert_eq!(alerts[0]["subject"]["merchant_id"], "m_demo");
}

/// refund_burst: many refunds by one API key raise a warning for that key (and for the
/// terminal of the refunded payment).
#[tokio::test]
async fn refund_burst_raises_a_warning_for_the_api_key() {
    let daemon = Daemon::with_config(config_with_rules(&[(
        "refund_burst",
        &[("threshold", "3")],
    )]));
    let payment = paid(&daemon, "rb-pay", "T-refund", "10.00").await;
    let payment_id = payment["id"].as_str().unwrap();
    for i in 1..=3 {
        refunded(&daemon, &format!("rb-{i}"), payment_id, "1.00").await;
    }
    let alert = wait_for_subject(&daemon, "rule=refund_burst", "api_key_id", ERP_KEY_ID).await;
    assert_alert(&alert, "refund_burst", "warning");
    // The rule also counts per terminal of the refunded payment.
    let by_terminal =
        wait_for_subject(&daemon, "rule=refund_burst", "terminal_id", "T-refund").await;
    assert_alert(&by_terminal, "refund_burst", "warning");
}

/// refund_ratio: a merchant refunding most of what it collected raises a warning.
#[tokio::test]
async fn refund_ratio_raises_a_warning_for_the_merchant() {
    let daemon = Daemon::with_config(config_with_rules(&[(
        "refund_ratio",
        &[("amount", "\"10.00\""), ("threshold", "0.5")],
    )]));
    let payment = paid(&daemon, "rr-pay", "T-ratio", "20.00").await;
    refunded(&daemon, "rr-1", payment["id"].as_str().unwrap(), "15.00").await;
    let alert = wait_for_subject(&daemon, "rule=refund_ratio", "merchant_id", "m_demo").await;
    assert_alert(&alert, "refund_ratio", "warning");
}

/// off_hours: a payment while the merchant is closed raises an info alert.
#[tokio::test]
async fn off_hours_raises_an_info_alert() {
    // Open one hour, twelve hours from now.
    let opening = hours_from(utc_hour_now() + 12, 1);
    let daemon = Daemon::with_config(with_opening_hours(
        default_config_text(),
        &opening,
        "+00:00",
    ));
    paid(&daemon, "oh-1", "T-night", "12.00").await;
    let alert = wait_for_subject(&daemon, "rule=off_hours", "merchant_id", "m_demo").await;
    assert_alert(&alert, "off_hours", "info");
}

/// forged_notifications: notices that fail verification raise a critical alert for the
/// provider, and change nothing.
#[tokio::test]
async fn forged_notifications_raise_a_critical_alert_for_the_provider() {
    let daemon = Daemon::with_config(config_with_rules(&[(
        "forged_notifications",
        &[("threshold", "3")],
    )]));
    // .60: the payer never pays, so nothing but a notice could settle it.
    let (status, _, pending) = daemon.pay("fn-1", qr_at("T-forge", "7.60")).await;
    assert_eq!(status, 201, "{pending}");
    let id = pending["id"].as_str().unwrap();
    let (forged, _) = signed_notice(id, "succeeded", "7.60");
    for _ in 0..3 {
        assert_eq!(notify(&daemon, &forged, &"00".repeat(32)).await.0, 400);
    }
    let alert = wait_for_subject(&daemon, "rule=forged_notifications", "provider", "mock").await;
    assert_alert(&alert, "forged_notifications", "critical");
    let (_, payment) = daemon.get(&format!("/v1/payments/{id}"), Some(POS)).await;
    assert_eq!(payment["status"], "pending", "{payment}");
}

/// credential_abuse: repeated unknown keys from one address raise a critical alert naming it.
#[tokio::test]
async fn credential_abuse_raises_a_critical_alert() {
    let daemon = Daemon::with_config(config_with_rules(&[(
        "credential_abuse",
        &[("threshold", "5")],
    )]));
    bad_key_requests(&daemon, 5).await;
    let alerts = wait_for_alerts(&daemon, "rule=credential_abuse", 1).await;
    assert_eq!(alerts.len(), 1, "{}", pretty(&alerts));
    assert_alert(&alerts[0], "credential_abuse", "critical");
    assert!(
        alerts[0]["evidence"].to_string().contains("127.0.0.1"),
        "the evidence names the source address: {}",
        alerts[0]
    );
}

/// idempotency_abuse: one Idempotency-Key reused for other requests raises a warning for the
/// API key.
#[tokio::test]
async fn idempotency_abuse_raises_a_warning_for_the_api_key() {
    let daemon = Daemon::with_config(config_with_rules(&[(
        "idempotency_abuse",
        &[("threshold", "3")],
    )]));
    let (status, _, first) = daemon.pay("ia-reused", qr_at("T-idem", "1.00")).await;
    assert_eq!(status, 201, "{first}");
    for amount in ["2.00", "3.00", "4.00"] {
        let (status, _, body) = daemon.pay("ia-reused", qr_at("T-idem", amount)).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "idempotency_key_reused");
    }
    let alert = wait_for_subject(&daemon, "rule=idempotency_abuse", "api_key_id", POS_KEY_ID).await;
    assert_alert(&alert, "idempotency_abuse", "warning");
}

/// state_conflict: a provider notice contradicting a succeeded payment raises a critical
/// alert at once, whose evidence names the payment.
#[tokio::test]
async fn state_conflict_raises_a_critical_alert_naming_the_payment() {
    let daemon = Daemon::start();
    let (status, _, pending) = daemon.pay("sc-1", qr_at("T-conflict", "7.00")).await;
    assert_eq!(status, 201, "{pending}");
    let id = pending["id"].as_str().unwrap();
    let (paid_notice, signature) = signed_notice(id, "succeeded", "7.00");
    assert_eq!(notify(&daemon, &paid_notice, &signature).await.0, 200);
    let (failed_notice, signature) = signed_notice(id, "failed", "7.00");
    assert_eq!(notify(&daemon, &failed_notice, &signature).await.0, 200);
    let (_, payment) = daemon.get(&format!("/v1/payments/{id}"), Some(POS)).await;
    assert_eq!(payment["status"], "succeeded", "{payment}");

    let alerts = wait_for_alerts(&daemon, "rule=state_conflict", 1).await;
    assert_eq!(alerts.len(), 1, "{}", pretty(&alerts));
    assert_alert(&alerts[0], "state_conflict", "critical");
    assert_eq!(alerts[0]["subject"]["merchant_id"], "m_demo");
    assert!(
        alerts[0]["evidence"].to_string().contains(id),
        "the evidence names {id}: {}",
        alerts[0]
    );
}

// ----------------------------------------------------------------------------------------
// Dedup and disabled rules

/// Repeats within the cool-down count on the one alert of a (rule, subject); action "alert"
/// blocks nothing.
#[tokio::test]
async fn repeats_within_the_cooldown_count_on_one_alert() {
    let daemon = Daemon::with_config(config_with_rules(&[(
        "card_testing",
        &[
            ("threshold", "2"),
            ("window_s", "30"),
            ("action", "\"alert\""),
        ],
    )]));
    for i in 1..=6 {
        paid(&daemon, &format!("dd-{i}"), "T-dedup", "1.00").await;
    }
    wait_until(
        &daemon,
        "rule=card_testing",
        "alert counted twice",
        |alerts| {
            alerts
                .iter()
                .any(|alert| alert["count"].as_u64().is_some_and(|n| n >= 2))
        },
    )
    .await;
    let_the_monitor_settle().await;
    let raised = alerts(&daemon, "rule=card_testing").await;
    let for_terminal: Vec<&Value> = raised
        .iter()
        .filter(|alert| alert["subject"]["terminal_id"] == "T-dedup")
        .collect();
    assert_eq!(for_terminal.len(), 1, "{}", pretty(&raised));
    let alert = for_terminal[0];
    assert!(alert["count"].as_u64().is_some_and(|n| n >= 2), "{alert}");
    assert!(
        millis_between(&alert["created_at"], &alert["last_seen_at"]) >= 0,
        "{alert}"
    );
    assert!(
        blocks(&daemon).await.is_empty(),
        "action \"alert\" blocks nothing"
    );
}

/// A disabled rule raises nothing, while the other rules keep working.
#[tokio::test]
async fn a_disabled_rule_raises_nothing() {
    let daemon = Daemon::with_config(config_with_rules(&[
        ("credential_abuse", &[("enabled", "false")]),
        ("decline_rate", &[("enabled", "false")]),
        ("forged_notifications", &[("threshold", "1")]),
    ]));
    bad_key_requests(&daemon, 20).await;
    // The monitor is running: a forged notice is still caught.
    let (forged, _) = signed_notice("pay_doesnotexist", "succeeded", "7.00");
    assert_eq!(notify(&daemon, &forged, &"00".repeat(32)).await.0, 400);
    wait_for_subject(&daemon, "rule=forged_notifications", "provider", "mock").await;
    let_the_monitor_settle().await;
    let raised = alerts(&daemon, "rule=credential_abuse").await;
    assert!(raised.is_empty(), "{}", pretty(&raised));
    let metrics = daemon.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "paygate_alerts_total{rule=\"credential_abuse\",severity=\"critical\"}"
        )
        .unwrap_or(0.0),
        0.0,
        "{metrics}"
    );
}

// ----------------------------------------------------------------------------------------
// The alert API

/// The list is newest first, filters by severity, rule, merchant and time, paginates, and
/// shows each key only what its scope allows.
#[tokio::test]
async fn alert_lists_filter_paginate_and_follow_the_key_scope() {
    let daemon = Daemon::with_config(config_with_rules(&[
        ("credential_abuse", &[("threshold", "2")]),
        (
            "card_testing",
            &[("threshold", "2"), ("action", "\"alert\"")],
        ),
        ("idempotency_abuse", &[("threshold", "2")]),
    ]));
    // Three alerts, one after the other: critical without a merchant, critical for m_demo,
    // then a warning.
    bad_key_requests(&daemon, 2).await;
    wait_for_alerts(&daemon, "rule=credential_abuse", 1).await;
    for i in 1..=2 {
        paid(&daemon, &format!("ls-{i}"), "T-list", "1.00").await;
    }
    wait_for_alerts(&daemon, "rule=card_testing", 1).await;
    let (status, _, first) = daemon.pay("ls-reused", qr_at("T-list", "9.00")).await;
    assert_eq!(status, 201, "{first}");
    for amount in ["9.10", "9.20"] {
        let (status, _, body) = daemon.pay("ls-reused", qr_at("T-list", amount)).await;
        assert_eq!(status, 422, "{body}");
    }
    wait_for_alerts(&daemon, "rule=idempotency_abuse", 1).await;

    let all = alerts(&daemon, "").await;
    assert_eq!(
        rules_of(&all),
        ["idempotency_abuse", "card_testing", "credential_abuse"],
        "newest first"
    );

    // Filters.
    let mut critical = rules_of(&alerts(&daemon, "severity=critical").await)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    critical.sort();
    assert_eq!(critical, ["card_testing", "credential_abuse"]);
    assert_eq!(
        rules_of(&alerts(&daemon, "severity=warning").await),
        ["idempotency_abuse"]
    );
    assert_eq!(
        rules_of(&alerts(&daemon, "rule=card_testing").await),
        ["card_testing"]
    );
    let for_demo = alerts(&daemon, "merchant_id=m_demo").await;
    assert!(
        for_demo
            .iter()
            .all(|alert| alert["subject"]["merchant_id"] == "m_demo"),
        "{}",
        pretty(&for_demo)
    );
    assert!(rules_of(&for_demo).contains(&"card_testing"));
    assert!(!rules_of(&for_demo).contains(&"credential_abuse"));
    assert_eq!(alerts(&daemon, "since=2000-01-01T00:00:00Z").await.len(), 3);
    assert!(
        alerts(&daemon, "since=2999-01-01T00:00:00Z")
            .await
            .is_empty()
    );
    for bad in ["severity=urgent", "since=yesterday"] {
        let (status, body) = list_alerts(&daemon, ADMIN, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(error_kind(&body).0, "invalid_request_error");
    }

    // Pagination, one at a time.
    for (i, expected) in all.iter().enumerate() {
        let query = if i == 0 {
            "limit=1".to_owned()
        } else {
            format!(
                "limit=1&starting_after={}",
                all[i - 1]["id"].as_str().unwrap()
            )
        };
        let (status, page) = list_alerts(&daemon, ADMIN, &query).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["data"].as_array().map(Vec::len), Some(1), "{page}");
        assert_eq!(page["data"][0]["id"], expected["id"]);
        assert_eq!(page["has_more"], i + 1 < all.len(), "{page}");
    }

    // Scope: an erp key sees its merchants' alerts only; tills see none.
    let (status, list) = list_alerts(&daemon, ERP, "").await;
    assert_eq!(status, 200, "{list}");
    let seen = list["data"].as_array().unwrap();
    assert!(
        seen.iter()
            .all(|alert| alert["subject"]["merchant_id"] == "m_demo"),
        "{list}"
    );
    assert!(rules_of(seen).contains(&"card_testing"), "{list}");
    let (status, list) = list_alerts(&daemon, OTHER_ERP, "").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0), "{list}");
    let (status, body) = list_alerts(&daemon, POS, "").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_kind(&body).0, "permission_error");
}

/// Acknowledging: admins only, with an Idempotency-Key; again is the same result; unknown
/// ids are 404.
#[tokio::test]
async fn an_admin_acknowledges_an_alert() {
    let daemon = Daemon::with_config(config_with_rules(&[(
        "credential_abuse",
        &[("threshold", "2")],
    )]));
    bad_key_requests(&daemon, 2).await;
    let alert = wait_for_alerts(&daemon, "rule=credential_abuse", 1).await[0].clone();
    assert_alert(&alert, "credential_abuse", "critical");
    let id = alert["id"].as_str().unwrap();
    let path = format!("/v1/alerts/{id}/ack");

    for key in [POS, ERP] {
        let (status, _, body) = daemon
            .post_idempotent(&path, key, Some("ack-denied"), &json!({}))
            .await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(error_kind(&body).0, "permission_error");
    }
    let (status, _, body) = daemon.post_idempotent(&path, ADMIN, None, &json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_missing");

    let (status, replayed, acked) = daemon
        .post_idempotent(&path, ADMIN, Some("ack-1"), &json!({}))
        .await;
    assert_eq!((status, replayed), (200, false), "{acked}");
    assert_eq!(acked["id"], id);
    assert_eq!(acked["object"], "alert");
    assert_eq!(acked["rule"], "credential_abuse");
    assert!(
        acked["acknowledged_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{acked}"
    );
    let listed = alerts(&daemon, "rule=credential_abuse").await;
    assert_eq!(listed[0]["acknowledged_at"], acked["acknowledged_at"]);

    // Again, with the same key (a replay, or the same result) or a new one: still
    // acknowledged when it first was.
    for key in ["ack-1", "ack-2"] {
        let (status, replayed, again) = daemon
            .post_idempotent(&path, ADMIN, Some(key), &json!({}))
            .await;
        assert_eq!(status, 200, "{key}: {again}");
        assert_eq!(again["id"], id, "{again}");
        assert_eq!(
            again["acknowledged_at"], acked["acknowledged_at"],
            "{again}"
        );
        if replayed {
            assert_eq!(again, acked, "a replay is the first answer");
        }
    }

    let (status, _, body) = daemon
        .post_idempotent(
            "/v1/alerts/al_doesnotexist/ack",
            ADMIN,
            Some("ack-3"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_kind(&body).0, "invalid_request_error");
}

/// `GET /v1/alerts/stream` (admins only) pushes each new alert as an `alert` event.
#[tokio::test]
async fn new_alerts_are_pushed_on_the_event_stream() {
    let daemon = Daemon::with_config(config_with_rules(&[(
        "credential_abuse",
        &[("threshold", "2")],
    )]));
    // Tills may not listen; a back office (erp) may, for its merchants' alerts.
    for key in [POS] {
        let (status, body) = daemon.get("/v1/alerts/stream", Some(key)).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(error_kind(&body).0, "permission_error");
    }

    let request = daemon
        .client
        .get(daemon.url("/v1/alerts/stream"))
        .bearer_auth(ADMIN);
    let (connected, is_connected) = tokio::sync::oneshot::channel();
    let listener = tokio::spawn(async move {
        let response = request.send().await.unwrap();
        let _ = connected.send(());
        assert_eq!(response.status(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        tokio::time::timeout(
            Duration::from_secs(10),
            next_alert_event(response, "credential_abuse"),
        )
        .await
        .expect("no `alert` event for credential_abuse within 10 s")
    });
    // A stream may send its headers only with its first event: wait for them a little, then
    // raise the alert anyway (the request is in by then).
    let _ = tokio::time::timeout(Duration::from_secs(2), is_connected).await;
    bad_key_requests(&daemon, 2).await;

    let streamed = listener.await.unwrap();
    assert_alert(&streamed, "credential_abuse", "critical");
    let listed = wait_for_alerts(&daemon, "rule=credential_abuse", 1).await;
    assert_eq!(streamed["id"], listed[0]["id"]);
}

/// Alerts go out as signed `alert.raised` webhooks to the endpoints that want them.
#[tokio::test]
async fn alerts_are_delivered_as_signed_webhooks() {
    let receiver = WebhookReceiver::on_free_port().await;
    let config = config_with_rules(&[(
        "card_testing",
        &[("threshold", "2"), ("action", "\"alert\"")],
    )]);
    let daemon = Daemon::with_config(with_alert_endpoint(config, receiver.port));
    for i in 1..=2 {
        paid(&daemon, &format!("wh-{i}"), "T-hook", "1.00").await;
    }
    let alert = wait_for_subject(&daemon, "rule=card_testing", "terminal_id", "T-hook").await;

    let delivery = receiver
        .wait_for("the alert", |event| event["data"]["id"] == alert["id"])
        .await;
    delivery.verify_signature(WEBHOOK_SECRET);
    let event = delivery.json();
    assert!(
        event["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt_")),
        "{event}"
    );
    assert_eq!(event["type"], "alert.raised", "{event}");
    assert_eq!(event["data"]["object"], "alert", "{event}");
    assert_eq!(event["data"]["rule"], "card_testing", "{event}");
    assert_eq!(event["data"]["severity"], "critical", "{event}");
    assert_eq!(event["data"]["subject"]["terminal_id"], "T-hook", "{event}");
    assert!(
        receiver
            .deliveries()
            .iter()
            .all(|delivery| delivery.json()["type"] == "alert.raised"),
        "the endpoint wants alerts only"
    );
}

// ----------------------------------------------------------------------------------------
// No false alarm

/// A realistic day (150 payments at 8 terminals, a few declines, retries, refunds and
/// notices, all inside opening hours) with every rule at its defaults raises nothing.
#[tokio::test]
async fn a_normal_day_of_traffic_raises_no_alert() {
    const TERMINALS: [&str; 8] = [
        "T-day-1", "T-day-2", "T-day-3", "T-day-4", "T-day-5", "T-day-6", "T-day-7", "T-day-8",
    ];
    const PAYMENTS: usize = 150;
    // Open from six hours before to six hours after the merchant's local time at UTC+8: the
    // day is inside opening hours only if the offset is applied.
    let local_hour = utc_hour_now() + 8;
    let daemon = Daemon::with_config(with_opening_hours(
        default_config_text(),
        &hours_from(local_hour + 24 - 6, 12),
        "+08:00",
    ));

    let mut rng = Lcg(0x5EED_2026);
    let (mut declines, mut retries, mut refunds) = (0, 0, 0);
    for i in 0..PAYMENTS {
        let terminal = TERMINALS[rng.below(TERMINALS.len() as u64) as usize];
        let payer = payer_code(4_000 + rng.below(40));
        let key = format!("day-{i}");
        // About one in twenty is declined for want of funds (.51).
        let decline = i % 20 == 19;
        let by_qr = !decline && i % 7 == 3;
        let cents = if decline {
            everyday_cents(&mut rng) / 100 * 100 + 51
        } else {
            everyday_cents(&mut rng)
        };
        let amount = major(cents);
        let body = if by_qr {
            qr_at(terminal, &amount)
        } else {
            barcode_with_code(terminal, &amount, &payer)
        };
        let (status, _, answer) = daemon.pay(&key, body.clone()).await;
        let expected = if decline { 402 } else { 201 };
        assert_eq!(
            status, expected,
            "payment {i} of {amount} at {terminal}: {answer}"
        );
        // A till that lost the answer retries with the same key and body: a replay.
        if i % 25 == 10 {
            let (again, replayed, retried) = daemon.pay(&key, body).await;
            assert_eq!((again, replayed), (status, true), "{retried}");
            assert_eq!(retried["id"], answer["id"]);
            retries += 1;
        }
        if decline {
            declines += 1;
            continue;
        }
        let id = answer["id"].as_str().unwrap().to_owned();
        if by_qr {
            // The payer scans and pays: the wallet's valid notice settles it.
            let (notice, signature) = signed_notice(&id, "succeeded", &amount);
            assert_eq!(notify(&daemon, &notice, &signature).await.0, 200);
        } else if i % 30 == 5 {
            // The back office refunds part of a sale.
            let mut refund_cents = cents / 2;
            while is_mock_trigger(refund_cents) {
                refund_cents -= 1;
            }
            refunded(
                &daemon,
                &format!("day-refund-{i}"),
                &id,
                &major(refund_cents),
            )
            .await;
            refunds += 1;
        }
    }
    assert_eq!((declines, retries, refunds), (7, 6, 5));

    // Let the monitor read the whole day before asking it.
    let metrics = wait_for_metrics(&daemon, "the monitor reading every payment", |text| {
        metric_sum(text, "paygate_monitor_events_total").is_some_and(|n| n >= PAYMENTS as f64)
    })
    .await;
    assert_eq!(
        metric_sum(&metrics, "paygate_monitor_dropped_total").unwrap_or(0.0),
        0.0,
        "{metrics}"
    );
    let_the_monitor_settle().await;
    let raised = alerts(&daemon, "").await;
    assert!(
        raised.is_empty(),
        "false alarms on a normal day:\n{}",
        pretty(&raised)
    );
}
