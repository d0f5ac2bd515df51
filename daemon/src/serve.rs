//! `paygated serve`: loads the config, opens the store, binds the listeners and serves the
//! API until SIGTERM or SIGINT, then drains in-flight requests and flushes the store.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use crate::logging::LogFormat;

use std::sync::Arc;

use crate::app::AppState;
use crate::app::Opened;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::plugins::PluginHost;
use crate::process::{EXIT_CONFIG, EXIT_RUNTIME, EXIT_STORE_FAILED, runtime};
use crate::server::{self, Drain, Listeners};
use crate::store::{ArtifactDigests, Store};

/// Options of `paygated serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long, default_value = "config/paygate.toml")]
    pub config: PathBuf,
    /// Listen on this TCP address instead of `server.listen` (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Keep data in this folder instead of `store.data_dir`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
}

pub fn run(args: ServeArgs) -> ExitCode {
    crate::logging::init(args.log_format);
    let config = match load_config(&args) {
        Ok(config) => config,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("paygated: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(serve(config))
}

/// The config file with the command line's overrides applied.
fn load_config(args: &ServeArgs) -> Result<Config, String> {
    let mut config = Config::load(&args.config).map_err(|e| format!("invalid config: {e}"))?;
    if let Some(listen) = &args.listen {
        let addr = listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| format!("--listen \"{listen}\" is not an IP:port address ({e})"))?;
        config.override_listen(addr);
    }
    if let Some(dir) = &args.data_dir {
        config.store.data_dir = dir.clone();
    }
    Ok(config)
}

async fn serve(config: Config) -> ExitCode {
    let started = Instant::now();
    let store = match open_store(&config).await {
        Ok(store) => store,
        Err(code) => return code,
    };
    let listeners = match Listeners::bind(&config.listen_settings()).await {
        Ok(listeners) => listeners,
        Err(e) => {
            let e = config.locate(e);
            tracing::error!("invalid config: {e}");
            eprintln!("paygated: invalid config: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut config = config;
    if let Some(url) = listeners.urls().into_iter().find(|u| u.starts_with("http")) {
        // Notification URLs and payment pages name the address actually bound (the config
        // may say port 0).
        config.default_public_url(url);
    }
    let metrics = Arc::new(Metrics::new());
    // Each engine keeps the digests of the compiled plugins it cached.
    let ledger: Arc<dyn crate::plugins::ArtifactLedger> = match &store {
        Opened::Sled(sled) => match sled.artifact_digests() {
            Ok(digests) => Arc::new(digests),
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("paygated: {e}");
                return ExitCode::from(EXIT_RUNTIME);
            }
        },
        Opened::Postgres(pg) => match pg.artifact_digests().await {
            Ok(digests) => Arc::new(digests),
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("paygated: {e}");
                return ExitCode::from(EXIT_RUNTIME);
            }
        },
    };
    let plugins = match PluginHost::start_with_ledger(&config, metrics.clone(), ledger).await {
        Ok(plugins) => plugins,
        Err(e) => {
            tracing::error!("invalid config: {e}");
            eprintln!("paygated: invalid config: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Opened::Sled(sled) = &store {
        let metrics = metrics.clone();
        sled.commit_stats()
            .observe_flushes(move |elapsed| metrics.observe_store_flush(elapsed));
    }
    let state = match AppState::new(config, store, plugins, metrics) {
        Ok(state) => state,
        Err(e) => {
            tracing::error!("invalid config: {e}");
            eprintln!("paygated: invalid config: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    crate::events::spawn_event_metrics(state.store.bus(), state.metrics.clone());
    let webhooks = match crate::webhooks::Dispatcher::new(
        state.store.clone(),
        state.metrics.clone(),
        &state.config.webhooks.settings(),
        crate::api::events::webhook_body,
    ) {
        Ok(webhooks) => webhooks,
        Err(e) => {
            tracing::error!("invalid config: {e}");
            eprintln!("paygated: invalid config: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let config = &state.config;
    warn_about_published_secrets(config, &state, &listeners);
    if !config.durability().fdatasync {
        tracing::warn!(
            "[store] fdatasync = false: an acknowledged payment survives a killed process but not a power loss or kernel crash; remove the line (the default syncs) unless that is your choice"
        );
    }
    for merchant in config.key_merchants() {
        if state.merchants.get(merchant).is_none() {
            tracing::warn!(
                merchant,
                "an API key names a merchant the config does not declare"
            );
        }
    }
    let router = crate::api::router(state.clone());
    let signal = match shutdown_signal() {
        Ok(signal) => signal,
        Err(e) => {
            eprintln!("paygated: cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    spawn_reload_on_sighup(state.clone());
    match crate::merchants::onboarding::load(&state.onboarding).await {
        Ok(n) if n > 0 => tracing::info!(merchants = n, "onboarded merchants loaded"),
        Ok(_) => {}
        Err(e) => {
            tracing::error!("cannot load the onboarded merchants: {e}");
            eprintln!("paygated: cannot load the onboarded merchants: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    }
    crate::janitor::spawn(
        state.payments.clone(),
        state.onboarding.clone(),
        state.config.janitor_settings(),
    );
    crate::monitor::spawn(state.monitor.clone()).await;
    crate::reconciliation::schedule::spawn(
        state.reconciler.clone(),
        config.reconciliation.settings(),
    );
    if let Some(sled) = &state.sled {
        crate::control::spawn(sled.clone(), &config.store.data_dir);
        crate::archiving::spawn(
            sled.clone(),
            state.merchants.clone(),
            state.clock.clone(),
            *config.store.archive_after_days.get_ref(),
        );
    }
    let webhooks = webhooks.map(crate::webhooks::Dispatcher::spawn);
    let urls = listeners.urls();
    tracing::info!(
        listen = ?urls,
        data_dir = %config.store.data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "paygated ready"
    );
    // The one line scripts and tests wait for; logs go to stderr.
    println!("paygated listening on {}", urls.join(" "));

    spawn_stall_watchdog(
        state.clone(),
        Duration::from_secs(config.store.flush_stall_s.max(1)),
    );
    let store_failed = store_failure(state.clone());
    let shutdown = async move {
        tokio::select! {
            () = signal => {}
            () = store_failed => {}
        }
    };
    let settings = config.connection_settings(state.metrics.clone());
    let outcome = server::serve(listeners, router, shutdown, settings).await;
    if let Some(webhooks) = &webhooks {
        webhooks.release().await;
    }
    if let Drain::TimedOut { connections } = outcome {
        tracing::warn!(
            connections,
            "drain time ran out; dropping the remaining connections"
        );
    }
    if let Some(failure) = state.store.failure() {
        tracing::error!(
            "exiting with code {EXIT_STORE_FAILED} so that the supervisor restarts paygated: the store failed ({failure}); everything acknowledged before is on disk"
        );
        return ExitCode::from(EXIT_STORE_FAILED);
    }
    let Some(sled) = &state.sled else {
        tracing::info!("bye");
        return ExitCode::SUCCESS;
    };
    match sled.flush() {
        Ok(_) => {
            tracing::info!("store flushed; bye");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("final store flush failed: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Opens the configured engine: the data dir's sled database, or the PostgreSQL database
/// (migrated to this build's schema). A failure is said on stderr with its exit code: a
/// setting that cannot work (a URL that does not parse, a schema newer than this build,
/// another product's database, refused credentials) is a config error, exit 2; anything
/// else (the server unreachable, a standby after a failover) exit 1, for a supervisor to
/// retry.
pub(crate) async fn open_store(config: &Config) -> Result<Opened, ExitCode> {
    let refuse = |e: &dyn std::fmt::Display, code: u8| {
        tracing::error!("{e}");
        eprintln!("paygated: {e}");
        ExitCode::from(code)
    };
    let pg = config
        .postgres_settings()
        .map_err(|e| refuse(&format!("invalid config: {e}"), EXIT_CONFIG))?;
    let Some(pg) = pg else {
        let mut store = Store::open_with(
            &config.store.data_dir,
            config.durability(),
            config.cache_bytes(),
        )
        .map_err(|e| refuse(&e, EXIT_RUNTIME))?;
        store.keep_free(config.store.min_free_mb.saturating_mul(1 << 20));
        return Ok(Opened::Sled(Box::new(store)));
    };
    // The data dir is locked on this engine too: it keeps the daemon's name among those
    // sharing the database, so that one restarted on it resumes at once the requests it was
    // working on when it stopped (another daemon waits for their leases to run out).
    let dir = &config.store.data_dir;
    crate::store::private_dir(dir).map_err(|e| refuse(&e, EXIT_RUNTIME))?;
    let lock = crate::store::take_lock(dir).map_err(|e| refuse(&e, EXIT_RUNTIME))?;
    let node = crate::store::node_name(dir).map_err(|e| refuse(&e, EXIT_RUNTIME))?;
    let pg = crate::store::postgres::PgSettings {
        node: Some(node),
        ..pg
    };
    match crate::store::postgres::PgStore::open(&pg).await {
        Ok(store) => Ok(Opened::Postgres(Box::new(store.holding(lock)))),
        // The server's refusal (no such role or database, a password refused) is the URL's.
        Err(e @ crate::store::postgres::PgError::Query(_)) if e.is_setting() => {
            Err(refuse(&format!("store.postgres.url: {e}"), EXIT_CONFIG))
        }
        Err(e) if e.is_setting() => Err(refuse(&e, EXIT_CONFIG)),
        Err(e) => Err(refuse(&e, EXIT_RUNTIME)),
    }
}

/// Resolves once the store has failed. sled cannot write again after a failed log write
/// without being reopened, which means a new process: every acknowledged write is already
/// durable, so exiting and being restarted loses nothing (the crash tests prove the same for
/// kill -9). The free-space reserve (`space.rs`) exists so that this is rare.
async fn store_failure(state: Arc<AppState>) {
    let mut every = tokio::time::interval(Duration::from_millis(500));
    loop {
        every.tick().await;
        // A write that sled could not put on disk leaves its log unstable, so a flush
        // reports it (and a flush with nothing new costs nothing): without this, a failure
        // after the last request would go unnoticed until the next one.
        let _ = state.store.durable().await;
        if let Some(failure) = state.store.failure() {
            tracing::error!("the store failed: {failure}; draining and exiting");
            return;
        }
    }
}

/// Exits the process (code 75) when a flush hangs for `limit`. sled 0.34.7 can deadlock under
/// heavy load (measured here: its segment accountant waits for a file truncation queued
/// behind I/O threads that wait for the accountant; sled issue #1412), and a hung disk looks
/// the same. Nothing can progress then, not even a graceful drain (the runtime's workers may
/// be blocked in the store), so this is a plain OS thread and the exit is immediate: the
/// same as a kill -9, which the crash tests show loses nothing acknowledged.
fn spawn_stall_watchdog(state: Arc<AppState>, limit: Duration) {
    // Only the embedded engine flushes (PostgreSQL answers within its statement timeout).
    let Some(sled) = state.sled.clone() else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("paygate-watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                if let Some(stalled) = sled.flushing_for()
                    && stalled >= limit
                {
                    tracing::error!(
                        stalled_s = stalled.as_secs(),
                        "a store flush has not returned for {}s ([store] flush_stall_s): the store is stuck; exiting with code {EXIT_STORE_FAILED} so that the supervisor restarts paygated; everything acknowledged is on disk",
                        stalled.as_secs()
                    );
                    std::process::exit(i32::from(EXIT_STORE_FAILED));
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the store watchdog: {e}");
    }
}

/// SIGHUP reloads the plugins from the config file (as `POST /v1/plugins/reload` does).
fn spawn_reload_on_sighup(state: Arc<AppState>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP; reload through the API only: {e}");
            return;
        }
    };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the API keys, merchants and plugins");
            if let Err(e) = state.reload().await {
                tracing::error!(
                    "reload failed; the running keys, merchants and plugins stay in service: {e}"
                );
            }
        }
    });
}

/// The quick start's demo keys and mock wallet are published in the repository: on an
/// address others can reach, anyone could use them.
fn warn_about_published_secrets(config: &Config, state: &AppState, listeners: &Listeners) {
    let exposed = listeners
        .tcp_addr()
        .map_or(true, |addr| !addr.ip().is_loopback());
    if !exposed {
        return;
    }
    let listen = config.listen_text();
    if state.keys.load().has_demo_keys() {
        tracing::warn!(
            %listen,
            "the README's demo API keys are enabled on a non-loopback address: anyone who can reach it can use them; replace them (paygated keys new)"
        );
    }
    if state.plugins.provider("mock").is_some() {
        tracing::warn!(
            %listen,
            "the mock wallet is enabled on a non-loopback address: its notices are signed with a secret published in the repository and its payments move no money; remove its [[plugins]] entry"
        );
    }
}

/// Installs the SIGTERM and SIGINT handlers now (so that a signal arriving right after the
/// listening line is not fatal) and returns a future that resolves at the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}

impl crate::plugins::ArtifactLedger for crate::store::postgres::PgArtifactDigests {
    fn digest(&self, artifact: &str) -> Option<String> {
        self.get(artifact)
    }

    fn record(&self, artifact: &str, sha256: &str) {
        crate::store::postgres::PgArtifactDigests::record(self, artifact, sha256);
    }
}

/// The plugin host checks cached compiled plugins against the digests the store recorded.
impl crate::plugins::ArtifactLedger for crate::store::ArtifactDigests {
    fn digest(&self, artifact: &str) -> Option<String> {
        self.get(artifact)
            .inspect_err(|e| tracing::warn!(error = %e, "cannot read a plugin artifact's digest"))
            .ok()
            .flatten()
    }

    fn record(&self, artifact: &str, sha256: &str) {
        if let Err(e) = ArtifactDigests::record(self, artifact, sha256) {
            tracing::warn!(error = %e, "cannot record a plugin artifact's digest; the next start compiles it again");
        }
    }
}
