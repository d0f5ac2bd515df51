//! Event kinds: the names of the state changes the store records (API.md §9).

/// The event kinds delivered to webhook endpoints (API.md §9). Others (`payment.created`,
/// `payment.conflict`, ...) stay in process: the monitor turns conflicts into alerts.
pub const WEBHOOK_EVENT_TYPES: &[&str] = &[
    "payment.succeeded",
    "payment.failed",
    "payment.cancelled",
    "payment.expired",
    "refund.succeeded",
    "refund.failed",
    "merchant.activation.updated",
    "bank_account.updated",
    "alert.raised",
];

pub fn is_webhook_type(kind: &str) -> bool {
    WEBHOOK_EVENT_TYPES.contains(&kind)
}
