//! The janitor (Kill Bill's Janitor): a background task that resolves pending payments by
//! asking their provider, on a bounded schedule.
//!
//! - A pending payment whose outcome the provider holds (answered, or unknown after a timeout
//!   or a crash) is queried every `janitor_interval_ms`.
//! - A barcode payment still pending after `barcode_timeout_ms` ("user paying" that never
//!   ended) is cancelled at the provider; a qr payment past `expires_at` is closed at the
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

use crate::domain::method::Method;
use std::sync::Arc;
use std::time::Duration;

use crate::app::AppState;
use crate::domain::records::PaymentRecord;
use crate::domain::state::PaymentStatus;
use crate::payments::service::{
    end_locally, now_ms, observe_refund_status, observe_status, payment_ref, refund_ref,
    report_refused, status_of,
};

/// Runs sweeps forever (the task ends with the runtime).
pub fn spawn(state: Arc<AppState>) {
    let interval = Duration::from_millis(*state.config.payments.janitor_interval_ms.get_ref());
    tokio::spawn(async move {
        let mut last_expiry = now_ms();
        // Look for old keys a few times per retention period, at most once a minute.
        let retention_ms = *state.config.payments.idempotency_retention_s.get_ref() as i64 * 1000;
        let expiry_every_ms = (retention_ms / 4).clamp(interval.as_millis() as i64, 60_000);
        loop {
            tokio::time::sleep(interval).await;
            if let Err(e) = sweep(&state).await {
                tracing::warn!(error = %e, "janitor sweep failed; retrying next interval");
            }
            if let Err(e) = crate::merchants::onboarding::sweep(&state).await {
                tracing::warn!(error = %e, "onboarding sweep failed; retrying next interval");
            }
            if now_ms() - last_expiry >= expiry_every_ms {
                last_expiry = now_ms();
                if let Err(e) = expire_keys(&state) {
                    tracing::warn!(error = %e, "idempotency key expiry failed; retrying later");
                }
            }
        }
    });
}

/// Forgets finished idempotency keys past their retention. Returns how many.
pub fn expire_keys(state: &AppState) -> Result<usize, crate::store::StoreError> {
    let retention_ms = *state.config.payments.idempotency_retention_s.get_ref() as i64 * 1000;
    let removed = state
        .store
        .expire_idempotency_keys(now_ms() - retention_ms)?;
    if removed > 0 {
        tracing::info!(removed, "expired idempotency keys past their retention");
    }
    Ok(removed)
}

/// One pass over the pending payments. Returns how many changed state.
pub async fn sweep(state: &AppState) -> Result<usize, crate::store::StoreError> {
    let interval_ms = *state.config.payments.janitor_interval_ms.get_ref() as i64;
    let barcode_timeout_ms = *state.config.payments.barcode_timeout_ms.get_ref() as i64;
    let mut changed = 0;
    for id in state.store.pending_payment_ids()? {
        let Some(payment) = state.store.payment(&id)? else {
            continue;
        };
        let now = now_ms();
        // Leave young payments to the request that is creating them.
        if payment.status.is_terminal() || now - payment.created_at_ms < interval_ms {
            continue;
        }
        let expired = payment.expires_at_ms.is_some_and(|at| now >= at);
        if payment.provider.is_empty() {
            // A link payment nobody chose a wallet for: no provider knows of it.
            if expired
                && end_locally(state, &payment.id, PaymentStatus::Expired)
                    .is_ok_and(|p| p.status == PaymentStatus::Expired)
            {
                changed += 1;
            }
            continue;
        }
        let timed_out =
            payment.method == Method::Barcode && now - payment.created_at_ms >= barcode_timeout_ms;
        if resolve(state, &payment, expired || timed_out).await? {
            changed += 1;
        }
    }
    for id in state.store.pending_refund_ids()? {
        let Some(refund) = state.store.refund(&id)? else {
            continue;
        };
        if refund.status.is_terminal() || now_ms() - refund.created_at_ms < interval_ms {
            continue;
        }
        let Some(payment) = state.store.payment(&refund.payment_id)? else {
            continue;
        };
        let Ok(reference) = refund_ref(state, &refund, &payment) else {
            continue;
        };
        // Unavailable, unknown or a fault: nothing is known; ask again next sweep.
        if let Ok(Ok(result)) = state.plugins.query_refund(reference).await {
            let observed = observe_refund_status(state, &refund.id, None, &result)?;
            report_refused(
                state,
                &refund.provider,
                &refund.merchant_id,
                "refund",
                &refund.id,
                &observed,
            );
            if observed.moved() {
                changed += 1;
            }
        }
    }
    state.store.durable().await?;
    Ok(changed)
}

/// Queries (or, when `give_up`, cancels) one payment at its provider and applies the answer.
async fn resolve(
    state: &AppState,
    payment: &PaymentRecord,
    give_up: bool,
) -> Result<bool, crate::store::StoreError> {
    let Ok(reference) = payment_ref(state, payment) else {
        return Ok(false);
    };
    let answer = if give_up {
        state.plugins.cancel_payment(reference).await
    } else {
        state.plugins.query_payment(reference).await
    };
    let Ok(Ok(result)) = answer else {
        // Unavailable, unknown, declined or a plugin fault: nothing is known; ask again later.
        return Ok(false);
    };
    let mut to = status_of(result.status);
    // A qr or link payment closed for lack of payment expired; a barcode one was cancelled.
    if give_up && to == PaymentStatus::Cancelled && payment.method != Method::Barcode {
        to = PaymentStatus::Expired;
    }
    if to == PaymentStatus::Pending {
        return Ok(false);
    }
    let observed = observe_status(state, &payment.id, None, to, &result, "janitor")?;
    report_refused(
        state,
        &payment.provider,
        &payment.merchant_id,
        "payment",
        &payment.id,
        &observed,
    );
    Ok(observed.moved())
}
