//! The archive: finished payments, their refunds and their events, once older than the
//! retention (`[store] archive_after_days`), leave sled's trees for segment files under
//! `<data_dir>/archive/` (`segment.rs`), so that the daemon's memory and restart time follow
//! the recent payments, not all of them.
//!
//! - **Format**: zstd-compressed JSON Lines with a sorted text index per segment. Standard
//!   tools read it directly (`zstdcat x.payments.jsonl.zst | jq`, `look id x.payments.idx`);
//!   the records keep their nesting (metadata, failure, refunds) as the API shows it; and a
//!   lookup by id reads a few index lines and one frame, holding nothing in memory between
//!   lookups. (Parquet would suit column scans, but maps nested records awkwardly and its
//!   crates would add minutes to a build of this project on its 2 cores.)
//! - **Manifest** (`MANIFEST.json`): every committed segment with its sha256, counts and the
//!   span of its ids. A segment exists when the manifest names it; it is written (under
//!   `.tmp` names, synced, renamed) before the manifest, and the manifest is replaced
//!   atomically (write, sync, rename, sync the directory). Files a crash left that the
//!   manifest does not name are deleted by the next run.
//! - **Leaving the hot trees** happens after the commit (`run.rs`); a segment whose
//!   objects are not all removed yet says so (`hot_removed: false`), and the store finishes
//!   the removal at open. Until then an object may be both hot and archived: readers prefer
//!   the hot record, then the newest segment, so nothing is seen twice.

mod reads;
mod run;
pub mod segment;
#[cfg(test)]
pub(super) mod tests;
mod verify;

pub use crate::store::port::Found;
pub use verify::ArchiveCounts;

pub use run::{ArchivePolicy, ArchiveReport};

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use self::segment::{Entry, IndexFile, corrupt, nth_line, read_frame};
use super::StoreError;
use crate::domain::records::{EventRecord, PaymentRecord, RefundRecord};

const MANIFEST: &str = "MANIFEST.json";
const MANIFEST_FORMAT: u32 = 1;
pub const ARCHIVE_DIR: &str = "archive";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    Payments,
    Events,
}

/// A committed segment, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// `<UTC date of the run>-<number>`, e.g. `20261206-000003`.
    pub name: String,
    pub kind: SegmentKind,
    pub written_at_ms: i64,
    /// Payments (or events) in the segment.
    pub lines: u64,
    #[serde(default)]
    pub refunds: u64,
    pub data_bytes: u64,
    pub data_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexMeta>,
    /// The lowest and highest payment id (payments) or sequence number (events, in decimal).
    pub first: String,
    pub last: String,
    /// The lowest and highest refund id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_ids: Option<[String; 2]>,
    /// Whether every object of the segment has left the hot trees.
    pub hot_removed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub width: u32,
    pub entries: u64,
    pub bytes: u64,
    pub sha256: String,
}

impl SegmentMeta {
    pub fn data_file(&self) -> String {
        match self.kind {
            SegmentKind::Payments => format!("{}.payments.jsonl.zst", self.name),
            SegmentKind::Events => format!("{}.events.jsonl.zst", self.name),
        }
    }

    pub fn index_file(&self) -> String {
        format!("{}.payments.idx", self.name)
    }

    /// Whether `id` may be in this segment's index.
    fn may_hold(&self, id: &str) -> bool {
        self.kind == SegmentKind::Payments
            && ((self.first.as_str() <= id && id <= self.last.as_str())
                || self
                    .refund_ids
                    .as_ref()
                    .is_some_and(|[a, b]| a.as_str() <= id && id <= b.as_str()))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The number the next segment gets.
    pub next: u64,
    pub segments: Vec<SegmentMeta>,
}

/// One line of a payments segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedPayment {
    pub payment: PaymentRecord,
    pub refunds: Vec<RefundRecord>,
}

/// One line of an events segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedEvent {
    pub seq: u64,
    pub event: EventRecord,
}

/// The archive of a data dir: its manifest in memory (a few hundred bytes per segment),
/// everything else read from the files when asked.
pub struct Archive {
    dir: PathBuf,
    manifest: RwLock<Arc<Manifest>>,
}

impl Archive {
    /// Opens the archive under `data_dir` (none yet is an empty one).
    pub fn open(data_dir: &Path) -> Result<Archive, StoreError> {
        let dir = data_dir.join(ARCHIVE_DIR);
        let path = dir.join(MANIFEST);
        let manifest = match std::fs::read(&path) {
            Ok(raw) => {
                let manifest: Manifest =
                    serde_json::from_slice(&raw).map_err(|e| corrupt(&path, e))?;
                if let Some(bad) = manifest.segments.iter().find(|s| {
                    s.name.is_empty() || !s.name.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                }) {
                    return Err(corrupt(&path, format!("segment name {:?}", bad.name)));
                }
                if manifest.format > MANIFEST_FORMAT {
                    return Err(corrupt(
                        &path,
                        format!(
                            "format {} is newer than this paygated reads ({MANIFEST_FORMAT})",
                            manifest.format
                        ),
                    ));
                }
                manifest
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest {
                format: MANIFEST_FORMAT,
                next: 1,
                segments: Vec::new(),
            },
            Err(e) => return Err(corrupt(&path, e)),
        };
        Ok(Archive {
            dir,
            manifest: RwLock::new(Arc::new(manifest)),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> Arc<Manifest> {
        self.manifest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the manifest on disk atomically, then in memory.
    fn commit(&self, manifest: Manifest) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| corrupt(&self.dir, e))?;
        let path = self.dir.join(MANIFEST);
        let tmp = self.dir.join(format!("{MANIFEST}.tmp"));
        let raw = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        std::fs::write(&tmp, raw)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| StoreError::Flush(format!("archive manifest {}: {e}", path.display())))?;
        segment::sync_dir(&self.dir)?;
        *self.manifest.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(manifest);
        Ok(())
    }

    fn index_of(&self, segment: &SegmentMeta) -> Result<Option<IndexFile>, StoreError> {
        segment
            .index
            .as_ref()
            .map(|index| {
                IndexFile::open(
                    self.dir.join(segment.index_file()),
                    index.width,
                    index.entries,
                )
            })
            .transpose()
    }

    /// The line an index entry points at.
    fn line_of(&self, segment: &SegmentMeta, entry: &Entry) -> Result<ArchivedPayment, StoreError> {
        let path = self.dir.join(segment.data_file());
        let frame = read_frame(&path, entry.frame_offset, entry.frame_len)?;
        let line =
            nth_line(&frame, entry.line).ok_or_else(|| corrupt(&path, "index past its frame"))?;
        serde_json::from_slice(line).map_err(|e| corrupt(&path, e))
    }

    /// The newest archived line holding `id` (a payment or a refund id).
    fn find(&self, id: &str) -> Result<Option<ArchivedPayment>, StoreError> {
        let manifest = self.manifest();
        for segment in manifest.segments.iter().rev().filter(|s| s.may_hold(id)) {
            let Some(index) = self.index_of(segment)? else {
                continue;
            };
            if let Some(entry) = index.find(id)? {
                return self.line_of(segment, &entry).map(Some);
            }
        }
        Ok(None)
    }

    /// An archived payment, with its refunds.
    pub fn payment(&self, id: &str) -> Result<Option<ArchivedPayment>, StoreError> {
        Ok(self.find(id)?.filter(|line| line.payment.id == id))
    }

    pub fn refund(&self, id: &str) -> Result<Option<RefundRecord>, StoreError> {
        Ok(self
            .find(id)?
            .and_then(|line| line.refunds.into_iter().find(|r| r.id == id)))
    }

    /// Archived payments, newest first (by id, as the hot list), of one merchant or all,
    /// below `before`: a merge of every segment's index, the newest segment's copy of an id
    /// winning.
    pub fn payments_desc(
        &self,
        merchant_id: Option<&str>,
        before: Option<&str>,
    ) -> Result<ArchivedPayments<'_>, StoreError> {
        let manifest = self.manifest();
        let mut cursors = Vec::new();
        for (n, segment) in manifest.segments.iter().enumerate() {
            if segment.kind != SegmentKind::Payments
                || before.is_some_and(|b| segment.first.as_str() >= b)
            {
                continue;
            }
            let Some(index) = self.index_of(segment)? else {
                continue;
            };
            // Payment ids sort before refund ids (`pay_` < `re_`): start below the first
            // refund entry, or below `before`.
            let end = index.lower_bound("pay`")?;
            let end = match before {
                Some(before) => end.min(index.lower_bound(before)?),
                None => end,
            };
            cursors.push(Cursor {
                segment: n,
                index,
                next: end,
                buffered: Vec::new(),
            });
        }
        Ok(ArchivedPayments {
            archive: self,
            manifest,
            cursors,
            merchant_id: merchant_id.map(str::to_owned),
        })
    }
}

/// One segment's index, read backwards in chunks.
struct Cursor {
    segment: usize,
    index: IndexFile,
    /// Entries below this one are still to come.
    next: u64,
    /// Read ahead, the next one last.
    buffered: Vec<Entry>,
}

const CURSOR_CHUNK: u64 = 64;

impl Cursor {
    fn peek(&mut self) -> Result<Option<&Entry>, StoreError> {
        if self.buffered.is_empty() && self.next > 0 {
            let from = self.next.saturating_sub(CURSOR_CHUNK);
            self.buffered = self.index.entries(from, self.next)?;
            self.next = from;
        }
        Ok(self.buffered.last().filter(|e| e.id.starts_with("pay_")))
    }
}

/// Archived payments in descending id order (see [`Archive::payments_desc`]).
pub struct ArchivedPayments<'a> {
    archive: &'a Archive,
    manifest: Arc<Manifest>,
    cursors: Vec<Cursor>,
    merchant_id: Option<String>,
}

impl ArchivedPayments<'_> {
    /// The next id and where it lies, without reading its line.
    pub fn next_id(&mut self) -> Result<Option<(String, ArchivedAt)>, StoreError> {
        loop {
            let mut best: Option<(usize, String)> = None;
            for (i, cursor) in self.cursors.iter_mut().enumerate() {
                if let Some(entry) = cursor.peek()? {
                    // Later segments (higher `i`) win ties: their copy is newer.
                    if best.as_ref().is_none_or(|(_, id)| entry.id >= *id) {
                        best = Some((i, entry.id.clone()));
                    }
                }
            }
            let Some((winner, id)) = best else {
                return Ok(None);
            };
            let mut found = None;
            for (i, cursor) in self.cursors.iter_mut().enumerate() {
                if cursor.peek()?.is_some_and(|e| e.id == id) {
                    let entry = cursor.buffered.pop().expect("peeked");
                    if i == winner {
                        found = Some((cursor.segment, entry));
                    }
                }
            }
            let (segment, entry) = found.expect("the winner holds the id");
            if self
                .merchant_id
                .as_deref()
                .is_none_or(|m| m == entry.merchant_id)
            {
                return Ok(Some((id, ArchivedAt { segment, entry })));
            }
        }
    }

    pub fn read(&self, at: &ArchivedAt) -> Result<ArchivedPayment, StoreError> {
        self.archive
            .line_of(&self.manifest.segments[at.segment], &at.entry)
    }
}

/// Where an archived payment lies.
pub struct ArchivedAt {
    segment: usize,
    entry: Entry,
}
