//! Provider notices (API.md §7): a wallet's asynchronous report about payments, refunds,
//! activations and bank accounts, verified by its plugin and dispatched to the payments and
//! onboarding use cases. Above both, so that neither needs the other.

use crate::domain::state::{Observed, Transition};
use crate::merchants::onboarding::{self, Onboarding};
use crate::merchants::{Merchant, MerchantSource};
use crate::payments::service::{
    Payments, Sender, merchant_for, observe_refund_status, observe_status, report_refused,
    status_of,
};
use crate::plugins::CallError;
use crate::plugins::types as wit;
use crate::store::{Fence, StoreError};

/// What a provider notice did, for the reply and for tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NoticeOutcome {
    pub applied: usize,
    pub duplicates: usize,
    pub conflicts: usize,
    pub unknown: usize,
    /// Updates naming an object of another merchant or provider, or reporting another amount
    /// than ours: acknowledged like unknown objects, but nothing changed and an alert is raised.
    pub refused: usize,
}

impl NoticeOutcome {
    fn count(&mut self, observed: &Observed) {
        match observed {
            Observed::Unknown => self.unknown += 1,
            Observed::Foreign
            | Observed::AmountMismatch { .. }
            | Observed::ArchivedConflict { .. } => self.refused += 1,
            Observed::Decided(Transition::Move) => self.applied += 1,
            Observed::Decided(Transition::Same) => self.duplicates += 1,
            Observed::Decided(Transition::Conflict) => self.conflicts += 1,
        }
    }
}

/// `POST /v1/notify/{provider}/{merchant_id}`: the plugin verifies and interprets the notice;
/// verified changes are applied idempotently. Returns the plugin's reply and what changed,
/// or the rejection (nothing changes).
///
/// A notice may change only objects of the merchant in its URL and of the provider whose
/// plugin verified it; each update is judged on its own, and one naming anything else is
/// acknowledged (so the provider stops retrying) but changes nothing and raises an alert.
pub async fn handle_notice(
    payments: &Payments,
    onboarding: &Onboarding,
    provider: &str,
    merchant_id: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Result<(wit::Reply, NoticeOutcome), NoticeError> {
    let platform_serves = || {
        payments
            .merchants
            .platform()
            .is_some_and(|p| p.providers.contains_key(provider))
    };
    let serves = |m: &Merchant| {
        m.providers.contains_key(provider) || (m.source == MerchantSource::Api && platform_serves())
    };
    if !payments
        .merchants
        .get(merchant_id)
        .is_some_and(|m| serves(&m))
    {
        return Err(NoticeError::UnknownRecipient);
    }
    let merchant =
        merchant_for(payments, provider, merchant_id).map_err(|_| NoticeError::UnknownRecipient)?;
    let notice = wit::Notification {
        provider: provider.to_owned(),
        merchant,
        headers,
        body,
    };
    let verified = match payments.plugins.parse_notification(notice).await {
        Ok(Ok(verified)) => verified,
        Ok(Err(rejected)) => return Err(NoticeError::Rejected(rejected)),
        Err(e) => return Err(NoticeError::Plugin(e)),
    };
    let sender = Some(Sender {
        merchant_id,
        provider,
        reports_amounts: payments.plugins.reports_amounts(provider),
    });
    let mut outcome = NoticeOutcome::default();
    for update in &verified.updates {
        let (kind, object_id, observed) = match update {
            wit::Update::Payment(u) => {
                let to = status_of(u.outcome.status);
                let observed = observe_status(
                    payments,
                    Fence::Unleased,
                    &u.payment_id,
                    sender,
                    to,
                    &u.outcome,
                    "notification",
                )
                .await
                .map_err(NoticeError::Store)?;
                ("payment", u.payment_id.as_str(), observed)
            }
            wit::Update::Refund(u) => {
                let observed = observe_refund_status(
                    payments,
                    Fence::Unleased,
                    &u.refund_id,
                    sender,
                    &u.outcome,
                )
                .await
                .map_err(NoticeError::Store)?;
                ("refund", u.refund_id.as_str(), observed)
            }
            wit::Update::Onboarding(u) => {
                let observed = onboarding::apply_onboarding(
                    onboarding,
                    &notice_actor(provider),
                    &u.activation_id,
                    Some((merchant_id, provider)),
                    &u.outcome,
                )
                .await
                .map_err(NoticeError::Onboarding)?;
                ("activation", u.activation_id.as_str(), observed)
            }
            wit::Update::Binding(u) => {
                let observed = onboarding::apply_binding(
                    onboarding,
                    &notice_actor(provider),
                    &u.bank_account_id,
                    Some((merchant_id, provider)),
                    &u.outcome,
                )
                .await
                .map_err(NoticeError::Onboarding)?;
                ("bank_account", u.bank_account_id.as_str(), observed)
            }
        };
        outcome.count(&observed);
        report_refused(payments, provider, merchant_id, kind, object_id, &observed);
    }
    payments.store.durable().await.map_err(NoticeError::Store)?;
    Ok((verified.reply, outcome))
}

fn notice_actor(provider: &str) -> onboarding::Actor {
    onboarding::Actor {
        key_id: format!("provider:{provider}"),
        source: "notification".into(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    #[error("no such merchant or wallet for notices")]
    UnknownRecipient,
    #[error("the notice did not verify: {}", .0.reason)]
    Rejected(wit::NotificationRejected),
    #[error(transparent)]
    Plugin(CallError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Onboarding(onboarding::OnboardingError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::method::Method;
    use crate::domain::state::PaymentStatus;
    use crate::payments::service::create_payment;
    use crate::testkit::{Harness, MERCHANT, PROVIDER, new_payment, paid, render_payment};

    fn reply() -> wit::Reply {
        wit::Reply {
            status: 200,
            content_type: "text/plain".into(),
            body: b"success".to_vec(),
        }
    }

    fn cny(minor: i64) -> wit::Money {
        wit::Money {
            minor,
            currency: "CNY".into(),
            exponent: 2,
        }
    }

    fn payment_notice(h: &Harness, id: &str, status: wit::PaymentStatus, minor: i64) {
        h.provider.next_notice(Ok(Ok(wit::NotificationResult {
            updates: vec![wit::Update::Payment(wit::PaymentUpdate {
                payment_id: id.into(),
                outcome: paid(status, &cny(minor)),
            })],
            reply: reply(),
        })));
    }

    async fn notify(h: &Harness, merchant: &str) -> Result<NoticeOutcome, NoticeError> {
        handle_notice(
            &h.payments,
            &h.onboarding,
            PROVIDER,
            merchant,
            Vec::new(),
            b"{}".to_vec(),
        )
        .await
        .map(|(_, outcome)| outcome)
    }

    async fn pending_qr(h: &Harness) -> String {
        h.provider
            .next_payment(Ok(Ok(paid(wit::PaymentStatus::Pending, &cny(500)))));
        let answer = create_payment(
            &h.payments,
            &h.caller,
            h.claim("k1"),
            new_payment("5.00", Method::Qr),
            &render_payment,
        )
        .await
        .unwrap();
        answer.body.split(' ').next().unwrap().to_owned()
    }

    #[tokio::test]
    async fn a_notice_applies_once_and_a_contradicting_one_changes_nothing() {
        let h = Harness::new();
        let id = pending_qr(&h).await;

        payment_notice(&h, &id, wit::PaymentStatus::Succeeded, 500);
        let first = notify(&h, MERCHANT).await.unwrap();
        assert_eq!(first.applied, 1);
        assert_eq!(h.payment(&id).status, PaymentStatus::Succeeded);

        payment_notice(&h, &id, wit::PaymentStatus::Succeeded, 500);
        assert_eq!(notify(&h, MERCHANT).await.unwrap().duplicates, 1);

        payment_notice(&h, &id, wit::PaymentStatus::Failed, 500);
        assert_eq!(notify(&h, MERCHANT).await.unwrap().conflicts, 1);
        assert_eq!(h.payment(&id).status, PaymentStatus::Succeeded);
    }

    #[tokio::test]
    async fn a_notice_with_another_amount_or_an_unknown_object_changes_nothing() {
        let h = Harness::new();
        let id = pending_qr(&h).await;

        payment_notice(&h, &id, wit::PaymentStatus::Succeeded, 1);
        let outcome = notify(&h, MERCHANT).await.unwrap();
        assert_eq!(outcome.refused, 1);
        assert_eq!(h.payment(&id).status, PaymentStatus::Pending);

        payment_notice(&h, "pay_nobody", wit::PaymentStatus::Succeeded, 500);
        assert_eq!(notify(&h, MERCHANT).await.unwrap().unknown, 1);
    }

    #[tokio::test]
    async fn a_notice_for_a_merchant_that_does_not_take_the_provider_is_refused_unread() {
        let h = Harness::new();
        let err = notify(&h, "m_other").await.unwrap_err();
        assert!(matches!(err, NoticeError::UnknownRecipient), "{err:?}");
        assert!(h.provider.calls().is_empty(), "the plugin never saw it");
    }
}
