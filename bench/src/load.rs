//! The load generator: the real daemon over loopback, N clients, every answer verified.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::measure;

/// Runs the daemon with `config` (flush mode `flush`) and drives it for `seconds`.
pub fn payments(paygated: &Path, config: &Path, clients: usize, seconds: u64, flush: &str) {
    let dir = std::env::temp_dir().join(format!("paygate-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let text = std::fs::read_to_string(config).expect("the config file");
    let config_path = dir.join("paygate.toml");
    // `group+fdatasync`: group commit with an fdatasync of the log after each flush.
    let (mode, fdatasync) = match flush.split_once('+') {
        Some((mode, "fdatasync")) => (mode, true),
        _ => (flush, false),
    };
    let text = text
        .replace("flush = \"group\"", &format!("flush = \"{mode}\""))
        .replace("fdatasync = true", "fdatasync = false")
        .replace("fdatasync = false", &format!("fdatasync = {fdatasync}"));
    std::fs::write(&config_path, text).expect("write config");
    // `PAYGATE_BENCH_DATA=<dir>` runs on that data dir as it is (and leaves it), e.g. one
    // that an earlier run filled and `store archive` emptied.
    let given = std::env::var_os("PAYGATE_BENCH_DATA").map(std::path::PathBuf::from);
    let data = given.clone().unwrap_or_else(|| dir.join("data"));
    // `baseline`: the bare axum handler instead of the daemon, driven the same way.
    let mut command = if flush == "baseline" {
        let mut command = Command::new(std::env::current_exe().expect("this binary"));
        command.arg("baseline-server");
        command
    } else {
        let mut command = Command::new(paygated);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config_path)
            .arg("--data-dir")
            .arg(&data);
        command
    };
    command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // The fresh data dir holds no compiled plugins yet: the first start compiles and caches
    // them (cold), and the run is on a second start (warm). The baseline has no plugins.
    let (mut server, mut base, cold_startup) = Server::start(&mut command);
    let mut startup = cold_startup;
    if flush != "baseline" {
        drop(server);
        (server, base, startup) = Server::start(&mut command);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pid = server.0.id();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let proc_dir = format!("/proc/{pid}");
    let cpu_before = measure::cpu_seconds(&proc_dir);
    let (mut samples, errors, total) = runtime.block_on(drive(
        std::slice::from_ref(&base),
        clients,
        Duration::from_secs(seconds),
    ));
    // The server's own CPU time per answer: steadier than throughput on a shared 2-core
    // machine, where the load generator and the server take turns.
    let cpu_us_per_request =
        (measure::cpu_seconds(&proc_dir) - cpu_before) * 1e6 / total.max(1) as f64;
    // The group commit's own counters: how many flushes served how many waits.
    let (flushes, waiters, writer_busy) = if flush == "baseline" {
        (0.0, 0.0, 0.0)
    } else {
        runtime.block_on(store_counters(&base))
    };
    let rss_kib = measure::field(&proc_dir, "status", "VmHWM:");
    // SIGKILL: the run ends in a crash, as the gauntlet's do.
    drop(server);
    let after_kill = if flush == "baseline" {
        AfterKill::default()
    } else {
        runtime.block_on(after_kill(&mut command, &data))
    };
    // `PAYGATE_BENCH_KEEP_DATA=<dir>` keeps the data dir the run wrote there (to time a
    // migration or a verify on a store of this size), instead of removing it.
    if let Some(keep) = std::env::var_os("PAYGATE_BENCH_KEEP_DATA")
        && given.is_none()
    {
        std::fs::rename(&data, &keep).expect("keep the data dir");
    }
    let _ = std::fs::remove_dir_all(&dir);
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| us(samples[((samples.len() as f64 - 1.0) * q).round() as usize]);
    println!(
        "{{\"name\":\"durable_payments\",\"flush\":\"{flush}\",\"clients\":{clients},\"seconds\":{seconds},\"ok\":{},\"errors\":{errors},\"throughput_per_s\":{:.0},\"p50_us\":{:.0},\"p99_us\":{:.0},\"max_us\":{:.0},\"peak_rss_mib\":{:.1},\"cold_startup_ms\":{:.0},\"startup_ms\":{:.0},\"flushes_per_s\":{:.0},\"waiters_per_flush\":{:.1},\"writer_busy\":{:.2},\"cpu_us_per_request\":{cpu_us_per_request:.0},\"data_mib\":{:.0},\"restart_ms\":{:.0},\"restart_rss_mib\":{:.1},\"second_restart_ms\":{:.0},\"second_restart_rss_mib\":{:.1}}}",
        samples.len(),
        total as f64 / seconds as f64,
        at(0.5),
        at(0.99),
        us(*samples.last().expect("at least one answer")),
        rss_kib as f64 / 1024.0,
        ms(cold_startup),
        ms(startup),
        flushes / seconds as f64,
        if flushes > 0.0 {
            waiters / flushes
        } else {
            0.0
        },
        writer_busy / seconds as f64,
        after_kill.data_bytes as f64 / (1024.0 * 1024.0),
        ms(after_kill.first.until_answer),
        after_kill.first.rss_kib as f64 / 1024.0,
        ms(after_kill.second.until_answer),
        after_kill.second.rss_kib as f64 / 1024.0,
    );
}

/// What a crash at the end of a run leaves: the data directory, and how long the daemon
/// takes to serve again on it and how much memory it holds then, twice. sled 0.34 writes its
/// snapshot only when it opens, so the first restart replays the log written since the run's
/// start; the second finds a fresh snapshot.
#[derive(Default)]
struct AfterKill {
    data_bytes: u64,
    first: Restart,
    second: Restart,
}

#[derive(Default)]
struct Restart {
    until_answer: Duration,
    rss_kib: u64,
}

/// Restarts the daemon on the killed run's data twice, killing it after each first answer.
async fn after_kill(command: &mut Command, data: &Path) -> AfterKill {
    AfterKill {
        data_bytes: measure::dir_bytes(data),
        first: restart(command).await,
        second: restart(command).await,
    }
}

/// Starts the daemon, times it until its first answer to a list of payments (which must name
/// one), and kills it.
async fn restart(command: &mut Command) -> Restart {
    let spawned = Instant::now();
    let (server, base, _) = Server::start(command);
    let listed = reqwest::Client::new()
        .get(format!("{base}/v1/payments?merchant_id=m_demo&limit=1"))
        .bearer_auth("pg_demo_erp")
        .send()
        .await
        .expect("a list answer after the restart")
        .json::<serde_json::Value>()
        .await
        .expect("a JSON list");
    let until_answer = spawned.elapsed();
    assert!(
        listed["data"][0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("pay_")),
        "the payments are there after the restart: {listed}"
    );
    let rss_kib = measure::field(&format!("/proc/{}", server.0.id()), "status", "VmRSS:");
    drop(server);
    Restart {
        until_answer,
        rss_kib,
    }
}

/// A started server, killed (SIGKILL) and reaped when dropped: a panic in the bench never
/// leaves one running on the data dir.
struct Server(std::process::Child);

impl Server {
    /// Starts `command` (stdout piped) and waits for the first line it prints once it
    /// serves (`... listening on http://...`); returns it with that base URL and the time
    /// it took to start.
    fn start(command: &mut Command) -> (Server, String, Duration) {
        let spawned = Instant::now();
        let mut server = Server(command.spawn().expect("the server starts"));
        let mut line = String::new();
        BufReader::new(server.0.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the listening line");
        let base = line
            .trim()
            .split(" listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("a listening URL")
            .to_owned();
        (server, base, spawned.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `paygate_store_flushes_total`, `paygate_store_flush_waiters_total` and
/// `paygate_store_writer_busy_seconds_total` from `/metrics` (zeros if they cannot be read:
/// the figures are informative, the run stands without them).
async fn store_counters(base: &str) -> (f64, f64, f64) {
    let Ok(response) = reqwest::get(format!("{base}/metrics")).await else {
        return (0.0, 0.0, 0.0);
    };
    let text = response.text().await.unwrap_or_default();
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("paygate_store_flushes_total "),
        value("paygate_store_flush_waiters_total "),
        value("paygate_store_writer_busy_seconds_total "),
    )
}

/// `clients` clients paying in a loop for `duration`, spread over the daemons at `bases`
/// (client `c` on `bases[c % n]`): every answer's time, the errors, how many answered.
async fn drive(bases: &[String], clients: usize, duration: Duration) -> (Vec<Duration>, u64, u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    // Keys unique to this run: a run on a data dir an earlier run filled makes new payments.
    let run = std::process::id();
    for c in 0..clients {
        let (client, stop, errors) = (client.clone(), stop.clone(), errors.clone());
        let url = format!("{}/v1/payments", bases[c % bases.len()]);
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = serde_json::json!({
                    "merchant_id": "m_demo", "amount": "12.50", "currency": "CNY",
                    "method": "barcode", "auth_code": "990000000000001234",
                    "terminal_id": format!("T-{c}"),
                });
                let started = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth("pg_demo_pos")
                    .header("content-type", "application/json")
                    .header("idempotency-key", format!("bench-{run}-{c}-{n}"))
                    .body(body.to_string())
                    .send()
                    .await;
                // Verify every answer: a created, succeeded payment of the right amount.
                let ok = match response {
                    Ok(r) if r.status() == 201 => match r.json::<serde_json::Value>().await {
                        Ok(p) => {
                            p["status"] == "succeeded"
                                && p["amount"] == "12.50"
                                && p["id"].as_str().is_some_and(|id| id.starts_with("pay_"))
                        }
                        Err(_) => false,
                    },
                    _ => false,
                };
                if ok {
                    samples.push(started.elapsed());
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            samples
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    let total = all.len() as u64;
    (all, errors.load(Ordering::Relaxed), total)
}

/// Runs `daemons` daemons on the PostgreSQL database `url` (each with a data dir of its own,
/// a pool of `clients / daemons` connections, at least 4) and drives them together, the
/// clients spread over them, for `seconds`. One JSON line: payments/s, latency, errors, CPU
/// per payment (all daemons').
pub fn payments_postgres(
    paygated: &Path,
    config: &Path,
    url: &str,
    daemons: usize,
    clients: usize,
    seconds: u64,
) {
    let dir = std::env::temp_dir().join(format!("paygate-bench-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let text = std::fs::read_to_string(config).expect("the config file");
    assert!(
        text.contains("engine = \"sled\""),
        "the shipped config names its engine"
    );
    let pool = (clients / daemons).max(4);
    let text = format!(
        "{}\n[store.postgres]\nurl = \"inline:{url}\"\npool_size = {pool}\n",
        text.replace("engine = \"sled\"", "engine = \"postgres\"")
    );
    let config_path = dir.join("paygate.toml");
    std::fs::write(&config_path, text).expect("write config");
    let servers: Vec<(Server, String)> = (0..daemons)
        .map(|n| {
            let mut command = Command::new(paygated);
            command
                .args(["serve", "--listen", "127.0.0.1:0", "--config"])
                .arg(&config_path)
                .arg("--data-dir")
                .arg(dir.join(format!("data-{n}")))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let (server, base, _) = Server::start(&mut command);
            (server, base)
        })
        .collect();
    let bases: Vec<String> = servers.iter().map(|(_, base)| base.clone()).collect();
    let procs: Vec<String> = servers
        .iter()
        .map(|(server, _)| format!("/proc/{}", server.0.id()))
        .collect();
    let cpu = || procs.iter().map(|p| measure::cpu_seconds(p)).sum::<f64>();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cpu_before = cpu();
    let (mut samples, errors, total) =
        runtime.block_on(drive(&bases, clients, Duration::from_secs(seconds)));
    let cpu_us_per_request = (cpu() - cpu_before) * 1e6 / total.max(1) as f64;
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| us(samples[((samples.len() as f64 - 1.0) * q).round() as usize]);
    println!(
        "{{\"name\":\"durable_payments_postgres\",\"daemons\":{daemons},\"clients\":{clients},\"seconds\":{seconds},\"errors\":{errors},\"throughput_per_s\":{:.0},\"p50_us\":{:.0},\"p99_us\":{:.0},\"cpu_us_per_request\":{cpu_us_per_request:.0}}}",
        total as f64 / seconds as f64,
        at(0.5),
        at(0.99),
    );
}
