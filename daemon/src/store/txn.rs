//! Atomic changes over several sled trees, without sled's transactions.
//!
//! Why not sled's own: the first sled 0.34 transaction (or `apply_batch`) in a process
//! switches on one process-wide reader-writer lock that every later sled operation goes
//! through. Transactions take it exclusively, and `flush` holds it shared for the whole disk
//! wait, so no change can be written while the group commit flushes: with sled's
//! transactions the daemon topped out near 2,000 payments/s (`cargo xtask bench sled-lock`
//! and BENCHMARKS.md, "What was tried", sled's transactions). Plain single-key operations never take that
//! lock, so a flush and new writes overlap.
//!
//! How a change stays atomic here:
//! - **Isolation**: one writer at a time. [`Writer::transact`] holds a mutex while the change
//!   reads, decides and is applied in memory — microseconds, never a wait for a flush
//!   (durability is the group commit's job, after the change; only a page evicted from
//!   sled's cache is read back from disk under it). Every other write of the store goes
//!   through [`Writer::single`], under the same mutex.
//! - **Atomicity across a crash**, two ways. sled recovers its log up to the first torn or
//!   missing message: a prefix, in log order (`LogIter` in sled's `pagecache/iterator.rs`).
//!   So a change's writes, applied one by one, survive a kill as a prefix of them; what
//!   makes it whole again is written before them:
//!   - [`Writer::transact`] (merchants, alerts: rare changes) first writes the change whole,
//!     as an *intent*, under one key of the `meta` tree, and removes it after. After a kill
//!     either the intent survived (and [`recover`] applies it again at open: every write is
//!     a whole value, so applying twice is applying once) or the removal did, and with it
//!     every write before it.
//!   - [`Writer::transact_named`] (payments and refunds, the hot path) writes no value
//!     twice: first a small record that names what the change writes, then the writes in a
//!     fixed order; `recovery.rs` finishes or takes back the named change at open, from the
//!     records it names.
//!
//!   Half a change is never seen after a restart. (After a power loss with a volatile disk
//!   cache sled's recovery need not be a prefix, even with `fdatasync`; sled's own
//!   transactions had the same limit.)
//! - A change that fails or panics after its intent is written is half applied in memory,
//!   with its intent as the only record of the rest: the writer then refuses every later
//!   write (so nothing overwrites that intent), [`Writer::broken`] says why, and the daemon
//!   exits 75 (`Store::failure`); the restart finishes the change.
//! - Readers outside a change read sled directly and may see a change half applied. Each
//!   record they read is whole, and writes are applied in the order the change made them, so
//!   a reader that finds a later write finds the earlier ones too (a pending id's payment,
//!   a merchant list entry's payment: the `begin_*` changes write the record first).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use sled::IVec;

use super::StoreError;
use super::point_in_time::PointInTime;

/// The key of `meta` that holds the change being applied, if any.
const INTENT_KEY: &[u8] = b"pending_change";
/// First bytes of an encoded intent (its format's version).
const INTENT_MAGIC: &[u8; 4] = b"PGI1";

/// What a change of several writes records before them.
enum RecoveryPoint {
    /// The writes themselves, whole (removed once applied).
    Intent,
    /// A record naming them (`recovery.rs`), if the change made one.
    Named(Option<Vec<u8>>),
}

/// One write of a change: `value` `None` removes the key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Write {
    tree: IVec,
    key: IVec,
    value: Option<IVec>,
}

/// The store's single writer.
pub(super) struct Writer {
    lock: Mutex<()>,
    meta: sled::Tree,
    /// Total time the writer was held, in nanoseconds: near all of the wall-clock time means
    /// writes queue behind each other (`paygate_store_writer_busy_seconds_total`).
    busy_nanos: AtomicU64,
    /// Set when a change could be applied only in part (sled refused a write): its intent is
    /// still in `meta`, and no later change may overwrite it. Only a restart, which finishes
    /// the change at open, clears it.
    broken: OnceLock<String>,
    /// Test hook: the apply of the write with this index fails, as a full disk would.
    #[cfg(test)]
    fail_write: std::sync::atomic::AtomicUsize,
    /// A backup's point in time, while a backup reads the store: every write keeps what it
    /// replaces there first (`point_in_time.rs`).
    point: arc_swap::ArcSwapOption<PointInTime>,
}

/// What a plain write ([`Writer::single`]) tells before each key it writes, so that a
/// backup reading the store meanwhile keeps the key's value at its point.
pub(super) struct Keep<'a>(Option<&'a PointInTime>);

impl Keep<'_> {
    /// Call before writing `key` of `tree`.
    pub fn before_writing(&self, tree: &sled::Tree, key: impl AsRef<[u8]>) {
        if let Some(point) = self.0 {
            point.keep(tree, key.as_ref());
        }
    }
}

/// A backup's point, installed in the writer until dropped.
pub(super) struct PointGuard<'a> {
    writer: &'a Writer,
    point: Arc<PointInTime>,
}

impl PointGuard<'_> {
    pub fn point(&self) -> &PointInTime {
        &self.point
    }
}

impl Drop for PointGuard<'_> {
    fn drop(&mut self) {
        // Only this guard's own point (one backup at a time holds the archive-run lock, but
        // a point is not another's to clear).
        let current = self.writer.point.load();
        if current
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, &self.point))
        {
            self.writer.point.store(None);
        }
    }
}

/// A change being applied after its intent was written: dropped before [`Unfinished::done`]
/// (a panic unwinding through the apply), it stops the writer.
struct Unfinished<'a>(Option<&'a OnceLock<String>>);

impl Unfinished<'_> {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(broken) = self.0 {
            let _ = broken.set(
                "a change was interrupted by a panic while being applied; a restart finishes it"
                    .to_owned(),
            );
        }
    }
}

/// The writer, held: adds the time it was held to the total when dropped.
struct Held<'a> {
    _guard: MutexGuard<'a, ()>,
    since: Instant,
    busy_nanos: &'a AtomicU64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let nanos = self.since.elapsed().as_nanos() as u64;
        self.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// A tree as a change sees it: its own writes first, then the database.
pub(super) struct TxTree<'a> {
    tree: &'a sled::Tree,
    writes: &'a RefCell<Vec<Write>>,
}

impl TxTree<'_> {
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>, StoreError> {
        let key = key.as_ref();
        let name = self.tree.name();
        if let Some(write) = self
            .writes
            .borrow()
            .iter()
            .rev()
            .find(|w| w.tree == name && w.key == key)
        {
            return Ok(write.value.clone());
        }
        self.tree.get(key).map_err(StoreError::Sled)
    }

    pub fn insert(&self, key: impl Into<IVec>, value: impl Into<IVec>) -> Result<(), StoreError> {
        self.push(key.into(), Some(value.into()));
        Ok(())
    }

    pub fn remove(&self, key: impl Into<IVec>) -> Result<(), StoreError> {
        self.push(key.into(), None);
        Ok(())
    }

    fn push(&self, key: IVec, value: Option<IVec>) {
        self.writes.borrow_mut().push(Write {
            tree: self.tree.name(),
            key,
            value,
        });
    }
}

impl Writer {
    pub fn new(meta: sled::Tree) -> Writer {
        Writer {
            lock: Mutex::new(()),
            meta,
            busy_nanos: AtomicU64::new(0),
            broken: OnceLock::new(),
            #[cfg(test)]
            fail_write: std::sync::atomic::AtomicUsize::new(usize::MAX),
            point: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// Test hook: the apply of the change's write number `index` fails, as on a full disk.
    #[cfg(test)]
    pub fn fail_write_at(&self, index: usize) {
        self.fail_write.store(index, Ordering::Relaxed);
    }

    /// Why the writer refuses every change, if a change was applied only in part.
    pub fn broken(&self) -> Option<&str> {
        self.broken.get().map(String::as_str)
    }

    fn refuse_if_broken(&self) -> Result<(), StoreError> {
        match self.broken() {
            Some(why) => Err(StoreError::Failed(why.to_owned())),
            None => Ok(()),
        }
    }

    fn lock(&self) -> Held<'_> {
        // The mutex guards no data: a panic inside a change (its writes are only buffered
        // until it returns) leaves nothing half done.
        let guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Held {
            _guard: guard,
            since: Instant::now(),
            busy_nanos: &self.busy_nanos,
        }
    }

    /// Takes a backup's point in time: between two changes (the writer held for the
    /// instant, after `at_point` ran under it), every later write keeps what it replaces
    /// until the guard drops (`point_in_time.rs`).
    pub(super) fn point_in_time(
        &self,
        trees: &[sled::Tree],
        at_point: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<PointGuard<'_>, StoreError> {
        let _alone = self.lock();
        at_point()?;
        let point = Arc::new(PointInTime::at(trees).map_err(StoreError::Sled)?);
        self.point.store(Some(point.clone()));
        Ok(PointGuard {
            writer: self,
            point,
        })
    }

    /// Keeps, for a backup reading meanwhile, what writing `key` of `tree` replaces.
    fn keep(&self, tree: &sled::Tree, key: &[u8]) {
        if let Some(point) = &*self.point.load() {
            point.keep(tree, key);
        }
    }

    /// How long the writer has been held in all, since the store opened.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_nanos.load(Ordering::Relaxed))
    }

    /// Runs `change` on `trees` alone and applies its writes atomically if it returns `Ok`;
    /// an `Err` writes nothing. A change of several writes is recorded whole as an intent
    /// first, and the intent removed after.
    pub fn transact<const N: usize, T>(
        &self,
        trees: [&sled::Tree; N],
        change: impl FnOnce([&TxTree<'_>; N]) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.run(trees, |views| {
            change(views).map(|result| (result, RecoveryPoint::Intent))
        })
    }

    /// Runs `change` like [`Writer::transact`], for changes that name their writes instead of
    /// recording their values: `change` returns, with its result, its recovery point (an
    /// encoded `recovery::LastChange`). When it made more than one write, the point is
    /// written first under `meta`'s `last_change` key, then the writes in the order the
    /// change made them; the point is not removed (the next change overwrites it).
    pub fn transact_named<const N: usize, T>(
        &self,
        trees: [&sled::Tree; N],
        change: impl FnOnce([&TxTree<'_>; N]) -> Result<(T, Option<Vec<u8>>), StoreError>,
    ) -> Result<T, StoreError> {
        self.run(trees, |views| {
            change(views).map(|(result, point)| (result, RecoveryPoint::Named(point)))
        })
    }

    /// Both kinds of change: runs `change`, then applies its writes after its recovery point.
    fn run<const N: usize, T>(
        &self,
        trees: [&sled::Tree; N],
        change: impl FnOnce([&TxTree<'_>; N]) -> Result<(T, RecoveryPoint), StoreError>,
    ) -> Result<T, StoreError> {
        let _alone = self.lock();
        self.refuse_if_broken()?;
        let writes = RefCell::new(Vec::new());
        let views = std::array::from_fn(|i| TxTree {
            tree: trees[i],
            writes: &writes,
        });
        let (result, point) = change(views.each_ref())?;
        let writes = writes.into_inner();
        // Only while a backup reads the store (a load of an empty pointer otherwise).
        if let Some(point) = &*self.point.load() {
            for write in &writes {
                point.keep(tree_of(&trees, write), &write.key);
            }
        }
        match writes.as_slice() {
            [] => {}
            [one] => apply(&trees, one)?,
            _ => {
                let (key, value, removed_after) = match point {
                    RecoveryPoint::Intent => (INTENT_KEY, encode(&writes), true),
                    RecoveryPoint::Named(point) => (
                        super::recovery::LAST_CHANGE,
                        point.expect("a change of several writes names its recovery point"),
                        false,
                    ),
                };
                self.keep(&self.meta, key);
                self.meta.insert(key, value).map_err(StoreError::Sled)?;
                // From here on, a failure (or a panic in sled) leaves the change half applied
                // in memory, with its recovery point as the only record of the rest: stop
                // writing until a restart finishes it (the daemon exits 75 on
                // `Store::failure`).
                let unfinished = Unfinished(Some(&self.broken));
                let applied = writes
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, write)| self.apply_nth(&trees, i, write))
                    .and_then(|()| match removed_after {
                        true => self.meta.remove(key).map(|_| ()).map_err(StoreError::Sled),
                        false => Ok(()),
                    });
                if let Err(e) = applied {
                    self.stop(&e);
                    return Err(e);
                }
                unfinished.done();
            }
        }
        Ok(result)
    }

    /// Stops the writer after a change was applied only in part.
    fn stop(&self, e: &StoreError) {
        let why = format!("a change could be applied only in part ({e}); a restart finishes it");
        if self.broken.set(why).is_ok() {
            tracing::error!(
                "the store's writer stopped: a change could be applied only in part: {e}"
            );
        }
    }

    /// Runs `work` (reads and at most one write) while no change is being applied. `work`
    /// tells [`Keep::before_writing`] the key it writes, before it writes it.
    pub fn single_fallible<T>(
        &self,
        work: impl FnOnce(&Keep<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _alone = self.lock();
        self.refuse_if_broken()?;
        let point = self.point.load();
        work(&Keep(point.as_deref()))
    }

    fn apply_nth(
        &self,
        trees: &[&sled::Tree],
        index: usize,
        write: &Write,
    ) -> Result<(), StoreError> {
        #[cfg(test)]
        if self.fail_write.load(Ordering::Relaxed) == index {
            return Err(StoreError::Sled(sled::Error::Io(std::io::Error::other(
                "injected write failure",
            ))));
        }
        let _ = index; // read only by the test hook above
        apply(trees, write)
    }

    /// Runs one plain sled write of `key` of `tree` while no change is being applied.
    pub fn single<T>(
        &self,
        tree: &sled::Tree,
        key: impl AsRef<[u8]>,
        write: impl FnOnce() -> sled::Result<T>,
    ) -> Result<T, StoreError> {
        self.single_fallible(|keep| {
            keep.before_writing(tree, key);
            write().map_err(StoreError::Sled)
        })
    }
}

fn tree_of<'a>(trees: &[&'a sled::Tree], write: &Write) -> &'a sled::Tree {
    trees
        .iter()
        .find(|t| t.name() == write.tree)
        .expect("a change writes only the trees it was given")
}

fn apply(trees: &[&sled::Tree], write: &Write) -> Result<(), StoreError> {
    let tree = tree_of(trees, write);
    match &write.value {
        Some(value) => tree.insert(&write.key, value.clone()),
        None => tree.remove(&write.key),
    }
    .map(|_| ())
    .map_err(StoreError::Sled)
}

/// Finishes the change a crash interrupted, if there was one: applies its intent again and
/// removes it. Returns how many writes it applied. Run at open, before anything reads.
pub(super) fn recover(db: &sled::Db, meta: &sled::Tree) -> Result<usize, StoreError> {
    let Some(raw) = meta.get(INTENT_KEY).map_err(StoreError::Sled)? else {
        return Ok(0);
    };
    let writes = decode(&raw)?;
    for write in &writes {
        let tree = db.open_tree(&write.tree).map_err(StoreError::Sled)?;
        apply(&[&tree], write)?;
    }
    meta.remove(INTENT_KEY).map_err(StoreError::Sled)?;
    db.flush().map_err(StoreError::Sled)?;
    Ok(writes.len())
}

/// `magic, count, then per write: tree, key, present (0/1), value` — lengths as u32 BE.
fn encode(writes: &[Write]) -> Vec<u8> {
    let size: usize = writes
        .iter()
        .map(|w| 13 + w.tree.len() + w.key.len() + w.value.as_ref().map_or(0, |v| v.len()))
        .sum();
    let mut out = Vec::with_capacity(8 + size);
    out.extend_from_slice(INTENT_MAGIC);
    out.extend_from_slice(&(writes.len() as u32).to_be_bytes());
    let field = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    for write in writes {
        field(&mut out, &write.tree);
        field(&mut out, &write.key);
        match &write.value {
            Some(value) => {
                out.push(1);
                field(&mut out, value);
            }
            None => out.push(0),
        }
    }
    out
}

fn decode(raw: &[u8]) -> Result<Vec<Write>, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("interrupted change record: {what}"));
    let mut bytes = Bytes(
        raw.strip_prefix(INTENT_MAGIC.as_slice())
            .ok_or_else(|| corrupt("unknown format"))?,
    );
    let truncated = || corrupt("truncated");
    let count = bytes.length().ok_or_else(truncated)?;
    let mut writes = Vec::new();
    for _ in 0..count {
        let tree = bytes.field().ok_or_else(truncated)?;
        let key = bytes.field().ok_or_else(truncated)?;
        let value = match bytes.take(1).ok_or_else(truncated)? {
            [0] => None,
            [1] => Some(bytes.field().ok_or_else(truncated)?),
            _ => return Err(corrupt("bad presence flag")),
        };
        writes.push(Write { tree, key, value });
    }
    if !bytes.0.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(writes)
}

/// The unread rest of an encoded intent.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn length(&mut self) -> Option<usize> {
        let bytes = self.take(4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?) as usize)
    }

    fn field(&mut self) -> Option<IVec> {
        let n = self.length()?;
        self.take(n).map(IVec::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (dir, db)
    }

    #[test]
    fn a_change_reads_its_own_writes_and_applies_all_of_them() {
        let (_dir, db) = db();
        let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
        a.insert("old", "1").unwrap();
        let writer = Writer::new(db.open_tree("meta").unwrap());
        let seen = writer
            .transact([&a, &b], |[a, b]| {
                a.insert(&b"k"[..], &b"v"[..])?;
                b.insert(&b"k"[..], &b"w"[..])?;
                a.remove(&b"old"[..])?;
                Ok((a.get("k")?, b.get("k")?, a.get("old")?))
            })
            .unwrap();
        assert_eq!(seen, (Some("v".into()), Some("w".into()), None));
        assert_eq!(a.get("k").unwrap(), Some("v".into()));
        assert_eq!(b.get("k").unwrap(), Some("w".into()));
        assert_eq!(a.get("old").unwrap(), None);
        assert_eq!(writer.meta.get(INTENT_KEY).unwrap(), None, "intent removed");
        assert!(
            writer.busy() > Duration::ZERO,
            "the change's time is counted"
        );
    }

    #[test]
    fn a_change_applied_only_in_part_stops_the_writer_until_recovery_finishes_it() {
        let (_dir, db) = db();
        let (a, meta) = (db.open_tree("a").unwrap(), db.open_tree("meta").unwrap());
        let writer = Writer::new(meta.clone());
        writer.fail_write.store(1, Ordering::Relaxed);
        let result = writer.transact([&a], |[a]| {
            a.insert(&b"first"[..], &b"1"[..])?;
            a.insert(&b"second"[..], &b"2"[..])?;
            a.insert(&b"third"[..], &b"3"[..])?;
            Ok(())
        });
        assert!(result.is_err());
        // Half applied, and the intent is what remains of the rest.
        assert_eq!(a.get("first").unwrap(), Some("1".into()));
        assert_eq!(a.get("second").unwrap(), None);
        assert!(meta.get(INTENT_KEY).unwrap().is_some());
        let why = writer.broken().expect("the writer stopped").to_owned();
        assert!(why.contains("injected write failure"), "{why}");
        // No later write may run, nor overwrite the intent.
        writer.fail_write.store(usize::MAX, Ordering::Relaxed);
        let later = writer.transact([&a], |[a]| a.insert(&b"x"[..], &b"y"[..]));
        assert!(matches!(later, Err(StoreError::Failed(_))), "{later:?}");
        let single = writer.single(&a, "x", || a.insert("x", "y"));
        assert!(matches!(single, Err(StoreError::Failed(_))), "{single:?}");
        assert_eq!(a.get("x").unwrap(), None);
        // What a restart does at open: the change is finished.
        assert_eq!(recover(&db, &meta).unwrap(), 3);
        assert_eq!(a.get("second").unwrap(), Some("2".into()));
        assert_eq!(a.get("third").unwrap(), Some("3".into()));
    }

    #[test]
    fn a_panic_while_a_change_is_applied_stops_the_writer() {
        let broken = OnceLock::new();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _unfinished = Unfinished(Some(&broken));
            panic!("sled asserted");
        }));
        assert!(caught.is_err());
        assert!(broken.get().is_some_and(|why| why.contains("panic")));
        let fine = OnceLock::new();
        Unfinished(Some(&fine)).done();
        assert!(
            fine.get().is_none(),
            "a finished change leaves the writer as it was"
        );
    }

    #[test]
    fn a_change_that_fails_writes_nothing() {
        let (_dir, db) = db();
        let a = db.open_tree("a").unwrap();
        let writer = Writer::new(db.open_tree("meta").unwrap());
        let result: Result<(), _> = writer.transact([&a], |[a]| {
            a.insert(&b"k"[..], &b"v"[..])?;
            a.insert(&b"j"[..], &b"v"[..])?;
            Err(StoreError::Corrupt("no".into()))
        });
        assert!(result.is_err());
        assert!(a.is_empty());
        assert_eq!(writer.meta.get(INTENT_KEY).unwrap(), None);
    }

    #[test]
    fn an_interrupted_change_is_finished_at_recovery() {
        let (_dir, db) = db();
        let (a, b, meta) = (
            db.open_tree("a").unwrap(),
            db.open_tree("b").unwrap(),
            db.open_tree("meta").unwrap(),
        );
        a.insert("gone", "x").unwrap();
        let writes = vec![
            Write {
                tree: "a".into(),
                key: "k".into(),
                value: Some("v".into()),
            },
            Write {
                tree: "b".into(),
                key: "k".into(),
                value: Some(IVec::from(vec![0u8, 1, 2])),
            },
            Write {
                tree: "a".into(),
                key: "gone".into(),
                value: None,
            },
        ];
        // The crash came after the intent and the first write only.
        meta.insert(INTENT_KEY, encode(&writes)).unwrap();
        a.insert("k", "v").unwrap();
        assert_eq!(recover(&db, &meta).unwrap(), 3);
        assert_eq!(a.get("k").unwrap(), Some("v".into()));
        assert_eq!(b.get("k").unwrap(), Some(IVec::from(vec![0u8, 1, 2])));
        assert_eq!(a.get("gone").unwrap(), None);
        assert_eq!(meta.get(INTENT_KEY).unwrap(), None);
        assert_eq!(recover(&db, &meta).unwrap(), 0, "nothing left to finish");
    }

    #[test]
    fn the_store_finishes_an_interrupted_change_when_it_opens() {
        let dir = tempfile::tempdir().unwrap();
        drop(super::super::Store::open(dir.path()).unwrap());
        {
            // What a crash after the intent (and before any of its writes) leaves.
            let db = super::super::open_sled(
                &dir.path().join(super::super::DB_DIR),
                super::super::DEFAULT_CACHE_BYTES,
            )
            .unwrap();
            let meta = db.open_tree(super::super::META_TREE).unwrap();
            let writes = [Write {
                tree: "pending_payments".into(),
                key: "pay_interrupted".into(),
                value: Some(IVec::from(&b""[..])),
            }];
            meta.insert(INTENT_KEY, encode(&writes)).unwrap();
            db.flush().unwrap();
        }
        let store = super::super::Store::open(dir.path()).unwrap();
        assert_eq!(store.pending_payment_ids().unwrap(), ["pay_interrupted"]);
        assert_eq!(store.meta.get(INTENT_KEY).unwrap(), None);
    }

    #[test]
    fn intents_round_trip_and_damaged_ones_are_refused() {
        let writes = vec![
            Write {
                tree: "payments".into(),
                key: "pay_1".into(),
                value: Some(IVec::from(&b"{}"[..])),
            },
            Write {
                tree: "pending".into(),
                key: IVec::from(&b"\0\xff"[..]),
                value: None,
            },
            Write {
                tree: "empty".into(),
                key: IVec::from(&b""[..]),
                value: Some(IVec::from(&b""[..])),
            },
        ];
        let raw = encode(&writes);
        assert_eq!(decode(&raw).unwrap(), writes);
        for cut in 0..raw.len() {
            let err = decode(&raw[..cut]).unwrap_err().to_string();
            assert!(err.contains("interrupted change record"), "{cut}: {err}");
        }
        let mut longer = raw.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut flag = raw.clone();
        let at = 4 + 4 + 4 + "payments".len() + 4 + "pay_1".len();
        flag[at] = 7;
        assert!(decode(&flag).is_err());
        assert!(decode(b"XXXX\0\0\0\0").is_err());
        // A count far beyond the bytes present fails as truncated, without allocating it.
        assert!(decode(b"PGI1\xff\xff\xff\xff").is_err());
    }
}
