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

/// The provider's day before the one `now_ms` falls in, `YYYY-MM-DD`.
pub fn provider_yesterday(now_ms: i64) -> String {
    let at = (now_ms + PROVIDER_UTC_OFFSET_MS - DAY_MS).div_euclid(1000);
    time::OffsetDateTime::from_unix_timestamp(at)
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default()
}

/// Whether the merchant's local time of day at `now_ms` has passed `run_at_min`.
pub fn is_due(now_ms: i64, utc_offset_min: i32, run_at_min: u32) -> bool {
    let local_min = (now_ms.div_euclid(60_000) + i64::from(utc_offset_min)).rem_euclid(1440);
    local_min >= i64::from(run_at_min)
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

/// One look: every due (merchant, provider) whose previous day has no completed run, unless
/// tried less than `retry_every` ago.
pub async fn look_once(
    reconciler: &Reconciler,
    settings: ScheduleSettings,
    tried: &mut BTreeMap<(String, String, String), i64>,
) -> Result<(), ReconcileError> {
    let svc = &reconciler.payments;
    let now = svc.clock.now_ms();
    let date = provider_yesterday(now);
    tried.retain(|(_, _, day), _| *day == date);
    let merchants = svc.merchants.list_from(None);
    for merchant in merchants {
        if !is_due(now, merchant.utc_offset_min, settings.run_at_min) {
            continue;
        }
        for provider in merchant.providers.keys() {
            let downloads = svc.plugins.provider(provider).is_some_and(|info| {
                info.operations.contains(&Operation::FetchBill)
                    && info.operations.contains(&Operation::ParseBill)
            });
            if !downloads {
                continue;
            }
            let key = (merchant.id.clone(), provider.clone(), date.clone());
            if tried
                .get(&key)
                .is_some_and(|at| now - at < settings.retry_every_ms)
            {
                continue;
            }
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
                continue;
            }
            tried.insert(key, now);
            let run = Run {
                id: new_id("rec"),
                merchant_id: &merchant.id,
                provider,
                date: &date,
                upload: None,
                api_key_id: None,
            };
            match reconciler.run(run).await {
                Ok(done) => tracing::info!(
                    merchant = %merchant.id, provider = %provider, date = %date,
                    status = ?done.status, discrepancies = done.discrepancies.len(),
                    "reconciliation (scheduled)"
                ),
                Err(ReconcileError::Store(e)) => return Err(ReconcileError::Store(e)),
                Err(e) => tracing::warn!(
                    merchant = %merchant.id, provider = %provider, date = %date, error = %e,
                    "reconciliation (scheduled) failed; trying again later"
                ),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_provider_day_is_china_times() {
        // 2026-12-07T16:30:00Z is 00:30 on the 8th in China: its yesterday is the 7th.
        let t = 1_796_661_000_000;
        assert_eq!(provider_yesterday(t), "2026-12-07");
        // 15:30Z is 23:30 on the 7th in China: yesterday is the 6th.
        assert_eq!(provider_yesterday(t - 3_600_000), "2026-12-06");
    }

    #[test]
    fn a_merchant_is_due_once_its_local_time_passes_run_at() {
        // 01:30 UTC is 09:30 at +08:00 and 20:30 the day before at -05:00.
        let t = 1_796_607_000_000;
        assert!(!is_due(t, 480, 600));
        assert!(is_due(t, 480, 570));
        assert!(is_due(t, -300, 600));
        assert!(!is_due(t, 0, 600));
    }
}
