//! `paygated`: the paygate payment gateway daemon. See `paygated --help`.

/// The system allocator, keeping sled's log buffers for reuse (`memory.rs`).
#[global_allocator]
static ALLOCATOR: paygate_daemon::memory::Allocator = paygate_daemon::memory::Allocator;

fn main() -> std::process::ExitCode {
    paygate_daemon::cli::main()
}
