//! Faults injected for the next N calls of a provider (`POST /_sim/{provider}/faults`).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer normally, `delay_ms` late.
    Delay,
    /// Carry the request out, but answer only after `delay_ms` (default 30 s): longer than
    /// a client waits, so the caller cannot know the outcome.
    Timeout,
    /// Answer 500 without carrying the request out.
    #[serde(rename = "http_500")]
    Http500,
    /// Carry the request out, then answer a body that is not the protocol's.
    Malformed,
    /// Carry the request out, then sign the answer with the wrong key.
    BadSignature,
    /// Send the next notification twice.
    DuplicateNotification,
    /// Send the next notification `delay_ms` late.
    LateNotification,
    /// Send the next notification, validly signed, stating `amount_minor` (default 1: 0.01)
    /// as its amount instead of the true one: the order's (Alipay `total_amount` and
    /// `receipt_amount`, WeChat Pay `amount.total` and `payer_total`) in a payment notice,
    /// the refund's (`amount.refund` and `payer_refund`) in a refund notice. The ledger and
    /// the API answers keep the true amounts.
    WrongAmountNotification,
    /// The card acquirer only: the next authorization is declined (insufficient funds).
    Decline,
}

impl FaultKind {
    /// Whether the fault concerns notifications rather than API answers.
    pub fn is_notification(self) -> bool {
        matches!(
            self,
            FaultKind::DuplicateNotification
                | FaultKind::LateNotification
                | FaultKind::WrongAmountNotification
        )
    }
}

/// The control request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    pub kind: FaultKind,
    /// How many calls (or notifications) it applies to; default 1.
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// For `wrong_amount_notification`: the amount to state, in minor units.
    #[serde(default)]
    pub amount_minor: Option<i64>,
}

fn one() -> u32 {
    1
}

/// The faults pending for one provider, applied in the order they were injected.
#[derive(Debug, Default)]
pub struct Faults {
    pending: Vec<FaultRequest>,
}

/// A fault taken for one call.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub kind: FaultKind,
    pub delay: Duration,
    /// The amount a `wrong_amount_notification` states, in minor units.
    pub amount_minor: i64,
}

impl Faults {
    pub fn add(&mut self, request: FaultRequest) {
        if request.count > 0 {
            self.pending.push(request);
        }
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Takes the first pending fault of the right family (API answer or notification).
    pub fn take(&mut self, notification: bool) -> Option<Fault> {
        let index = self
            .pending
            .iter()
            .position(|f| f.kind.is_notification() == notification)?;
        let fault = &mut self.pending[index];
        fault.count -= 1;
        let taken = Fault {
            kind: fault.kind,
            delay: Duration::from_millis(fault.delay_ms.unwrap_or(match fault.kind {
                FaultKind::Timeout => 30_000,
                _ => 2_000,
            })),
            amount_minor: fault.amount_minor.unwrap_or(1),
        };
        if fault.count == 0 {
            self.pending.remove(index);
        }
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_their_documented_names() {
        for name in [
            "delay",
            "timeout",
            "http_500",
            "malformed",
            "bad_signature",
            "duplicate_notification",
            "late_notification",
            "wrong_amount_notification",
            "decline",
        ] {
            let parsed: FaultRequest =
                serde_json::from_value(serde_json::json!({"kind": name})).unwrap();
            assert_eq!(parsed.count, 1, "{name}");
        }
        assert!(
            serde_json::from_value::<FaultRequest>(serde_json::json!({"kind": "http500"})).is_err()
        );
    }

    #[test]
    fn faults_apply_in_order_for_their_count_and_by_family() {
        let mut faults = Faults::default();
        faults.add(FaultRequest {
            kind: FaultKind::Http500,
            count: 2,
            delay_ms: None,
            amount_minor: None,
        });
        faults.add(FaultRequest {
            kind: FaultKind::LateNotification,
            count: 1,
            delay_ms: Some(5),
            amount_minor: None,
        });
        faults.add(FaultRequest {
            kind: FaultKind::Malformed,
            count: 1,
            delay_ms: None,
            amount_minor: None,
        });
        faults.add(FaultRequest {
            kind: FaultKind::WrongAmountNotification,
            count: 1,
            delay_ms: None,
            amount_minor: None,
        });
        assert_eq!(faults.take(true).unwrap().kind, FaultKind::LateNotification);
        let wrong = faults.take(true).unwrap();
        assert_eq!(
            (wrong.kind, wrong.amount_minor),
            (FaultKind::WrongAmountNotification, 1)
        );
        assert_eq!(faults.take(true).map(|f| f.kind), None);
        assert_eq!(faults.take(false).unwrap().kind, FaultKind::Http500);
        assert_eq!(faults.take(false).unwrap().kind, FaultKind::Http500);
        assert_eq!(faults.take(false).unwrap().kind, FaultKind::Malformed);
        assert!(faults.take(false).is_none());
    }
}
