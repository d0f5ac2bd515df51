//! The writes paygated makes for one barcode payment, replayed on one thread against a
//! storage engine, with a durable flush every `group` payments (the group commit serves
//! ~20 writers per flush at 64 clients, and each payment waits for two flushes).
//!
//! Per payment, as `store/payments.rs` writes it:
//! - begin: idempotency claim (150 B), payment record (700 B), merchant index, pending
//!   index, `payment.created` event with its snapshot (1 KB);
//! - result: payment record (720 B), `payment.succeeded` event (1 KB), pending index removed,
//!   idempotency record finished with the answer (800 B).
//!
//! sled 0.34 has no cheap atomic batch (its transactions take a process-wide lock that a
//! flush holds, see `txn.rs`), so paygated writes each change first as an intent under one
//! `meta` key and removes it after: the `sled` run does the same. fjall and redb commit
//! several keys atomically, so their runs write each change as one batch or transaction.
//!
//! Usage: `paygate-bench-stores <sled | fjall | redb> <payments> <group>`; prints one line:
//! payments/s, CPU per payment (all of the process's threads), bytes written per payment
//! (`wchar`), bytes on disk per payment at the end, peak RSS.

use std::path::Path;
use std::time::Instant;

#[path = "../../src/measure.rs"]
mod measure;

/// Values are slices of one random buffer: not compressible, and cheap to make.
struct Values {
    pool: Vec<u8>,
    state: u64,
}

impl Values {
    fn new() -> Values {
        let mut values = Values {
            pool: Vec::new(),
            state: 0x9e37_79b9_7f4a_7c15,
        };
        values.pool = (0..1 << 16)
            .map(|_| b'a' + (values.next() % 26) as u8)
            .collect();
        values
    }

    fn next(&mut self) -> u64 {
        // xorshift64
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn text(&mut self, len: usize) -> Vec<u8> {
        let at = (self.next() % (self.pool.len() - len) as u64) as usize;
        self.pool[at..at + len].to_vec()
    }
}

/// The keys and values of payment `n`. Ids sort by creation time, as paygated's do.
struct Payment {
    id: Vec<u8>,
    idempotency_key: Vec<u8>,
    merchant_index: Vec<u8>,
    created_event: Vec<u8>,
    succeeded_event: Vec<u8>,
    claim: Vec<u8>,
    pending_record: Vec<u8>,
    created: Vec<u8>,
    answered_record: Vec<u8>,
    succeeded: Vec<u8>,
    finished_claim: Vec<u8>,
}

impl Payment {
    fn new(values: &mut Values, n: u64) -> Payment {
        let id = format!(
            "pay_{n:012}{:06}",
            n.wrapping_mul(2_654_435_761) % 1_000_000
        );
        Payment {
            idempotency_key: format!("key_demo_pos\0bench-{}-{}", n % 64, n / 64).into_bytes(),
            merchant_index: format!("m_demo\0{id}").into_bytes(),
            created_event: format!("evt_{n:012}a{:03}", n % 997).into_bytes(),
            succeeded_event: format!("evt_{n:012}b{:03}", n % 991).into_bytes(),
            claim: values.text(150),
            pending_record: values.text(700),
            created: values.text(1000),
            answered_record: values.text(720),
            succeeded: values.text(1020),
            finished_claim: values.text(800),
            id: id.into_bytes(),
        }
    }
}

/// One engine, written the way it would be used.
trait Engine {
    fn pay(&mut self, payment: &Payment);
    fn flush(&mut self);
}

struct Sled {
    db: sled::Db,
    trees: [sled::Tree; 6],
    begin_intent: Vec<u8>,
    result_intent: Vec<u8>,
}

impl Engine for Sled {
    fn pay(&mut self, p: &Payment) {
        let [meta, idempotency, payments, by_merchant, pending, events] = &self.trees;
        let ok = |r: sled::Result<Option<sled::IVec>>| {
            r.expect("sled write");
        };
        // The intent holds the change's writes; paygated encodes them, here it is their size.
        ok(meta.insert(b"pending_change", self.begin_intent.as_slice()));
        ok(idempotency.insert(p.idempotency_key.as_slice(), p.claim.as_slice()));
        ok(payments.insert(p.id.as_slice(), p.pending_record.as_slice()));
        ok(by_merchant.insert(p.merchant_index.as_slice(), &[][..]));
        ok(pending.insert(p.id.as_slice(), &[][..]));
        ok(events.insert(p.created_event.as_slice(), p.created.as_slice()));
        ok(meta.remove(b"pending_change"));
        ok(meta.insert(b"pending_change", self.result_intent.as_slice()));
        ok(payments.insert(p.id.as_slice(), p.answered_record.as_slice()));
        ok(events.insert(p.succeeded_event.as_slice(), p.succeeded.as_slice()));
        ok(pending.remove(p.id.as_slice()));
        ok(meta.remove(b"pending_change"));
        ok(idempotency.insert(p.idempotency_key.as_slice(), p.finished_claim.as_slice()));
    }

    fn flush(&mut self) {
        self.db.flush().expect("sled flush");
    }
}

struct Fjall {
    keyspace: fjall::Keyspace,
    partitions: [fjall::PartitionHandle; 5],
}

impl Engine for Fjall {
    fn pay(&mut self, p: &Payment) {
        let [idempotency, payments, by_merchant, pending, events] = &self.partitions;
        let mut begin = self.keyspace.batch();
        begin.insert(
            idempotency,
            p.idempotency_key.as_slice(),
            p.claim.as_slice(),
        );
        begin.insert(payments, p.id.as_slice(), p.pending_record.as_slice());
        begin.insert(by_merchant, p.merchant_index.as_slice(), &[][..]);
        begin.insert(pending, p.id.as_slice(), &[][..]);
        begin.insert(events, p.created_event.as_slice(), p.created.as_slice());
        begin.commit().expect("fjall batch");
        let mut result = self.keyspace.batch();
        result.insert(payments, p.id.as_slice(), p.answered_record.as_slice());
        result.insert(events, p.succeeded_event.as_slice(), p.succeeded.as_slice());
        result.remove(pending, p.id.as_slice());
        result.insert(
            idempotency,
            p.idempotency_key.as_slice(),
            p.finished_claim.as_slice(),
        );
        result.commit().expect("fjall batch");
    }

    fn flush(&mut self) {
        // fsync of the journal: stronger than sled's `sync_file_range`.
        self.keyspace
            .persist(fjall::PersistMode::SyncData)
            .expect("fjall persist");
    }
}

type RedbTable = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;
const REDB_TABLES: [RedbTable; 5] = [
    redb::TableDefinition::new("idempotency"),
    redb::TableDefinition::new("payments"),
    redb::TableDefinition::new("by_merchant"),
    redb::TableDefinition::new("pending"),
    redb::TableDefinition::new("events"),
];

struct Redb {
    db: redb::Database,
}

/// (table index, key, value; `None` removes).
type RedbWrite<'a> = (usize, &'a [u8], Option<&'a [u8]>);

impl Redb {
    /// One write transaction, not durable until the next flush.
    fn change(&self, writes: &[RedbWrite<'_>]) {
        let mut tx = self.db.begin_write().expect("redb transaction");
        tx.set_durability(redb::Durability::None);
        for &(table, key, value) in writes {
            let mut table = tx.open_table(REDB_TABLES[table]).expect("redb table");
            match value {
                Some(value) => table.insert(key, value).map(drop),
                None => table.remove(key).map(drop),
            }
            .expect("redb write");
        }
        tx.commit().expect("redb commit");
    }
}

impl Engine for Redb {
    fn pay(&mut self, p: &Payment) {
        self.change(&[
            (0, &p.idempotency_key, Some(&p.claim)),
            (1, &p.id, Some(&p.pending_record)),
            (2, &p.merchant_index, Some(&[])),
            (3, &p.id, Some(&[])),
            (4, &p.created_event, Some(&p.created)),
        ]);
        self.change(&[
            (1, &p.id, Some(&p.answered_record)),
            (4, &p.succeeded_event, Some(&p.succeeded)),
            (3, &p.id, None),
            (0, &p.idempotency_key, Some(&p.finished_claim)),
        ]);
    }

    fn flush(&mut self) {
        // An empty transaction committed durably makes every earlier one durable.
        let mut tx = self.db.begin_write().expect("redb transaction");
        tx.set_durability(redb::Durability::Immediate);
        tx.commit().expect("redb commit");
    }
}

const CACHE_BYTES: u64 = 64 << 20; // paygated's `[store] cache_mb` default

fn open(engine: &str, dir: &Path, values: &mut Values) -> Box<dyn Engine> {
    match engine {
        "sled" => {
            let db = sled::Config::new()
                .path(dir.join("db"))
                .cache_capacity(CACHE_BYTES)
                .open()
                .expect("sled open");
            let tree = |name: &str| db.open_tree(name).expect("sled tree");
            let trees = [
                tree("meta"),
                tree("idempotency"),
                tree("payments"),
                tree("payments_by_merchant"),
                tree("pending_payments"),
                tree("events"),
            ];
            Box::new(Sled {
                trees,
                db,
                begin_intent: values.text(2200),
                result_intent: values.text(1900),
            })
        }
        "fjall" => {
            let keyspace = fjall::Config::new(dir.join("keyspace"))
                .cache_size(CACHE_BYTES)
                .open()
                .expect("fjall open");
            let partition = |name: &str| {
                keyspace
                    .open_partition(name, fjall::PartitionCreateOptions::default())
                    .expect("fjall partition")
            };
            let partitions = [
                partition("idempotency"),
                partition("payments"),
                partition("payments_by_merchant"),
                partition("pending_payments"),
                partition("events"),
            ];
            Box::new(Fjall {
                keyspace,
                partitions,
            })
        }
        "redb" => {
            let db = redb::Builder::new()
                .set_cache_size(CACHE_BYTES as usize)
                .create(dir.join("db.redb"))
                .expect("redb open");
            Box::new(Redb { db })
        }
        other => panic!("unknown engine {other}: sled | fjall | redb"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [engine, payments, group] = args.as_slice() else {
        eprintln!("usage: paygate-bench-stores <sled | fjall | redb> <payments> <group>");
        std::process::exit(2);
    };
    let payments: u64 = payments.parse().expect("payments: a number");
    let group: u64 = group.parse().expect("group: a number");
    let dir = std::env::temp_dir().join(format!("paygate-bench-stores-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let mut values = Values::new();
    let mut store = open(engine, &dir, &mut values);
    let (written, cpu, started) = (written_bytes(), cpu_seconds(), Instant::now());
    for n in 0..payments {
        store.pay(&Payment::new(&mut values, n));
        if (n + 1) % group == 0 {
            store.flush();
        }
    }
    store.flush();
    let seconds = started.elapsed().as_secs_f64();
    let (cpu, written) = (cpu_seconds() - cpu, written_bytes() - written);
    drop(store);
    let per = |total: f64| total / payments as f64;
    println!(
        "{{\"engine\":\"{engine}\",\"payments\":{payments},\"group\":{group},\"payments_per_s\":{:.0},\"cpu_us_per_payment\":{:.1},\"written_kib_per_payment\":{:.1},\"disk_kib_per_payment\":{:.1},\"peak_rss_mib\":{:.0}}}",
        payments as f64 / seconds,
        per(cpu * 1e6),
        per(written as f64 / 1024.0),
        per(measure::dir_bytes(&dir) as f64 / 1024.0),
        peak_rss_kib() as f64 / 1024.0,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bytes this process handed to `write` and its kin, all threads.
fn written_bytes() -> u64 {
    measure::field("/proc/self", "io", "wchar:")
}

fn peak_rss_kib() -> u64 {
    measure::field("/proc/self", "status", "VmHWM:")
}

fn cpu_seconds() -> f64 {
    measure::cpu_seconds("/proc/self")
}
