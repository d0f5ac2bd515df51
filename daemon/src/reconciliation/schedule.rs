//! The daily reconciliation: each day, once a merchant's local time passes `[reconciliation]
//! run_at`, the provider's previous day (China time) is reconciled for every provider the
//! merchant collects through whose plugin downloads bills. A bill not out yet is asked for
//! again every `retry_every_minutes`, until the provider publishes it; a day already
//! reconciled (a completed run, by the schedule or on demand) is left alone.
//!
//! On a shared store every daemon runs the schedule; two may reconcile the same day at
//! once, which records two runs of the same bill (a run changes nothing but what the
//! provider confirms, idempotently).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{DAY_MS, PROVIDER_UTC_OFFSET_MS, ReconcileError, Reconciler, Run};
use crate::domain::ids::new_id;
use crate::domain::reconciliation::ReconciliationStatus;
use crate::plugins::types::Operation;

/// `[reconciliation]` as the schedule reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleSettings {
    pub enabled: bool,
    /// Minutes after the merchant's local midnight.
    pub run_at_min: u32,
    pub retry_every_ms: i64,
}

const FIRST_LOOK_AFTER: Duration = Duration::from_secs(5);
const LOOK_EVERY: Duration = Duration::from_secs(60);

/// How many of the providers' past days the schedule catches up on (a daemon that was
/// down, a merchant whose `run_at` falls before the bills are out).
const BACKLOG_DAYS: i64 = 7;

/// The provider's day `back` days before the one `now_ms` falls in: its date and start.
pub fn provider_day_back(now_ms: i64, back: i64) -> (String, i64) {
    let index = (now_ms + PROVIDER_UTC_OFFSET_MS).div_euclid(DAY_MS) - back;
    let start = index * DAY_MS - PROVIDER_UTC_OFFSET_MS;
    let date = time::OffsetDateTime::from_unix_timestamp((start + PROVIDER_UTC_OFFSET_MS) / 1000)
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default();
    (date, start)
}

/// When a provider day starting at `start_ms` becomes due for a merchant: the first time
/// its local clock shows `run_at_min` after the day has ended.
pub fn due_at(start_ms: i64, utc_offset_min: i32, run_at_min: u32) -> i64 {
    let end = start_ms + DAY_MS;
    let local_min = (end.div_euclid(60_000) + i64::from(utc_offset_min)).rem_euclid(1440);
    let wait_min = (i64::from(run_at_min) - local_min).rem_euclid(1440);
    end + wait_min * 60_000
}

/// Runs the schedule for as long as the daemon serves.
pub fn spawn(reconciler: Arc<Reconciler>, settings: ScheduleSettings) {
    if !settings.enabled {
        return;
    }
    tokio::spawn(async move {
        // When each (merchant, provider, day) was last tried.
        let mut tried: BTreeMap<(String, String, String), i64> = BTreeMap::new();
        let mut wait = FIRST_LOOK_AFTER;
        loop {
            tokio::time::sleep(wait).await;
            wait = LOOK_EVERY;
            if let Err(e) = look_once(&reconciler, settings, &mut tried).await {
                tracing::warn!(error = %e, "reconciliation schedule: the store failed; trying again");
            }
        }
    });
}

/// One look: every (merchant, provider, day) of the backlog that is due and has no completed
/// run, unless tried less than `retry_every` ago. Each run is a task of its own: one that
/// panics is logged, and the schedule goes on.
pub async fn look_once(
    reconciler: &Arc<Reconciler>,
    settings: ScheduleSettings,
    tried: &mut BTreeMap<(String, String, String), i64>,
) -> Result<(), ReconcileError> {
    let svc = &reconciler.payments;
    let now = svc.clock.now_ms();
    let oldest = provider_day_back(now, BACKLOG_DAYS).0;
    tried.retain(|(_, _, day), _| *day >= oldest);
    for merchant in svc.merchants.list_from(None) {
        for provider in merchant.providers.keys() {
            let downloads = svc.plugins.provider(provider).is_some_and(|info| {
                info.operations.contains(&Operation::FetchBill)
                    && info.operations.contains(&Operation::ParseBill)
            });
            if !downloads {
                continue;
            }
            for back in 1..=BACKLOG_DAYS {
                let (date, start) = provider_day_back(now, back);
                if now < due_at(start, merchant.utc_offset_min, settings.run_at_min) {
                    continue;
                }
                let key = (merchant.id.clone(), provider.clone(), date.clone());
                if tried
                    .get(&key)
                    .is_some_and(|at| now.saturating_sub(*at) < settings.retry_every_ms)
                {
                    continue;
                }
                tried.insert(key.clone(), now);
                let done = reconciler
                    .store
                    .reconciliations_page(None, 0, &|r| {
                        r.merchant_id == merchant.id
                            && &r.provider == provider
                            && r.date == date
                            && r.status == ReconciliationStatus::Completed
                    })
                    .await?;
                if !done.is_empty() {
                    // Nothing more to do for that day.
                    tried.insert(key, i64::MAX / 2);
                    continue;
                }
                let task = {
                    let reconciler = reconciler.clone();
                    let (merchant_id, provider, date) = key.clone();
                    tokio::spawn(async move {
                        reconciler
                            .run(Run {
                                id: new_id("rec"),
                                merchant_id: &merchant_id,
                                provider: &provider,
                                date: &date,
                                upload: None,
                                api_key_id: None,
                                keep_not_ready: false,
                            })
                            .await
                    })
                };
                let (merchant_id, provider, date) = &key;
                match task.await {
                    Ok(Ok(done)) => tracing::info!(
                        merchant = %merchant_id, provider = %provider, date = %date,
                        status = ?done.status, discrepancies = done.discrepancies.len(),
                        "reconciliation (scheduled)"
                    ),
                    Ok(Err(ReconcileError::Store(e))) => return Err(ReconcileError::Store(e)),
                    // Asking again would get the same answer: a bill that does not read, a
                    // wallet or merchant that cannot be reconciled. Not asked again.
                    Ok(Err(
                        e @ (ReconcileError::BadBill(_)
                        | ReconcileError::NotSupported(_)
                        | ReconcileError::UnknownMerchant(_)
                        | ReconcileError::BadDate(_)),
                    )) => {
                        tried.insert(key.clone(), i64::MAX / 2);
                        tracing::warn!(
                            merchant = %merchant_id, provider = %provider, date = %date, error = %e,
                            "reconciliation (scheduled) refused; not asked again"
                        );
                    }
                    Ok(Err(e)) => tracing::warn!(
                        merchant = %merchant_id, provider = %provider, date = %date, error = %e,
                        "reconciliation (scheduled) failed; trying again later"
                    ),
                    Err(panicked) => {
                        tried.insert(key.clone(), i64::MAX / 2);
                        tracing::error!(
                            merchant = %merchant_id, provider = %provider, date = %date,
                            error = %panicked, "reconciliation (scheduled) panicked; not asked again"
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_days_are_china_times() {
        // 2026-12-07T16:30:00Z is 00:30 on the 8th in China: the day before is the 7th.
        let t = 1_796_661_000_000;
        assert_eq!(provider_day_back(t, 1).0, "2026-12-07");
        assert_eq!(provider_day_back(t, 2).0, "2026-12-06");
        // 15:30Z is 23:30 on the 7th in China: the day before is the 6th.
        assert_eq!(provider_day_back(t - 3_600_000, 1).0, "2026-12-06");
        let (_, start) = provider_day_back(t, 1);
        assert_eq!(start, 1_796_601_600_000 - PROVIDER_UTC_OFFSET_MS);
    }

    #[test]
    fn a_day_is_due_at_the_merchants_first_run_at_after_it_ends() {
        // The 7th (China) ends at 2026-12-07T16:00Z.
        let start = 1_796_601_600_000 - PROVIDER_UTC_OFFSET_MS;
        let end = start + DAY_MS;
        // At +08:00, 10:00 local is 02:00Z on the 8th: 10 h after the end.
        assert_eq!(due_at(start, 480, 600), end + 10 * 3_600_000);
        // At +05:30 with run_at 22:00: the end is 21:30 local, so 30 minutes after it.
        assert_eq!(due_at(start, 330, 1320), end + 30 * 60_000);
        // At -05:00, 10:00 local is 15:00Z on the 8th: 23 h after the end.
        assert_eq!(due_at(start, -300, 600), end + 23 * 3_600_000);
    }
}
