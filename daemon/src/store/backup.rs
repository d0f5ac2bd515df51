//! Backup and restore of the embedded store, while the daemon serves.
//!
//! **A consistent point without stopping the daemon.** Every write of the store goes through
//! its single writer (`txn.rs`), one change at a time. [`Store::stream_backup`] holds the
//! writer for an instant between two changes, flushes, and installs a point in time
//! (`point_in_time.rs`): from then on, each key a change writes for the first time, ahead of
//! where the backup has read, has its value at the point kept first. The backup reads every
//! tree while the daemon goes on writing, and writes each key as it was at the point: the
//! copy is the store exactly as it was after the last change before the point, none half
//! applied, everything acknowledged before it included (an answer is sent only after its
//! change). Writes wait only for the instant of the point (reported as `paused_ms`), then
//! cost one read of each key's old value the first time they touch it. (One tree is written
//! beside the writer: the digests of compiled plugins, a cache no change touches; a backup
//! has a digest recorded meanwhile or not, and a daemon on the restored copy compiles what it
//! lacks.) Then, with archive runs still held off, the archive: its manifest and the segment
//! files it names, which are never changed once written.
//!
//! **The stream** (one format for a daemon answering on its control socket and for a
//! stopped data dir read in process): a header, then frames, each a tag byte and
//! length-prefixed fields, ending with a frame that counts them and carries the SHA-256 of
//! every byte before it, so that a cut or damaged stream is refused.
//!
//! | tag | fields | what |
//! | --- | --- | --- |
//! | `T` | name | the keys that follow are this tree's |
//! | `K` | key, value | one key |
//! | `M` | bytes | the archive's `MANIFEST.json` (absent: no archive) |
//! | `F` | name, bytes | one archive file |
//! | `X` | message | the sender failed: the stream is void |
//! | `E` | keys (u64), files (u64), paused ms (u64), SHA-256 | the end |
//!
//! **A backup directory** ([`receive`]) is shaped like a data dir, so `paygated store verify
//! --data-dir` reads it as it is: `db/` (a sled database built from the stream), `archive/`,
//! and `BACKUP.json` (what it holds, with the database's checksum and each archive file's
//! SHA-256). It is built under `<DIR>.partial` and renamed into place once synced: a backup
//! cut by a crash is never taken for a whole one. [`restore`] copies it into a new data dir,
//! checks every checksum, and leaves the database there last.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sled::IVec;
use thiserror::Error;

use super::archive::ARCHIVE_DIR;
use super::archive::segment::sync_dir;
use super::compact::sync_tree;
use super::{DB_DIR, SCHEMA_VERSION, Store, StoreError, open_sled};

const MAGIC: &[u8; 16] = b"PAYGATE-BACKUP\n\0";
const STREAM_FORMAT: u32 = 1;
/// What describes a backup directory.
pub const BACKUP_FILE: &str = "BACKUP.json";
const MANIFEST_FILE: &str = "MANIFEST.json";
/// Where a backup's stream is kept while its database is built.
const SPOOL_FILE: &str = "stream.partial";
/// Longest field a frame may announce (an archive file, copied through a buffer).
const FIELD_MAX: u64 = 1 << 34;
/// Longest field held in memory (a tree name, a key, a value, the archive's manifest).
const VALUE_MAX: u64 = 1 << 28;

#[derive(Debug, Error)]
pub enum BackupError {
    /// Something asked of the command that cannot be done (a target that holds data).
    #[error("{0}")]
    Refused(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The stream or a backup directory is not what it says it is.
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    /// The daemon (or the data dir) could not be read.
    #[error("the backup could not be taken: {0}")]
    Sender(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a backup directory holds (`BACKUP.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: u32,
    /// The paygated that took it.
    pub paygated: String,
    pub schema_version: u32,
    pub taken_at_ms: i64,
    pub trees: u64,
    pub keys: u64,
    /// sled's checksum of every key and value of `db/` (`sled::Db::checksum`).
    pub db_checksum: u32,
    /// How long writes waited while the trees were read.
    pub paused_ms: u64,
    pub archive: Vec<ArchiveFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What the sender wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streamed {
    pub keys: u64,
    pub files: u64,
    pub paused_ms: u64,
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn field(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(&(bytes.len() as u64).to_be_bytes())?;
    out.write_all(bytes)
}

impl Store {
    /// Writes a consistent copy of the store to `out` (the module's stream). Writes wait while
    /// the trees are read; archive runs wait until the archive is written too.
    pub fn stream_backup(&self, out: impl Write) -> Result<Streamed, StoreError> {
        let io = |e: std::io::Error| StoreError::Backup(format!("writing the backup: {e}"));
        let mut out = Hashing {
            inner: out,
            hash: Sha256::new(),
        };
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&STREAM_FORMAT.to_be_bytes()).map_err(io)?;
        out.write_all(&SCHEMA_VERSION.to_be_bytes()).map_err(io)?;
        out.write_all(&crate::clock::now_ms().to_be_bytes())
            .map_err(io)?;
        // Lock order: archive runs, then the writer (an archive run takes the writer under its
        // own lock; nothing takes them the other way round). Archive runs wait until the
        // archive is copied too, so that the trees and the archive's manifest agree.
        let _no_archive_run = self.archive_runs.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys = 0u64;
        let trees = self
            .db
            .tree_names()
            .into_iter()
            .map(|name| self.db.open_tree(name))
            .collect::<sled::Result<Vec<_>>>()
            .map_err(|source| self.database_error(source))?;
        // Flushed first, so that the flush at the point, under the writer, is short.
        self.flush()?;
        let started = Instant::now();
        // The point: between two changes, flushed. Writes wait only for this instant; a
        // request path waits for its turn without holding a runtime thread.
        let point = {
            let _turn = self.turns.blocking_lock();
            self.writer
                .point_in_time(&trees, || self.flush().map(drop))?
        };
        let paused = started.elapsed();
        let broken = |why: String| StoreError::Backup(why);
        for tree in &trees {
            let name = tree.name();
            out.write_all(b"T").map_err(io)?;
            field(&mut out, &name).map_err(io)?;
            // Up to where the tree ended at the point: what was made past it since is not the
            // point's.
            if let Some(end) = point.point().end_of(&name) {
                for entry in tree.range(..=end) {
                    let (key, value) = entry.map_err(|source| self.database_error(source))?;
                    if point.point().read(&name, &key).map_err(broken)? {
                        out.write_all(b"K").map_err(io)?;
                        field(&mut out, &key).map_err(io)?;
                        field(&mut out, &value).map_err(io)?;
                        keys += 1;
                    }
                }
            }
            point.point().read_all(&name);
        }
        // The keys written since the point, ahead of the reading: as they were at the point.
        let kept = point.point().kept().map_err(broken)?;
        drop(point);
        let mut tree: Option<&IVec> = None;
        for ((name, key), value) in &kept {
            if tree != Some(name) {
                out.write_all(b"T").map_err(io)?;
                field(&mut out, name).map_err(io)?;
                tree = Some(name);
            }
            out.write_all(b"K").map_err(io)?;
            field(&mut out, key).map_err(io)?;
            field(&mut out, value).map_err(io)?;
            keys += 1;
        }
        let mut files = 0u64;
        let manifest_path = self.archive.dir().join(MANIFEST_FILE);
        match std::fs::read(&manifest_path) {
            Ok(raw) => {
                out.write_all(b"M").map_err(io)?;
                field(&mut out, &raw).map_err(io)?;
                // The segments the bytes on disk name (the copy restores those bytes).
                let manifest: super::archive::Manifest =
                    serde_json::from_slice(&raw).map_err(|e| {
                        StoreError::Corrupt(format!("{}: {e}", manifest_path.display()))
                    })?;
                for segment in &manifest.segments {
                    let mut names = vec![segment.data_file()];
                    if segment.index.is_some() {
                        names.push(segment.index_file());
                    }
                    for name in names {
                        let path = self.archive.dir().join(&name);
                        let mut file = File::open(&path)
                            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
                        let len = file.metadata().map_err(io)?.len();
                        out.write_all(b"F").map_err(io)?;
                        field(&mut out, name.as_bytes()).map_err(io)?;
                        out.write_all(&len.to_be_bytes()).map_err(io)?;
                        let copied =
                            std::io::copy(&mut (&mut file).take(len), &mut out).map_err(io)?;
                        if copied != len {
                            return Err(StoreError::Corrupt(format!(
                                "{} shrank while it was copied",
                                path.display()
                            )));
                        }
                        files += 1;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Corrupt(format!(
                    "{}: {e}",
                    manifest_path.display()
                )));
            }
        }
        let paused_ms = paused.as_millis() as u64;
        out.write_all(b"E").map_err(io)?;
        let mut end = Vec::with_capacity(24);
        end.extend_from_slice(&keys.to_be_bytes());
        end.extend_from_slice(&files.to_be_bytes());
        end.extend_from_slice(&paused_ms.to_be_bytes());
        out.write_all(&end).map_err(io)?;
        let digest = out.hash.clone().finalize();
        out.inner.write_all(&digest).map_err(io)?;
        out.inner.flush().map_err(io)?;
        Ok(Streamed {
            keys,
            files,
            paused_ms,
        })
    }
}

/// Says on `out` that the backup failed (a frame `X`), so that the receiver does not wait
/// for an end that will not come. Best effort: the connection may be gone.
pub fn stream_failure(mut out: impl Write, message: &str) {
    let _ = out
        .write_all(b"X")
        .and_then(|()| field(&mut out, message.as_bytes()))
        .and_then(|()| out.flush());
}

/// The part of `dir` a backup is built in before it takes `dir`'s name.
fn partial_of(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_owned();
    name.push(".partial");
    dir.with_file_name(name)
}

/// Refuses a `dir` that exists and holds anything: a backup or a restore never writes over
/// data.
fn refuse_unless_empty(dir: &Path, what: &str) -> Result<(), BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut listing) => match listing.next() {
            None => Ok(()),
            Some(_) => Err(BackupError::Refused(format!(
                "{} is not empty; {what} goes into a new or empty directory",
                dir.display()
            ))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(dir)(e)),
    }
}

/// Whether the directory `dir` holds no entry but those named.
fn holds_only(dir: &Path, names: &[&str]) -> Result<bool, BackupError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let name = entry.map_err(io(dir))?.file_name();
        if !names.iter().any(|n| name == *n) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks that a backup may go to `dir`, before anything is asked of the daemon.
pub fn check_target(dir: &Path) -> Result<(), BackupError> {
    refuse_unless_empty(dir, "a backup")
}

/// Takes a backup into `dir` (new or empty): `send` writes the stream into the spool file it
/// is given (the daemon's answer copied from its socket, or a stopped store's own
/// [`Store::stream_backup`]); the writes wait only for that copy, not for the database
/// built from it afterwards.
pub fn receive(
    dir: &Path,
    send: impl FnOnce(&mut BufWriter<File>) -> Result<(), BackupError>,
) -> Result<BackupManifest, BackupError> {
    check_target(dir)?;
    let partial = partial_of(dir);
    // A backup a crash cut left this behind: it was never whole, and is ours to remove
    // (only if it holds nothing but what a backup writes).
    if partial.exists() {
        if !holds_only(
            &partial,
            &[
                SPOOL_FILE,
                DB_DIR,
                ARCHIVE_DIR,
                BACKUP_FILE,
                super::LOCK_FILE,
            ],
        )? {
            return Err(BackupError::Refused(format!(
                "{} exists and is not a backup's unfinished copy; move it away first",
                partial.display()
            )));
        }
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    super::private_dir(&partial)?;
    let spool_path = partial.join(SPOOL_FILE);
    let mut spool = BufWriter::new(File::create(&spool_path).map_err(io(&spool_path))?);
    send(&mut spool)?;
    spool.flush().map_err(io(&spool_path))?;
    drop(spool);
    let manifest = build(&spool_path, &partial)?;
    std::fs::remove_file(&spool_path).map_err(io(&spool_path))?;
    let raw = serde_json::to_vec_pretty(&manifest).expect("a backup manifest serializes");
    let described = partial.join(BACKUP_FILE);
    std::fs::write(&described, raw).map_err(io(&described))?;
    sync_tree(&partial)?;
    if dir.exists() {
        // Empty (checked above): `rename` replaces an empty directory.
        std::fs::remove_dir(dir).map_err(io(dir))?;
    }
    std::fs::rename(&partial, dir).map_err(io(dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(manifest)
}

/// Reads a stream's frames, hashing them.
struct Frames<R> {
    input: R,
    hash: Sha256,
}

impl<R: Read> Frames<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), BackupError> {
        self.input.read_exact(buf).map_err(|e| {
            BackupError::Damaged(match e.kind() {
                std::io::ErrorKind::UnexpectedEof => "the stream ends before its end frame".into(),
                _ => e.to_string(),
            })
        })?;
        self.hash.update(&*buf);
        Ok(())
    }

    fn u64(&mut self) -> Result<u64, BackupError> {
        let mut raw = [0u8; 8];
        self.exact(&mut raw)?;
        Ok(u64::from_be_bytes(raw))
    }

    fn len(&mut self) -> Result<u64, BackupError> {
        let len = self.u64()?;
        if len > FIELD_MAX {
            return Err(BackupError::Damaged(format!(
                "a field of {len} bytes, more than any backup holds"
            )));
        }
        Ok(len)
    }

    /// A field held in memory (a name, a key, a value, the archive's manifest): read as it
    /// arrives, so that a damaged length costs only the bytes actually there.
    fn field(&mut self) -> Result<Vec<u8>, BackupError> {
        let len = self.len()?;
        if len > VALUE_MAX {
            return Err(BackupError::Damaged(format!(
                "a key or value of {len} bytes, more than the store holds"
            )));
        }
        let mut buf = Vec::new();
        (&mut self.input)
            .take(len)
            .read_to_end(&mut buf)
            .map_err(|e| BackupError::Damaged(e.to_string()))?;
        if buf.len() as u64 != len {
            return Err(BackupError::Damaged(
                "the stream ends before its end frame".into(),
            ));
        }
        self.hash.update(&buf);
        Ok(buf)
    }

    /// Copies a field of `len` bytes into `out`.
    fn copy_field(&mut self, len: u64, out: &mut impl Write) -> Result<(), BackupError> {
        let mut left = len;
        let mut buf = vec![0u8; 64 << 10];
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            self.exact(&mut buf[..n])?;
            out.write_all(&buf[..n])
                .map_err(|e| BackupError::Sender(format!("writing an archive file: {e}")))?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// Builds a backup directory's `db/` and `archive/` in `dir` from the stream in `spool`.
fn build(spool: &Path, dir: &Path) -> Result<BackupManifest, BackupError> {
    let mut frames = Frames {
        input: BufReader::with_capacity(1 << 20, File::open(spool).map_err(io(spool))?),
        hash: Sha256::new(),
    };
    let mut magic = [0u8; 16];
    frames
        .exact(&mut magic)
        .map_err(|_| BackupError::Damaged("the stream is empty or not a paygate backup".into()))?;
    if &magic != MAGIC {
        return Err(BackupError::Damaged("not a paygate backup stream".into()));
    }
    let mut word = [0u8; 4];
    frames.exact(&mut word)?;
    let format = u32::from_be_bytes(word);
    if format != STREAM_FORMAT {
        return Err(BackupError::Damaged(format!(
            "stream format {format}; this paygated reads {STREAM_FORMAT}"
        )));
    }
    frames.exact(&mut word)?;
    let schema_version = u32::from_be_bytes(word);
    if schema_version != SCHEMA_VERSION {
        return Err(BackupError::Damaged(format!(
            "the store is at schema {schema_version}; this paygated writes {SCHEMA_VERSION} (use the paygated that serves it)"
        )));
    }
    let taken_at_ms = frames.u64()? as i64;
    let db_path = dir.join(DB_DIR);
    let db =
        open_sled(&db_path, super::DEFAULT_CACHE_BYTES).map_err(|source| StoreError::Database {
            path: db_path.clone(),
            source,
        })?;
    let database_error = |source| StoreError::Database {
        path: db_path.clone(),
        source,
    };
    let archive_dir = dir.join(ARCHIVE_DIR);
    let mut tree: Option<sled::Tree> = None;
    let mut names = std::collections::HashSet::new();
    let (mut trees, mut keys) = (0u64, 0u64);
    let mut archive = Vec::new();
    let mut tag = [0u8; 1];
    loop {
        frames.exact(&mut tag)?;
        match &tag {
            b"T" => {
                let name = frames.field()?;
                tree = Some(db.open_tree(&name).map_err(database_error)?);
                // The kept keys come last, under their trees' names again.
                if names.insert(name) {
                    trees += 1;
                }
            }
            b"K" => {
                let key = frames.field()?;
                let value = frames.field()?;
                let Some(tree) = &tree else {
                    return Err(BackupError::Damaged("a key before its tree".into()));
                };
                tree.insert(key, value).map_err(database_error)?;
                keys += 1;
            }
            b"M" => {
                let raw = frames.field()?;
                std::fs::create_dir_all(&archive_dir).map_err(io(&archive_dir))?;
                let path = archive_dir.join(MANIFEST_FILE);
                std::fs::write(&path, &raw).map_err(io(&path))?;
                archive.push(MANIFEST_FILE.to_owned());
            }
            b"F" => {
                let name = String::from_utf8(frames.field()?)
                    .ok()
                    .filter(|n| is_archive_file_name(n))
                    .ok_or_else(|| BackupError::Damaged("an archive file's name".into()))?;
                let len = frames.len()?;
                if archive.is_empty() {
                    return Err(BackupError::Damaged(
                        "an archive file before the archive's manifest".into(),
                    ));
                }
                let path = archive_dir.join(&name);
                let mut file = BufWriter::new(File::create(&path).map_err(io(&path))?);
                frames.copy_field(len, &mut file)?;
                file.flush().map_err(io(&path))?;
                archive.push(name);
            }
            b"X" => {
                let message = frames.field()?;
                return Err(BackupError::Sender(
                    String::from_utf8_lossy(&message).into_owned(),
                ));
            }
            b"E" => {
                let (sent_keys, sent_files, paused_ms) =
                    (frames.u64()?, frames.u64()?, frames.u64()?);
                let expected = frames.hash.clone().finalize();
                let mut digest = [0u8; 32];
                frames
                    .input
                    .read_exact(&mut digest)
                    .map_err(|_| BackupError::Damaged("the end frame is cut".into()))?;
                let files = archive.iter().filter(|f| *f != MANIFEST_FILE).count() as u64;
                if digest[..] != expected[..] {
                    return Err(BackupError::Damaged(
                        "the stream's SHA-256 does not match its content".into(),
                    ));
                }
                if (sent_keys, sent_files) != (keys, files) {
                    return Err(BackupError::Damaged(format!(
                        "the stream says {sent_keys} keys and {sent_files} archive files; it holds {keys} and {files}"
                    )));
                }
                db.flush().map_err(database_error)?;
                drop(tree);
                drop(db);
                let db_checksum = settle(dir)?;
                // Digests taken after the open: it may have finished an interrupted archive
                // run's removals, which rewrites the archive's manifest.
                let archive = archive
                    .into_iter()
                    .map(|name| {
                        let path = archive_dir.join(&name);
                        let raw = std::fs::read(&path).map_err(io(&path))?;
                        Ok(ArchiveFile {
                            name,
                            bytes: raw.len() as u64,
                            sha256: hex::encode(Sha256::digest(&raw)),
                        })
                    })
                    .collect::<Result<Vec<_>, BackupError>>()?;
                return Ok(BackupManifest {
                    format: STREAM_FORMAT,
                    paygated: env!("CARGO_PKG_VERSION").into(),
                    schema_version,
                    taken_at_ms,
                    trees,
                    keys,
                    db_checksum,
                    paused_ms,
                    archive,
                });
            }
            other => {
                return Err(BackupError::Damaged(format!(
                    "an unknown frame {:?}",
                    other[0] as char
                )));
            }
        }
    }
}

/// Opens the backup in `dir` once as the daemon would, and returns its database's checksum.
/// A copy taken at a point between changes still holds the recovery point of the last one;
/// the first open marks it finished. Done here, so that a `store verify` of the backup, which
/// opens it, changes nothing a restore then checks.
fn settle(dir: &Path) -> Result<u32, BackupError> {
    let store = Store::open(dir)?;
    let checksum = store
        .db
        .checksum()
        .map_err(|source| store.database_error(source))?;
    drop(store);
    let lock = dir.join(super::LOCK_FILE);
    std::fs::remove_file(&lock).map_err(io(&lock))?;
    Ok(checksum)
}

/// A segment's file name as the archive writes them (no path, nothing hidden).
fn is_archive_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub manifest: BackupManifest,
    /// `store verify` of the restored data dir (no violation: a restore with one fails).
    pub verified: super::VerifyReport,
    pub seconds: f64,
}

/// Reads and checks a backup directory's description.
pub fn read_manifest(from: &Path) -> Result<BackupManifest, BackupError> {
    let path = from.join(BACKUP_FILE);
    let raw = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => BackupError::Refused(format!(
            "{} is not a paygate backup (no {BACKUP_FILE})",
            from.display()
        )),
        _ => io(&path)(e),
    })?;
    let manifest: BackupManifest = serde_json::from_slice(&raw)
        .map_err(|e| BackupError::Damaged(format!("{}: {e}", path.display())))?;
    if manifest.format != STREAM_FORMAT || manifest.schema_version != SCHEMA_VERSION {
        return Err(BackupError::Refused(format!(
            "{} is a backup of format {} at schema {}; this paygated restores format {STREAM_FORMAT} at schema {SCHEMA_VERSION}",
            from.display(),
            manifest.format,
            manifest.schema_version
        )));
    }
    Ok(manifest)
}

/// Restores the backup in `from` into the new data dir `to` (missing or empty). Everything
/// is built in `to/.restoring/` first: the database copied and its checksum compared with
/// `BACKUP.json`'s, each archive file's SHA-256 compared, the whole verified; only then do
/// `archive/` and `db/` move up, the database last. While `.restoring` exists the data dir
/// is no daemon's to open (`Store::open` refuses it), and a rerun of the restore, finding
/// it, clears what it made (the directory was empty when it began) and starts again.
pub fn restore(from: &Path, to: &Path) -> Result<Restored, BackupError> {
    let started = Instant::now();
    let manifest = read_manifest(from)?;
    let building = to.join(RESTORING);
    if building.exists() {
        for name in [RESTORING, ARCHIVE_DIR, DB_DIR, super::LOCK_FILE] {
            let path = to.join(name);
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            } else if path.exists() {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
    }
    refuse_unless_empty(to, "a restore")?;
    super::private_dir(to)?;
    super::private_dir(&building)?;
    sync_dir(to)?;
    let db_copy = building.join(DB_DIR);
    copy_tree(&from.join(DB_DIR), &db_copy)?;
    let db =
        open_sled(&db_copy, super::DEFAULT_CACHE_BYTES).map_err(|source| StoreError::Database {
            path: db_copy.clone(),
            source,
        })?;
    let checksum = db.checksum().map_err(|source| StoreError::Database {
        path: db_copy.clone(),
        source,
    })?;
    drop(db);
    if checksum != manifest.db_checksum {
        return Err(BackupError::Damaged(format!(
            "its database reads back with checksum {checksum:08x}, not the {:08x} it was taken with",
            manifest.db_checksum
        )));
    }
    if !manifest.archive.is_empty() {
        let archive_copy = building.join(ARCHIVE_DIR);
        super::private_dir(&archive_copy)?;
        for file in &manifest.archive {
            if !is_archive_file_name(&file.name) {
                return Err(BackupError::Damaged(format!(
                    "an archive file named {:?}",
                    file.name
                )));
            }
            let source = from.join(ARCHIVE_DIR).join(&file.name);
            let raw = std::fs::read(&source).map_err(io(&source))?;
            let sha256 = hex::encode(Sha256::digest(&raw));
            if sha256 != file.sha256 || raw.len() as u64 != file.bytes {
                return Err(BackupError::Damaged(format!(
                    "{} is not the file it was taken as (SHA-256 {sha256}, expected {})",
                    source.display(),
                    file.sha256
                )));
            }
            let target = archive_copy.join(&file.name);
            std::fs::write(&target, &raw).map_err(io(&target))?;
        }
    }
    let verified = {
        let store = Store::open(&building)?;
        store.verify()?
    };
    if !verified.violations.is_empty() {
        return Err(BackupError::Damaged(format!(
            "the restored store has {} violations (`store verify --data-dir {}` lists them): {}",
            verified.violations.len(),
            building.display(),
            verified
                .violations
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    sync_tree(&building)?;
    if building.join(ARCHIVE_DIR).exists() {
        rename(&building.join(ARCHIVE_DIR), &to.join(ARCHIVE_DIR))?;
    }
    sync_dir(to)?;
    rename(&db_copy, &to.join(DB_DIR))?;
    sync_dir(to)?;
    std::fs::remove_dir_all(&building).map_err(io(&building))?;
    sync_dir(to)?;
    Ok(Restored {
        manifest,
        verified,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Where a restore builds the data dir before it moves up (`restore`).
pub const RESTORING: &str = ".restoring";

fn rename(from: &Path, to: &Path) -> Result<(), BackupError> {
    std::fs::rename(from, to).map_err(io(from))
}

/// Copies the directory `from` (files and subdirectories) to the new `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<(), BackupError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            BackupError::Damaged(format!("{} is missing", from.display()))
        }
        _ => io(from)(e),
    })? {
        let entry = entry.map_err(io(from))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(io(&path))?.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(io(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
