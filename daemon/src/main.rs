//! `paygated`: the paygate payment gateway daemon. See `paygated --help`.

/// jemalloc, not the system's malloc. With glibc's malloc a durable payment cost ~380 µs of
/// CPU at 64 clients, a fifth of it in malloc's slow paths (`_int_malloc`,
/// `malloc_consolidate`), and its large blocks came and went as fresh mappings (page faults,
/// TLB shootdowns); with jemalloc ~290 µs and ~30 % more payments/s. Peak RSS rose from ~124
/// to ~163 MiB in 8 s runs at 64 clients (BENCHMARKS.md, "What was tried").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    paygate_daemon::cli::main()
}
