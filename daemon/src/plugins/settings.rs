//! The plugin host's settings: `[plugin_host]`, every `[[plugins]]` entry and the keys the
//! merchants name, resolved by `config/`. The host reports a wrong setting as a
//! [`FieldError`] naming its field; a [`Source`] (the config) places it.

use std::path::PathBuf;

use super::limits::PluginLimits;
use crate::settings::FieldError;

/// Largest linear memory a plugin may be given (the engine's pool is sized by it).
pub const PLUGIN_MEMORY_BYTES_MAX: u64 = 1 << 30;

/// Everything the host is started with.
#[derive(Debug, Clone)]
pub struct HostSettings {
    /// Calls running at once across all plugins.
    pub max_concurrent_calls: u32,
    /// Public keys (hex Ed25519) whose signature a plugin file must carry; empty: none needed.
    pub trusted_signers: Vec<String>,
    /// Where compiled plugins are cached.
    pub cache_dir: PathBuf,
    /// Extra CA certificates trusted for plugins' outbound HTTPS.
    pub extra_ca_file: Option<PathBuf>,
    pub plugins: Vec<PluginSettings>,
    /// The merchants' keys, read and parsed at start.
    pub keys: Vec<KeySetting>,
    /// The providers each merchant of the config collects through: each must be served.
    pub merchants: Vec<MerchantProviders>,
}

/// One `[[plugins]]` entry; its place in [`HostSettings::plugins`] is its index in the file.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    pub name: String,
    pub path: PathBuf,
    /// The SHA-256 the file must have, when pinned.
    pub sha256: Option<String>,
    /// Origins (`scheme://host[:port]`) it may send HTTP requests to.
    pub allowed_hosts: Vec<String>,
    pub limits: PluginLimits,
    /// The limits of its bill calls (`fetch-bill`, `parse-bill`).
    pub bill_limits: PluginLimits,
    /// Handed to the plugin in every call's `merchant.settings_json`, under the merchant's.
    pub settings: toml::Table,
}

/// A key a merchant names for a provider: where it comes from, and the config field that
/// names it (for errors).
#[derive(Debug, Clone)]
pub struct KeySetting {
    pub merchant: String,
    pub provider: String,
    pub name: String,
    /// `file:...`, `env:...` or `inline:...`, as written.
    pub source: String,
    pub field: String,
}

/// The providers a config merchant collects through.
#[derive(Debug, Clone)]
pub struct MerchantProviders {
    /// Its index in `[[merchants]]`.
    pub index: usize,
    pub providers: Vec<String>,
}

/// Where the host's settings come from: the config implements it, and places the host's
/// errors in the file.
pub trait Source {
    type Error: std::fmt::Display;
    fn host_settings(&self) -> HostSettings;
    fn locate(&self, error: FieldError) -> Self::Error;
}
