//! The open-file limit, and the connection cap derived from it when `[server]` sets none.

/// File descriptors kept for everything but client connections: the store (sled's files and
/// lock), the plugin host (modules, compiled-plugin cache), outbound HTTP (plugin calls, at
/// most `[plugin_host] max_concurrent_calls` = 256 by default, and webhook deliveries), logs,
/// the listeners and the runtime's own. 1024 covers the default settings with room to spare;
/// a daemon short of it still gets half its limit for connections.
pub const FD_RESERVE: u64 = 1024;

/// How far the soft open-file limit is raised at start, if the hard limit allows: enough for
/// tens of thousands of connections, not so many that idle ones could use up the memory.
const NOFILE_TARGET: u64 = 65_536;

/// Raises the soft `RLIMIT_NOFILE` towards the hard limit (up to [`NOFILE_TARGET`]; never
/// lowers it) and returns the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // `None` is "unlimited".
    let soft = limit.current.unwrap_or(u64::MAX);
    let target = limit
        .maximum
        .map_or(NOFILE_TARGET, |hard| hard.min(NOFILE_TARGET));
    if soft >= target {
        return soft;
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => target,
        Err(e) => {
            tracing::warn!(soft, target, error = %e, "cannot raise the open-file limit");
            soft
        }
    }
}

/// The largest connection cap a config may set (per listener).
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// The connection cap of each of `listeners` listeners when the config sets none: the open-file
/// limit less [`FD_RESERVE`] (at least half the limit), shared evenly.
pub fn automatic_max_connections(open_file_limit: u64, listeners: usize) -> usize {
    let usable = open_file_limit
        .saturating_sub(FD_RESERVE)
        .max(open_file_limit / 2);
    let each = usable / listeners.max(1) as u64;
    usize::try_from(each)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_CONNECTIONS_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automatic_cap_keeps_the_reserve_and_is_shared() {
        assert_eq!(automatic_max_connections(65_536, 1), 64_512);
        assert_eq!(automatic_max_connections(65_536, 2), 32_256);
        assert_eq!(automatic_max_connections(1024, 1), 512);
        assert_eq!(automatic_max_connections(1, 2), 1);
        assert_eq!(
            automatic_max_connections(u64::MAX, 1),
            MAX_CONNECTIONS_LIMIT
        );
    }

    #[test]
    fn raising_never_lowers() {
        let before = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let now = raise_open_file_limit();
        assert!(before.is_none_or(|soft| now >= soft));
    }
}
