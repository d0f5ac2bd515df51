//! Brings a data dir of an older schema up to [`SCHEMA_VERSION`], at open (or by `paygated
//! store migrate`, which only opens the store).
//!
//! **1 → 2.** Version 1 kept each event, with a copy of its object's record, under its event
//! id (tree `events`), and the webhook outbox's delivery states under the same ids (tree
//! `webhook_outbox`). Version 2 logs events by sequence number without the record (tree
//! `event_log`) and keeps, with each outbox entry, the event and its record as the entry's
//! webhook will show it (tree `outbox`). Records are unchanged (their `version` reads as 0).
//!
//! The migration is one-off and resumable: it fills the new trees from the old ones (cleared
//! first, so a run a crash interrupted starts over and duplicates nothing), flushes, then
//! records the new schema version (the commit point) and flushes, and only then drops the
//! old trees. A crash before the commit point leaves a version-1 dir that the next open
//! migrates again; one after it leaves old trees that the next open drops.

use std::time::Instant;

use super::event_log::{QueuedEvent, seq_key};
use super::payments::{EVENT_LOG_TREE, OUTBOX_TREE, encode};
use super::{SCHEMA_KEY, SCHEMA_VERSION, StoreError};
use crate::domain::records::{EventRecord, OutboxRecord};

/// Trees of schema version 1 that version 2 replaced.
const V1_EVENTS: &str = "events";
const V1_OUTBOX: &str = "webhook_outbox";

/// What a migration did.
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    pub from: u32,
    pub events: usize,
    pub outbox: usize,
    pub seconds: f64,
}

/// Migrates a data dir at schema version `found` to the current one; `None` if it was
/// current already (after dropping what an interrupted migration left).
pub(super) fn to_current(
    db: &sled::Db,
    meta: &sled::Tree,
    found: u32,
) -> Result<Option<Migration>, StoreError> {
    match found {
        SCHEMA_VERSION => {
            drop_old_trees(db)?;
            Ok(None)
        }
        1 => v1_to_v2(db, meta).map(Some),
        other => Err(StoreError::Corrupt(format!(
            "schema version {other} is not one this paygated can migrate from"
        ))),
    }
}

fn v1_to_v2(db: &sled::Db, meta: &sled::Tree) -> Result<Migration, StoreError> {
    let sled_error = StoreError::Sled;
    let started = Instant::now();
    let old_events = db.open_tree(V1_EVENTS).map_err(sled_error)?;
    let old_outbox = db.open_tree(V1_OUTBOX).map_err(sled_error)?;
    let log = db.open_tree(EVENT_LOG_TREE).map_err(sled_error)?;
    let outbox = db.open_tree(OUTBOX_TREE).map_err(sled_error)?;
    log.clear().map_err(sled_error)?;
    outbox.clear().map_err(sled_error)?;
    // Event ids begin with their creation time, so the old tree's order is the log's order.
    let mut events = 0;
    for entry in old_events.iter().values() {
        let raw = entry.map_err(sled_error)?;
        let event: EventRecord = serde_json::from_slice(&raw)
            .map_err(|e| StoreError::Corrupt(format!("version 1 event: {e}")))?;
        events += 1;
        let logged = EventRecord {
            object: None,
            ..event
        };
        log.insert(seq_key(events as u64), encode(&logged))
            .map_err(sled_error)?;
    }
    let mut queued = 0;
    for entry in old_outbox.iter() {
        let (id, raw) = entry.map_err(sled_error)?;
        let delivery: OutboxRecord = serde_json::from_slice(&raw)
            .map_err(|e| StoreError::Corrupt(format!("version 1 outbox entry: {e}")))?;
        // Version 1 dropped an entry whose event was missing; so does this.
        let Some(raw) = old_events.get(&id).map_err(sled_error)? else {
            continue;
        };
        let event: EventRecord = serde_json::from_slice(&raw)
            .map_err(|e| StoreError::Corrupt(format!("version 1 event: {e}")))?;
        outbox
            .insert(id, encode(&QueuedEvent { event, delivery }))
            .map_err(sled_error)?;
        queued += 1;
    }
    db.flush().map_err(sled_error)?;
    meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
        .map_err(sled_error)?;
    db.flush().map_err(sled_error)?;
    drop_old_trees(db)?;
    Ok(Migration {
        from: 1,
        events,
        outbox: queued,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Drops the trees version 2 replaced, if a migration left them.
fn drop_old_trees(db: &sled::Db) -> Result<(), StoreError> {
    let names = db.tree_names();
    for old in [V1_EVENTS, V1_OUTBOX] {
        if names.iter().any(|name| name.as_ref() == old.as_bytes()) {
            db.drop_tree(old).map_err(StoreError::Sled)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{DB_DIR, META_TREE, Store};
    use super::*;
    use crate::domain::events::EventKind;
    use crate::domain::records::Snapshot;

    fn v1_event(n: u64, kind: EventKind) -> EventRecord {
        EventRecord {
            id: format!("evt_{n:026}"),
            kind,
            created_at_ms: n as i64,
            object_id: "pay_1".into(),
            data: serde_json::json!({"status": "x"}),
            object_version: 0,
            object: Some(Snapshot::of(&serde_json::json!({"id": "pay_1", "n": n}))),
        }
    }

    /// A data dir as paygated wrote it at schema version 1: three events, the last one owed
    /// a webhook delivery; `interrupted` adds what a migration a crash stopped left.
    fn version_1_dir(interrupted: Option<u32>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join(DB_DIR))
            .open()
            .unwrap();
        let meta = db.open_tree(META_TREE).unwrap();
        meta.insert(SCHEMA_KEY, &1u32.to_be_bytes()).unwrap();
        let events = db.open_tree(V1_EVENTS).unwrap();
        let kinds = [
            EventKind::PaymentCreated,
            EventKind::PaymentSucceeded,
            EventKind::RefundSucceeded,
        ];
        for (n, kind) in kinds.into_iter().enumerate() {
            let event = v1_event(n as u64 + 1, kind);
            events.insert(event.id.as_bytes(), encode(&event)).unwrap();
        }
        let delivery = OutboxRecord::default();
        db.open_tree(V1_OUTBOX)
            .unwrap()
            .insert(v1_event(3, kinds[2]).id.as_bytes(), encode(&delivery))
            .unwrap();
        if interrupted == Some(1) {
            // Stopped while filling the new trees.
            let log = db.open_tree(EVENT_LOG_TREE).unwrap();
            log.insert(seq_key(1), b"half".to_vec()).unwrap();
            log.insert(seq_key(9), b"junk".to_vec()).unwrap();
        }
        db.flush().unwrap();
        drop((meta, events, db));
        if interrupted == Some(2) {
            // Stopped after the commit point, before the old trees were dropped.
            drop(Store::open(dir.path()).unwrap());
            let db = super::super::open_sled(
                &dir.path().join(DB_DIR),
                super::super::DEFAULT_CACHE_BYTES,
            )
            .unwrap();
            db.open_tree(V1_EVENTS)
                .unwrap()
                .insert(b"evt_left", b"{}".to_vec())
                .unwrap();
            db.flush().unwrap();
        }
        dir
    }

    fn check_migrated(store: &Store) {
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let events = store.events().unwrap();
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(
            ids,
            [1, 2, 3].map(|n| format!("evt_{n:026}")),
            "in their order, once"
        );
        assert!(events.iter().all(|e| e.object.is_none()), "without records");
        let owed = store.outbox_page(10).unwrap();
        assert_eq!(owed.len(), 1);
        let (event, _) = &owed[0];
        assert_eq!(event.id, format!("evt_{:026}", 3));
        assert_eq!(
            event.object.as_ref().unwrap().json(),
            r#"{"id":"pay_1","n":3}"#,
            "the owed delivery keeps the record its event saw"
        );
        let names = store.db.tree_names();
        for old in [V1_EVENTS, V1_OUTBOX] {
            assert!(!names.iter().any(|n| n.as_ref() == old.as_bytes()));
        }
        // New events continue the log.
        assert_eq!(store.seq.peek(), 4);
    }

    #[test]
    fn a_version_1_dir_is_migrated_at_open() {
        let dir = version_1_dir(None);
        let store = Store::open(dir.path()).unwrap();
        let migration = store.migration().expect("migrated");
        assert_eq!(
            (migration.from, migration.events, migration.outbox),
            (1, 3, 1)
        );
        check_migrated(&store);
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert!(again.migration().is_none(), "once");
        check_migrated(&again);
    }

    #[test]
    fn a_migration_a_crash_stopped_is_finished_at_the_next_open() {
        for stage in [1, 2] {
            let dir = version_1_dir(Some(stage));
            let store = Store::open(dir.path()).unwrap();
            check_migrated(&store);
        }
    }
}
