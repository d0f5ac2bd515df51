//! Appending to the event log, inside the transaction of the change the events announce,
//! with the webhook outbox's entries; and publishing them in process once committed.

use super::Db;
use tokio_postgres::types::Json;

use crate::domain::records::{EventRecord, OutboxRecord, Snapshot};
use crate::store::StoreError;

/// Appends `events` about a record now at `version` (0: not a versioned record) and, when
/// `outbox` is on, the webhook events' outbox entries, which keep `object` (the record as
/// this change wrote it) while a delivery is owed. The log itself keeps only the version,
/// as the embedded engine's does: a record's sealed fields are not copied into it for good
/// (a master key rotation re-seals records, not the log). Returns the events with their
/// object, for the bus once committed.
pub(super) async fn log_events<C: Db>(
    db: &C,
    events: &[EventRecord],
    version: u64,
    object: &Snapshot,
    outbox: bool,
) -> Result<Vec<EventRecord>, StoreError> {
    let mut logged = Vec::with_capacity(events.len());
    for event in events {
        let event = EventRecord {
            object: None,
            object_version: version,
            ..event.clone()
        };
        let seq: i64 = db
            .row(
                "INSERT INTO events (id, kind, object_id, object_version, created_at_ms, event)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
                &[
                    &event.id,
                    &event.kind.as_str(),
                    &event.object_id,
                    &(version as i64),
                    &event.created_at_ms,
                    &Json(&event),
                ],
            )
            .await?
            .get(0);
        let event = EventRecord {
            object: Some(object.clone()),
            ..event
        };
        if outbox && event.kind.is_webhook() {
            db.exec(
                "INSERT INTO outbox (event_id, seq, event, delivery) VALUES ($1, $2, $3, $4)",
                &[
                    &event.id,
                    &seq,
                    &Json(&event),
                    &Json(OutboxRecord::default()),
                ],
            )
            .await?;
        }
        logged.push(event);
    }
    Ok(logged)
}
