//! `cargo xtask`: the project's build and test driver (the matklad xtask pattern).
//!
//! - `cargo xtask build`: install the wasm target if missing, build every plugin under
//!   `plugins/` into a component in `target/plugins/`, then the daemon and the provider
//!   simulator (`paygate-sim`) in release mode.
//! - `cargo xtask run [--postgres]`: `build`, then the simulator on 127.0.0.1:8430 and the
//!   gateway on `config/paygate.toml` with data in `./data`, in the foreground (Ctrl-C stops
//!   both); `--postgres` keeps the data in PostgreSQL instead (`postgres.rs`).
//! - `cargo xtask test`: the plugins, the simulator and the POS till (as `build` does), then
//!   (Chromium and its driver installed where missing, for the browser tests, and Debian's
//!   PostgreSQL, for the PostgreSQL engine's tests) the whole test
//!   suite (unit and end-to-end) on the daemon its test build makes, then the
//!   plugin kit's checks, the Node SDKs and schemathesis against the running daemon's
//!   `/openapi.json` (a local venv in `target/`).
//! - `cargo xtask plugin new NAME [--dir DIR]`: a new wallet plugin crate from the template
//!   (`xtask/template/`, see `plugin_new.rs`).
//! - `cargo xtask cassettes`: `build`, then record every plugin's cassettes (the plugin kit)
//!   from the simulator, started on 127.0.0.1:8430; `test` replays them.
//! - `cargo xtask ops`: the operations files alone (`ops/`): the alert rules' checks and unit
//!   tests (promtool), the systemd unit's verification; `test` runs them too.
//! - `cargo xtask gauntlet [kills]`: the crash loop (default 20 kills) and the store
//!   verification; the test suite runs a 3-kill version.
//! - `cargo xtask bench [plugin | applepay | payments | monitor | store | sled-lock | stores |
//!   archive | backup | engines | postgres]`: the benchmarks (`archive`, `backup`, `engines` and `postgres`
//!   only when named); results
//!   go to stdout (and by hand into BENCHMARKS.md).
//! - `cargo xtask fuzz [seconds-per-target] [target...]`: the cargo-fuzz targets in `fuzz/`
//!   (default 60 s each, all of them), installing cargo-fuzz if missing; fails on a crash
//!   (fuzz/README.md).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod fuzz;
mod plugin_new;
mod postgres;

/// The target plugins are built for (a WebAssembly component with WASI 0.2 imports).
const PLUGIN_TARGET: &str = "wasm32-wasip2";
/// Where `build` puts the plugin components, one `<crate name>.wasm` each.
const PLUGIN_OUT_DIR: &str = "target/plugins";
/// Where `build` puts the test plugins (hostile, wrong world version, ...).
const TEST_PLUGIN_OUT_DIR: &str = "target/test-plugins";
/// Where `build` puts the example plugins (hello-wallet).
const EXAMPLE_PLUGIN_OUT_DIR: &str = "target/examples";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = workspace_root();
    if let Err(e) = env::set_current_dir(&root) {
        eprintln!("xtask: cannot enter {}: {e}", root.display());
        return ExitCode::FAILURE;
    }
    let result = match args.first().map(String::as_str) {
        Some("build") => build(),
        Some("run") => build().and_then(|()| run(&args[1..])),
        Some("test") => build_for_tests().and_then(|()| test(&args[1..])),
        Some("bench") => bench(&args[1..]),
        Some("schemathesis") => build_for_tests()
            .and_then(|()| build_test_daemon())
            .and_then(|()| schemathesis()),
        Some("gauntlet") => build().and_then(|()| gauntlet(&args[1..])),
        Some("cassettes") => build().and_then(|()| record_cassettes()),
        Some("ops") => build_test_daemon()
            .and_then(|()| alert_rules())
            .and_then(|()| service_unit()),
        Some("plugin") => plugin_new::plugin(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <build | run | test | bench | gauntlet | fuzz | cassettes | ops | plugin new>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_owned()
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run_command(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}

fn build() -> Result<()> {
    build_plugins()?;
    // The daemon, the provider simulator that `run`, the tests and the examples use, and the
    // POS till example (the tests run it).
    run_command(cargo().args([
        "build",
        "--release",
        // No `--bin` filter: it would apply to every package and skip the simulator's.
        "--package",
        "paygate-daemon",
        "--package",
        "paygate-sim",
        "--package",
        "pos-till",
    ]))
}

/// What the test suite needs beyond its own build: the plugins, and the simulator and the POS
/// till in release. Not the release daemon: the suite runs the daemon its test build makes
/// (`TEST_DAEMON`), which spares a fresh clone a second build of wasmtime (about 10 of CI's
/// minutes on 2 cores).
fn build_for_tests() -> Result<()> {
    build_plugins()?;
    run_command(cargo().args([
        "build",
        "--release",
        "--package",
        "paygate-sim",
        "--package",
        "pos-till",
    ]))
}

/// `TEST_DAEMON` alone (`test` builds it with the rest of the suite).
fn build_test_daemon() -> Result<()> {
    run_command(cargo().args([
        "build",
        "--package",
        "paygate-daemon",
        "--features",
        "paygate-daemon/test-hooks",
    ]))
}

/// The daemon the test suite runs: the one `cargo test --features paygate-daemon/test-hooks`
/// builds (the e2e tests' `CARGO_BIN_EXE_paygated`).
const TEST_DAEMON: &str = "target/debug/paygated";

/// Builds every plugin crate (bundled, test and example plugins) into its folder.
fn build_plugins() -> Result<()> {
    let plugins = plugin_crates("plugins")?;
    let test_plugins = plugin_crates("tests/plugins")?;
    let example_plugins = plugin_crates("examples")?;
    if plugins.is_empty() && test_plugins.is_empty() && example_plugins.is_empty() {
        println!("xtask: no plugin crates yet");
    } else {
        ensure_target(PLUGIN_TARGET)?;
        // One cargo invocation for every plugin: they share dependencies.
        let mut command = cargo();
        command.args(["build", "--profile", "plugin", "--target", PLUGIN_TARGET]);
        for name in plugins.iter().chain(&test_plugins).chain(&example_plugins) {
            command.args(["--package", name]);
        }
        run_command(&mut command)?;
        copy_components(&plugins, PLUGIN_OUT_DIR)?;
        copy_components(&test_plugins, TEST_PLUGIN_OUT_DIR)?;
        copy_components(&example_plugins, EXAMPLE_PLUGIN_OUT_DIR)?;
    }
    Ok(())
}

fn copy_components(names: &[String], out_dir: &str) -> Result<()> {
    fs::create_dir_all(out_dir).map_err(|e| format!("cannot create {out_dir}: {e}"))?;
    for name in names {
        let artifact = format!(
            "target/{PLUGIN_TARGET}/plugin/{}.wasm",
            name.replace('-', "_")
        );
        let out = format!("{out_dir}/{name}.wasm");
        fs::copy(&artifact, &out).map_err(|e| format!("cannot copy {artifact} to {out}: {e}"))?;
        println!("xtask: plugin {name} -> {out}");
    }
    Ok(())
}

/// The package name of every plugin crate (a `cdylib`) directly under `dir`.
fn plugin_crates(dir: &str) -> Result<Vec<String>> {
    let mut crates = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(_) => return Ok(crates),
    };
    for entry in entries.flatten() {
        let manifest = entry.path().join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let text = fs::read_to_string(&manifest)
            .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
        // A plugin may be an `rlib` too (the fuzz targets link the bundled ones natively).
        let cdylib = text
            .lines()
            .any(|line| line.trim_start().starts_with("crate-type") && line.contains("\"cdylib\""));
        if !cdylib {
            continue;
        }
        let name = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("name = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .ok_or_else(|| format!("{} has no package name", manifest.display()))?;
        crates.push(name.to_owned());
    }
    crates.sort();
    Ok(crates)
}

/// Installs the rustup `target` unless it is there already.
fn ensure_target(target: &str) -> Result<()> {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup (needed to install {target}): {e}"))?;
    let installed = String::from_utf8_lossy(&output.stdout);
    if installed.lines().any(|line| line.trim() == target) {
        return Ok(());
    }
    println!("xtask: installing the {target} target");
    run_command(Command::new("rustup").args(["target", "add", target]))
}

fn run(extra: &[String]) -> Result<()> {
    // `--postgres`: the data in a PostgreSQL database instead of sled (`postgres.rs`).
    let on_postgres = extra.iter().any(|a| a == "--postgres");
    let extra: Vec<&String> = extra.iter().filter(|a| *a != "--postgres").collect();
    let database = if on_postgres {
        ensure_postgres()?;
        Some(postgres::prepare()?)
    } else {
        None
    };
    let config = match database {
        Some(_) => postgres::CONFIG,
        None => "config/paygate.toml",
    };
    // The provider simulator first: the default config points alipay and wechatpay at it.
    let mut simulator = Command::new("target/release/paygate-sim")
        .args([
            "--listen",
            "127.0.0.1:8430",
            "--keys",
            "config/sandbox-keys",
        ])
        .spawn()
        .map_err(|e| format!("cannot start target/release/paygate-sim: {e}"))?;
    println!("xtask: starting paygated on {config}, data in ./data (Ctrl-C stops both)");
    println!(
        "xtask: then try: curl -s -H 'Authorization: Bearer pg_demo_erp' http://127.0.0.1:8420/v1/merchants/m_demo"
    );
    println!("xtask: or: cargo run -p pos-till  (a POS till taking a payment and refunding it)");
    let daemon = run_command(
        Command::new("target/release/paygated")
            .args(["serve", "--config", config, "--data-dir", "data"])
            .args(extra),
    );
    drop(database); // a cluster this run started stops
    // Ctrl-C reaches both (same process group); make sure the simulator is gone either way.
    let _ = simulator.kill();
    let _ = simulator.wait();
    daemon
}

/// The schemathesis version the API is fuzzed with (installed into a local venv).
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Fuzzes the running daemon's API from its own `/openapi.json` with schemathesis (API.md:
/// no 5xx, every answer documented and conforming). `positive_data_acceptance` is left
/// out: the validators (check digits, Luhn) accept less than a schema can say.
fn schemathesis() -> Result<()> {
    let venv = Path::new("target/schemathesis-venv");
    if !venv.join("bin/st").is_file() {
        run_command(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
        run_command(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            SCHEMATHESIS,
        ]))?;
    }
    let data = Path::new("target/schemathesis-data");
    let _ = fs::remove_dir_all(data);
    let mut daemon = Command::new(TEST_DAEMON)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            "config/paygate.toml",
            "--data-dir",
        ])
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start paygated: {e}"))?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(daemon.stdout.take().expect("stdout")),
        &mut line,
    )
    .map_err(|e| e.to_string())?;
    let base = line
        .trim()
        .strip_prefix("paygated listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| format!("paygated did not start: {line:?}"))?
        .to_owned();
    let result = run_command(Command::new(venv.join("bin/st")).args([
        "run",
        &format!("{base}/openapi.json"),
        "--header",
        "Authorization: Bearer pg_demo_admin",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        "10",
        "--workers",
        "2",
        "--seed",
        "2",
    ]));
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = fs::remove_dir_all(data);
    result
}

fn test(extra: &[String]) -> Result<()> {
    // The browser tests' Chromium (tests/e2e/browser.rs), PostgreSQL for its engine's.
    ensure_browser()?;
    ensure_postgres()?;
    run_command(
        cargo()
            .args([
                "test",
                "--workspace",
                "--features",
                "paygate-daemon/test-hooks",
            ])
            .args(extra),
    )?;
    // The end-to-end suite again with every daemon on PostgreSQL (a database per data dir;
    // tests of what only the embedded engine has say so and pass).
    run_command(
        cargo()
            .args([
                "test",
                "--package",
                "paygate-daemon",
                "--features",
                "paygate-daemon/test-hooks",
                "--test",
                "e2e",
            ])
            .env("PAYGATE_E2E_ENGINE", "postgres")
            .args(extra),
    )?;
    // Every plugin against its recorded exchanges, and the world's contract (the plugin kit);
    // a plugin fresh from the template builds and its tests pass.
    kit_tests()?;
    template_test()?;
    // The alert rules: valid, and each one's unit tests; the systemd unit.
    alert_rules()?;
    service_unit()?;
    // The providers' own SDKs against the simulator.
    sdk_tests()?;
    // The API fuzzed from its own document (no 5xx, every answer documented).
    schemathesis()
}

/// The plugins with cassettes (the plugin kit): each component and its cassettes' folder.
const KIT_PLUGINS: [(&str, &str); 4] = [
    (
        "target/plugins/paygate-plugin-alipay.wasm",
        "plugins/alipay/cassettes",
    ),
    (
        "target/plugins/paygate-plugin-wechatpay.wasm",
        "plugins/wechatpay/cassettes",
    ),
    (
        "target/plugins/paygate-plugin-applepay.wasm",
        "plugins/applepay/cassettes",
    ),
    (
        "target/examples/toypay-wallet.wasm",
        "examples/toypay-wallet/cassettes",
    ),
];

/// `paygated plugin test` on every plugin with cassettes.
fn kit_tests() -> Result<()> {
    for (component, cassettes) in KIT_PLUGINS {
        run_command(Command::new(TEST_DAEMON).args([
            "plugin",
            "test",
            component,
            "--cassettes",
            cassettes,
        ]))?;
    }
    Ok(())
}

/// Generates a plugin from the template (as a plugin author would), runs its tests, builds
/// its component and has paygated inspect it.
fn template_test() -> Result<()> {
    let dir = Path::new("target/kit/template-check");
    let _ = fs::remove_dir_all(dir);
    plugin_new::plugin(&[
        "new".into(),
        "checkpay".into(),
        "--dir".into(),
        dir.display().to_string(),
    ])?;
    // Its own target folder (it is its own workspace), kept between runs.
    let target = fs::canonicalize("target")
        .map_err(|e| e.to_string())?
        .join("kit/target");
    run_command(
        cargo()
            .args(["test", "--quiet"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", &target),
    )?;
    run_command(
        cargo()
            .args(["build", "--quiet", "--release", "--target", PLUGIN_TARGET])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", &target),
    )?;
    run_command(
        Command::new(TEST_DAEMON)
            .args(["plugin", "inspect"])
            .arg(target.join(format!("{PLUGIN_TARGET}/release/checkpay_wallet.wasm"))),
    )
}

/// The instant the Apple Pay kit's scenarios are recorded at: Apple's published token's
/// signing time plus ten seconds (plugins/applepay/cassettes/kit.toml).
const APPLE_PAY_KIT_CLOCK_MS: &str = "1630522996000";

/// Records every plugin's cassettes from a fresh simulator on 127.0.0.1:8430 (the address
/// the kits' settings name), its card acquirer's clock at the Apple Pay kit's instant.
fn record_cassettes() -> Result<()> {
    let mut simulator = Command::new("target/release/paygate-sim")
        .args([
            "--listen",
            "127.0.0.1:8430",
            "--acquirer-clock-ms",
            APPLE_PAY_KIT_CLOCK_MS,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start paygate-sim: {e}"))?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(simulator.stdout.take().expect("stdout")),
        &mut line,
    )
    .map_err(|e| e.to_string())?;
    let result = if line.starts_with("paygate-sim listening") {
        KIT_PLUGINS.iter().try_for_each(|(component, cassettes)| {
            run_command(Command::new("target/release/paygated").args([
                "plugin",
                "record",
                component,
                "--cassettes",
                cassettes,
            ]))
        })
    } else {
        Err("paygate-sim did not start (is 127.0.0.1:8430 taken?)".into())
    };
    let _ = simulator.kill();
    let _ = simulator.wait();
    result
}

/// `promtool check rules` and `promtool test rules` on `ops/prometheus/` (promtool from
/// Debian's `prometheus` package, installed where missing).
fn alert_rules() -> Result<()> {
    ensure_commands(&[("promtool", "prometheus")])?;
    run_command(Command::new("promtool").args([
        "check",
        "rules",
        "ops/prometheus/paygate-rules.yml",
    ]))?;
    run_command(Command::new("promtool").args([
        "test",
        "rules",
        "ops/prometheus/paygate-rules.test.yml",
    ]))?;
    dashboard_queries()
}

/// Every query of the Grafana dashboard (`ops/grafana/paygate.json`) parses as PromQL:
/// written as recording rules (Grafana's variables given values) and checked by promtool.
fn dashboard_queries() -> Result<()> {
    let path = "ops/grafana/paygate.json";
    let text = fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut count = 0;
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                continue;
            };
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*");
            count += 1;
            rules.push_str(&format!(
                "      - record: paygate:dashboard:{count}\n        expr: {}\n",
                serde_json::Value::String(expr)
            ));
        }
    }
    if count == 0 {
        return Err(format!("{path}: no queries"));
    }
    let out = Path::new("target/ops/dashboard-queries.yml");
    fs::create_dir_all("target/ops").map_err(|e| e.to_string())?;
    fs::write(out, rules).map_err(|e| e.to_string())?;
    run_command(Command::new("promtool").arg("check").arg("rules").arg(out))
}

/// `systemd-analyze verify` on a copy of `ops/systemd/paygated.service` whose `ExecStart`
/// names the daemon just built; any complaint fails.
fn service_unit() -> Result<()> {
    ensure_commands(&[("systemd-analyze", "systemd")])?;
    let daemon = fs::canonicalize(TEST_DAEMON).map_err(|e| format!("{TEST_DAEMON}: {e}"))?;
    let installed = "/usr/local/bin/paygated";
    let dir = Path::new("target/ops");
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // Every unit (the service, the backup service and its timer), each copy pointing at the
    // build, verified together (the timer names its service).
    let mut copies = Vec::new();
    for name in [
        "paygated.service",
        "paygated-backup.service",
        "paygated-backup.timer",
    ] {
        let unit = fs::read_to_string(format!("ops/systemd/{name}")).map_err(|e| e.to_string())?;
        if name.ends_with(".service") && !unit.contains(installed) {
            return Err(format!(
                "ops/systemd/{name}: no {installed} to point at the build"
            ));
        }
        let copy = dir.join(name);
        fs::write(
            &copy,
            unit.replace(installed, &daemon.display().to_string()),
        )
        .map_err(|e| e.to_string())?;
        copies.push(copy);
    }
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .args(&copies)
        .output()
        .map_err(|e| format!("cannot run systemd-analyze: {e}"))?;
    let complaints = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !complaints.trim().is_empty() {
        return Err(format!("systemd-analyze verify ops/systemd/: {complaints}"));
    }
    println!("xtask: ops/systemd/ verified (the service, the backup service and its timer)");
    Ok(())
}

/// The providers' own Node SDKs (`alipay-sdk`, `wechatpay-axios-plugin`, pinned by
/// `tests/sdk/package-lock.json`) driving the release simulator end to end.
fn sdk_tests() -> Result<()> {
    ensure_commands(&[("node", "nodejs"), ("npm", "npm")])?;
    let dir = Path::new("tests/sdk");
    run_command(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir),
    )?;
    let simulator = fs::canonicalize("target/release/paygate-sim")
        .map_err(|e| format!("target/release/paygate-sim (cargo xtask build): {e}"))?;
    run_command(
        Command::new("node")
            .args(["--test", "--test-concurrency=1"])
            .current_dir(dir)
            .env("PAYGATE_SIM", simulator),
    )
}

/// Installs the Debian packages that provide the commands the tests need, where a command
/// is missing (a fresh machine has neither Node nor npm, say). Needs root, as CI has.
fn ensure_commands(commands: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = commands
        .iter()
        .filter(|(command, _)| {
            Command::new(command)
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_err()
        })
        .map(|(_, package)| *package)
        .collect();
    install_packages(&missing)
}

/// Debian's Chromium and its driver for the browser tests (`tests/e2e/browser.rs`), and a
/// font with Chinese glyphs, so that the pages' screenshots show the words, not boxes.
fn ensure_browser() -> Result<()> {
    ensure_commands(&[
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
    ])?;
    const CJK_FONT: &str = "fonts-wqy-microhei";
    // Installed, not merely known (a removed package keeps its status, `deinstall`).
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", CJK_FONT])
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.stdout.as_slice() == b"install ok installed");
    if installed {
        Ok(())
    } else {
        install_packages(&[CJK_FONT])
    }
}

/// The system's PostgreSQL for the PostgreSQL engine's tests: they use a server at
/// 127.0.0.1:5432 when one answers, else start a throwaway cluster from its binaries
/// (`daemon/src/store/postgres/testing.rs`); Debian keeps them out of `PATH`.
fn ensure_postgres() -> Result<()> {
    let installed = fs::read_dir("/usr/lib/postgresql").is_ok_and(|versions| {
        versions
            .flatten()
            .any(|v| v.path().join("bin/initdb").is_file())
    });
    if installed {
        Ok(())
    } else {
        install_packages(&["postgresql"])
    }
}

/// Installs Debian packages (none: nothing to do). Needs root, as CI has.
fn install_packages(missing: &[&str]) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    println!(
        "xtask: installing {} from Debian's packages",
        missing.join(", ")
    );
    run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    run_command(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// The reliability gauntlet: the crash loop with 20 kills (or the number given), then the
/// store verification, printing the counts (RELIABILITY.md).
/// `cargo xtask gauntlet [KILLS] [--postgres]`: the crash loop with KILLS kills (20); with
/// `--postgres`, on PostgreSQL, with the multi-node loop (three daemons on one database, for
/// `PAYGATE_GAUNTLET_SECONDS`, 60 by default) beside it.
fn gauntlet(args: &[String]) -> Result<()> {
    let postgres = args.iter().any(|a| a == "--postgres");
    if postgres {
        ensure_postgres()?;
    }
    let kills = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("20", String::as_str);
    let engine = if postgres { "postgres" } else { "sled" };
    run_command(
        cargo()
            .args([
                "test",
                "--package",
                "paygate-daemon",
                "--features",
                "test-hooks",
                "--test",
                "e2e",
                "--",
                "gauntlet",
                "--nocapture",
            ])
            .env("PAYGATE_GAUNTLET_KILLS", kills)
            .env("PAYGATE_E2E_ENGINE", engine),
    )
}

fn bench(which: &[String]) -> Result<()> {
    if which.first().map(String::as_str) == Some("compare") {
        return bench_compare(&which[1..]);
    }
    let all = which.is_empty();
    let wanted = |name: &str| all || which.iter().any(|w| w == name);
    if wanted("plugin") {
        bench_plugin()?;
    }
    if wanted("applepay") {
        // The Apple Pay token's verification in wasm (signature and chain).
        build_plugins()?;
        println!(
            "{}",
            run_bench(&[
                "applepay",
                "target/plugins/paygate-plugin-applepay.wasm",
                "target/bench-plugin-cache",
                "tests/vectors/applepay",
            ])?
        );
    }
    // `payments --postgres`: the same load on PostgreSQL, with 1 and 3 daemons.
    if which.iter().any(|w| w == "--postgres") {
        if which.iter().any(|w| w == "payments") {
            bench_payments_postgres()?;
        }
        return Ok(());
    }
    if wanted("payments") {
        bench_payments()?;
    }
    if wanted("monitor") {
        bench_monitor()?;
    }
    if wanted("store") {
        bench_store()?;
    }
    if wanted("sled-lock") {
        // Why durable payments top out: sled's global lock, flushes against transactions.
        println!("{}", run_bench(&["sled-lock"])?);
    }
    if wanted("stores") {
        bench_stores()?;
    }
    // Only when named: it makes 3 million payments (five to ten minutes).
    if which.iter().any(|w| w == "archive") {
        bench_archive()?;
    }
    // Only when named: it fills a data dir for a minute first.
    if which.iter().any(|w| w == "backup") {
        bench_backup()?;
    }
    // Only when named: it builds two storage engines paygate does not use.
    if which.iter().any(|w| w == "engines") {
        bench_engines()?;
    }
    // Only when named: it needs a PostgreSQL server.
    if which.iter().any(|w| w == "postgres") {
        bench_postgres()?;
    }
    Ok(())
}

/// One barcode payment's writes through the daemon's own store and its storage port:
/// CPU, bytes written and bytes on disk per payment, in the default mode and the relaxed one.
fn bench_stores() -> Result<()> {
    build_bench()?;
    let dir = "target/bench-stores-tmp";
    println!("{}", run_bench(&["stores", dir, "200000", "20"])?);
    println!(
        "{}",
        run_bench(&["stores", dir, "200000", "20", "relaxed"])?
    );
    Ok(())
}

/// The PostgreSQL server the benchmarks use: `PAYGATE_BENCH_POSTGRES` (`key=value` settings
/// without a database), else 127.0.0.1:5432 as `postgres`.
struct BenchServer {
    /// The `key=value` settings.
    settings: String,
    /// The same for `psql` and `pgbench`: `-h`, `-p`, `-U`.
    connection: Vec<String>,
}

impl BenchServer {
    fn find() -> BenchServer {
        let settings = env::var("PAYGATE_BENCH_POSTGRES")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned());
        let setting = |key: &str, default: &str| {
            settings
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                .unwrap_or(default)
                .to_owned()
        };
        let connection = vec![
            "-h".into(),
            setting("host", "127.0.0.1"),
            "-p".into(),
            setting("port", "5432"),
            "-U".into(),
            setting("user", "postgres"),
        ];
        BenchServer {
            settings,
            connection,
        }
    }

    /// Makes the database `name` anew; returns its connection string.
    fn fresh(&self, name: &str) -> Result<String> {
        run_command(
            Command::new("psql")
                .args(&self.connection)
                .args(["-q", "-d", "postgres", "-c"])
                .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .args(["-c", &format!("CREATE DATABASE {name}")]),
        )?;
        Ok(format!("{} dbname={name}", self.settings))
    }

    /// pgbench's built-in TPC-B-like workload (scale 10) on a fresh database: its TPS with
    /// `clients` clients for `seconds`.
    fn pgbench_tps(&self, clients: &str, seconds: &str) -> Result<f64> {
        self.fresh("paygate_pgbench")?;
        run_command(Command::new("pgbench").args(&self.connection).args([
            "-i",
            "-q",
            "-s",
            "10",
            "paygate_pgbench",
        ]))?;
        let pgbench = capture(
            Command::new("pgbench")
                .args(&self.connection)
                .args(["-c", clients, "-j", "2", "-T", seconds, "-M", "prepared"])
                .arg("paygate_pgbench"),
        )?;
        Ok(number_after(&pgbench, "tps = "))
    }
}

/// The PostgreSQL engine's storage port (`paygate-bench pg-store`) against pgbench's built-in
/// TPC-B-like workload on the same server at the same client count, in one run, each on a
/// fresh database.
fn bench_postgres() -> Result<()> {
    build_bench()?;
    let server = BenchServer::find();
    let seconds = "20";
    for clients in ["16", "64"] {
        let url = server.fresh("paygate_bench")?;
        let ours = run_bench(&["pg-store", &url, clients, seconds])?;
        println!("{}", ours.trim_end());
        let tps = server.pgbench_tps(clients, seconds)?;
        let payments = number_after(&ours, "s: ");
        println!(
            "pgbench (TPC-B-like, scale 10): {clients} clients: {tps:.0} TPS; payments/s / TPS = {:.2}",
            payments / tps
        );
    }
    Ok(())
}

/// `bench payments --postgres`: durable payments through the release daemon over HTTP, with 1
/// and 3 daemons on one PostgreSQL database (the clients spread over them), each beside
/// pgbench's TPC-B-like workload at the same client count, in one run.
fn bench_payments_postgres() -> Result<()> {
    build()?;
    build_bench()?;
    let server = BenchServer::find();
    let seconds = "10";
    let mut rows = Vec::new();
    for clients in ["16", "64"] {
        let tps = server.pgbench_tps(clients, seconds)?;
        for daemons in ["1", "3"] {
            let url = server.fresh("paygate_bench")?;
            let line = run_bench(&[
                "payments-postgres",
                "target/release/paygated",
                "config/paygate.toml",
                &url,
                daemons,
                clients,
                seconds,
            ])?;
            println!("{line}");
            rows.push((clients, daemons, tps, line));
        }
    }
    println!();
    println!(
        "durable barcode payments through the mock wallet on PostgreSQL, {seconds} s per row, loopback"
    );
    println!(
        "| clients | daemons | payments/s | p50 | p99 | errors | CPU/payment (daemons) | pgbench TPS | payments/s / TPS |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (clients, daemons, tps, line) in &rows {
        let payments = json_number(line, "throughput_per_s")?;
        println!(
            "| {clients} | {daemons} | {payments:.0} | {:.1} ms | {:.1} ms | {} | {:.0} µs | {tps:.0} | {:.2} |",
            json_number(line, "p50_us")? / 1000.0,
            json_number(line, "p99_us")? / 1000.0,
            json_number(line, "errors")?,
            json_number(line, "cpu_us_per_request")?,
            payments / tps
        );
    }
    Ok(())
}

/// The number that follows `label` in `text` (0 if none).
fn number_after(text: &str, label: &str) -> f64 {
    text.split(label)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

/// A payment's store writes on sled 0.34 (a copy of an earlier write pattern) against fjall
/// and redb, which commit several keys atomically (`bench/stores/`, a separate workspace).
fn bench_engines() -> Result<()> {
    let manifest = "bench/stores/Cargo.toml";
    run_command(cargo().args(["build", "--quiet", "--release", "--manifest-path", manifest]))?;
    for engine in ["sled", "fjall", "redb"] {
        run_command(
            Command::new("bench/stores/target/release/paygate-bench-stores")
                .args([engine, "200000", "20"]),
        )?;
    }
    Ok(())
}

/// Fresh instance + one create-payment on the mock plugin, in-process, against the same work
/// through Extism (built in its own workspace, so tests never compile a second wasmtime).
fn bench_plugin() -> Result<()> {
    build_plugins()?;
    let ours = run_bench(&[
        "plugin",
        "target/plugins/paygate-plugin-mock.wasm",
        "target/bench-plugin-cache",
    ])?;
    ensure_target("wasm32-unknown-unknown")?;
    let peer_manifest = "bench/extism/Cargo.toml";
    run_command(cargo().args([
        "build",
        "--quiet",
        "--profile",
        "plugin",
        "--target",
        "wasm32-unknown-unknown",
        "--manifest-path",
        peer_manifest,
        "--package",
        "extism-mock",
    ]))?;
    let theirs = capture(cargo().args([
        "run",
        "--quiet",
        "--release",
        "--manifest-path",
        peer_manifest,
        "--package",
        "extism-peer",
        "--",
        "bench/extism/target/wasm32-unknown-unknown/plugin/extism_mock.wasm",
    ]))?;
    println!("{ours}");
    println!("{theirs}");
    let median = |line: &str| json_number(line, "median_us");
    let p99 = |line: &str| json_number(line, "p99_us");
    println!();
    println!(
        "fresh instance + one create-payment (mock), in-process, 20,000 calls after 2,000 warm-up"
    );
    println!("| host | median | p99 |");
    println!("| --- | --- | --- |");
    println!(
        "| paygate (wasmtime 48, component model) | {:.1} us | {:.1} us |",
        median(&ours)?,
        p99(&ours)?
    );
    println!(
        "| Extism 1.x (extism-pdk plugin, JSON) | {:.1} us | {:.1} us |",
        median(&theirs)?,
        p99(&theirs)?
    );
    println!(
        "Extism median / paygate median: {:.2}",
        median(&theirs)? / median(&ours)?
    );
    Ok(())
}

/// The anomaly monitor's figures (`paygate-bench monitor`) against the release daemon.
fn bench_monitor() -> Result<()> {
    build()?;
    build_bench()?;
    run_command(Command::new("target/release/paygate-bench").args([
        "monitor",
        "target/release/paygated",
        "config/paygate.toml",
    ]))
}

/// Durable payment creation through the mock plugin over loopback: 1, 16, 64 and 256
/// clients with the default store (group commit, fdatasync after each flush); at 64, one
/// flush per request, the relaxed mode (group commit without fdatasync), and the bare-axum
/// baseline (the ratio). Each daemon row starts the daemon twice on a fresh
/// data dir (the first start compiles the plugins, the second finds them cached) and ends
/// with a SIGKILL and two restarts on its data: how long recovery takes and what it holds.
fn bench_payments() -> Result<()> {
    build()?;
    build_bench()?;
    let runs = [
        ("1", "group+fdatasync"),
        ("16", "group+fdatasync"),
        ("64", "group+fdatasync"),
        ("256", "group+fdatasync"),
        ("64", "each"),
        ("64", "group"),
        ("64", "baseline"),
    ];
    let mut lines = Vec::new();
    for (clients, flush) in runs {
        let line = payments_run("target/release/paygated", clients, "10", flush)?;
        println!("{line}");
        lines.push(line);
    }
    println!();
    println!("durable barcode payments through the mock wallet, 10 s per row, loopback");
    println!(
        "| clients | flush | payments/s | p50 | p99 | errors | peak RSS | start-up: cold, warm plugin cache | flushes/s | waiters/flush | writer busy | CPU/payment | data dir | restart after kill, warm cache (RSS) | second restart (RSS) |"
    );
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for line in &lines {
        let flush = line
            .split("\"flush\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?");
        // The baseline has no plugins to cache and keeps no data: nothing to recover.
        let startup = if flush == "baseline" {
            format!("{:.0} ms", json_number(line, "startup_ms")?)
        } else {
            format!(
                "{:.0} ms, {:.0} ms",
                json_number(line, "cold_startup_ms")?,
                json_number(line, "startup_ms")?
            )
        };
        let after_kill = if flush == "baseline" {
            "— | — | —".to_owned()
        } else {
            format!(
                "{:.0} MiB | {:.0} ms ({:.0} MiB) | {:.0} ms ({:.0} MiB)",
                json_number(line, "data_mib")?,
                json_number(line, "restart_ms")?,
                json_number(line, "restart_rss_mib")?,
                json_number(line, "second_restart_ms")?,
                json_number(line, "second_restart_rss_mib")?
            )
        };
        println!(
            "| {} | {flush} | {:.0} | {:.1} ms | {:.1} ms | {} | {:.0} MiB | {startup} | {:.0} | {:.1} | {:.0} % | {:.0} µs | {after_kill} |",
            json_number(line, "clients")?,
            json_number(line, "throughput_per_s")?,
            json_number(line, "p50_us")? / 1000.0,
            json_number(line, "p99_us")? / 1000.0,
            json_number(line, "errors")?,
            json_number(line, "peak_rss_mib")?,
            json_number(line, "flushes_per_s")?,
            json_number(line, "waiters_per_flush")?,
            json_number(line, "writer_busy")? * 100.0,
            json_number(line, "cpu_us_per_request")?
        );
    }
    // The ratio of API.md's bar: durable payments vs the bare handler, 64 clients each.
    let at_64 = |flush: &str| {
        lines
            .iter()
            .find(|l| {
                l.contains("\"clients\":64,") && l.contains(&format!("\"flush\":\"{flush}\""))
            })
            .and_then(|l| json_number(l, "throughput_per_s").ok())
    };
    if let (Some(paygate), Some(baseline)) = (at_64("group+fdatasync"), at_64("baseline")) {
        println!();
        println!(
            "ratio at 64 clients (durable / bare axum baseline): {:.3}",
            paygate / baseline
        );
    }
    Ok(())
}

/// The memory and restart bars with the archive: durable payments at 64 clients until 3
/// million are made, `paygated store archive --older-than 0d` (which compacts after), then
/// the daemon restarted on what is left and loaded again at 64 clients. Prints each step's
/// figures.
/// The release daemon and the bench built, and `dir` made empty for a run.
fn fresh_bench_dir(dir: &str) -> Result<std::path::PathBuf> {
    build()?;
    build_bench()?;
    let work = std::path::PathBuf::from(dir);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    Ok(work)
}

/// `store backup` of a serving daemon under load: a data dir filled by 64 clients for 60 s,
/// then the same load for 30 s with a backup taken 10 s in (how long writes waited, what the
/// load saw), the backup restored (and verified), and the same load without a backup to
/// compare.
fn bench_backup() -> Result<()> {
    let work = &fresh_bench_dir("target/bench-backup")?;
    let data = work.join("data");
    let fill = payments_run_with(
        "target/release/paygated",
        "64",
        "60",
        "group+fdatasync",
        &[("PAYGATE_BENCH_KEEP_DATA", &data)],
    )?;
    println!("fill: {fill}");
    // 30 s of the fill's load on the filled data dir.
    let load = || {
        payments_run_with(
            "target/release/paygated",
            "64",
            "30",
            "group+fdatasync",
            &[("PAYGATE_BENCH_DATA", &data)],
        )
    };
    let plain = load()?;
    println!("load alone: {plain}");
    let copy = work.join("backup");
    let backup = {
        let (data, copy) = (data.clone(), copy.clone());
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(10));
            capture(Command::new("target/release/paygated").args([
                "store".as_ref(),
                "backup".as_ref(),
                "--data-dir".as_ref(),
                data.as_os_str(),
                "--to".as_ref(),
                copy.as_os_str(),
            ]))
        })
    };
    let during = load()?;
    let backup = backup
        .join()
        .map_err(|_| "the backup thread panicked".to_owned())??;
    println!("load with a backup: {during}");
    println!("backup: {backup}");
    println!(
        "backup size: {:.1} MiB (data dir {:.1} MiB)",
        dir_mib(&copy),
        dir_mib(&data)
    );
    let restored = work.join("restored");
    let restore = capture(Command::new("target/release/paygated").args([
        "store".as_ref(),
        "restore".as_ref(),
        "--from".as_ref(),
        copy.as_os_str(),
        "--data-dir".as_ref(),
        restored.as_os_str(),
    ]))?;
    println!("restore: {restore}");
    Ok(())
}

fn bench_archive() -> Result<()> {
    // Filled in rounds, each a daemon's run with a kill and restart at its end, so that each
    // round also times a restart after the payments written since the previous start.
    const TARGET: f64 = 3_000_000.0;
    const ROUND_SECONDS: &str = "100";
    const MAX_ROUNDS: usize = 8;
    let work = &fresh_bench_dir("target/bench-archive")?;
    let data = work.join("data");
    let data_arg = data.to_str().ok_or("a UTF-8 path")?;
    let mut made = 0.0;
    let mut rounds = Vec::new();
    while made < TARGET && rounds.len() < MAX_ROUNDS {
        let data_env = if rounds.is_empty() {
            "PAYGATE_BENCH_KEEP_DATA"
        } else {
            "PAYGATE_BENCH_DATA"
        };
        let fill = payments_run_with(
            "target/release/paygated",
            "64",
            ROUND_SECONDS,
            "group+fdatasync",
            &[(data_env, &data)],
        )?;
        println!("fill round {}: {fill}", rounds.len() + 1);
        made += json_number(&fill, "ok")?;
        rounds.push(fill);
    }
    let before = dir_mib(&data);
    // Retention short for the bench: payments (`--older-than 0d`) and their idempotency
    // keys (a day by default, long gone when a payment is 90 days old).
    let short = work.join("paygate.toml");
    let text = std::fs::read_to_string("config/paygate.toml").map_err(|e| e.to_string())?;
    let retention = "idempotency_retention_s = 86400";
    if !text.contains(retention) {
        return Err(format!("config/paygate.toml no longer says {retention:?}"));
    }
    std::fs::write(
        &short,
        text.replace(retention, "idempotency_retention_s = 0"),
    )
    .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let archived = capture(Command::new("target/release/paygated").args([
        "store",
        "archive",
        "--config",
        short.to_str().ok_or("a UTF-8 path")?,
        "--data-dir",
        data_arg,
        "--older-than",
        "0d",
    ]))?;
    let archive_s = started.elapsed().as_secs_f64();
    println!("archive: {archived}");
    let after = (dir_mib(&data.join("db")), dir_mib(&data.join("archive")));
    let load = payments_run_with(
        "target/release/paygated",
        "64",
        "20",
        "group+fdatasync",
        &[("PAYGATE_BENCH_DATA", &data)],
    )?;
    println!("after: {load}");
    println!();
    println!(
        "| fill round | payments | payments/s | p99 | CPU per payment | peak RSS | restart after kill (RSS) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (n, round) in rounds.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} | {:.1} ms | {:.0} µs | {:.0} MiB | {:.0} ms ({:.0} MiB) |",
            n + 1,
            json_number(round, "ok")?,
            json_number(round, "throughput_per_s")?,
            json_number(round, "p99_us")? / 1000.0,
            json_number(round, "cpu_us_per_request")?,
            json_number(round, "peak_rss_mib")?,
            json_number(round, "restart_ms")?,
            json_number(round, "restart_rss_mib")?,
        );
    }
    println!();
    println!(
        "| payments made | data dir before | archive run and compaction | database after | archive | then 64 clients, 20 s: payments/s | p99 | peak RSS | restart after kill (RSS) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {made:.0} | {before:.0} MiB | {archive_s:.1} s | {:.0} MiB | {:.0} MiB | {:.0} | {:.1} ms | {:.0} MiB | {:.0} ms ({:.0} MiB) |",
        after.0,
        after.1,
        json_number(&load, "throughput_per_s")?,
        json_number(&load, "p99_us")? / 1000.0,
        json_number(&load, "peak_rss_mib")?,
        json_number(&load, "restart_ms")?,
        json_number(&load, "restart_rss_mib")?,
    );
    Ok(())
}

/// The bytes under `dir`, in MiB (`du -sb`).
fn dir_mib(dir: &std::path::Path) -> f64 {
    Command::new("du")
        .arg("-sb")
        .arg(dir)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
        })
        .map_or(0.0, |bytes| bytes / (1024.0 * 1024.0))
}

/// sled's flush alone against flush + `fdatasync` of its files, one write per flush and 64
/// per flush, in a temp dir under `target/` (on the repo's filesystem), 3 s per mode.
fn bench_store() -> Result<()> {
    println!("{}", run_bench(&["store", "target/bench-store-tmp", "3"])?);
    Ok(())
}

/// `bench compare <paygated A> <paygated B> [pairs] [clients] [seconds]`: durable payments
/// (the default store: group commit and fdatasync) through two daemon binaries in alternated runs (A B, then B A, ...), so that the machine's
/// drift (20–50 % here) falls on both alike; prints every run and each side's medians.
fn bench_compare(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask bench compare <paygated A> <paygated B> [pairs=4] [clients=64] [seconds=8]";
    let [a, b, rest @ ..] = args else {
        return Err(usage.into());
    };
    let number = |i: usize, default: u64| -> Result<u64> {
        rest.get(i).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("{v}: {usage}"))
        })
    };
    let (pairs, clients, seconds) = (number(0, 4)?, number(1, 64)?, number(2, 8)?);
    if pairs == 0 || clients == 0 || seconds == 0 {
        return Err(usage.into());
    }
    build_bench()?;
    let keys = [
        "throughput_per_s",
        "p99_us",
        "cpu_us_per_request",
        "writer_busy",
        "peak_rss_mib",
    ];
    let mut results: [Vec<Vec<f64>>; 2] = [Vec::new(), Vec::new()];
    for pair in 0..pairs {
        let order = if pair % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let line = payments_run(
                [a, b][side],
                &clients.to_string(),
                &seconds.to_string(),
                "group+fdatasync",
            )?;
            println!("{} {line}", ["A", "B"][side]);
            let values = keys
                .iter()
                .map(|k| json_number(&line, k))
                .collect::<Result<Vec<f64>>>()?;
            results[side].push(values);
        }
    }
    println!();
    println!(
        "| side | payments/s | p99 | CPU/payment | writer busy | peak RSS | (medians of {pairs}) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (side, runs) in results.iter().enumerate() {
        let median = |k: usize| {
            let mut v: Vec<f64> = runs.iter().map(|r| r[k]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {} | {:.0} | {:.1} ms | {:.0} µs | {:.0} % | {:.0} MiB | {} |",
            ["A", "B"][side],
            median(0),
            median(1) / 1000.0,
            median(2),
            median(3) * 100.0,
            median(4),
            [a, b][side]
        );
    }
    let b_faster = (0..results[0].len())
        .filter(|&i| results[1][i][0] > results[0][i][0])
        .count();
    println!("B made more payments/s than A in {b_faster} of {pairs} pairs");
    Ok(())
}

/// One `paygate-bench payments` run of `paygated` on the default config; its JSON line.
fn payments_run(paygated: &str, clients: &str, seconds: &str, flush: &str) -> Result<String> {
    payments_run_with(paygated, clients, seconds, flush, &[])
}

/// [`payments_run`] with environment variables for the bench (`PAYGATE_BENCH_*`).
fn payments_run_with(
    paygated: &str,
    clients: &str,
    seconds: &str,
    flush: &str,
    env: &[(&str, &std::path::Path)],
) -> Result<String> {
    capture(
        Command::new("target/release/paygate-bench")
            .args([
                "payments",
                paygated,
                "config/paygate.toml",
                clients,
                seconds,
                flush,
            ])
            .envs(env.iter().copied()),
    )
}

/// Builds `paygate-bench` (release), which the benchmarks run directly.
fn build_bench() -> Result<()> {
    run_command(cargo().args([
        "build",
        "--quiet",
        "--release",
        "--package",
        "paygate-bench",
    ]))
}

/// Runs `command` and returns its stdout (its stderr goes to ours).
fn capture(command: &mut Command) -> Result<String> {
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{command:?} failed ({})", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The number after `"key":` in a one-line JSON object.
fn json_number(line: &str, key: &str) -> Result<f64> {
    let pattern = format!("\"{key}\":");
    let start = line
        .find(&pattern)
        .ok_or_else(|| format!("no {key} in {line}"))?
        + pattern.len();
    line[start..]
        .split([',', '}'])
        .next()
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("bad {key} in {line}"))
}

/// `cargo run --release -p paygate-bench -- <args>`; returns what it printed.
fn run_bench(args: &[&str]) -> Result<String> {
    capture(
        cargo()
            .args([
                "run",
                "--quiet",
                "--release",
                "--package",
                "paygate-bench",
                "--",
            ])
            .args(args),
    )
}
