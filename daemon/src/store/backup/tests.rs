//! Backups of a real store on disk: taken while it is written, restored, and every damaged
//! or misplaced input refused.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;
use crate::store::archive::tests::{DAY, NOW, clean, pay, refund, run, shop};

/// The stream's header: magic, format, schema version, time.
const HEADER: usize = 16 + 4 + 4 + 8;

/// A backup of `store` into `dir`, streamed in process.
fn back_up(store: &Store, dir: &Path) -> Result<BackupManifest, BackupError> {
    receive(dir, |spool| {
        store.stream_backup(spool)?;
        Ok(())
    })
}

/// The stream of a backup of `store`, as bytes.
fn stream_of(store: &Store) -> Vec<u8> {
    let mut out = Vec::new();
    store.stream_backup(&mut out).unwrap();
    out
}

/// A backup made from `bytes` as if a daemon had sent them.
fn receive_bytes(dir: &Path, bytes: &[u8]) -> Result<BackupManifest, BackupError> {
    receive(dir, |spool| {
        spool.write_all(bytes).unwrap();
        Ok(())
    })
}

#[test]
fn a_restored_backup_holds_every_key_and_the_archive_and_verifies_clean() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("live")).unwrap();
    shop(&store);
    // Two of the payments leave for the archive: the backup must carry its files.
    let archived = run(&store, 7, 0).unwrap();
    assert!(archived.payments >= 2, "{archived:?}");
    pay(&store, "pay_06", NOW - DAY, true);
    let events = store.events().unwrap();

    let backup = dir.path().join("backup");
    let manifest = back_up(&store, &backup).unwrap();
    assert!(manifest.keys > 20, "{manifest:?}");
    assert!(
        manifest
            .archive
            .iter()
            .any(|f| f.name.ends_with(".jsonl.zst")),
        "{manifest:?}"
    );
    assert_eq!(read_manifest(&backup).unwrap(), manifest);
    assert!(!partial_of(&backup).exists());
    assert!(!backup.join(SPOOL_FILE).exists());
    // The backup is a data dir `store verify` reads as it is.
    clean(&Store::open(&backup).unwrap());

    let restored_dir = dir.path().join("restored");
    let restored = restore(&backup, &restored_dir).unwrap();
    assert_eq!(restored.manifest, manifest);
    let restored = Store::open(&restored_dir).unwrap();
    clean(&restored);
    assert_eq!(restored.db.checksum().unwrap(), manifest.db_checksum);
    assert_eq!(restored.events().unwrap(), events);
    for id in ["pay_01", "pay_03", "pay_02", "pay_06"] {
        let live = store.find_payment(id).unwrap().unwrap();
        let copy = restored.find_payment(id).unwrap().unwrap();
        assert_eq!(copy.record, live.record, "{id}");
        assert_eq!(copy.archived, live.archived, "{id}");
    }
    assert!(restored.find_payment("pay_01").unwrap().unwrap().archived);
}

#[test]
fn a_backup_taken_while_changes_are_written_holds_each_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("live")).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let writer = {
        let (store, stop, made) = (store.clone(), stop.clone(), made.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("pay_{i:08}");
                pay(&store, &id, NOW - DAY, true);
                if i.is_multiple_of(3) {
                    refund(
                        &store,
                        &format!("re_{i:08}"),
                        &id,
                        NOW - DAY,
                        i.is_multiple_of(2),
                    );
                }
                i += 1;
                made.store(i, Ordering::Relaxed);
            }
        })
    };
    // Enough to read that the writes overlap the reading.
    while made.load(Ordering::Relaxed) < 3_000 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut backups = Vec::new();
    for n in 0..3 {
        let before = made.load(Ordering::Relaxed);
        let backup = dir.path().join(format!("backup-{n}"));
        back_up(&store, &backup).unwrap();
        let after = made.load(Ordering::Relaxed);
        backups.push((backup, before, after));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let total = made.load(Ordering::Relaxed);
    for (n, (backup, before, after)) in backups.iter().enumerate() {
        assert!(after > before, "backup {n}: no write overlapped it");
        let restored = dir.path().join(format!("restored-{n}"));
        restore(backup, &restored).unwrap();
        let copy = Store::open(&restored).unwrap();
        clean(&copy);
        // Every payment finished before the backup began is in it, as it was...
        for i in 0..*before {
            let id = format!("pay_{i:08}");
            let found = copy.find_payment(&id).unwrap();
            assert!(
                found.is_some(),
                "backup {n}: {id} made before it is missing"
            );
            assert_eq!(
                found.unwrap().record.status,
                store.find_payment(&id).unwrap().unwrap().record.status,
                "backup {n}: {id}"
            );
        }
        // ...and none begun after it ended (the copy is of its point, not later).
        for i in after + 1..total {
            let id = format!("pay_{i:08}");
            assert!(
                copy.find_payment(&id).unwrap().is_none(),
                "backup {n}: {id} begun after it ended is in it"
            );
        }
    }
}

#[test]
fn a_damaged_cut_or_failed_stream_is_refused_and_leaves_no_backup() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("live")).unwrap();
    shop(&store);
    run(&store, 7, 0).unwrap();
    let whole = stream_of(&store);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not a backup", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("cut in the middle", whole[..whole.len() / 2].to_vec()),
        ("cut before the digest", whole[..whole.len() - 10].to_vec()),
        ("a byte flipped", {
            let mut bad = whole.clone();
            let at = bad.len() / 3;
            bad[at] ^= 0x40;
            bad
        }),
        ("an unknown frame", {
            let mut bad = whole[..HEADER].to_vec();
            bad.push(b'Q');
            bad
        }),
        ("a field longer than any backup", {
            let mut bad = whole[..HEADER].to_vec();
            bad.push(b'T');
            bad.extend_from_slice(&u64::MAX.to_be_bytes());
            bad
        }),
        ("a key longer than the stream (nothing allocated for it)", {
            let mut bad = whole[..HEADER].to_vec();
            bad.push(b'T');
            bad.extend_from_slice(&(VALUE_MAX - 1).to_be_bytes());
            bad.extend_from_slice(b"short");
            bad
        }),
        ("an archive file longer than the stream", {
            let mut bad = whole[..HEADER].to_vec();
            bad.push(b'F');
            bad.extend_from_slice(&5u64.to_be_bytes());
            bad.extend_from_slice(b"x.idx");
            bad.extend_from_slice(&(FIELD_MAX - 1).to_be_bytes());
            bad.extend_from_slice(b"short");
            bad
        }),
        ("an archive file named to escape", {
            let mut bad = whole[..HEADER].to_vec();
            bad.push(b'F');
            bad.extend_from_slice(&12u64.to_be_bytes());
            bad.extend_from_slice(b"../../etc/pw");
            bad.extend_from_slice(&1u64.to_be_bytes());
            bad.push(b'x');
            bad
        }),
        ("the sender failed", {
            let mut bad = whole[..HEADER].to_vec();
            stream_failure(&mut bad, "the disk is gone");
            bad
        }),
    ];
    for (what, bytes) in cases {
        let backup = dir.path().join("backup");
        let err = receive_bytes(&backup, &bytes).unwrap_err();
        match what {
            "the sender failed" => {
                assert!(
                    matches!(err, BackupError::Sender(ref m) if m.contains("the disk is gone")),
                    "{what}: {err}"
                )
            }
            _ => assert!(matches!(err, BackupError::Damaged(_)), "{what}: {err}"),
        }
        assert!(!backup.exists(), "{what}: a damaged stream made a backup");
        assert!(restore(&backup, &dir.path().join("nowhere")).is_err());
    }
    // The whole stream still makes a backup, in the same place (the partial one is removed).
    let backup = dir.path().join("backup");
    receive_bytes(&backup, &whole).unwrap();
    assert!(!partial_of(&backup).exists());
}

#[test]
fn a_backup_or_a_restore_never_writes_over_data() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let store = Store::open(&live).unwrap();
    shop(&store);
    let taken = dir.path().join("taken");
    back_up(&store, &taken).unwrap();

    // A backup into a directory that holds anything.
    let occupied = dir.path().join("occupied");
    std::fs::create_dir_all(&occupied).unwrap();
    std::fs::write(occupied.join("notes.txt"), "mine").unwrap();
    let err = back_up(&store, &occupied).unwrap_err();
    assert!(matches!(err, BackupError::Refused(_)), "{err}");
    assert_eq!(
        std::fs::read_to_string(occupied.join("notes.txt")).unwrap(),
        "mine"
    );
    // Into an empty one it goes.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    back_up(&store, &empty).unwrap();

    // A restore over a data dir (the live one, or any other with files).
    drop(store);
    let err = restore(&taken, &live).unwrap_err();
    assert!(matches!(err, BackupError::Refused(_)), "{err}");
    let err = restore(&taken, &occupied).unwrap_err();
    assert!(matches!(err, BackupError::Refused(_)), "{err}");
    // From a directory that is no backup.
    let err = restore(&occupied, &dir.path().join("new")).unwrap_err();
    assert!(err.to_string().contains("not a paygate backup"), "{err}");
    // A restore a crash cut between its two moves (the archive up, the database still
    // being built) is no daemon's to open, and is run again.
    let again = dir.path().join("again");
    std::fs::create_dir_all(again.join(RESTORING).join(DB_DIR)).unwrap();
    std::fs::write(again.join(RESTORING).join(DB_DIR).join("conf"), "half").unwrap();
    std::fs::create_dir_all(again.join(ARCHIVE_DIR)).unwrap();
    std::fs::write(again.join(ARCHIVE_DIR).join(MANIFEST_FILE), "{}").unwrap();
    let err = Store::open(&again).err().unwrap();
    assert!(err.to_string().contains("unfinished restore"), "{err}");
    restore(&taken, &again).unwrap();
    clean(&Store::open(&again).unwrap());
    assert!(!again.join(RESTORING).exists());
}

#[test]
fn a_backup_changed_after_it_was_taken_is_refused_before_a_data_dir_is_made_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("live")).unwrap();
    shop(&store);
    run(&store, 7, 0).unwrap();
    let taken = dir.path().join("taken");
    let manifest = back_up(&store, &taken).unwrap();

    // An archive file changed after the backup.
    let segment = manifest
        .archive
        .iter()
        .find(|f| f.name.ends_with(".jsonl.zst"))
        .unwrap();
    let path = taken.join(ARCHIVE_DIR).join(&segment.name);
    let original = std::fs::read(&path).unwrap();
    let mut changed = original.clone();
    changed[0] ^= 1;
    std::fs::write(&path, &changed).unwrap();
    let target = dir.path().join("from-changed-archive");
    let err = restore(&taken, &target).unwrap_err();
    assert!(matches!(err, BackupError::Damaged(_)), "{err}");
    assert!(!Store::is_in(&target), "a damaged restore left a data dir");
    std::fs::write(&path, &original).unwrap();

    // A database that does not read back as it was taken.
    let mut wrong = manifest.clone();
    wrong.db_checksum ^= 1;
    std::fs::write(taken.join(BACKUP_FILE), serde_json::to_vec(&wrong).unwrap()).unwrap();
    let target = dir.path().join("from-changed-db");
    let err = restore(&taken, &target).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    assert!(!Store::is_in(&target));

    // A description that is not JSON, or from another schema.
    std::fs::write(taken.join(BACKUP_FILE), b"{").unwrap();
    assert!(matches!(
        restore(&taken, &dir.path().join("x")).unwrap_err(),
        BackupError::Damaged(_)
    ));
    let mut newer = manifest.clone();
    newer.schema_version = SCHEMA_VERSION + 1;
    std::fs::write(taken.join(BACKUP_FILE), serde_json::to_vec(&newer).unwrap()).unwrap();
    assert!(matches!(
        restore(&taken, &dir.path().join("y")).unwrap_err(),
        BackupError::Refused(_)
    ));
}

#[test]
fn a_backup_of_a_store_that_breaks_an_invariant_restores_to_no_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("live")).unwrap();
    shop(&store);
    // A pending index entry with no payment behind it (as a bug would leave).
    store
        .db
        .open_tree("pending_payments")
        .unwrap()
        .insert("pay_nobody", &[][..])
        .unwrap();
    let taken = dir.path().join("taken");
    back_up(&store, &taken).unwrap();
    let target = dir.path().join("target");
    let err = restore(&taken, &target).unwrap_err();
    assert!(err.to_string().contains("violations"), "{err}");
    assert!(!target.join(DB_DIR).exists());
    assert!(
        Store::open(&target).is_err(),
        "a data dir a daemon would start on"
    );
}

#[test]
fn an_unfinished_backup_beside_the_target_is_replaced_but_nothing_else_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("live")).unwrap();
    shop(&store);
    let target = dir.path().join("nightly");
    let partial = partial_of(&target);
    std::fs::create_dir_all(partial.join(DB_DIR)).unwrap();
    std::fs::write(partial.join(SPOOL_FILE), "cut").unwrap();
    back_up(&store, &target).unwrap();
    assert!(!partial.exists());
    // Someone else's directory of that name is not ours to remove.
    let other = dir.path().join("other");
    std::fs::create_dir_all(partial_of(&other)).unwrap();
    std::fs::write(partial_of(&other).join("photos.zip"), "mine").unwrap();
    let err = back_up(&store, &other).unwrap_err();
    assert!(matches!(err, BackupError::Refused(_)), "{err}");
    assert!(partial_of(&other).join("photos.zip").exists());
}
