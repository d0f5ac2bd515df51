//! The state machines (API.md §5, §6, §8): payments, refunds, and merchants' activations
//! and bank accounts; the legal moves in one function each. Terminal states never change; a provider report that contradicts one is a
//! conflict for the anomaly monitor, never a change.

use serde::{Deserialize, Serialize};

/// Where a payment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
}

/// What happens when something reports a new status for a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A legal move: apply it.
    Move,
    /// The payment is already there: nothing to do (a duplicate report).
    Same,
    /// The payment is terminal and the report contradicts it: change nothing, raise a
    /// conflict event.
    Conflict,
}

impl PaymentStatus {
    /// The status named `text` (`as_str`'s inverse).
    pub fn parse(text: &str) -> Option<PaymentStatus> {
        use PaymentStatus::*;
        [Pending, Succeeded, Failed, Cancelled, Expired]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        self != PaymentStatus::Pending
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Cancelled => "cancelled",
            PaymentStatus::Expired => "expired",
        }
    }

    /// The one place that decides whether `self -> to` is allowed.
    pub fn transition(self, to: PaymentStatus) -> Transition {
        use PaymentStatus::*;
        match (self, to) {
            (from, to) if from == to => Transition::Same,
            (Pending, Succeeded | Failed | Cancelled | Expired) => Transition::Move,
            // Nothing returns to pending: a "still pending" report about an ended payment is
            // stale, not a contradiction.
            (_, Pending) => Transition::Same,
            // Failed, cancelled and expired all mean "no money moved": a provider that calls
            // our expired payment closed (cancelled) agrees with us.
            (Failed | Cancelled | Expired, Failed | Cancelled | Expired) => Transition::Same,
            // Paid against unpaid, either way: terminal states are final; raise it.
            _ => Transition::Conflict,
        }
    }
}

/// Where a refund is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
}

impl RefundStatus {
    pub fn is_terminal(self) -> bool {
        self != RefundStatus::Pending
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }

    /// The one place that decides whether `self -> to` is allowed.
    pub fn transition(self, to: RefundStatus) -> Transition {
        use RefundStatus::*;
        match (self, to) {
            (from, to) if from == to => Transition::Same,
            (Pending, Succeeded | Failed) => Transition::Move,
            // A stale "still processing" report about an ended refund.
            (_, Pending) => Transition::Same,
            _ => Transition::Conflict,
        }
    }

    /// Whether the refund counts against the payment's refundable amount: every refund that
    /// has not failed (a pending one may still succeed).
    pub fn holds_funds(self) -> bool {
        self != RefundStatus::Failed
    }
}

/// What a provider's report about one object came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// No such object here.
    Unknown,
    /// The object belongs to another merchant or provider than the one reporting: nothing
    /// changed.
    Foreign,
    /// The provider reports another amount than ours: nothing changed.
    AmountMismatch { ours: String, reported: String },
    /// The state machine's decision (a move, a repeat or a contradiction).
    Decided(Transition),
    /// The object is archived (final, past the retention) and the report contradicts its
    /// state: nothing changed (the archive is not written again).
    ArchivedConflict { ours: String, reported: String },
}

impl Observed {
    pub fn moved(&self) -> bool {
        *self == Observed::Decided(Transition::Move)
    }
}

/// Where a merchant onboarded through the API is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MerchantStatus {
    /// Created; its materials may still change.
    Draft,
    /// Applied to at least one provider, active at none yet.
    Onboarding,
    /// Active at a provider at least.
    Active,
}

impl MerchantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MerchantStatus::Draft => "draft",
            MerchantStatus::Onboarding => "onboarding",
            MerchantStatus::Active => "active",
        }
    }
}

/// Where a merchant's application to a provider is. It moves forward only: submitted, under
/// review, then active or rejected (finished; only a resubmission reopens a rejection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationStatus {
    Submitted,
    UnderReview,
    Active,
    Rejected,
}

impl ActivationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationStatus::Submitted => "submitted",
            ActivationStatus::UnderReview => "under_review",
            ActivationStatus::Active => "active",
            ActivationStatus::Rejected => "rejected",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, ActivationStatus::Active | ActivationStatus::Rejected)
    }

    fn step(self) -> u8 {
        match self {
            ActivationStatus::Submitted => 0,
            ActivationStatus::UnderReview => 1,
            ActivationStatus::Active | ActivationStatus::Rejected => 2,
        }
    }

    /// What a report of `to` does: a later step moves it; a repeat or a stale report of an
    /// earlier step is nothing; the other outcome of a finished application contradicts it.
    pub fn transition(self, to: ActivationStatus) -> Transition {
        if to.step() > self.step() {
            Transition::Move
        } else if self.is_finished() && to.is_finished() && self != to {
            Transition::Conflict
        } else {
            Transition::Same
        }
    }
}

/// Where a settlement bank account is at its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankAccountStatus {
    PendingVerification,
    Verified,
    Failed,
}

impl BankAccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BankAccountStatus::PendingVerification => "pending_verification",
            BankAccountStatus::Verified => "verified",
            BankAccountStatus::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYMENT_STATES: [PaymentStatus; 5] = [
        PaymentStatus::Pending,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
        PaymentStatus::Cancelled,
        PaymentStatus::Expired,
    ];

    #[test]
    fn only_pending_payments_move_and_only_paid_vs_unpaid_is_a_conflict() {
        for from in PAYMENT_STATES {
            for to in PAYMENT_STATES {
                let paid = |s| s == PaymentStatus::Succeeded;
                let expected = if from == to {
                    Transition::Same
                } else if from == PaymentStatus::Pending {
                    Transition::Move
                } else if to == PaymentStatus::Pending || paid(from) == paid(to) {
                    // Stale "pending", or two ways of saying "no money moved".
                    Transition::Same
                } else {
                    Transition::Conflict
                };
                assert_eq!(from.transition(to), expected, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn refunds_move_once_and_failed_ones_release_funds() {
        use RefundStatus::*;
        assert_eq!(Pending.transition(Succeeded), Transition::Move);
        assert_eq!(Pending.transition(Failed), Transition::Move);
        assert_eq!(Succeeded.transition(Failed), Transition::Conflict);
        assert_eq!(Failed.transition(Succeeded), Transition::Conflict);
        assert_eq!(Failed.transition(Pending), Transition::Same);
        assert_eq!(Succeeded.transition(Succeeded), Transition::Same);
        assert!(Pending.holds_funds() && Succeeded.holds_funds() && !Failed.holds_funds());
    }

    #[test]
    fn an_activation_moves_forward_only_and_a_finished_one_is_not_contradicted() {
        use ActivationStatus::*;
        assert_eq!(Submitted.transition(UnderReview), Transition::Move);
        assert_eq!(Submitted.transition(Active), Transition::Move);
        assert_eq!(UnderReview.transition(Rejected), Transition::Move);
        assert_eq!(UnderReview.transition(Submitted), Transition::Same);
        assert_eq!(Active.transition(UnderReview), Transition::Same);
        assert_eq!(Active.transition(Active), Transition::Same);
        assert_eq!(Active.transition(Rejected), Transition::Conflict);
        assert_eq!(Rejected.transition(Active), Transition::Conflict);
        for status in [Submitted, UnderReview, Active, Rejected] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(
            serde_json::to_string(&BankAccountStatus::PendingVerification).unwrap(),
            "\"pending_verification\""
        );
        assert_eq!(
            serde_json::to_string(&MerchantStatus::Draft).unwrap(),
            "\"draft\""
        );
    }
}
