//! Matching a bill against our records (pure): which rows and records agree, and every
//! disagreement, by kind. No I/O: the use case gathers the records, this decides.
//!
//! Rules:
//! - A bill's payment row is matched to our payment by id (the provider's merchant order
//!   number is our payment id), whatever day we recorded it; a refund row to our refund by
//!   its id.
//! - Our side of the day is every payment of the merchant and provider that succeeded in the
//!   provider's day by our clock, and every refund that did. Our clock learns of a payment
//!   after the provider's, so a payment paid just before midnight may be one we recorded
//!   just after: found in this bill, it is a *late match*, which the next day's run does
//!   not expect in its own bill.
//! - A payment we cancelled that the bill lists as paid and then refunded in full under
//!   refund numbers of the provider's own (a payment-code order reversed after the payer
//!   paid) agrees: no money stayed.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use crate::domain::reconciliation::{BillRow, Discrepancy, DiscrepancyKind, OurObject, Totals};
use crate::domain::records::{PaymentRecord, RefundRecord};
use crate::domain::state::{PaymentStatus, RefundStatus};
use crate::plugins::types::{BillEntry, BillEntryKind};

/// The provider's day, as unix ms: `[start, end)`.
#[derive(Debug, Clone, Copy)]
pub struct Day {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Day {
    fn holds(&self, at_ms: i64) -> bool {
        (self.start_ms..self.end_ms).contains(&at_ms)
    }
}

/// Our records the run looked at: every payment the bill names or the day expects, and
/// their refunds.
#[derive(Debug, Default)]
pub struct Ours {
    pub payments: BTreeMap<String, PaymentRecord>,
    pub refunds: BTreeMap<String, RefundRecord>,
}

/// What the run compares.
pub struct Input<'a> {
    pub merchant_id: &'a str,
    pub provider: &'a str,
    /// The currency's exponent (amounts are compared in its minor units).
    pub exponent: u8,
    pub day: Day,
    pub entries: &'a [BillEntry],
    pub ours: &'a Ours,
    /// The previous day's late matches: in our day, but in the previous bill.
    pub previous_late: &'a BTreeSet<String>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub discrepancies: Vec<Discrepancy>,
    pub ours: Totals,
    pub theirs: Totals,
    pub late_matches: Vec<String>,
    /// Payments we have as pending that the bill lists as paid: the run asks the provider.
    pub to_confirm: Vec<String>,
}

/// When we recorded the payment as succeeded (records from before the gateway kept it: the
/// last change, which is then at or after it).
pub fn paid_at(payment: &PaymentRecord) -> i64 {
    payment.succeeded_at_ms.unwrap_or(payment.updated_at_ms)
}

/// When a succeeded refund went through (its last change).
pub fn refunded_at(refund: &RefundRecord) -> i64 {
    refund.updated_at_ms
}

/// An amount a plugin stated, in minor units at `exponent` (none if it does not fit).
pub fn minor_at(amount: &crate::plugins::types::Money, exponent: u8) -> Option<i64> {
    let value = Decimal::new(amount.minor, u32::from(amount.exponent));
    let scaled = value * Decimal::from(10i64.pow(u32::from(exponent)));
    (scaled.fract().is_zero())
        .then(|| i64::try_from(scaled.trunc()).ok())
        .flatten()
}

fn fee_of(entry: &BillEntry) -> Option<Decimal> {
    entry
        .fee
        .as_ref()
        .map(|f| Decimal::new(f.minor, u32::from(f.exponent)))
}

fn row(entry: &BillEntry, exponent: u8) -> BillRow {
    BillRow {
        kind: match entry.kind {
            BillEntryKind::Payment => "payment",
            BillEntryKind::Refund => "refund",
        }
        .into(),
        payment_id: entry.payment_id.clone(),
        refund_id: entry.refund_id.clone(),
        provider_reference: entry.provider_reference.clone(),
        amount_minor: minor_at(&entry.amount, exponent).unwrap_or(i64::MIN),
        fee: fee_of(entry),
        occurred_at: entry.occurred_at.clone(),
        line: entry.line,
    }
}

fn our_payment(p: &PaymentRecord) -> OurObject {
    OurObject {
        payment_id: p.id.clone(),
        refund_id: None,
        status: p.status.as_str().into(),
        amount_minor: p.amount_minor,
    }
}

fn our_refund(r: &RefundRecord) -> OurObject {
    OurObject {
        payment_id: r.payment_id.clone(),
        refund_id: Some(r.id.clone()),
        status: r.status.as_str().into(),
        amount_minor: r.amount_minor,
    }
}

pub fn reconcile(input: &Input<'_>) -> Outcome {
    let mut out = Outcome::default();
    let exponent = input.exponent;
    let ours = input.ours;
    let mine =
        |p: &PaymentRecord| p.merchant_id == input.merchant_id && p.provider == input.provider;
    let payment = |id: &str| ours.payments.get(id).filter(|p| mine(p));
    let refund = |id: &str| {
        ours.refunds
            .get(id)
            .filter(|r| r.merchant_id == input.merchant_id && r.provider == input.provider)
    };
    let found = |kind, ours: Option<OurObject>, theirs: Option<BillRow>| Discrepancy {
        id: String::new(),
        kind,
        ours,
        theirs,
        resolution: None,
    };

    // Their side.
    let mut fees = Decimal::ZERO;
    for entry in input.entries {
        let amount = minor_at(&entry.amount, exponent).unwrap_or(i64::MIN);
        match entry.kind {
            BillEntryKind::Payment => {
                out.theirs.payments += 1;
                out.theirs.gross_minor = out.theirs.gross_minor.saturating_add(amount);
                fees += fee_of(entry).unwrap_or_default();
            }
            BillEntryKind::Refund => {
                out.theirs.refunds += 1;
                out.theirs.refunded_minor = out.theirs.refunded_minor.saturating_add(amount);
                fees -= fee_of(entry).unwrap_or_default();
            }
        }
    }
    out.theirs.fees = Some(fees);

    // Payments we cancelled that the provider reversed: paid, then refunded in full under
    // refund numbers we never made.
    let mut reversed: BTreeSet<&str> = BTreeSet::new();
    for entry in input
        .entries
        .iter()
        .filter(|e| e.kind == BillEntryKind::Payment)
    {
        let Some(p) = payment(&entry.payment_id) else {
            continue;
        };
        if p.status != PaymentStatus::Cancelled {
            continue;
        }
        let returned: i64 = input
            .entries
            .iter()
            .filter(|e| {
                e.kind == BillEntryKind::Refund
                    && e.payment_id == p.id
                    && e.refund_id.as_deref().is_none_or(|id| refund(id).is_none())
            })
            .filter_map(|e| minor_at(&e.amount, exponent))
            .sum();
        if returned == p.amount_minor {
            reversed.insert(p.id.as_str());
        }
    }

    let mut matched_payments: BTreeSet<&str> = BTreeSet::new();
    let mut matched_refunds: BTreeSet<&str> = BTreeSet::new();
    for entry in input.entries {
        let theirs = row(entry, exponent);
        let amount = theirs.amount_minor;
        match entry.kind {
            BillEntryKind::Payment => {
                let Some(p) = payment(&entry.payment_id) else {
                    out.discrepancies
                        .push(found(DiscrepancyKind::TheirsOnly, None, Some(theirs)));
                    continue;
                };
                matched_payments.insert(p.id.as_str());
                if reversed.contains(p.id.as_str()) {
                    continue;
                }
                if amount != p.amount_minor {
                    out.discrepancies.push(found(
                        DiscrepancyKind::AmountMismatch,
                        Some(our_payment(p)),
                        Some(theirs.clone()),
                    ));
                }
                match p.status {
                    PaymentStatus::Succeeded => {
                        if paid_at(p) >= input.day.end_ms {
                            out.late_matches.push(p.id.clone());
                        }
                    }
                    PaymentStatus::Pending => {
                        out.to_confirm.push(p.id.clone());
                        out.discrepancies.push(found(
                            DiscrepancyKind::StatusMismatch,
                            Some(our_payment(p)),
                            Some(theirs),
                        ));
                    }
                    PaymentStatus::Failed | PaymentStatus::Cancelled | PaymentStatus::Expired => {
                        out.discrepancies.push(found(
                            DiscrepancyKind::StrayCharge,
                            Some(our_payment(p)),
                            Some(theirs),
                        ))
                    }
                }
            }
            BillEntryKind::Refund => {
                let ours_refund = entry.refund_id.as_deref().and_then(refund);
                let Some(r) = ours_refund else {
                    if !reversed.contains(entry.payment_id.as_str()) {
                        out.discrepancies.push(found(
                            DiscrepancyKind::RefundTheirsOnly,
                            None,
                            Some(theirs),
                        ));
                    }
                    continue;
                };
                matched_refunds.insert(r.id.as_str());
                if amount != r.amount_minor {
                    out.discrepancies.push(found(
                        DiscrepancyKind::RefundAmountMismatch,
                        Some(our_refund(r)),
                        Some(theirs.clone()),
                    ));
                }
                if r.status != RefundStatus::Succeeded {
                    out.discrepancies.push(found(
                        DiscrepancyKind::RefundStatusMismatch,
                        Some(our_refund(r)),
                        Some(theirs),
                    ));
                }
            }
        }
    }

    // Our side of the day, and what of it the bill does not list.
    for p in ours.payments.values().filter(|p| mine(p)) {
        let expected = p.status == PaymentStatus::Succeeded
            && input.day.holds(paid_at(p))
            && !input.previous_late.contains(&p.id);
        if !expected {
            continue;
        }
        out.ours.payments += 1;
        out.ours.gross_minor += p.amount_minor;
        if !matched_payments.contains(p.id.as_str()) {
            out.discrepancies
                .push(found(DiscrepancyKind::OursOnly, Some(our_payment(p)), None));
        }
    }
    // Late matches are ours for the day too: the provider's day holds them.
    for id in &out.late_matches {
        if let Some(p) = payment(id) {
            out.ours.payments += 1;
            out.ours.gross_minor += p.amount_minor;
        }
    }
    for r in ours.refunds.values() {
        let expected = r.merchant_id == input.merchant_id
            && r.provider == input.provider
            && r.status == RefundStatus::Succeeded
            && input.day.holds(refunded_at(r));
        if !expected {
            continue;
        }
        out.ours.refunds += 1;
        out.ours.refunded_minor += r.amount_minor;
        if !matched_refunds.contains(r.id.as_str()) {
            out.discrepancies.push(found(
                DiscrepancyKind::MissingRefund,
                Some(our_refund(r)),
                None,
            ));
        }
    }
    for (n, d) in out.discrepancies.iter_mut().enumerate() {
        d.id = format!("dsc_{:05}", n + 1);
    }
    out
}
