//! The event log and the webhook outbox.
//!
//! - **Event log** (tree `event_log`): key the event's sequence number (u64, big-endian, so
//!   the tree's order is the order events were committed), value the event without its
//!   object: what happened, to which object, and the version of the object's record it
//!   announces. The record itself is in its own tree; an event does not copy it.
//! - **Outbox** (tree `outbox`): key the event id (ids are time-ordered), value the event
//!   *with* the record as it was right after the change, and its delivery state. A webhook
//!   body must show the object as the event saw it, after the record has moved on, so the
//!   outbox keeps that version for as long as a delivery is owed, and no longer.
//!
//! Sequence numbers are handed out under the store's writer ([`EventSeq`]); a change that
//! fails after taking one leaves a gap, which readers never rely on.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::payments::{TxResult, encode};
use super::txn::TxTree;
use super::{Store, StoreError};
use crate::domain::records::{EventRecord, OutboxRecord, Snapshot};

/// The next sequence number of the event log.
pub(super) struct EventSeq(AtomicU64);

impl EventSeq {
    /// Continues after the last event in `log`, and at or above `meta`'s floor (the events
    /// before it left the log for the archive).
    pub fn after_last(log: &sled::Tree, meta: &sled::Tree) -> Result<EventSeq, StoreError> {
        let next = match log.last().map_err(StoreError::Sled)? {
            Some((key, _)) => seq_of(&key)? + 1,
            None => 1,
        };
        Ok(EventSeq(AtomicU64::new(next.max(seq_floor(meta)?))))
    }

    /// Takes the next number (callers hold the writer, so numbers follow commit order).
    pub fn take(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }

    /// The number the next event will get.
    pub fn peek(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The key of `meta` below which no sequence number is handed out again, once the events
/// before it have left the log (for the archive).
const SEQ_FLOOR_KEY: &[u8] = b"event_seq_floor";

/// The lowest sequence number still to be handed out (0: no event ever left the log).
pub(super) fn seq_floor(meta: &sled::Tree) -> Result<u64, StoreError> {
    Ok(meta
        .get(SEQ_FLOOR_KEY)
        .map_err(StoreError::Sled)?
        .and_then(|raw| <[u8; 8]>::try_from(raw.as_ref()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// Records that the events up to `last` leave the log: their numbers are never handed out
/// again, also after a restart on an emptied log.
pub(super) fn raise_seq_floor(
    writer: &super::txn::Writer,
    meta: &sled::Tree,
    last: u64,
) -> Result<(), StoreError> {
    if seq_floor(meta)? <= last {
        let next = (last + 1).to_be_bytes();
        writer.single(meta, SEQ_FLOOR_KEY, || {
            meta.insert(SEQ_FLOOR_KEY, &next[..])
        })?;
    }
    Ok(())
}

pub(super) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub(super) fn seq_of(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("event log key of {} bytes", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// An outbox entry on disk: the event as delivered, and how its deliveries stand.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct QueuedEvent {
    pub event: EventRecord,
    #[serde(default)]
    pub delivery: OutboxRecord,
}

/// Logs `new_events` about a record now at `version` (they are returned with `object` set
/// to `snapshot`, for the outbox and the in-process bus). Returns the sequence numbers
/// taken, first and one past the last.
pub(super) fn log_events(
    seq: &EventSeq,
    log: &TxTree<'_>,
    new_events: &[EventRecord],
    version: u64,
    snapshot: &Snapshot,
) -> TxResult<(Vec<EventRecord>, std::ops::Range<u64>)> {
    let first = seq.peek();
    let mut logged = Vec::with_capacity(new_events.len());
    for event in new_events {
        let mut event = EventRecord {
            object: None,
            object_version: version,
            ..event.clone()
        };
        log.insert(&seq_key(seq.take())[..], encode(&event))?;
        event.object = Some(snapshot.clone());
        logged.push(event);
    }
    Ok((logged, first..seq.peek()))
}

/// Queues a delivery of every webhook kind among `logged` (their objects set).
pub(super) fn queue_deliveries(outbox: &TxTree<'_>, logged: &[EventRecord]) -> TxResult<()> {
    for event in logged.iter().filter(|e| e.kind.is_webhook()) {
        let queued = QueuedEvent {
            event: event.clone(),
            delivery: OutboxRecord::default(),
        };
        outbox.insert(event.id.as_bytes(), encode(&queued))?;
    }
    Ok(())
}

/// Logs `new_events` and queues their deliveries (when `outbox` is given): the whole of it,
/// for changes that the writer applies from a full intent (alerts, onboarding).
pub(super) fn append_events(
    seq: &EventSeq,
    log: &TxTree<'_>,
    outbox: Option<&TxTree<'_>>,
    new_events: &[EventRecord],
    snapshot: &Snapshot,
) -> TxResult<Vec<EventRecord>> {
    let (logged, _) = log_events(seq, log, new_events, 0, snapshot)?;
    if let Some(outbox) = outbox {
        queue_deliveries(outbox, &logged)?;
    }
    Ok(logged)
}

impl Store {
    /// Events, oldest first, without their objects (for tests and `store verify`).
    pub fn events(&self) -> Result<Vec<EventRecord>, StoreError> {
        self.trees
            .events
            .iter()
            .values()
            .map(|raw| {
                let raw = raw.map_err(StoreError::Sled)?;
                serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt(format!("event: {e}")))
            })
            .collect()
    }

    /// The events `keep` accepts among those logged at or after `since_ms`, oldest first,
    /// reading the log back from its newest event and at most `scan_max` events; `false`
    /// with them when the scan stopped at that cap before reaching `since_ms`.
    pub fn events_since(
        &self,
        since_ms: i64,
        scan_max: usize,
        keep: impl Fn(&EventRecord) -> bool,
    ) -> Result<(Vec<EventRecord>, bool), StoreError> {
        let mut found = Vec::new();
        let mut complete = true;
        for (scanned, raw) in self.trees.events.iter().values().rev().enumerate() {
            if scanned == scan_max {
                complete = false;
                break;
            }
            let raw = raw.map_err(StoreError::Sled)?;
            let event: EventRecord = serde_json::from_slice(&raw)
                .map_err(|e| StoreError::Corrupt(format!("event: {e}")))?;
            if event.created_at_ms < since_ms {
                break;
            }
            if keep(&event) {
                found.push(event);
            }
        }
        found.reverse();
        Ok((found, complete))
    }

    /// How many events still owe a webhook delivery.
    pub fn outbox_len(&self) -> usize {
        self.trees.outbox.len()
    }

    /// The outbox, oldest event first, each event with its object; at most `limit` entries.
    pub fn outbox_page(
        &self,
        limit: usize,
    ) -> Result<Vec<(EventRecord, OutboxRecord)>, StoreError> {
        let mut page = Vec::new();
        for entry in self.trees.outbox.iter().values() {
            let raw = entry.map_err(StoreError::Sled)?;
            let queued: QueuedEvent = serde_json::from_slice(&raw)
                .map_err(|e| StoreError::Corrupt(format!("outbox entry: {e}")))?;
            page.push((queued.event, queued.delivery));
            if page.len() >= limit {
                break;
            }
        }
        Ok(page)
    }

    /// Records the delivery state of an outbox entry, or removes it when `None` (done).
    pub fn set_outbox(
        &self,
        event_id: &str,
        state: Option<&OutboxRecord>,
    ) -> Result<(), StoreError> {
        let outbox = &self.trees.outbox;
        let key = event_id.as_bytes();
        let Some(state) = state else {
            return self
                .writer
                .single(outbox, key, || outbox.remove(key).map(|_| ()));
        };
        // Read and written under the writer: the entry keeps its event, only its delivery
        // state changes.
        self.writer.single_fallible(|keep| {
            let Some(raw) = outbox.get(key).map_err(StoreError::Sled)? else {
                return Ok(());
            };
            let mut queued: QueuedEvent = serde_json::from_slice(&raw)
                .map_err(|e| StoreError::Corrupt(format!("outbox entry {event_id}: {e}")))?;
            queued.delivery = state.clone();
            keep.before_writing(outbox, key);
            outbox
                .insert(key, encode(&queued))
                .map(|_| ())
                .map_err(StoreError::Sled)
        })
    }
}
