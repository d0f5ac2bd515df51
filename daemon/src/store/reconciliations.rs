//! Reconciliations in the store, by id (time-ordered). A run is recorded with its
//! `reconciliation.completed` event (and the event's outbox entry) in one atomic change, as
//! alerts are; an update is a compare-and-swap on the record.

use super::event_log::append_events;
use super::payments::{TxResult, encode, put_record};
use super::{Store, StoreError};
use crate::domain::reconciliation::ReconciliationRecord;
use crate::domain::records::EventRecord;

impl Store {
    pub(in crate::store) fn record_reconciliation(
        &self,
        record: &ReconciliationRecord,
        event: Option<&EventRecord>,
    ) -> Result<(), StoreError> {
        let t = &self.trees;
        let outbox_on = self.outbox_on();
        self.writer
            .transact(
                [&t.reconciliations, &t.events, &t.outbox],
                |[reconciliations, events, outbox]| -> TxResult<Vec<EventRecord>> {
                    if reconciliations.get(record.id.as_bytes())?.is_some() {
                        return Ok(Vec::new());
                    }
                    let snapshot = put_record(reconciliations, record.id.as_bytes(), record)?;
                    match event {
                        Some(event) => append_events(
                            &self.seq,
                            events,
                            outbox_on.then_some(outbox),
                            std::slice::from_ref(event),
                            &snapshot,
                        ),
                        None => Ok(Vec::new()),
                    }
                },
            )
            .map(|appended| self.published((), appended))
    }

    pub(in crate::store) fn update_reconciliation(
        &self,
        id: &str,
        change: impl Fn(&mut ReconciliationRecord) -> bool,
    ) -> Result<Option<ReconciliationRecord>, StoreError> {
        let tree = &self.trees.reconciliations;
        loop {
            let Some(raw) = tree.get(id.as_bytes()).map_err(StoreError::Sled)? else {
                return Ok(None);
            };
            let mut record: ReconciliationRecord = serde_json::from_slice(&raw)
                .map_err(|e| StoreError::Corrupt(format!("reconciliation {id}: {e}")))?;
            if !change(&mut record) {
                return Ok(Some(record));
            }
            record.version += 1;
            let swapped = self.writer.single(tree, id.as_bytes(), || {
                tree.compare_and_swap(id.as_bytes(), Some(&raw), Some(encode(&record)))
            })?;
            if swapped.is_ok() {
                return Ok(Some(record));
            }
            // Changed underneath: read again and reapply.
        }
    }

    pub(in crate::store) fn reconciliations_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&ReconciliationRecord) -> bool,
    ) -> Result<Vec<ReconciliationRecord>, StoreError> {
        let tree = &self.trees.reconciliations;
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match after
        {
            Some(after) => Box::new(tree.range(..after.as_bytes()).rev()),
            None => Box::new(tree.iter().rev()),
        };
        let mut page = Vec::new();
        for entry in entries {
            let (_, raw) = entry.map_err(StoreError::Sled)?;
            let record: ReconciliationRecord = serde_json::from_slice(&raw)
                .map_err(|e| StoreError::Corrupt(format!("reconciliation: {e}")))?;
            if keep(&record) {
                page.push(record);
                if page.len() > limit {
                    break;
                }
            }
        }
        Ok(page)
    }
}
