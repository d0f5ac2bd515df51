//! A reconciliation: a merchant's books against one provider's trade bill for one day (the
//! provider's day: China time for Alipay and WeChat Pay), with what each side counts and
//! every disagreement found. Stored as it was found; a discrepancy is later marked resolved
//! (a stray charge refunded or accepted) without rewriting what was found.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Where a reconciliation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconciliationStatus {
    /// The bill was read and matched.
    Completed,
    /// The provider has not published the day's bill yet (the schedule asks again).
    BillNotReady,
}

/// Where the bill came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillSource {
    /// Downloaded from the provider (`fetch-bill`).
    Download,
    /// Uploaded by the merchant, as downloaded from the provider's portal.
    Upload,
    /// The provider said it has no bill: nothing happened that day.
    None,
}

/// What one side counts for the day. Amounts in the currency's minor units; fees exactly
/// (providers state them below the fen).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub payments: u64,
    pub gross_minor: i64,
    pub refunds: u64,
    pub refunded_minor: i64,
    /// Fees charged less fees given back, in major units; `None` where this side does not
    /// know them (our side, until each payment records its fee).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fees: Option<Decimal>,
}

impl Totals {
    /// What is to be settled: gross less refunds, less fees when known.
    pub fn net(&self, exponent: u8) -> Decimal {
        let flows = Decimal::try_new(
            self.gross_minor.saturating_sub(self.refunded_minor),
            u32::from(exponent),
        )
        .unwrap_or_default();
        flows.saturating_sub(self.fees.unwrap_or_default())
    }
}

/// The kinds of disagreement, fixed (API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscrepancyKind {
    /// A payment in the bill that the gateway does not have.
    TheirsOnly,
    /// A payment the gateway has as succeeded that the bill does not list.
    OursOnly,
    /// The bill states another amount for the payment.
    AmountMismatch,
    /// The bill lists as paid a payment the gateway had as pending; confirmed with a query
    /// and applied (`resolution: corrected`) when the provider says so.
    StatusMismatch,
    /// The bill lists as paid a payment the gateway has as failed, cancelled or expired:
    /// money taken for a payment the merchant was told did not go through. The payment
    /// stays as it is; the merchant refunds the charge at the provider or accepts it.
    StrayCharge,
    /// A refund the gateway has as succeeded that the bill does not list.
    MissingRefund,
    /// A refund in the bill that the gateway does not have.
    RefundTheirsOnly,
    /// The bill states another amount for the refund.
    RefundAmountMismatch,
    /// The bill lists as done a refund the gateway has as pending or failed.
    RefundStatusMismatch,
}

impl DiscrepancyKind {
    /// Money moved that the merchant does not know of, or was told had not.
    pub fn is_critical(self) -> bool {
        matches!(
            self,
            DiscrepancyKind::StrayCharge
                | DiscrepancyKind::TheirsOnly
                | DiscrepancyKind::RefundTheirsOnly
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DiscrepancyKind::TheirsOnly => "theirs_only",
            DiscrepancyKind::OursOnly => "ours_only",
            DiscrepancyKind::AmountMismatch => "amount_mismatch",
            DiscrepancyKind::StatusMismatch => "status_mismatch",
            DiscrepancyKind::StrayCharge => "stray_charge",
            DiscrepancyKind::MissingRefund => "missing_refund",
            DiscrepancyKind::RefundTheirsOnly => "refund_theirs_only",
            DiscrepancyKind::RefundAmountMismatch => "refund_amount_mismatch",
            DiscrepancyKind::RefundStatusMismatch => "refund_status_mismatch",
        }
    }
}

/// A bill's row as the discrepancy shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillRow {
    /// `payment` or `refund`.
    pub kind: String,
    pub payment_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<String>,
    pub amount_minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

/// Our object as the discrepancy shows it: its id, and status and amount when we have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OurObject {
    pub payment_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    pub status: String,
    pub amount_minor: i64,
}

/// How a discrepancy was settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// `corrected` (the run confirmed it and applied the provider's state), `refunded` or
    /// `accepted` (a stray charge, by the merchant).
    pub action: String,
    pub at_ms: i64,
    /// The API key that resolved it (none when the run corrected it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discrepancy {
    /// `dsc_00001`...: its place in its run, the cursor of the run's list.
    #[serde(default)]
    pub id: String,
    pub kind: DiscrepancyKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ours: Option<OurObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theirs: Option<BillRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

/// The bill a reconciliation read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillInfo {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationRecord {
    /// `rec_...`.
    pub id: String,
    pub merchant_id: String,
    pub provider: String,
    /// The provider's bill day, `YYYY-MM-DD`.
    pub date: String,
    pub currency: String,
    pub status: ReconciliationStatus,
    pub source: BillSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill: Option<BillInfo>,
    /// The provider's words when its bill is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub ours: Totals,
    pub theirs: Totals,
    pub discrepancies: Vec<Discrepancy>,
    /// Payments in this bill that we recorded as paid only after the day ended (the
    /// provider's time is earlier than ours): the next day's run does not expect them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub late_matches: Vec<String>,
    pub created_at_ms: i64,
    /// The API key that asked for it (none for the schedule's runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// Numbered by the store, as a payment's.
    #[serde(default)]
    pub version: u64,
}
