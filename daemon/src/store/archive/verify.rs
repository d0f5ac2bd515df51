//! `store verify` for the archive: every committed segment's files are whole (their sha256),
//! decode, hold the counts the manifest says, and their index is sorted and points at the
//! lines of the ids it names; an object whose removal is recorded done is not hot at the
//! version archived.

use std::collections::HashMap;

use super::segment::{self, IndexFile};
use super::{ArchivedEvent, ArchivedPayment, SegmentKind, SegmentMeta};
use crate::domain::records::{PaymentRecord, RefundRecord};
use crate::store::{Store, StoreError};

/// What the archive holds, as `verify` counted it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ArchiveCounts {
    pub segments: usize,
    pub payments: u64,
    pub refunds: u64,
    pub events: u64,
}

impl Store {
    pub(crate) fn verify_archive(
        &self,
        hot_payments: &HashMap<&str, &PaymentRecord>,
        hot_refunds: &HashMap<&str, &RefundRecord>,
        v: &mut Vec<String>,
    ) -> Result<ArchiveCounts, StoreError> {
        let manifest = self.archive.manifest();
        let dir = self.archive.dir();
        let mut counts = ArchiveCounts {
            segments: manifest.segments.len(),
            ..ArchiveCounts::default()
        };
        for segment in &manifest.segments {
            let data = dir.join(segment.data_file());
            match segment::sha256_of(&data) {
                Ok((sha, bytes)) if sha == segment.data_sha256 && bytes == segment.data_bytes => {}
                Ok(_) => {
                    v.push(format!(
                        "archive segment {}: {} does not match its checksum",
                        segment.name,
                        segment.data_file()
                    ));
                    continue;
                }
                Err(e) => {
                    v.push(format!("archive segment {}: {e}", segment.name));
                    continue;
                }
            }
            let mut lines = 0u64;
            let mut refunds = 0u64;
            let read = segment::for_each_line(&data, |raw| {
                lines += 1;
                match segment.kind {
                    SegmentKind::Payments => match serde_json::from_slice::<ArchivedPayment>(raw) {
                        Ok(line) => {
                            refunds += line.refunds.len() as u64;
                            if segment.hot_removed {
                                check_not_hot(&line, hot_payments, hot_refunds, segment, v);
                            }
                        }
                        Err(e) => v.push(format!(
                            "archive segment {}: line {lines} does not decode: {e}",
                            segment.name
                        )),
                    },
                    SegmentKind::Events => {
                        if let Err(e) = serde_json::from_slice::<ArchivedEvent>(raw) {
                            v.push(format!(
                                "archive segment {}: line {lines} does not decode: {e}",
                                segment.name
                            ));
                        }
                    }
                }
                Ok(())
            });
            if let Err(e) = read {
                v.push(format!("archive segment {}: {e}", segment.name));
                continue;
            }
            if lines != segment.lines || refunds != segment.refunds {
                v.push(format!(
                    "archive segment {}: holds {lines} lines and {refunds} refunds, its manifest says {} and {}",
                    segment.name, segment.lines, segment.refunds
                ));
            }
            match segment.kind {
                SegmentKind::Payments => {
                    counts.payments += lines;
                    counts.refunds += refunds;
                    if let Err(e) = self.verify_index(segment, v) {
                        v.push(format!("archive segment {}: {e}", segment.name));
                    }
                }
                SegmentKind::Events => counts.events += lines,
            }
        }
        Ok(counts)
    }

    /// The index is whole, sorted, and each entry points at a line holding its id at its
    /// version.
    fn verify_index(&self, segment: &SegmentMeta, v: &mut Vec<String>) -> Result<(), StoreError> {
        let Some(meta) = &segment.index else {
            v.push(format!("archive segment {}: no index", segment.name));
            return Ok(());
        };
        let path = self.archive.dir().join(segment.index_file());
        match segment::sha256_of(&path) {
            Ok((sha, bytes)) if sha == meta.sha256 && bytes == meta.bytes => {}
            _ => {
                v.push(format!(
                    "archive segment {}: {} does not match its checksum",
                    segment.name,
                    segment.index_file()
                ));
                return Ok(());
            }
        }
        let index = IndexFile::open(path, meta.width, meta.entries)?;
        let mut previous: Option<String> = None;
        let mut frame: Option<(u64, ArchivedLines)> = None;
        for n in 0..index.len() {
            let entry = index.entry(n)?;
            if previous.as_ref().is_some_and(|p| *p >= entry.id) {
                v.push(format!(
                    "archive segment {}: index not sorted at {}",
                    segment.name, entry.id
                ));
            }
            if frame
                .as_ref()
                .is_none_or(|(at, _)| *at != entry.frame_offset)
            {
                let raw = segment::read_frame(
                    &self.archive.dir().join(segment.data_file()),
                    entry.frame_offset,
                    entry.frame_len,
                )?;
                let lines = raw
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_slice::<ArchivedPayment>(l).ok())
                    .collect();
                frame = Some((entry.frame_offset, lines));
            }
            let lines = &frame.as_ref().expect("read").1;
            let found = lines
                .get(usize::from(entry.line))
                .and_then(Option::as_ref)
                .is_some_and(|line| {
                    (line.payment.id == entry.id && line.payment.version == entry.version)
                        || line
                            .refunds
                            .iter()
                            .any(|r| r.id == entry.id && r.version == entry.version)
                });
            if !found {
                v.push(format!(
                    "archive segment {}: the index points {} at a line that does not hold it",
                    segment.name, entry.id
                ));
            }
            previous = Some(entry.id);
        }
        Ok(())
    }
}

type ArchivedLines = Vec<Option<ArchivedPayment>>;

fn check_not_hot(
    line: &ArchivedPayment,
    hot_payments: &HashMap<&str, &PaymentRecord>,
    hot_refunds: &HashMap<&str, &RefundRecord>,
    segment: &SegmentMeta,
    v: &mut Vec<String>,
) {
    if let Some(hot) = hot_payments.get(line.payment.id.as_str())
        && hot.version <= line.payment.version
    {
        v.push(format!(
            "payment {} is archived (segment {}) and still in the database at version {}",
            line.payment.id, segment.name, hot.version
        ));
    }
    for r in &line.refunds {
        if let Some(hot) = hot_refunds.get(r.id.as_str())
            && hot.version <= r.version
            && !hot_payments.contains_key(line.payment.id.as_str())
        {
            v.push(format!(
                "refund {} is archived (segment {}) and still in the database",
                r.id, segment.name
            ));
        }
    }
}
