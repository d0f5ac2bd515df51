//! Reads that see the hot trees and the archive as one: the hot record wins (it can only be
//! newer), then the newest segment's.

use super::ArchivedPayment;
use crate::domain::records::{PaymentRecord, RefundRecord};
use crate::store::port::Found;
use crate::store::{Store, StoreError};

impl Store {
    /// A payment, hot or archived.
    pub fn find_payment(&self, id: &str) -> Result<Option<Found<PaymentRecord>>, StoreError> {
        if let Some(payment) = self.payment(id)? {
            return Ok(Some(Found::hot(payment)));
        }
        Ok(self
            .archive
            .payment(id)?
            .map(|line| Found::archived(line.payment)))
    }

    /// A refund, hot or archived.
    pub fn find_refund(&self, id: &str) -> Result<Option<Found<RefundRecord>>, StoreError> {
        if let Some(refund) = self.refund(id)? {
            return Ok(Some(Found::hot(refund)));
        }
        Ok(self.archive.refund(id)?.map(Found::archived))
    }

    /// The refunds of a payment, oldest first, from wherever the payment is.
    pub fn find_refunds_of(
        &self,
        payment_id: &str,
    ) -> Result<Vec<Found<RefundRecord>>, StoreError> {
        if self.payment(payment_id)?.is_some() {
            return Ok(self
                .refunds_of(payment_id)?
                .into_iter()
                .map(Found::hot)
                .collect());
        }
        Ok(self
            .archive
            .payment(payment_id)?
            .map(|line| line.refunds.into_iter().map(Found::archived).collect())
            .unwrap_or_default())
    }

    /// An archived payment with its refunds (hot or not).
    pub fn archived_payment(&self, id: &str) -> Result<Option<ArchivedPayment>, StoreError> {
        self.archive.payment(id)
    }

    /// An archived refund.
    pub fn archived_refund(&self, id: &str) -> Result<Option<RefundRecord>, StoreError> {
        self.archive.refund(id)
    }

    /// Payments newest first, hot and archived merged into one order, optionally of one
    /// merchant, below (older than) `after`, keeping those `keep` accepts, at most
    /// `limit + 1` (so callers can tell `has_more`).
    pub fn payments_page(
        &self,
        merchant_id: Option<&str>,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&PaymentRecord) -> bool,
    ) -> Result<Vec<Found<PaymentRecord>>, StoreError> {
        let mut page = Vec::new();
        let mut hot = self.hot_payment_ids(merchant_id, after).peekable();
        let mut archived = self.archive.payments_desc(merchant_id, after)?;
        let mut next_archived = archived.next_id()?;
        while page.len() <= limit {
            let hot_id = match hot.peek() {
                Some(Ok(id)) => Some(id.clone()),
                Some(Err(_)) => return Err(hot.next().expect("peeked").expect_err("an error")),
                None => None,
            };
            let take_hot = match (&hot_id, &next_archived) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(h), Some((a, _))) => h >= a,
            };
            if take_hot {
                let id = hot_id.expect("some");
                hot.next();
                if next_archived.as_ref().is_some_and(|(a, _)| *a == id) {
                    next_archived = archived.next_id()?; // the hot copy wins
                }
                if let Some(payment) = self.payment(&id)?
                    && keep(&payment)
                {
                    page.push(Found::hot(payment));
                }
            } else {
                let (id, at) = next_archived.take().expect("some");
                next_archived = archived.next_id()?;
                // Both hot and archived while a run removes it: the hot copy wins, and the
                // hot list already had it (or will: ids only go down).
                if self.payment(&id)?.is_some() {
                    continue;
                }
                let line = archived.read(&at)?;
                if keep(&line.payment) {
                    page.push(Found::archived(line.payment));
                }
            }
        }
        Ok(page)
    }
}
