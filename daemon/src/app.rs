//! The daemon's shared state, built once at start from the config and the opened store, and
//! handed to every request. It is the composition root: the one place that turns the config
//! into each part's settings and hands each use case only what it works with. Nothing below
//! `api/` sees it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;

use crate::auth::KeyRing;
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::hours::OpeningHours;
use crate::janitor::JanitorSettings;
use crate::merchants::onboarding::Onboarding;
use crate::merchants::sealed::MasterKey;
use crate::merchants::{Merchant, MerchantDirectory, MerchantSource};
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::payments::service::{PaymentSettings, Payments};
use crate::plugins::PluginHost;
use crate::store::Store;

pub struct AppState {
    /// The config the daemon started with (command-line overrides applied).
    pub config: Config,
    pub keys: KeyRing,
    pub merchants: Arc<MerchantDirectory>,
    pub store: Arc<Store>,
    pub plugins: Arc<PluginHost>,
    pub metrics: Arc<Metrics>,
    /// Largest accepted request body (`server.body_bytes_max`).
    pub body_bytes_max: usize,
    /// The anomaly monitor's handle (inputs, blocks, new alerts).
    pub monitor: Arc<Monitor>,
    pub payments: Arc<Payments>,
    pub onboarding: Arc<Onboarding>,
    pub clock: Arc<dyn Clock>,
    /// The serialized OpenAPI document, set once the router (its source) is built.
    pub openapi_json: OnceLock<Bytes>,
    /// Signs the cashier page's form tokens (random per process: a page rendered before a
    /// restart asks the payer to choose again).
    pub cashier_key: ring::hmac::Key,
}

impl AppState {
    /// Builds every part from `config`. Fails when the configured master key cannot be
    /// loaded (an invalid config never starts a daemon).
    pub fn new(
        config: Config,
        store: Store,
        plugins: PluginHost,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<AppState>, String> {
        let clock = crate::clock::system();
        let store = Arc::new(store);
        let plugins = Arc::new(plugins);
        let merchants = Arc::new(MerchantDirectory::new(
            configured_merchants(&config),
            config
                .onboarding
                .platform_merchant
                .as_ref()
                .map(|p| p.get_ref().as_str()),
        ));
        let master_key = match &config.onboarding.master_key {
            Some(source) => Some(Arc::new(
                MasterKey::load(source.get_ref())
                    .map_err(|e| format!("onboarding.master_key: {e}"))?,
            )),
            None => None,
        };
        let monitor = Arc::new(Monitor::new(
            &config.monitor.settings(),
            metrics.clone(),
            store.clone(),
            merchants.clone(),
        ));
        let payments = Arc::new(Payments {
            store: store.clone(),
            plugins: plugins.clone(),
            merchants: merchants.clone(),
            monitor: monitor.clone(),
            metrics: metrics.clone(),
            in_flight: Default::default(),
            settings: payment_settings(&config),
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
        Ok(Arc::new(AppState {
            keys: KeyRing::new(config.api_keys.iter().map(|k| k.entry())),
            body_bytes_max: *config.server.body_bytes_max.get_ref(),
            config,
            merchants,
            store,
            plugins,
            metrics,
            monitor,
            payments,
            onboarding,
            clock,
            openapi_json: OnceLock::new(),
            cashier_key: random_hmac_key(),
        }))
    }

    /// The janitor's settings, from `[payments]`.
    pub fn janitor_settings(&self) -> JanitorSettings {
        let payments = &self.config.payments;
        JanitorSettings {
            interval: Duration::from_millis(*payments.janitor_interval_ms.get_ref()),
            barcode_timeout_ms: *payments.barcode_timeout_ms.get_ref() as i64,
            idempotency_retention_ms: (*payments.idempotency_retention_s.get_ref() as i64)
                .saturating_mul(1000),
        }
    }

    /// Re-reads the config file and reloads its `[[plugins]]`; nothing else of the file is
    /// applied (that needs a restart).
    pub async fn reload_plugins(&self) -> Result<crate::plugins::ReloadReport, String> {
        let fresh = Config::load(self.config.file()).map_err(|e| format!("invalid config: {e}"))?;
        self.plugins.reload(&fresh, &self.config).await
    }
}

/// The config's `[[merchants]]` as the directory holds them.
fn configured_merchants(config: &Config) -> Vec<Merchant> {
    config
        .merchants
        .iter()
        .map(|m| Merchant {
            id: m.id.get_ref().clone(),
            name: m.name.get_ref().clone(),
            source: MerchantSource::Config,
            providers: m
                .providers
                .iter()
                .map(|(name, p)| (name.clone(), p.settings.clone()))
                .collect(),
            // Validated with the config: a file whose hours do not parse never starts.
            opening_hours: m.opening_hours.as_ref().and_then(|h| {
                let offset = m.utc_offset.as_ref().map(|o| o.get_ref().as_str());
                OpeningHours::parse(h.get_ref(), offset).ok()
            }),
            keys_of: m.id.get_ref().clone(),
        })
        .collect()
}

fn payment_settings(config: &Config) -> PaymentSettings {
    PaymentSettings {
        qr_expires_in_s: *config.payments.qr_expires_in_s.get_ref(),
        link_expires_in_s: *config.payments.link_expires_in_s.get_ref(),
        public_url: config.public_url(),
    }
}

fn random_hmac_key() -> ring::hmac::Key {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the OS has randomness");
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)
}
