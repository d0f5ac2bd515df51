//! What the daemon's loops and its operators ask of the PostgreSQL engine.

use super::{Db, PgStore};
use crate::events::EventBus;
use crate::store::port::Operations;
use crate::store::{Room, StoreError};

#[async_trait::async_trait]
impl Operations for PgStore {
    async fn describe(&self) -> Result<String, StoreError> {
        let client = self.client().await?;
        let version: Option<i32> = client
            .row("SELECT max(version) FROM paygate_migrations", &[])
            .await?
            .get(0);
        Ok(format!(
            "postgresql, connected, schema version {}",
            version.unwrap_or(0)
        ))
    }

    /// The server's disk is the server's: it says when it is full, as an error.
    fn room(&self) -> Option<Room> {
        None
    }

    /// A lost connection is not a failure of the store: the pool makes a new one.
    fn failure(&self) -> Option<String> {
        None
    }

    async fn pending_payment_count(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let count: i64 = client
            .row("SELECT count(*) FROM payments WHERE NOT final", &[])
            .await?
            .get(0);
        Ok(count as usize)
    }

    fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Filled by the log's follower (`feed.rs`), once started.
    fn feed(&self) -> &EventBus {
        &self.feed
    }
}
