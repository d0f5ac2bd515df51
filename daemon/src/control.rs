//! The control socket, `<data_dir>/control.sock`: how `paygated store backup` asks the daemon
//! that serves a data dir for a backup (the data dir's lock keeps every other process out of
//! its database, and the daemon's sandbox may not write where the backup goes: the command
//! writes it, the daemon only streams it).
//!
//! Who may ask: whoever may open the socket, which is made in the daemon's private data dir
//! (0700) under its umask (0077): the daemon's own user, who can read the data dir anyway.
//!
//! The protocol: the client sends one line of JSON, `{"command": "backup"}`; the daemon
//! answers with a dot ([`WAITING`]) every few seconds while it copies the store into an
//! unnamed file of the data dir, then with the backup stream (`store/backup.rs`), and
//! closes. Copying to the local disk first keeps the backup's point in time short whatever
//! the client (what changes meanwhile is kept in memory until the copy ends). One backup at
//! a time; a client that stops reading is dropped after [`WRITE_TIMEOUT`].

use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncBufReadExt;

use crate::store::Store;
use crate::store::backup::stream_failure;

/// The socket's name in the data dir.
pub const SOCKET: &str = "control.sock";
/// How long one write to the client may block before the backup is abandoned.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// What the daemon sends while it copies, every [`WAITING_EVERY`], before the stream.
pub const WAITING: u8 = b'.';
const WAITING_EVERY: Duration = Duration::from_secs(5);
/// How long a client has to send its request, and the longest request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_MAX: u64 = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    command: String,
}

/// Listens on the data dir's control socket (a socket left by an earlier run is replaced: the
/// caller holds the data dir's lock). Without one (a path too long for a socket, a read-only
/// data dir) the daemon serves on and says that backups must then be taken with it stopped.
pub fn spawn(store: Arc<Store>, data_dir: &Path) {
    let spool_dir = data_dir.to_owned();
    let path = data_dir.join(SOCKET);
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(
                socket = %path.display(),
                error = %e,
                "cannot listen on the control socket: `paygated store backup` works only with the daemon stopped"
            );
            return;
        }
    };
    let one_at_a_time = Arc::new(tokio::sync::Mutex::new(()));
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(answer(
                        stream,
                        store.clone(),
                        spool_dir.clone(),
                        one_at_a_time.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept on the control socket failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}

async fn answer(
    mut stream: tokio::net::UnixStream,
    store: Arc<Store>,
    data_dir: std::path::PathBuf,
    one_at_a_time: Arc<tokio::sync::Mutex<()>>,
) {
    let mut line = String::new();
    let read = {
        let limited = tokio::io::AsyncReadExt::take(&mut stream, REQUEST_MAX);
        let mut reader = tokio::io::BufReader::new(limited);
        tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await
    };
    let request = match read {
        Ok(Ok(_)) => serde_json::from_str::<Request>(line.trim_end()).map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no request within 10 s".to_owned()),
    };
    let Ok(stream) = stream.into_std() else {
        return;
    };
    let refuse = move |stream: std::os::unix::net::UnixStream, message: String| {
        tracing::warn!(%message, "control socket request refused");
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        // Off the runtime: the write may block for up to its timeout. Then what the client
        // still sends is read and dropped (briefly), so that closing with it unread does not
        // reset the connection before the client has read the answer.
        tokio::task::spawn_blocking(move || {
            stream_failure(&stream, &message);
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let _ = std::io::copy(
                &mut std::io::Read::take(&stream, 64 << 10),
                &mut std::io::sink(),
            );
        });
    };
    match request {
        Ok(request) if request.command == "backup" => {}
        Ok(request) => {
            return refuse(
                stream,
                format!(
                    "unknown command {:?} (this daemon knows \"backup\")",
                    request.command
                ),
            );
        }
        Err(e) => return refuse(stream, format!("a request this daemon cannot read: {e}")),
    }
    let Ok(_running) = one_at_a_time.try_lock() else {
        return refuse(
            stream,
            "a backup is running already; try again once it ends".into(),
        );
    };
    // The copy is made into a file of the data dir first, so that the point in time lasts as
    // long as the local disk takes, never as long as the client; the client hears a dot every
    // few seconds meanwhile.
    let Ok(stream) = tokio::net::UnixStream::from_std(stream) else {
        return;
    };
    let copying = tokio::task::spawn_blocking(move || {
        let mut spool = tempfile::tempfile_in(&data_dir).map_err(|e| {
            crate::store::StoreError::Backup(format!("a spool file in {}: {e}", data_dir.display()))
        })?;
        let streamed = store.stream_backup(BufWriter::with_capacity(1 << 20, &mut spool))?;
        std::io::Seek::rewind(&mut spool)
            .map_err(|e| crate::store::StoreError::Backup(format!("the spool file: {e}")))?;
        Ok::<_, crate::store::StoreError>((spool, streamed))
    });
    tokio::pin!(copying);
    let mut stream = stream;
    let copied = loop {
        tokio::select! {
            copied = &mut copying => break copied,
            () = tokio::time::sleep(WAITING_EVERY) => {
                // A client gone meanwhile is found when the copy is sent.
                let _ = tokio::time::timeout(
                    WRITE_TIMEOUT,
                    tokio::io::AsyncWriteExt::write_all(&mut stream, &[WAITING]),
                )
                .await;
            }
        }
    };
    let Ok(stream) = stream.into_std() else {
        return;
    };
    let sent = tokio::task::spawn_blocking(move || {
        stream.set_nonblocking(false)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        match copied {
            Ok(Ok((mut spool, streamed))) => {
                std::io::copy(&mut spool, &mut &stream)?;
                Ok::<_, std::io::Error>(Ok(streamed))
            }
            Ok(Err(e)) => {
                stream_failure(&stream, &e.to_string());
                Ok(Err(e.to_string()))
            }
            Err(e) => {
                stream_failure(&stream, "the backup task failed");
                Ok(Err(e.to_string()))
            }
        }
    })
    .await;
    match sent {
        Ok(Ok(Ok(streamed))) => tracing::info!(
            keys = streamed.keys,
            archive_files = streamed.files,
            writes_waited_ms = streamed.paused_ms,
            "backup streamed on the control socket"
        ),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "backup failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "backup not delivered: the client went away"),
        Err(e) => tracing::error!(error = %e, "backup task failed"),
    }
}
