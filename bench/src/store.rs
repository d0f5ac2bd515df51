//! `paygate-bench store`: what an `fdatasync` after sled's flush costs.
//!
//! sled 0.34's `Db::flush` on Linux writes its log with `pwrite` + `sync_file_range`, which
//! survives a killed process but promises nothing across a power loss or kernel crash. This
//! measures, against a sled opened exactly as the daemon opens it, four ways to make writes
//! durable:
//!
//! - `each`: one insert, then `flush`;
//! - `each+fdatasync`: the same, then `fdatasync` of every regular file in the sled dir;
//! - `group64`: 64 inserts, then one `flush`;
//! - `group64+fdatasync`: the same, then `fdatasync` of every file.
//!
//! Each mode gets a fresh sled dir, a warm-up, then a timed run; afterwards the database is
//! closed, reopened, and every key written (warm-up included) is read back and compared.
//! Prints one JSON line per mode, then a markdown table.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Inserts per flush in the group modes.
const GROUP: usize = 64;
/// Untimed work before each timed run.
const WARMUP: Duration = Duration::from_millis(500);

#[derive(Clone, Copy)]
struct Mode {
    name: &'static str,
    batch: usize,
    fdatasync: bool,
}

const MODES: [Mode; 4] = [
    Mode {
        name: "each",
        batch: 1,
        fdatasync: false,
    },
    Mode {
        name: "each+fdatasync",
        batch: 1,
        fdatasync: true,
    },
    Mode {
        name: "group64",
        batch: GROUP,
        fdatasync: false,
    },
    Mode {
        name: "group64+fdatasync",
        batch: GROUP,
        fdatasync: true,
    },
];

struct Outcome {
    mode: Mode,
    writes: u64,
    flushes: u64,
    elapsed: Duration,
    flush: Vec<Duration>,
    /// Flush plus the `fdatasync`s that follow it (empty without fdatasync).
    flush_sync: Vec<Duration>,
    /// Keys in the tree after reopening.
    keys: u64,
    /// Keys found with the value written, after reopening, warm-up included.
    verified: u64,
    /// Keys written, warm-up included.
    written: u64,
    /// Regular files in the sled dir at the end of the timed run.
    files: Vec<String>,
}

/// Runs every mode (or those named in `only`, comma-separated) for `seconds` each, with the
/// sled dirs under `base`, which is removed afterwards.
pub fn store(base: &Path, seconds: f64, only: Option<&str>) {
    let wanted: Vec<Mode> = match only {
        None => MODES.to_vec(),
        Some(list) => list
            .split(',')
            .map(|name| {
                *MODES
                    .iter()
                    .find(|mode| mode.name == name)
                    .unwrap_or_else(|| panic!("unknown store mode {name:?}"))
            })
            .collect(),
    };
    let run = Duration::from_secs_f64(seconds);
    let root = base.join(format!("run-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(root.clone());
    let mut outcomes = Vec::new();
    for (i, mode) in wanted.into_iter().enumerate() {
        let outcome = measure(
            &root.join(format!("{i}-{}", mode.name.replace('+', "-"))),
            mode,
            run,
        );
        print_json(&outcome);
        outcomes.push(outcome);
    }
    print_table(&outcomes, run);
    for outcome in &outcomes {
        assert!(
            outcome.keys == outcome.written && outcome.verified == outcome.written,
            "{}: {} written, {} keys after reopen, {} read back intact",
            outcome.mode.name,
            outcome.written,
            outcome.keys,
            outcome.verified
        );
    }
}

fn measure(dir: &Path, mode: Mode, run: Duration) -> Outcome {
    std::fs::create_dir_all(dir).expect("cannot create the sled dir");
    // As `paygate_daemon::store::Store::open_with` but with sled's default cache (1 GiB;
    // the daemon uses `[store] cache_mb`, 64 MiB by default; irrelevant to these writes),
    // `Mode::LowSpace`, no compression, background flush every 500 ms).
    let db = sled::Config::new().path(dir).open().expect("sled opens");
    let tree = db.open_tree("bench").expect("a tree");
    let mut sync_set = DirFiles::new(dir);
    let mut next: u64 = 0;

    let mut flush = Vec::new();
    let mut flush_sync = Vec::new();
    let mut writes = 0u64;
    let mut flushes = 0u64;
    let mut phase_started = Instant::now();
    let mut timed = false;
    loop {
        let elapsed = phase_started.elapsed();
        if !timed && elapsed >= WARMUP {
            timed = true;
            phase_started = Instant::now();
            continue;
        }
        if timed && elapsed >= run {
            break;
        }
        for _ in 0..mode.batch {
            tree.insert(next.to_be_bytes(), value(next).into_bytes())
                .expect("insert");
            next += 1;
        }
        let started = Instant::now();
        db.flush().expect("flush");
        let flushed = started.elapsed();
        if mode.fdatasync {
            sync_set.sync_data();
        }
        let synced = started.elapsed();
        if timed {
            writes += mode.batch as u64;
            flushes += 1;
            flush.push(flushed);
            if mode.fdatasync {
                flush_sync.push(synced);
            }
        }
    }
    let elapsed = phase_started.elapsed();
    let files = relative_files(dir);
    drop(sync_set);
    drop(tree);
    drop(db);

    // Reopen and read every write back.
    let db = sled::Config::new().path(dir).open().expect("sled reopens");
    let tree = db.open_tree("bench").expect("a tree");
    let keys = tree.len() as u64;
    let mut verified = 0u64;
    for i in 0..next {
        let found = tree.get(i.to_be_bytes()).expect("get");
        if found.as_deref() == Some(value(i).as_bytes()) {
            verified += 1;
        }
    }
    Outcome {
        mode,
        writes,
        flushes,
        elapsed,
        flush,
        flush_sync,
        keys,
        verified,
        written: next,
        files,
    }
}

/// A payment-record-like JSON value of about 600 bytes, unique to `i`.
fn value(i: u64) -> String {
    let mut text = format!(
        concat!(
            "{{\"id\":\"pay_{:025}\",\"merchant_id\":\"m_bench\",\"provider\":\"mock\",",
            "\"status\":\"pending\",\"method\":\"barcode\",",
            "\"amount\":{{\"minor\":{},\"currency\":\"CNY\",\"exponent\":2}},",
            "\"idempotency_key\":\"idem-{:016x}\",\"description\":\"2 x coffee\",",
            "\"terminal_id\":\"T-07\",\"created_at\":\"2025-01-01T00:00:00Z\",",
            "\"expires_at\":\"2025-01-01T00:15:00Z\",\"provider_ref\":\"mock-{:020}\",",
            "\"notify_url\":\"http://127.0.0.1:8420/v1/notify/mock/m_bench\",",
            "\"attempts\":[{{\"at\":\"2025-01-01T00:00:00Z\",\"outcome\":\"accepted\"}}],",
            "\"pad\":\""
        ),
        i,
        1250 + i % 1000,
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        i,
    );
    while text.len() < 598 {
        text.push('x');
    }
    text.push_str("\"}");
    text
}

/// Open handles on every regular file under a sled dir (`db`, `conf`, `snap.*`, `blobs/*`),
/// listed again before each sync so files sled creates later are synced too.
struct DirFiles {
    dir: PathBuf,
    open: BTreeMap<PathBuf, File>,
}

impl DirFiles {
    fn new(dir: &Path) -> DirFiles {
        DirFiles {
            dir: dir.to_owned(),
            open: BTreeMap::new(),
        }
    }

    /// `fdatasync`s every file; when the set of files changed, also fsyncs the directories so
    /// the new names are durable.
    fn sync_data(&mut self) {
        let mut present = Vec::new();
        list_files(&self.dir, &mut present);
        let changed = present.len() != self.open.len()
            || present.iter().any(|path| !self.open.contains_key(path));
        if changed {
            self.open.retain(|path, _| present.contains(path));
            for path in present {
                if let Entry::Vacant(slot) = self.open.entry(path) {
                    // A file can vanish between listing and opening (old snapshots).
                    if let Ok(file) = File::open(slot.key()) {
                        slot.insert(file);
                    }
                }
            }
            sync_dir(&self.dir);
            sync_dir(&self.dir.join("blobs"));
        }
        for file in self.open.values() {
            file.sync_data().expect("fdatasync");
        }
    }
}

/// The regular files under `dir`, relative to it.
fn relative_files(dir: &Path) -> Vec<String> {
    let mut paths = Vec::new();
    list_files(dir, &mut paths);
    let mut names: Vec<String> = paths
        .iter()
        .map(|path| path.strip_prefix(dir).unwrap_or(path).display().to_string())
        .collect();
    names.sort();
    names
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(kind) if kind.is_file() => out.push(entry.path()),
            Ok(kind) if kind.is_dir() => list_files(&entry.path(), out),
            _ => {}
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        handle.sync_all().expect("fsync of a directory");
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        // Also the parent, when this run was the only one in it.
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

fn quantile(samples: &mut [Duration], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort();
    let at = ((samples.len() as f64 - 1.0) * q).round() as usize;
    Some(samples[at].as_secs_f64() * 1e6)
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn print_json(outcome: &Outcome) {
    let mut flush = outcome.flush.clone();
    let mut flush_sync = outcome.flush_sync.clone();
    let number = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.2}"));
    println!(
        "{{\"name\":\"sled_store\",\"mode\":\"{}\",\"batch\":{},\"seconds\":{:.3},\"writes\":{},\"flushes\":{},\"writes_per_s\":{:.0},\"flushes_per_s\":{:.0},\"flush_p50_us\":{},\"flush_p99_us\":{},\"flush_fdatasync_p50_us\":{},\"flush_fdatasync_p99_us\":{},\"written\":{},\"keys\":{},\"verified\":{},\"files\":{:?}}}",
        outcome.mode.name,
        outcome.mode.batch,
        outcome.elapsed.as_secs_f64(),
        outcome.writes,
        outcome.flushes,
        per_second(outcome.writes, outcome.elapsed),
        per_second(outcome.flushes, outcome.elapsed),
        number(quantile(&mut flush, 0.5)),
        number(quantile(&mut flush, 0.99)),
        number(quantile(&mut flush_sync, 0.5)),
        number(quantile(&mut flush_sync, 0.99)),
        outcome.written,
        outcome.keys,
        outcome.verified,
        outcome.files,
    );
}

fn print_table(outcomes: &[Outcome], run: Duration) {
    let micros = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} us"));
    println!();
    println!(
        "sled 0.34 (daemon's config), ~600-byte values, {:.1} s per mode after {} ms warm-up",
        run.as_secs_f64(),
        WARMUP.as_millis()
    );
    println!(
        "| mode | writes/s | flushes/s | flush p50 | flush p99 | flush+fdatasync p50 | flush+fdatasync p99 | read back |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for outcome in outcomes {
        let mut flush = outcome.flush.clone();
        let mut flush_sync = outcome.flush_sync.clone();
        println!(
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {}/{} |",
            outcome.mode.name,
            per_second(outcome.writes, outcome.elapsed),
            per_second(outcome.flushes, outcome.elapsed),
            micros(quantile(&mut flush, 0.5)),
            micros(quantile(&mut flush, 0.99)),
            micros(quantile(&mut flush_sync, 0.5)),
            micros(quantile(&mut flush_sync, 0.99)),
            outcome.verified,
            outcome.written,
        );
    }
}
