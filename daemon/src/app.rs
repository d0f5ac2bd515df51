//! The daemon's shared state, built once at start from the config and the opened store, and
//! handed to every request.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;

use crate::auth::KeyRing;
use crate::config::Config;
use crate::merchants::MerchantDirectory;
use crate::metrics::Metrics;
use crate::plugins::PluginHost;
use crate::store::Store;

pub struct AppState {
    /// The config the daemon started with (command-line overrides applied).
    pub config: Config,
    pub keys: KeyRing,
    pub merchants: MerchantDirectory,
    pub store: Store,
    pub plugins: PluginHost,
    pub metrics: Arc<Metrics>,
    /// Largest accepted request body (`server.body_bytes_max`).
    pub body_bytes_max: usize,
    /// Idempotency keys this process is working on (API.md §4: 409 while in progress).
    pub in_flight: crate::payments::service::InFlight,
    /// Seals merchants' sensitive data at rest; `None` when not configured.
    pub master_key: Option<crate::merchants::sealed::MasterKey>,
    /// The anomaly monitor's handle (inputs, blocks, new alerts).
    pub monitor: crate::monitor::Monitor,
    /// The serialized OpenAPI document, set once the router (its source) is built.
    pub openapi_json: OnceLock<Bytes>,
    /// Signs the cashier page's form tokens (random per process: a page rendered before a
    /// restart asks the payer to choose again).
    pub cashier_key: ring::hmac::Key,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        plugins: PluginHost,
        metrics: Arc<Metrics>,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            keys: KeyRing::new(config.api_keys.iter().map(|k| k.entry())),
            merchants: MerchantDirectory::from_config(
                &config.merchants,
                config
                    .onboarding
                    .platform_merchant
                    .as_ref()
                    .map(|p| p.get_ref().as_str()),
            ),
            master_key: config.onboarding.master_key.as_ref().and_then(|source| {
                crate::merchants::sealed::MasterKey::load(source.get_ref())
                    .inspect_err(|e| tracing::error!("master key unusable: {e}"))
                    .ok()
            }),
            body_bytes_max: *config.server.body_bytes_max.get_ref(),
            monitor: crate::monitor::Monitor::new(&config.monitor, metrics.clone()),
            config,
            store,
            plugins,
            metrics,
            in_flight: Default::default(),
            openapi_json: OnceLock::new(),
            cashier_key: random_hmac_key(),
        })
    }

    /// Re-reads the config file and reloads its `[[plugins]]`; nothing else of the file is
    /// applied (that needs a restart).
    pub async fn reload_plugins(&self) -> Result<crate::plugins::ReloadReport, String> {
        let fresh = Config::load(self.config.file()).map_err(|e| format!("invalid config: {e}"))?;
        self.plugins.reload(&fresh, &self.config).await
    }
}

fn random_hmac_key() -> ring::hmac::Key {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the OS has randomness");
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)
}
