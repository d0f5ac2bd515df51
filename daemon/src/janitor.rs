//! The janitor (Kill Bill's Janitor): a background task that resolves pending payments by
//! asking their provider, on a bounded schedule.
//!
//! - A pending payment whose outcome the provider holds (answered, or unknown after a timeout
//!   or a crash) is queried every `janitor_interval_ms`.
//! - A barcode payment still pending after `barcode_timeout_ms` ("user paying" that never
//!   ended) is cancelled at the provider, and so is a wallet-token payment (its token is
//!   never stored, so only its request can create it); a qr payment past `expires_at` is closed at the
//!   provider and marked `expired`. If the provider says it was paid after all, it succeeded.
//! - A payment still at `NotSent` is queried too: the daemon may have died while the create
//!   was on its way, so "not sent" only means "no answer recorded". A query never charges.
//!
//! - A link payment whose payer never picked a wallet has no provider to ask: past
//!   `expires_at` it expires here.
//! - Pending refunds are queried the same way.
//! - A few times per retention period (at most once a minute), finished idempotency keys older than `idempotency_retention_s` are
//!   forgotten (keys still in progress are kept: a retry must be able to resume them).
//!
//! Provider answers that are unavailable or unknown change nothing: the next sweep asks again.
//! Each sweep reports to the metrics when it finished, the oldest payment it left pending and
//! how many it left past their schedule (the alert rules in `ops/prometheus/` watch them).

use std::sync::Arc;
use std::time::Duration;

use crate::domain::method::Method;
use crate::domain::records::PaymentRecord;
use crate::domain::state::PaymentStatus;
use crate::leases::{Renewing, renewing};
use crate::merchants::onboarding::{self, Onboarding};
use crate::payments::service::{
    PaymentError, Payments, end_locally, observe_refund_status, observe_status, payment_ref,
    refund_ref, report_refused, status_of,
};
use crate::store::{Fence, Leased, Pending};

/// `[payments]` as the janitor reads it.
#[derive(Debug, Clone)]
pub struct JanitorSettings {
    /// How often it sweeps; also how young a payment is left to the request creating it.
    pub interval: Duration,
    /// A barcode payment pending longer is cancelled at its provider.
    pub barcode_timeout_ms: i64,
    /// Finished idempotency keys older than this are forgotten.
    pub idempotency_retention_ms: i64,
}

/// Runs sweeps forever (the task ends with the runtime).
pub fn spawn(payments: Arc<Payments>, onboarding: Arc<Onboarding>, settings: JanitorSettings) {
    payments.metrics.set_janitor_interval(settings.interval);
    tokio::spawn(async move {
        let interval = settings.interval;
        let mut last_expiry = payments.clock.now_ms();
        // Look for old keys a few times per retention period, at most once a minute.
        let expiry_every_ms =
            (settings.idempotency_retention_ms / 4).clamp(interval.as_millis() as i64, 60_000);
        loop {
            tokio::time::sleep(interval).await;
            if let Err(e) = sweep(&payments, &settings).await {
                tracing::warn!(error = %e, "janitor sweep failed; retrying next interval");
            }
            if let Err(e) = onboarding::sweep(&onboarding).await {
                tracing::warn!(error = %e, "onboarding sweep failed; retrying next interval");
            }
            let now = payments.clock.now_ms();
            if now - last_expiry >= expiry_every_ms {
                last_expiry = now;
                if let Err(e) = expire_keys(&payments, &settings).await {
                    tracing::warn!(error = %e, "idempotency key expiry failed; retrying later");
                }
            }
        }
    });
}

/// Forgets finished idempotency keys past their retention. Returns how many.
pub async fn expire_keys(
    payments: &Payments,
    settings: &JanitorSettings,
) -> Result<usize, crate::store::StoreError> {
    let removed = payments
        .store
        .expire_idempotency_keys(payments.clock.now_ms() - settings.idempotency_retention_ms)
        .await?;
    if removed > 0 {
        tracing::info!(removed, "expired idempotency keys past their retention");
    }
    Ok(removed)
}

/// How many records the janitor leases at a time (for the store's lease, renewed every third
/// of it while it works on them).
const PAGE: usize = 100;

/// What a sweep saw, for the metrics: the oldest payment still pending, and those past their
/// schedule that it could not end.
#[derive(Default)]
struct Tally {
    oldest_pending_ms: Option<i64>,
    overdue: usize,
}

impl Tally {
    fn still_pending(&mut self, created_at_ms: i64) {
        self.oldest_pending_ms = Some(
            self.oldest_pending_ms
                .map_or(created_at_ms, |o| o.min(created_at_ms)),
        );
    }
}

/// One pass over the pending payments and refunds. Returns how many it changed.
///
/// Where several daemons share the store, each pass leases its records a page at a time
/// (records another daemon holds are left to it), keeps the lease while it works, presents it
/// with each change it makes (`Fence::Janitor`) and gives the page back when done; so a
/// record is worked by one janitor at a time, and a dead daemon's records are taken up once
/// their lease has run out.
pub async fn sweep(
    payments: &Payments,
    settings: &JanitorSettings,
) -> Result<usize, crate::store::StoreError> {
    let mut tally = Tally::default();
    let mut changed = sweep_list(payments, settings, Pending::Payments, &mut tally).await?;
    payments.metrics.janitor_swept(
        payments.clock.now_ms(),
        tally.oldest_pending_ms,
        tally.overdue,
    );
    changed += sweep_list(payments, settings, Pending::Refunds, &mut tally).await?;
    payments.store.durable().await?;
    Ok(changed)
}

/// Works through `list` a leased page at a time. Returns how many records it changed.
async fn sweep_list(
    payments: &Payments,
    settings: &JanitorSettings,
    list: Pending,
    tally: &mut Tally,
) -> Result<usize, crate::store::StoreError> {
    let mut changed = 0;
    let mut after: Option<String> = None;
    loop {
        let page = payments
            .store
            .take_pending(list, after.as_deref(), PAGE, payments.store.lease_ms())
            .await?;
        let Some(last) = page.last() else {
            return Ok(changed);
        };
        after = Some(last.id.clone());
        let shared = payments.store.shared();
        let mut failed = None;
        {
            let _renewing = shared.then(|| keep_leased(payments, list, &page));
            for leased in &page {
                let worked = match list {
                    Pending::Payments => sweep_payment(payments, settings, leased, tally).await,
                    Pending::Refunds => sweep_refund(payments, settings, leased).await,
                };
                match worked {
                    Ok(moved) => changed += usize::from(moved),
                    // Another daemon took it over (this one was paused past the lease).
                    Err(crate::store::StoreError::LeaseLost) => {}
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        if shared && let Err(e) = payments.store.release_pending(list, &page).await {
            // The work's own error says more; the leases run out by themselves.
            tracing::warn!(error = %e, "cannot give the janitor's leases back");
            failed.get_or_insert(e);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if page.len() < PAGE {
            return Ok(changed);
        }
    }
}

/// Renews the lease on `page` while the returned guard lives.
fn keep_leased(payments: &Payments, list: Pending, page: &[Leased]) -> Renewing {
    let (store, page) = (payments.store.clone(), page.to_vec());
    let lease_ms = payments.store.lease_ms();
    renewing(
        Duration::from_millis(lease_ms.max(3) as u64 / 3),
        move || {
            let (store, page) = (store.clone(), page.clone());
            async move {
                if let Err(e) = store.renew_pending(list, &page, lease_ms).await {
                    tracing::warn!(error = %e, "cannot renew the janitor's leases");
                }
                true
            }
        },
    )
}

/// Works on one leased pending payment. Returns whether it changed.
async fn sweep_payment(
    payments: &Payments,
    settings: &JanitorSettings,
    leased: &Leased,
    tally: &mut Tally,
) -> Result<bool, crate::store::StoreError> {
    let interval_ms = settings.interval.as_millis() as i64;
    let fence = Fence::Janitor(leased.token);
    let Some(payment) = payments.store.payment(&leased.id).await? else {
        return Ok(false);
    };
    let now = payments.clock.now_ms();
    if payment.status.is_terminal() {
        return Ok(false);
    }
    // Leave young payments to the request that is creating them.
    if now - payment.created_at_ms < interval_ms {
        tally.still_pending(payment.created_at_ms);
        return Ok(false);
    }
    let expired = payment.expires_at_ms.is_some_and(|at| now >= at);
    if payment.provider.is_empty() {
        // A link payment nobody chose a wallet for: no provider knows of it.
        let ended = if expired {
            match end_locally(payments, fence, &payment.id, PaymentStatus::Expired).await {
                Ok(p) => p.status == PaymentStatus::Expired,
                Err(PaymentError::Store(e @ crate::store::StoreError::LeaseLost)) => return Err(e),
                Err(_) => false,
            }
        } else {
            false
        };
        if !ended {
            tally.still_pending(payment.created_at_ms);
        }
        return Ok(ended);
    }
    // A wallet-token payment is never created by the janitor (only its request has the
    // token): one still unanswered after the barcode timeout is voided, or found charged.
    let timed_out = matches!(payment.method, Method::Barcode | Method::WalletToken)
        && now - payment.created_at_ms >= settings.barcode_timeout_ms;
    if resolve(payments, fence, &payment, expired || timed_out).await? {
        return Ok(true);
    }
    tally.still_pending(payment.created_at_ms);
    if expired || timed_out {
        tally.overdue += 1;
    }
    Ok(false)
}

/// Works on one leased pending refund. Returns whether it changed.
async fn sweep_refund(
    payments: &Payments,
    settings: &JanitorSettings,
    leased: &Leased,
) -> Result<bool, crate::store::StoreError> {
    let interval_ms = settings.interval.as_millis() as i64;
    let Some(refund) = payments.store.refund(&leased.id).await? else {
        return Ok(false);
    };
    if refund.status.is_terminal() || payments.clock.now_ms() - refund.created_at_ms < interval_ms {
        return Ok(false);
    }
    let Some(payment) = payments.store.payment(&refund.payment_id).await? else {
        return Ok(false);
    };
    let Ok(reference) = refund_ref(payments, &refund, &payment) else {
        return Ok(false);
    };
    // Unavailable, unknown or a fault: nothing is known; ask again next sweep.
    let Ok(Ok(result)) = payments.plugins.query_refund(reference).await else {
        return Ok(false);
    };
    let observed = observe_refund_status(
        payments,
        Fence::Janitor(leased.token),
        &refund.id,
        None,
        &result,
    )
    .await?;
    report_refused(
        payments,
        &refund.provider,
        &refund.merchant_id,
        "refund",
        &refund.id,
        &observed,
    );
    Ok(observed.moved())
}

/// Queries (or, when `give_up`, cancels) one payment at its provider and applies the answer.
async fn resolve(
    payments: &Payments,
    fence: Fence<'_>,
    payment: &PaymentRecord,
    give_up: bool,
) -> Result<bool, crate::store::StoreError> {
    let Ok(reference) = payment_ref(payments, payment) else {
        return Ok(false);
    };
    let answer = if give_up {
        payments.plugins.cancel_payment(reference).await
    } else {
        payments.plugins.query_payment(reference).await
    };
    let Ok(Ok(result)) = answer else {
        // Unavailable, unknown, declined or a plugin fault: nothing is known; ask again later.
        return Ok(false);
    };
    let mut to = status_of(result.status);
    // A qr or link payment closed for lack of payment expired; a barcode one was cancelled.
    if give_up
        && to == PaymentStatus::Cancelled
        && matches!(payment.method, Method::Qr | Method::Link)
    {
        to = PaymentStatus::Expired;
    }
    if to == PaymentStatus::Pending {
        return Ok(false);
    }
    let observed =
        observe_status(payments, fence, &payment.id, None, to, &result, "janitor").await?;
    report_refused(
        payments,
        &payment.provider,
        &payment.merchant_id,
        "payment",
        &payment.id,
        &observed,
    );
    Ok(observed.moved())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::service::create_payment;
    use crate::plugins::types as wit;
    use crate::testkit::{Harness, new_payment, paid, render_payment};

    fn settings() -> JanitorSettings {
        JanitorSettings {
            interval: Duration::from_millis(1_000),
            barcode_timeout_ms: 60_000,
            idempotency_retention_ms: 3_600_000,
        }
    }

    fn five_yuan() -> wit::Money {
        wit::Money {
            minor: 500,
            currency: "CNY".into(),
            exponent: 2,
        }
    }

    /// A payment the provider left pending, by `method`.
    async fn pending(h: &Harness, key: &str, method: Method) -> String {
        h.provider
            .next_payment(Ok(Ok(paid(wit::PaymentStatus::Pending, &five_yuan()))));
        let answer = create_payment(
            &h.payments,
            &h.caller,
            h.claim(key),
            new_payment("5.00", method),
            &render_payment,
        )
        .await
        .unwrap();
        answer.body.split(' ').next().unwrap().to_owned()
    }

    #[tokio::test]
    async fn young_payments_are_left_to_their_request_then_queried() {
        let h = Harness::new();
        let id = pending(&h, "k1", Method::Qr).await;
        assert_eq!(sweep(&h.payments, &settings()).await.unwrap(), 0);
        assert_eq!(h.provider.calls(), vec![format!("create {id}")]);

        h.clock.advance_ms(1_000);
        assert_eq!(sweep(&h.payments, &settings()).await.unwrap(), 1);
        assert_eq!(h.provider.calls().last(), Some(&format!("query {id}")));
        assert_eq!(h.payment(&id).status, PaymentStatus::Succeeded);
    }

    #[tokio::test]
    async fn a_barcode_payment_past_its_timeout_is_cancelled_and_a_qr_one_past_expiry_expires() {
        let h = Harness::new();
        let barcode = pending(&h, "k1", Method::Barcode).await;
        let qr = pending(&h, "k2", Method::Qr).await;
        // Both still pending at the provider when asked before their deadlines.
        for _ in 0..2 {
            h.provider
                .next_payment(Ok(Ok(paid(wit::PaymentStatus::Pending, &five_yuan()))));
        }
        h.clock.advance_ms(2_000);
        assert_eq!(sweep(&h.payments, &settings()).await.unwrap(), 0);

        h.clock.advance_ms(60_000);
        // The qr payment is asked about again (still pending); the barcode one is cancelled.
        h.provider
            .next_payment(Ok(Ok(paid(wit::PaymentStatus::Pending, &five_yuan()))));
        assert_eq!(sweep(&h.payments, &settings()).await.unwrap(), 1);
        assert_eq!(h.payment(&barcode).status, PaymentStatus::Cancelled);
        assert_eq!(h.payment(&qr).status, PaymentStatus::Pending);
        assert!(h.provider.calls().contains(&format!("cancel {barcode}")));

        h.clock.advance_ms(7_200_000);
        assert_eq!(sweep(&h.payments, &settings()).await.unwrap(), 1);
        assert_eq!(h.payment(&qr).status, PaymentStatus::Expired);
        assert!(h.provider.calls().contains(&format!("cancel {qr}")));
    }

    #[tokio::test]
    async fn finished_keys_are_forgotten_after_their_retention_only() {
        let h = Harness::new();
        // A request whose outcome is unknown keeps its key claimed, to be resumed.
        h.provider
            .next_payment(Ok(Err(wit::ProviderError::UnknownOutcome("lost".into()))));
        create_payment(
            &h.payments,
            &h.caller,
            h.claim("k1"),
            new_payment("5.00", Method::Barcode),
            &render_payment,
        )
        .await
        .unwrap_err();
        let done = create_payment(
            &h.payments,
            &h.caller,
            h.claim("k2"),
            new_payment("5.00", Method::Barcode),
            &render_payment,
        )
        .await
        .unwrap();
        assert!(!done.replayed);
        assert_eq!(expire_keys(&h.payments, &settings()).await.unwrap(), 0);
        h.clock.advance_ms(3_600_001);
        // The finished key goes; the one still in progress (a pending payment) stays.
        assert_eq!(expire_keys(&h.payments, &settings()).await.unwrap(), 1);
    }
}
