//! `paygate-bench sled-lock`: why durable payments top out where they do.
//!
//! Once a process has run one sled 0.34 transaction, every sled operation goes through one
//! global reader-writer lock: transactions take it exclusively, and `flush` holds it shared
//! for the whole flush, disk wait included. So a flush stops every transaction for as long as
//! the disk takes. This measures it: 4 threads each write a payment-like change (one read,
//! three inserts of ~600/0/600 bytes into three trees), either as plain inserts or as one
//! transaction, with and without a thread flushing in a loop (as the daemon's group commit
//! does under load). Prints one JSON line per case.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

const THREADS: usize = 4;

pub fn sled_lock(dir: &Path, seconds: f64) -> Result<(), String> {
    for (transactions, flusher) in [(false, false), (false, true), (true, false), (true, true)] {
        // Each case in its own process: the global lock, once switched on by a transaction,
        // stays on for the process's lifetime.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let status = std::process::Command::new(exe)
            .args([
                "sled-lock-case",
                &dir.display().to_string(),
                &seconds.to_string(),
                if transactions { "tx" } else { "insert" },
                if flusher { "flusher" } else { "none" },
            ])
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("case failed: {status}"));
        }
    }
    Ok(())
}

/// One case, in this process.
pub fn case(dir: &Path, seconds: f64, transactions: bool, flusher: bool) -> Result<(), String> {
    let dir = dir.join(format!("sled-lock-{}", std::process::id()));
    let db = sled::open(&dir).map_err(|e| e.to_string())?;
    let trees: Vec<sled::Tree> = ["payments", "index", "events"]
        .iter()
        .map(|name| db.open_tree(name))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let flushes = Arc::new(AtomicU64::new(0));
    let value = vec![7u8; 600];
    let mut threads = Vec::new();
    for t in 0..THREADS {
        let (trees, stop, writes, value) =
            (trees.clone(), stop.clone(), writes.clone(), value.clone());
        threads.push(std::thread::spawn(move || {
            let (a, b, c) = (&trees[0], &trees[1], &trees[2]);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("{t}-{i}");
                if transactions {
                    (a, b, c)
                        .transaction(|(a, b, c)| {
                            let _ = a.get(key.as_bytes())?;
                            a.insert(key.as_bytes(), value.clone())?;
                            b.insert(key.as_bytes(), &b""[..])?;
                            c.insert(key.as_bytes(), value.clone())?;
                            Ok::<_, ConflictableTransactionError<()>>(())
                        })
                        .expect("transaction");
                } else {
                    let _ = a.get(key.as_bytes()).expect("get");
                    a.insert(key.as_bytes(), value.clone()).expect("insert");
                    b.insert(key.as_bytes(), &b""[..]).expect("insert");
                    c.insert(key.as_bytes(), value.clone()).expect("insert");
                }
                i += 1;
                writes.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    if flusher {
        let (db, stop, flushes) = (db.clone(), stop.clone(), flushes.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                db.flush().expect("flush");
                flushes.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().map_err(|_| "a writer panicked".to_string())?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "name": "sled_lock",
            "writes": if transactions { "transaction" } else { "plain inserts" },
            "flusher": flusher,
            "threads": THREADS,
            "changes_per_s": (writes.load(Ordering::Relaxed) as f64 / elapsed).round(),
            "flush_calls_per_s": (flushes.load(Ordering::Relaxed) as f64 / elapsed).round(),
        })
    );
    drop((trees, db));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
