//! The merchants the gateway serves: those declared in the config (`[[merchants]]`) and
//! those onboarded through the API (kept in the store, see `onboarding.rs`). Both are looked
//! up here.
//!
//! An onboarded merchant collects as a sub-merchant of the platform (`[onboarding]
//! platform_merchant`): its providers are those whose activation is `active`, and calls for
//! it use the platform's provider settings and keys plus its own sub-merchant number.

pub mod details;
pub mod documents;
pub mod onboarding;
pub mod sealed;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;

use crate::domain::hours::OpeningHours;
use crate::domain::records::{ActivationRecord, MerchantRecord};

/// Where a merchant record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MerchantSource {
    /// Declared in the config file; changed only by editing the file.
    Config,
    /// Onboarded through the API; kept in the store.
    Api,
}

/// A merchant as the rest of the daemon sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    pub source: MerchantSource,
    /// Providers this merchant collects through, with the settings handed to each plugin.
    pub providers: BTreeMap<String, toml::Table>,
    /// When the merchant is open, if it said (the off-hours rule).
    pub opening_hours: Option<OpeningHours>,
    /// Whose keys the plugins use for it: itself, or the platform for onboarded merchants.
    pub keys_of: String,
    /// Its local time's offset from UTC, in minutes: where its days begin (the archive's
    /// retention counts them). Onboarded merchants keep their platform's.
    pub utc_offset_min: i32,
}

/// The merchants the config declares, and which of them is the platform.
#[derive(Debug, Default)]
struct Configured {
    merchants: BTreeMap<String, Arc<Merchant>>,
    platform: Option<String>,
}

impl Configured {
    fn new(configured: Vec<Merchant>, platform: Option<&str>) -> Configured {
        Configured {
            merchants: configured
                .into_iter()
                .map(|m| (m.id.clone(), Arc::new(m)))
                .collect(),
            platform: platform.map(str::to_owned),
        }
    }
}

/// All known merchants, by id. Lookups hand out shared records (every payment looks its
/// merchant up several times; a deep copy each time would cost on the hot path). The
/// configured ones are replaced whole by a reload; a request that looked its merchant up
/// before keeps the record it got.
#[derive(Debug, Default)]
pub struct MerchantDirectory {
    config: ArcSwap<Configured>,
    onboarded: RwLock<BTreeMap<String, Arc<Merchant>>>,
}

impl MerchantDirectory {
    /// The directory of the merchants declared in the config, and `platform`'s id.
    pub fn new(configured: Vec<Merchant>, platform: Option<&str>) -> MerchantDirectory {
        MerchantDirectory {
            config: ArcSwap::from_pointee(Configured::new(configured, platform)),
            onboarded: RwLock::default(),
        }
    }

    /// Replaces the configured merchants and the platform (a reload). Onboarded merchants
    /// take their platform's settings when put again (`put_onboarded`).
    pub fn replace_configured(&self, configured: Vec<Merchant>, platform: Option<&str>) {
        self.config
            .store(Arc::new(Configured::new(configured, platform)));
    }

    /// The platform merchant (whose provider accounts onboarded merchants use), if any.
    pub fn platform(&self) -> Option<Arc<Merchant>> {
        let config = self.config.load();
        config
            .platform
            .as_ref()
            .and_then(|p| config.merchants.get(p).cloned())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Merchant>> {
        if let Some(merchant) = self.config.load().merchants.get(id) {
            return Some(merchant.clone());
        }
        self.onboarded.read().ok()?.get(id).cloned()
    }

    /// Records (or refreshes) an onboarded merchant and its active providers.
    pub fn put_onboarded(&self, record: &MerchantRecord, activations: &[ActivationRecord]) {
        let platform = self.platform();
        let providers = activations
            .iter()
            .filter(|a| a.status == crate::domain::state::ActivationStatus::Active)
            .filter_map(|a| {
                let mut settings = platform.as_ref()?.providers.get(&a.provider)?.clone();
                settings.insert("activation_id".into(), toml::Value::String(a.id.clone()));
                // Its own sub-merchant, never the platform's.
                settings.remove("sub_merchant_id");
                if let Some(reference) = &a.provider_reference {
                    settings.insert(
                        "sub_merchant_id".into(),
                        toml::Value::String(reference.clone()),
                    );
                }
                Some((a.provider.clone(), settings))
            })
            .collect();
        let merchant = Merchant {
            id: record.id.clone(),
            name: record.name.clone(),
            source: MerchantSource::Api,
            providers,
            opening_hours: None,
            keys_of: platform
                .as_ref()
                .map_or_else(|| record.id.clone(), |p| p.id.clone()),
            utc_offset_min: platform.as_ref().map_or(0, |p| p.utc_offset_min),
        };
        if let Ok(mut onboarded) = self.onboarded.write() {
            onboarded.insert(record.id.clone(), Arc::new(merchant));
        }
    }

    /// Merchants in id order, starting after `after` (exclusive) when given.
    pub fn list_from(&self, after: Option<&str>) -> Vec<Arc<Merchant>> {
        let mut all: BTreeMap<String, Arc<Merchant>> = self.config.load().merchants.clone();
        if let Ok(onboarded) = self.onboarded.read() {
            all.extend(onboarded.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        all.into_values()
            .filter(|m| after.is_none_or(|a| m.id.as_str() > a))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.config.load().merchants.len() + self.onboarded.read().map_or(0, |o| o.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
