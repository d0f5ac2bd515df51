//! The control socket, `<data_dir>/control.sock`: how `paygated store backup` asks the daemon
//! that serves a data dir for a backup (the data dir's lock keeps every other process out of
//! its database, and the daemon's sandbox may not write where the backup goes: the command
//! writes it, the daemon only streams it).
//!
//! Who may ask: whoever may open the socket, which is made in the daemon's private data dir
//! (0700) under its umask (0077): the daemon's own user, who can read the data dir anyway.
//!
//! The protocol: the client sends one line of JSON, `{"command": "backup"}`; the daemon
//! answers with the backup stream (`store/backup.rs`) and closes. One backup at a time; a
//! client that stops reading is dropped after [`WRITE_TIMEOUT`], so that writes (which wait
//! while the store's trees are read) never wait on a stalled reader for longer.

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
                    tokio::spawn(answer(stream, store.clone(), one_at_a_time.clone()));
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
    let taken = tokio::task::spawn_blocking(move || {
        stream.set_nonblocking(false)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let out = BufWriter::with_capacity(1 << 20, &stream);
        let taken = store.stream_backup(out);
        if let Err(e) = &taken {
            stream_failure(&stream, &e.to_string());
        }
        Ok::<_, std::io::Error>(taken)
    })
    .await;
    match taken {
        Ok(Ok(Ok(streamed))) => tracing::info!(
            keys = streamed.keys,
            archive_files = streamed.files,
            writes_waited_ms = streamed.paused_ms,
            "backup streamed on the control socket"
        ),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "backup failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "backup failed"),
        Err(e) => tracing::error!(error = %e, "backup task failed"),
    }
}
