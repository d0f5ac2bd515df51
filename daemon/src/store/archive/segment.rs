//! The archive's segment files: how they are written, and read without loading them.
//!
//! A **payments segment** is two files:
//! - `<name>.payments.jsonl.zst`: JSON Lines, one line per archived payment,
//!   `{"payment": {...}, "refunds": [{...}, ...]}`, the records as the store keeps them,
//!   compressed as independent zstd frames of up to [`FRAME_LINES`] lines. `zstdcat` reads
//!   the file as one stream of lines; a lookup decompresses one frame.
//! - `<name>.payments.idx`: a text index with one line per payment id and per refund id,
//!   sorted by id: `id \t frame offset \t frame length \t line in frame \t version \t
//!   merchant id`. Every line is padded with spaces to the same width, so that line `n`
//!   starts at byte `n * width`: a lookup is a binary search of a few reads, and nothing of
//!   the index stays in memory.
//!
//! An **events segment** is one file, `<name>.events.jsonl.zst`: `{"seq": n, "event":
//! {...}}` per line, in sequence order, framed the same way.
//!
//! Files are written under a `.tmp` name, synced, then renamed into place; the manifest
//! (`mod.rs`) commits them.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::store::StoreError;

/// Lines per zstd frame: a lookup decompresses one frame (~100 KiB of JSON at most).
pub const FRAME_LINES: usize = 128;
/// Bounds on what a damaged or hostile file can make a reader allocate: a frame (before and
/// after decompression), a line, an index line.
const FRAME_BYTES_MAX: u64 = 16 << 20;
const LINE_BYTES_MAX: u64 = 16 << 20;
const INDEX_WIDTH_MAX: u32 = 4096;
const ZSTD_LEVEL: i32 = 3;

pub(super) fn corrupt(path: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("archive file {}: {what}", path.display()))
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Flush(format!("archive file {}: {e}", path.display()))
}

/// One line of a payments segment's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub frame_offset: u64,
    pub frame_len: u32,
    pub line: u16,
    pub version: u64,
    pub merchant_id: String,
}

impl Entry {
    fn text(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            self.id, self.frame_offset, self.frame_len, self.line, self.version, self.merchant_id
        )
    }

    fn parse(raw: &[u8]) -> Option<Entry> {
        let text = std::str::from_utf8(raw).ok()?.trim_end_matches([' ', '\n']);
        let mut fields = text.split('\t');
        let entry = Entry {
            id: fields.next()?.to_owned(),
            frame_offset: fields.next()?.parse().ok()?,
            frame_len: fields.next()?.parse().ok()?,
            line: fields.next()?.parse().ok()?,
            version: fields.next()?.parse().ok()?,
            merchant_id: fields.next()?.to_owned(),
        };
        (fields.next().is_none() && !entry.id.is_empty()).then_some(entry)
    }
}

/// A file being written under its `.tmp` name, hashed as it goes.
struct HashedFile {
    file: std::io::BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    hasher: Sha256,
    bytes: u64,
}

impl HashedFile {
    fn create(path: PathBuf) -> Result<HashedFile, StoreError> {
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
        Ok(HashedFile {
            file: std::io::BufWriter::new(file),
            tmp,
            path,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all(bytes)
            .map_err(|e| io_error(&self.tmp, e))?;
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Syncs the file under its `.tmp` name; [`Written::place`] renames it.
    fn finish(self) -> Result<Written, StoreError> {
        let file = self
            .file
            .into_inner()
            .map_err(|e| io_error(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| io_error(&self.tmp, e))?;
        Ok(Written {
            tmp: self.tmp,
            path: self.path,
            sha256: hex::encode(self.hasher.finalize()),
            bytes: self.bytes,
        })
    }
}

/// A synced file still under its `.tmp` name.
pub struct Written {
    tmp: PathBuf,
    path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
}

impl Written {
    pub fn place(&self) -> Result<(), StoreError> {
        std::fs::rename(&self.tmp, &self.path).map_err(|e| io_error(&self.path, e))
    }
}

/// Writes lines as zstd frames of up to [`FRAME_LINES`] lines.
pub struct FrameWriter {
    out: HashedFile,
    pending: Vec<u8>,
    pending_lines: usize,
    /// Offset and length of each frame written.
    frames: Vec<(u64, u32)>,
}

impl FrameWriter {
    pub fn create(path: PathBuf) -> Result<FrameWriter, StoreError> {
        Ok(FrameWriter {
            out: HashedFile::create(path)?,
            pending: Vec::new(),
            pending_lines: 0,
            frames: Vec::new(),
        })
    }

    /// Adds one line (without its newline); returns its frame number and line in the frame.
    pub fn push(&mut self, line: &[u8]) -> Result<(usize, u16), StoreError> {
        let at = (self.frames.len(), self.pending_lines as u16);
        self.pending.extend_from_slice(line);
        self.pending.push(b'\n');
        self.pending_lines += 1;
        if self.pending_lines == FRAME_LINES {
            self.end_frame()?;
        }
        Ok(at)
    }

    fn end_frame(&mut self) -> Result<(), StoreError> {
        if self.pending_lines == 0 {
            return Ok(());
        }
        let frame = zstd::bulk::compress(&self.pending, ZSTD_LEVEL)
            .map_err(|e| io_error(&self.out.tmp, e))?;
        self.frames.push((self.out.bytes, frame.len() as u32));
        self.out.write(&frame)?;
        self.pending.clear();
        self.pending_lines = 0;
        Ok(())
    }

    /// Ends the last frame and syncs the file; returns it with where each frame lies.
    pub fn finish(mut self) -> Result<(Written, Vec<(u64, u32)>), StoreError> {
        self.end_frame()?;
        Ok((self.out.finish()?, self.frames))
    }
}

/// An index entry waiting for its frame's offset.
pub struct PendingEntry {
    pub id: String,
    pub frame: usize,
    pub line: u16,
    pub version: u64,
    pub merchant_id: String,
}

/// Writes the sorted, fixed-width index of `entries`; returns the file and its line width.
pub fn write_index(
    path: PathBuf,
    mut entries: Vec<PendingEntry>,
    frames: &[(u64, u32)],
) -> Result<(Written, u32), StoreError> {
    entries.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let lines: Vec<String> = entries
        .into_iter()
        .map(|e| {
            let (frame_offset, frame_len) = frames[e.frame];
            Entry {
                id: e.id,
                frame_offset,
                frame_len,
                line: e.line,
                version: e.version,
                merchant_id: e.merchant_id,
            }
            .text()
        })
        .collect();
    let width = lines.iter().map(|l| l.len() + 1).max().unwrap_or(1);
    let mut out = HashedFile::create(path)?;
    let mut padded = Vec::with_capacity(width);
    for line in lines {
        padded.clear();
        padded.extend_from_slice(line.as_bytes());
        padded.resize(width - 1, b' ');
        padded.push(b'\n');
        out.write(&padded)?;
    }
    Ok((out.finish()?, width as u32))
}

/// A payments segment's index, read in place.
pub struct IndexFile {
    file: File,
    path: PathBuf,
    width: u64,
    entries: u64,
}

impl IndexFile {
    pub fn open(path: PathBuf, width: u32, entries: u64) -> Result<IndexFile, StoreError> {
        let file = File::open(&path).map_err(|e| io_error(&path, e))?;
        let len = file.metadata().map_err(|e| io_error(&path, e))?.len();
        if width == 0
            || width > INDEX_WIDTH_MAX
            || entries.checked_mul(u64::from(width)) != Some(len)
        {
            return Err(corrupt(
                &path,
                format!("{len} bytes do not hold {entries} lines of {width}"),
            ));
        }
        Ok(IndexFile {
            file,
            path,
            width: u64::from(width.max(1)),
            entries,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn len(&self) -> u64 {
        self.entries
    }

    /// Entries `from..to`, read at once.
    pub fn entries(&self, from: u64, to: u64) -> Result<Vec<Entry>, StoreError> {
        let mut raw = vec![0u8; ((to - from) * self.width) as usize];
        self.file
            .read_exact_at(&mut raw, from * self.width)
            .map_err(|e| io_error(&self.path, e))?;
        raw.chunks(self.width as usize)
            .map(|line| Entry::parse(line).ok_or_else(|| corrupt(&self.path, "bad index line")))
            .collect()
    }

    pub fn entry(&self, n: u64) -> Result<Entry, StoreError> {
        Ok(self.entries(n, n + 1)?.remove(0))
    }

    /// The first entry whose id is not below `id` (`len()` if none).
    pub fn lower_bound(&self, id: &str) -> Result<u64, StoreError> {
        let (mut lo, mut hi) = (0, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid)?.id.as_str() < id {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    pub fn find(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        let at = self.lower_bound(id)?;
        if at == self.entries {
            return Ok(None);
        }
        let entry = self.entry(at)?;
        Ok((entry.id == id).then_some(entry))
    }
}

/// The decompressed frame at `offset`.
pub fn read_frame(path: &Path, offset: u64, len: u32) -> Result<Vec<u8>, StoreError> {
    use std::io::Read;
    if u64::from(len) > FRAME_BYTES_MAX {
        return Err(corrupt(path, format!("a frame of {len} bytes at {offset}")));
    }
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut raw = vec![0u8; len as usize];
    file.read_exact_at(&mut raw, offset)
        .map_err(|e| io_error(path, e))?;
    let bad = |e: std::io::Error| corrupt(path, format!("frame at {offset}: {e}"));
    let mut frame = Vec::new();
    zstd::stream::read::Decoder::new(&raw[..])
        .map_err(bad)?
        .take(FRAME_BYTES_MAX + 1)
        .read_to_end(&mut frame)
        .map_err(bad)?;
    if frame.len() as u64 > FRAME_BYTES_MAX {
        return Err(corrupt(path, format!("the frame at {offset} is too large")));
    }
    Ok(frame)
}

/// Line `n` of a decompressed frame.
pub fn nth_line(frame: &[u8], n: u16) -> Option<&[u8]> {
    frame.split(|b| *b == b'\n').nth(usize::from(n))
}

/// Every line of a data file, in order, decompressed as a stream (for removals and
/// `store verify`); `each` sees each line.
pub fn for_each_line(
    path: &Path,
    mut each: impl FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let decoder = zstd::stream::read::Decoder::new(file).map_err(|e| io_error(path, e))?;
    let mut reader = BufReader::new(decoder);
    let mut line = Vec::new();
    let mut count = 0;
    loop {
        use std::io::Read;
        line.clear();
        let read = (&mut reader)
            .take(LINE_BYTES_MAX + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| corrupt(path, e))?;
        if read == 0 {
            return Ok(count);
        }
        if read as u64 > LINE_BYTES_MAX {
            return Err(corrupt(path, "a line is too long"));
        }
        if line.last() != Some(&b'\n') {
            return Err(corrupt(path, "the last line is cut short"));
        }
        each(&line[..line.len() - 1])?;
        count += 1;
    }
}

/// The sha256 of a file, streamed.
pub fn sha256_of(path: &Path) -> Result<(String, u64), StoreError> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).map_err(|e| io_error(path, e))?;
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// Makes renames and creations in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}
