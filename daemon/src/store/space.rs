//! Room on the data dir's file system, checked before new work is accepted.
//!
//! sled cannot continue after a failed write: once its log write fails (ENOSPC, EROFS), every
//! later operation returns that error until the database is reopened (measured here: a full
//! tmpfs, then space freed, and sled still fails). So the daemon refuses *new* work while the
//! free space is below a reserve, which keeps sled away from that error: work already
//! accepted finishes inside the reserve, replays need no space, and new work is accepted
//! again as soon as space returns, with no restart.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the file system is asked at most (a `statvfs` is cheap, but new payments come
/// thousands a second).
const RECHECK: Duration = Duration::from_millis(100);

/// What the data dir's file system can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Room {
    /// Writable, with `free_bytes` available to the daemon.
    Enough { free_bytes: u64 },
    /// Writable but below the reserve.
    Low { free_bytes: u64, reserve_bytes: u64 },
    /// Mounted read-only (e.g. remounted after file-system errors).
    ReadOnly,
}

impl Room {
    pub fn is_enough(&self) -> bool {
        matches!(self, Room::Enough { .. })
    }

    /// The API's error code when new work is refused.
    pub fn code(&self) -> &'static str {
        match self {
            Room::Enough { .. } | Room::Low { .. } => "storage_low",
            Room::ReadOnly => "storage_read_only",
        }
    }

    pub fn free_bytes(&self) -> Option<u64> {
        match self {
            Room::Enough { free_bytes } | Room::Low { free_bytes, .. } => Some(*free_bytes),
            Room::ReadOnly => None,
        }
    }
}

impl std::fmt::Display for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Room::Enough { free_bytes } => write!(f, "{} MiB free", free_bytes >> 20),
            Room::Low {
                free_bytes,
                reserve_bytes,
            } => write!(
                f,
                "the data dir has {} MiB free, below the {} MiB reserve ([store] min_free_mb)",
                free_bytes >> 20,
                reserve_bytes >> 20
            ),
            Room::ReadOnly => write!(f, "the data dir's file system is mounted read-only"),
        }
    }
}

/// Asks the file system of `dir` for its room, at most every [`RECHECK`].
pub struct SpaceGuard {
    dir: PathBuf,
    reserve_bytes: u64,
    last: Mutex<Option<(Instant, Room)>>,
}

impl SpaceGuard {
    /// A guard keeping `reserve_bytes` free (0: only a read-only file system is refused).
    pub fn new(dir: PathBuf, reserve_bytes: u64) -> SpaceGuard {
        SpaceGuard {
            dir,
            reserve_bytes,
            last: Mutex::new(None),
        }
    }

    /// The current room (asked again when the last answer is older than [`RECHECK`]).
    pub fn room(&self) -> Room {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, room)) = &*last
            && at.elapsed() < RECHECK
        {
            return room.clone();
        }
        let room = self.ask();
        *last = Some((Instant::now(), room.clone()));
        room
    }

    fn ask(&self) -> Room {
        match rustix::fs::statvfs(&self.dir) {
            Ok(stat) if stat.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) => {
                Room::ReadOnly
            }
            Ok(stat) => {
                // `f_bavail`: blocks available to unprivileged users; the daemon should not
                // count on root's reserved blocks.
                let free_bytes = stat.f_bavail.saturating_mul(stat.f_frsize);
                if free_bytes < self.reserve_bytes {
                    Room::Low {
                        free_bytes,
                        reserve_bytes: self.reserve_bytes,
                    }
                } else {
                    Room::Enough { free_bytes }
                }
            }
            Err(e) => {
                // The data dir exists (the store holds its lock); a failing statvfs is odd
                // but says nothing about the room, so it does not refuse work.
                tracing::warn!(dir = %self.dir.display(), "statvfs of the data dir failed: {e}");
                Room::Enough { free_bytes: 0 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_any_disk_is_low_and_zero_is_enough() {
        let dir = tempfile::tempdir().unwrap();
        let room = SpaceGuard::new(dir.path().to_owned(), 0).room();
        assert!(room.is_enough(), "{room:?}");
        assert!(room.free_bytes().unwrap() > 0);
        let room = SpaceGuard::new(dir.path().to_owned(), u64::MAX).room();
        let Room::Low { reserve_bytes, .. } = &room else {
            panic!("{room:?}");
        };
        assert_eq!(*reserve_bytes, u64::MAX);
        assert_eq!(room.code(), "storage_low");
        assert!(room.to_string().contains("below the"), "{room}");
    }
}
