//! An archive run: what leaves the hot trees, and how, so that a crash at any point loses
//! and duplicates nothing.
//!
//! **What is due**: a payment in a final state whose refunds are all final, and whose last
//! change (of the payment or any of its refunds) fell on a day, in its merchant's
//! `utc_offset`, at least `older_than_days` before today there. Whole local days leave
//! together. Then every event older than that of an object no longer hot. A payment still
//! pending, or with a refund pending, stays hot whatever its age (the janitor works on it).
//!
//! **Steps**, each durable before the next:
//! 1. finish the removals of segments a crash interrupted, and delete files the manifest does
//!    not name (a run that crashed before its commit);
//! 2. stream the due payments into a segment (`.tmp` files, synced, renamed);
//! 3. commit: the manifest names the segment, `hot_removed: false`;
//! 4. remove each payment with its refunds and indexes from the hot trees, one atomic change
//!    each (`txn.rs`), unless it changed since it was read (a refund begun meanwhile: it
//!    stays hot, and the hot copy wins over the archived one until a later run archives it
//!    again);
//! 5. mark the segment `hot_removed: true`.
//!
//! Then the same for events, whose removal is a single key each.

use std::path::Path;

use super::segment::{self, FrameWriter, PendingEntry};
use super::{ArchivedEvent, ArchivedPayment, IndexMeta, SegmentKind, SegmentMeta};
use crate::domain::events::ObjectKind;
use crate::domain::records::{EventRecord, PaymentRecord, RefundRecord};
use crate::store::event_log::{raise_seq_floor, seq_key, seq_of};
use crate::store::payments::{compound, refunds_of};
use crate::store::recovery::{LAST_CHANGE, LastChange, Subject};
use crate::store::{Store, StoreError};

const DAY_MS: i64 = 86_400_000;
/// What a run archives.
pub struct ArchivePolicy<'a> {
    pub now_ms: i64,
    pub older_than_days: u32,
    /// A merchant's offset from UTC, in minutes: where its days begin.
    pub utc_offset_min: &'a (dyn Fn(&str) -> i32 + Sync),
    /// At most this many payments per segment file (a run writes as many as it needs): the
    /// run holds the segment's index in memory, ~150 bytes an object.
    pub segment_payments: usize,
}

impl ArchivePolicy<'_> {
    pub const SEGMENT_PAYMENTS: usize = 100_000;

    fn local_day(ms: i64, offset_min: i32) -> i64 {
        (ms + i64::from(offset_min) * 60_000).div_euclid(DAY_MS)
    }

    /// Whether something of `merchant_id` last changed at `last_ms` is due.
    pub fn due(&self, merchant_id: &str, last_ms: i64) -> bool {
        let offset = (self.utc_offset_min)(merchant_id);
        Self::local_day(last_ms, offset)
            <= Self::local_day(self.now_ms, offset) - i64::from(self.older_than_days)
    }

    /// Nothing created after this instant is due, whatever the merchant's offset (offsets
    /// lie within a day of UTC).
    fn horizon_ms(&self) -> i64 {
        self.now_ms - (i64::from(self.older_than_days) - 1) * DAY_MS
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ArchiveReport {
    pub payments: u64,
    pub refunds: u64,
    pub events: u64,
    /// Segments committed by this run.
    pub segments: Vec<String>,
    /// Archived payments left hot because they changed while the run wrote them.
    pub changed_meanwhile: u64,
    /// Segments whose removal from the hot trees a crash had interrupted, finished.
    pub finished_removals: u64,
}

fn decode<T: serde::de::DeserializeOwned>(raw: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn segment_name(now_ms: i64, number: u64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    format!(
        "{:04}{:02}{:02}-{number:06}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// A segment being written.
struct PaymentsSegment {
    data: FrameWriter,
    entries: Vec<PendingEntry>,
    meta: SegmentMeta,
}

impl PaymentsSegment {
    fn create(dir: &Path, name: String, now_ms: i64) -> Result<PaymentsSegment, StoreError> {
        let meta = SegmentMeta {
            name,
            kind: SegmentKind::Payments,
            written_at_ms: now_ms,
            lines: 0,
            refunds: 0,
            data_bytes: 0,
            data_sha256: String::new(),
            index: None,
            first: String::new(),
            last: String::new(),
            refund_ids: None,
            hot_removed: false,
        };
        Ok(PaymentsSegment {
            data: FrameWriter::create(dir.join(meta.data_file()))?,
            entries: Vec::new(),
            meta,
        })
    }

    fn add(&mut self, line: &ArchivedPayment) -> Result<(), StoreError> {
        let raw = serde_json::to_vec(line).expect("records serialize");
        let (frame, at) = self.data.push(&raw)?;
        let p = &line.payment;
        let m = &mut self.meta;
        if m.lines == 0 || p.id < m.first {
            m.first = p.id.clone();
        }
        if m.lines == 0 || p.id > m.last {
            m.last = p.id.clone();
        }
        m.lines += 1;
        self.entries.push(PendingEntry {
            id: p.id.clone(),
            frame,
            line: at,
            version: p.version,
            merchant_id: p.merchant_id.clone(),
        });
        for r in &line.refunds {
            m.refunds += 1;
            let span = m
                .refund_ids
                .get_or_insert_with(|| [r.id.clone(), r.id.clone()]);
            if r.id < span[0] {
                span[0] = r.id.clone();
            }
            if r.id > span[1] {
                span[1] = r.id.clone();
            }
            self.entries.push(PendingEntry {
                id: r.id.clone(),
                frame,
                line: at,
                version: r.version,
                merchant_id: r.merchant_id.clone(),
            });
        }
        Ok(())
    }

    /// Writes the index, syncs both files and puts them in place (not yet committed).
    fn finish(self, dir: &Path) -> Result<SegmentMeta, StoreError> {
        let mut meta = self.meta;
        let (data, frames) = self.data.finish()?;
        let entries = self.entries.len() as u64;
        let (index, width) =
            segment::write_index(dir.join(meta.index_file()), self.entries, &frames)?;
        data.place()?;
        index.place()?;
        segment::sync_dir(dir)?;
        meta.data_bytes = data.bytes;
        meta.data_sha256 = data.sha256;
        meta.index = Some(IndexMeta {
            width,
            entries,
            bytes: index.bytes,
            sha256: index.sha256,
        });
        Ok(meta)
    }
}

/// Where a test makes an archive run stop, as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CrashPoint {
    /// The first segment's files are in place, the manifest does not name them yet.
    BeforeCommit = 1,
    /// The segment is committed, nothing removed from the hot trees.
    AfterCommit = 2,
    /// The first payment of the segment is removed from the hot trees, the rest not.
    MidRemoval = 3,
}

/// What removing one archived payment from the hot trees found.
enum Removal {
    Removed,
    AlreadyGone,
    Changed,
}

impl Store {
    /// Test hook: the next archive run stops at `point`.
    #[cfg(test)]
    pub(crate) fn crash_archive_at(&self, point: CrashPoint) {
        self.archive_crash_at
            .store(point as u8, std::sync::atomic::Ordering::Relaxed);
    }

    fn crash_point(&self, _point: CrashPoint) -> Result<(), StoreError> {
        #[cfg(test)]
        if self
            .archive_crash_at
            .load(std::sync::atomic::Ordering::Relaxed)
            == _point as u8
        {
            return Err(StoreError::Failed(format!("test crash at {_point:?}")));
        }
        Ok(())
    }

    /// Archives what `policy` says is due (see the module's comment). One run at a time.
    pub fn archive(&self, policy: &ArchivePolicy<'_>) -> Result<ArchiveReport, StoreError> {
        let _one_run = self.archive_runs.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = ArchiveReport {
            finished_removals: self.finish_archive_removals()?,
            ..ArchiveReport::default()
        };
        self.delete_archive_strays()?;
        let mut resume: Option<Vec<u8>> = None;
        loop {
            let (segment, next) = self.write_payments_segment(policy, resume.take())?;
            if let Some(meta) = segment {
                report.payments += meta.lines;
                report.refunds += meta.refunds;
                report.segments.push(meta.name.clone());
                self.crash_point(CrashPoint::BeforeCommit)?;
                self.commit_segment(meta.clone())?;
                self.crash_point(CrashPoint::AfterCommit)?;
                report.changed_meanwhile += self.remove_archived_payments(&meta)?;
                self.mark_removed(&meta.name)?;
            }
            match next {
                Some(key) => resume = Some(key),
                None => break,
            }
        }
        loop {
            let (segment, more) = self.write_events_segment(policy)?;
            if let Some(meta) = segment {
                report.events += meta.lines;
                report.segments.push(meta.name.clone());
                self.commit_segment(meta.clone())?;
                self.remove_archived_events(&meta)?;
                self.mark_removed(&meta.name)?;
            }
            if !more {
                break;
            }
        }
        if !report.segments.is_empty() {
            self.flush()?;
        }
        Ok(report)
    }

    /// Finishes removing from the hot trees what committed segments archived (a crash
    /// interrupted it); returns how many segments it finished. Run at open and by each run.
    pub(crate) fn finish_archive_removals(&self) -> Result<u64, StoreError> {
        let manifest = self.archive.manifest();
        let mut finished = 0;
        for segment in manifest.segments.iter().filter(|s| !s.hot_removed) {
            match segment.kind {
                SegmentKind::Payments => {
                    self.remove_archived_payments(segment)?;
                }
                SegmentKind::Events => self.remove_archived_events(segment)?,
            }
            self.mark_removed(&segment.name)?;
            finished += 1;
        }
        if finished > 0 {
            self.flush()?;
        }
        Ok(finished)
    }

    /// Deletes segment files no committed segment names (a run that crashed before its
    /// commit left them).
    fn delete_archive_strays(&self) -> Result<(), StoreError> {
        let dir = self.archive.dir();
        let Ok(listing) = std::fs::read_dir(dir) else {
            return Ok(()); // no archive yet
        };
        let manifest = self.archive.manifest();
        let named: std::collections::HashSet<String> = manifest
            .segments
            .iter()
            .flat_map(|s| [s.data_file(), s.index_file()])
            .collect();
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.ends_with(".jsonl.zst")
                || name.ends_with(".idx")
                || name.ends_with(".zst.tmp")
                || name.ends_with(".idx.tmp");
            if ours && !named.contains(&name) {
                tracing::warn!(file = %name, "deleting an archive file no segment names (a run interrupted before its commit)");
                std::fs::remove_file(entry.path())
                    .map_err(|e| segment::corrupt(&entry.path(), e))?;
            }
        }
        Ok(())
    }

    fn next_segment_name(&self, now_ms: i64) -> String {
        segment_name(now_ms, self.archive.manifest().next)
    }

    fn commit_segment(&self, meta: SegmentMeta) -> Result<(), StoreError> {
        let mut manifest = (*self.archive.manifest()).clone();
        manifest.next += 1;
        manifest.segments.push(meta);
        self.archive.commit(manifest)
    }

    fn mark_removed(&self, name: &str) -> Result<(), StoreError> {
        // The hot trees' removals are made durable before the manifest says they are done.
        self.flush()?;
        let mut manifest = (*self.archive.manifest()).clone();
        if let Some(segment) = manifest.segments.iter_mut().find(|s| s.name == name) {
            segment.hot_removed = true;
        }
        self.archive.commit(manifest)
    }

    /// Streams the due payments, from `resume` on, into one segment of at most
    /// `segment_payments`; returns it (if any was due) and where the next one starts.
    fn write_payments_segment(
        &self,
        policy: &ArchivePolicy<'_>,
        resume: Option<Vec<u8>>,
    ) -> Result<(Option<SegmentMeta>, Option<Vec<u8>>), StoreError> {
        let horizon = policy.horizon_ms();
        let mut segment: Option<PaymentsSegment> = None;
        let start = resume.unwrap_or_default();
        for entry in self.trees.payments.range(start..) {
            let (key, raw) = entry.map_err(StoreError::Sled)?;
            let payment: PaymentRecord = decode(&raw, "payment")?;
            if payment.created_at_ms > horizon {
                break; // ids follow creation time: nothing later is due
            }
            if !payment.status.is_terminal() {
                continue;
            }
            let refunds = refunds_of(&self.trees, &payment.id)?;
            if refunds.iter().any(|r| !r.status.is_terminal()) {
                continue;
            }
            let last = refunds
                .iter()
                .map(|r| r.updated_at_ms)
                .fold(payment.updated_at_ms, i64::max);
            if !policy.due(&payment.merchant_id, last) {
                continue;
            }
            if segment
                .as_ref()
                .is_some_and(|s| s.meta.lines as usize >= policy.segment_payments.max(1))
            {
                let done = segment
                    .take()
                    .expect("checked")
                    .finish(self.archive.dir())?;
                return Ok((Some(done), Some(key.to_vec())));
            }
            if segment.is_none() {
                std::fs::create_dir_all(self.archive.dir())
                    .map_err(|e| segment::corrupt(self.archive.dir(), e))?;
                let name = self.next_segment_name(policy.now_ms);
                segment = Some(PaymentsSegment::create(
                    self.archive.dir(),
                    name,
                    policy.now_ms,
                )?);
            }
            let line = ArchivedPayment { payment, refunds };
            segment.as_mut().expect("created").add(&line)?;
        }
        let done = segment.map(|s| s.finish(self.archive.dir())).transpose()?;
        Ok((done, None))
    }

    /// Removes each payment of a committed segment, with its refunds and indexes, from the
    /// hot trees; returns how many stayed because they changed since.
    fn remove_archived_payments(&self, segment: &SegmentMeta) -> Result<u64, StoreError> {
        let path = self.archive.dir().join(segment.data_file());
        let mut changed = 0;
        segment::for_each_line(&path, |raw| {
            let line: ArchivedPayment =
                serde_json::from_slice(raw).map_err(|e| segment::corrupt(&path, e))?;
            if let Removal::Changed = self.remove_hot(&line)? {
                changed += 1;
            }
            self.crash_point(CrashPoint::MidRemoval)
        })?;
        Ok(changed)
    }

    /// One payment out of the hot trees, atomically, if it is still as archived.
    fn remove_hot(&self, line: &ArchivedPayment) -> Result<Removal, StoreError> {
        let t = &self.trees;
        let p = &line.payment;
        self.writer.transact(
            [
                &self.meta,
                &t.payments,
                &t.order_ids,
                &t.wallet_tokens,
                &t.by_merchant,
                &t.refunds,
                &t.refunds_by_payment,
            ],
            |[
                meta,
                payments,
                order_ids,
                wallet_tokens,
                by_merchant,
                refunds,
                refunds_by_payment,
            ]| {
                let Some(raw) = payments.get(p.id.as_bytes())? else {
                    return Ok(Removal::AlreadyGone);
                };
                let hot: PaymentRecord = decode(&raw, "payment")?;
                if hot.version != p.version {
                    return Ok(Removal::Changed);
                }
                for r in &line.refunds {
                    if let Some(raw) = refunds.get(r.id.as_bytes())? {
                        let hot: RefundRecord = decode(&raw, "refund")?;
                        if hot.version != r.version {
                            return Ok(Removal::Changed);
                        }
                    }
                }
                // Recovery must not find a record it names gone (`recovery.rs`).
                if let Some(raw) = meta.get(LAST_CHANGE)? {
                    let last: LastChange = decode(&raw, "last change")?;
                    let named = match &last.subject {
                        Subject::Payment { id, .. } => id == &p.id,
                        Subject::Refund { payment_id, .. } => payment_id == &p.id,
                    };
                    if named {
                        meta.remove(LAST_CHANGE)?;
                    }
                }
                payments.remove(p.id.as_bytes())?;
                if let Some(order_id) = &p.order_id {
                    let key = compound(&p.merchant_id, order_id);
                    if order_ids.get(&key)?.as_deref() == Some(p.id.as_bytes()) {
                        order_ids.remove(key)?;
                    }
                }
                // A token past the archive's horizon is months older than any token may be
                // (minutes): its id need not be held any longer.
                if let Some(token_id) = &p.wallet_token_id {
                    let key = compound(&p.provider, token_id);
                    if wallet_tokens.get(&key)?.as_deref() == Some(p.id.as_bytes()) {
                        wallet_tokens.remove(key)?;
                    }
                }
                by_merchant.remove(compound(&p.merchant_id, &p.id))?;
                for r in &line.refunds {
                    refunds.remove(r.id.as_bytes())?;
                    refunds_by_payment.remove(compound(&p.id, &r.id))?;
                }
                Ok(Removal::Removed)
            },
        )
    }

    /// Streams the events due (older than the horizon, of objects no longer hot) into one
    /// segment; says whether more may be due.
    fn write_events_segment(
        &self,
        policy: &ArchivePolicy<'_>,
    ) -> Result<(Option<SegmentMeta>, bool), StoreError> {
        let horizon = policy.horizon_ms();
        let limit = policy.segment_payments.max(1) * 4;
        let mut writer: Option<(FrameWriter, SegmentMeta)> = None;
        let mut more = false;
        for entry in self.trees.events.iter() {
            let (key, raw) = entry.map_err(StoreError::Sled)?;
            let event: EventRecord = decode(&raw, "event")?;
            if event.created_at_ms > horizon {
                break;
            }
            let hot = match event.kind.object() {
                ObjectKind::Payment => &self.trees.payments,
                ObjectKind::Refund => &self.trees.refunds,
                _ => continue,
            };
            if hot
                .contains_key(event.object_id.as_bytes())
                .map_err(StoreError::Sled)?
            {
                continue;
            }
            if writer
                .as_ref()
                .is_some_and(|(_, m)| m.lines as usize >= limit)
            {
                more = true;
                break;
            }
            let seq = seq_of(&key)?;
            let (data, meta) = match &mut writer {
                Some(w) => w,
                None => {
                    std::fs::create_dir_all(self.archive.dir())
                        .map_err(|e| segment::corrupt(self.archive.dir(), e))?;
                    let meta = SegmentMeta {
                        name: self.next_segment_name(policy.now_ms),
                        kind: SegmentKind::Events,
                        written_at_ms: policy.now_ms,
                        lines: 0,
                        refunds: 0,
                        data_bytes: 0,
                        data_sha256: String::new(),
                        index: None,
                        first: seq.to_string(),
                        last: seq.to_string(),
                        refund_ids: None,
                        hot_removed: false,
                    };
                    let data = FrameWriter::create(self.archive.dir().join(meta.data_file()))?;
                    writer.insert((data, meta))
                }
            };
            let line = serde_json::to_vec(&ArchivedEvent { seq, event }).expect("serializes");
            data.push(&line)?;
            meta.lines += 1;
            meta.last = seq.to_string();
        }
        let Some((data, mut meta)) = writer else {
            return Ok((None, false));
        };
        let (written, _) = data.finish()?;
        written.place()?;
        segment::sync_dir(self.archive.dir())?;
        meta.data_bytes = written.bytes;
        meta.data_sha256 = written.sha256;
        Ok((Some(meta), more))
    }

    /// Removes the events of a committed events segment from the log. Sequence numbers are
    /// never handed out again: the floor is recorded first.
    fn remove_archived_events(&self, segment: &SegmentMeta) -> Result<(), StoreError> {
        let last: u64 = segment
            .last
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("segment {}: last seq", segment.name)))?;
        raise_seq_floor(&self.writer, &self.meta, last)?;
        let path = self.archive.dir().join(segment.data_file());
        segment::for_each_line(&path, |raw| {
            let line: ArchivedEvent =
                serde_json::from_slice(raw).map_err(|e| segment::corrupt(&path, e))?;
            let key = seq_key(line.seq);
            self.writer
                .single(&self.trees.events, key, || self.trees.events.remove(key))?;
            Ok(())
        })?;
        Ok(())
    }
}
