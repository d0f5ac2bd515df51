//! What the API and the console read: payments and refunds wherever they are (the hot
//! records or the archive), pages of payments, the event log back to a point in time.
//!
//! Invariants:
//! - **One order**: payments are listed newest first by id, hot and archived merged, each
//!   once (a payment both hot and archived while an archive run moves it is the hot one).
//! - **At most `limit + 1`** in a page: the extra one tells the caller there are more.

use super::Durable;
use crate::domain::records::{EventRecord, PaymentRecord, RefundRecord};
use crate::store::{Store, StoreError};

/// A record, and whether it was read from the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<T> {
    pub record: T,
    pub archived: bool,
}

impl<T> Found<T> {
    pub fn hot(record: T) -> Found<T> {
        Found {
            record,
            archived: false,
        }
    }

    pub fn archived(record: T) -> Found<T> {
        Found {
            record,
            archived: true,
        }
    }
}

/// Which payments a page keeps.
pub type PaymentFilter<'a> = &'a (dyn Fn(&PaymentRecord) -> bool + Sync);
/// Which events a scan keeps.
pub type EventFilter<'a> = &'a (dyn Fn(&EventRecord) -> bool + Sync);

#[async_trait::async_trait]
pub trait Reads: Durable {
    /// A payment, hot or archived.
    async fn find_payment(&self, id: &str) -> Result<Option<Found<PaymentRecord>>, StoreError>;
    /// A refund, hot or archived.
    async fn find_refund(&self, id: &str) -> Result<Option<Found<RefundRecord>>, StoreError>;
    /// The refunds of a payment, oldest first, from wherever the payment is.
    async fn find_refunds_of(
        &self,
        payment_id: &str,
    ) -> Result<Vec<Found<RefundRecord>>, StoreError>;
    /// Payments newest first, optionally of one merchant, below (older than) `after`,
    /// keeping those `keep` accepts, at most `limit + 1`.
    async fn payments_page(
        &self,
        merchant_id: Option<&str>,
        after: Option<&str>,
        limit: usize,
        keep: PaymentFilter<'_>,
    ) -> Result<Vec<Found<PaymentRecord>>, StoreError>;
    /// The hot payment of `merchant_id` with `order_id`.
    async fn payment_by_order_id(
        &self,
        merchant_id: &str,
        order_id: &str,
    ) -> Result<Option<PaymentRecord>, StoreError>;
    /// The events `keep` accepts among those logged at or after `since_ms`, oldest first,
    /// reading the log back from its newest event and at most `scan_max` events; `false`
    /// with them when the scan stopped at that cap before reaching `since_ms`.
    async fn events_since(
        &self,
        since_ms: i64,
        scan_max: usize,
        keep: EventFilter<'_>,
    ) -> Result<(Vec<EventRecord>, bool), StoreError>;
}

#[async_trait::async_trait]
impl Reads for Store {
    async fn find_payment(&self, id: &str) -> Result<Option<Found<PaymentRecord>>, StoreError> {
        Store::find_payment(self, id)
    }

    async fn find_refund(&self, id: &str) -> Result<Option<Found<RefundRecord>>, StoreError> {
        Store::find_refund(self, id)
    }

    async fn find_refunds_of(
        &self,
        payment_id: &str,
    ) -> Result<Vec<Found<RefundRecord>>, StoreError> {
        Store::find_refunds_of(self, payment_id)
    }

    async fn payments_page(
        &self,
        merchant_id: Option<&str>,
        after: Option<&str>,
        limit: usize,
        keep: PaymentFilter<'_>,
    ) -> Result<Vec<Found<PaymentRecord>>, StoreError> {
        Store::payments_page(self, merchant_id, after, limit, keep)
    }

    async fn payment_by_order_id(
        &self,
        merchant_id: &str,
        order_id: &str,
    ) -> Result<Option<PaymentRecord>, StoreError> {
        Store::payment_by_order_id(self, merchant_id, order_id)
    }

    async fn events_since(
        &self,
        since_ms: i64,
        scan_max: usize,
        keep: EventFilter<'_>,
    ) -> Result<(Vec<EventRecord>, bool), StoreError> {
        Store::events_since(self, since_ms, scan_max, keep)
    }
}
