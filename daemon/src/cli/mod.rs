//! The command line: `paygated serve | config check | keys ... | store ... | plugin ...`.
//!
//! Exit codes: 0 success, 1 a run-time failure (data dir locked, I/O), 2 invalid config or
//! arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backup;
mod totp;

use crate::auth::{self, Role};
use crate::config::{self, Config};
use crate::process::{EXIT_CONFIG, EXIT_RUNTIME, runtime};
use crate::serve::ServeArgs;

#[derive(Debug, Parser)]
#[command(
    name = "paygated",
    version,
    about = "paygate: a local payment gateway for tills and back offices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway in the foreground.
    Serve(ServeArgs),
    /// Work with the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Work with API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Work on a data dir (the daemon stopped, but for `backup` and `verify` on PostgreSQL).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Show a component's world version, imports, exports, SHA-256, providers and methods
    /// (exit 2 if it is not a plugin this paygated can load).
    Inspect {
        /// The component file (`.wasm`).
        file: PathBuf,
    },
    /// Replay a plugin against recorded provider exchanges (the cassettes in DIR, with its
    /// kit.toml) and check the world's contract: the same requests, the same results, each
    /// error class as defined, a query after an unknown outcome, no key material in logs
    /// or requests (exit 1 if a cassette fails).
    Test {
        /// The component file (`.wasm`).
        file: PathBuf,
        /// The directory of kit.toml and the cassettes (`*.json`).
        #[arg(long)]
        cassettes: PathBuf,
    },
    /// Play every scenario of DIR/kit.toml against the live provider (or its simulator), in
    /// order, and write each exchange as a cassette (`DIR/{scenario}.json`).
    Record {
        /// The component file (`.wasm`).
        file: PathBuf,
        /// The directory of kit.toml, where the cassettes are written.
        #[arg(long)]
        cassettes: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and print a summary (exit 2 if it is invalid).
    Check {
        #[arg(long, default_value = "config/paygate.toml")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Check every invariant of the stored payments, refunds, keys and events; exit 1 on
    /// any violation. On PostgreSQL (the config's engine, no --data-dir) the database is
    /// checked in one read-only snapshot, beside running daemons.
    Verify {
        #[arg(long, default_value = "config/paygate.toml")]
        config: PathBuf,
        /// The data dir (default: the config's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Forget idempotency keys past their retention, move finished payments past theirs,
    /// with their refunds and events, to the archive now (the daemon does both hourly), and
    /// say what moved; then compact. Stop the daemon first.
    Archive {
        #[arg(long, default_value = "config/paygate.toml")]
        config: PathBuf,
        /// The data dir (default: the config's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Archive what last changed at least this many whole days ago in the merchant's
        /// `utc_offset` (`30d`; `0d` takes everything finished): default the config's
        /// `[store] archive_after_days`.
        #[arg(long, value_parser = parse_days)]
        older_than: Option<u32>,
        /// Leave the database uncompacted after a run that moved payments (see `compact`).
        #[arg(long)]
        no_compact: bool,
    },
    /// Copy the database into a fresh one that takes its place, giving back the disk and
    /// memory that removed data still holds (sled keeps both at their peak). Stop the
    /// daemon first.
    Compact {
        #[arg(long, default_value = "config/paygate.toml")]
        config: PathBuf,
        /// The data dir (default: the config's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Copy the store at one consistent point into DIR (new or empty): everything
    /// acknowledged before it, no change half applied, and the archive. A serving daemon
    /// streams it on its control socket (writes wait while its keys are read; reads go on);
    /// a stopped data dir is read in process. DIR is a data dir `store verify` reads.
    Backup {
        #[arg(long, default_value = "config/paygate.toml")]
        config: PathBuf,
        /// The data dir (default: the config's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where the backup goes (made; refused if it holds anything).
        #[arg(long)]
        to: PathBuf,
        /// Only from the daemon serving the data dir (exit 1 if none answers): never open
        /// the data dir here, where a daemon starting meanwhile would find it locked (the
        /// nightly timer's choice).
        #[arg(long)]
        serving: bool,
    },
    /// Make a new data dir from a backup, after checking every checksum it was taken with,
    /// then verify it (exit 1 on a damaged backup or a violation).
    Restore {
        /// The backup (a directory `store backup` made).
        #[arg(long)]
        from: PathBuf,
        /// The new data dir (made; refused if it holds anything).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Bring a data dir written by an older paygated to this one's schema (starting the
    /// daemon does the same), and say what was done.
    Migrate {
        #[arg(long, default_value = "config/paygate.toml")]
        config: PathBuf,
        /// The data dir (default: the config's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print a fresh random API key once, and the config lines (with its SHA-256) to paste.
    New {
        /// What the key may do.
        #[arg(long, value_parser = ["pos", "erp", "admin"])]
        role: String,
        /// A merchant the key may act for (repeat for several; not for admin keys).
        #[arg(long = "merchant", value_name = "ID")]
        merchants: Vec<String>,
        /// The key's public name in logs and alerts (default: derived from the role).
        #[arg(long)]
        id: Option<String>,
    },
    /// Print a fresh master key (64 hex characters) for `[onboarding] master_key`.
    NewMaster,
    /// Give an erp or admin key an authenticator (TOTP), the console's second factor.
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Re-encrypt every sealed value in the data dir under a new master key (stop the
    /// daemon first; then point `[onboarding] master_key` at the new key).
    RotateMaster {
        #[arg(long, default_value = "config/paygate.toml")]
        config: std::path::PathBuf,
        /// The data dir (default: the config's).
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// The new key: `env:VAR` or `file:PATH`.
        #[arg(long)]
        new_key: String,
    },
}

#[derive(Debug, Subcommand)]
enum TotpCommand {
    /// Seal a fresh secret into the key's config entry and print it once, as a QR code and an
    /// `otpauth://` URI (needs `[onboarding] master_key`; then reload the daemon).
    Enroll {
        #[arg(long, default_value = "config/paygate.toml")]
        config: PathBuf,
        #[arg(long)]
        key_id: String,
    },
    /// The same for a lost authenticator: the old one stops working and the key's console
    /// sessions end once the daemon reloads.
    Reset {
        #[arg(long, default_value = "config/paygate.toml")]
        config: PathBuf,
        #[arg(long)]
        key_id: String,
    },
}

pub fn main() -> ExitCode {
    // Everything paygated writes (the store, the plugin cache, sockets) is its own: payments,
    // sealed secrets and cached code are no business of other local users.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => crate::serve::run(args),
        Command::Config(ConfigCommand::Check { config }) => config_check(&config),
        Command::Keys(KeysCommand::New {
            role,
            merchants,
            id,
        }) => keys_new(&role, merchants, id),
        Command::Keys(KeysCommand::Totp(TotpCommand::Enroll { config, key_id })) => {
            totp::run(&config, &key_id, totp::Mode::Enroll)
        }
        Command::Keys(KeysCommand::Totp(TotpCommand::Reset { config, key_id })) => {
            totp::run(&config, &key_id, totp::Mode::Reset)
        }
        Command::Keys(KeysCommand::NewMaster) => {
            println!("{}", crate::merchants::sealed::MasterKey::generate_hex());
            ExitCode::SUCCESS
        }
        Command::Keys(KeysCommand::RotateMaster {
            config,
            data_dir,
            new_key,
        }) => rotate_master(&config, data_dir, &new_key),
        Command::Plugin(PluginCommand::Inspect { file }) => plugin_inspect(&file),
        Command::Plugin(PluginCommand::Test { file, cassettes }) => {
            plugin_kit(&file, &cassettes, false)
        }
        Command::Plugin(PluginCommand::Record { file, cassettes }) => {
            plugin_kit(&file, &cassettes, true)
        }
        Command::Store(StoreCommand::Verify { config, data_dir }) => {
            store_verify(&config, data_dir)
        }
        Command::Store(StoreCommand::Migrate { config, data_dir }) => {
            store_migrate(&config, data_dir)
        }
        Command::Store(StoreCommand::Archive {
            config,
            data_dir,
            older_than,
            no_compact,
        }) => store_archive(&config, data_dir, older_than, !no_compact),
        Command::Store(StoreCommand::Backup {
            config,
            data_dir,
            to,
            serving,
        }) => match data_dir_of(&config, data_dir) {
            Ok(dir) => backup::store_backup(&dir, &to, serving),
            Err(code) => code,
        },
        Command::Store(StoreCommand::Restore { from, data_dir }) => {
            backup::store_restore(&from, &data_dir)
        }
        Command::Store(StoreCommand::Compact { config, data_dir }) => {
            match data_dir_of(&config, data_dir) {
                Ok(dir) => store_compact(&dir),
                Err(code) => code,
            }
        }
    }
}

/// The config at `config_path`, or the exit code of an invalid one (said on stderr).
fn load_config(config_path: &std::path::Path) -> Result<crate::config::Config, ExitCode> {
    crate::config::Config::load(config_path).map_err(|e| {
        eprintln!("paygated: invalid config: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// The data dir given, or the config's, for a `store` command.
fn data_dir_of(
    config_path: &std::path::Path,
    data_dir: Option<PathBuf>,
) -> Result<PathBuf, ExitCode> {
    if let Some(dir) = data_dir {
        return Ok(dir);
    }
    let config = load_config(config_path)?;
    if *config.store.engine.get_ref() == crate::config::EngineKind::Postgres {
        eprintln!(
            "paygated: the store commands work on the embedded engine's data dir; this config keeps its data in PostgreSQL (store.engine): back it up, restore and check it with PostgreSQL's own tools (pg_dump, pg_restore, amcheck)"
        );
        return Err(ExitCode::from(EXIT_CONFIG));
    }
    Ok(config.store.data_dir.clone())
}

/// Opens the data dir given, or the config's, for a `store` command.
fn open_store(
    config_path: &std::path::Path,
    data_dir: Option<PathBuf>,
) -> Result<crate::store::Store, ExitCode> {
    let dir = data_dir_of(config_path, data_dir)?;
    crate::store::Store::open(&dir).map_err(|e| {
        eprintln!("paygated: {e}");
        ExitCode::from(EXIT_RUNTIME)
    })
}

/// `30d` as 30 (whole days only: the archive moves whole local days).
fn parse_days(text: &str) -> Result<u32, String> {
    text.strip_suffix('d')
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n <= 3650)
        .ok_or_else(|| format!("\"{text}\" is not a number of days like \"30d\" (0d to 3650d)"))
}

/// `paygated store archive`.
fn store_archive(
    config_path: &std::path::Path,
    data_dir: Option<PathBuf>,
    older_than: Option<u32>,
    then_compact: bool,
) -> ExitCode {
    // The config says where each merchant's days begin.
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let store = match open_store(config_path, data_dir) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let merchants = crate::merchants::MerchantDirectory::new(
        config.configured_merchants(),
        config.platform_merchant(),
    );
    let days = older_than.unwrap_or(*config.store.archive_after_days.get_ref());
    let started = std::time::Instant::now();
    // Keys past their retention first, as the daemon's janitor does hourly: they would
    // otherwise outlive their payments in the database (and in a compaction's copy).
    let now_ms = crate::clock::now_ms();
    let retention_ms = config.janitor_settings().idempotency_retention_ms;
    match store.expire_idempotency_keys(now_ms.saturating_sub(retention_ms)) {
        Ok(expired) => println!("forgot {expired} idempotency keys past their retention"),
        Err(e) => {
            eprintln!("paygated: expiring idempotency keys failed: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    }
    match crate::archiving::run_once(&store, &merchants, now_ms, days) {
        Ok(report) => {
            println!(
                "archived {} payments, {} refunds and {} events older than {days} days into {} segments under {} in {:.3} s{}",
                report.payments,
                report.refunds,
                report.events,
                report.segments.len(),
                store.archive_dir().display(),
                started.elapsed().as_secs_f64(),
                match report.changed_meanwhile {
                    0 => String::new(),
                    n => format!(" ({n} changed while archived and stay in the database)"),
                }
            );
            let dir = store.path().to_owned();
            drop(store);
            if then_compact && report.payments + report.events > 0 {
                store_compact(&dir)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("paygated: the archive run failed: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// `paygated store compact`.
fn store_compact(dir: &std::path::Path) -> ExitCode {
    match crate::store::compact(dir, crate::store::DEFAULT_CACHE_BYTES) {
        Ok(done) => {
            println!(
                "compacted {}: {} keys in {} trees, {:.1} MiB -> {:.1} MiB, in {:.3} s",
                dir.join("db").display(),
                done.keys,
                done.trees,
                done.bytes_before as f64 / (1 << 20) as f64,
                done.bytes_after as f64 / (1 << 20) as f64,
                done.seconds
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paygated: the compaction failed: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// `paygated store migrate`.
fn store_migrate(config_path: &std::path::Path, data_dir: Option<PathBuf>) -> ExitCode {
    let store = match open_store(config_path, data_dir) {
        Ok(store) => store,
        Err(code) => return code,
    };
    match store.migration() {
        Some(m) => println!(
            "migrated {} from schema version {} to {}: {} events, {} outbox entries, in {:.3} s",
            store.path().display(),
            m.from,
            crate::store::SCHEMA_VERSION,
            m.events,
            m.outbox,
            m.seconds
        ),
        None => println!(
            "{} is at schema version {} already: nothing to migrate",
            store.path().display(),
            crate::store::SCHEMA_VERSION
        ),
    }
    ExitCode::SUCCESS
}

/// `paygated store verify`: the data dir given, or the store the config names (on
/// PostgreSQL, its database, checked in one snapshot beside the running daemons).
fn store_verify(config_path: &std::path::Path, data_dir: Option<PathBuf>) -> ExitCode {
    let verified = match data_dir {
        None => {
            let config = match load_config(config_path) {
                Ok(config) => config,
                Err(code) => return code,
            };
            if *config.store.engine.get_ref() == crate::config::EngineKind::Postgres {
                verify_postgres(&config)
            } else {
                verify_data_dir(config.store.data_dir.clone())
            }
        }
        Some(dir) => verify_data_dir(dir),
    };
    report_verified(verified)
}

/// Prints what `store verify` found; exit 1 on any violation.
fn report_verified(verified: Result<crate::store::VerifyReport, ExitCode>) -> ExitCode {
    let report = match verified {
        Ok(report) => report,
        Err(code) => return code,
    };
    let archive = if report.archived.segments > 0 || report.archived.payments > 0 {
        format!(
            ", and an archive of {} segments ({} payments, {} refunds, {} events)",
            report.archived.segments,
            report.archived.payments,
            report.archived.refunds,
            report.archived.events
        )
    } else {
        ", and an archive of 0 segments".to_owned()
    };
    println!(
        "checked {} payments, {} refunds, {} idempotency keys, {} events{archive}: {} violations",
        report.payments,
        report.refunds,
        report.idempotency_keys,
        report.events,
        report.violations.len()
    );
    for violation in &report.violations {
        println!("violation: {violation}");
    }
    if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUNTIME)
    }
}

/// The embedded store in `dir`, checked. A directory without one is refused rather than
/// given an empty store to call clean (a PostgreSQL daemon's data dir holds only its lock
/// and its node id).
fn verify_data_dir(dir: PathBuf) -> Result<crate::store::VerifyReport, ExitCode> {
    if !crate::store::Store::is_in(&dir) {
        eprintln!(
            "paygated: {} holds no embedded store to verify (a daemon on PostgreSQL keeps its data in the database: pass its --config instead)",
            dir.display()
        );
        return Err(ExitCode::from(EXIT_CONFIG));
    }
    let store = crate::store::Store::open(&dir).map_err(|e| {
        eprintln!("paygated: {e}");
        ExitCode::from(EXIT_RUNTIME)
    })?;
    store.verify().map_err(|e| {
        eprintln!("paygated: {e}");
        ExitCode::from(EXIT_RUNTIME)
    })
}

/// The PostgreSQL database the config names, checked in one read-only snapshot. Its data dir
/// is not locked: the daemons may be serving.
fn verify_postgres(config: &crate::config::Config) -> Result<crate::store::VerifyReport, ExitCode> {
    let fail = |e: &dyn std::fmt::Display, code: u8| {
        eprintln!("paygated: {e}");
        ExitCode::from(code)
    };
    let settings = match config.postgres_settings() {
        Ok(Some(settings)) => settings,
        Ok(None) => return Err(fail(&"store.engine is not postgres", EXIT_CONFIG)),
        Err(e) => return Err(fail(&format!("invalid config: {e}"), EXIT_CONFIG)),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(&format!("cannot start a runtime: {e}"), EXIT_RUNTIME))?;
    runtime.block_on(async {
        // As it is: no schema made in a wrong database, none migrated under the daemons.
        let store = crate::store::postgres::PgStore::open_as_is(&settings)
            .await
            .map_err(|e| {
                let code = if e.is_setting() {
                    EXIT_CONFIG
                } else {
                    EXIT_RUNTIME
                };
                fail(&e, code)
            })?;
        store.verify().await.map_err(|e| fail(&e, EXIT_RUNTIME))
    })
}

/// `paygated keys rotate-master`: opens the store (refused while a daemon holds it), opens
/// every sealed value with the configured key and seals it again with the new one.
fn rotate_master(
    config_path: &std::path::Path,
    data_dir: Option<std::path::PathBuf>,
    new_key: &str,
) -> ExitCode {
    use crate::merchants::sealed::MasterKey;
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(old_source) = config.master_key_source() else {
        eprintln!("paygated: the config names no [onboarding] master_key to rotate from");
        return ExitCode::from(EXIT_CONFIG);
    };
    let keys =
        MasterKey::load(old_source).and_then(|old| MasterKey::load(new_key).map(|new| (old, new)));
    let (old, new) = match keys {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("paygated: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut config = config;
    if let Some(dir) = data_dir {
        config.store.data_dir = dir;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("paygated: cannot start a runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    // Whichever engine the config names: the records are re-sealed where they are.
    let store: std::sync::Arc<dyn crate::store::Storage> = match runtime
        .block_on(crate::serve::open_store(&config))
    {
        // A daemon on the data dir holds its lock: the open refused.
        Ok(crate::app::Opened::Sled(store)) => std::sync::Arc::<crate::store::Store>::from(store),
        // Daemons on the database: their connections say so.
        Ok(crate::app::Opened::Postgres(store)) => match runtime.block_on(store.others_connected())
        {
            Ok(0) => std::sync::Arc::<crate::store::postgres::PgStore>::from(store),
            Ok(n) => {
                eprintln!(
                    "paygated: running daemons hold {n} connections to the database; stop every daemon first"
                );
                return ExitCode::from(EXIT_RUNTIME);
            }
            Err(e) => {
                eprintln!("paygated: {e}");
                return ExitCode::from(EXIT_RUNTIME);
            }
        },
        Err(code) => return code,
    };
    let reseal = |id: &str, field: &str, sealed: &mut crate::domain::records::Sealed| {
        if sealed.key_id == new.id() {
            return Ok(()); // already rotated (a rerun after an interruption)
        }
        let plain = old.open(id, field, sealed)?;
        *sealed = new.seal(id, field, &plain);
        Ok(())
    };
    let result = runtime.block_on(store.reseal_all(
        &mut |m| {
            let id = m.id.clone();
            reseal(&id, "legal_person_id", &mut m.legal_person_id)
        },
        &mut |a| {
            let id = a.id.clone();
            reseal(&id, "account_number", &mut a.account_number)
        },
    ));
    // The keys' authenticator secrets live in the config file, sealed the same way.
    let result = result.map_err(|e| e.to_string()).and_then(|count| {
        totp::reseal_config(config_path, &old, &new).map(|secrets| (count, secrets))
    });
    match result {
        Ok((count, secrets)) => {
            println!(
                "re-encrypted {count} records and {secrets} authenticator secrets from key {} to key {}; now set [onboarding] master_key to the new key",
                old.id(),
                new.id()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paygated: rotation stopped: {e} (rerun it: finished records are skipped)");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// `plugin test` (or `plugin record`, with `record`).
fn plugin_kit(file: &std::path::Path, cassettes: &std::path::Path, record: bool) -> ExitCode {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let outcome = if record {
        runtime
            .block_on(crate::plugin_kit::record(file, cassettes))
            .map(|()| true)
    } else {
        runtime.block_on(crate::plugin_kit::test(file, cassettes))
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("paygated: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn plugin_inspect(file: &std::path::Path) -> ExitCode {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let inspection = match runtime.block_on(crate::plugins::PluginHost::inspect(file)) {
        Ok(inspection) => inspection,
        Err(e) => {
            eprintln!("paygated: {}: {e}", file.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    println!("file      {}", file.display());
    println!("sha256    {}", inspection.sha256);
    match &inspection.world_version {
        Ok(version) => println!(
            "world     {}@{version} (compatible)",
            crate::plugins::WORLD_PACKAGE
        ),
        Err(e) => println!("world     INCOMPATIBLE: {e}"),
    }
    println!("imports   {}", inspection.imports.join(", "));
    println!("exports   {}", inspection.exports.join(", "));
    if let Some(info) = &inspection.info {
        println!("plugin    {} {}", info.name, info.version);
        for provider in &info.providers {
            let methods: Vec<&str> = provider
                .methods
                .iter()
                .map(|m| crate::plugins::method_name(*m))
                .collect();
            let operations: Vec<&str> = provider
                .operations
                .iter()
                .map(|o| crate::plugins::operation_name(*o))
                .collect();
            println!(
                "provider  {} ({}): methods [{}], currencies [{}], operations [{}]",
                provider.name,
                provider.display_name,
                methods.join(", "),
                provider.currencies.join(", "),
                operations.join(", ")
            );
        }
    }
    if inspection.world_version.is_ok() && inspection.info.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CONFIG)
    }
}

fn config_check(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("paygated: invalid config: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // The master key is read at start, and opens the keys' authenticators: one that cannot
    // be read, or a secret it does not open, stops the daemon too.
    if let Err(e) = config.master_key().and_then(|_| config.key_ring()) {
        eprintln!("paygated: invalid config: {}: {e}", path.display());
        return ExitCode::from(EXIT_CONFIG);
    }
    println!("{}: OK", path.display());
    for line in config.summary() {
        println!("{line}");
    }
    ExitCode::SUCCESS
}

fn keys_new(role: &str, merchants: Vec<String>, id: Option<String>) -> ExitCode {
    let role = Role::parse(role).expect("clap restricts the role");
    if let Err(message) = config::check_key_scope(role, &merchants) {
        eprintln!("paygated: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if let Some(bad) = merchants.iter().find(|m| !config::is_merchant_id(m)) {
        eprintln!("paygated: \"{bad}\" is not a merchant id (m_ followed by letters, digits or _)");
        return ExitCode::from(EXIT_CONFIG);
    }
    let key = auth::generate_key();
    let id = id.unwrap_or_else(|| {
        format!(
            "key_{role}_{}",
            crate::domain::ids::random_base62(6).to_lowercase()
        )
    });
    let merchant_list = merchants
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    println!("API key (shown only now; give it to the client and keep no other copy):");
    println!();
    println!("    {key}");
    println!();
    println!("Add this to the config file (only the hash is stored there):");
    println!();
    println!("[[api_keys]]");
    println!("id = \"{id}\"");
    println!("role = \"{role}\"");
    if !merchants.is_empty() {
        println!("merchants = [{merchant_list}]");
    }
    println!("sha256 = \"{}\"", hex::encode(auth::sha256(&key)));
    ExitCode::SUCCESS
}
