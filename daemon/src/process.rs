//! What the process answers its supervisor: exit codes, and the async runtime the
//! subcommands run on.
//!
//! Exit codes: 0 success, 1 a run-time failure (data dir locked, I/O), 2 invalid config or
//! arguments, 75 the store failed under a running daemon.

use std::process::ExitCode;

pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;
/// The store failed under the daemon (a write the disk refused): exit so that the supervisor
/// restarts paygated, which reopens the store from its last durable state (sysexits'
/// EX_TEMPFAIL).
pub const EXIT_STORE_FAILED: u8 = 75;

/// The multi-threaded tokio runtime the async subcommands run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("paygated: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_RUNTIME)
        })
}
