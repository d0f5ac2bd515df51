//! Asynchronous notifications to merchants, with the provider's retry schedule: a notice is
//! re-sent until the merchant acknowledges it the way the protocol says, or the schedule
//! ends. `--fast-notify` compresses the schedule for tests.

use std::sync::Arc;
use std::time::Duration;

/// One notice, ready to send.
#[derive(Debug, Clone)]
pub struct Notice {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How the protocol says the merchant acknowledges.
    pub acknowledged: fn(u16, &str) -> bool,
}

/// Alipay: retries at 4m, 10m, 10m, 1h, 2h, 6h, 15h after the first attempt.
pub const ALIPAY_SCHEDULE_S: &[u64] = &[0, 240, 600, 600, 3600, 7200, 21600, 54000];
/// WeChat Pay v3: 15s, 15s, 30s, 3m, 10m, 20m, 30m, 30m, 30m, 60m, 3h, 3h, 3h, 6h, 6h.
pub const WECHATPAY_SCHEDULE_S: &[u64] = &[
    0, 15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
];

#[derive(Clone)]
pub struct Notifier {
    client: reqwest::Client,
    /// Divides every delay of the schedules (1 = real time).
    compression: u64,
}

impl Notifier {
    pub fn new(compression: u64) -> Notifier {
        Notifier {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            compression: compression.max(1),
        }
    }

    /// Sends `notice` on `schedule` (seconds between attempts) after `initial_delay`, in the
    /// background; `on_attempt` counts attempts (for the ledger).
    pub fn send(
        &self,
        notice: Notice,
        schedule: &'static [u64],
        initial_delay: Duration,
        on_attempt: Arc<dyn Fn() + Send + Sync>,
    ) {
        let client = self.client.clone();
        let compression = self.compression;
        tokio::spawn(async move {
            tokio::time::sleep(initial_delay).await;
            for (attempt, wait_s) in schedule.iter().enumerate() {
                tokio::time::sleep(Duration::from_millis(wait_s * 1000 / compression)).await;
                on_attempt();
                let mut request = client.post(&notice.url).body(notice.body.clone());
                for (name, value) in &notice.headers {
                    request = request.header(name, value);
                }
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let text = response.text().await.unwrap_or_default();
                        if (notice.acknowledged)(status, &text) {
                            tracing::info!(url = %notice.url, attempt, "notification acknowledged");
                            return;
                        }
                        tracing::info!(url = %notice.url, attempt, status, "notification not acknowledged; will retry");
                    }
                    Err(e) => {
                        tracing::info!(url = %notice.url, attempt, error = %e, "notification failed; will retry");
                    }
                }
            }
            tracing::warn!(url = %notice.url, "notification schedule exhausted");
        });
    }
}
