//! The writes paygated makes for one barcode payment (store schema 2), replayed on one
//! thread against a storage engine, with a durable flush every `group` payments (the group
//! commit serves ~20-35 writers per flush at 64 clients).
//!
//! Per payment, as `daemon/src/store/payments.rs` writes it, at the sizes the daemon's
//! records have (`paygate-bench trees` on a data dir):
//! - begin: idempotency claim (190 B, at a random place), `payment.created` event (188 B,
//!   by sequence number), payment record (470 B), merchant index, pending index;
//! - result: `payment.succeeded` event, payment record (490 B), pending index removed;
//! - finish: the answer (476 B) under the payment id and key.
//!
//! sled 0.34 has no cheap atomic batch (its transactions take a process-wide lock that a
//! flush holds, see `txn.rs`), so paygated makes each change first name itself under one
//! `meta` key (180 B) and then writes single keys: the `sled` run does the same. fjall and
//! redb commit several keys atomically, so their runs write each change as one batch or
//! transaction.
//!
//! Usage: `paygate-bench-stores <sled | fjall | redb> <payments> <group>`; prints one line:
//! payments/s, CPU per payment (all of the process's threads), bytes written per payment
//! (`wchar`), bytes on disk per payment at the end, peak RSS, and the time to open the
//! engine again on what it wrote (sled replays its log since its last open).

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

/// The keys and values of payment `n`, at the sizes `paygate-bench trees` reads off a data
/// dir of the daemon's barcode payments. Ids sort by creation time, as paygated's do.
struct Payment {
    id: Vec<u8>,
    idempotency_key: Vec<u8>,
    answer_key: Vec<u8>,
    merchant_index: Vec<u8>,
    created_seq: [u8; 8],
    succeeded_seq: [u8; 8],
    claim: Vec<u8>,
    pending_record: Vec<u8>,
    created: Vec<u8>,
    answered_record: Vec<u8>,
    succeeded: Vec<u8>,
    answer: Vec<u8>,
}

impl Payment {
    fn new(values: &mut Values, n: u64) -> Payment {
        let id = format!(
            "pay_{n:012}{:06}",
            n.wrapping_mul(2_654_435_761) % 1_000_000
        );
        let key = format!("key_demo_pos\0bench-{}-{}", n % 64, n / 64);
        Payment {
            answer_key: format!("{id}\0{key}").into_bytes(),
            idempotency_key: key.into_bytes(),
            merchant_index: format!("m_demo\0{id}").into_bytes(),
            created_seq: (2 * n + 1).to_be_bytes(),
            succeeded_seq: (2 * n + 2).to_be_bytes(),
            claim: values.text(190),
            pending_record: values.text(470),
            created: values.text(188),
            answered_record: values.text(490),
            succeeded: values.text(188),
            answer: values.text(476),
            id: id.into_bytes(),
        }
    }
}

/// One engine, written the way it would be used.
trait Engine {
    fn pay(&mut self, payment: &Payment);
    fn flush(&mut self);
}

/// As paygated's store writes a payment (`daemon/src/store/payments.rs`): each change first
/// names itself in `meta` (its recovery point), then writes single keys in a fixed order.
struct Sled {
    db: sled::Db,
    trees: [sled::Tree; 7],
    named: Vec<u8>,
}

impl Engine for Sled {
    fn pay(&mut self, p: &Payment) {
        let [meta, idempotency, payments, by_merchant, pending, events, answers] = &self.trees;
        let ok = |r: sled::Result<Option<sled::IVec>>| {
            r.expect("sled write");
        };
        ok(meta.insert(b"last_change", self.named.as_slice()));
        ok(idempotency.insert(p.idempotency_key.as_slice(), p.claim.as_slice()));
        ok(events.insert(p.created_seq, p.created.as_slice()));
        ok(payments.insert(p.id.as_slice(), p.pending_record.as_slice()));
        ok(by_merchant.insert(p.merchant_index.as_slice(), &[][..]));
        ok(pending.insert(p.id.as_slice(), &[][..]));
        ok(meta.insert(b"last_change", self.named.as_slice()));
        ok(events.insert(p.succeeded_seq, p.succeeded.as_slice()));
        ok(payments.insert(p.id.as_slice(), p.answered_record.as_slice()));
        ok(pending.remove(p.id.as_slice()));
        ok(answers.insert(p.answer_key.as_slice(), p.answer.as_slice()));
    }

    fn flush(&mut self) {
        self.db.flush().expect("sled flush");
    }
}

struct Fjall {
    keyspace: fjall::Keyspace,
    partitions: [fjall::PartitionHandle; 6],
}

impl Engine for Fjall {
    fn pay(&mut self, p: &Payment) {
        let [idempotency, payments, by_merchant, pending, events, answers] = &self.partitions;
        let mut begin = self.keyspace.batch();
        begin.insert(
            idempotency,
            p.idempotency_key.as_slice(),
            p.claim.as_slice(),
        );
        begin.insert(events, p.created_seq.as_slice(), p.created.as_slice());
        begin.insert(payments, p.id.as_slice(), p.pending_record.as_slice());
        begin.insert(by_merchant, p.merchant_index.as_slice(), &[][..]);
        begin.insert(pending, p.id.as_slice(), &[][..]);
        begin.commit().expect("fjall batch");
        let mut result = self.keyspace.batch();
        result.insert(events, p.succeeded_seq.as_slice(), p.succeeded.as_slice());
        result.insert(payments, p.id.as_slice(), p.answered_record.as_slice());
        result.remove(pending, p.id.as_slice());
        result.commit().expect("fjall batch");
        answers
            .insert(p.answer_key.as_slice(), p.answer.as_slice())
            .expect("fjall write");
    }

    fn flush(&mut self) {
        // fsync of the journal: stronger than sled's `sync_file_range`.
        self.keyspace
            .persist(fjall::PersistMode::SyncData)
            .expect("fjall persist");
    }
}

type RedbTable = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;
const REDB_TABLES: [RedbTable; 6] = [
    redb::TableDefinition::new("idempotency"),
    redb::TableDefinition::new("payments"),
    redb::TableDefinition::new("by_merchant"),
    redb::TableDefinition::new("pending"),
    redb::TableDefinition::new("events"),
    redb::TableDefinition::new("answers"),
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
            (4, p.created_seq.as_slice(), Some(&p.created)),
            (1, &p.id, Some(&p.pending_record)),
            (2, &p.merchant_index, Some(&[])),
            (3, &p.id, Some(&[])),
        ]);
        self.change(&[
            (4, p.succeeded_seq.as_slice(), Some(&p.succeeded)),
            (1, &p.id, Some(&p.answered_record)),
            (3, &p.id, None),
        ]);
        self.change(&[(5, &p.answer_key, Some(&p.answer))]);
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
                tree("event_log"),
                tree("answers"),
            ];
            Box::new(Sled {
                trees,
                db,
                named: values.text(180),
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
                partition("event_log"),
                partition("answers"),
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
    let disk = measure::dir_bytes(&dir);
    let peak_rss = peak_rss_kib();
    let reopening = Instant::now();
    drop(open(engine, &dir, &mut values));
    let reopen_ms = reopening.elapsed().as_secs_f64() * 1e3;
    let per = |total: f64| total / payments as f64;
    println!(
        "{{\"engine\":\"{engine}\",\"payments\":{payments},\"group\":{group},\"payments_per_s\":{:.0},\"cpu_us_per_payment\":{:.1},\"written_kib_per_payment\":{:.1},\"disk_kib_per_payment\":{:.1},\"peak_rss_mib\":{:.0},\"reopen_ms\":{reopen_ms:.0}}}",
        payments as f64 / seconds,
        per(cpu * 1e6),
        per(written as f64 / 1024.0),
        per(disk as f64 / 1024.0),
        peak_rss as f64 / 1024.0,
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
