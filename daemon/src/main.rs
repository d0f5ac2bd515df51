//! `paygated`: the paygate payment gateway daemon. See `paygated --help`.

fn main() -> std::process::ExitCode {
    paygate_daemon::cli::main()
}
