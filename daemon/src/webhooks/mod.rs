//! Outgoing webhooks (API.md §9): a dispatcher that delivers the durable outbox.
//!
//! The store writes an outbox entry with every event of a webhook kind, in the same
//! transaction as the change (so a committed change always owes its delivery, and a crash
//! cannot lose it). The dispatcher wakes on the event bus or when a retry falls due, makes
//! sure what it is about to send is on disk, and POSTs each owed (event, endpoint) pair with
//! a `Paygate-Signature`. A 2xx answer finishes the pair; anything else is retried with
//! exponential backoff (`retry_initial_ms` doubling up to `retry_max_ms`) until the event is
//! `retry_for_s` old, then abandoned with a log line and a metric. Delivery state lives in
//! the outbox entry, so a restart resumes where the last process stopped: at least once,
//! never lost; receivers deduplicate by event id.

pub mod signature;

use crate::leases::{Renewing, renewing};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;

use crate::clock::now_ms;
use crate::domain::records::{DeliveryState, EventRecord};
use crate::metrics::Metrics;
use crate::outbound::{Origin, OutboundClient, OutboundRequest};
use crate::settings::KeySource;
use crate::store::{OutboxEntry, Storage, StoreError};

/// Most deliveries started by one pass (the rest wait for the next pass).
const DELIVERIES_PER_PASS: usize = 256;
/// Most deliveries in flight at once.
const CONCURRENT_DELIVERIES: usize = 16;
/// Longest a receiver's answer body is read.
const RESPONSE_BYTES_MAX: usize = 16 * 1024;
/// Longest the dispatcher sleeps without looking at the outbox.
const IDLE_PASS: Duration = Duration::from_secs(5);
/// After a wake-up, wait this long so that a burst of events goes out in one pass.
const GATHER: Duration = Duration::from_millis(10);
/// How long a pass holds what it takes without renewing it, and how often it renews: what
/// a stopped daemon held is free again within one lease.
const OUTBOX_LEASE_MS: i64 = 30_000;
const OUTBOX_RENEW_EVERY: Duration = Duration::from_secs(10);
/// Most outbox entries one pass takes (and, with several daemons, holds). The embedded
/// engine hands out entries that wait for a retry too: the bound is far above any backlog
/// a pass should meet, so that newer events are not left behind older ones that wait.
const ENTRIES_PER_PASS: usize = 100_000;

/// `[webhooks]`: the receivers and how hard the outbox tries.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub endpoints: Vec<EndpointSettings>,
    /// Delay before the first retry; each further retry doubles it, up to `retry_max_ms`.
    pub retry_initial_ms: i64,
    pub retry_max_ms: i64,
    /// How long an event is retried before its delivery is abandoned.
    pub retry_for_ms: i64,
    /// Time allowed for one delivery.
    pub timeout: Duration,
}

/// One receiver of events.
#[derive(Debug, Clone)]
pub struct EndpointSettings {
    pub name: String,
    pub url: String,
    /// Where its signing secret is read from.
    pub secret: KeySource,
    /// Event kinds to deliver; empty: every webhook kind.
    pub events: Vec<String>,
    /// Merchants whose events to deliver; empty: every merchant.
    pub merchants: Vec<String>,
}

impl EndpointSettings {
    /// Reads the signing secret (checked to exist by validation; read again at start).
    pub fn read_secret(&self) -> Result<Vec<u8>, String> {
        let secret = self.secret.read("secret")?;
        let trimmed = secret.trim_ascii_end().to_vec();
        if trimmed.is_empty() {
            return Err(format!(
                "webhook endpoint {}: the secret is empty",
                self.name
            ));
        }
        Ok(trimmed)
    }

    /// Whether this endpoint wants `kind` events of `merchant_id`.
    pub fn wants(&self, kind: &str, merchant_id: Option<&str>) -> bool {
        let events = &self.events;
        let merchants = &self.merchants;
        (events.is_empty() || events.iter().any(|e| e == kind))
            && (merchants.is_empty()
                || merchant_id.is_some_and(|m| merchants.iter().any(|x| x == m)))
    }
}

/// A configured receiver, with its secret read.
struct Endpoint {
    name: String,
    url: String,
    origin: Origin,
    secret: Vec<u8>,
    config: EndpointSettings,
}

/// Renders the body delivered for an event (the API's JSON of its object; API.md §9).
pub type RenderBody = fn(&EventRecord) -> Result<String, String>;

pub struct Dispatcher {
    store: Arc<dyn Storage>,
    /// The outbox entries the running pass holds (event id, lease token).
    held: Arc<std::sync::Mutex<Vec<(String, i64)>>>,
    render: RenderBody,
    metrics: Arc<Metrics>,
    endpoints: Vec<Endpoint>,
    client: OutboundClient,
    retry_initial_ms: i64,
    retry_max_ms: i64,
    retry_for_ms: i64,
    timeout: Duration,
}

/// The result of one delivery attempt.
struct Attempt {
    event_id: String,
    endpoint: usize,
    result: Result<(), String>,
}

impl Dispatcher {
    /// Reads the endpoints' secrets and builds the client. With no endpoint configured
    /// there is nothing to dispatch and the store writes no outbox entries.
    pub fn new(
        store: Arc<dyn Storage>,
        metrics: Arc<Metrics>,
        config: &WebhookSettings,
        render: RenderBody,
    ) -> Result<Option<Dispatcher>, String> {
        if config.endpoints.is_empty() {
            return Ok(None);
        }
        let mut endpoints = Vec::new();
        for endpoint in &config.endpoints {
            let url = endpoint.url.clone();
            let origin = url
                .parse::<hyper::Uri>()
                .ok()
                .and_then(|uri| Origin::of(&uri))
                .ok_or_else(|| format!("webhook endpoint {}: bad url", endpoint.name))?;
            endpoints.push(Endpoint {
                name: endpoint.name.clone(),
                url,
                origin,
                secret: endpoint.read_secret()?,
                config: endpoint.clone(),
            });
        }
        for endpoint in &endpoints {
            metrics.init_webhook_endpoint(&endpoint.name);
        }
        let client = OutboundClient::new(Vec::new())?;
        store.enable_outbox();
        Ok(Some(Dispatcher {
            retry_initial_ms: config.retry_initial_ms,
            retry_max_ms: config.retry_max_ms,
            retry_for_ms: config.retry_for_ms,
            timeout: config.timeout,
            store,
            held: Default::default(),
            render,
            metrics,
            endpoints,
            client,
        }))
    }

    /// Runs the dispatcher forever (the task ends with the runtime).
    /// Runs the dispatcher; the returned handle gives back what it holds at shutdown.
    pub fn spawn(self) -> Holding {
        let holding = Holding {
            store: self.store.clone(),
            held: self.held.clone(),
        };
        tokio::spawn(self.run());
        holding
    }

    async fn run(self) {
        // This daemon's events at once; on a shared store, every daemon's too (an entry
        // another daemon's change owes is this one's to deliver as well), as they are read.
        let mut bus = self.store.bus().subscribe();
        let mut feed = self.store.shared().then(|| self.store.feed().subscribe());
        loop {
            let wait = match self.pass().await {
                Ok(Some(due_ms)) => Duration::from_millis(
                    (due_ms - now_ms()).clamp(0, IDLE_PASS.as_millis() as i64) as u64,
                ),
                Ok(None) => IDLE_PASS,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook pass failed; retrying");
                    IDLE_PASS
                }
            };
            let deadline = tokio::time::Instant::now() + wait;
            // Sleep until a retry is due or an event that owes a delivery is committed.
            loop {
                let received = tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    received = bus.recv() => received,
                    Some(received) = next_event(&mut feed) => received,
                };
                match received {
                    Ok(event) if !event.kind.is_webhook() => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        tokio::time::sleep(GATHER).await;
                        break;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }

    /// One pass over the outbox: deliver what is due, record the outcomes. Returns when the
    /// next retry falls due, if any is pending.
    pub async fn pass(&self) -> Result<Option<i64>, StoreError> {
        // Only what is on disk goes out: a receiver must never learn of a change that a
        // crash could still undo. So the page is read first, then everything written before
        // the read is made durable (waiting first would let entries written meanwhile out).
        let page = self
            .store
            .take_outbox(ENTRIES_PER_PASS, OUTBOX_LEASE_MS, now_ms())
            .await?;
        let _renewing = self.keep_leased(&page);
        self.store.durable().await?;
        let now = now_ms();
        let full_page = page.len() == ENTRIES_PER_PASS;
        let mut next_due: Option<i64> = None;
        let mut owed: BTreeMap<String, OutboxEntry> = BTreeMap::new();
        let mut jobs = JoinSet::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_DELIVERIES));
        for entry in page {
            let OutboxEntry {
                event,
                delivery: mut record,
                lease,
            } = entry;
            // Endpoints removed from the config owe nothing any more.
            record
                .endpoints
                .retain(|name, _| self.endpoints.iter().any(|e| &e.name == name));
            let body = match (self.render)(&event) {
                Ok(body) => body,
                Err(e) => {
                    tracing::error!(event = %event.id, error = %e, "cannot render webhook; dropped");
                    let entry = OutboxEntry {
                        event,
                        delivery: record,
                        lease,
                    };
                    self.store.set_outbox(&entry, None).await?;
                    continue;
                }
            };
            let fields = event.fields();
            // An alert belongs to its subject's merchant (a merchant-filtered endpoint gets
            // the alerts about that merchant).
            let merchant_id = fields.merchant();
            for (index, endpoint) in self.endpoints.iter().enumerate() {
                if !endpoint.config.wants(event.kind.as_str(), merchant_id) {
                    continue;
                }
                let delivery =
                    record
                        .endpoints
                        .entry(endpoint.name.clone())
                        .or_insert(DeliveryState {
                            attempts: 0,
                            next_attempt_ms: 0,
                            finished: false,
                            last_error: None,
                        });
                if delivery.finished {
                    continue;
                }
                if delivery.next_attempt_ms > now || jobs.len() >= DELIVERIES_PER_PASS {
                    let due = delivery.next_attempt_ms.max(now);
                    next_due = Some(next_due.map_or(due, |d| d.min(due)));
                    continue;
                }
                let request = self.request(endpoint, &event.id, &body);
                let client = self.client.clone();
                let allowed = vec![endpoint.origin.clone()];
                let deadline = Instant::now() + self.timeout;
                let event_id = event.id.clone();
                let limit = limit.clone();
                jobs.spawn(async move {
                    let _slot = limit.acquire_owned().await;
                    let result = match client
                        .send(request, &allowed, deadline, RESPONSE_BYTES_MAX)
                        .await
                    {
                        Ok(response) if (200..300).contains(&response.status) => Ok(()),
                        Ok(response) => Err(format!("answered {}", response.status)),
                        Err(e) => Err(format!("{e:?}")),
                    };
                    Attempt {
                        event_id,
                        endpoint: index,
                        result,
                    }
                });
            }
            owed.insert(
                event.id.clone(),
                OutboxEntry {
                    event,
                    delivery: record,
                    lease,
                },
            );
        }
        // A full page that made progress: more may be owed, so the next pass comes at once.
        if full_page && !jobs.is_empty() {
            next_due = Some(now);
        }
        while let Some(joined) = jobs.join_next().await {
            let Ok(attempt) = joined else { continue };
            let Some(OutboxEntry {
                event,
                delivery: record,
                ..
            }) = owed.get_mut(&attempt.event_id)
            else {
                continue;
            };
            let endpoint = &self.endpoints[attempt.endpoint];
            let delivery = record
                .endpoints
                .get_mut(&endpoint.name)
                .expect("an attempt is made only for an entry it created");
            delivery.attempts += 1;
            match attempt.result {
                Ok(()) => {
                    delivery.finished = true;
                    delivery.last_error = None;
                    self.metrics
                        .count_webhook_delivery(&endpoint.name, "delivered");
                }
                Err(error) => {
                    let now = now_ms();
                    if now - event.created_at_ms >= self.retry_for_ms {
                        delivery.finished = true;
                        tracing::error!(
                            event = %event.id, endpoint = %endpoint.name, attempts = delivery.attempts,
                            %error, "webhook delivery abandoned after the retry period"
                        );
                        self.metrics
                            .count_webhook_delivery(&endpoint.name, "abandoned");
                    } else {
                        delivery.next_attempt_ms = now + self.backoff_ms(delivery.attempts);
                        let due = delivery.next_attempt_ms;
                        next_due = Some(next_due.map_or(due, |d| d.min(due)));
                        tracing::warn!(
                            event = %event.id, endpoint = %endpoint.name, attempts = delivery.attempts,
                            %error, retry_in_ms = due - now, "webhook delivery failed; will retry"
                        );
                        self.metrics
                            .count_webhook_delivery(&endpoint.name, "failed");
                    }
                    delivery.last_error = Some(error);
                }
            }
        }
        for (id, entry) in owed {
            let done = entry.delivery.endpoints.values().all(|d| d.finished);
            let state = (!done).then_some(&entry.delivery);
            if !self.store.set_outbox(&entry, state).await? {
                tracing::warn!(event = %id, "another daemon took this event's deliveries over (this pass outlived its lease); its outcome is theirs to record");
            }
        }
        // Entries the store did not hand out (not due yet, or past the page) say when.
        if let Some(due) = self.store.next_outbox_due().await? {
            next_due = Some(next_due.map_or(due, |d| d.min(due)));
        }
        Ok(next_due)
    }

    /// Renews the leases of `page` every [`OUTBOX_RENEW_EVERY`] until the returned guard
    /// drops (the pass ends, however it ends).
    fn keep_leased(&self, page: &[OutboxEntry]) -> Renewing {
        let held: Vec<(String, i64)> = page.iter().map(|e| (e.event.id.clone(), e.lease)).collect();
        if let Ok(mut holding) = self.held.lock() {
            holding.clone_from(&held);
        }
        let (store, held) = (self.store.clone(), Arc::new(held));
        renewing(OUTBOX_RENEW_EVERY, move || {
            let (store, held) = (store.clone(), held.clone());
            async move {
                if let Err(e) = store.renew_outbox(&held, OUTBOX_LEASE_MS).await {
                    tracing::warn!(error = %e, "cannot renew the webhook outbox's leases");
                }
                true
            }
        })
    }

    fn request(&self, endpoint: &Endpoint, event_id: &str, body: &str) -> OutboundRequest {
        let signature = signature::sign(&endpoint.secret, now_ms() / 1000, body.as_bytes());
        OutboundRequest {
            method: "POST".into(),
            url: endpoint.url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (
                    "user-agent".into(),
                    concat!("paygated/", env!("CARGO_PKG_VERSION")).into(),
                ),
                ("paygate-signature".into(), signature),
                ("paygate-event-id".into(), event_id.into()),
            ],
            body: body.as_bytes().to_vec(),
        }
    }

    /// Delay before attempt `attempts + 1`: doubling from `retry_initial_ms`, capped, with up
    /// to 10 % of jitter so that retries of many events do not arrive in one wave.
    fn backoff_ms(&self, attempts: u32) -> i64 {
        let doubled = self
            .retry_initial_ms
            .saturating_mul(1i64 << attempts.saturating_sub(1).min(40));
        let base = doubled.min(self.retry_max_ms);
        let mut random = [0u8; 2];
        let _ = getrandom::fill(&mut random);
        base + base * i64::from(u16::from_le_bytes(random)) / i64::from(u16::MAX) / 10
    }
}

/// Stops a task when dropped.
/// The next event of `feed`, if there is a feed (never resolves without one).
async fn next_event(
    feed: &mut Option<tokio::sync::broadcast::Receiver<Arc<crate::domain::records::EventRecord>>>,
) -> Option<Result<Arc<crate::domain::records::EventRecord>, RecvError>> {
    match feed {
        Some(feed) => Some(feed.recv().await),
        None => std::future::pending().await,
    }
}

/// What a running dispatcher holds, to give back when the daemon stops: another daemon (or
/// this one restarted) takes it at once instead of after the lease.
pub struct Holding {
    store: Arc<dyn Storage>,
    held: Arc<std::sync::Mutex<Vec<(String, i64)>>>,
}

impl Holding {
    /// Lets go of the running pass's entries (their deliveries may have been made: they are
    /// made again, as after a crash; deliveries are at least once).
    pub async fn release(&self) {
        let held = self.held.lock().map(|h| h.clone()).unwrap_or_default();
        if let Err(e) = self.store.renew_outbox(&held, 0).await {
            tracing::warn!(error = %e, "cannot give back the webhook outbox's leases; they end by themselves");
        }
    }
}
