//! The configuration file (`config/paygate.toml`): one section per concern, every field
//! documented in the default file, unknown fields rejected.
//!
//! Loading is two steps: serde turns the TOML into these structs (type errors, unknown and
//! missing fields), then [`Config::validate`] checks what types cannot say (hash formats,
//! files that must exist, duplicate ids). Both report a [`ConfigError`] that names the file,
//! the line and the field, because an operator reading it at 3 a.m. should not have to guess.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::auth::Role;
use crate::settings::FieldError;
pub use crate::settings::KeySource;

mod console;
mod monitor;
mod webhooks;
pub use console::{ConsoleConfig, ConsoleSettings};
pub use monitor::{Action, MonitorConfig, OpeningHours, RULES, RuleSettings, Severity};
pub use webhooks::{WebhookEndpointConfig, WebhooksConfig};

/// Largest request body an operator may allow; more is a configuration mistake.
pub const BODY_BYTES_MAX_LIMIT: usize = 16 * 1024 * 1024;
/// The most `server.bill_upload_bytes_max` may be (a day's bill, as uploaded).
pub const BILL_UPLOAD_BYTES_MAX_LIMIT: usize = 256 * 1024 * 1024;
/// Longest drain an operator may ask for at shutdown.
pub const DRAIN_TIMEOUT_MS_LIMIT: u64 = 5 * 60 * 1000;
/// Longest request-head, body, idle and HTTP/2 keep-alive time an operator may configure:
/// beyond an hour a connection bound is no bound.
pub const CONNECTION_TIMEOUT_MS_LIMIT: u64 = 60 * 60 * 1000;
/// Largest connection limit an operator may configure (per listener, and per peer).
pub use crate::server::limits::MAX_CONNECTIONS_LIMIT;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub store: StoreConfig,
    /// API keys, stored as SHA-256 hashes only (API.md §2).
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// Merchants declared in the file; the onboarding API adds more at run time.
    #[serde(default)]
    pub merchants: Vec<MerchantConfig>,
    /// Payment rules.
    #[serde(default)]
    pub payments: PaymentsConfig,
    /// How plugins are run and trusted.
    #[serde(default)]
    pub plugin_host: PluginHostConfig,
    /// The wallet plugins to load.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Outgoing webhooks.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// The anomaly monitor.
    #[serde(default)]
    pub monitor: MonitorConfig,
    /// Merchant onboarding: the master key for sensitive data, the platform account.
    #[serde(default)]
    pub onboarding: OnboardingConfig,
    /// The back office: sessions, and the refunds that need a fresh authenticator code.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// The daily reconciliation of each merchant's books against its providers' bills.
    #[serde(default)]
    pub reconciliation: ReconciliationConfig,
    /// The file this came from and its text, to locate problems found after loading
    /// (a taken listen address, an unreadable certificate).
    #[serde(skip)]
    origin: Origin,
}

#[derive(Debug, Clone, Default)]
struct Origin {
    file: PathBuf,
    text: String,
}

/// `[server]`: where and how the HTTP API listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// TCP address; loopback by default. Speaks TLS when `[server.tls]` is present.
    #[serde(default = "default_listen")]
    pub listen: Spanned<String>,
    /// Optional Unix socket path, served in addition to the TCP listener (plain HTTP).
    #[serde(default)]
    pub unix_socket: Option<Spanned<PathBuf>>,
    /// Largest accepted request body; larger bodies get `413`.
    #[serde(default = "default_body_bytes_max")]
    pub body_bytes_max: Spanned<usize>,
    /// Largest accepted body of the routes that carry files (an activation's images, up to
    /// three of 2 MiB, base64 in JSON); larger bodies get `413`.
    #[serde(default = "default_upload_bytes_max")]
    pub upload_bytes_max: Spanned<usize>,
    /// Largest accepted body of `POST /v1/reconciliations` (a day's bill file, uploaded as
    /// downloaded from the provider's portal); larger bodies get `413`.
    #[serde(default = "default_bill_upload_bytes_max")]
    pub bill_upload_bytes_max: Spanned<usize>,
    /// How long in-flight requests may run after SIGTERM/SIGINT before the daemon exits.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: Spanned<u64>,
    /// From accept to the first complete request head (TLS handshake and protocol detection
    /// included); a connection that has not sent one by then is closed.
    #[serde(default = "default_request_head_timeout_ms")]
    pub request_head_timeout_ms: Spanned<u64>,
    /// From a request's complete head to the end of its body; past it the request is answered
    /// `408 body_timeout` and the connection closed.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: Spanned<u64>,
    /// A connection with no request in flight (from a complete head until its response has
    /// finished streaming) for this long is closed. On HTTP/1 the next head must be complete
    /// by then: a partly sent head is idle time. A request whose response has not moved for
    /// this long (its client stopped reading; event streams excepted) closes it too.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: Spanned<u64>,
    /// HTTP/2: how often the daemon pings a client it has heard nothing from.
    #[serde(default = "default_http2_keep_alive_interval_ms")]
    pub http2_keep_alive_interval_ms: Spanned<u64>,
    /// HTTP/2: a client that does not answer a ping within this is disconnected.
    #[serde(default = "default_http2_keep_alive_timeout_ms")]
    pub http2_keep_alive_timeout_ms: Spanned<u64>,
    /// Open connections per listener; at the limit, a new connection closes the connections
    /// idle longest. Default: the open-file limit less a reserve, shared by the listeners.
    #[serde(default)]
    pub max_connections: Option<Spanned<usize>>,
    /// Open connections per client IP address on the TCP listener (not the Unix socket);
    /// beyond it, the address's own connection idle longest is closed (an IPv6 client counts
    /// by its /64). Default: half of `max_connections`; equal to it, no share.
    #[serde(default)]
    pub max_connections_per_peer: Option<Spanned<usize>>,
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`: TLS 1.3 on the TCP listener, optionally with client certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: Spanned<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Spanned<PathBuf>,
    /// PEM CA bundle; when set, every client must present a certificate it signed.
    #[serde(default)]
    pub client_ca_file: Option<Spanned<PathBuf>>,
}

/// `[payments]`: rules for collecting money.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    /// Largest amount of one payment, in major units, for currencies not in `amount_max`.
    #[serde(default = "default_amount_max")]
    pub amount_max_default: Spanned<String>,
    /// Per-currency maximum, in major units (`{ JPY = "5000000" }`).
    #[serde(default)]
    pub amount_max: BTreeMap<String, Spanned<String>>,
    /// The URL providers reach this daemon at, for notification URLs
    /// (`<public_url>/v1/notify/<provider>/<merchant>`) and link payment pages. Default: the
    /// address the TCP listener is bound to (`http(s)://<ip>:<port>`).
    #[serde(default)]
    pub public_url: Option<Spanned<String>>,
    /// How often the janitor asks providers about pending payments.
    #[serde(default = "default_janitor_interval_ms")]
    pub janitor_interval_ms: Spanned<u64>,
    /// A barcode payment still pending after this long is cancelled at the provider.
    #[serde(default = "default_barcode_timeout_ms")]
    pub barcode_timeout_ms: Spanned<u64>,
    /// How long a link payment's page stays payable when the request gives no `expires_in`.
    #[serde(default = "default_link_expires_in_s")]
    pub link_expires_in_s: Spanned<u32>,
    /// How long a qr payment's code stays payable when the request gives no `expires_in`.
    #[serde(default = "default_qr_expires_in_s")]
    pub qr_expires_in_s: Spanned<u32>,
    /// How long finished idempotency keys are kept (API.md §4: 24 h by default).
    #[serde(default = "default_idempotency_retention_s")]
    pub idempotency_retention_s: Spanned<u64>,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        PaymentsConfig {
            amount_max_default: default_amount_max(),
            amount_max: BTreeMap::new(),
            public_url: None,
            janitor_interval_ms: default_janitor_interval_ms(),
            barcode_timeout_ms: default_barcode_timeout_ms(),
            link_expires_in_s: default_link_expires_in_s(),
            qr_expires_in_s: default_qr_expires_in_s(),
            idempotency_retention_s: default_idempotency_retention_s(),
        }
    }
}

fn default_janitor_interval_ms() -> Spanned<u64> {
    Spanned::new(0..0, 3_000)
}
fn default_barcode_timeout_ms() -> Spanned<u64> {
    Spanned::new(0..0, 60_000)
}
fn default_link_expires_in_s() -> Spanned<u32> {
    Spanned::new(0..0, 900)
}
fn default_qr_expires_in_s() -> Spanned<u32> {
    Spanned::new(0..0, 7200)
}
fn default_idempotency_retention_s() -> Spanned<u64> {
    Spanned::new(0..0, 24 * 3600)
}

fn default_amount_max() -> Spanned<String> {
    Spanned::new(0..0, "100000".to_owned())
}

/// `[plugin_host]`: settings shared by every plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginHostConfig {
    /// Refuse any plugin whose `sha256` is not set in its `[[plugins]]` entry.
    #[serde(default)]
    pub require_pinned: bool,
    /// Hex Ed25519 public keys whose signatures (`<plugin>.wasm.sig`) are trusted. When
    /// non-empty, every plugin must carry a valid signature by one of them.
    #[serde(default = "no_signers")]
    pub trusted_signers: Spanned<Vec<String>>,
    /// Plugin calls that may run at once; more wait for a free slot.
    #[serde(default = "default_max_concurrent_calls")]
    pub max_concurrent_calls: Spanned<u32>,
    /// Where compiled plugins are cached (default: `<data_dir>/plugin-cache`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Extra PEM CA certificates trusted for plugins' outbound HTTPS (e.g. a provider
    /// simulator's), in addition to the Web PKI roots.
    #[serde(default)]
    pub extra_ca_file: Option<Spanned<PathBuf>>,
}

impl Default for PluginHostConfig {
    fn default() -> Self {
        PluginHostConfig {
            require_pinned: false,
            trusted_signers: no_signers(),
            max_concurrent_calls: default_max_concurrent_calls(),
            cache_dir: None,
            extra_ca_file: None,
        }
    }
}

/// `[[plugins]]`: one wallet plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The plugin's name in logs, metrics and `GET /v1/plugins`.
    pub name: Spanned<String>,
    /// The component file (`.wasm`).
    pub path: Spanned<PathBuf>,
    /// Hex SHA-256 of the file; when set, any other file is refused.
    #[serde(default)]
    pub sha256: Option<Spanned<String>>,
    /// Origins (`scheme://host[:port]`) the plugin may send HTTP requests to.
    #[serde(default = "no_hosts")]
    pub allowed_hosts: Spanned<Vec<String>>,
    #[serde(default)]
    pub limits: PluginLimitsConfig,
    /// `[plugins.bill_limits]`: the limits of bill downloads and parsing, whose files are
    /// larger than any other call's (`PluginLimits::bills`).
    #[serde(default)]
    pub bill_limits: PluginLimitsConfig,
    /// Non-secret settings handed to the plugin (base URLs, ...); a merchant's settings for
    /// the provider override them key by key.
    #[serde(default)]
    pub settings: toml::Table,
}

/// `[plugins.limits]` (and `[plugins.bill_limits]`): what one call of the plugin may use.
/// What a section leaves out is the default of its kind of call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLimitsConfig {
    /// Wall-clock time for one call, host I/O included.
    #[serde(default)]
    pub deadline_ms: Option<Spanned<u64>>,
    /// Linear memory the plugin may grow to.
    #[serde(default)]
    pub memory_bytes: Option<Spanned<u64>>,
    /// Size of anything the plugin returns (strings and lists, summed).
    #[serde(default)]
    pub output_bytes: Option<Spanned<u64>>,
    /// Size of an HTTP response body the plugin may receive.
    #[serde(default)]
    pub http_response_bytes: Option<Spanned<u64>>,
    /// Log lines one call may write; further lines are dropped and counted.
    #[serde(default)]
    pub log_lines_per_call: Option<Spanned<u32>>,
}

impl PluginLimitsConfig {
    /// The limits this section sets, `defaults` for what it leaves out.
    pub fn resolve(&self, defaults: crate::plugins::PluginLimits) -> crate::plugins::PluginLimits {
        let bytes = |v: &Option<Spanned<u64>>, default: usize| {
            v.as_ref().map_or(default, |v| {
                usize::try_from(*v.get_ref()).unwrap_or(usize::MAX)
            })
        };
        crate::plugins::PluginLimits {
            deadline: self.deadline_ms.as_ref().map_or(defaults.deadline, |v| {
                std::time::Duration::from_millis(*v.get_ref())
            }),
            memory_bytes: bytes(&self.memory_bytes, defaults.memory_bytes),
            output_bytes: bytes(&self.output_bytes, defaults.output_bytes),
            http_response_bytes: bytes(&self.http_response_bytes, defaults.http_response_bytes),
            log_lines_per_call: self
                .log_lines_per_call
                .as_ref()
                .map_or(defaults.log_lines_per_call, |v| *v.get_ref()),
        }
    }

    /// Every limit set is within its bounds; `section` is the field path of the section.
    fn validate(&self, at: &Locator<'_>, section: &str) -> Result<(), ConfigError> {
        let bounded = [
            (&self.deadline_ms, "deadline_ms", 1, PLUGIN_DEADLINE_MS_MAX),
            (
                &self.memory_bytes,
                "memory_bytes",
                1 << 20,
                PLUGIN_MEMORY_BYTES_MAX,
            ),
            (
                &self.output_bytes,
                "output_bytes",
                1024,
                PLUGIN_OUTPUT_BYTES_MAX,
            ),
            (
                &self.http_response_bytes,
                "http_response_bytes",
                1024,
                PLUGIN_OUTPUT_BYTES_MAX,
            ),
        ];
        for (value, name, min, max) in bounded {
            if let Some(value) = value {
                at.within(value, format!("{section}.{name}"), min, max)?;
            }
        }
        Ok(())
    }
}

/// Bounds on plugin limits an operator may configure.
pub const PLUGIN_DEADLINE_MS_MAX: u64 = 120_000;
pub use crate::plugins::settings::PLUGIN_MEMORY_BYTES_MAX;
pub const PLUGIN_OUTPUT_BYTES_MAX: u64 = 64 << 20;
pub const PLUGIN_CONCURRENT_CALLS_MAX: u32 = 4096;

fn no_signers() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}
fn no_hosts() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}
fn default_max_concurrent_calls() -> Spanned<u32> {
    Spanned::new(0..0, 256)
}
/// `[reconciliation]`: the daily run (API.md §14).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationConfig {
    /// Reconcile the providers' previous day every day (downloading their bills).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `HH:MM`, the merchant's local time from which the previous day is reconciled (after
    /// the providers publish their bills, about 09:00 China time).
    #[serde(default = "default_run_at")]
    pub run_at: Spanned<String>,
    /// How long to wait before asking again for a bill not out yet.
    #[serde(default = "default_retry_every_minutes")]
    pub retry_every_minutes: Spanned<u32>,
}

impl Default for ReconciliationConfig {
    fn default() -> Self {
        ReconciliationConfig {
            enabled: true,
            run_at: default_run_at(),
            retry_every_minutes: default_retry_every_minutes(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_run_at() -> Spanned<String> {
    Spanned::new(0..0, "10:00".into())
}
fn default_retry_every_minutes() -> Spanned<u32> {
    Spanned::new(0..0, 60)
}

/// Minutes after midnight of `HH:MM`.
fn minutes_of(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl ReconciliationConfig {
    fn validate(&self, at: &Locator<'_>) -> Result<(), ConfigError> {
        if minutes_of(self.run_at.get_ref()).is_none() {
            return Err(at.error(
                self.run_at.span(),
                "reconciliation.run_at",
                format!(
                    "must be HH:MM (00:00 to 23:59), got {:?}",
                    self.run_at.get_ref()
                ),
            ));
        }
        at.within(
            &self.retry_every_minutes,
            "reconciliation.retry_every_minutes",
            1,
            1440,
        )
    }

    /// The schedule's settings.
    pub fn settings(&self) -> crate::reconciliation::schedule::ScheduleSettings {
        crate::reconciliation::schedule::ScheduleSettings {
            enabled: self.enabled,
            run_at_min: minutes_of(self.run_at.get_ref()).unwrap_or(600),
            retry_every_ms: i64::from(*self.retry_every_minutes.get_ref()) * 60_000,
        }
    }
}

/// `[onboarding]`: merchants onboarded through the API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnboardingConfig {
    /// The master key sealing identity and account numbers at rest: `env:VAR` or
    /// `file:PATH` (64 hex characters), never inside the data dir. Without it the
    /// merchants API refuses sensitive data (503).
    pub master_key: Option<Spanned<String>>,
    /// The config merchant whose provider accounts (settings and keys) onboard sub-merchants
    /// and collect for them: the service-provider (platform) account.
    pub platform_merchant: Option<Spanned<String>>,
}

/// `[store]`: the embedded database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Folder holding the sled database and its lock file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// How writes become durable: `group` (concurrent writers share one flush) or `each`
    /// (one flush per writer; slower, kept to measure what group commit saves).
    #[serde(default)]
    pub flush: FlushMode,
    /// `fdatasync` the database log after each flush, so that acknowledged writes survive a
    /// power loss or kernel crash, not only a killed process. On unless the file turns it
    /// off (the relaxed mode, warned about at start).
    #[serde(default = "default_fdatasync")]
    pub fdatasync: bool,
    /// Free space (MiB) the data dir's file system must keep: below it, new payments, refunds
    /// and onboarding requests are refused with 503 `storage_low` (work already accepted
    /// still finishes, replays are still answered) until space returns. 0 turns the check
    /// off, leaving only sled's own I/O error (see RELIABILITY.md, "Disk full").
    #[serde(default = "default_min_free_mb")]
    pub min_free_mb: u64,
    /// A flush that has not returned after this many seconds means the store is stuck (a
    /// hung disk, or sled 0.34's known deadlock under load): paygated exits with code 75 so
    /// that its supervisor restarts it; everything acknowledged is already on disk.
    #[serde(default = "default_flush_stall_s")]
    pub flush_stall_s: u64,
    /// Under load (the last flush served more than one request), how long (microseconds) a
    /// flush waits for more requests to share it: fewer, fuller flushes — more throughput
    /// for at most this much more latency per durable write. A lone request never waits.
    /// 0 flushes at once; at most 100000.
    #[serde(default = "default_group_commit_window_us")]
    pub group_commit_window_us: Spanned<u32>,
    /// sled's page cache (MiB): the most of the daemon's memory that the data can take.
    /// Recent records are read from it; older ones from disk. 1 to 65536.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: Spanned<u32>,
    /// Finished payments (with their refunds and events) whose last change is at least this
    /// many days old, counted in whole days of the merchant's `utc_offset`, leave the
    /// database for the archive (`<data_dir>/archive/`), which the API still reads. 1 to
    /// 3650.
    #[serde(default = "default_archive_after_days")]
    pub archive_after_days: Spanned<u32>,
    /// Which engine keeps the data: `sled` (embedded, in `data_dir`; the default) or
    /// `postgres` (a database of its own, `[store.postgres]`, that several daemons share).
    /// With `postgres`, `data_dir` keeps only the compiled plugins' cache.
    #[serde(default = "default_engine")]
    pub engine: Spanned<EngineKind>,
    /// `[store.postgres]`: the database, when `engine = "postgres"`.
    #[serde(default)]
    pub postgres: Option<PostgresConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    #[default]
    Sled,
    Postgres,
}

/// `[store.postgres]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Where the connection string (libpq `key=value` or a `postgresql://` URL, which may
    /// hold a password) comes from: `env:VAR`, `file:PATH` or `inline:TEXT`.
    pub url: Spanned<String>,
    /// Connections this daemon holds at most. 1 to 1000.
    #[serde(default = "default_pg_pool_size")]
    pub pool_size: Spanned<u32>,
    /// Longest a statement may run, and a connection may take to be made or handed out
    /// (milliseconds): past it the request answers 503 `database_unavailable` instead of
    /// hanging. 100 to 600000.
    #[serde(default = "default_pg_statement_timeout_ms")]
    pub statement_timeout_ms: Spanned<u64>,
    /// How long a daemon's hold on a request's idempotency key or on the janitor's work lasts
    /// unless renewed (milliseconds; renewed every third of it while the work runs): the work
    /// of a daemon that stopped answering is taken up by another once it has run out. 1000
    /// to 600000.
    #[serde(default = "default_pg_lease_ms")]
    pub lease_ms: Spanned<u64>,
    /// A PEM file of the certificate authorities that the server's certificate is checked
    /// against, its chain and its name, when the URL says `sslmode=require` (default: the
    /// public web roots). Any other `sslmode` is plaintext.
    pub ca_file: Option<Spanned<std::path::PathBuf>>,
}

fn default_engine() -> Spanned<EngineKind> {
    Spanned::new(0..0, EngineKind::Sled)
}

fn default_pg_pool_size() -> Spanned<u32> {
    Spanned::new(0..0, 16)
}

fn default_pg_statement_timeout_ms() -> Spanned<u64> {
    Spanned::new(0..0, 5_000)
}

fn default_pg_lease_ms() -> Spanned<u64> {
    Spanned::new(0..0, crate::store::port::LEASE_MS_DEFAULT as u64)
}

fn default_archive_after_days() -> Spanned<u32> {
    Spanned::new(0..0, 90)
}

/// Largest accepted page cache: beyond this a typo, not a choice, on a till-side machine.
pub const CACHE_MB_LIMIT: u32 = 65_536;

fn default_cache_mb() -> Spanned<u32> {
    Spanned::new(0..0, 64)
}

/// Longest accepted group-commit window: 0.1 s of added latency is already far beyond use.
pub const GROUP_COMMIT_WINDOW_US_LIMIT: u32 = 100_000;

fn default_group_commit_window_us() -> Spanned<u32> {
    Spanned::new(0..0, 1000)
}

fn default_flush_stall_s() -> u64 {
    30
}

fn default_min_free_mb() -> u64 {
    64
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushMode {
    #[default]
    Group,
    Each,
}

/// `[[api_keys]]`: one key a till, ERP or operator authenticates with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Public name of the key, used in logs, alerts and metrics; never the key itself.
    pub id: Spanned<String>,
    pub role: Role,
    /// Merchants this key may act for (`pos` and `erp`); admin keys see every merchant.
    #[serde(default = "no_merchants")]
    pub merchants: Spanned<Vec<String>>,
    /// Lower-case hex SHA-256 of the key (`paygated keys new` prints it).
    pub sha256: Spanned<String>,
    /// The key's authenticator secret, sealed under `[onboarding] master_key` (written by
    /// `paygated keys totp enroll`): the console's log-in and the API's sensitive operations
    /// then need a code from it.
    pub totp: Option<Spanned<SealedSecret>>,
}

/// A secret sealed under the master key, as the config holds it (`MasterKey::seal`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedSecret {
    pub key_id: String,
    pub nonce: String,
    pub ciphertext: String,
}

impl SealedSecret {
    pub fn sealed(&self) -> crate::domain::records::Sealed {
        crate::domain::records::Sealed {
            key_id: self.key_id.clone(),
            nonce: self.nonce.clone(),
            ciphertext: self.ciphertext.clone(),
        }
    }
}

/// What a key's sealed authenticator secret is bound to: moved to another key, it does not
/// open.
pub fn totp_record_id(key_id: &str) -> String {
    format!("api_key:{key_id}")
}

/// The field name sealed with it.
pub const TOTP_FIELD: &str = "totp";

impl ApiKeyConfig {
    /// The validated entry as the key ring takes it, its authenticator opened with `master`.
    pub fn entry(
        &self,
        master: Option<&crate::merchants::sealed::MasterKey>,
    ) -> Result<crate::auth::KeyEntry, String> {
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(self.sha256.get_ref(), &mut sha256)
            .expect("config validation checked the hash is 64 hex characters");
        let id = self.id.get_ref();
        let second_factor = match &self.totp {
            None => None,
            Some(sealed) => {
                let master = master.ok_or_else(|| {
                    format!(
                        "api key {id} has an authenticator (totp), sealed under the master key: \
                         set [onboarding] master_key"
                    )
                })?;
                let hex_secret = master
                    .open(&totp_record_id(id), TOTP_FIELD, &sealed.get_ref().sealed())
                    .map_err(|e| format!("api key {id}: its totp secret: {e}"))?;
                let secret = zeroize::Zeroizing::new(
                    hex::decode(hex_secret.as_bytes())
                        .map_err(|_| format!("api key {id}: its totp secret is not hex"))?,
                );
                Some(
                    crate::auth::Authenticator::new(id, &secret)
                        .map_err(|e| format!("api key {id}: {e}"))?,
                )
            }
        };
        Ok(crate::auth::KeyEntry {
            id: id.clone(),
            role: self.role,
            merchants: self.merchants.get_ref().clone(),
            sha256,
            second_factor,
        })
    }
}

/// `[[merchants]]`: a shop declared in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantConfig {
    pub id: Spanned<String>,
    pub name: Spanned<String>,
    /// When the merchant is open (`"08:00-22:00"`, local time), for the off-hours rule.
    #[serde(default)]
    pub opening_hours: Option<Spanned<String>>,
    /// The merchant's local time offset from UTC (`"+08:00"`); default UTC.
    #[serde(default)]
    pub utc_offset: Option<Spanned<String>>,
    /// Per provider: plugin settings and the names of the merchant's keys.
    #[serde(default)]
    pub providers: BTreeMap<String, MerchantProviderConfig>,
}

/// `[merchants.providers.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantProviderConfig {
    /// Non-secret values handed to the plugin (app id, merchant number, ...).
    #[serde(default)]
    pub settings: toml::Table,
    /// Key name -> where the key lives: `file:PATH`, `env:VAR` or `inline:VALUE` (tests only).
    #[serde(default)]
    pub keys: BTreeMap<String, Spanned<String>>,
}

fn default_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:8420".to_owned())
}
fn default_body_bytes_max() -> Spanned<usize> {
    Spanned::new(0..0, 64 * 1024)
}
fn default_upload_bytes_max() -> Spanned<usize> {
    Spanned::new(0..0, 9 * 1024 * 1024)
}
fn default_bill_upload_bytes_max() -> Spanned<usize> {
    Spanned::new(0..0, 64 * 1024 * 1024)
}
fn default_drain_timeout_ms() -> Spanned<u64> {
    Spanned::new(0..0, 10_000)
}
fn default_request_head_timeout_ms() -> Spanned<u64> {
    Spanned::new(0..0, 10_000)
}
fn default_body_timeout_ms() -> Spanned<u64> {
    Spanned::new(0..0, 30_000)
}
fn default_idle_timeout_ms() -> Spanned<u64> {
    Spanned::new(0..0, 30_000)
}
fn default_http2_keep_alive_interval_ms() -> Spanned<u64> {
    Spanned::new(0..0, 20_000)
}
fn default_http2_keep_alive_timeout_ms() -> Spanned<u64> {
    Spanned::new(0..0, 10_000)
}
fn no_merchants() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}
fn default_fdatasync() -> bool {
    true
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            unix_socket: None,
            body_bytes_max: default_body_bytes_max(),
            upload_bytes_max: default_upload_bytes_max(),
            bill_upload_bytes_max: default_bill_upload_bytes_max(),
            drain_timeout_ms: default_drain_timeout_ms(),
            request_head_timeout_ms: default_request_head_timeout_ms(),
            body_timeout_ms: default_body_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            http2_keep_alive_interval_ms: default_http2_keep_alive_interval_ms(),
            http2_keep_alive_timeout_ms: default_http2_keep_alive_timeout_ms(),
            max_connections: None,
            max_connections_per_peer: None,
            tls: None,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: default_data_dir(),
            flush: FlushMode::default(),
            fdatasync: default_fdatasync(),
            min_free_mb: default_min_free_mb(),
            flush_stall_s: default_flush_stall_s(),
            group_commit_window_us: default_group_commit_window_us(),
            cache_mb: default_cache_mb(),
            archive_after_days: default_archive_after_days(),
            engine: default_engine(),
            postgres: None,
        }
    }
}

/// A configuration problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    /// Dotted path of the field, e.g. `api_keys[0].sha256`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Builds located errors for one file's text.
pub struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
}

impl<'a> Locator<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Locator { file, text }
    }

    /// An error at `span` (a default value has the empty span `0..0` and no position).
    pub fn error(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let position = (span != (0..0)).then(|| line_column(self.text, span.start));
        ConfigError {
            file: self.file.to_owned(),
            position,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// `value` lies in `min..=max`, or the error naming `field` at its span.
    pub fn within<T: PartialOrd + Copy + std::fmt::Display>(
        &self,
        value: &Spanned<T>,
        field: impl Into<String>,
        min: T,
        max: T,
    ) -> Result<(), ConfigError> {
        let v = *value.get_ref();
        if (min..=max).contains(&v) {
            return Ok(());
        }
        Err(self.error(
            value.span(),
            field,
            format!("must be between {min} and {max}, got {v}"),
        ))
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            position: None,
            field: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates `text`; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let syntax_error = |e: toml::de::Error| ConfigError {
            file: path.to_owned(),
            position: e.span().map(|s| line_column(text, s.start)),
            field: None,
            message: e.message().to_owned(),
        };
        let deserializer = toml::Deserializer::parse(text).map_err(syntax_error)?;
        let mut config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            // `Spanned` fields add a private segment to the path; it means nothing to a reader.
            let field = e
                .path()
                .to_string()
                .replace(".$__serde_spanned_private_value", "");
            let mut error = syntax_error(e.into_inner());
            error.field = (field != ".").then_some(field);
            error
        })?;
        config.validate(&Locator::new(path, text))?;
        config.origin = Origin {
            file: path.to_owned(),
            text: text.to_owned(),
        };
        Ok(config)
    }

    /// The file the config was loaded from.
    pub fn file(&self) -> &Path {
        &self.origin.file
    }

    /// An error about `field` at `span` of this config's file.
    pub fn error_at(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        Locator::new(&self.origin.file, &self.origin.text).error(span, field, message)
    }

    /// `error`, placed at its field in the file (no position when the field is not written
    /// there, e.g. a default).
    pub fn locate(&self, error: FieldError) -> ConfigError {
        let span = span_of(&self.origin.text, &error.field).unwrap_or(0..0);
        self.error_at(span, error.field, error.message)
    }

    /// Where to listen.
    pub fn listen_settings(&self) -> crate::server::ListenSettings {
        crate::server::ListenSettings {
            listen: self.listen_addr(),
            unix_socket: self
                .server
                .unix_socket
                .as_ref()
                .map(|p| p.get_ref().clone()),
            tls: self
                .server
                .tls
                .as_ref()
                .map(|tls| crate::server::tls::TlsSettings {
                    cert_file: tls.cert_file.get_ref().clone(),
                    key_file: tls.key_file.get_ref().clone(),
                    client_ca_file: tls.client_ca_file.as_ref().map(|f| f.get_ref().clone()),
                }),
        }
    }

    /// How the server bounds its connections and its drain.
    pub fn connection_settings(
        &self,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> crate::server::Settings {
        let server = &self.server;
        let ms = |value: &Spanned<u64>| std::time::Duration::from_millis(*value.get_ref());
        crate::server::Settings {
            drain: ms(&server.drain_timeout_ms),
            request_head_timeout: ms(&server.request_head_timeout_ms),
            body_timeout: ms(&server.body_timeout_ms),
            idle_timeout: ms(&server.idle_timeout_ms),
            http2_keep_alive_interval: ms(&server.http2_keep_alive_interval_ms),
            http2_keep_alive_timeout: ms(&server.http2_keep_alive_timeout_ms),
            max_connections: server.max_connections.as_ref().map(|m| *m.get_ref()),
            max_connections_per_peer: server
                .max_connections_per_peer
                .as_ref()
                .map(|m| *m.get_ref()),
            metrics,
        }
    }

    /// The TCP address, already checked by [`Config::validate`].
    pub fn listen_addr(&self) -> SocketAddr {
        self.server
            .listen
            .get_ref()
            .parse()
            .expect("validate() checked the listen address")
    }

    fn validate(&self, at: &Locator<'_>) -> Result<(), ConfigError> {
        self.server.validate(at)?;
        let mut key_ids = BTreeSet::new();
        let mut key_hashes = BTreeSet::new();
        for (i, key) in self.api_keys.iter().enumerate() {
            let field = |name: &str| format!("api_keys[{i}].{name}");
            check_name(at, &key.id, &field("id"), "key_")?;
            if !key_ids.insert(key.id.get_ref().as_str()) {
                return Err(at.error(
                    key.id.span(),
                    field("id"),
                    format!("duplicate key id \"{}\"", key.id.get_ref()),
                ));
            }
            let hash = key.sha256.get_ref();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(at.error(
                    key.sha256.span(),
                    field("sha256"),
                    format!(
                        "must be 64 hex characters (the SHA-256 of the key, as printed by \
                         `paygated keys new`), got {} characters",
                        hash.chars().count()
                    ),
                ));
            }
            if !key_hashes.insert(hash.to_ascii_lowercase()) {
                return Err(at.error(
                    key.sha256.span(),
                    field("sha256"),
                    "the same key hash is declared twice",
                ));
            }
            check_key_scope(key.role, key.merchants.get_ref())
                .map_err(|m| at.error(key.merchants.span(), field("merchants"), m))?;
            if let Some(totp) = &key.totp {
                if key.role == Role::Pos {
                    return Err(at.error(
                        totp.span(),
                        field("totp"),
                        "an authenticator is for erp and admin keys (the console and the \
                         sensitive operations); a pos key cannot have one",
                    ));
                }
                if self.onboarding.master_key.is_none() {
                    return Err(at.error(
                        totp.span(),
                        field("totp"),
                        "the secret is sealed under the master key: set [onboarding] master_key",
                    ));
                }
            }
            for merchant in key.merchants.get_ref() {
                if !is_merchant_id(merchant) {
                    return Err(at.error(
                        key.merchants.span(),
                        field("merchants"),
                        format!("\"{merchant}\" is not a merchant id (m_ followed by letters, digits or _)"),
                    ));
                }
            }
        }
        self.validate_plugins(at)?;
        self.validate_payments(at)?;
        self.webhooks.validate(at)?;
        self.console.validate(at)?;
        self.reconciliation.validate(at)?;
        self.monitor.validate(at)?;
        self.validate_onboarding(at)?;
        self.store.validate(at)?;
        let mut merchant_ids = BTreeSet::new();
        for (i, merchant) in self.merchants.iter().enumerate() {
            let field = |name: &str| format!("merchants[{i}].{name}");
            if !is_merchant_id(merchant.id.get_ref()) {
                return Err(at.error(
                    merchant.id.span(),
                    field("id"),
                    "must be m_ followed by 1 to 30 letters, digits or _",
                ));
            }
            if !merchant_ids.insert(merchant.id.get_ref().as_str()) {
                return Err(at.error(
                    merchant.id.span(),
                    field("id"),
                    format!("duplicate merchant id \"{}\"", merchant.id.get_ref()),
                ));
            }
            if merchant.name.get_ref().trim().is_empty() {
                return Err(at.error(merchant.name.span(), field("name"), "must not be empty"));
            }
            if let Some(hours) = &merchant.opening_hours {
                let offset = merchant.utc_offset.as_ref().map(|o| o.get_ref().as_str());
                OpeningHours::parse(hours.get_ref(), offset)
                    .map_err(|m| at.error(hours.span(), field("opening_hours"), m))?;
            } else if let Some(offset) = &merchant.utc_offset {
                OpeningHours::parse("00:00-23:59", Some(offset.get_ref()))
                    .map_err(|m| at.error(offset.span(), field("utc_offset"), m))?;
            }
            for (provider, settings) in &merchant.providers {
                for (key_name, source) in &settings.keys {
                    let field = field(&format!("providers.{provider}.keys.{key_name}"));
                    match KeySource::parse(source.get_ref()) {
                        Ok(KeySource::File(path)) if !path.is_file() => {
                            return Err(at.error(
                                source.span(),
                                field,
                                format!("key file {} does not exist", path.display()),
                            ));
                        }
                        Ok(KeySource::Env(var)) if std::env::var_os(&var).is_none() => {
                            return Err(at.error(
                                source.span(),
                                field,
                                format!("environment variable {var} is not set"),
                            ));
                        }
                        Ok(_) => {}
                        Err(message) => return Err(at.error(source.span(), field, message)),
                    }
                }
            }
        }
        Ok(())
    }
}

impl Config {
    fn validate_payments(&self, at: &Locator<'_>) -> Result<(), ConfigError> {
        let payments = &self.payments;
        let check = |value: &Spanned<String>, field: String| -> Result<(), ConfigError> {
            match value.get_ref().parse::<rust_decimal::Decimal>() {
                Ok(max)
                    if max > rust_decimal::Decimal::ZERO
                        && max
                            <= rust_decimal::Decimal::from(
                                crate::domain::money::AMOUNT_CEILING,
                            ) =>
                {
                    Ok(())
                }
                _ => Err(at.error(
                    value.span(),
                    field,
                    format!(
                        "\"{}\" must be a positive decimal amount of at most {}",
                        value.get_ref(),
                        crate::domain::money::AMOUNT_CEILING
                    ),
                )),
            }
        };
        check(
            &payments.amount_max_default,
            "payments.amount_max_default".into(),
        )?;
        for (currency, max) in &payments.amount_max {
            if crate::domain::money::Currency::from_code(currency).is_none() {
                return Err(at.error(
                    max.span(),
                    format!("payments.amount_max.{currency}"),
                    format!(
                        "unknown currency; use one of {}",
                        crate::domain::money::Currency::supported_codes().join(", ")
                    ),
                ));
            }
            check(max, format!("payments.amount_max.{currency}"))?;
        }
        for (value, field) in [
            (&payments.link_expires_in_s, "payments.link_expires_in_s"),
            (&payments.qr_expires_in_s, "payments.qr_expires_in_s"),
        ] {
            if !(1..=7 * 24 * 3600).contains(value.get_ref()) {
                return Err(at.error(value.span(), field, "must be 1 to 604800 seconds"));
            }
        }
        if let Some(url) = &payments.public_url {
            let ok = url.get_ref().parse::<hyper::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            });
            if !ok || url.get_ref().ends_with('/') {
                return Err(at.error(
                    url.span(),
                    "payments.public_url",
                    "must be an http(s) URL with a host and no trailing slash",
                ));
            }
        }
        Ok(())
    }

    fn validate_onboarding(&self, at: &Locator<'_>) -> Result<(), ConfigError> {
        let onboarding = &self.onboarding;
        if let Some(key) = &onboarding.master_key {
            match KeySource::parse(key.get_ref()) {
                Ok(KeySource::Inline(_)) => {
                    return Err(at.error(
                        key.span(),
                        "onboarding.master_key",
                        "must come from env: or file:, never inline",
                    ));
                }
                Ok(KeySource::File(path)) => {
                    let data_dir = self.store.data_dir.canonicalize().ok();
                    let file = path.canonicalize().ok();
                    if let (Some(dir), Some(file)) = (&data_dir, &file)
                        && file.starts_with(dir)
                    {
                        return Err(at.error(
                            key.span(),
                            "onboarding.master_key",
                            "the master key must not live in the data dir (a copy of the data would carry its key)",
                        ));
                    }
                    if file.is_none() {
                        return Err(at.error(
                            key.span(),
                            "onboarding.master_key",
                            format!("key file {} does not exist", path.display()),
                        ));
                    }
                }
                Ok(KeySource::Env(_)) => {}
                Err(message) => return Err(at.error(key.span(), "onboarding.master_key", message)),
            }
        }
        if let Some(platform) = &onboarding.platform_merchant
            && !self
                .merchants
                .iter()
                .any(|m| m.id.get_ref() == platform.get_ref())
        {
            return Err(at.error(
                platform.span(),
                "onboarding.platform_merchant",
                format!(
                    "\"{}\" is not a merchant declared in [[merchants]]",
                    platform.get_ref()
                ),
            ));
        }
        Ok(())
    }

    /// The maximum amount of one payment in `currency`, in major units.
    pub fn amount_max(&self, currency: &str) -> rust_decimal::Decimal {
        let text = self
            .payments
            .amount_max
            .get(currency)
            .unwrap_or(&self.payments.amount_max_default);
        text.get_ref()
            .parse()
            .expect("validate() checked the maximum")
    }

    /// The base URL providers use to reach this daemon.
    pub fn public_url(&self) -> String {
        match &self.payments.public_url {
            Some(url) => url.get_ref().clone(),
            None => format!("http://{}", self.server.listen.get_ref()),
        }
    }

    fn validate_plugins(&self, at: &Locator<'_>) -> Result<(), ConfigError> {
        let host = &self.plugin_host;
        for signer in host.trusted_signers.get_ref() {
            if signer.len() != 64 || !signer.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(at.error(
                    host.trusted_signers.span(),
                    "plugin_host.trusted_signers",
                    format!("\"{signer}\" is not a hex Ed25519 public key (64 hex characters)"),
                ));
            }
        }
        at.within(
            &host.max_concurrent_calls,
            "plugin_host.max_concurrent_calls",
            1,
            PLUGIN_CONCURRENT_CALLS_MAX,
        )?;
        if let Some(ca) = &host.extra_ca_file
            && !ca.get_ref().is_file()
        {
            return Err(at.error(
                ca.span(),
                "plugin_host.extra_ca_file",
                format!("file {} does not exist", ca.get_ref().display()),
            ));
        }
        let mut names = BTreeSet::new();
        for (i, plugin) in self.plugins.iter().enumerate() {
            let field = |name: &str| format!("plugins[{i}].{name}");
            check_name(at, &plugin.name, &field("name"), "")?;
            if !names.insert(plugin.name.get_ref().as_str()) {
                return Err(at.error(
                    plugin.name.span(),
                    field("name"),
                    format!("duplicate plugin name \"{}\"", plugin.name.get_ref()),
                ));
            }
            if !plugin.path.get_ref().is_file() {
                return Err(at.error(
                    plugin.path.span(),
                    field("path"),
                    format!(
                        "plugin file {} does not exist (cargo xtask build puts the bundled plugins in target/plugins/)",
                        plugin.path.get_ref().display()
                    ),
                ));
            }
            match &plugin.sha256 {
                Some(hash) => {
                    let text = hash.get_ref();
                    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(at.error(
                            hash.span(),
                            field("sha256"),
                            "must be 64 hex characters",
                        ));
                    }
                }
                None if host.require_pinned => {
                    return Err(at.error(
                        plugin.name.span(),
                        field("sha256"),
                        "plugin_host.require_pinned is set, so every plugin needs its sha256",
                    ));
                }
                None => {}
            }
            for origin in plugin.allowed_hosts.get_ref() {
                crate::outbound::Origin::parse(origin).map_err(|m| {
                    at.error(plugin.allowed_hosts.span(), field("allowed_hosts"), m)
                })?;
            }
            plugin.limits.validate(at, &field("limits"))?;
            plugin.bill_limits.validate(at, &field("bill_limits"))?;
        }
        Ok(())
    }
}

impl StoreConfig {
    fn validate(&self, at: &Locator<'_>) -> Result<(), ConfigError> {
        let window = *self.group_commit_window_us.get_ref();
        if window > GROUP_COMMIT_WINDOW_US_LIMIT {
            return Err(at.error(
                self.group_commit_window_us.span(),
                "store.group_commit_window_us",
                format!("must be at most {GROUP_COMMIT_WINDOW_US_LIMIT} (0.1 s), got {window}"),
            ));
        }
        at.within(&self.cache_mb, "store.cache_mb", 1, CACHE_MB_LIMIT)?;
        at.within(
            &self.archive_after_days,
            "store.archive_after_days",
            1,
            3650,
        )?;
        match (self.engine.get_ref(), &self.postgres) {
            (EngineKind::Postgres, None) => Err(at.error(
                self.engine.span(),
                "store.engine",
                "\"postgres\" needs a [store.postgres] table with its url",
            )),
            (_, Some(pg)) => {
                if let Err(e) = crate::settings::KeySource::parse(pg.url.get_ref()) {
                    return Err(at.error(pg.url.span(), "store.postgres.url", e));
                }
                at.within(&pg.pool_size, "store.postgres.pool_size", 1, 1000)?;
                at.within(
                    &pg.statement_timeout_ms,
                    "store.postgres.statement_timeout_ms",
                    100,
                    600_000,
                )?;
                at.within(&pg.lease_ms, "store.postgres.lease_ms", 1_000, 600_000)
            }
            (EngineKind::Sled, None) => Ok(()),
        }
    }
}

impl ServerConfig {
    fn validate(&self, at: &Locator<'_>) -> Result<(), ConfigError> {
        if let Err(e) = self.listen.get_ref().parse::<SocketAddr>() {
            return Err(at.error(
                self.listen.span(),
                "server.listen",
                format!(
                    "\"{}\" is not an IP:port address ({e})",
                    self.listen.get_ref()
                ),
            ));
        }
        at.within(
            &self.body_bytes_max,
            "server.body_bytes_max",
            1,
            BODY_BYTES_MAX_LIMIT,
        )?;
        at.within(
            &self.upload_bytes_max,
            "server.upload_bytes_max",
            1,
            BODY_BYTES_MAX_LIMIT,
        )?;
        at.within(
            &self.bill_upload_bytes_max,
            "server.bill_upload_bytes_max",
            1,
            BILL_UPLOAD_BYTES_MAX_LIMIT,
        )?;
        let drain = *self.drain_timeout_ms.get_ref();
        if drain > DRAIN_TIMEOUT_MS_LIMIT {
            return Err(at.error(
                self.drain_timeout_ms.span(),
                "server.drain_timeout_ms",
                format!("must be at most {DRAIN_TIMEOUT_MS_LIMIT}, got {drain}"),
            ));
        }
        let timeouts = [
            (
                &self.request_head_timeout_ms,
                "server.request_head_timeout_ms",
            ),
            (&self.body_timeout_ms, "server.body_timeout_ms"),
            (&self.idle_timeout_ms, "server.idle_timeout_ms"),
            (
                &self.http2_keep_alive_interval_ms,
                "server.http2_keep_alive_interval_ms",
            ),
            (
                &self.http2_keep_alive_timeout_ms,
                "server.http2_keep_alive_timeout_ms",
            ),
        ];
        for (value, field) in timeouts {
            at.within(value, field, 1, CONNECTION_TIMEOUT_MS_LIMIT)?;
        }
        if let Some(max) = &self.max_connections {
            at.within(max, "server.max_connections", 1, MAX_CONNECTIONS_LIMIT)?;
        }
        if let Some(per_peer) = &self.max_connections_per_peer {
            let max = self
                .max_connections
                .as_ref()
                .map_or(MAX_CONNECTIONS_LIMIT, |m| *m.get_ref());
            at.within(per_peer, "server.max_connections_per_peer", 1, max)?;
        }
        if let Some(tls) = &self.tls {
            let files = [
                Some((&tls.cert_file, "server.tls.cert_file")),
                Some((&tls.key_file, "server.tls.key_file")),
                tls.client_ca_file
                    .as_ref()
                    .map(|f| (f, "server.tls.client_ca_file")),
            ];
            for (file, field) in files.into_iter().flatten() {
                if !file.get_ref().is_file() {
                    return Err(at.error(
                        file.span(),
                        field,
                        format!("file {} does not exist", file.get_ref().display()),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_name(
    at: &Locator<'_>,
    name: &Spanned<String>,
    field: &str,
    example_prefix: &str,
) -> Result<(), ConfigError> {
    let text = name.get_ref();
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(at.error(
            name.span(),
            field,
            format!(
                "\"{text}\" must be 1 to 64 lower-case letters, digits, _ or - (e.g. \"{example_prefix}till_07\")"
            ),
        ))
    }
}

/// Checks that a key's role and merchant scope fit together (also used by `keys new`).
pub fn check_key_scope(role: Role, merchants: &[String]) -> Result<(), String> {
    match (role, merchants.is_empty()) {
        (Role::Admin, false) => {
            Err("admin keys act for every merchant; remove the merchant list".into())
        }
        (Role::Pos | Role::Erp, true) => Err(format!(
            "a {role} key needs at least one merchant it may act for"
        )),
        _ => Ok(()),
    }
}

/// `m_` followed by 1..=30 characters of `[A-Za-z0-9_]` (ids are at most 32 characters).
pub fn is_merchant_id(id: &str) -> bool {
    id.strip_prefix("m_").is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 30
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Each part's settings, resolved from the file.
impl Config {
    /// `[payments]` as the payments use cases read it.
    pub fn payment_settings(&self) -> crate::payments::service::PaymentSettings {
        crate::payments::service::PaymentSettings {
            qr_expires_in_s: *self.payments.qr_expires_in_s.get_ref(),
            link_expires_in_s: *self.payments.link_expires_in_s.get_ref(),
            public_url: self.public_url(),
            amount_max: self
                .payments
                .amount_max
                .keys()
                .map(|currency| (currency.clone(), self.amount_max(currency)))
                .collect(),
            amount_max_default: self
                .payments
                .amount_max_default
                .get_ref()
                .parse()
                .expect("validate() checked the maximum"),
        }
    }

    /// `[payments]` as the janitor reads it.
    pub fn janitor_settings(&self) -> crate::janitor::JanitorSettings {
        let payments = &self.payments;
        crate::janitor::JanitorSettings {
            interval: std::time::Duration::from_millis(*payments.janitor_interval_ms.get_ref()),
            barcode_timeout_ms: *payments.barcode_timeout_ms.get_ref() as i64,
            idempotency_retention_ms: (*payments.idempotency_retention_s.get_ref() as i64)
                .saturating_mul(1000),
        }
    }

    /// The `[[merchants]]` as the merchant directory holds them.
    pub fn configured_merchants(&self) -> Vec<crate::merchants::Merchant> {
        self.merchants
            .iter()
            .map(|m| crate::merchants::Merchant {
                id: m.id.get_ref().clone(),
                name: m.name.get_ref().clone(),
                source: crate::merchants::MerchantSource::Config,
                providers: m
                    .providers
                    .iter()
                    .map(|(name, p)| (name.clone(), p.settings.clone()))
                    .collect(),
                // Validated with the file: hours that do not parse never start a daemon.
                opening_hours: m.opening_hours.as_ref().and_then(|h| {
                    let offset = m.utc_offset.as_ref().map(|o| o.get_ref().as_str());
                    OpeningHours::parse(h.get_ref(), offset).ok()
                }),
                keys_of: m.id.get_ref().clone(),
                utc_offset_min: m.utc_offset.as_ref().map_or(0, |o| {
                    OpeningHours::parse("00:00-23:59", Some(o.get_ref()))
                        .map_or(0, |h| h.utc_offset_min)
                }),
            })
            .collect()
    }

    /// `[onboarding] platform_merchant`.
    pub fn platform_merchant(&self) -> Option<&str> {
        self.onboarding
            .platform_merchant
            .as_ref()
            .map(|p| p.get_ref().as_str())
    }

    /// The master key `[onboarding] master_key` names, loaded; an unusable one is an error
    /// (a daemon never starts without the key its config names).
    pub fn master_key(&self) -> Result<Option<crate::merchants::sealed::MasterKey>, String> {
        self.onboarding
            .master_key
            .as_ref()
            .map(|source| {
                crate::merchants::sealed::MasterKey::load(source.get_ref())
                    .map_err(|e| format!("onboarding.master_key: {e}"))
            })
            .transpose()
    }

    /// `[onboarding] master_key` as written (`env:...`, `file:...`).
    pub fn master_key_source(&self) -> Option<&str> {
        self.onboarding
            .master_key
            .as_ref()
            .map(|s| s.get_ref().as_str())
    }

    /// Largest accepted request body.
    pub fn body_bytes_max(&self) -> usize {
        *self.server.body_bytes_max.get_ref()
    }

    pub fn upload_bytes_max(&self) -> usize {
        *self.server.upload_bytes_max.get_ref()
    }

    pub fn bill_upload_bytes_max(&self) -> usize {
        *self.server.bill_upload_bytes_max.get_ref()
    }

    /// `server.listen` as written (or as overridden).
    pub fn listen_text(&self) -> &str {
        self.server.listen.get_ref()
    }

    /// Listens on `addr` instead of `server.listen` (the command line's `--listen`).
    pub fn override_listen(&mut self, addr: std::net::SocketAddr) {
        self.server.listen = Spanned::new(0..0, addr.to_string());
    }

    /// Uses `url` as the public base URL unless `[payments] public_url` names one.
    pub fn default_public_url(&mut self, url: String) {
        if self.payments.public_url.is_none() {
            self.payments.public_url = Some(Spanned::new(0..0, url));
        }
    }

    /// The store's durability settings.
    pub fn durability(&self) -> crate::store::commit::Durability {
        crate::store::commit::Durability {
            group_commit: self.store.flush == FlushMode::Group,
            fdatasync: self.store.fdatasync,
            window: std::time::Duration::from_micros(
                (*self.store.group_commit_window_us.get_ref()).into(),
            ),
        }
    }

    /// How to reach the PostgreSQL engine's database, its URL read now from where the
    /// config says (`None`: the embedded engine).
    pub fn postgres_settings(&self) -> Result<Option<crate::store::postgres::PgSettings>, String> {
        let Some(pg) = self
            .store
            .postgres
            .as_ref()
            .filter(|_| *self.store.engine.get_ref() == EngineKind::Postgres)
        else {
            return Ok(None);
        };
        let source = crate::settings::KeySource::parse(pg.url.get_ref())
            .map_err(|e| format!("store.postgres.url: {e}"))?;
        let url = source
            .read("store.postgres.url")
            .map_err(|e| format!("store.postgres.url: {e}"))?;
        let url = String::from_utf8(url.to_vec())
            .map_err(|_| "store.postgres.url: not UTF-8 text".to_owned())?;
        Ok(Some(crate::store::postgres::PgSettings {
            url: url.trim().to_owned(),
            pool_size: *pg.pool_size.get_ref() as usize,
            statement_timeout: std::time::Duration::from_millis(*pg.statement_timeout_ms.get_ref()),
            lease_ms: *pg.lease_ms.get_ref() as i64,
            // Named by `serve` after its data dir, which it locks.
            node: None,
            ca_file: pg.ca_file.as_ref().map(|f| f.get_ref().clone()),
        }))
    }

    /// sled's page cache, in bytes.
    pub fn cache_bytes(&self) -> u64 {
        u64::from(*self.store.cache_mb.get_ref()) << 20
    }

    /// Every merchant an API key names.
    pub fn key_merchants(&self) -> impl Iterator<Item = &str> {
        self.api_keys
            .iter()
            .flat_map(|k| k.merchants.get_ref())
            .map(String::as_str)
    }

    /// The API keys, their authenticators opened with the master key (read only when a key
    /// has one).
    pub fn key_ring(&self) -> Result<crate::auth::KeyRing, String> {
        let master = if self.api_keys.iter().any(|k| k.totp.is_some()) {
            self.master_key()?
        } else {
            None
        };
        self.key_ring_with(master.as_ref())
    }

    /// [`key_ring`](Self::key_ring) with the master key already loaded.
    pub fn key_ring_with(
        &self,
        master: Option<&crate::merchants::sealed::MasterKey>,
    ) -> Result<crate::auth::KeyRing, String> {
        let entries = self
            .api_keys
            .iter()
            .map(|k| k.entry(master))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(crate::auth::KeyRing::new(entries))
    }

    /// What `paygated config check` prints about a valid file (whose keys open).
    pub fn summary(&self) -> Vec<String> {
        let keys = self.key_ring().unwrap_or_default();
        let tls = match &self.server.tls {
            Some(tls) if tls.client_ca_file.is_some() => "TLS 1.3 with client certificates",
            Some(_) => "TLS 1.3",
            None => "plain HTTP",
        };
        let mut lines = vec![format!("  listen       {} ({tls})", self.listen_text())];
        if let Some(socket) = &self.server.unix_socket {
            lines.push(format!("  unix socket  {}", socket.get_ref().display()));
        }
        lines.push(format!("  data dir     {}", self.store.data_dir.display()));
        for role in [Role::Pos, Role::Erp, Role::Admin] {
            let n = keys.keys().filter(|k| k.role == role).count();
            let with = keys
                .keys()
                .filter(|k| k.role == role && k.second_factor.is_some())
                .count();
            // `Role`'s Display ignores widths: pad its name.
            let role_name = role.as_str();
            match role {
                Role::Pos => lines.push(format!("  {role_name:<5} keys   {n}")),
                _ => lines.push(format!(
                    "  {role_name:<5} keys   {n} ({with} with an authenticator)"
                )),
            }
        }
        if self.onboarding.master_key.is_none() {
            lines.push(
                "  master key   none: no authenticator can be enrolled (`paygated keys totp enroll` \
                 seals it under [onboarding] master_key)"
                    .to_owned(),
            );
        }
        for merchant in &self.merchants {
            let providers: Vec<&str> = merchant.providers.keys().map(String::as_str).collect();
            lines.push(format!(
                "  merchant     {} \"{}\" providers: [{}]",
                merchant.id.get_ref(),
                merchant.name.get_ref(),
                providers.join(", ")
            ));
        }
        if keys.has_demo_keys() {
            lines.push(
                "  note         the demo keys of the README are enabled; replace them before real use"
                    .into(),
            );
        }
        lines
    }
}

impl crate::plugins::settings::Source for Config {
    type Error = ConfigError;

    fn host_settings(&self) -> crate::plugins::settings::HostSettings {
        use crate::plugins::settings::{
            HostSettings, KeySetting, MerchantProviders, PluginSettings,
        };
        let host = &self.plugin_host;
        HostSettings {
            max_concurrent_calls: *host.max_concurrent_calls.get_ref(),
            trusted_signers: host.trusted_signers.get_ref().clone(),
            cache_dir: host
                .cache_dir
                .clone()
                .unwrap_or_else(|| self.store.data_dir.join("plugin-cache")),
            extra_ca_file: host.extra_ca_file.as_ref().map(|f| f.get_ref().clone()),
            plugins: self
                .plugins
                .iter()
                .map(|p| PluginSettings {
                    name: p.name.get_ref().clone(),
                    path: p.path.get_ref().clone(),
                    sha256: p.sha256.as_ref().map(|s| s.get_ref().clone()),
                    allowed_hosts: p.allowed_hosts.get_ref().clone(),
                    limits: p.limits.resolve(crate::plugins::PluginLimits::default()),
                    bill_limits: p.bill_limits.resolve(crate::plugins::PluginLimits::bills()),
                    settings: p.settings.clone(),
                })
                .collect(),
            keys: self
                .merchants
                .iter()
                .enumerate()
                .flat_map(|(i, merchant)| {
                    merchant
                        .providers
                        .iter()
                        .flat_map(move |(provider, settings)| {
                            settings.keys.iter().map(move |(name, source)| KeySetting {
                                merchant: merchant.id.get_ref().clone(),
                                provider: provider.clone(),
                                name: name.clone(),
                                source: source.get_ref().clone(),
                                field: format!("merchants[{i}].providers.{provider}.keys.{name}"),
                            })
                        })
                })
                .collect(),
            merchants: self
                .merchants
                .iter()
                .enumerate()
                .map(|(index, m)| MerchantProviders {
                    index,
                    providers: m.providers.keys().cloned().collect(),
                })
                .collect(),
        }
    }

    fn locate(&self, error: FieldError) -> ConfigError {
        Config::locate(self, error)
    }
}

/// Where the value of `field` (a dotted path, `plugins[1].path`) is written in `text`; for
/// a field missing from a table that is written, that table.
fn span_of(text: &str, field: &str) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut span = root.span();
    let mut current = DeValue::Table(root.into_inner());
    let segments: Vec<&str> = field.split('.').collect();
    for (i, segment) in segments.iter().enumerate() {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, Some(rest.strip_suffix(']')?.parse::<usize>().ok()?)),
            None => (*segment, None),
        };
        let DeValue::Table(table) = current else {
            return None;
        };
        let found = table.into_iter().find(|(k, _)| k.get_ref() == name);
        let found = match (found, index) {
            (Some((_, value)), None) => Some(value),
            (Some((_, value)), Some(n)) => match value.into_inner() {
                DeValue::Array(items) => items.get(n).cloned(),
                _ => None,
            },
            (None, _) => None,
        };
        match found {
            Some(value) => {
                span = value.span();
                current = value.into_inner();
            }
            // Only the last field is missing: point at the table that should hold it.
            None if i == segments.len() - 1 && i > 0 => return Some(span),
            None => return None,
        }
    }
    Some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.toml"), text)
    }

    #[test]
    fn a_parts_field_error_is_placed_at_its_field() {
        let text = "[server]\nlisten = \"127.0.0.1:1\"\n\n[[api_keys]]\nid = \"key_a\"\nrole = \"pos\"\nmerchants = [\"m_a\"]\nsha256 = \"HASH\"\n\n[[api_keys]]\nid = \"key_b\"\nrole = \"admin\"\nsha256 = \"HASH2\"\n"
            .replace("HASH2", &"1".repeat(64))
            .replace("HASH", HASH);
        let config = parse(&text).unwrap();
        let at = |field: &str| config.locate(FieldError::new(field, "wrong")).position;
        assert_eq!(at("server.listen"), Some((2, 10)));
        assert_eq!(at("api_keys[1].role"), Some((12, 8)));
        assert_eq!(at("api_keys[0].merchants"), Some((7, 13)));
        // A field missing from a written table: that table; from an unwritten one: nowhere.
        assert_eq!(at("api_keys[1].merchants"), Some((10, 1)));
        assert_eq!(at("server.tls.cert_file"), None);
        assert_eq!(at("api_keys[5].id"), None);
        let err = config.locate(FieldError::new("server.unix_socket", "in use"));
        assert_eq!(err.field.as_deref(), Some("server.unix_socket"));
        assert_eq!(err.message, "in use");
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.listen_addr().to_string(), "127.0.0.1:8420");
        assert_eq!(*config.server.body_bytes_max.get_ref(), 65536);
        assert_eq!(config.upload_bytes_max(), 9 << 20);
        assert_eq!(*config.server.drain_timeout_ms.get_ref(), 10_000);
        assert_eq!(config.store.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let err = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(3), "{err}");
        assert!(err.to_string().contains("unknown field `lisen`"), "{err}");
        assert_eq!(err.field.as_deref(), Some("server.lisen"));
    }

    #[test]
    fn wrong_type_names_the_field_and_line() {
        let err = parse("\n[server]\nbody_bytes_max = \"big\"\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("server.body_bytes_max"), "{err}");
        assert_eq!(err.position.map(|p| p.0), Some(3), "{err}");
    }

    #[test]
    fn short_hash_is_refused_at_its_line() {
        let text = format!(
            "[[api_keys]]\nid = \"key_a\"\nrole = \"admin\"\nsha256 = \"abc\"\n\n[[api_keys]]\nid = \"key_b\"\nrole = \"admin\"\nsha256 = \"{HASH}\"\n"
        );
        let err = parse(&text).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("api_keys[0].sha256"));
        assert_eq!(err.position, Some((4, 10)));
        assert!(err.message.contains("64 hex"));
    }

    #[test]
    fn non_hex_hash_of_right_length_is_refused() {
        let bad = "g".repeat(64);
        let text = format!("[[api_keys]]\nid = \"key_a\"\nrole = \"admin\"\nsha256 = \"{bad}\"\n");
        assert_eq!(
            parse(&text).unwrap_err().field.as_deref(),
            Some("api_keys[0].sha256")
        );
    }

    #[test]
    fn scope_must_fit_the_role() {
        let pos_without =
            format!("[[api_keys]]\nid = \"key_a\"\nrole = \"pos\"\nsha256 = \"{HASH}\"\n");
        assert_eq!(
            parse(&pos_without).unwrap_err().field.as_deref(),
            Some("api_keys[0].merchants")
        );
        let admin_with = format!(
            "[[api_keys]]\nid = \"key_a\"\nrole = \"admin\"\nmerchants = [\"m_x\"]\nsha256 = \"{HASH}\"\n"
        );
        assert!(
            parse(&admin_with)
                .unwrap_err()
                .message
                .contains("every merchant")
        );
        let bad_role =
            format!("[[api_keys]]\nid = \"key_a\"\nrole = \"root\"\nsha256 = \"{HASH}\"\n");
        let err = parse(&bad_role).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("api_keys[0].role"), "{err}");
    }

    #[test]
    fn duplicates_are_refused() {
        let text = format!(
            "[[api_keys]]\nid = \"key_a\"\nrole = \"admin\"\nsha256 = \"{HASH}\"\n[[api_keys]]\nid = \"key_b\"\nrole = \"admin\"\nsha256 = \"{HASH}\"\n"
        );
        assert!(parse(&text).unwrap_err().message.contains("twice"));
        let merchants = "[[merchants]]\nid = \"m_a\"\nname = \"A\"\n[[merchants]]\nid = \"m_a\"\nname = \"B\"\n";
        assert_eq!(parse(merchants).unwrap_err().position.map(|p| p.0), Some(5));
    }

    #[test]
    fn missing_key_file_and_bad_key_source_are_refused() {
        let text = "[[merchants]]\nid = \"m_a\"\nname = \"A\"\n[merchants.providers.alipay.keys]\napp_private_key = \"file:/no/such/key.pem\"\n";
        let err = parse(text).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("merchants[0].providers.alipay.keys.app_private_key")
        );
        assert_eq!(err.position.map(|p| p.0), Some(5));
        let text = "[[merchants]]\nid = \"m_a\"\nname = \"A\"\n[merchants.providers.alipay.keys]\nk = \"ftp:x\"\n";
        assert!(
            parse(text)
                .unwrap_err()
                .message
                .contains("unknown key source")
        );
    }

    #[test]
    fn missing_tls_file_is_named() {
        let text = "[server.tls]\ncert_file = \"/no/cert.pem\"\nkey_file = \"/no/key.pem\"\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("server.tls.cert_file"));
        assert_eq!(err.position.map(|p| p.0), Some(2));
    }

    #[test]
    fn the_reconciliation_schedule_is_checked() {
        let defaults = parse("").unwrap().reconciliation.settings();
        assert_eq!(
            (
                defaults.enabled,
                defaults.run_at_min,
                defaults.retry_every_ms
            ),
            (true, 600, 3_600_000)
        );
        let tuned = parse(
            "[reconciliation]\nrun_at = \"09:30\"\nretry_every_minutes = 15\nenabled = false\n",
        )
        .unwrap()
        .reconciliation
        .settings();
        assert_eq!(
            (tuned.enabled, tuned.run_at_min, tuned.retry_every_ms),
            (false, 570, 900_000)
        );
        for bad in ["\"24:00\"", "\"9:30\"", "\"09:60\"", "\"noon\""] {
            let err = parse(&format!("[reconciliation]\nrun_at = {bad}\n")).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("reconciliation.run_at"), "{bad}");
            assert_eq!(err.position.map(|p| p.0), Some(2));
        }
        let err = parse("[reconciliation]\nretry_every_minutes = 0\n").unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("reconciliation.retry_every_minutes")
        );
    }

    #[test]
    fn limits_are_bounded() {
        assert!(parse("[server]\nbody_bytes_max = 0\n").is_err());
        assert!(parse("[server]\nupload_bytes_max = 0\n").is_err());
        let err = parse("[server]\nupload_bytes_max = 99999999\n").unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("server.upload_bytes_max"),
            "{err}"
        );
        assert!(parse("[server]\ndrain_timeout_ms = 999999999\n").is_err());
        let err = parse("[store]\ngroup_commit_window_us = 100001\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("store.group_commit_window_us"));
        assert_eq!(err.position.map(|p| p.0), Some(2));
        assert!(parse("[store]\ngroup_commit_window_us = -1\n").is_err());
        let err = parse("[store]\ncache_mb = 0\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("store.cache_mb"));
        assert!(parse("[store]\ncache_mb = 65537\n").is_err());
        assert_eq!(*parse("").unwrap().store.cache_mb.get_ref(), 64);
        let config = parse("[store]\ngroup_commit_window_us = 0\n").unwrap();
        assert_eq!(*config.store.group_commit_window_us.get_ref(), 0);
        assert_eq!(
            *parse("").unwrap().store.group_commit_window_us.get_ref(),
            1000
        );
        assert!(parse("[server]\nlisten = \"localhost\"\n").is_err());
    }

    #[test]
    fn connection_bounds_have_defaults_and_are_checked() {
        let server = parse("").unwrap().server;
        assert_eq!(*server.request_head_timeout_ms.get_ref(), 10_000);
        assert_eq!(*server.body_timeout_ms.get_ref(), 30_000);
        assert_eq!(*server.idle_timeout_ms.get_ref(), 30_000);
        assert!(server.max_connections.is_none() && server.max_connections_per_peer.is_none());
        for field in [
            "request_head_timeout_ms",
            "body_timeout_ms",
            "idle_timeout_ms",
            "http2_keep_alive_interval_ms",
            "http2_keep_alive_timeout_ms",
            "max_connections",
            "max_connections_per_peer",
        ] {
            let err = parse(&format!("[server]\n{field} = 0\n")).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(&*format!("server.{field}")));
            assert_eq!(err.position.map(|p| p.0), Some(2), "{err}");
        }
        let err =
            parse("[server]\nmax_connections = 10\nmax_connections_per_peer = 11\n").unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("server.max_connections_per_peer")
        );
        assert!(parse("[server]\nidle_timeout_ms = 3600001\n").is_err());
    }

    #[test]
    fn merchant_ids_are_checked() {
        assert!(is_merchant_id("m_demo"));
        assert!(!is_merchant_id("m_"));
        assert!(!is_merchant_id("demo"));
        assert!(!is_merchant_id("m_bad-id"));
        assert!(!is_merchant_id(&format!("m_{}", "a".repeat(31))));
    }
}
