//! The real-time anomaly monitor (API.md §10): consumes payment, refund, notification,
//! authentication and idempotency events, keeps bounded per-subject state, evaluates the
//! rules of `rules.rs`, and raises de-duplicated alerts (stored with their `alert.raised`
//! event, so webhooks deliver them; streamed to SSE clients), optionally blocking a
//! terminal for a while.
//!
//! It never slows the payment path: inputs go through a bounded queue with `try_send`; a
//! full queue drops the input and counts it (`paygate_monitor_dropped_total`). Committed
//! events come from the store's event bus the same way (a lagging bus subscription counts
//! its losses as drops too).
//!
//! Where several daemons share the store, one monitor at a time reads the committed events:
//! the one holding the monitor's lease, which reads the shared log from where its last
//! holder stopped (so no event is missed when a daemon dies) and raises its alerts under the
//! lease's token. Each daemon's monitor still sees its own requests (authentication
//! failures, idempotency conflicts, refused notices). Every daemon streams every alert and
//! enforces every block: both follow the store's feed of all daemons' events, and the blocks
//! are read again every second (an admin may lift one on another daemon).

pub mod bounded;
pub mod ewma;
pub mod rules;
pub mod settings;
pub mod window;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

use crate::clock::now_ms;
use crate::domain::ids::new_id;
use crate::domain::records::{AlertRecord, BlockRecord, BlockScope, EventRecord};
use crate::events::EventBus;
use crate::merchants::MerchantDirectory;
use crate::metrics::Metrics;
use crate::store::port::MonitorTurn;
use crate::store::{AlertStore, StoreError};
use bounded::BoundedMap;
use rules::{Finding, Rules};
use settings::{Action, MonitorSettings};

/// One thing the monitor looks at.
#[derive(Debug, Clone)]
pub enum Input {
    /// A committed state change (payments, refunds, conflicts).
    Event(Arc<EventRecord>),
    /// A request with a missing, malformed or unknown API key, from `source` (peer address).
    AuthFailure { source: String },
    /// `idempotency_key_reused` or `idempotency_in_progress` for an API key.
    IdempotencyConflict {
        api_key_id: String,
        code: &'static str,
    },
    /// A provider notice whose verification failed.
    NoticeRejected {
        provider: String,
        merchant_id: String,
        reason: String,
    },
    /// A verified provider report (a notice, or an answer to a query) that was refused: it
    /// named an object of another merchant or provider (`foreign_object`), or reported
    /// another amount than ours (`amount_mismatch`). Nothing changed.
    ReportRefused {
        provider: String,
        merchant_id: String,
        /// `payment`, `refund`, `activation` or `bank_account`.
        kind: &'static str,
        object_id: String,
        reason: &'static str,
        detail: serde_json::Value,
    },
}

struct Envelope {
    input: Input,
    at_ms: i64,
    queued: Instant,
}

/// The monitor as the rest of the daemon sees it: feed it, ask it about blocks, listen
/// to its alerts.
pub struct Monitor {
    sender: mpsc::Sender<Envelope>,
    receiver: Mutex<Option<mpsc::Receiver<Envelope>>>,
    enabled: bool,
    metrics: Arc<Metrics>,
    /// Active blocks by what they stop.
    blocks: RwLock<BTreeMap<BlockScope, BlockRecord>>,
    /// The blocks this daemon placed, and when (its clock): a reload that read the store
    /// before one was committed keeps it.
    placed: Mutex<Vec<(String, i64)>>,
    alerts: broadcast::Sender<Arc<AlertRecord>>,
    /// Where alerts and blocks are recorded.
    store: Arc<dyn AlertStore>,
    /// The events this daemon commits, which the rules read (a store one daemon holds).
    bus: EventBus,
    /// The events every daemon sharing the store commits: alerts to stream, blocks to follow.
    feed: EventBus,
    /// The merchants' opening hours, for the off-hours rule.
    merchants: Arc<MerchantDirectory>,
    settings: MonitorSettings,
}

impl Monitor {
    pub fn new(
        settings: &MonitorSettings,
        metrics: Arc<Metrics>,
        store: Arc<dyn AlertStore>,
        (bus, feed): (EventBus, EventBus),
        merchants: Arc<MerchantDirectory>,
    ) -> Monitor {
        let (sender, receiver) = mpsc::channel(settings.queue_capacity);
        let (alerts, _) = broadcast::channel(1024);
        for (rule, rule_settings) in &settings.rules {
            if settings.enabled && rule_settings.enabled {
                metrics.init_alert_rule(rule, rule_settings.severity.as_str());
            }
        }
        Monitor {
            sender,
            receiver: Mutex::new(Some(receiver)),
            enabled: settings.enabled,
            metrics,
            blocks: RwLock::default(),
            placed: Mutex::default(),
            alerts,
            store,
            bus,
            feed,
            merchants,
            settings: settings.clone(),
        }
    }

    /// Reads the blocks in force again (placed or lifted on any daemon); keeps those this
    /// daemon placed while it read.
    async fn reload_blocks(&self) {
        let since = now_ms();
        match self.store.blocks().await {
            Ok(stored) => {
                let now = now_ms();
                let placed: Vec<String> = match self.placed.lock() {
                    Ok(mut placed) => {
                        placed.retain(|(_, at)| *at >= since);
                        placed.iter().map(|(id, _)| id.clone()).collect()
                    }
                    Err(_) => Vec::new(),
                };
                if let Ok(mut blocks) = self.blocks.write() {
                    blocks.retain(|_, b| placed.contains(&b.id) && b.expires_at_ms > now);
                    for block in stored.into_iter().filter(|b| b.expires_at_ms > now) {
                        blocks.insert(block.scope(), block);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot load the monitor's blocks"),
        }
    }

    /// Hands `input` to the monitor without waiting; a full queue drops it (counted).
    pub fn observe(&self, input: Input) {
        if !self.enabled {
            return;
        }
        let envelope = Envelope {
            input,
            at_ms: now_ms(),
            queued: Instant::now(),
        };
        if self.sender.try_send(envelope).is_err() {
            self.metrics.count_monitor_dropped(1);
        }
    }

    /// The block in force on a payment by `api_key_id` for `merchant_id` from `terminal_id`:
    /// on the key (whatever the terminal, or none), or on the terminal.
    pub fn block_on(
        &self,
        merchant_id: &str,
        terminal_id: Option<&str>,
        api_key_id: &str,
    ) -> Option<BlockRecord> {
        let blocks = self.blocks.read().ok()?;
        if blocks.is_empty() {
            return None;
        }
        let now = now_ms();
        let in_force = |scope: BlockScope| blocks.get(&scope).filter(|b| b.expires_at_ms > now);
        in_force(BlockScope::ApiKey(api_key_id.to_owned()))
            .or_else(|| {
                terminal_id.and_then(|t| {
                    in_force(BlockScope::Terminal(merchant_id.to_owned(), t.to_owned()))
                })
            })
            .cloned()
    }

    /// Blocks in force.
    pub fn active_blocks(&self) -> Vec<BlockRecord> {
        let now = now_ms();
        self.blocks
            .read()
            .map(|b| {
                b.values()
                    .filter(|b| b.expires_at_ms > now)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Lifts a block (an admin's decision); returns it if it was in force.
    pub async fn lift_block(
        &self,
        id: &str,
    ) -> Result<Option<BlockRecord>, crate::store::StoreError> {
        let removed = self.store.remove_block(id).await?;
        if let Ok(mut blocks) = self.blocks.write() {
            blocks.retain(|_, b| b.id != id);
        }
        Ok(removed.filter(|b| b.expires_at_ms > now_ms()))
    }

    /// New alerts, as they are raised (for the SSE stream).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AlertRecord>> {
        self.alerts.subscribe()
    }
}

/// How often the monitor holding the lease looks for new events in the shared log.
const LOG_POLL: Duration = Duration::from_millis(25);
/// Events it reads per round trip (this daemon's own inputs wait meanwhile).
const LOG_BATCH: usize = 100;
/// How often every daemon reads the blocks again, on a shared store.
const BLOCKS_RELOAD: Duration = Duration::from_secs(1);

/// Starts the monitor: loads the blocks in force, follows the events it reads (this
/// daemon's, or the shared log's while it holds the lease), streams alerts and follows
/// blocks, and runs the rules on one task.
pub async fn spawn(monitor: Arc<Monitor>) {
    let Some(mut receiver) = monitor.receiver.lock().ok().and_then(|mut r| r.take()) else {
        return;
    };
    if !monitor.enabled {
        return;
    }
    let shared = monitor.store.shared();
    // Subscribed before anything is awaited: no event committed from now on is missed.
    let bus = (!shared).then(|| monitor.bus.subscribe());
    let feed = monitor.feed.subscribe();
    monitor.reload_blocks().await;
    tokio::spawn(follow_alerts(monitor.clone(), feed));
    // This daemon's committed events, into the monitor's queue.
    if let Some(mut bus) = bus {
        let forward = monitor.clone();
        tokio::spawn(async move {
            loop {
                match bus.recv().await {
                    Ok(event) => forward.observe(Input::Event(event)),
                    Err(broadcast::error::RecvError::Lagged(lost)) => {
                        forward.metrics.count_monitor_dropped(lost);
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut engine = Engine::new(&monitor.settings);
        let mut turn: Option<Turn> = None;
        let mut poll = tokio::time::interval(LOG_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                envelope = receiver.recv() => match envelope {
                    Some(envelope) => {
                        engine.handle(&monitor, envelope, None).await;
                    }
                    None => return,
                },
                _ = poll.tick(), if shared => engine.lead(&monitor, &mut turn).await,
            }
        }
    });
}

/// Streams every alert raised on any daemon to this daemon's SSE clients, and enforces the
/// blocks placed on any.
async fn follow_alerts(monitor: Arc<Monitor>, mut feed: broadcast::Receiver<Arc<EventRecord>>) {
    let shared = monitor.store.shared();
    let mut reload = tokio::time::interval(BLOCKS_RELOAD);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = feed.recv() => match event {
                Ok(event) if event.kind == crate::domain::events::EventKind::AlertRaised => {
                    let alert = match event.object.as_ref().map(|o| o.read::<AlertRecord>()) {
                        Some(Ok(alert)) => Some(alert),
                        _ => monitor.store.alert(&event.object_id).await.ok().flatten(),
                    };
                    let Some(alert) = alert else { continue };
                    if shared && alert.block_id.is_some() {
                        monitor.reload_blocks().await;
                    }
                    let _ = monitor.alerts.send(Arc::new(alert));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    tracing::warn!(lost, "the alert stream fell behind the store's events");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = reload.tick(), if shared => monitor.reload_blocks().await,
        }
    }
}

/// This daemon's turn at the shared log.
struct Turn {
    lease: MonitorTurn,
    renewed: Instant,
}

/// The rules plus de-duplication.
struct Engine {
    rules: Rules,
    /// (rule, subject) -> (alert id, raised at): one alert per cool-down.
    raised: BoundedMap<String, (String, i64)>,
    handled: u64,
    /// When to try to take the monitor's lease again (a shared store).
    next_take: Instant,
}

impl Engine {
    fn new(settings: &MonitorSettings) -> Engine {
        Engine {
            rules: Rules::new(settings),
            raised: BoundedMap::new(settings.max_subjects),
            handled: 0,
            next_take: Instant::now(),
        }
    }

    /// Runs the rules on `envelope` and raises what they find, under the monitor's lease
    /// `fence` when given. Returns false once that lease is lost (nothing more is raised).
    async fn handle(&mut self, monitor: &Monitor, envelope: Envelope, fence: Option<i64>) -> bool {
        monitor.metrics.count_monitor_event();
        monitor
            .metrics
            .set_monitor_lag(envelope.queued.elapsed().as_secs_f64());
        let hours = |merchant: &str| {
            monitor
                .merchants
                .get(merchant)
                .and_then(|m| m.opening_hours)
        };
        let findings = self.rules.evaluate(&envelope.input, envelope.at_ms, &hours);
        for finding in findings {
            match self.raise(monitor, finding, envelope.at_ms, fence).await {
                Ok(()) => {}
                Err(StoreError::LeaseLost) => return false,
                Err(e) => tracing::error!(error = %e, "cannot record an alert"),
            }
        }
        self.handled += 1;
        if self.handled.is_multiple_of(4096) {
            self.rules.prune(envelope.at_ms);
        }
        true
    }

    /// One step of the monitor's work on a shared store: takes the lease if no daemon holds
    /// it, then reads the events committed since its position, runs the rules on each (at
    /// the time it was committed) and records how far it got, which renews the lease.
    async fn lead(&mut self, monitor: &Monitor, turn: &mut Option<Turn>) {
        let lease_ms = monitor.store.lease_ms();
        if turn.is_none() {
            // Another daemon holds it, most likely: asked again a third of a lease later.
            if Instant::now() < self.next_take {
                return;
            }
            self.next_take = Instant::now() + Duration::from_millis(lease_ms.max(3) as u64 / 3);
            match monitor.store.take_monitor(lease_ms).await {
                Ok(Some(lease)) => {
                    tracing::info!(position = %lease.position, "this daemon's monitor reads the shared event log");
                    *turn = Some(Turn {
                        lease,
                        renewed: Instant::now(),
                    });
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot take the monitor's lease");
                    return;
                }
            }
        }
        let Some(held) = turn.as_mut() else { return };
        let events = match monitor
            .store
            .monitor_events(&held.lease.position, LOG_BATCH)
            .await
        {
            Ok(events) => events,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the shared event log");
                return;
            }
        };
        let read = !events.is_empty();
        for (position, event) in events {
            let at_ms = event.created_at_ms;
            // How long ago it was committed: the monitor's lag.
            let age = Duration::from_millis((now_ms() - at_ms).max(0) as u64);
            let envelope = Envelope {
                input: Input::Event(Arc::new(event)),
                at_ms,
                queued: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
            };
            if !self.handle(monitor, envelope, Some(held.lease.token)).await {
                tracing::warn!("another daemon took the monitor's lease over");
                *turn = None;
                return;
            }
            held.lease.position = position;
        }
        if read || held.renewed.elapsed() >= Duration::from_millis(lease_ms.max(3) as u64 / 3) {
            match monitor
                .store
                .advance_monitor(held.lease.token, &held.lease.position, lease_ms)
                .await
            {
                Ok(true) => held.renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!("another daemon took the monitor's lease over");
                    *turn = None;
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the monitor's lease"),
            }
        }
    }

    /// Raises `finding`, or counts it on the alert already raised for its subject within
    /// the rule's cool-down.
    async fn raise(
        &mut self,
        monitor: &Monitor,
        finding: Finding,
        now: i64,
        fence: Option<i64>,
    ) -> Result<(), crate::store::StoreError> {
        let settings = self.rules.settings(finding.rule).clone();
        let key = format!(
            "{}|{}|{}",
            finding.rule,
            serde_json::to_string(&finding.subject).unwrap_or_default(),
            finding.scope.as_deref().unwrap_or("")
        );
        let cooldown_ms = (settings.cooldown_s as i64).saturating_mul(1000);
        if let Some((alert_id, raised_at)) = self.raised.get_mut(&key)
            && now - *raised_at < cooldown_ms
        {
            let evidence = finding.evidence.clone();
            monitor
                .store
                .update_alert(alert_id, fence, &|alert| {
                    alert.count += 1;
                    alert.last_seen_at_ms = now;
                    alert.evidence = evidence.clone();
                })
                .await?;
            return Ok(());
        }
        let alert_id = new_id("al");
        let block = match settings.action {
            Action::BlockTerminal => {
                finding
                    .block_target()
                    .map(|(kind, terminal, key)| BlockRecord {
                        id: new_id("blk"),
                        kind: kind.into(),
                        merchant_id: finding.subject.merchant_id.clone().unwrap_or_default(),
                        terminal_id: terminal,
                        api_key_id: key,
                        rule: finding.rule.into(),
                        alert_id: alert_id.clone(),
                        created_at_ms: now,
                        expires_at_ms: now
                            .saturating_add((settings.block_s as i64).saturating_mul(1000)),
                    })
            }
            Action::Alert => None,
        };
        let alert = AlertRecord {
            id: alert_id.clone(),
            rule: finding.rule.into(),
            severity: settings.severity.as_str().into(),
            subject: finding.subject,
            summary: finding.summary,
            evidence: finding.evidence,
            count: 1,
            created_at_ms: now,
            last_seen_at_ms: now,
            acknowledged_at_ms: None,
            acknowledged_by: None,
            block_id: block.as_ref().map(|b| b.id.clone()),
        };
        let event = EventRecord {
            id: new_id("evt"),
            kind: crate::domain::events::EventKind::AlertRaised,
            created_at_ms: now,
            object_id: alert.id.clone(),
            data: serde_json::json!({"rule": alert.rule, "severity": alert.severity}),
            object_version: 0,
            object: None,
        };
        monitor
            .store
            .record_alert(&alert, block.as_ref(), &event, fence)
            .await?;
        if let Some(block) = block
            && let Ok(mut blocks) = monitor.blocks.write()
        {
            tracing::warn!(rule = %alert.rule, kind = %block.kind, merchant = %block.merchant_id, terminal = %block.terminal_id, api_key = ?block.api_key_id, "blocked");
            // (Only a shared store reloads its blocks, which prunes this list.)
            if monitor.store.shared()
                && let Ok(mut placed) = monitor.placed.lock()
            {
                placed.push((block.id.clone(), now_ms()));
            }
            blocks.insert(block.scope(), block);
        }
        tracing::warn!(alert = %alert.id, rule = %alert.rule, severity = %alert.severity, summary = %alert.summary, "alert raised");
        monitor.metrics.count_alert(&alert.rule, &alert.severity);
        self.raised.get_or_insert_with(key, || (alert_id, now));
        // Streamed once committed, from the store's feed (`follow_alerts`), like every
        // daemon's alerts.
        Ok(())
    }
}
