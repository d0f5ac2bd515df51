//! The providers' trade bills, drawn from the ledger: which payments and refunds a day's
//! bill lists (the provider's day, China time), the fee on each row at the merchant's rate,
//! the discrepancies a test asks for, and the bills published so far. A published bill
//! never changes, as the providers' do not: the discrepancies pending when a bill is
//! first published go into it, and only into it.
//!
//! Each provider renders the rows in its own format (`alipay_bills.rs`,
//! `wechatpay_bills.rs`); this module knows no format.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::ledger::{Ledger, Order, RefundStatus};

/// China Standard Time, UTC+8: both providers' bill day.
pub const CHINA_OFFSET_MS: i64 = 8 * 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// What a merchant pays when no rate was set for it: 0.6 %, both providers' standard rate.
pub const DEFAULT_RATE_BASIS_POINTS: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Payment,
    Refund,
}

/// One row of a bill, provider-neutral.
#[derive(Debug, Clone)]
pub struct Row {
    pub kind: RowKind,
    pub merchant: String,
    pub sub_merchant: Option<String>,
    /// The app the order was placed for, if the provider records one.
    pub app_id: Option<String>,
    pub out_trade_no: String,
    pub trade_no: String,
    pub out_refund_no: Option<String>,
    pub refund_id: Option<String>,
    /// The order's amount, in fen.
    pub order_minor: i64,
    /// This row's amount: the order's for a payment, the refund's for a refund.
    pub amount_minor: i64,
    /// The fee charged (payment) or given back (refund), in fen, positive.
    pub fee_minor: i64,
    pub rate_basis_points: u32,
    /// When the order was placed, and when this row's money moved (unix ms).
    pub created_ms: i64,
    pub at_ms: i64,
    pub description: String,
    pub payer_id: Option<String>,
    /// `qr` or `code`.
    pub order_kind: &'static str,
}

/// What a test asks the next published bill to get wrong (`POST /_sim/{provider}/bills/discrepancies`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discrepancy {
    pub kind: DiscrepancyKind,
    /// The order it concerns (required for all but `missing_refund`, which may name the
    /// refund instead).
    #[serde(default)]
    pub out_trade_no: Option<String>,
    #[serde(default)]
    pub out_refund_no: Option<String>,
    /// `theirs_only`: the amount of the payment only the provider has (default 10.00);
    /// `amount_mismatch`: the amount the bill states (default the order's plus 0.01).
    #[serde(default)]
    pub amount_minor: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscrepancyKind {
    /// A payment the provider has and the gateway does not: a row for `out_trade_no`,
    /// made up.
    TheirsOnly,
    /// A payment the gateway has and the bill leaves out.
    OursOnly,
    /// The bill states another amount for the payment.
    AmountMismatch,
    /// The bill lists as paid an order the provider never saw paid (the gateway says
    /// pending, failed or cancelled).
    StatusMismatch,
    /// A refund the bill leaves out.
    MissingRefund,
}

/// One provider's bills: merchants' rates, days published early, pending discrepancies,
/// and every bill published (its file, as first rendered).
#[derive(Debug, Default)]
pub struct Bills {
    rates: BTreeMap<String, u32>,
    closed: BTreeSet<String>,
    pending: Vec<Discrepancy>,
    published: BTreeMap<(String, String), Published>,
    /// Download links handed out: token -> (merchant/scope key, date, until when).
    links: BTreeMap<String, (String, String, i64)>,
}

/// A bill as published: its file, and whether the day had anything in it.
#[derive(Debug, Clone)]
pub struct Published {
    pub file: Vec<u8>,
    pub rows: usize,
}

/// Why a bill cannot be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotPublished {
    /// The day is not over (China time) and was not closed early.
    NotYet,
    /// The date is not a date.
    BadDate,
}

impl Bills {
    pub fn set_rate(&mut self, merchant: &str, basis_points: u32) {
        self.rates.insert(merchant.to_owned(), basis_points);
    }

    pub fn rate(&self, merchant: &str) -> u32 {
        self.rates
            .get(merchant)
            .copied()
            .unwrap_or(DEFAULT_RATE_BASIS_POINTS)
    }

    /// Publishes `date`'s bills now instead of after the day ends (tests reconcile the
    /// traffic they just made).
    pub fn close_day(&mut self, date: &str) {
        self.closed.insert(date.to_owned());
    }

    pub fn add_discrepancy(&mut self, discrepancy: Discrepancy) {
        self.pending.push(discrepancy);
    }

    /// Remembers a download link for `merchant`'s published bill of `date`.
    pub fn add_link(&mut self, token: &str, merchant: &str, date: &str, until_ms: i64) {
        self.add_scoped_link(token, merchant, None, date, until_ms);
    }

    /// [`Bills::add_link`] for one sub-merchant's bill.
    pub fn add_scoped_link(
        &mut self,
        token: &str,
        merchant: &str,
        scope: Option<&str>,
        date: &str,
        until_ms: i64,
    ) {
        self.links
            .retain(|_, (_, _, until)| *until > until_ms - 3_600_000);
        self.links.insert(
            token.to_owned(),
            (published_key(merchant, scope), date.to_owned(), until_ms),
        );
    }

    /// The file a link names, while it works.
    pub fn linked_file(&self, token: &str, now_ms: i64) -> Option<Vec<u8>> {
        let (key, date, until) = self.links.get(token)?;
        if now_ms > *until {
            return None;
        }
        self.published
            .get(&(key.clone(), date.clone()))
            .map(|p| p.file.clone())
    }

    /// A published bill's file, as a merchant downloads it from the provider's portal.
    pub fn published_file(
        &self,
        merchant: &str,
        scope: Option<&str>,
        date: &str,
    ) -> Option<Vec<u8>> {
        self.published
            .get(&(published_key(merchant, scope), date.to_owned()))
            .map(|p| p.file.clone())
    }

    /// `merchant`'s bill for `date` (`scope` narrows it to one sub-merchant), rendered by
    /// `render` from the ledger the first time it is asked for once the day is published,
    /// the same file every time after.
    pub fn bill(
        &mut self,
        ledger: &Ledger,
        merchant: &str,
        scope: Option<&str>,
        date: &str,
        now_ms: i64,
        render: impl FnOnce(&[Row]) -> Vec<u8>,
    ) -> Result<Published, NotPublished> {
        let start = day_start_ms(date).ok_or(NotPublished::BadDate)?;
        if now_ms < start + DAY_MS && !self.closed.contains(date) {
            return Err(NotPublished::NotYet);
        }
        let key = (published_key(merchant, scope), date.to_owned());
        if let Some(published) = self.published.get(&key) {
            return Ok(published.clone());
        }
        let rate = self.rate(scope.unwrap_or(merchant));
        let mut rows = day_rows(ledger, merchant, scope, start, rate);
        for discrepancy in std::mem::take(&mut self.pending) {
            apply(&mut rows, &discrepancy, ledger, merchant, start, rate);
        }
        rows.sort_by_key(|r| r.at_ms);
        let published = Published {
            file: render(&rows),
            rows: rows.len(),
        };
        self.published.insert(key, published.clone());
        Ok(published)
    }
}

fn published_key(merchant: &str, scope: Option<&str>) -> String {
    format!("{merchant}/{}", scope.unwrap_or(""))
}

/// Unix ms of `date`'s midnight, China time.
pub fn day_start_ms(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    let day = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    let midnight = day.midnight().assume_utc().unix_timestamp() * 1000;
    Some(midnight - CHINA_OFFSET_MS)
}

/// The fee on `amount_minor` at `basis_points`, rounded half up to the fen.
pub fn fee_of(amount_minor: i64, basis_points: u32) -> i64 {
    (amount_minor * i64::from(basis_points) + 5_000) / 10_000
}

/// Every payment whose money moved on the day starting at `start` (China time) and every
/// refund that completed on it, for `merchant` (and `scope`'s sub-merchant, if named).
fn day_rows(
    ledger: &Ledger,
    merchant: &str,
    scope: Option<&str>,
    start: i64,
    rate: u32,
) -> Vec<Row> {
    let on_day = |at: i64| (start..start + DAY_MS).contains(&at);
    let mut rows = Vec::new();
    for order in ledger.orders.values() {
        if order.merchant != merchant
            || scope.is_some_and(|s| order.sub_merchant.as_deref() != Some(s))
        {
            continue;
        }
        if let Some(paid) = order.paid_ms.filter(|&at| on_day(at)) {
            rows.push(payment_row(order, paid, order.amount_minor, rate));
        }
        let fee = fee_of(order.amount_minor, rate);
        let mut returned = 0;
        for refund in order.refunds.values() {
            if refund.status != RefundStatus::Succeeded {
                continue;
            }
            // Fees come back in proportion, and never more than was charged: the refund
            // that empties the order gives back what is left of the fee.
            let back = if order.refunded_minor() == order.amount_minor
                && refund.out_refund_no == last_refund(order)
            {
                fee - returned
            } else {
                fee_of(refund.amount_minor, rate).min(fee - returned)
            };
            returned += back;
            let at = refund.completes_at_ms.unwrap_or(refund.created_ms);
            if on_day(at) {
                rows.push(Row {
                    kind: RowKind::Refund,
                    out_refund_no: Some(refund.out_refund_no.clone()),
                    refund_id: Some(refund.refund_id.clone()),
                    amount_minor: refund.amount_minor,
                    fee_minor: back,
                    at_ms: at,
                    ..payment_row(order, at, order.amount_minor, rate)
                });
            }
        }
    }
    rows
}

/// The refund of `order` that completed last (by the time its money moved).
fn last_refund(order: &Order) -> &str {
    order
        .refunds
        .values()
        .filter(|r| r.status == RefundStatus::Succeeded)
        .max_by_key(|r| {
            (
                r.completes_at_ms.unwrap_or(r.created_ms),
                r.out_refund_no.clone(),
            )
        })
        .map_or("", |r| r.out_refund_no.as_str())
}

fn payment_row(order: &Order, at_ms: i64, amount_minor: i64, rate: u32) -> Row {
    Row {
        kind: RowKind::Payment,
        merchant: order.merchant.clone(),
        sub_merchant: order.sub_merchant.clone(),
        app_id: order.app_id.clone(),
        out_trade_no: order.out_trade_no.clone(),
        trade_no: order.trade_no.clone(),
        out_refund_no: None,
        refund_id: None,
        order_minor: amount_minor,
        amount_minor,
        fee_minor: fee_of(amount_minor, rate),
        rate_basis_points: rate,
        created_ms: order.created_ms,
        at_ms,
        description: order.description.clone(),
        payer_id: order.payer_id.clone(),
        order_kind: order.kind,
    }
}

/// Changes `rows` as `discrepancy` asks.
fn apply(
    rows: &mut Vec<Row>,
    discrepancy: &Discrepancy,
    ledger: &Ledger,
    merchant: &str,
    start: i64,
    rate: u32,
) {
    let named = discrepancy.out_trade_no.as_deref();
    let is_payment_of = |r: &Row, no: Option<&str>| {
        r.kind == RowKind::Payment && Some(r.out_trade_no.as_str()) == no
    };
    match discrepancy.kind {
        DiscrepancyKind::TheirsOnly => {
            let no = named.unwrap_or("sim_theirs_only").to_owned();
            let amount = discrepancy.amount_minor.unwrap_or(1_000);
            let at = start + DAY_MS / 2;
            let app_id = rows.iter().find_map(|r| r.app_id.clone());
            rows.push(Row {
                kind: RowKind::Payment,
                merchant: merchant.to_owned(),
                sub_merchant: None,
                app_id,
                trade_no: format!("sim{}", crate::keys::random_token(12)),
                out_trade_no: no,
                out_refund_no: None,
                refund_id: None,
                order_minor: amount,
                amount_minor: amount,
                fee_minor: fee_of(amount, rate),
                rate_basis_points: rate,
                created_ms: at,
                at_ms: at,
                description: "sim".into(),
                payer_id: None,
                order_kind: "code",
            });
        }
        DiscrepancyKind::OursOnly => rows.retain(|r| !is_payment_of(r, named)),
        DiscrepancyKind::AmountMismatch => {
            for row in rows.iter_mut().filter(|r| is_payment_of(r, named)) {
                let amount = discrepancy.amount_minor.unwrap_or(row.amount_minor + 1);
                row.amount_minor = amount;
                row.order_minor = amount;
                row.fee_minor = fee_of(amount, rate);
            }
        }
        DiscrepancyKind::StatusMismatch => {
            if let Some(order) = named.and_then(|no| ledger.orders.get(no)) {
                let at = order.created_ms.max(start);
                rows.push(payment_row(order, at, order.amount_minor, rate));
            }
        }
        DiscrepancyKind::MissingRefund => {
            let refund = discrepancy.out_refund_no.as_deref();
            let position = rows.iter().position(|r| {
                r.kind == RowKind::Refund
                    && (refund.is_some_and(|no| r.out_refund_no.as_deref() == Some(no))
                        || (refund.is_none() && named == Some(r.out_trade_no.as_str())))
            });
            if let Some(i) = position {
                rows.remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_half_up_to_the_fen() {
        assert_eq!(fee_of(10_000, 60), 60);
        assert_eq!(fee_of(1_250, 60), 8); // 7.5 fen
        assert_eq!(fee_of(1_240, 60), 7); // 7.44 fen
        assert_eq!(fee_of(1, 60), 0);
    }

    #[test]
    fn the_day_is_china_time() {
        // 2026-12-07 00:00 +08:00 is 2026-12-06 16:00 UTC.
        assert_eq!(
            day_start_ms("2026-12-07"),
            Some(1_796_601_600_000 - CHINA_OFFSET_MS)
        );
        assert_eq!(day_start_ms("2026-13-01"), None);
    }
}
