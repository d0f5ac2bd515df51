//! The plugin host: runs wallet plugins (WebAssembly components) without trusting them.
//! **The only module that knows wasmtime.**
//!
//! - Every call gets a fresh instance from the pooling allocator (`InstancePre`), so no
//!   state survives from one merchant's request to the next.
//! - Every call is bounded: a wall-clock deadline (epoch interruption inside wasm, a tokio
//!   timeout around host I/O), a memory cap, table and instance caps, an output size cap.
//!   Breaking a bound, trapping or breaking the contract is a [`PluginFault`] for that call
//!   only; the daemon and every other plugin carry on.
//! - A plugin reaches the world only through the imports in `imports.rs`, bound to the
//!   merchant the call is for. WASI imports are linked as traps.
//! - Plugins are pinned by SHA-256 and optionally signed, compiled once and cached, and
//!   reloaded by swapping an immutable [`registry::PluginSet`].

pub mod bindings;
mod ec_v1;
mod engine;
mod imports;
pub mod keystore;
pub mod lending;
pub mod limits;
mod loader;
mod output;
pub mod port;
mod registry;
pub mod settings;
mod world_0_1;
mod world_0_2;
mod world_0_3;
mod world_0_4;
mod world_convert;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

pub use crate::outbound::Origin;
pub use bindings::paygate::provider::types;
pub use bindings::{SUPPORTED_WORLD_VERSIONS, WORLD_PACKAGE, WORLD_VERSION};
pub use loader::{ArtifactLedger, MemoryLedger};
pub use port::Providers;

use crate::metrics::Metrics;
use crate::outbound::OutboundClient;
use crate::settings::FieldError;
use bindings::{Plugin, PluginPre, World, WorldPre};
use imports::CallState;
use keystore::KeyStore;
pub use lending::{Lender, LiveLender};
use limits::CallLimiter;
pub use limits::PluginLimits;
use loader::LoadError;
use output::OutputSize;
use registry::{LoadedPlugin, PluginSet};
use settings::{HostSettings, MerchantProviders, PluginSettings, Source};
use types::*;

/// Extra time past a plugin's deadline before the host gives up on a call that is stuck in
/// host I/O (inside wasm, the epoch interrupt fires at the deadline itself).
const DEADLINE_GRACE: Duration = Duration::from_millis(50);
/// How long a call waits for a free instance slot before answering "busy".
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// What went wrong with a plugin, as opposed to what the provider answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The plugin trapped (panic, stack overflow, unreachable, a WASI call, ...).
    Trap,
    /// It ran past its deadline.
    Timeout,
    /// It tried to grow its memory past the cap.
    Memory,
    /// It returned something the contract forbids (too large, inconsistent, wrong shape).
    Contract,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Timeout => "timeout",
            FaultKind::Memory => "memory",
            FaultKind::Contract => "contract",
        }
    }
}

/// A plugin misbehaved during one call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin} failed ({}): {message}", kind.as_str())]
pub struct PluginFault {
    pub plugin: String,
    pub kind: FaultKind,
    pub message: String,
}

/// Why a call produced no provider answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no loaded plugin serves provider {0}")]
    NoSuchProvider(String),
    #[error("provider {provider} does not support {operation}")]
    Unsupported {
        provider: String,
        operation: &'static str,
    },
    #[error("all plugin instance slots are busy; retry shortly")]
    Busy,
    #[error(transparent)]
    Fault(#[from] PluginFault),
}

/// A call to make, with its request.
enum Op {
    Info,
    CreatePayment(CreatePaymentRequest),
    InspectWalletToken(CreatePaymentRequest),
    QueryPayment(PaymentRef),
    CancelPayment(PaymentRef),
    Refund(RefundRequest),
    QueryRefund(RefundRef),
    ParseNotification(Notification),
    Onboard(OnboardingRequest),
    QueryOnboarding(OnboardingRef),
    BindAccount(BindingRequest),
    QueryBinding(BindingRef),
    ParseBill(BillRequest),
    FetchBill(BillFetchRequest),
}

impl Op {
    fn operation(&self) -> Option<Operation> {
        Some(match self {
            Op::Info => return None,
            Op::CreatePayment(_) => Operation::CreatePayment,
            Op::InspectWalletToken(_) => Operation::InspectWalletToken,
            Op::QueryPayment(_) => Operation::QueryPayment,
            Op::CancelPayment(_) => Operation::CancelPayment,
            Op::Refund(_) => Operation::Refund,
            Op::QueryRefund(_) => Operation::QueryRefund,
            Op::ParseNotification(_) => Operation::ParseNotification,
            Op::Onboard(_) => Operation::Onboard,
            Op::QueryOnboarding(_) => Operation::QueryOnboarding,
            Op::BindAccount(_) => Operation::BindAccount,
            Op::QueryBinding(_) => Operation::QueryBinding,
            Op::ParseBill(_) => Operation::ParseBill,
            Op::FetchBill(_) => Operation::FetchBill,
        })
    }

    /// The limits the call runs under: a bill call's own, else the plugin's.
    fn limits(&self, plugin: &LoadedPlugin) -> PluginLimits {
        match self {
            Op::FetchBill(_) | Op::ParseBill(_) => plugin.bill_limits,
            _ => plugin.limits,
        }
    }

    fn name(&self) -> &'static str {
        self.operation().map_or("info", operation_name)
    }

    /// The merchant and provider the call acts for (their keys are the call's keys).
    fn scope(&self) -> Option<(&Merchant, &str)> {
        Some(match self {
            Op::Info => return None,
            Op::CreatePayment(r) | Op::InspectWalletToken(r) => (&r.merchant, &r.provider),
            Op::QueryPayment(p) | Op::CancelPayment(p) => (&p.merchant, &p.provider),
            Op::Refund(r) => (&r.payment.merchant, &r.payment.provider),
            Op::QueryRefund(r) => (&r.payment.merchant, &r.payment.provider),
            Op::ParseNotification(n) => (&n.merchant, &n.provider),
            Op::Onboard(r) => (&r.merchant, &r.provider),
            Op::QueryOnboarding(r) => (&r.merchant, &r.provider),
            Op::BindAccount(r) => (&r.merchant, &r.provider),
            Op::QueryBinding(r) => (&r.merchant, &r.provider),
            Op::ParseBill(r) => (&r.merchant, &r.provider),
            Op::FetchBill(r) => (&r.merchant, &r.provider),
        })
    }
}

/// What a call returned.
enum Output {
    Info(PluginInfo),
    Payment(Result<PaymentResult, ProviderError>),
    TokenFacts(Result<TokenFacts, ProviderError>),
    Refund(Result<RefundResult, ProviderError>),
    Notification(Result<NotificationResult, NotificationRejected>),
    Onboarding(Result<OnboardingResult, ProviderError>),
    Binding(Result<BindingResult, ProviderError>),
    Bill(Result<Vec<BillEntry>, ProviderError>),
    BillDownload(Result<BillDownload, ProviderError>),
}

impl Output {
    fn size(&self) -> usize {
        match self {
            Output::Info(v) => v.output_size(),
            Output::Payment(v) => v.output_size(),
            Output::TokenFacts(v) => v.output_size(),
            Output::Refund(v) => v.output_size(),
            Output::Notification(v) => v.output_size(),
            Output::Onboarding(v) => v.output_size(),
            Output::Binding(v) => v.output_size(),
            Output::Bill(v) => v.output_size(),
            Output::BillDownload(v) => v.output_size(),
        }
    }

    /// The metrics outcome label: `ok`, or the provider error's kind.
    fn outcome(&self) -> &'static str {
        fn of<T>(r: &Result<T, ProviderError>) -> &'static str {
            match r {
                Ok(_) => "ok",
                Err(ProviderError::Declined(_)) => "declined",
                Err(ProviderError::InvalidRequest(_)) => "invalid_request",
                Err(ProviderError::Unavailable(_)) => "unavailable",
                Err(ProviderError::UnknownOutcome(_)) => "unknown_outcome",
            }
        }
        match self {
            Output::Info(_) => "ok",
            Output::Payment(r) => of(r),
            Output::TokenFacts(r) => of(r),
            Output::Refund(r) => of(r),
            Output::Onboarding(r) => of(r),
            Output::Binding(r) => of(r),
            Output::Bill(r) => of(r),
            Output::BillDownload(r) => of(r),
            Output::Notification(Ok(_)) => "ok",
            Output::Notification(Err(_)) => "rejected",
        }
    }
}

/// The WIT name of an operation.
pub fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::CreatePayment => "create-payment",
        Operation::QueryPayment => "query-payment",
        Operation::CancelPayment => "cancel-payment",
        Operation::Refund => "refund",
        Operation::QueryRefund => "query-refund",
        Operation::ParseNotification => "parse-notification",
        Operation::Onboard => "onboard",
        Operation::QueryOnboarding => "query-onboarding",
        Operation::BindAccount => "bind-account",
        Operation::QueryBinding => "query-binding",
        Operation::ParseBill => "parse-bill",
        Operation::InspectWalletToken => "inspect-wallet-token",
        Operation::FetchBill => "fetch-bill",
    }
}

/// The API name of a payment method.
pub fn method_name(method: Method) -> &'static str {
    match method {
        Method::Qr => "qr",
        Method::Barcode => "barcode",
        Method::Link => "link",
        Method::WalletToken => "wallet_token",
    }
}

/// An amount a plugin reported (`PaymentResult::amount`, `RefundResult::amount`, world
/// 0.2.0) as the daemon's [`Money`](crate::domain::money::Money), read as strictly as a client's
/// (API.md §1): a currency paygate handles, more than zero, no more decimals than the
/// currency has, at most `AMOUNT_CEILING`. The plugin's `exponent` only places the decimal
/// point (12500 at exponent 3 is 12.50 CNY); no `minor`/`exponent` pair panics. An `Err` is
/// an amount no payment or refund can have: treat it as a mismatch.
pub fn reported_money(
    amount: &Money,
) -> Result<crate::domain::money::Money, crate::domain::money::MoneyError> {
    let decimal = rust_decimal::Decimal::try_new(amount.minor, u32::from(amount.exponent))
        .map_err(|_| {
            crate::domain::money::MoneyError::NotDecimal(format!(
                "{} at exponent {}",
                amount.minor, amount.exponent
            ))
        })?;
    crate::domain::money::Money::parse(&decimal.normalize().to_string(), &amount.currency)
}

/// A loaded plugin as `GET /v1/plugins` shows it.
#[derive(Debug, Clone)]
pub struct PluginSummary {
    pub name: String,
    pub version: String,
    pub world_version: String,
    pub sha256: String,
    pub path: PathBuf,
    pub providers: Vec<ProviderInfo>,
    pub loaded_at: SystemTime,
    pub calls: u64,
    pub faults: u64,
}

/// What a reload did.
#[derive(Debug, Clone)]
pub struct ReloadReport {
    pub plugins: Vec<String>,
    /// Plugins whose file changed (by hash).
    pub changed: Vec<String>,
}

/// A reload read, loaded and checked, ready to take over ([`PluginHost::commit_reload`]).
pub struct PreparedReload {
    set: PluginSet,
    keys: KeyStore,
    report: ReloadReport,
}

/// The host of every plugin.
pub struct PluginHost {
    engine: Engine,
    /// The merchants' provider keys: replaced whole by a reload; a call keeps the ones it
    /// started with.
    keys: ArcSwap<KeyStore>,
    /// What calls are lent besides keys: HTTP, the clock, randomness.
    lender: Arc<dyn Lender>,
    current: ArcSwap<PluginSet>,
    slots: Arc<Semaphore>,
    cache_dir: PathBuf,
    /// The digests of the artifacts this daemon compiled (see [`loader::ArtifactLedger`]).
    ledger: Arc<dyn loader::ArtifactLedger>,
    metrics: Arc<Metrics>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl PluginHost {
    /// Builds the engine and loads every plugin `source` names. Problems are the source's
    /// errors (the config's: naming the `[[plugins]]` or `[[merchants]]` field at fault).
    pub async fn start<S: Source>(
        source: &S,
        metrics: Arc<Metrics>,
    ) -> Result<PluginHost, S::Error> {
        PluginHost::start_with_ledger(source, metrics, Arc::new(loader::MemoryLedger::default()))
            .await
    }

    /// As [`PluginHost::start`], trusting cached compiled plugins only as far as `ledger`
    /// records their digests (the daemon passes its store, so restarts reuse the cache).
    pub async fn start_with_ledger<S: Source>(
        source: &S,
        metrics: Arc<Metrics>,
        ledger: Arc<dyn loader::ArtifactLedger>,
    ) -> Result<PluginHost, S::Error> {
        let settings = source.host_settings();
        PluginHost::start_with(&settings, metrics, ledger)
            .await
            .map_err(|e| source.locate(e))
    }

    async fn start_with(
        settings: &HostSettings,
        metrics: Arc<Metrics>,
        ledger: Arc<dyn loader::ArtifactLedger>,
    ) -> Result<PluginHost, FieldError> {
        let extra_roots = match &settings.extra_ca_file {
            None => Vec::new(),
            Some(file) => {
                read_ca_file(file).map_err(|m| FieldError::new("plugin_host.extra_ca_file", m))?
            }
        };
        let http = OutboundClient::new(extra_roots)
            .map_err(|m| FieldError::new("plugin_host.extra_ca_file", m))?;
        PluginHost::start_lending(settings, Arc::new(LiveLender::new(http)), metrics, ledger).await
    }

    /// A host whose calls are lent HTTP, a clock and randomness by `lender` (the plugin
    /// kit's recorded exchanges), with compiled plugins cached in memory only.
    pub async fn start_lent(
        settings: &HostSettings,
        metrics: Arc<Metrics>,
        lender: Arc<dyn Lender>,
    ) -> Result<PluginHost, FieldError> {
        let ledger = Arc::new(loader::MemoryLedger::default());
        PluginHost::start_lending(settings, lender, metrics, ledger).await
    }

    async fn start_lending(
        settings: &HostSettings,
        lender: Arc<dyn Lender>,
        metrics: Arc<Metrics>,
        ledger: Arc<dyn loader::ArtifactLedger>,
    ) -> Result<PluginHost, FieldError> {
        let max_calls = settings.max_concurrent_calls;
        let engine = engine::new_engine(max_calls).map_err(|e| {
            FieldError::new(
                "plugin_host",
                format!("cannot set up the plugin engine: {e:#}"),
            )
        })?;
        let keys = ArcSwap::from_pointee(KeyStore::load(&settings.keys)?);
        let host = PluginHost {
            engine,
            keys,
            lender,
            current: ArcSwap::from_pointee(PluginSet::default()),
            slots: Arc::new(Semaphore::new(max_calls as usize)),
            cache_dir: settings.cache_dir.clone(),
            ledger,
            metrics,
            reloading: tokio::sync::Mutex::new(()),
        };
        let set = host
            .load_set(settings)
            .await
            .map_err(|e| located(settings, e))?;
        check_merchant_providers(&settings.merchants, &set)?;
        host.init_metrics(&set);
        host.current.store(Arc::new(set));
        Ok(host)
    }

    /// Makes every plugin's call and fault series exist at zero (alert rules see the first).
    fn init_metrics(&self, set: &PluginSet) {
        for plugin in &set.plugins {
            self.metrics.init_plugin(&plugin.name);
        }
        for provider in set.providers.keys() {
            self.metrics.init_provider(provider);
        }
    }

    /// Loads every `[[plugins]]` entry into a new set, off the async threads.
    async fn load_set(&self, settings: &HostSettings) -> Result<PluginSet, LoadError> {
        let mut plugins = Vec::new();
        for entry in &settings.plugins {
            plugins.push(self.load_one(&settings.trusted_signers, entry).await?);
        }
        PluginSet::new(plugins).map_err(|message| LoadError {
            plugin: "*".into(),
            field: "name",
            message,
        })
    }

    async fn load_one(
        &self,
        trusted_signers: &[String],
        entry: &PluginSettings,
    ) -> Result<Arc<LoadedPlugin>, LoadError> {
        let name = entry.name.clone();
        let error = |field, message: String| LoadError {
            plugin: name.clone(),
            field,
            message,
        };
        let engine = self.engine.clone();
        let path = entry.path.clone();
        let pinned = entry.sha256.clone();
        let signers = trusted_signers.to_vec();
        let cache_dir = self.cache_dir.clone();
        let ledger = self.ledger.clone();
        let plugin_name = name.clone();
        let started = Instant::now();
        // Reading, hashing and compiling take milliseconds to seconds: keep them off the
        // threads that serve requests.
        let (file, component, cached) = tokio::task::spawn_blocking(move || {
            let file = loader::read_verified(&plugin_name, &path, pinned.as_deref(), &signers)?;
            let (component, cached) =
                loader::compile_cached(&engine, &file, &cache_dir, ledger.as_ref()).map_err(
                    |m| LoadError {
                        plugin: plugin_name.clone(),
                        field: "path",
                        message: m,
                    },
                )?;
            Ok::<_, LoadError>((file, component, cached))
        })
        .await
        .map_err(|e| error("path", format!("loading panicked: {e}")))??;

        let world_version =
            loader::check_world(&self.engine, &component).map_err(|m| error("path", m))?;
        let world = World::of_version(&world_version)
            .ok_or_else(|| error("path", format!("no world for version {world_version}")))?;
        let mut linker: Linker<CallState> = Linker::new(&self.engine);
        // Each world links its own version of the imports (the same host behind them).
        match world {
            World::V0_5 => {
                Plugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
            }
            World::V0_4 => bindings::v0_4::Plugin::add_to_linker::<CallState, HasSelf<CallState>>(
                &mut linker,
                |state| state,
            ),
            World::V0_3 => bindings::v0_3::Plugin::add_to_linker::<CallState, HasSelf<CallState>>(
                &mut linker,
                |state| state,
            ),
            World::V0_2 => bindings::v0_2::Plugin::add_to_linker::<CallState, HasSelf<CallState>>(
                &mut linker,
                |state| state,
            ),
            World::V0_1 => bindings::v0_1::Plugin::add_to_linker::<CallState, HasSelf<CallState>>(
                &mut linker,
                |state| state,
            ),
        }
        .map_err(|e| error("path", format!("cannot link: {e:#}")))?;
        // WASI imports (a wasm32-wasip2 build always carries some) trap if ever called.
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(|e| error("path", format!("cannot link: {e:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(|pre| {
                Ok(match world {
                    World::V0_5 => WorldPre::V0_5(PluginPre::new(pre)?),
                    World::V0_4 => WorldPre::V0_4(bindings::v0_4::PluginPre::new(pre)?),
                    World::V0_3 => WorldPre::V0_3(bindings::v0_3::PluginPre::new(pre)?),
                    World::V0_2 => WorldPre::V0_2(bindings::v0_2::PluginPre::new(pre)?),
                    World::V0_1 => WorldPre::V0_1(bindings::v0_1::PluginPre::new(pre)?),
                })
            })
            .map_err(|e| error("path", format!("does not fit the plugin world: {e:#}")))?;
        let settings = match serde_json::to_value(&entry.settings) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        let allowed_hosts = entry
            .allowed_hosts
            .iter()
            .map(|h| Origin::parse(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| error("allowed_hosts", m))?;
        let plugin = Arc::new(LoadedPlugin {
            name: name.clone(),
            path: entry.path.clone(),
            sha256: file.sha256,
            world_version,
            info: std::sync::OnceLock::new(),
            pre,
            limits: entry.limits,
            bill_limits: entry.bill_limits,
            allowed_hosts,
            settings,
            loaded_at: SystemTime::now(),
            calls: Default::default(),
            faults: Default::default(),
        });
        let info = match self.run(&plugin, Op::Info).await {
            Ok(Output::Info(info)) => info,
            Ok(_) => return Err(error("path", "info returned the wrong shape".into())),
            Err(e) => return Err(error("path", format!("its info call failed: {e}"))),
        };
        validate_info(&info).map_err(|m| error("path", format!("its info is invalid: {m}")))?;
        tracing::info!(
            plugin = %name,
            version = %info.version,
            sha256 = %plugin.sha256,
            world = %plugin.world_version,
            providers = ?info.providers.iter().map(|p| &p.name).collect::<Vec<_>>(),
            cached,
            load_ms = started.elapsed().as_millis() as u64,
            "plugin loaded"
        );
        let _ = plugin.info.set(info);
        Ok(plugin)
    }

    /// Loads the `[[plugins]]` of `fresh` and swaps them in; the merchants of `running` (the
    /// config the daemon started with) must all stay served. Calls already running finish on
    /// the plugins they started with. On any error, the plugins in service stay.
    pub async fn reload<S: Source>(&self, fresh: &S, running: &S) -> Result<ReloadReport, String> {
        let prepared = self.prepare_reload(fresh, running).await?;
        Ok(self.commit_reload(prepared))
    }

    /// Reads `fresh`'s plugins and keys and checks that `merchants`' providers are served,
    /// changing nothing yet: the half of a reload that can fail.
    pub async fn prepare_reload<S: Source>(
        &self,
        fresh: &S,
        merchants: &S,
    ) -> Result<PreparedReload, String> {
        let before = self.current.load_full();
        let fresh_settings = fresh.host_settings();
        let keys = KeyStore::load(&fresh_settings.keys).map_err(|e| fresh.locate(e).to_string())?;
        let set = {
            let _one_at_a_time = self.reloading.lock().await;
            self.load_set(&fresh_settings)
                .await
                .map_err(|e| fresh.locate(located(&fresh_settings, e)).to_string())?
        };
        check_merchant_providers(&merchants.host_settings().merchants, &set)
            .map_err(|e| merchants.locate(e).to_string())?;
        let changed = set
            .plugins
            .iter()
            .filter(|p| {
                !before
                    .plugins
                    .iter()
                    .any(|old| old.name == p.name && old.sha256 == p.sha256)
            })
            .map(|p| p.name.clone())
            .collect();
        let report = ReloadReport {
            plugins: set.plugins.iter().map(|p| p.name.clone()).collect(),
            changed,
        };
        Ok(PreparedReload { set, keys, report })
    }

    /// Puts a prepared reload in service: calls from now on use its plugins and keys; calls
    /// in flight finish with theirs.
    pub fn commit_reload(&self, prepared: PreparedReload) -> ReloadReport {
        let PreparedReload { set, keys, report } = prepared;
        self.init_metrics(&set);
        self.keys.store(Arc::new(keys));
        self.current.store(Arc::new(set));
        tracing::info!(plugins = ?report.plugins, changed = ?report.changed, "plugins reloaded");
        report
    }

    /// Every loaded plugin.
    pub fn plugins(&self) -> Vec<PluginSummary> {
        self.current
            .load()
            .plugins
            .iter()
            .map(|p| {
                let info = p.info.get();
                PluginSummary {
                    name: p.name.clone(),
                    version: info.map_or_else(String::new, |i| i.version.clone()),
                    world_version: p.world_version.clone(),
                    sha256: p.sha256.clone(),
                    path: p.path.clone(),
                    providers: info.map_or_else(Vec::new, |i| i.providers.clone()),
                    loaded_at: p.loaded_at,
                    calls: p.calls.load(std::sync::atomic::Ordering::Relaxed),
                    faults: p.faults.load(std::sync::atomic::Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// What provider `name` declared, if a loaded plugin serves it.
    pub fn provider(&self, name: &str) -> Option<Arc<ProviderInfo>> {
        self.current
            .load()
            .providers
            .get(name)
            .map(|(_, info)| Arc::clone(info))
    }

    /// Whether the plugin serving `provider` targets a world whose payment and refund results
    /// carry the amount the provider reports (0.2.0 on); plugins built for 0.1.0 report none.
    pub fn reports_amounts(&self, provider: &str) -> bool {
        self.current
            .load()
            .providers
            .get(provider)
            .is_some_and(|(plugin, _)| !matches!(plugin.pre, WorldPre::V0_1(_)))
    }

    /// The `merchant` record for a call: the plugin's settings overlaid with the merchant's.
    pub fn merchant_record(
        &self,
        provider: &str,
        merchant_id: &str,
        merchant_settings: &toml::Table,
        notify_url: String,
    ) -> Result<Merchant, CallError> {
        let current = self.current.load();
        let (plugin, _) = current
            .providers
            .get(provider)
            .ok_or_else(|| CallError::NoSuchProvider(provider.to_owned()))?;
        let mut settings = plugin.settings.clone();
        if let Ok(serde_json::Value::Object(overrides)) = serde_json::to_value(merchant_settings) {
            settings.extend(overrides);
        }
        Ok(Merchant {
            id: merchant_id.to_owned(),
            settings_json: serde_json::Value::Object(settings).to_string(),
            notify_url,
        })
    }

    /// Calls `op` on the plugin serving its provider.
    async fn call(&self, op: Op) -> Result<Output, CallError> {
        let provider = op.scope().map(|(_, p)| p.to_owned()).unwrap_or_default();
        let (plugin, info) = self
            .current
            .load()
            .providers
            .get(&provider)
            .cloned()
            .ok_or_else(|| CallError::NoSuchProvider(provider.clone()))?;
        if let Some(operation) = op.operation()
            && !info.operations.contains(&operation)
        {
            return Err(CallError::Unsupported {
                provider,
                operation: operation_name(operation),
            });
        }
        self.run(&plugin, op).await
    }

    /// Runs one call on a fresh instance of `plugin`, within its limits.
    async fn run(&self, plugin: &Arc<LoadedPlugin>, op: Op) -> Result<Output, CallError> {
        let operation = op.name();
        let started = Instant::now();
        let _slot = tokio::time::timeout(SLOT_WAIT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| CallError::Busy)?
            .map_err(|_| CallError::Busy)?;
        let limits = op.limits(plugin);
        let deadline = Instant::now() + limits.deadline;
        let scope = op
            .scope()
            .map(|(merchant, provider)| (merchant.id.clone(), provider.to_owned()));
        let mut store = Store::new(
            &self.engine,
            CallState {
                limiter: CallLimiter::new(limits.memory_bytes),
                limits,
                deadline,
                timed_out: false,
                plugin: plugin.clone(),
                scope,
                keys: self.keys.load_full(),
                lender: self.lender.clone(),
                log_lines: 0,
                denied_requests: 0,
            },
        );
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            if Instant::now() >= ctx.data().deadline {
                ctx.data_mut().timed_out = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Give the executor a turn every tick: a busy plugin never starves requests.
                Ok(UpdateDeadline::Yield(1))
            }
        });

        let result = tokio::time::timeout(
            limits.deadline + DEADLINE_GRACE,
            dispatch(&plugin.pre, &mut store, op),
        )
        .await;
        let fault = |kind: FaultKind, message: String| PluginFault {
            plugin: plugin.name.clone(),
            kind,
            message,
        };
        let outcome = match result {
            Err(_elapsed) => Err(fault(
                FaultKind::Timeout,
                format!("no answer within {} ms", limits.deadline.as_millis()),
            )),
            Ok(Err(error)) => {
                let state = store.data();
                let kind = if state.timed_out {
                    FaultKind::Timeout
                } else if state.limiter.memory_exceeded {
                    FaultKind::Memory
                } else if error.downcast_ref::<Trap>().is_some()
                    || error.downcast_ref::<wasmtime::WasmBacktrace>().is_some()
                {
                    // A trap, or an error raised while wasm ran (e.g. a WASI import, which
                    // the sandbox links as a trap).
                    FaultKind::Trap
                } else {
                    // The call finished but its results could not be lifted (invalid UTF-8,
                    // an out-of-range discriminant, ...).
                    FaultKind::Contract
                };
                let message = match kind {
                    FaultKind::Timeout => {
                        format!("ran past its {} ms deadline", limits.deadline.as_millis())
                    }
                    _ => error.root_cause().to_string(),
                };
                Err(fault(kind, message))
            }
            Ok(Ok(output)) => {
                let size = output.size();
                if size > limits.output_bytes {
                    Err(fault(
                        FaultKind::Contract,
                        format!(
                            "returned {size} bytes, more than its {}-byte limit",
                            limits.output_bytes
                        ),
                    ))
                } else {
                    Ok(output)
                }
            }
        };
        let elapsed = started.elapsed();
        let outcome_label = match &outcome {
            Ok(output) => output.outcome(),
            Err(f) => f.kind.as_str(),
        };
        plugin.count_call(outcome.is_err());
        self.metrics
            .observe_plugin_call(&plugin.name, operation, outcome_label, elapsed);
        if let Err(f) = &outcome {
            self.metrics
                .count_plugin_fault(&plugin.name, f.kind.as_str());
            tracing::warn!(plugin = %plugin.name, operation, kind = f.kind.as_str(), message = %f.message, "plugin fault");
        }
        outcome.map_err(CallError::Fault)
    }

    /// Loads a component file for inspection only (no config, no keys, no network).
    pub async fn inspect(path: &Path) -> Result<Inspection, String> {
        let engine = engine::new_engine(4).map_err(|e| format!("{e:#}"))?;
        let file = loader::read_verified("inspect", path, None, &[]).map_err(|e| e.message)?;
        let component = Component::new(&engine, &file.bytes)
            .map_err(|e| format!("not a valid component: {e:#}"))?;
        let ty = component.component_type();
        let imports = ty.imports(&engine).map(|(n, _)| n.to_owned()).collect();
        let exports = ty.exports(&engine).map(|(n, _)| n.to_owned()).collect();
        let world = loader::check_world(&engine, &component);
        let mut inspection = Inspection {
            sha256: file.sha256,
            imports,
            exports,
            world_version: world.clone(),
            info: None,
        };
        if world.is_err() {
            return Ok(inspection);
        }
        let dir = std::env::temp_dir().join(format!("paygate-inspect-{}", std::process::id()));
        let settings = HostSettings {
            max_concurrent_calls: 4,
            trusted_signers: Vec::new(),
            cache_dir: dir.clone(),
            extra_ca_file: None,
            plugins: vec![PluginSettings {
                name: "inspected".into(),
                path: path.to_owned(),
                sha256: None,
                allowed_hosts: Vec::new(),
                limits: PluginLimits::default(),
                bill_limits: PluginLimits::bills(),
                settings: toml::Table::new(),
            }],
            keys: Vec::new(),
            merchants: Vec::new(),
        };
        let ledger = Arc::new(loader::MemoryLedger::default());
        let host = PluginHost::start_with(&settings, Arc::new(Metrics::new()), ledger)
            .await
            .map_err(|e| e.message)?;
        inspection.info = host
            .current
            .load()
            .plugins
            .first()
            .and_then(|p| p.info.get().cloned());
        let _ = std::fs::remove_dir_all(dir);
        Ok(inspection)
    }
}

/// What `paygated plugin inspect` prints.
pub struct Inspection {
    pub sha256: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub world_version: Result<String, String>,
    pub info: Option<PluginInfo>,
}

use wasmtime::component::Component;

/// Instantiates and makes the call `op` asks for, in the plugin's world.
async fn dispatch(
    pre: &WorldPre<CallState>,
    store: &mut Store<CallState>,
    op: Op,
) -> wasmtime::Result<Output> {
    match pre {
        WorldPre::V0_5(pre) => dispatch_current(pre, store, op).await,
        WorldPre::V0_4(pre) => world_0_4::dispatch(pre, store, op).await,
        WorldPre::V0_3(pre) => world_0_3::dispatch(pre, store, op).await,
        WorldPre::V0_2(pre) => world_0_2::dispatch(pre, store, op).await,
        WorldPre::V0_1(pre) => world_0_1::dispatch(pre, store, op).await,
    }
}

/// [`dispatch`] for a plugin of the current world: no conversion.
async fn dispatch_current(
    pre: &PluginPre<CallState>,
    store: &mut Store<CallState>,
    op: Op,
) -> wasmtime::Result<Output> {
    let instance = pre.instantiate_async(&mut *store).await?;
    let provider = instance.paygate_provider_provider();
    Ok(match op {
        Op::Info => Output::Info(provider.call_info(&mut *store).await?),
        Op::CreatePayment(r) => {
            Output::Payment(provider.call_create_payment(&mut *store, &r).await?)
        }
        Op::InspectWalletToken(r) => {
            Output::TokenFacts(provider.call_inspect_wallet_token(&mut *store, &r).await?)
        }
        Op::QueryPayment(r) => Output::Payment(provider.call_query_payment(&mut *store, &r).await?),
        Op::CancelPayment(r) => {
            Output::Payment(provider.call_cancel_payment(&mut *store, &r).await?)
        }
        Op::Refund(r) => Output::Refund(provider.call_refund(&mut *store, &r).await?),
        Op::QueryRefund(r) => Output::Refund(provider.call_query_refund(&mut *store, &r).await?),
        Op::ParseNotification(r) => {
            Output::Notification(provider.call_parse_notification(&mut *store, &r).await?)
        }
        Op::Onboard(r) => Output::Onboarding(provider.call_onboard(&mut *store, &r).await?),
        Op::QueryOnboarding(r) => {
            Output::Onboarding(provider.call_query_onboarding(&mut *store, &r).await?)
        }
        Op::BindAccount(r) => Output::Binding(provider.call_bind_account(&mut *store, &r).await?),
        Op::QueryBinding(r) => Output::Binding(provider.call_query_binding(&mut *store, &r).await?),
        Op::ParseBill(r) => Output::Bill(provider.call_parse_bill(&mut *store, &r).await?),
        Op::FetchBill(r) => Output::BillDownload(provider.call_fetch_bill(&mut *store, &r).await?),
    })
}

/// The typed calls the rest of the daemon makes. Each returns the provider's answer, or a
/// [`CallError`] when there is none.
macro_rules! typed_calls {
    ($($(#[$doc:meta])* $name:ident($request:ty) -> $variant:ident / $op:ident: $ok:ty, $err:ty;)*) => {
        impl PluginHost {
            $(
                $(#[$doc])*
                pub async fn $name(&self, request: $request) -> Result<Result<$ok, $err>, CallError> {
                    match self.call(Op::$op(request)).await? {
                        Output::$variant(result) => Ok(result),
                        _ => unreachable!("dispatch maps Op::{} to Output::{}", stringify!($op), stringify!($variant)),
                    }
                }
            )*
        }
    };
}

typed_calls! {
    create_payment(CreatePaymentRequest) -> Payment / CreatePayment: PaymentResult, ProviderError;
    /// A wallet token's id and amount, verified, before the payment is recorded and charged.
    inspect_wallet_token(CreatePaymentRequest) -> TokenFacts / InspectWalletToken: TokenFacts, ProviderError;
    query_payment(PaymentRef) -> Payment / QueryPayment: PaymentResult, ProviderError;
    cancel_payment(PaymentRef) -> Payment / CancelPayment: PaymentResult, ProviderError;
    refund(RefundRequest) -> Refund / Refund: RefundResult, ProviderError;
    query_refund(RefundRef) -> Refund / QueryRefund: RefundResult, ProviderError;
    parse_notification(Notification) -> Notification / ParseNotification: NotificationResult, NotificationRejected;
    onboard(OnboardingRequest) -> Onboarding / Onboard: OnboardingResult, ProviderError;
    query_onboarding(OnboardingRef) -> Onboarding / QueryOnboarding: OnboardingResult, ProviderError;
    bind_account(BindingRequest) -> Binding / BindAccount: BindingResult, ProviderError;
    query_binding(BindingRef) -> Binding / QueryBinding: BindingResult, ProviderError;
    /// A bill file for its rows (downloaded by `fetch_bill`, or uploaded).
    parse_bill(BillRequest) -> Bill / ParseBill: Vec<BillEntry>, ProviderError;
    /// A day's bill file as the provider published it.
    fetch_bill(BillFetchRequest) -> BillDownload / FetchBill: BillDownload, ProviderError;
}

/// Every provider a config merchant names must be served by a loaded plugin.
fn check_merchant_providers(
    merchants: &[MerchantProviders],
    set: &PluginSet,
) -> Result<(), FieldError> {
    for merchant in merchants {
        for provider in &merchant.providers {
            if !set.providers.contains_key(provider) {
                let served: Vec<&str> = set.providers.keys().map(String::as_str).collect();
                return Err(FieldError::new(
                    format!("merchants[{}].providers.{provider}", merchant.index),
                    format!(
                        "no loaded plugin serves provider \"{provider}\" (served: [{}])",
                        served.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A plugin's load error as the field of its `[[plugins]]` entry.
fn located(settings: &HostSettings, e: LoadError) -> FieldError {
    let field = settings
        .plugins
        .iter()
        .position(|p| p.name == e.plugin)
        .map_or("plugins".to_owned(), |i| {
            format!("plugins[{i}].{}", e.field)
        });
    FieldError::new(field, e.to_string())
}

/// Checks what a plugin says about itself at load.
fn validate_info(info: &PluginInfo) -> Result<(), String> {
    let is_name = |s: &str| {
        !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    if info.providers.is_empty() {
        return Err("it serves no provider".into());
    }
    if info.version.is_empty() || info.version.len() > 64 {
        return Err("its version must be 1 to 64 characters".into());
    }
    for provider in &info.providers {
        if !is_name(&provider.name) {
            return Err(format!(
                "provider name {:?} must be 1 to 32 of a-z, 0-9, _",
                provider.name
            ));
        }
        for currency in &provider.currencies {
            if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!("{:?} is not an ISO 4217 currency code", currency));
            }
        }
        for pattern in &provider.payment_codes {
            let digits = |p: &String| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            if pattern.prefixes.is_empty()
                || !pattern.prefixes.iter().all(digits)
                || pattern.min_length > pattern.max_length
                || pattern.max_length > 64
            {
                return Err(format!("payment-code pattern {pattern:?} is malformed"));
            }
        }
    }
    Ok(())
}

fn read_ca_file(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read PEM certificates from {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(minor: i64, currency: &str, exponent: u8) -> Result<String, String> {
        reported_money(&Money {
            minor,
            currency: currency.into(),
            exponent,
        })
        .map(|m| format!("{m}"))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn reported_amounts_convert_exactly_or_not_at_all() {
        assert_eq!(reported(1250, "CNY", 2).as_deref(), Ok("12.50"));
        assert_eq!(reported(1, "CNY", 2).as_deref(), Ok("0.01"));
        assert_eq!(reported(12500, "CNY", 3).as_deref(), Ok("12.50"));
        assert_eq!(reported(125, "CNY", 1).as_deref(), Ok("12.50"));
        assert_eq!(reported(1500, "JPY", 0).as_deref(), Ok("1500"));
        let money = reported_money(&Money {
            minor: 1250,
            currency: "CNY".into(),
            exponent: 2,
        })
        .unwrap();
        assert_eq!(
            money,
            crate::domain::money::Money::from_minor(
                1250,
                crate::domain::money::Currency::from_code("CNY").unwrap()
            )
        );
        for (minor, currency, exponent) in [
            (0, "CNY", 2),
            (-1, "CNY", 2),
            (i64::MIN, "CNY", 2),
            (1, "CNY", 3),
            (15, "JPY", 1),
            (i64::MAX, "CNY", 2),
            (i64::MAX, "JPY", 0),
            (1250, "XXX", 2),
            (1250, "cny", 2),
            (1250, "CNY", 29),
            (1250, "CNY", u8::MAX),
        ] {
            assert!(
                reported(minor, currency, exponent).is_err(),
                "{minor} {currency} {exponent}"
            );
        }
    }
}
