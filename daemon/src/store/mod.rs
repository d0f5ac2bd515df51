//! The durable store: the only module that knows its engines, sled (the embedded default,
//! below) and PostgreSQL (`postgres/`).
//!
//! Layout of a data dir:
//! - `paygated.lock`: an exclusive OS file lock held for the daemon's lifetime, holding its pid;
//!   a second daemon on the same dir fails to take it and exits instead of corrupting data.
//! - `db/`: the sled database. Tree `meta` records the on-disk schema version (and the
//!   recovery points of changes, `txn.rs`); one tree per record type and per index
//!   (`payments.rs`, `merchants.rs`, `alerts.rs`), the event log and the webhook outbox
//!   (`event_log.rs`). `migrate.rs` brings a data dir of an older schema up to this one.
//!
//! Durability: sled's `flush` writes with `sync_file_range`, which survives a killed process
//! but not a power loss or kernel crash; `[store] fdatasync = true` adds an `fdatasync` of
//! sled's log after each flush for that (see `commit.rs` and BENCHMARKS.md for its cost).

mod alerts;
mod answers;
pub mod archive;
mod artifacts;
pub mod backup;
pub mod commit;
mod compact;
mod console;
pub use compact::{Compaction, compact};
#[cfg(test)]
mod conformance;
mod event_log;
mod merchants;
pub mod migrate;
mod payments;
mod point_in_time;
pub mod port;
pub mod postgres;
mod reconciliations;
mod recovery;
pub use artifacts::ArtifactDigests;
pub use recovery::open_with_recovery_point;
mod space;
mod txn;
mod verify;

pub use merchants::OnboardingChange;
pub use payments::{Begin, Claim, ClaimLease};
pub use port::{
    AlertStore, ConsoleStore, Durable, Fence, Leased, MerchantStore, Operations, Outbox,
    OutboxEntry, PaymentStore, Pending, Reads, Storage, WriteTurn,
};
pub use space::Room;
pub use verify::Report as VerifyReport;

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The schema version this build writes and understands: 2 logs events by sequence without
/// their records and keeps the record versions an outbox entry needs with the entry (1
/// copied each record into each of its events).
pub const SCHEMA_VERSION: u32 = 2;

const LOCK_FILE: &str = "paygated.lock";
const DB_DIR: &str = "db";
const META_TREE: &str = "meta";
const SCHEMA_KEY: &[u8] = b"schema_version";
/// sled's page cache, unless configured (`[store] cache_mb`). sled's own default is 1 GiB,
/// which let the daemon's memory grow with the data: 247 MiB after 15 s of load.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot create data dir {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "data dir {path} is in use by another paygated{holder}; stop it first or pass another --data-dir"
    )]
    Locked { path: PathBuf, holder: String },
    #[error("cannot lock data dir {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "data dir {path} holds schema version {found}, newer than this paygated understands ({supported}); run a newer paygated"
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("data dir {path} has a corrupt schema version record")]
    CorruptMeta { path: PathBuf },
    #[error("database error in {path}: {source}")]
    Database { path: PathBuf, source: sled::Error },
    #[error("database error: {0}")]
    Sled(sled::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("cannot make the write durable: {0}")]
    Flush(String),
    #[error("{room}; new work is refused until there is room again (nothing accepted is lost)")]
    NoRoom { room: Room },
    #[error("the store stopped writing ({0}); paygated restarts to reopen it")]
    Failed(String),
    #[error(transparent)]
    Postgres(postgres::PgError),
    /// A backup that could not be taken (the store itself is fine).
    #[error("{0}")]
    Backup(String),
    /// A write made under a lease (an idempotency claim, the janitor's hold on a record) that
    /// another daemon has taken over since: nothing was written.
    #[error("another daemon took this work over after its lease expired; nothing was written")]
    LeaseLost,
}

impl StoreError {
    /// Whether the error comes from the disk under the store (the store cannot write now),
    /// rather than from the data in it.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(sled::Error::Io(_))
                | StoreError::Database {
                    source: sled::Error::Io(_),
                    ..
                }
                | StoreError::Flush(_)
                | StoreError::NoRoom { .. }
                | StoreError::Failed(_)
        ) || matches!(self, StoreError::Postgres(e) if e.is_unavailable())
    }
}

/// Makes `dir` (and its parents) if missing, private to the daemon's user (0700), also a
/// data dir made before paygated created it so (on a read-only mount this fails, and
/// whatever writes there next says why). Every engine keeps the compiled plugins' cache in
/// the data dir.
pub fn private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot make the data dir private (0700)");
    }
    Ok(())
}

/// An open data dir. Dropping it releases the lock (after sled has flushed on drop).
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    trees: payments::PaymentTrees,
    merchant_trees: merchants::MerchantTrees,
    /// Code steps and console sessions.
    console: console::ConsoleTrees,
    /// The event log's next sequence number.
    seq: event_log::EventSeq,
    /// The migration this open made, if the data dir had an older schema.
    migrated: Option<migrate::Migration>,
    commit: commit::GroupCommit,
    /// Every write goes through it: one at a time, multi-key changes atomic (`txn.rs`).
    writer: txn::Writer,
    /// Turns at the writer for request paths, taken without blocking a runtime thread
    /// ([`Store::write_turn`]).
    turns: tokio::sync::Mutex<()>,
    /// Free space and writability of the data dir, asked before new work is accepted.
    space: space::SpaceGuard,
    /// Committed events, for in-process consumers.
    bus: crate::events::EventBus,
    /// Whether webhook events get outbox entries (some endpoint is configured).
    outbox_enabled: std::sync::atomic::AtomicBool,
    path: PathBuf,
    // Declared last: fields drop in order, so the lock outlives the database handle.
    /// Finished payments past their retention (`archive/`).
    archive: archive::Archive,
    /// One archive run at a time.
    archive_runs: std::sync::Mutex<()>,
    /// Test hook: an archive run stops (as a crash would) at this step (`archive/run.rs`).
    #[cfg(test)]
    archive_crash_at: std::sync::atomic::AtomicU8,
    _lock: File,
}

impl Store {
    /// Whether `dir` holds an embedded store (one `open` would not have to make): its
    /// database, or what a compaction cut by a crash left (which `open` finishes or undoes).
    pub fn is_in(dir: &Path) -> bool {
        dir.join(DB_DIR).join("conf").is_file()
            || dir.join(compact::OLD_DIR).is_dir()
            || dir.join(compact::COPY_DIR).is_dir()
    }

    /// Opens (creating if needed) the data dir, taking its exclusive lock, with group commit.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, commit::Durability::default(), DEFAULT_CACHE_BYTES)
    }

    /// As [`Store::open`], with the given way of making writes durable and a page cache of
    /// about `cache_bytes`.
    pub fn open_with(
        dir: &Path,
        durability: commit::Durability,
        cache_bytes: u64,
    ) -> Result<Store, StoreError> {
        private_dir(dir)?;
        let lock = take_lock(dir)?;
        if dir.join(backup::RESTORING).exists() {
            return Err(StoreError::Corrupt(format!(
                "{} holds an unfinished restore ({}): run `paygated store restore` into it again",
                dir.display(),
                backup::RESTORING
            )));
        }
        compact::finish_interrupted(dir)?;
        let db_path = dir.join(DB_DIR);
        let database_error = |source| StoreError::Database {
            path: db_path.clone(),
            source,
        };
        let db = open_sled(&db_path, cache_bytes).map_err(database_error)?;
        let meta = db.open_tree(META_TREE).map_err(database_error)?;
        let found = match recorded_schema(&meta, dir)? {
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(database_error)?;
                db.flush().map_err(database_error)?;
                SCHEMA_VERSION
            }
            Some(found) => found,
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: dir.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        // A change a crash interrupted is finished before anything reads the trees.
        let finished = txn::recover(&db, &meta)?;
        if finished > 0 {
            tracing::warn!(
                writes = finished,
                "finished a change interrupted by a crash"
            );
        }
        let migrated = migrate::to_current(&db, &meta, found)?;
        if let Some(migration) = &migrated {
            tracing::warn!(
                from = migration.from,
                to = SCHEMA_VERSION,
                events = migration.events,
                outbox = migration.outbox,
                seconds = migration.seconds,
                "migrated the data dir to this paygated's schema"
            );
        }
        let trees = payments::PaymentTrees::open(&db).map_err(database_error)?;
        // Flushed only when recovery wrote something that matters: a change that had landed
        // whole is finished again harmlessly at the next open if this one's writes are lost.
        match recovery::recover(&meta, &trees)? {
            Some(recovery::Recovered::TakenBack { events }) => {
                tracing::warn!(
                    events,
                    "took back a change interrupted by a crash before its record landed"
                );
                db.flush().map_err(database_error)?;
            }
            Some(recovery::Recovered::Finished { repaired }) if repaired > 0 => {
                tracing::warn!(repaired, "finished a change interrupted by a crash");
                db.flush().map_err(database_error)?;
            }
            Some(recovery::Recovered::Finished { .. }) | None => {}
        }
        let merchant_trees = merchants::MerchantTrees::open(&db).map_err(database_error)?;
        let console = console::ConsoleTrees::open(&db).map_err(database_error)?;
        let seq = event_log::EventSeq::after_last(&trees.events, &meta)?;
        let archive = archive::Archive::open(dir)?;
        let commit =
            commit::GroupCommit::start(db.clone(), &db_path, durability).map_err(|source| {
                StoreError::Flush(format!("cannot open the log for fdatasync: {source}"))
            })?;
        let writer = txn::Writer::new(meta.clone());
        let store = Store {
            db,
            meta,
            trees,
            merchant_trees,
            console,
            seq,
            migrated,
            commit,
            writer,
            turns: tokio::sync::Mutex::new(()),
            space: space::SpaceGuard::new(dir.to_owned(), 0),
            bus: crate::events::EventBus::new(),
            outbox_enabled: Default::default(),
            path: dir.to_owned(),
            archive,
            archive_runs: std::sync::Mutex::new(()),
            #[cfg(test)]
            archive_crash_at: std::sync::atomic::AtomicU8::new(0),
            _lock: lock,
        };
        // An archive run a crash interrupted after its commit leaves its objects both hot
        // and archived: finish taking them out of the hot trees (`archive/run.rs`).
        let finished = store.finish_archive_removals()?;
        if finished > 0 {
            tracing::warn!(
                segments = finished,
                "finished an archive run interrupted by a crash"
            );
        }
        Ok(store)
    }

    /// The migration opening the data dir made, if it had an older schema.
    pub fn migration(&self) -> Option<&migrate::Migration> {
        self.migrated.as_ref()
    }

    /// The schema version recorded in the data dir.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        recorded_schema(&self.meta, &self.path)?.ok_or_else(|| StoreError::CorruptMeta {
            path: self.path.clone(),
        })
    }

    /// Writes everything buffered to disk; returns the bytes flushed.
    pub fn flush(&self) -> Result<usize, StoreError> {
        self.db
            .flush()
            .map_err(|source| self.database_error(source))
    }

    /// Waits, without blocking a runtime thread, until no other request path is at the
    /// writer. Request paths take a turn around their store changes: the writer itself is a
    /// blocking mutex (`txn.rs`), and with two runtime threads, one of them blocked on it is
    /// half the daemon idle; a task waiting here yields its thread to other requests instead.
    /// (Background writers go straight to the writer: they are few and never wait long.)
    /// Not re-entrant: code holding a turn must not wait for another one.
    pub async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turns.lock().await
    }

    /// Resolves once every write made before the call is on disk (group commit: concurrent
    /// callers share one flush).
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.commit.durable().await.map_err(StoreError::Flush)
    }

    /// Keeps `bytes` free on the data dir's file system: below that, new work is refused
    /// (`[store] min_free_mb`; a read-only file system is always refused).
    pub fn keep_free(&mut self, bytes: u64) {
        self.space = space::SpaceGuard::new(self.path.clone(), bytes);
    }

    /// What the data dir's file system can take now.
    pub fn room(&self) -> Room {
        self.space.room()
    }

    /// Why the store can no longer write, once a flush has failed (sled does not recover
    /// from a failed log write without being reopened).
    pub fn failure(&self) -> Option<&str> {
        self.commit.failure().or_else(|| self.writer.broken())
    }

    /// How long the running flush has been running, if one is (a watchdog's input: sled
    /// 0.34 can deadlock under load, see `serve.rs`).
    pub fn flushing_for(&self) -> Option<std::time::Duration> {
        self.commit.flushing_for()
    }

    /// Test hook: makes the next flush hang for `ms` first.
    #[cfg(feature = "test-hooks")]
    pub fn stall_next_flush(&self, ms: u64) {
        self.commit.stall_next_flush(ms);
    }

    /// The bus on which every committed event is published.
    pub fn bus(&self) -> &crate::events::EventBus {
        &self.bus
    }

    /// How long the store's single writer has been held in all (`txn.rs`).
    pub fn writer_busy(&self) -> std::time::Duration {
        self.writer.busy()
    }

    /// The group committer's counters.
    pub fn commit_stats(&self) -> &commit::CommitStats {
        self.commit.stats()
    }

    /// Where the archive's files are (`archive/`).
    pub fn archive_dir(&self) -> &Path {
        self.archive.dir()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn database_error(&self, source: sled::Error) -> StoreError {
        StoreError::Database {
            path: self.path.join(DB_DIR),
            source,
        }
    }

    /// Test helper: records another schema version, as a newer daemon would.
    #[cfg(test)]
    fn set_schema_version(&self, version: u32) {
        self.meta
            .insert(SCHEMA_KEY, &version.to_be_bytes())
            .unwrap();
        self.db.flush().unwrap();
    }
}

/// The schema version recorded in the data dir `dir`, read without migrating or recovering
/// anything (`None`: no database, or none recorded yet). Refused while a daemon holds it.
pub fn schema_of(dir: &Path) -> Result<Option<u32>, StoreError> {
    let _lock = take_lock(dir)?;
    let db_path = dir.join(DB_DIR);
    if !db_path.join("conf").is_file() {
        return Ok(None);
    }
    let database_error = |source| StoreError::Database {
        path: db_path.clone(),
        source,
    };
    let db = open_sled(&db_path, 8 << 20).map_err(database_error)?;
    let meta = db.open_tree(META_TREE).map_err(database_error)?;
    recorded_schema(&meta, dir)
}

/// The schema version recorded in `meta` of the data dir `dir` (`None`: none recorded yet).
fn recorded_schema(meta: &sled::Tree, dir: &Path) -> Result<Option<u32>, StoreError> {
    let raw = meta
        .get(SCHEMA_KEY)
        .map_err(|source| StoreError::Database {
            path: dir.join(DB_DIR),
            source,
        })?;
    raw.map(|raw| {
        <[u8; 4]>::try_from(raw.as_ref())
            .map(u32::from_be_bytes)
            .map_err(|_| StoreError::CorruptMeta {
                path: dir.to_owned(),
            })
    })
    .transpose()
}

/// Opens sled's database. Its file lock can still be held for a moment by the background
/// flusher of a store this process has just closed (the data dir's own lock, already ours,
/// rules out any other holder): a reopen waits up to 2 s for it instead of failing.
pub(crate) fn open_sled(db_path: &Path, cache_bytes: u64) -> sled::Result<sled::Db> {
    let config = sled::Config::new()
        .path(db_path)
        .cache_capacity(cache_bytes);
    let mut attempts = 0;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if attempts < 200 && e.to_string().contains("could not acquire lock") =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// The name of the daemon whose data dir `dir` is, among the daemons sharing a database:
/// its host and a random part, made once and kept in the data dir (`node-id`), so that it
/// stays the same across restarts and no other daemon has it, even one on a host of the same
/// name with a data dir at the same path. The caller holds the data dir's lock.
pub(crate) fn node_name(dir: &Path) -> Result<String, StoreError> {
    let path = dir.join("node-id");
    let io = |source| StoreError::CreateDir {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(name) if !name.trim().is_empty() => return Ok(name.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let host = rustix::system::uname();
    let name = format!(
        "{}:{}",
        host.nodename().to_string_lossy(),
        crate::domain::ids::random_base62(16)
    );
    // Written whole or not at all.
    let partial = dir.join("node-id.partial");
    std::fs::write(&partial, format!("{name}\n")).map_err(io)?;
    std::fs::rename(&partial, &path).map_err(io)?;
    Ok(name)
}

/// Takes `dir`'s exclusive lock (refused while another paygated holds it), held until the
/// file drops.
pub(crate) fn take_lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let lock_error = |source| StoreError::Lock {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let holder = if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            };
            return Err(StoreError::Locked {
                path: dir.to_owned(),
                holder,
            });
        }
        Err(TryLockError::Error(source)) => return Err(lock_error(source)),
    }
    file.set_len(0).map_err(lock_error)?;
    file.rewind().map_err(lock_error)?;
    writeln!(file, "{}", std::process::id()).map_err(lock_error)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_dir_records_the_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("in use by another paygated"));
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id()))
        );
    }

    #[tokio::test]
    async fn write_turns_are_taken_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = store.write_turn().await;
        let waiting = std::time::Duration::from_millis(50);
        assert!(
            tokio::time::timeout(waiting, store.write_turn())
                .await
                .is_err(),
            "a second turn while the first is held"
        );
        drop(first);
        let again = std::time::Duration::from_secs(10);
        assert!(
            tokio::time::timeout(again, store.write_turn())
                .await
                .is_ok()
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path())
            .unwrap()
            .set_schema_version(SCHEMA_VERSION + 1);
        let err = Store::open(dir.path()).err().unwrap();
        assert!(
            matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1)
        );
    }
}
