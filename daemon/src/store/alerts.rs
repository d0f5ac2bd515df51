//! The monitor's alerts and blocks in the store. A new alert is recorded with its
//! `alert.raised` event (and the event's outbox entry) in one atomic change, like every other
//! state change, so that the webhook for it cannot be lost.

use super::event_log::append_events;
use super::payments::{TxResult, encode, keys_of, put_record};
use super::{Store, StoreError};
use crate::domain::records::{AlertRecord, BlockRecord, EventRecord};

impl Store {
    /// Records a new alert (and its block, if its rule placed one) with its event.
    pub(in crate::store) fn record_alert(
        &self,
        alert: &AlertRecord,
        block: Option<&BlockRecord>,
        event: &EventRecord,
    ) -> Result<(), StoreError> {
        let t = &self.trees;
        let outbox_on = self.outbox_on();
        self.writer
            .transact(
                [&t.alerts, &t.blocks, &t.events, &t.outbox],
                |[alerts, blocks, events, outbox]| -> TxResult<Vec<EventRecord>> {
                    let snapshot = put_record(alerts, alert.id.as_bytes(), alert)?;
                    if let Some(block) = block {
                        blocks.insert(block.id.as_bytes(), encode(block))?;
                    }
                    append_events(
                        &self.seq,
                        events,
                        outbox_on.then_some(outbox),
                        std::slice::from_ref(event),
                        &snapshot,
                    )
                },
            )
            .map(|appended| self.published((), appended))
    }

    /// Replaces an alert (a repeat within the cool-down, an acknowledgement).
    pub(in crate::store) fn update_alert<F>(
        &self,
        id: &str,
        change: F,
    ) -> Result<Option<AlertRecord>, StoreError>
    where
        F: Fn(&mut AlertRecord),
    {
        let tree = &self.trees.alerts;
        loop {
            let Some(raw) = tree.get(id.as_bytes()).map_err(StoreError::Sled)? else {
                return Ok(None);
            };
            let mut alert: AlertRecord = serde_json::from_slice(&raw)
                .map_err(|e| StoreError::Corrupt(format!("alert {id}: {e}")))?;
            change(&mut alert);
            let swapped = self.writer.single(tree, id.as_bytes(), || {
                tree.compare_and_swap(id.as_bytes(), Some(&raw), Some(encode(&alert)))
            })?;
            if swapped.is_ok() {
                return Ok(Some(alert));
            }
            // Changed underneath: read again and reapply.
        }
    }

    pub(in crate::store) fn alert(&self, id: &str) -> Result<Option<AlertRecord>, StoreError> {
        self.read(&self.trees.alerts, id, "alert")
    }

    /// Alerts newest first, older than `after` when given, keeping those `keep` accepts, at
    /// most `limit + 1`.
    pub(in crate::store) fn alerts_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&AlertRecord) -> bool,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match after
        {
            Some(after) => Box::new(self.trees.alerts.range(..after.as_bytes()).rev()),
            None => Box::new(self.trees.alerts.iter().rev()),
        };
        let mut page = Vec::new();
        for entry in entries {
            let (_, raw) = entry.map_err(StoreError::Sled)?;
            let alert: AlertRecord = serde_json::from_slice(&raw)
                .map_err(|e| StoreError::Corrupt(format!("alert: {e}")))?;
            if keep(&alert) {
                page.push(alert);
                if page.len() > limit {
                    break;
                }
            }
        }
        Ok(page)
    }

    /// Every block, expired or not (the monitor drops the expired ones).
    pub(in crate::store) fn blocks(&self) -> Result<Vec<BlockRecord>, StoreError> {
        keys_of(&self.trees.blocks)?
            .iter()
            .filter_map(|id| self.read(&self.trees.blocks, id, "block").transpose())
            .collect()
    }

    /// Removes a block; returns it if it existed.
    pub(in crate::store) fn remove_block(
        &self,
        id: &str,
    ) -> Result<Option<BlockRecord>, StoreError> {
        let blocks = &self.trees.blocks;
        match self
            .writer
            .single(blocks, id.as_bytes(), || blocks.remove(id.as_bytes()))?
        {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("block {id}: {e}"))),
        }
    }
}
