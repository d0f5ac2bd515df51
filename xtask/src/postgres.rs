//! `cargo xtask run --postgres`: a database for the gateway to run on, and the config that
//! names it. The database is, in this order: `PAYGATE_DATABASE_URL` when set; database
//! `paygate` on a server answering at 127.0.0.1:5432 (made if missing); else a cluster of
//! its own under `target/postgres-cluster/` (made once from Debian's binaries, started on
//! 127.0.0.1:5433 for the run, as the `postgres` user when run as root: `initdb` refuses
//! root), stopped when the run ends.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Result, run_command};

/// Beside the data dir, not in it: the daemon makes its data dir private to its own user,
/// and the server runs as `postgres`.
const CLUSTER_DIR: &str = "target/postgres-cluster";
const CLUSTER_PORT: u16 = 5433;
/// The config `run --postgres` writes: the shipped one, on the PostgreSQL engine.
pub const CONFIG: &str = "target/paygate-postgres.toml";

/// A database the gateway runs on; stops the cluster it started, if any, when dropped.
pub struct Database {
    pub url: String,
    cluster: Option<PathBuf>,
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(dir) = &self.cluster {
            let _ = as_cluster_owner(&pg_bin("pg_ctl"), &["-D", &path(dir), "-m", "fast", "stop"])
                .status();
        }
    }
}

/// Finds or starts the database, and writes [`CONFIG`] naming it.
pub fn prepare() -> Result<Database> {
    let database = find_or_start()?;
    let shipped = fs::read_to_string("config/paygate.toml")
        .map_err(|e| format!("config/paygate.toml: {e}"))?;
    if !shipped.contains("\nengine = \"sled\"") {
        return Err("config/paygate.toml has no `engine = \"sled\"` line under [store]".into());
    }
    let config = format!(
        "{}\n[store.postgres]\nurl = \"inline:{}\"\n",
        shipped.replace("\nengine = \"sled\"", "\nengine = \"postgres\""),
        database.url
    );
    fs::write(CONFIG, config).map_err(|e| format!("{CONFIG}: {e}"))?;
    println!(
        "xtask: the gateway's data goes to PostgreSQL ({})",
        database.url
    );
    Ok(database)
}

fn find_or_start() -> Result<Database> {
    if let Ok(url) = std::env::var("PAYGATE_DATABASE_URL") {
        return Ok(Database { url, cluster: None });
    }
    if answers(5432) {
        let server = "host=127.0.0.1 port=5432 user=postgres";
        ensure_database(server)?;
        return Ok(Database {
            url: format!("{server} dbname=paygate"),
            cluster: None,
        });
    }
    let dir = fs::canonicalize(".")
        .map_err(|e| e.to_string())?
        .join(CLUSTER_DIR);
    if !dir.join("PG_VERSION").is_file() {
        println!("xtask: no PostgreSQL at 127.0.0.1:5432: making a cluster in {CLUSTER_DIR}");
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        give_to_cluster_owner(&dir)?;
        run_command(&mut as_cluster_owner(
            &pg_bin("initdb"),
            &[
                "-D",
                &path(&dir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        ))?;
    }
    let options = format!(
        "-p {CLUSTER_PORT} -c listen_addresses=127.0.0.1 -k {}",
        path(&dir)
    );
    run_command(&mut as_cluster_owner(
        &pg_bin("pg_ctl"),
        &[
            "-D",
            &path(&dir),
            "-l",
            &path(&dir.join("server.log")),
            "-o",
            &options,
            "-w",
            "start",
        ],
    ))?;
    let database = Database {
        url: format!("host=127.0.0.1 port={CLUSTER_PORT} user=postgres dbname=paygate"),
        cluster: Some(dir),
    };
    ensure_database(&format!("host=127.0.0.1 port={CLUSTER_PORT} user=postgres"))?;
    Ok(database)
}

fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// Makes database `paygate` on `server` unless it exists.
fn ensure_database(server: &str) -> Result<()> {
    let psql = pg_bin("psql");
    let admin = format!("{server} dbname=postgres");
    let found = Command::new(&psql)
        .args([
            &admin,
            "-tAc",
            "SELECT 1 FROM pg_database WHERE datname = 'paygate'",
        ])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", psql.display()))?;
    if !found.status.success() {
        return Err(format!(
            "psql on {server}: {}",
            String::from_utf8_lossy(&found.stderr)
        ));
    }
    if String::from_utf8_lossy(&found.stdout).trim() == "1" {
        return Ok(());
    }
    run_command(Command::new(&psql).args([&admin, "-c", "CREATE DATABASE paygate"]))
}

/// A binary of the newest PostgreSQL installed (Debian keeps them out of `PATH`).
fn pg_bin(name: &str) -> PathBuf {
    let newest = fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|v| v.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .max();
    newest.unwrap_or_else(|| PathBuf::from(name))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `program args`, as the `postgres` user when run as root.
fn as_cluster_owner(program: &Path, args: &[&str]) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

fn give_to_cluster_owner(dir: &Path) -> Result<()> {
    if running_as_root() {
        run_command(Command::new("chown").args(["-R", "postgres:postgres", &path(dir)]))?;
    }
    Ok(())
}

fn path(p: &Path) -> String {
    p.display().to_string()
}
