//! `cargo xtask fuzz [seconds-per-target] [target...]`: every cargo-fuzz target in `fuzz/`
//! (or the ones named) for a bounded time each, then a summary; fails if any found a crash.
//!
//! Works on a fresh machine: installs cargo-fuzz from crates.io when `cargo fuzz` is
//! missing, and picks what the installed toolchains can do:
//!
//! - a nightly toolchain: `cargo +nightly fuzz`, with cargo-fuzz's default address sanitizer
//!   (memory errors in C dependencies and `unsafe` code are found too);
//! - stable only: `cargo fuzz --sanitizer none`. cargo-fuzz adds `-Z` flags only for a
//!   sanitizer, `--build-std` or careful mode, so stable builds the targets as they are: the
//!   coverage instrumentation (`-Cpasses=sancov-module`, `-Cllvm-args`) is stable. Panics and
//!   the targets' assertions are found the same way; memory errors outside safe Rust are not.
//!
//! `PAYGATE_FUZZ_MODE=stable` forces the second mode where a nightly exists (to check it).

use std::collections::BTreeSet;
use std::env;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Result, run_command};

/// Seconds each target runs when none are given.
const SECONDS_DEFAULT: u64 = 60;
/// libFuzzer's memory cap per target (its default, 2 GiB, stated so it is not forgotten).
const RSS_LIMIT_MB: u64 = 2048;
/// One input running this long is a hang, reported like a crash.
const INPUT_TIMEOUT_S: u64 = 10;
/// The fuzz crate (its own workspace, excluded from the root one).
const FUZZ_DIR: &str = "fuzz";

/// How the targets are built and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `cargo +nightly fuzz`, address sanitizer.
    Nightly,
    /// `cargo fuzz --sanitizer none` on the default (stable) toolchain.
    Stable,
}

impl Mode {
    /// Nightly when rustup lists one (no toolchain is ever downloaded), else stable.
    fn pick() -> Mode {
        if env::var("PAYGATE_FUZZ_MODE").is_ok_and(|m| m == "stable") {
            return Mode::Stable;
        }
        let nightly = Command::new("rustup")
            .args(["toolchain", "list"])
            .output()
            .is_ok_and(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .any(|line| line.starts_with("nightly"))
            });
        if nightly { Mode::Nightly } else { Mode::Stable }
    }

    fn describe(self) -> &'static str {
        match self {
            Mode::Nightly => "nightly toolchain, address sanitizer",
            Mode::Stable => "default toolchain, --sanitizer none",
        }
    }

    /// `cargo [+nightly] fuzz <subcommand> [--sanitizer none]`, run from the repo root.
    fn cargo_fuzz(self, subcommand: &str) -> Command {
        // Through rustup's `cargo` proxy, not `$CARGO` (the stable toolchain's own cargo,
        // which knows no `+toolchain`).
        let mut command = Command::new("cargo");
        if self == Mode::Nightly {
            command.arg("+nightly");
        }
        command.args(["fuzz", subcommand, "--fuzz-dir", FUZZ_DIR]);
        if self == Mode::Stable {
            command.args(["--sanitizer", "none"]);
        }
        command
    }

    /// The same command as a user types it, for the messages.
    fn shell(self, subcommand: &str) -> String {
        match self {
            Mode::Nightly => format!("cargo +nightly fuzz {subcommand}"),
            Mode::Stable => format!("cargo fuzz {subcommand} --sanitizer none"),
        }
    }
}

/// What one target's run gave.
struct Outcome {
    target: String,
    /// Time spent fuzzing, as libFuzzer counts it (without cargo's rebuild, if any).
    seconds: Option<u64>,
    executions: Option<u64>,
    exec_per_s: Option<u64>,
    peak_rss_mb: Option<u64>,
    findings: Vec<PathBuf>,
}

pub fn fuzz(args: &[String]) -> Result<()> {
    let (seconds, wanted) = match args.first().map(|a| a.parse::<u64>()) {
        Some(Ok(0)) => return Err("fuzz: seconds per target must be at least 1".into()),
        Some(Ok(seconds)) => (seconds, &args[1..]),
        _ => (SECONDS_DEFAULT, args),
    };
    ensure_cargo_fuzz()?;
    let mode = Mode::pick();
    println!("xtask: fuzz mode: {}", mode.describe());

    let all = list_targets(mode)?;
    if let Some(unknown) = wanted.iter().find(|w| !all.contains(w)) {
        return Err(format!(
            "fuzz: no target {unknown:?}; the targets are {}",
            all.join(", ")
        ));
    }
    let targets: Vec<&String> = all
        .iter()
        .filter(|t| wanted.is_empty() || wanted.contains(t))
        .collect();

    let build = Instant::now();
    run_command(&mut mode.cargo_fuzz("build"))?;
    println!(
        "xtask: fuzz targets built in {:.0} s",
        build.elapsed().as_secs_f64()
    );

    let mut outcomes = Vec::new();
    for target in targets {
        outcomes.push(run_target(mode, target, seconds)?);
    }

    println!();
    println!("fuzzing, {} ({seconds} s per target)", mode.describe());
    println!("| target | fuzzed s | executions | exec/s | peak RSS | crashes |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let number = |n: Option<u64>| n.map_or("?".to_owned(), |n| n.to_string());
    for o in &outcomes {
        println!(
            "| {} | {} | {} | {} | {} MB | {} |",
            o.target,
            number(o.seconds),
            number(o.executions),
            number(o.exec_per_s),
            number(o.peak_rss_mb),
            o.findings.len()
        );
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.findings.is_empty()).collect();
    if failed.is_empty() {
        return Ok(());
    }
    for o in &failed {
        for file in &o.findings {
            let file = file.display();
            println!();
            println!("xtask: {} found {file}", o.target);
            println!("  see it:     {} {} {file}", mode.shell("fmt"), o.target);
            println!("  reproduce:  {} {} {file}", mode.shell("run"), o.target);
            println!("  minimise:   {} {} {file}", mode.shell("tmin"), o.target);
            println!(
                "  then copy the minimised input into {FUZZ_DIR}/regressions/{}/ (the test suite replays it) and fix the bug",
                o.target
            );
        }
    }
    Err(format!(
        "fuzz: {} target(s) found a crash: {}",
        failed.len(),
        failed
            .iter()
            .map(|o| o.target.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Installs cargo-fuzz from crates.io unless `cargo fuzz` already runs.
fn ensure_cargo_fuzz() -> Result<()> {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if installed {
        return Ok(());
    }
    println!("xtask: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    run_command(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

/// The targets `fuzz/Cargo.toml` declares, as `cargo fuzz list` prints them.
fn list_targets(mode: Mode) -> Result<Vec<String>> {
    let mut command = Command::new("cargo");
    if mode == Mode::Nightly {
        command.arg("+nightly");
    }
    let output = command
        .args(["fuzz", "list", "--fuzz-dir", FUZZ_DIR])
        .output()
        .map_err(|e| format!("cannot run cargo fuzz list: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Runs `target` for `seconds`, its output passed through; returns its statistics and the
/// crash files it left in `fuzz/artifacts/<target>/`.
fn run_target(mode: Mode, target: &str, seconds: u64) -> Result<Outcome> {
    let root = env::current_dir().map_err(|e| e.to_string())?;
    let corpus = root.join(FUZZ_DIR).join("corpus").join(target);
    let regressions = root.join(FUZZ_DIR).join("regressions").join(target);
    let artifacts = root.join(FUZZ_DIR).join("artifacts").join(target);
    fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let before = files_in(&artifacts);

    println!("xtask: fuzzing {target} for {seconds} s");
    // New inputs go to the first corpus folder (git ignores all but its seeds); the
    // regressions are read as seeds too.
    let mut command = mode.cargo_fuzz("run");
    command.arg(target).arg(&corpus);
    if regressions.is_dir() {
        command.arg(&regressions);
    }
    command
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start cargo fuzz run {target}: {e}"))?;
    let mut stats = Vec::new();
    let mut seconds = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            eprintln!("{line}");
            if line.starts_with("stat::") {
                stats.push(line);
            } else if let Some(rest) = line.strip_prefix("Done ") {
                // "Done 1131006 runs in 121 second(s)"
                seconds = rest
                    .split_once(" runs in ")
                    .and_then(|(_, s)| s.split_whitespace().next())
                    .and_then(|s| s.parse().ok());
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cargo fuzz run {target}: {e}"))?;
    let stat = |name: &str| {
        stats.iter().find_map(|line| {
            line.strip_prefix(&format!("stat::{name}:"))
                .and_then(|value| value.trim().parse().ok())
        })
    };
    let findings: Vec<PathBuf> = files_in(&artifacts)
        .difference(&before)
        .map(|file| file.strip_prefix(&root).unwrap_or(file).to_owned())
        .collect();
    if !status.success() && findings.is_empty() {
        return Err(format!(
            "cargo fuzz run {target} failed ({status}) without leaving a crash file"
        ));
    }
    Ok(Outcome {
        target: target.to_owned(),
        seconds,
        executions: stat("number_of_executed_units"),
        exec_per_s: stat("average_exec_per_sec"),
        peak_rss_mb: stat("peak_rss_mb"),
        findings,
    })
}

/// The files directly in `dir` (none when it does not exist).
fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.is_file())
                .collect()
        })
        .unwrap_or_default()
}
