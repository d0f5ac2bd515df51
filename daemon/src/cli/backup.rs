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

/// How long the command waits for the daemon's next bytes (a dot at least every few seconds
/// while it copies) before giving up on it.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

fn exit_of(e: &BackupError) -> ExitCode {
    eprintln!("paygated: {e}");
    match e {
        BackupError::Refused(_) => ExitCode::from(EXIT_CONFIG),
        _ => ExitCode::from(EXIT_RUNTIME),
    }
}

/// `paygated store backup --to DIR` of the data dir `dir` (`serving`: only from the daemon
/// that serves it, never by opening it here).
pub fn store_backup(dir: &Path, to: &Path, serving: bool) -> ExitCode {
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
    let taken = match crate::store::take_lock(dir) {
        Err(StoreError::Locked { holder, .. }) => from_daemon(dir, to, &holder).map(|m| (m, true)),
        Err(e) => {
            eprintln!("paygated: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
        Ok(_) if serving => {
            eprintln!(
                "paygated: no daemon serves {} (--serving: the data dir is not opened here, so that a daemon starting meanwhile is not locked out)",
                dir.display()
            );
            return ExitCode::from(EXIT_RUNTIME);
        }
        Ok(lock) => {
            drop(lock);
            in_process(dir, to).map(|m| (m, false))
        }
    };
    match taken {
        Ok((manifest, from_daemon)) => {
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

/// The backup of a data dir no daemon holds, read here. Only one at this build's schema: an
/// older one would be migrated by the open (back it up with the paygated that wrote it).
fn in_process(dir: &Path, to: &Path) -> Result<backup::BackupManifest, BackupError> {
    let found = crate::store::schema_of(dir)?;
    if found != Some(crate::store::SCHEMA_VERSION) {
        return Err(BackupError::Refused(format!(
            "{} is at schema {}, this paygated writes {}: back it up with the paygated that wrote it (opening it here would migrate it first)",
            dir.display(),
            found.map_or("(none)".to_owned(), |v| v.to_string()),
            crate::store::SCHEMA_VERSION
        )));
    }
    let store = Store::open(dir)?;
    backup::receive(to, |spool| Ok(store.stream_backup(spool).map(drop)?))
}

/// The backup streamed by the daemon that holds `dir` (`holder` names it, for the error).
fn from_daemon(dir: &Path, to: &Path, holder: &str) -> Result<backup::BackupManifest, BackupError> {
    use std::io::{Read, Write};
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
        // The daemon sends a dot every few seconds until its copy is ready (it may wait for
        // an archive run to end first); then the stream.
        let mut first = [0u8; 1];
        loop {
            match stream.read(&mut first).map_err(io)? {
                0 => break,
                _ if first[0] == crate::control::WAITING => continue,
                _ => {
                    spool.write_all(&first).map_err(io)?;
                    break;
                }
            }
        }
        std::io::copy(&mut stream, spool).map_err(io)?;
        Ok(())
    })
}

/// `paygated store restore --from DIR --data-dir NEW`: restored and verified.
pub fn store_restore(from: &Path, to: &Path) -> ExitCode {
    let restored = match backup::restore(from, to) {
        Ok(restored) => restored,
        Err(e) => return exit_of(&e),
    };
    println!(
        "restored {} keys in {} trees and {} archive files, taken at {} ms since the epoch, into {} in {:.3} s",
        restored.manifest.keys,
        restored.manifest.trees,
        restored.manifest.archive.len(),
        restored.manifest.taken_at_ms,
        to.display(),
        restored.seconds
    );
    super::report_verified(Ok(restored.verified))
}
