//! `paygated store backup` and `paygated store restore`.
//!
//! A backup of a data dir a daemon serves is asked of that daemon on its control socket
//! (`control.rs`): payments go on while it is taken. A data dir no daemon holds is opened and
//! backed up in process. Either way the stream lands in `--to`, which is built aside and
//! named only once whole (`store/backup.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::process::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::store::backup::{self, BackupError};
use crate::store::{Store, StoreError};

/// How long the command waits for the daemon's next bytes before giving up on it.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

fn exit_of(e: &BackupError) -> ExitCode {
    eprintln!("paygated: {e}");
    match e {
        BackupError::Refused(_) => ExitCode::from(EXIT_CONFIG),
        _ => ExitCode::from(EXIT_RUNTIME),
    }
}

/// `paygated store backup --to DIR` of the data dir `dir`.
pub fn store_backup(dir: &Path, to: &Path) -> ExitCode {
    let started = Instant::now();
    if let Err(e) = backup::check_target(to) {
        return exit_of(&e);
    }
    if !Store::is_in(dir) {
        eprintln!(
            "paygated: {} holds no embedded store to back up",
            dir.display()
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let (taken, from_daemon) = match Store::open(dir) {
        Ok(store) => (
            backup::receive(to, |spool| Ok(store.stream_backup(spool).map(drop)?)),
            false,
        ),
        Err(StoreError::Locked { holder, .. }) => (from_daemon(dir, to, &holder), true),
        Err(e) => {
            eprintln!("paygated: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match taken {
        Ok(manifest) => {
            println!(
                "backed up {} keys in {} trees and {} archive files of {} to {} in {:.3} s ({}writes waited {} ms)",
                manifest.keys,
                manifest.trees,
                manifest.archive.len(),
                dir.display(),
                to.display(),
                started.elapsed().as_secs_f64(),
                if from_daemon {
                    "from the serving daemon; "
                } else {
                    ""
                },
                manifest.paused_ms
            );
            ExitCode::SUCCESS
        }
        Err(e) => exit_of(&e),
    }
}

/// The backup streamed by the daemon that holds `dir` (`holder` names it, for the error).
fn from_daemon(dir: &Path, to: &Path, holder: &str) -> Result<backup::BackupManifest, BackupError> {
    use std::io::Write;
    let socket: PathBuf = dir.join(crate::control::SOCKET);
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).map_err(|e| {
        BackupError::Sender(format!(
            "a paygated{holder} holds {} but does not answer on {} ({e}); a daemon on PostgreSQL keeps no data there",
            dir.display(),
            socket.display()
        ))
    })?;
    let io = |e: std::io::Error| BackupError::Sender(format!("{}: {e}", socket.display()));
    stream.set_read_timeout(Some(READ_TIMEOUT)).map_err(io)?;
    stream
        .write_all(b"{\"command\": \"backup\"}\n")
        .map_err(io)?;
    backup::receive(to, |spool| {
        std::io::copy(&mut stream, spool).map_err(io)?;
        Ok(())
    })
}

/// `paygated store restore --from DIR --data-dir NEW` (the caller then verifies NEW).
pub fn store_restore(from: &Path, to: &Path) -> Result<(), ExitCode> {
    let restored = backup::restore(from, to).map_err(|e| exit_of(&e))?;
    println!(
        "restored {} keys in {} trees and {} archive files, taken at {} ms since the epoch, into {} in {:.3} s",
        restored.manifest.keys,
        restored.manifest.trees,
        restored.manifest.archive.len(),
        restored.manifest.taken_at_ms,
        to.display(),
        restored.seconds
    );
    Ok(())
}
