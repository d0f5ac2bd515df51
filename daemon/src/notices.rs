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
use crate::store::StoreError;

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
            Observed::Foreign | Observed::AmountMismatch { .. } => self.refused += 1,
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
                    &u.payment_id,
                    sender,
                    to,
                    &u.outcome,
                    "notification",
                )
                .map_err(NoticeError::Store)?;
                ("payment", u.payment_id.as_str(), observed)
            }
            wit::Update::Refund(u) => {
                let observed = observe_refund_status(payments, &u.refund_id, sender, &u.outcome)
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
