//! The loaded plugins and which provider each serves. A `PluginSet` is immutable once built;
//! a reload builds a new one and swaps it in, while calls already running keep the
//! `Arc<LoadedPlugin>` they started with.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use super::bindings::WorldPre;
use super::bindings::paygate::provider::types::{PluginInfo, ProviderInfo};
use super::imports::CallState;
use super::limits::PluginLimits;
use crate::outbound::Origin;

/// One plugin, compiled and ready to instantiate.
pub struct LoadedPlugin {
    pub name: String,
    pub path: PathBuf,
    /// Hex SHA-256 of the component file.
    pub sha256: String,
    /// The `paygate:provider` version the component targets (its world is `pre`'s).
    pub world_version: String,
    /// What the plugin said about itself at load.
    pub info: OnceLock<PluginInfo>,
    pub pre: WorldPre<CallState>,
    pub limits: PluginLimits,
    /// The limits of its bill calls.
    pub bill_limits: PluginLimits,
    pub allowed_hosts: Vec<Origin>,
    /// The plugin's `settings` table, as JSON.
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub loaded_at: SystemTime,
    pub calls: AtomicU64,
    pub faults: AtomicU64,
}

impl LoadedPlugin {
    pub fn count_call(&self, faulted: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if faulted {
            self.faults.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The plugins in service, and the provider index over them.
#[derive(Default)]
pub struct PluginSet {
    pub plugins: Vec<Arc<LoadedPlugin>>,
    /// Provider name -> the plugin serving it and what it declared.
    pub providers: BTreeMap<String, (Arc<LoadedPlugin>, Arc<ProviderInfo>)>,
}

impl PluginSet {
    /// Indexes `plugins` by provider; two plugins may not serve the same provider.
    pub fn new(plugins: Vec<Arc<LoadedPlugin>>) -> Result<PluginSet, String> {
        let mut providers = BTreeMap::new();
        for plugin in &plugins {
            let info = plugin
                .info
                .get()
                .expect("plugins are indexed after their info call");
            for provider in &info.providers {
                if let Some((other, _)) = providers.insert(
                    provider.name.clone(),
                    (plugin.clone(), Arc::new(provider.clone())),
                ) {
                    return Err(format!(
                        "plugins {} and {} both serve provider {}",
                        other.name, plugin.name, provider.name
                    ));
                }
            }
        }
        Ok(PluginSet { plugins, providers })
    }
}
