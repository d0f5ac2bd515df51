//! Group commit: writers ask for durability, and one `flush` serves every writer that asked
//! before it started. Measured here: ~7,000 flushes/s one at a time against ~110,000
//! batched writes/s (`shared/notes/measured-here.md`); batching is the difference.
//!
//! Correctness: a writer calls [`GroupCommit::durable`] after its write returned. The
//! committer takes every request queued so far, then flushes; a flush that starts after a
//! request was queued covers that request's write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

type Waiter = oneshot::Sender<Result<(), String>>;

/// The committer thread. Dropping it lets the thread finish and waits for it, so the
/// database is released when the store is.
pub struct GroupCommit {
    requests: Option<mpsc::Sender<Waiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
    stats: Arc<CommitStats>,
    failure: Arc<std::sync::OnceLock<String>>,
    /// When the running flush started (ms since `epoch`, +1), or 0 between flushes.
    flushing_since: Arc<AtomicU64>,
    epoch: Instant,
    /// Test hook: the next flush first sleeps this long (ms), as a hung disk would.
    #[cfg(feature = "test-hooks")]
    stall_next: Arc<AtomicU64>,
}

/// Counters for metrics and tests.
#[derive(Default)]
pub struct CommitStats {
    pub flushes: AtomicU64,
    pub requests: AtomicU64,
    /// Total flush time, in microseconds.
    pub flush_micros: AtomicU64,
    /// Told the duration of every flush (the metrics' histogram), once set.
    observer: std::sync::OnceLock<FlushObserver>,
}

type FlushObserver = Box<dyn Fn(Duration) + Send + Sync>;

impl CommitStats {
    /// Sets the function told each flush's duration (only the first call takes effect).
    pub fn observe_flushes(&self, observer: impl Fn(Duration) + Send + Sync + 'static) {
        let _ = self.observer.set(Box::new(observer));
    }
}

/// How writes are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    /// Concurrent writers share one flush (false: one flush each, to measure the saving).
    pub group_commit: bool,
    /// After each flush, `fdatasync` sled's log file: sled's own flush uses
    /// `sync_file_range`, which survives a killed process but not a power loss or a kernel
    /// crash; `fdatasync` survives those too, at a cost measured in BENCHMARKS.md.
    pub fdatasync: bool,
    /// How long a flush waits for more writers once the last one served several
    /// (`[store] group_commit_window_us`): fewer, fuller flushes, for up to this much more
    /// latency. A lone writer (the last flush served one) never waits.
    pub window: Duration,
}

impl Default for Durability {
    fn default() -> Self {
        Durability {
            group_commit: true,
            fdatasync: false,
            window: Duration::ZERO,
        }
    }
}

impl GroupCommit {
    /// Starts the committer thread for `db`, whose files are in `db_dir`.
    pub fn start(
        db: sled::Db,
        db_dir: &std::path::Path,
        durability: Durability,
    ) -> std::io::Result<GroupCommit> {
        let batch = durability.group_commit;
        // sled 0.34 keeps its log in `<dir>/db`; large values go to `blobs/`, which sled
        // syncs itself when it writes them.
        let log = if durability.fdatasync {
            Some(std::fs::File::open(db_dir.join("db"))?)
        } else {
            None
        };
        let (requests, queue) = mpsc::channel::<Waiter>();
        let stats = Arc::new(CommitStats::default());
        let thread_stats = stats.clone();
        let failure = Arc::new(std::sync::OnceLock::new());
        let thread_failure = failure.clone();
        let flushing_since = Arc::new(AtomicU64::new(0));
        let thread_flushing_since = flushing_since.clone();
        let epoch = Instant::now();
        #[cfg(feature = "test-hooks")]
        let stall_next = Arc::new(AtomicU64::new(0));
        #[cfg(feature = "test-hooks")]
        let thread_stall_next = stall_next.clone();
        let thread = std::thread::Builder::new()
            .name("paygate-commit".into())
            .spawn(move || {
                // Whether the last flush served more than one writer: under load, waiting
                // the window gathers more; with one writer at a time it would only add
                // latency.
                let mut busy = false;
                // Block for the first waiter, then take everyone queued behind it.
                while let Ok(first) = queue.recv() {
                    let mut waiters = vec![first];
                    if batch {
                        if busy && !durability.window.is_zero() {
                            // Sleep through the window, then take all who came: waiting in
                            // `recv_timeout` woke this thread (and made the sender wake it)
                            // for every arrival, ~7,000 context switches/s under load.
                            std::thread::sleep(durability.window);
                        }
                        waiters.extend(queue.try_iter());
                        busy = waiters.len() > 1;
                    }
                    let started = Instant::now();
                    thread_flushing_since.store(
                        started.duration_since(epoch).as_millis() as u64 + 1,
                        Ordering::Relaxed,
                    );
                    #[cfg(feature = "test-hooks")]
                    {
                        let stall = thread_stall_next.swap(0, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(stall));
                    }
                    // Writers go on meanwhile: the store never uses sled's transactions,
                    // whose global lock a flush would hold (`txn.rs`).
                    let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
                    let result = match (&log, result) {
                        (Some(log), Ok(())) => log
                            .sync_data()
                            .map_err(|e| format!("fdatasync of the store's log: {e}")),
                        (_, result) => result,
                    };
                    thread_flushing_since.store(0, Ordering::Relaxed);
                    record(&thread_stats, waiters.len(), started.elapsed());
                    if let Err(e) = &result {
                        // sled keeps failing after a failed log write, and after a failed
                        // fdatasync the page cache's state is unknown: no later flush can be
                        // trusted until the database is reopened.
                        let e = format!("a flush failed: {e}");
                        if thread_failure.set(e.clone()).is_ok() {
                            tracing::error!("the store's flush failed: {e}");
                        }
                    }
                    for waiter in waiters {
                        let _ = waiter.send(result.clone());
                    }
                }
            })
            .expect("cannot start the group-commit thread");
        Ok(GroupCommit {
            requests: Some(requests),
            thread: Some(thread),
            stats,
            failure,
            flushing_since,
            epoch,
            #[cfg(feature = "test-hooks")]
            stall_next,
        })
    }

    /// Resolves once everything written before this call is flushed to disk. The request
    /// is queued when this is called, not when the future is first polled.
    pub fn durable(&self) -> impl std::future::Future<Output = Result<(), String>> + use<> {
        let (waiter, done) = oneshot::channel();
        let queued = self.requests.as_ref().map(|requests| requests.send(waiter));
        async move {
            let stopped = || "the group-commit thread has stopped".to_string();
            match queued {
                Some(Ok(())) => {}
                _ => return Err(stopped()),
            }
            done.await.map_err(|_| stopped())?
        }
    }

    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }

    /// The first failed flush, if one failed: nothing written since can be made durable.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// How long the running flush has been running, if one is.
    pub fn flushing_for(&self) -> Option<Duration> {
        match self.flushing_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(since - 1)),
            ),
        }
    }

    /// Test hook: makes the next flush hang for `ms` first.
    #[cfg(feature = "test-hooks")]
    pub fn stall_next_flush(&self, ms: u64) {
        self.stall_next.store(ms, Ordering::Relaxed);
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop after its last flush.
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn record(stats: &CommitStats, waiters: usize, elapsed: Duration) {
    stats.flushes.fetch_add(1, Ordering::Relaxed);
    stats.requests.fetch_add(waiters as u64, Ordering::Relaxed);
    stats
        .flush_micros
        .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    if let Some(observer) = stats.observer.get() {
        observer(elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writers_waiting_together_share_flushes_and_every_write_survives() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let commit =
            GroupCommit::start(db.clone(), &dir.path().join("db"), Durability::default()).unwrap();
        // 500 writers write, then all ask for durability at once (queueing is cheap, so the
        // committer finds most of them waiting behind whichever flush is running).
        for i in 0..500u32 {
            db.insert(i.to_be_bytes(), &b"v"[..]).unwrap();
        }
        let waits: Vec<_> = (0..500).map(|_| commit.durable()).collect();
        for wait in waits {
            wait.await.unwrap();
        }
        let stats = commit.stats();
        assert_eq!(stats.requests.load(Ordering::Relaxed), 500);
        // One flush per writer would be 500; batched, far fewer (how few depends on the
        // scheduler, so the bound is loose).
        let flushes = stats.flushes.load(Ordering::Relaxed);
        assert!(
            (1..=250).contains(&flushes),
            "{flushes} flushes for 500 writers"
        );
        drop((commit, db));
        // sled's background flusher may hold the file lock for a moment after the drop.
        let reopened = super::super::open_sled(&dir.path().join("db"), 1 << 20).unwrap();
        assert_eq!(reopened.len(), 500);
    }
}
