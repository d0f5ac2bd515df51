//! The daemon's shared state, built once at start from the config and the opened store, and
//! handed to every request. It is the composition root: the one place that turns the config
//! into each part's settings and hands each use case only what it works with. Nothing below
//! `api/` sees it.

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use axum::body::Bytes;

use crate::auth::KeyRing;
use crate::clock::Clock;
use crate::config::Config;
use crate::merchants::MerchantDirectory;
use crate::merchants::onboarding::Onboarding;
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::payments::service::Payments;
use crate::plugins::PluginHost;
use crate::store::{Storage, Store};

pub struct AppState {
    /// The config the daemon started with (command-line overrides applied).
    pub config: Config,
    /// The API keys: replaced whole by a reload.
    pub keys: ArcSwap<KeyRing>,
    pub merchants: Arc<MerchantDirectory>,
    /// The store, whichever engine it is.
    pub store: Arc<dyn Storage>,
    /// The embedded engine's own handle (its archive, its flush watchdog, its final
    /// flush); `None` on PostgreSQL.
    pub sled: Option<Arc<Store>>,
    pub plugins: Arc<PluginHost>,
    pub metrics: Arc<Metrics>,
    /// Largest accepted request body (`server.body_bytes_max`).
    pub body_bytes_max: usize,
    /// Largest accepted body of the routes that carry files (`server.upload_bytes_max`).
    pub upload_bytes_max: usize,
    /// Largest accepted bill upload (`server.bill_upload_bytes_max`).
    pub bill_upload_bytes_max: usize,
    /// The anomaly monitor's handle (inputs, blocks, new alerts).
    pub monitor: Arc<Monitor>,
    pub payments: Arc<Payments>,
    pub onboarding: Arc<Onboarding>,
    pub reconciler: Arc<crate::reconciliation::Reconciler>,
    pub clock: Arc<dyn Clock>,
    /// The serialized OpenAPI document, set once the router (its source) is built.
    pub openapi_json: OnceLock<Bytes>,
    /// Signs the cashier page's form tokens (random per process: a page rendered before a
    /// restart asks the payer to choose again).
    pub cashier_key: ring::hmac::Key,
    /// One reload at a time (SIGHUP and the API may ask at once).
    reloading: tokio::sync::Mutex<()>,
    /// `[console]`: sessions, and the refunds that need a fresh code.
    pub console: crate::config::ConsoleSettings,
    /// Failed console log-ins per client, for the rate limit.
    pub login_failures: crate::auth::FailureCounter,
    /// Wrong second-factor codes per API key (`api::second_factor`).
    pub code_failures: crate::auth::FailureCounter,
}

impl AppState {
    /// Builds every part from `config`. Fails when the configured master key cannot be
    /// loaded (an invalid config never starts a daemon).
    pub fn new(
        config: Config,
        store: Opened,
        plugins: PluginHost,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<AppState>, String> {
        let clock = crate::clock::system();
        let (store, sled) = store.split();
        let plugins = Arc::new(plugins);
        let merchants = Arc::new(MerchantDirectory::new(
            config.configured_merchants(),
            config.platform_merchant(),
        ));
        let master_key = config.master_key()?.map(Arc::new);
        let monitor = Arc::new(Monitor::new(
            &config.monitor.settings(),
            metrics.clone(),
            store.clone(),
            (store.bus().clone(), store.feed().clone()),
            merchants.clone(),
        ));
        let payments = Arc::new(Payments {
            store: store.clone(),
            plugins: plugins.clone(),
            merchants: merchants.clone(),
            monitor: monitor.clone(),
            metrics: metrics.clone(),
            in_flight: Default::default(),
            settings: config.payment_settings(),
            clock: clock.clone(),
        });
        let onboarding = Arc::new(Onboarding {
            store: store.clone(),
            merchants: merchants.clone(),
            plugins: plugins.clone(),
            master_key,
            public_url: config.public_url(),
            clock: clock.clone(),
        });
        let reconciler = Arc::new(crate::reconciliation::Reconciler {
            payments: payments.clone(),
            store: store.clone(),
            runs: tokio::sync::Semaphore::new(crate::reconciliation::RUNS_AT_ONCE),
        });
        Ok(Arc::new(AppState {
            keys: ArcSwap::from_pointee(config.key_ring_with(onboarding.master_key.as_deref())?),
            console: config.console.settings(),
            body_bytes_max: config.body_bytes_max(),
            upload_bytes_max: config.upload_bytes_max(),
            bill_upload_bytes_max: config.bill_upload_bytes_max(),
            config,
            merchants,
            store,
            sled,
            plugins,
            metrics,
            monitor,
            payments,
            onboarding,
            reconciler,
            clock,
            openapi_json: OnceLock::new(),
            cashier_key: random_hmac_key(),
            reloading: tokio::sync::Mutex::new(()),
            login_failures: Default::default(),
            code_failures: crate::auth::FailureCounter::over(
                crate::auth::totp::WRONG_CODES_WINDOW_MS,
            ),
        }))
    }

    /// Re-reads the config file and applies its API keys (`[[api_keys]]`), its merchants
    /// with their providers' settings and keys (`[[merchants]]`, `[onboarding]
    /// platform_merchant`) and its plugins (`[[plugins]]`), all or nothing: everything is
    /// read, checked and loaded first, and a config that fails anywhere leaves the running
    /// set in service. Requests in flight finish with what they started with. Nothing else
    /// of the file is applied (that needs a restart).
    pub async fn reload(&self) -> Result<ReloadReport, String> {
        let _one_at_a_time = self.reloading.lock().await;
        let fresh = Config::load(self.config.file()).map_err(|e| format!("invalid config: {e}"))?;
        let keys = fresh.key_ring()?;
        let merchants = fresh.configured_merchants();
        let prepared = self.plugins.prepare_reload(&fresh, &fresh).await?;
        // Everything is ready: swap.
        let merchant_count = merchants.len();
        self.keys.store(Arc::new(keys));
        self.merchants
            .replace_configured(merchants, fresh.platform_merchant());
        let plugins = self.plugins.commit_reload(prepared);
        // Onboarded merchants collect under the platform's (maybe new) settings.
        if let Err(e) = crate::merchants::onboarding::load(&self.onboarding).await {
            tracing::error!("cannot refresh the onboarded merchants after a reload: {e}");
        }
        let report = ReloadReport {
            api_keys: fresh.api_keys.len(),
            merchants: merchant_count,
            plugins,
        };
        tracing::info!(
            api_keys = report.api_keys,
            merchants = report.merchants,
            plugins = ?report.plugins.plugins,
            changed = ?report.plugins.changed,
            "reloaded"
        );
        Ok(report)
    }
}

/// What a reload applied.
#[derive(Debug, Clone)]
pub struct ReloadReport {
    /// API keys now accepted.
    pub api_keys: usize,
    /// Merchants the config declares now.
    pub merchants: usize,
    pub plugins: crate::plugins::ReloadReport,
}

/// The store the daemon opened, by engine.
pub enum Opened {
    Sled(Box<Store>),
    Postgres(Box<crate::store::postgres::PgStore>),
}

impl Opened {
    /// The store behind its ports, and the embedded engine's own handle if it is that one.
    fn split(self) -> (Arc<dyn Storage>, Option<Arc<Store>>) {
        match self {
            Opened::Sled(store) => {
                let store: Arc<Store> = Arc::from(store);
                (store.clone(), Some(store))
            }
            Opened::Postgres(store) => {
                let store: Arc<crate::store::postgres::PgStore> = Arc::from(store);
                // Every daemon's events, on this one's feed.
                store.follow();
                (store, None)
            }
        }
    }
}

fn random_hmac_key() -> ring::hmac::Key {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the OS has randomness");
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)
}
