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
    let value = Decimal::try_new(amount.minor, u32::from(amount.exponent)).ok()?;
    let scaled = value.checked_mul(Decimal::from(10i64.checked_pow(u32::from(exponent))?))?;
    (scaled.fract().is_zero())
        .then(|| i64::try_from(scaled.trunc()).ok())
        .flatten()
}

/// A plugin's stated fee, exactly (none if it has none or states one no decimal holds).
pub fn fee_of(entry: &BillEntry) -> Option<Decimal> {
    entry
        .fee
        .as_ref()
        .and_then(|f| Decimal::try_new(f.minor, u32::from(f.exponent)).ok())
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
                fees = fees.saturating_add(fee_of(entry).unwrap_or_default());
            }
            BillEntryKind::Refund => {
                out.theirs.refunds += 1;
                out.theirs.refunded_minor = out.theirs.refunded_minor.saturating_add(amount);
                fees = fees.saturating_sub(fee_of(entry).unwrap_or_default());
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
            .fold(0i64, i64::saturating_add);
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
                // A refund is ours only under the payment the row names.
                let ours_refund = entry
                    .refund_id
                    .as_deref()
                    .and_then(refund)
                    .filter(|r| r.payment_id == entry.payment_id);
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
        out.ours.gross_minor = out.ours.gross_minor.saturating_add(p.amount_minor);
        if !matched_payments.contains(p.id.as_str()) {
            out.discrepancies
                .push(found(DiscrepancyKind::OursOnly, Some(our_payment(p)), None));
        }
    }
    // Late matches are ours for the day too: the provider's day holds them.
    for id in &out.late_matches {
        if let Some(p) = payment(id) {
            out.ours.payments += 1;
            out.ours.gross_minor = out.ours.gross_minor.saturating_add(p.amount_minor);
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
        out.ours.refunded_minor = out.ours.refunded_minor.saturating_add(r.amount_minor);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reconciliation::DiscrepancyKind as K;
    use crate::plugins::types::Money;
    use serde_json::json;

    const DAY: Day = Day {
        start_ms: 1_000_000,
        end_ms: 1_000_000 + 86_400_000,
    };
    const NOON: i64 = DAY.start_ms + 43_200_000;

    fn payment(id: &str, status: &str, minor: i64, paid_at: Option<i64>) -> PaymentRecord {
        serde_json::from_value(json!({
            "id": id, "merchant_id": "m_a", "provider": "alipay", "method": "barcode",
            "amount_minor": minor, "currency": "CNY", "status": status, "metadata": {},
            "created_at_ms": DAY.start_ms, "updated_at_ms": paid_at.unwrap_or(DAY.start_ms),
            "succeeded_at_ms": paid_at, "refund_reserved_minor": 0, "refunded_minor": 0,
            "provider_step": "answered", "api_key_id": "k"
        }))
        .unwrap()
    }

    fn refund(id: &str, payment: &str, status: &str, minor: i64, at: i64) -> RefundRecord {
        serde_json::from_value(json!({
            "id": id, "payment_id": payment, "merchant_id": "m_a", "provider": "alipay",
            "amount_minor": minor, "currency": "CNY", "status": status,
            "created_at_ms": at, "updated_at_ms": at, "provider_step": "answered",
            "api_key_id": "k"
        }))
        .unwrap()
    }

    fn entry(
        kind: BillEntryKind,
        payment: &str,
        refund: Option<&str>,
        minor: i64,
        fee: i64,
    ) -> BillEntry {
        let cny = |minor| Money {
            minor,
            currency: "CNY".into(),
            exponent: 2,
        };
        BillEntry {
            kind,
            payment_id: payment.into(),
            refund_id: refund.map(str::to_owned),
            provider_reference: Some(format!("t_{payment}")),
            amount: cny(minor),
            fee: Some(cny(fee)),
            occurred_at: None,
            line: Some(6),
        }
    }

    fn ours(payments: Vec<PaymentRecord>, refunds: Vec<RefundRecord>) -> Ours {
        Ours {
            payments: payments.into_iter().map(|p| (p.id.clone(), p)).collect(),
            refunds: refunds.into_iter().map(|r| (r.id.clone(), r)).collect(),
        }
    }

    fn run(entries: &[BillEntry], ours: &Ours, previous_late: &[&str]) -> Outcome {
        let previous_late = previous_late.iter().map(|s| s.to_string()).collect();
        reconcile(&Input {
            merchant_id: "m_a",
            provider: "alipay",
            exponent: 2,
            day: DAY,
            entries,
            ours,
            previous_late: &previous_late,
        })
    }

    fn kinds(outcome: &Outcome) -> Vec<(K, String)> {
        let mut found: Vec<_> = outcome
            .discrepancies
            .iter()
            .map(|d| {
                let id = d
                    .ours
                    .as_ref()
                    .map(|o| o.refund_id.clone().unwrap_or(o.payment_id.clone()))
                    .or_else(|| {
                        d.theirs
                            .as_ref()
                            .map(|t| t.refund_id.clone().unwrap_or(t.payment_id.clone()))
                    })
                    .unwrap();
                (d.kind, id)
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn a_day_that_agrees_has_nothing_to_report_and_equal_totals() {
        let mut paid = payment("pay_1", "succeeded", 1250, Some(NOON));
        paid.refunded_minor = 500;
        let ours = ours(
            vec![paid, payment("pay_2", "succeeded", 3000, Some(NOON + 1))],
            vec![refund("re_1", "pay_1", "succeeded", 500, NOON + 2)],
        );
        let bill = [
            entry(BillEntryKind::Payment, "pay_1", None, 1250, 8),
            entry(BillEntryKind::Payment, "pay_2", None, 3000, 18),
            entry(BillEntryKind::Refund, "pay_1", Some("re_1"), 500, 3),
        ];
        let outcome = run(&bill, &ours, &[]);
        assert!(
            outcome.discrepancies.is_empty(),
            "{:?}",
            outcome.discrepancies
        );
        assert_eq!(outcome.ours.payments, 2);
        assert_eq!(
            (outcome.ours.gross_minor, outcome.theirs.gross_minor),
            (4250, 4250)
        );
        assert_eq!(
            (outcome.ours.refunded_minor, outcome.theirs.refunded_minor),
            (500, 500)
        );
        assert_eq!(outcome.theirs.fees, Some(Decimal::new(23, 2)));
        assert!(outcome.late_matches.is_empty() && outcome.to_confirm.is_empty());
    }

    #[test]
    fn every_kind_is_found_with_its_objects() {
        let mut refunded = payment("pay_r", "succeeded", 2000, Some(NOON));
        refunded.refunded_minor = 1000;
        let ours = ours(
            vec![
                payment("pay_left_out", "succeeded", 1100, Some(NOON)),
                payment("pay_misstated", "succeeded", 1200, Some(NOON)),
                payment("pay_pending", "pending", 1300, None),
                payment("pay_failed", "failed", 1400, None),
                refunded,
                // Another merchant's payment the bill names is not ours to match.
                PaymentRecord {
                    merchant_id: "m_b".into(),
                    ..payment("pay_other", "succeeded", 1500, Some(NOON))
                },
            ],
            vec![
                refund("re_left_out", "pay_r", "succeeded", 400, NOON),
                refund("re_misstated", "pay_r", "succeeded", 300, NOON),
                refund("re_pending", "pay_r", "pending", 300, NOON),
            ],
        );
        let bill = [
            entry(BillEntryKind::Payment, "pay_theirs", None, 900, 5),
            entry(BillEntryKind::Payment, "pay_misstated", None, 1201, 7),
            entry(BillEntryKind::Payment, "pay_pending", None, 1300, 8),
            entry(BillEntryKind::Payment, "pay_failed", None, 1400, 8),
            entry(BillEntryKind::Payment, "pay_r", None, 2000, 12),
            entry(BillEntryKind::Payment, "pay_other", None, 1500, 9),
            entry(BillEntryKind::Refund, "pay_r", Some("re_misstated"), 301, 2),
            entry(BillEntryKind::Refund, "pay_r", Some("re_pending"), 300, 2),
            entry(BillEntryKind::Refund, "pay_r", Some("re_unknown"), 100, 1),
        ];
        let outcome = run(&bill, &ours, &[]);
        assert_eq!(
            kinds(&outcome),
            vec![
                (K::TheirsOnly, "pay_other".into()),
                (K::TheirsOnly, "pay_theirs".into()),
                (K::OursOnly, "pay_left_out".into()),
                (K::AmountMismatch, "pay_misstated".into()),
                (K::StatusMismatch, "pay_pending".into()),
                (K::StrayCharge, "pay_failed".into()),
                (K::MissingRefund, "re_left_out".into()),
                (K::RefundTheirsOnly, "re_unknown".into()),
                (K::RefundAmountMismatch, "re_misstated".into()),
                (K::RefundStatusMismatch, "re_pending".into()),
            ]
        );
        assert_eq!(outcome.to_confirm, ["pay_pending"]);
        let ids: Vec<&str> = outcome
            .discrepancies
            .iter()
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(ids.first().copied(), Some("dsc_00001"));
        assert_eq!(ids.len(), 10);
        let misstated = outcome
            .discrepancies
            .iter()
            .find(|d| d.kind == K::AmountMismatch)
            .unwrap();
        assert_eq!(
            (
                misstated.ours.as_ref().unwrap().amount_minor,
                misstated.theirs.as_ref().unwrap().amount_minor
            ),
            (1200, 1201)
        );
    }

    #[test]
    fn a_payment_recorded_after_midnight_is_a_late_match_the_next_day_does_not_expect() {
        let late = payment("pay_late", "succeeded", 1000, Some(DAY.end_ms + 900));
        let bill = [entry(BillEntryKind::Payment, "pay_late", None, 1000, 6)];
        let outcome = run(&bill, &ours(vec![late.clone()], vec![]), &[]);
        assert!(outcome.discrepancies.is_empty());
        assert_eq!(outcome.late_matches, ["pay_late"]);
        assert_eq!((outcome.ours.payments, outcome.ours.gross_minor), (1, 1000));
        // The next day: in its window by our clock, but already in the day before's bill.
        let next = Day {
            start_ms: DAY.end_ms,
            end_ms: DAY.end_ms + 86_400_000,
        };
        let next_day = reconcile(&Input {
            merchant_id: "m_a",
            provider: "alipay",
            exponent: 2,
            day: next,
            entries: &[],
            ours: &ours(vec![late.clone()], vec![]),
            previous_late: &["pay_late".to_string()].into_iter().collect(),
        });
        assert!(next_day.discrepancies.is_empty());
        assert_eq!(next_day.ours.payments, 0);
        // Without the day before's run, it is reported.
        let unknown = reconcile(&Input {
            merchant_id: "m_a",
            provider: "alipay",
            exponent: 2,
            day: next,
            entries: &[],
            ours: &ours(vec![late], vec![]),
            previous_late: &BTreeSet::new(),
        });
        assert_eq!(unknown.discrepancies[0].kind, K::OursOnly);
    }

    #[test]
    fn a_reversed_payment_agrees_and_a_partly_reversed_one_does_not() {
        let cancelled = payment("pay_rev", "cancelled", 1000, None);
        let bill = [
            entry(BillEntryKind::Payment, "pay_rev", None, 1000, 6),
            entry(
                BillEntryKind::Refund,
                "pay_rev",
                Some("reverse_pay_rev"),
                1000,
                6,
            ),
        ];
        let outcome = run(&bill, &ours(vec![cancelled.clone()], vec![]), &[]);
        assert!(
            outcome.discrepancies.is_empty(),
            "{:?}",
            outcome.discrepancies
        );
        let partly = [
            entry(BillEntryKind::Payment, "pay_rev", None, 1000, 6),
            entry(
                BillEntryKind::Refund,
                "pay_rev",
                Some("reverse_pay_rev"),
                600,
                4,
            ),
        ];
        let outcome = run(&partly, &ours(vec![cancelled], vec![]), &[]);
        assert_eq!(
            kinds(&outcome),
            vec![
                (K::StrayCharge, "pay_rev".into()),
                (K::RefundTheirsOnly, "reverse_pay_rev".into())
            ]
        );
    }

    #[test]
    fn amounts_at_another_exponent_compare_exactly() {
        let at = |minor, exponent| Money {
            minor,
            currency: "CNY".into(),
            exponent,
        };
        assert_eq!(minor_at(&at(12500, 3), 2), Some(1250));
        assert_eq!(minor_at(&at(12501, 3), 2), None);
        assert_eq!(minor_at(&at(125, 1), 2), Some(1250));
    }
}
