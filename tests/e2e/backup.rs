//! `paygated store backup` and `store restore` (README, "Backups"): a backup taken from a
//! serving daemon under load holds every payment acknowledged before it, as it was, and
//! nothing begun after it; a restored data dir verifies clean and serves them; every
//! misplaced or damaged input is refused without touching data.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn backup(data: &Path, to: &Path) -> std::process::Output {
    run_paygated(&[
        "store",
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ])
}

fn restore(from: &Path, to: &Path) -> std::process::Output {
    run_paygated(&[
        "store",
        "restore",
        "--from",
        from.to_str().unwrap(),
        "--data-dir",
        to.to_str().unwrap(),
    ])
}

/// A payment the load made: its id, its status, when its answer came and when it was asked.
#[derive(Clone)]
struct Made {
    id: String,
    key: String,
    body: Value,
    asked: Instant,
    answered: Instant,
}

#[tokio::test]
async fn a_backup_under_load_restores_every_payment_acknowledged_before_it() {
    if !sled_only("backups of the embedded store") {
        return;
    }
    let keep = tempfile::tempdir().unwrap();
    let data = keep.path().join("data");
    let config = keep.path().join("paygate.toml");
    std::fs::write(&config, default_config_text()).unwrap();

    // Some history first, part of it archived: the backup carries the archive too.
    let daemon = Daemon::with_config_on(default_config_text(), &data);
    let (status, _, old) = daemon.pay("bk-old", barcode_at("T-1", "3.00")).await;
    assert_eq!((status, old["status"].as_str()), (201, Some("succeeded")));
    stop(daemon);
    let archived = archive_now(&config, &data);
    assert!(archived.contains("archived 1 payments"), "{archived}");

    let daemon = Arc::new(Daemon::with_config_on(default_config_text(), &data));
    let made = Arc::new(Mutex::new(Vec::<Made>::new()));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut load = Vec::new();
    for worker in 0..6 {
        let (daemon, made, running) = (daemon.clone(), made.clone(), running.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("bk-{worker}-{n}");
                // Ordinary takings (the monitor blocks a terminal's run of small amounts).
                let amount = format!("{}.{:02}", 10 + n % 50, (worker * 7 + n) % 50);
                let body = barcode_at(&format!("T-bk{worker}"), &amount);
                let asked = Instant::now();
                let (status, _, paid) = daemon.pay(&key, body.clone()).await;
                assert_eq!(status, 201, "{paid}");
                made.lock().unwrap().push(Made {
                    id: paid["id"].as_str().unwrap().to_owned(),
                    key,
                    body,
                    asked,
                    answered: Instant::now(),
                });
                n += 1;
            }
        }));
    }
    let wait_for = |n: usize| {
        let (made, load) = (&made, &load);
        async move {
            while made.lock().unwrap().len() < n {
                assert!(
                    load.iter()
                        .all(|w: &tokio::task::JoinHandle<()>| !w.is_finished()),
                    "a load worker stopped"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(100).await;
    let copy = keep.path().join("backup");
    let began = Instant::now();
    let out = {
        let (data, copy) = (data.clone(), copy.clone());
        tokio::task::spawn_blocking(move || backup(&data, &copy))
            .await
            .unwrap()
    };
    let ended = Instant::now();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("from the serving daemon; writes waited "),
        "{}",
        text(&out)
    );
    // The load goes on after the backup, then stops.
    let count_at_end = made.lock().unwrap().len();
    wait_for(count_at_end + 50).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    for worker in load {
        worker.await.unwrap();
    }
    let made = made.lock().unwrap().clone();
    let daemon = Arc::into_inner(daemon).unwrap();
    assert!(
        daemon
            .logs()
            .contains("backup streamed on the control socket"),
        "{}",
        daemon.logs()
    );
    stop(daemon);

    // The backup is a data dir that verifies clean as it is.
    let verified = run_paygated(&["store", "verify", "--data-dir", copy.to_str().unwrap()]);
    assert!(
        verified.status.success() && text(&verified).contains(": 0 violations"),
        "{}",
        text(&verified)
    );
    let restored = keep.path().join("restored");
    let out = restore(&copy, &restored);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("restored ") && text(&out).contains(": 0 violations"),
        "{}",
        text(&out)
    );

    let daemon = Daemon::with_config_on(default_config_text(), &restored);
    let before: Vec<&Made> = made.iter().filter(|m| m.answered < began).collect();
    let after: Vec<&Made> = made.iter().filter(|m| m.asked > ended).collect();
    assert!(before.len() >= 100 && !after.is_empty());
    for m in &before {
        let (status, found) = daemon
            .get(&format!("/v1/payments/{}", m.id), Some(ERP))
            .await;
        assert_eq!(
            (status, found["status"].as_str()),
            (200, Some("succeeded")),
            "{} acknowledged before the backup: {found}",
            m.id
        );
    }
    // Nothing asked after the backup ended is in it (an admin key is told what does not
    // exist).
    for m in &after {
        let (status, _) = daemon
            .get(&format!("/v1/payments/{}", m.id), Some(ADMIN))
            .await;
        assert_eq!(status, 404, "{} was asked after the backup ended", m.id);
    }
    // The archived payment came along, marked; a key before the backup replays its answer.
    let (status, found) = daemon
        .get(
            &format!("/v1/payments/{}", old["id"].as_str().unwrap()),
            Some(ERP),
        )
        .await;
    assert_eq!((status, &found["archived"]), (200, &json!(true)));
    let first = before[0];
    let (status, replayed, again) = daemon.pay(&first.key, first.body.clone()).await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(again["id"].as_str(), Some(first.id.as_str()));
    stop(daemon);
}

#[tokio::test]
async fn backups_and_restores_refuse_what_would_lose_or_mix_data() {
    if !sled_only("backups of the embedded store") {
        return;
    }
    let keep = tempfile::tempdir().unwrap();
    let data = keep.path().join("data");
    let daemon = Daemon::with_config_on(default_config_text(), &data);
    let (status, _, _) = daemon.pay("bk-1", barcode("2.00")).await;
    assert_eq!(status, 201);

    // Into a directory that holds something: exit 2, the directory untouched.
    let occupied = keep.path().join("occupied");
    std::fs::create_dir_all(&occupied).unwrap();
    std::fs::write(occupied.join("mine.txt"), "mine").unwrap();
    let out = backup(&data, &occupied);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is not empty"), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&occupied).unwrap().count(), 1);
    // Of a directory that holds no store.
    let out = backup(&occupied, &keep.path().join("b0"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // Hostile requests on the control socket get an error frame; the daemon serves on.
    for request in [
        &b"hello\n"[..],
        b"{\"command\": \"shutdown\"}\n",
        &[0xff; 2000],
    ] {
        let mut socket =
            std::os::unix::net::UnixStream::connect(data.join("control.sock")).unwrap();
        use std::io::{Read, Write};
        socket.write_all(request).unwrap();
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).unwrap();
        assert_eq!(answer.first(), Some(&b'X'), "{answer:?}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("control.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the control socket is the daemon user's alone: {mode:o}"
    );
    let (status, _, _) = daemon.pay("bk-2", barcode("2.00")).await;
    assert_eq!(status, 201);
    stop(daemon);

    // `--serving` (the nightly timer's) never opens a data dir no daemon serves.
    let out = run_paygated(&[
        "store",
        "backup",
        "--serving",
        "--data-dir",
        data.to_str().unwrap(),
        "--to",
        keep.path().join("b1").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no daemon serves"), "{}", text(&out));
    assert!(!keep.path().join("b1").exists());
    // Without it, a stopped data dir is backed up in process.
    let copy = keep.path().join("copy");
    let out = backup(&data, &copy);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("from the serving daemon"),
        "{}",
        text(&out)
    );

    // A restore over a data dir, from what is no backup, or from a damaged backup.
    let out = restore(&copy, &data);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = restore(&occupied, &keep.path().join("r1"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("not a paygate backup"),
        "{}",
        text(&out)
    );
    let described = copy.join("BACKUP.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&described).unwrap()).unwrap();
    manifest["db_checksum"] = json!(manifest["db_checksum"].as_u64().unwrap() ^ 1);
    std::fs::write(&described, manifest.to_string()).unwrap();
    let damaged_target = keep.path().join("r2");
    let out = restore(&copy, &damaged_target);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("damaged"), "{}", text(&out));
    assert!(!damaged_target.join("db").exists());

    // On PostgreSQL the database's own tools do this: the command says which.
    let pg_config = keep.path().join("pg.toml");
    let mut on_database: toml::Table = default_config_text().parse().unwrap();
    let store = on_database["store"].as_table_mut().unwrap();
    store.insert("engine".into(), "postgres".into());
    let mut postgres = toml::Table::new();
    postgres.insert(
        "url".into(),
        "inline:postgres://postgres@127.0.0.1:5432/test".into(),
    );
    store.insert("postgres".into(), postgres.into());
    std::fs::write(&pg_config, toml::to_string(&on_database).unwrap()).unwrap();
    let out = run_paygated(&[
        "store",
        "backup",
        "--config",
        pg_config.to_str().unwrap(),
        "--to",
        keep.path().join("pg").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("pg_dump"), "{}", text(&out));
}
