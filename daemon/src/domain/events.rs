//! Event kinds: the state changes the store records (API.md §9). Stored and delivered by
//! their names (`payment.succeeded`); matched in code as [`EventKind`], so adding a kind
//! shows every place that must know it.

use serde::{Deserialize, Serialize};

use super::state::{PaymentStatus, RefundStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "payment.created")]
    PaymentCreated,
    #[serde(rename = "payment.succeeded")]
    PaymentSucceeded,
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    #[serde(rename = "payment.cancelled")]
    PaymentCancelled,
    #[serde(rename = "payment.expired")]
    PaymentExpired,
    /// A provider reported a state that contradicts a final one; nothing changed.
    #[serde(rename = "payment.conflict")]
    PaymentConflict,
    #[serde(rename = "refund.created")]
    RefundCreated,
    #[serde(rename = "refund.succeeded")]
    RefundSucceeded,
    #[serde(rename = "refund.failed")]
    RefundFailed,
    #[serde(rename = "refund.conflict")]
    RefundConflict,
    #[serde(rename = "merchant.activation.updated")]
    ActivationUpdated,
    #[serde(rename = "bank_account.updated")]
    BankAccountUpdated,
    #[serde(rename = "alert.raised")]
    AlertRaised,
    /// A reconciliation run completed (API.md §14).
    #[serde(rename = "reconciliation.completed")]
    ReconciliationCompleted,
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Payment,
    Refund,
    Activation,
    BankAccount,
    Alert,
    Reconciliation,
}

impl EventKind {
    pub const ALL: [EventKind; 14] = [
        EventKind::PaymentCreated,
        EventKind::PaymentSucceeded,
        EventKind::PaymentFailed,
        EventKind::PaymentCancelled,
        EventKind::PaymentExpired,
        EventKind::PaymentConflict,
        EventKind::RefundCreated,
        EventKind::RefundSucceeded,
        EventKind::RefundFailed,
        EventKind::RefundConflict,
        EventKind::ActivationUpdated,
        EventKind::BankAccountUpdated,
        EventKind::AlertRaised,
        EventKind::ReconciliationCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PaymentCreated => "payment.created",
            EventKind::PaymentSucceeded => "payment.succeeded",
            EventKind::PaymentFailed => "payment.failed",
            EventKind::PaymentCancelled => "payment.cancelled",
            EventKind::PaymentExpired => "payment.expired",
            EventKind::PaymentConflict => "payment.conflict",
            EventKind::RefundCreated => "refund.created",
            EventKind::RefundSucceeded => "refund.succeeded",
            EventKind::RefundFailed => "refund.failed",
            EventKind::RefundConflict => "refund.conflict",
            EventKind::ActivationUpdated => "merchant.activation.updated",
            EventKind::BankAccountUpdated => "bank_account.updated",
            EventKind::AlertRaised => "alert.raised",
            EventKind::ReconciliationCompleted => "reconciliation.completed",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether webhook endpoints receive it (API.md §9). The others stay in process: the
    /// monitor turns conflicts into alerts.
    pub fn is_webhook(self) -> bool {
        !matches!(
            self,
            EventKind::PaymentCreated
                | EventKind::PaymentConflict
                | EventKind::RefundCreated
                | EventKind::RefundConflict
        )
    }

    pub fn object(self) -> ObjectKind {
        match self {
            EventKind::PaymentCreated
            | EventKind::PaymentSucceeded
            | EventKind::PaymentFailed
            | EventKind::PaymentCancelled
            | EventKind::PaymentExpired
            | EventKind::PaymentConflict => ObjectKind::Payment,
            EventKind::RefundCreated
            | EventKind::RefundSucceeded
            | EventKind::RefundFailed
            | EventKind::RefundConflict => ObjectKind::Refund,
            EventKind::ActivationUpdated => ObjectKind::Activation,
            EventKind::BankAccountUpdated => ObjectKind::BankAccount,
            EventKind::AlertRaised => ObjectKind::Alert,
            EventKind::ReconciliationCompleted => ObjectKind::Reconciliation,
        }
    }

    /// The event of a payment reaching `status` (`pending` is its creation).
    pub fn of_payment(status: PaymentStatus) -> EventKind {
        match status {
            PaymentStatus::Pending => EventKind::PaymentCreated,
            PaymentStatus::Succeeded => EventKind::PaymentSucceeded,
            PaymentStatus::Failed => EventKind::PaymentFailed,
            PaymentStatus::Cancelled => EventKind::PaymentCancelled,
            PaymentStatus::Expired => EventKind::PaymentExpired,
        }
    }

    /// The event of a refund reaching `status` (`pending` is its creation).
    pub fn of_refund(status: RefundStatus) -> EventKind {
        match status {
            RefundStatus::Pending => EventKind::RefundCreated,
            RefundStatus::Succeeded => EventKind::RefundSucceeded,
            RefundStatus::Failed => EventKind::RefundFailed,
        }
    }

    /// The kinds delivered to webhooks, by name (for the config's `events` lists).
    pub fn webhook_names() -> Vec<&'static str> {
        EventKind::ALL
            .into_iter()
            .filter(|k| k.is_webhook())
            .map(EventKind::as_str)
            .collect()
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_stored_and_parsed_by_its_name() {
        for kind in EventKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind);
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("payment.pending"), None);
        assert!(serde_json::from_str::<EventKind>("\"payment.bogus\"").is_err());
    }

    #[test]
    fn creations_and_conflicts_stay_in_process() {
        assert_eq!(
            EventKind::webhook_names(),
            [
                "payment.succeeded",
                "payment.failed",
                "payment.cancelled",
                "payment.expired",
                "refund.succeeded",
                "refund.failed",
                "merchant.activation.updated",
                "bank_account.updated",
                "alert.raised",
                "reconciliation.completed",
            ]
        );
        assert_eq!(
            EventKind::of_payment(PaymentStatus::Expired),
            EventKind::PaymentExpired
        );
        assert_eq!(
            EventKind::of_refund(RefundStatus::Failed).object(),
            ObjectKind::Refund
        );
    }
}
