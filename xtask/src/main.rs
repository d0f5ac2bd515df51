//! `cargo xtask`: the project's build and test driver (the matklad xtask pattern).
//!
//! - `cargo xtask build`: install the wasm target if missing, build every plugin under
//!   `plugins/` into a component in `target/plugins/`, then the daemon in release mode.
//! - `cargo xtask run`: `build`, then run the gateway on `config/paygate.toml` with data in
//!   `./data`, in the foreground.
//! - `cargo xtask test`: `build`, then the whole test suite (unit and end-to-end).
//! - `cargo xtask bench`: the benchmarks (none yet).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

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
        Some("test") => build().and_then(|()| test(&args[1..])),
        Some("bench") => {
            println!("no benchmarks yet");
            Ok(())
        }
        _ => {
            eprintln!("usage: cargo xtask <build | run | test | bench>");
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
    let plugins = plugin_crates("plugins")?;
    let test_plugins = plugin_crates("tests/plugins")?;
    let example_plugins = plugin_crates("examples")?;
    if plugins.is_empty() && test_plugins.is_empty() {
        println!("xtask: no plugin crates yet");
    } else {
        ensure_wasm_target()?;
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
    run_command(cargo().args([
        "build",
        "--release",
        "--package",
        "paygate-daemon",
        "--bin",
        "paygated",
    ]))
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
        if !text.contains("crate-type = [\"cdylib\"]") {
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

fn ensure_wasm_target() -> Result<()> {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup (needed to install {PLUGIN_TARGET}): {e}"))?;
    let installed = String::from_utf8_lossy(&output.stdout);
    if installed.lines().any(|line| line.trim() == PLUGIN_TARGET) {
        return Ok(());
    }
    println!("xtask: installing the {PLUGIN_TARGET} target");
    run_command(Command::new("rustup").args(["target", "add", PLUGIN_TARGET]))
}

fn run(extra: &[String]) -> Result<()> {
    println!("xtask: starting paygated on config/paygate.toml, data in ./data (Ctrl-C stops it)");
    println!(
        "xtask: then try: curl -s -H 'Authorization: Bearer pg_demo_erp' http://127.0.0.1:8420/v1/merchants/m_demo"
    );
    run_command(
        Command::new("target/release/paygated")
            .args([
                "serve",
                "--config",
                "config/paygate.toml",
                "--data-dir",
                "data",
            ])
            .args(extra),
    )
}

fn test(extra: &[String]) -> Result<()> {
    run_command(
        cargo()
            .args([
                "test",
                "--workspace",
                "--features",
                "paygate-daemon/test-hooks",
            ])
            .args(extra),
    )
}
