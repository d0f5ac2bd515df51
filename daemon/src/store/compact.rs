//! Compaction: the database copied into a fresh one, which then takes its place.
//!
//! Why: sled 0.34 never gives back what a large removal frees. Its file keeps its size, and
//! its page table keeps an entry (and its snapshot a record) for every page id it ever
//! allocated, so after the archive takes millions of payments out of the hot trees, the
//! daemon still needs the memory of the peak (BENCHMARKS.md, "The archive"). A copy holds
//! only what is live. It runs offline (`paygated store compact`, and `store archive` after a
//! run that moved something), under the data dir's lock.
//!
//! How a crash cannot lose the database: the copy is built in `db.compact/`, read back and
//! compared with the original (sled's checksum of every key and value), and synced, before
//! anything is renamed. Then `db` becomes `db.old`, `db.compact` becomes `db`, and `db.old`
//! is removed, each rename made durable before the next. [`finish_interrupted`], run at
//! every open, reads which of these states a crash left:
//!
//! | found | meaning | done at open |
//! | --- | --- | --- |
//! | `db` and `db.compact` | the copy was not finished | remove `db.compact` |
//! | `db.compact` and `db.old`, no `db` | the copy was whole, the swap was cut | rename `db.compact` to `db` |
//! | `db.old` alone, no `db` | (cannot happen in this order; a hand-made state) | rename `db.old` back to `db` |
//! | `db` and `db.old` | the swap was done | remove `db.old` |
//! | `db.compact` alone, no `db` | (no step leaves this: the database was removed by hand) | refuse to open; the copy is not deleted |

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::archive::segment::sync_dir;
use super::{DB_DIR, META_TREE, SCHEMA_VERSION, StoreError, open_sled, recorded_schema, take_lock};

pub(super) const COPY_DIR: &str = "db.compact";
pub(super) const OLD_DIR: &str = "db.old";

/// What a compaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct Compaction {
    /// Trees copied (sled's default tree included).
    pub trees: usize,
    /// Keys copied, over all trees.
    pub keys: u64,
    /// Bytes of the database directory before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub seconds: f64,
}

/// A step a test stops the compaction after, as a crash there would.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopAfter {
    Copy,
    FirstRename,
}

/// Compacts the database of the data dir `dir`, which no daemon may hold.
pub fn compact(dir: &Path, cache_bytes: u64) -> Result<Compaction, StoreError> {
    compact_stopping(dir, cache_bytes, None)
}

fn compact_stopping(
    dir: &Path,
    cache_bytes: u64,
    stop: Option<StopAfter>,
) -> Result<Compaction, StoreError> {
    let started = Instant::now();
    let _lock = take_lock(dir)?;
    finish_interrupted(dir)?;
    let db_path = dir.join(DB_DIR);
    let copy_path = dir.join(COPY_DIR);
    let old_path = dir.join(OLD_DIR);
    let database_error = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Database { path, source }
    };
    if !db_path.exists() {
        return Err(StoreError::Corrupt(format!(
            "{} holds no database to compact",
            dir.display()
        )));
    }
    let bytes_before = dir_bytes(&db_path)?;

    let source = open_sled(&db_path, cache_bytes).map_err(database_error(&db_path))?;
    check_schema(dir, &source)?;
    let copy = open_sled(&copy_path, cache_bytes).map_err(database_error(&copy_path))?;
    let mut trees = 0;
    let mut keys = 0u64;
    for name in source.tree_names() {
        let from = source.open_tree(&name).map_err(database_error(&db_path))?;
        let to = copy.open_tree(&name).map_err(database_error(&copy_path))?;
        for entry in from.iter() {
            let (key, value) = entry.map_err(database_error(&db_path))?;
            to.insert(key, value).map_err(database_error(&copy_path))?;
            keys += 1;
        }
        trees += 1;
    }
    copy.flush().map_err(database_error(&copy_path))?;
    drop(copy);
    // Read the copy back through a fresh open (which also writes its snapshot, so the
    // daemon's first start need not replay the copy) and compare every key and value.
    let expected = source.checksum().map_err(database_error(&db_path))?;
    drop(source);
    let reopened = open_sled(&copy_path, cache_bytes).map_err(database_error(&copy_path))?;
    let found = reopened.checksum().map_err(database_error(&copy_path))?;
    reopened.flush().map_err(database_error(&copy_path))?;
    drop(reopened);
    if found != expected {
        let _ = std::fs::remove_dir_all(&copy_path);
        return Err(StoreError::Corrupt(format!(
            "the compacted copy of {} reads back differently (checksum {found:08x}, expected {expected:08x}); the database is unchanged",
            db_path.display()
        )));
    }
    sync_tree(&copy_path)?;
    sync_dir(dir)?;
    if stop == Some(StopAfter::Copy) {
        return Err(StoreError::Failed("stopped after the copy (test)".into()));
    }

    rename(&db_path, &old_path)?;
    sync_dir(dir)?;
    if stop == Some(StopAfter::FirstRename) {
        return Err(StoreError::Failed(
            "stopped after the first rename (test)".into(),
        ));
    }
    rename(&copy_path, &db_path)?;
    sync_dir(dir)?;
    remove_dir(&old_path)?;
    sync_dir(dir)?;
    Ok(Compaction {
        trees,
        keys,
        bytes_before,
        bytes_after: dir_bytes(&db_path)?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Finishes or undoes a compaction a crash interrupted (see the module's table). Run under
/// the data dir's lock, before sled opens `db`.
pub(super) fn finish_interrupted(dir: &Path) -> Result<(), StoreError> {
    let db = dir.join(DB_DIR);
    let copy = dir.join(COPY_DIR);
    let old = dir.join(OLD_DIR);
    let (has_db, has_copy, has_old) = (db.exists(), copy.exists(), old.exists());
    if !has_copy && !has_old {
        return Ok(()); // every start but one after a cut compaction: nothing to sync
    }
    if !has_db && has_copy && has_old {
        tracing::warn!(dir = %dir.display(), "finishing a compaction a crash interrupted");
        rename(&copy, &db)?;
        sync_dir(dir)?;
    } else if !has_db && has_old {
        tracing::warn!(dir = %dir.display(), "restoring the database a compaction had set aside");
        rename(&old, &db)?;
        sync_dir(dir)?;
    } else if !has_db && has_copy {
        // No step of a compaction leaves this: something else removed the database. The
        // copy may be all that is left of it, so it is not ours to delete.
        return Err(StoreError::Corrupt(format!(
            "{} holds a compaction's copy ({COPY_DIR}) but no database ({DB_DIR}); if the copy is whole, rename it to {DB_DIR} by hand",
            dir.display()
        )));
    }
    if copy.exists() {
        tracing::warn!(dir = %dir.display(), "removing an unfinished compaction copy");
        remove_dir(&copy)?;
    }
    if old.exists() {
        remove_dir(&old)?;
    }
    sync_dir(dir)
}

/// Only a database this build writes is copied: an older one is migrated first (by the
/// daemon's start or `store migrate`), a newer one is not ours to touch.
fn check_schema(dir: &Path, db: &sled::Db) -> Result<(), StoreError> {
    let meta = db.open_tree(META_TREE).map_err(StoreError::Sled)?;
    match recorded_schema(&meta, dir)? {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(found) if found > SCHEMA_VERSION => Err(StoreError::NewerSchema {
            path: dir.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        }),
        _ => Err(StoreError::Corrupt(format!(
            "{} is not at schema {SCHEMA_VERSION}: run `paygated store migrate` first",
            dir.display()
        ))),
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Flush(format!("compaction, {}: {e}", path.display()))
}

fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(io_error(from))
}

fn remove_dir(path: &Path) -> Result<(), StoreError> {
    std::fs::remove_dir_all(path).map_err(io_error(path))
}

/// Every file of `dir` (recursively) on stable storage, and the directories naming them.
pub(super) fn sync_tree(dir: &Path) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path: PathBuf = entry.map_err(io_error(dir))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_error(&path))?;
        }
    }
    sync_dir(dir)
}

fn dir_bytes(dir: &Path) -> Result<u64, StoreError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let meta = entry.metadata().map_err(io_error(dir))?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// A data dir with some keys in a few trees, the store closed.
    fn filled() -> (tempfile::TempDir, u32) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tree = store.db.open_tree("payments").unwrap();
        for i in 0..2_000u32 {
            tree.insert(format!("pay_{i:06}"), vec![7u8; 300]).unwrap();
        }
        // Most of it removed, as an archive run does: the copy keeps only what is left.
        for i in 0..1_900u32 {
            tree.remove(format!("pay_{i:06}")).unwrap();
        }
        store.db.flush().unwrap();
        let checksum = store.db.checksum().unwrap();
        drop(tree);
        drop(store);
        (dir, checksum)
    }

    fn checksum_after_open(dir: &Path) -> u32 {
        let store = Store::open(dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let payments = store.db.open_tree("payments").unwrap();
        assert_eq!(payments.len(), 100);
        assert!(payments.get("pay_001950").unwrap().is_some());
        store.db.checksum().unwrap()
    }

    #[test]
    fn a_compacted_database_holds_the_same_keys_and_values_in_less_space() {
        let (dir, checksum) = filled();
        let done = compact(dir.path(), 8 << 20).unwrap();
        assert!(done.keys >= 101, "{done:?}");
        assert!(done.bytes_after < done.bytes_before, "{done:?}");
        assert!(!dir.path().join(COPY_DIR).exists());
        assert!(!dir.path().join(OLD_DIR).exists());
        assert_eq!(checksum_after_open(dir.path()), checksum);
    }

    #[test]
    fn a_compaction_cut_at_any_step_leaves_the_database_whole() {
        for stop in [StopAfter::Copy, StopAfter::FirstRename] {
            let (dir, checksum) = filled();
            let err = compact_stopping(dir.path(), 8 << 20, Some(stop)).unwrap_err();
            assert!(err.to_string().contains("stopped"), "{err}");
            assert_eq!(checksum_after_open(dir.path()), checksum, "{stop:?}");
            for leftover in [COPY_DIR, OLD_DIR] {
                assert!(!dir.path().join(leftover).exists(), "{stop:?}: {leftover}");
            }
            // And a later compaction runs normally.
            compact(dir.path(), 8 << 20).unwrap();
            assert_eq!(checksum_after_open(dir.path()), checksum, "{stop:?}");
        }
    }

    #[test]
    fn a_set_aside_database_alone_is_put_back() {
        let (dir, checksum) = filled();
        std::fs::rename(dir.path().join(DB_DIR), dir.path().join(OLD_DIR)).unwrap();
        assert_eq!(checksum_after_open(dir.path()), checksum);
    }

    #[test]
    fn a_copy_without_its_database_is_left_alone() {
        let (dir, checksum) = filled();
        std::fs::rename(dir.path().join(DB_DIR), dir.path().join(COPY_DIR)).unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("by hand"), "{err}");
        assert!(dir.path().join(COPY_DIR).exists());
        std::fs::rename(dir.path().join(COPY_DIR), dir.path().join(DB_DIR)).unwrap();
        assert_eq!(checksum_after_open(dir.path()), checksum);
    }

    #[test]
    fn a_held_or_newer_data_dir_is_refused() {
        let (dir, _) = filled();
        let store = Store::open(dir.path()).unwrap();
        let err = compact(dir.path(), 8 << 20).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        store.set_schema_version(SCHEMA_VERSION + 1);
        drop(store);
        let err = compact(dir.path(), 8 << 20).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
        assert!(!dir.path().join(COPY_DIR).exists());
    }
}
