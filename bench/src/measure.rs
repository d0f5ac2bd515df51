//! What Linux says about a process (its CPU time and status fields, from `/proc`) and about
//! a directory (its size). Shared with `bench/stores/` (a separate workspace) by `#[path]`,
//! so keep it std-only.

/// User + system CPU seconds of the process whose `/proc` directory is `proc_dir`
/// (`/proc/self`, `/proc/<pid>`), every thread included; 0 if unreadable.
pub fn cpu_seconds(proc_dir: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("{proc_dir}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces, hence the last ')'): utime and
    // stime are the 12th and 13th, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The number after `name` (e.g. `VmHWM:` in `status`, `wchar:` in `io`) in the file
/// `file` of `proc_dir`; 0 if absent or unreadable.
pub fn field(proc_dir: &str, file: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("{proc_dir}/{file}"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes of the files under `dir`, recursively; 0 for what cannot be read.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
