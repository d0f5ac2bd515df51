//! What the API and the console read, on PostgreSQL: every payment stays in its table (this
//! engine has no archive), so every record found is a hot one.

use super::{Db, PgStore, decoded, one};
use crate::domain::records::{EventRecord, PaymentRecord, RefundRecord};
use crate::store::StoreError;
use crate::store::port::{EventFilter, Found, PaymentFilter, PaymentStore, Reads};

/// Payments read per round trip while a page is filled.
const PAGE_BATCH: i64 = 200;

#[async_trait::async_trait]
impl Reads for PgStore {
    async fn find_payment(&self, id: &str) -> Result<Option<Found<PaymentRecord>>, StoreError> {
        Ok(PaymentStore::payment(self, id).await?.map(Found::hot))
    }

    async fn find_refund(&self, id: &str) -> Result<Option<Found<RefundRecord>>, StoreError> {
        Ok(PaymentStore::refund(self, id).await?.map(Found::hot))
    }

    async fn find_refunds_of(
        &self,
        payment_id: &str,
    ) -> Result<Vec<Found<RefundRecord>>, StoreError> {
        let refunds = PaymentStore::refunds_of(self, payment_id).await?;
        Ok(refunds.into_iter().map(Found::hot).collect())
    }

    /// Newest first in batches until the page is full: `keep` is the caller's.
    async fn payments_page(
        &self,
        merchant_id: Option<&str>,
        after: Option<&str>,
        limit: usize,
        keep: PaymentFilter<'_>,
    ) -> Result<Vec<Found<PaymentRecord>>, StoreError> {
        let client = self.client().await?;
        let mut page = Vec::new();
        let mut before = after.map(str::to_owned);
        loop {
            let rows = client
                .rows(
                    "SELECT id, record FROM payments
                      WHERE ($1::text IS NULL OR merchant_id = $1)
                        AND ($2::text IS NULL OR id < $2)
                      ORDER BY id DESC LIMIT $3",
                    &[&merchant_id, &before, &PAGE_BATCH],
                )
                .await?;
            let exhausted = (rows.len() as i64) < PAGE_BATCH;
            for row in rows {
                before = Some(row.get(0));
                let payment: PaymentRecord = decoded(&row, 1)?;
                if keep(&payment) {
                    page.push(Found::hot(payment));
                    if page.len() > limit {
                        return Ok(page);
                    }
                }
            }
            if exhausted {
                return Ok(page);
            }
        }
    }

    async fn payment_by_order_id(
        &self,
        merchant_id: &str,
        order_id: &str,
    ) -> Result<Option<PaymentRecord>, StoreError> {
        let client = self.client().await?;
        one(client
            .row_opt(
                "SELECT record FROM payments WHERE merchant_id = $1 AND order_id = $2",
                &[&merchant_id, &order_id],
            )
            .await?)
    }

    /// Back from the newest event in batches (each a bounded index scan, however quiet the
    /// period), as the sled engine reads: to the first one older than `since_ms`, or
    /// `scan_max` events.
    async fn events_since(
        &self,
        since_ms: i64,
        scan_max: usize,
        keep: EventFilter<'_>,
    ) -> Result<(Vec<EventRecord>, bool), StoreError> {
        let client = self.client().await?;
        let mut found = Vec::new();
        let mut scanned = 0;
        let mut below: Option<i64> = None;
        loop {
            let rows = client
                .rows(
                    "SELECT seq, event FROM events WHERE $1::bigint IS NULL OR seq < $1
                      ORDER BY seq DESC LIMIT $2",
                    &[&below, &PAGE_BATCH],
                )
                .await?;
            let exhausted = (rows.len() as i64) < PAGE_BATCH;
            for row in &rows {
                if scanned == scan_max {
                    found.reverse();
                    return Ok((found, false));
                }
                scanned += 1;
                below = Some(row.get(0));
                let event: EventRecord = decoded(row, 1)?;
                if event.created_at_ms < since_ms {
                    found.reverse();
                    return Ok((found, true));
                }
                if keep(&event) {
                    found.push(event);
                }
            }
            if exhausted {
                found.reverse();
                return Ok((found, true));
            }
        }
    }
}
