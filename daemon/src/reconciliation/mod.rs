//! Reconciliation (the use case): a merchant's books against a provider's trade bill for
//! one day. The bill is downloaded through the provider's plugin (`fetch-bill`) or is the
//! file the merchant uploaded, and is read by the same plugin (`parse-bill`); our records
//! are gathered from the store (`matching.rs` decides); a payment we have as pending that
//! the bill lists as paid is asked about, and the provider's answer applied by the normal
//! path, with its event; the run is recorded as found.
//!
//! The day is the provider's (China time for Alipay and WeChat Pay), whatever the
//! merchant's `utc_offset`. Our records of the day are read back two days from its end:
//! a payment is matched by id wherever it is, but a refund the bill leaves out is seen only
//! if its payment was made in those two days.

pub mod matching;
pub mod schedule;

use std::collections::BTreeSet;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::domain::events::EventKind;
use crate::domain::ids::{first_id_at, new_id};
use crate::domain::reconciliation::{
    BillInfo, BillSource, ReconciliationRecord, ReconciliationStatus, Resolution,
};
use crate::domain::records::EventRecord;
use crate::domain::state::PaymentStatus;
use crate::payments::service::{Payments, merchant_for, observe_status, payment_ref, status_of};
use crate::plugins::CallError;
use crate::plugins::types::{
    BillDownload, BillEntry, BillFetchRequest, BillRequest, Operation, ProviderError,
};
use crate::store::port::Storage;
use crate::store::{Fence, StoreError};
use matching::{Day, Input, Ours};

/// China Standard Time, both providers' bill day.
const PROVIDER_UTC_OFFSET_MS: i64 = 8 * 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// How far back from a day's end our payments are read.
const LOOKBACK_MS: i64 = 2 * DAY_MS;
/// Payments read per page while our side is gathered.
const PAGE: usize = 500;

/// A bill the merchant uploaded, as downloaded from the provider's portal.
pub struct Upload {
    pub name: String,
    pub content: Vec<u8>,
}

/// One run to make.
pub struct Run<'a> {
    /// The run's id (`rec_...`): a request's claimed id, so that a retry after a crash
    /// finds the run it started.
    pub id: String,
    pub merchant_id: &'a str,
    pub provider: &'a str,
    /// `YYYY-MM-DD`, the provider's day.
    pub date: &'a str,
    /// The merchant's bill; none: download it.
    pub upload: Option<Upload>,
    pub api_key_id: Option<&'a str>,
    /// Whether a run whose bill is not out yet is recorded (asked for through the API: it
    /// is the answer) or not (the schedule: it asks again).
    pub keep_not_ready: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0}")]
    BadDate(String),
    #[error("no merchant {0}")]
    UnknownMerchant(String),
    #[error("{0}")]
    NotSupported(String),
    /// The bill cannot be read (the plugin names the line).
    #[error("{0}")]
    BadBill(String),
    /// The provider or its plugin did not answer usably; nothing was recorded.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs reconciliations.
pub struct Reconciler {
    pub payments: Arc<Payments>,
    pub store: Arc<dyn Storage>,
    /// Runs at once: a bill call may take a minute and half a GiB of plugin memory, and
    /// must not starve the payments' plugin calls.
    pub runs: tokio::sync::Semaphore,
}

/// Reconciliation runs at once, across the API and the schedule.
pub const RUNS_AT_ONCE: usize = 2;

/// `[start, end)` of the provider's day `date`, or why it is not one.
pub fn provider_day(date: &str, now_ms: i64) -> Result<Day, ReconcileError> {
    let bad = || ReconcileError::BadDate(format!("date {date:?} is not a YYYY-MM-DD day"));
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let number = |r: std::ops::Range<usize>| date.get(r).and_then(|t| t.parse::<u16>().ok());
    let (year, month, day) = (
        number(0..4).ok_or_else(bad)?,
        number(5..7).ok_or_else(bad)?,
        number(8..10).ok_or_else(bad)?,
    );
    let month =
        time::Month::try_from(u8::try_from(month).map_err(|_| bad())?).map_err(|_| bad())?;
    let day = time::Date::from_calendar_date(
        i32::from(year),
        month,
        u8::try_from(day).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let start_ms = day.midnight().assume_utc().unix_timestamp() * 1000 - PROVIDER_UTC_OFFSET_MS;
    if start_ms > now_ms {
        return Err(ReconcileError::BadDate(format!(
            "{date} has not begun yet (China time)"
        )));
    }
    Ok(Day {
        start_ms,
        end_ms: start_ms + DAY_MS,
    })
}

fn provider_failure(error: ProviderError) -> ReconcileError {
    match error {
        ProviderError::InvalidRequest(m) => ReconcileError::BadBill(m),
        ProviderError::Declined(d) => ReconcileError::Unavailable(d.message),
        ProviderError::Unavailable(m) | ProviderError::UnknownOutcome(m) => {
            ReconcileError::Unavailable(m)
        }
    }
}

fn call_failure(error: CallError) -> ReconcileError {
    match error {
        CallError::NoSuchProvider(p) => {
            ReconcileError::NotSupported(format!("no loaded plugin serves wallet \"{p}\""))
        }
        CallError::Unsupported {
            provider,
            operation,
        } => ReconcileError::NotSupported(format!(
            "wallet \"{provider}\" does not support {operation}"
        )),
        other => ReconcileError::Unavailable(other.to_string()),
    }
}

impl Reconciler {
    pub async fn run(&self, run: Run<'_>) -> Result<ReconciliationRecord, ReconcileError> {
        let _turn = self
            .runs
            .acquire()
            .await
            .map_err(|_| ReconcileError::Unavailable("shutting down".into()))?;
        let svc = &self.payments;
        let now = svc.clock.now_ms();
        let day = provider_day(run.date, now)?;
        if let Some(done) = self.store.reconciliation(&run.id).await? {
            return Ok(done);
        }
        if svc.merchants.get(run.merchant_id).is_none() {
            return Err(ReconcileError::UnknownMerchant(run.merchant_id.to_owned()));
        }
        let info = svc.plugins.provider(run.provider).ok_or_else(|| {
            ReconcileError::NotSupported(format!(
                "no loaded plugin serves wallet \"{}\"",
                run.provider
            ))
        })?;
        let needs = if run.upload.is_some() {
            &[Operation::ParseBill][..]
        } else {
            &[Operation::FetchBill, Operation::ParseBill][..]
        };
        if let Some(missing) = needs.iter().find(|op| !info.operations.contains(op)) {
            return Err(ReconcileError::NotSupported(format!(
                "wallet \"{}\" does not support {}",
                run.provider,
                crate::plugins::operation_name(*missing)
            )));
        }
        let currency = info
            .currencies
            .first()
            .cloned()
            .unwrap_or_else(|| "CNY".into());
        let exponent =
            crate::domain::money::Currency::from_code(&currency).map_or(2, |c| c.exponent());
        let merchant = merchant_for(svc, run.provider, run.merchant_id)
            .map_err(|e| ReconcileError::NotSupported(e.to_string()))?;
        let record = |status, source, bill: Option<BillInfo>, message: Option<String>| {
            ReconciliationRecord {
                id: run.id.clone(),
                merchant_id: run.merchant_id.to_owned(),
                provider: run.provider.to_owned(),
                date: run.date.to_owned(),
                currency: currency.clone(),
                status,
                source,
                bill,
                message,
                ours: Default::default(),
                theirs: Default::default(),
                discrepancies: Vec::new(),
                late_matches: Vec::new(),
                created_at_ms: now,
                api_key_id: run.api_key_id.map(str::to_owned),
                version: 1,
            }
        };

        let (source, file) = match run.upload {
            Some(upload) => (BillSource::Upload, Some((upload.name, upload.content))),
            None => {
                let fetched = svc
                    .plugins
                    .fetch_bill(BillFetchRequest {
                        provider: run.provider.to_owned(),
                        merchant: merchant.clone(),
                        date: run.date.to_owned(),
                    })
                    .await
                    .map_err(call_failure)?
                    .map_err(provider_failure)?;
                match fetched {
                    BillDownload::File(file) => {
                        (BillSource::Download, Some((file.name, file.content)))
                    }
                    BillDownload::NoBill => (BillSource::None, None),
                    BillDownload::NotReady(message) => {
                        let pending = record(
                            ReconciliationStatus::BillNotReady,
                            BillSource::Download,
                            None,
                            Some(message),
                        );
                        if run.keep_not_ready {
                            self.store.record_reconciliation(&pending, None).await?;
                            self.store.durable().await?;
                        }
                        return Ok(pending);
                    }
                }
            }
        };
        let (entries, bill) = match file {
            None => (Vec::new(), None),
            Some((name, content)) => {
                let info = BillInfo {
                    name: name.chars().filter(|c| !c.is_control()).take(200).collect(),
                    sha256: hex::encode(Sha256::digest(&content)),
                    bytes: content.len() as u64,
                    rows: 0,
                };
                let entries = svc
                    .plugins
                    .parse_bill(BillRequest {
                        provider: run.provider.to_owned(),
                        merchant,
                        date: run.date.to_owned(),
                        content,
                    })
                    .await
                    .map_err(|e| match e {
                        // A plugin that traps, runs out of time or memory on a file is
                        // refused the file: the same file would fault again.
                        CallError::Fault(fault) => ReconcileError::BadBill(format!(
                            "the {} plugin failed reading it: {fault}",
                            run.provider
                        )),
                        other => call_failure(other),
                    })?
                    .map_err(provider_failure)?;
                // What the plugin read must be amounts this run can add up.
                for entry in &entries {
                    let line = entry.line.unwrap_or(0);
                    if entry.amount.currency != currency {
                        return Err(ReconcileError::BadBill(format!(
                            "line {line}: an amount in {}, not {currency}",
                            entry.amount.currency
                        )));
                    }
                    // Read as strictly as any amount a plugin reports.
                    if let Err(e) = crate::plugins::reported_money(&entry.amount) {
                        return Err(ReconcileError::BadBill(format!("line {line}: {e}")));
                    }
                    if entry.fee.is_some() && matching::fee_of(entry).is_none() {
                        return Err(ReconcileError::BadBill(format!(
                            "line {line}: a fee no decimal holds"
                        )));
                    }
                }
                let rows = entries.len() as u64;
                (entries, Some(BillInfo { rows, ..info }))
            }
        };

        let ours = self
            .gather(run.merchant_id, run.provider, day, &entries)
            .await?;
        let previous_late = self
            .previous_late(run.merchant_id, run.provider, day)
            .await?;
        let outcome = matching::reconcile(&Input {
            merchant_id: run.merchant_id,
            provider: run.provider,
            exponent,
            day,
            entries: &entries,
            ours: &ours,
            previous_late: &previous_late,
        });
        let mut found = record(ReconciliationStatus::Completed, source, bill, None);
        found.ours = outcome.ours;
        found.theirs = outcome.theirs;
        found.discrepancies = outcome.discrepancies;
        found.late_matches = outcome.late_matches;
        for id in outcome.to_confirm {
            if self.confirm_paid(&id).await? {
                // Paid on the bill's day by the provider's word, recorded as succeeded only
                // now: the day's, and a late match the next day does not expect.
                if let Some(p) = ours.payments.get(&id) {
                    found.ours.payments += 1;
                    found.ours.gross_minor = found.ours.gross_minor.saturating_add(p.amount_minor);
                }
                found.late_matches.push(id.clone());
                for d in found.discrepancies.iter_mut().filter(|d| {
                    d.ours.as_ref().is_some_and(|o| o.payment_id == id)
                        && d.kind == crate::domain::reconciliation::DiscrepancyKind::StatusMismatch
                }) {
                    d.resolution = Some(Resolution {
                        action: "corrected".into(),
                        at_ms: svc.clock.now_ms(),
                        api_key_id: None,
                        note: Some("the provider confirmed it paid; applied".into()),
                    });
                }
            }
        }
        let critical = found
            .discrepancies
            .iter()
            .filter(|d| d.kind.is_critical())
            .count();
        let event = EventRecord {
            id: new_id("evt"),
            kind: EventKind::ReconciliationCompleted,
            created_at_ms: now,
            object_id: found.id.clone(),
            data: serde_json::json!({
                "merchant_id": found.merchant_id, "provider": found.provider, "date": found.date,
                "discrepancies": found.discrepancies.len(), "critical": critical,
            }),
            object_version: found.version,
            object: None,
        };
        self.store
            .record_reconciliation(&found, Some(&event))
            .await?;
        self.store.durable().await?;
        Ok(found)
    }

    /// Every payment the bill names and every payment of the merchant and provider made in
    /// the lookback, with their refunds.
    async fn gather(
        &self,
        merchant_id: &str,
        provider: &str,
        day: Day,
        entries: &[BillEntry],
    ) -> Result<Ours, ReconcileError> {
        let store = &self.store;
        let mut ours = Ours::default();
        let named: BTreeSet<&str> = entries.iter().map(|e| e.payment_id.as_str()).collect();
        for id in named {
            if let Some(found) = store.find_payment(id).await? {
                ours.payments.insert(id.to_owned(), found.record);
            }
        }
        let mut after = first_id_at("pay", day.end_ms);
        let since = day.end_ms - LOOKBACK_MS;
        'pages: loop {
            let page = store
                // Older payments are kept too, so that the page stops at the first of them
                // whatever the provider (a merchant's other wallets are not read through).
                .payments_page(Some(merchant_id), Some(&after), PAGE, &|p| {
                    p.provider == provider || p.created_at_ms < since
                })
                .await?;
            let more = page.len() > PAGE;
            for found in page.into_iter().take(PAGE) {
                after = found.record.id.clone();
                if found.record.created_at_ms < since {
                    break 'pages;
                }
                ours.payments.insert(found.record.id.clone(), found.record);
            }
            if !more {
                break;
            }
        }
        for payment in ours.payments.values() {
            if payment.refund_reserved_minor > 0 || payment.refunded_minor > 0 {
                for refund in store.find_refunds_of(&payment.id).await? {
                    ours.refunds.insert(refund.record.id.clone(), refund.record);
                }
            }
        }
        Ok(ours)
    }

    /// The late matches of the previous day's latest completed run.
    async fn previous_late(
        &self,
        merchant_id: &str,
        provider: &str,
        day: Day,
    ) -> Result<BTreeSet<String>, ReconcileError> {
        let previous = time::OffsetDateTime::from_unix_timestamp(
            (day.start_ms - DAY_MS + PROVIDER_UTC_OFFSET_MS) / 1000,
        )
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default();
        let page = self
            .store
            .reconciliations_page(None, 0, &|r| {
                r.merchant_id == merchant_id
                    && r.provider == provider
                    && r.date == previous
                    && r.status == ReconciliationStatus::Completed
            })
            .await?;
        Ok(page
            .into_iter()
            .next()
            .map(|r| r.late_matches.into_iter().collect())
            .unwrap_or_default())
    }

    /// Asks the provider about a payment we have as pending; applies a paid answer by the
    /// normal path (with its event). Whether it is now succeeded.
    async fn confirm_paid(&self, payment_id: &str) -> Result<bool, ReconcileError> {
        let svc = &self.payments;
        let Some(found) = self.store.find_payment(payment_id).await? else {
            return Ok(false);
        };
        if found.archived || found.record.status != PaymentStatus::Pending {
            return Ok(found.record.status == PaymentStatus::Succeeded);
        }
        let Ok(reference) = payment_ref(svc, &found.record) else {
            return Ok(false);
        };
        let Ok(Ok(result)) = svc.plugins.query_payment(reference).await else {
            return Ok(false);
        };
        let to = status_of(result.status);
        if to != PaymentStatus::Succeeded {
            return Ok(false);
        }
        observe_status(
            svc,
            Fence::Unleased,
            payment_id,
            None,
            to,
            &result,
            "reconciliation",
        )
        .await?;
        svc.store.durable().await?;
        Ok(self
            .store
            .find_payment(payment_id)
            .await?
            .is_some_and(|p| p.record.status == PaymentStatus::Succeeded))
    }
}
