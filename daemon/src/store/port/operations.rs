//! What the daemon's own loops and its operators ask of any engine: whether it can serve,
//! its backlogs, and the in-process bus of committed events.

use super::Durable;
use crate::events::EventBus;
use crate::store::{Room, Store, StoreError};

#[async_trait::async_trait]
pub trait Operations: Durable {
    /// The engine and its schema, read from the store now (`readyz`): an error when it
    /// cannot be read.
    async fn describe(&self) -> Result<String, StoreError>;
    /// What the data dir's file system can take, for an engine that writes to one (`None`:
    /// the database server keeps its own disk).
    fn room(&self) -> Option<Room>;
    /// Why the store can no longer write until the daemon restarts, once that happened.
    fn failure(&self) -> Option<String>;
    /// How many payments are not final yet.
    async fn pending_payment_count(&self) -> Result<usize, StoreError>;
    /// Where every event this daemon commits is published, after its commit.
    fn bus(&self) -> &EventBus;
    /// Where every event any daemon sharing the store commits is published, once committed,
    /// in the order they committed (a store one daemon holds: its bus).
    fn feed(&self) -> &EventBus {
        self.bus()
    }
}

#[async_trait::async_trait]
impl Operations for Store {
    async fn describe(&self) -> Result<String, StoreError> {
        Ok(format!(
            "sled, open, schema version {}",
            Store::schema_version(self)?
        ))
    }

    fn room(&self) -> Option<Room> {
        Some(Store::room(self))
    }

    fn failure(&self) -> Option<String> {
        Store::failure(self).map(str::to_owned)
    }

    async fn pending_payment_count(&self) -> Result<usize, StoreError> {
        Ok(Store::pending_payment_count(self))
    }

    fn bus(&self) -> &EventBus {
        Store::bus(self)
    }
}
