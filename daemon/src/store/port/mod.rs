//! The storage ports: what the use cases ask of a store, one trait per domain, and the
//! invariants every engine keeps. sled ([`Store`](super::Store)) and PostgreSQL
//! ([`PgStore`](super::postgres::PgStore)) implement them all; an engine is accepted when it
//! passes the conformance suite (`conformance/`).
//!
//! Invariants common to every port:
//! - **Every change appends its events**, in the same transaction as the change (a change
//!   and its event never exist one without the other).
//! - **Durability before an answer**: once `durable()` returns, every write made before the
//!   call survives a crash of the process (PostgreSQL: each write is a committed transaction
//!   with `synchronous_commit` on).
//! - **Lists come in the order of their ids** (byte order: ids begin with their creation
//!   time, so oldest first), on every engine.

mod alerts;
mod console;
mod merchants;
mod operations;
mod outbox;
mod payments;
mod reads;
mod reconciliations;

pub use alerts::{AlertChange, AlertFilter, AlertStore, MonitorTurn};
pub use console::{ConsoleStore, SessionFilter};
pub use merchants::{MerchantStore, Reseal};
pub use operations::Operations;
pub use outbox::{Outbox, OutboxEntry};
pub use payments::{
    Fence, Leased, PaymentAnswer, PaymentChange, PaymentStore, Pending, RefundChange,
};
pub use reads::{EventFilter, Found, PaymentFilter, Reads};
pub use reconciliations::{ReconciliationChange, ReconciliationFilter, ReconciliationStore};

use super::{Store, StoreError};

/// How long a lease runs unless renewed, where several daemons share the store and the
/// config says nothing else; its holder renews it every third of that while it works.
pub const LEASE_MS_DEFAULT: i64 = 30_000;

/// A request path's turn at the writer (see [`Store::write_turn`]); engines without a
/// single writer hand out an empty one.
pub struct WriteTurn<'a>(#[allow(dead_code)] Option<tokio::sync::MutexGuard<'a, ()>>);

impl WriteTurn<'_> {
    pub fn none() -> WriteTurn<'static> {
        WriteTurn(None)
    }
}

/// What every port has: turns at the writer, and the point after which writes are durable.
#[async_trait::async_trait]
pub trait Durable: Send + Sync + 'static {
    /// Waits for this request path's turn to write.
    async fn write_turn(&self) -> WriteTurn<'_>;
    /// Resolves once every write made before the call is durable.
    async fn durable(&self) -> Result<(), StoreError>;
    /// Whether several daemons may share this store (their work then goes by leases).
    fn shared(&self) -> bool {
        false
    }
    /// How long this store's leases run unless renewed (ms); their holder renews them every
    /// third of that while it works.
    fn lease_ms(&self) -> i64 {
        LEASE_MS_DEFAULT
    }
}

#[async_trait::async_trait]
impl Durable for Store {
    async fn write_turn(&self) -> WriteTurn<'_> {
        WriteTurn(Some(Store::write_turn(self).await))
    }

    async fn durable(&self) -> Result<(), StoreError> {
        Store::durable(self).await
    }
}

/// Every port of one engine: what the daemon is built on.
pub trait Storage:
    PaymentStore
    + Reads
    + AlertStore
    + ConsoleStore
    + MerchantStore
    + Outbox
    + Operations
    + ReconciliationStore
{
}

impl<T> Storage for T where
    T: PaymentStore
        + Reads
        + AlertStore
        + ConsoleStore
        + MerchantStore
        + Outbox
        + Operations
        + ReconciliationStore
{
}
