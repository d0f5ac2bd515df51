//! The daily archive: finished payments past `[store] archive_after_days` leave the hot
//! store for its archive (`store/archive/`), counted in each merchant's own days.
//!
//! The daemon looks once an hour (and a minute after it starts): a merchant's day becomes
//! due at its local midnight, so each day leaves within the hour after it is due, in one
//! run. A run that finds nothing due writes nothing. `paygated store archive` runs the same
//! on demand, with the daemon stopped.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::merchants::MerchantDirectory;
use crate::store::archive::{ArchivePolicy, ArchiveReport};
use crate::store::{Store, StoreError};

const FIRST_RUN_AFTER: Duration = Duration::from_secs(60);
const RUN_EVERY: Duration = Duration::from_secs(3600);

/// Archives what is due at `now_ms`, with each merchant's day boundary from `merchants`
/// (a merchant it does not hold was onboarded: its platform's, as in the directory).
pub fn run_once(
    store: &Store,
    merchants: &MerchantDirectory,
    now_ms: i64,
    older_than_days: u32,
) -> Result<ArchiveReport, StoreError> {
    let platform = merchants.platform().map_or(0, |p| p.utc_offset_min);
    let offset = |id: &str| merchants.get(id).map_or(platform, |m| m.utc_offset_min);
    store.archive(&ArchivePolicy {
        now_ms,
        older_than_days,
        utc_offset_min: &offset,
        segment_payments: ArchivePolicy::SEGMENT_PAYMENTS,
    })
}

/// Runs the archive in the background for as long as the daemon serves.
pub fn spawn(
    store: Arc<Store>,
    merchants: Arc<MerchantDirectory>,
    clock: Arc<dyn Clock>,
    older_than_days: u32,
) {
    tokio::spawn(async move {
        let mut wait = FIRST_RUN_AFTER;
        loop {
            tokio::time::sleep(wait).await;
            wait = RUN_EVERY;
            let (store, merchants, now) = (store.clone(), merchants.clone(), clock.now_ms());
            let run = tokio::task::spawn_blocking(move || {
                run_once(&store, &merchants, now, older_than_days)
            })
            .await;
            match run {
                Ok(Ok(report)) if report.segments.is_empty() => {}
                Ok(Ok(report)) => tracing::info!(
                    payments = report.payments,
                    refunds = report.refunds,
                    events = report.events,
                    segments = ?report.segments,
                    changed_meanwhile = report.changed_meanwhile,
                    "archived finished payments past their retention"
                ),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the archive run failed; retrying in an hour")
                }
                Err(e) => tracing::error!(error = %e, "the archive run panicked"),
            }
        }
    });
}
