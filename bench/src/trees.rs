//! `trees <data dir>`: what each sled tree of a stopped daemon's data dir holds (keys, key
//! and value bytes), to see where the bytes of a payment go. Opens sled directly, read-only
//! in effect (it writes nothing but sled's own snapshot).

use std::path::Path;

pub fn trees(data_dir: &Path) {
    let db = sled::Config::new()
        .path(data_dir.join("db"))
        .open()
        .expect("the data dir's database opens (is the daemon stopped?)");
    let mut names = db.tree_names();
    names.sort();
    println!("| tree | keys | key bytes | value bytes | mean value |");
    println!("| --- | --- | --- | --- | --- |");
    for name in names {
        let tree = db.open_tree(&name).expect("a listed tree opens");
        let (mut keys, mut key_bytes, mut value_bytes) = (0u64, 0u64, 0u64);
        for entry in tree.iter() {
            let (key, value) = entry.expect("a readable entry");
            keys += 1;
            key_bytes += key.len() as u64;
            value_bytes += value.len() as u64;
        }
        println!(
            "| {} | {keys} | {key_bytes} | {value_bytes} | {:.0} |",
            String::from_utf8_lossy(&name),
            value_bytes as f64 / keys.max(1) as f64
        );
    }
    println!(
        "database size on disk: {} bytes",
        db.size_on_disk().unwrap_or(0)
    );
}
