//! Failures per client or per key over a sliding window: the console's log-in limit (per
//! client address, a minute) and the wrong-code limit (per API key). In memory and per
//! daemon (a restart forgets it); the monitor's credential-abuse rule sees every failure as
//! well.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// The window a default counter counts over.
const WINDOW_MS: i64 = 60_000;
/// Clients tracked at most: beyond it, those whose failures have all left the window are
/// forgotten first, then the rest (a flood of sources cannot grow memory without bound).
const SOURCES_MAX: usize = 10_000;

#[derive(Debug)]
pub struct FailureCounter {
    by_source: Mutex<HashMap<String, VecDeque<i64>>>,
    window_ms: i64,
}

impl Default for FailureCounter {
    /// Over the last minute.
    fn default() -> Self {
        FailureCounter::over(WINDOW_MS)
    }
}

impl FailureCounter {
    /// Counting over the last `window_ms`.
    pub fn over(window_ms: i64) -> FailureCounter {
        FailureCounter {
            by_source: Mutex::default(),
            window_ms,
        }
    }

    /// How long `source` must wait before trying again, if it has made `limit` failures in
    /// the last minute.
    pub fn wait_s(&self, source: &str, now_ms: i64, limit: u32) -> Option<u64> {
        let mut map = self.by_source.lock().expect("not poisoned");
        let times = map.get_mut(source)?;
        while times.front().is_some_and(|t| *t <= now_ms - self.window_ms) {
            times.pop_front();
        }
        if times.len() < limit as usize {
            return None;
        }
        // Free again when the oldest failure counted leaves the window.
        let oldest = times[times.len() - limit as usize];
        Some(((oldest + self.window_ms - now_ms).max(1000) as u64).div_ceil(1000))
    }

    /// [`wait_s`](Self::wait_s) and [`record`](Self::record) under one lock: counts this
    /// attempt as a failure unless `source` must wait (then how long). An attempt that turns
    /// out right is taken back with [`forgive`](Self::forgive). Parallel attempts cannot
    /// all pass the check before any is counted.
    pub fn reserve(&self, source: &str, now_ms: i64, limit: u32) -> Option<u64> {
        let mut map = self.by_source.lock().expect("not poisoned");
        if let Some(times) = map.get_mut(source) {
            while times.front().is_some_and(|t| *t <= now_ms - self.window_ms) {
                times.pop_front();
            }
            if times.len() >= limit as usize {
                let oldest = times[times.len() - limit as usize];
                return Some(((oldest + self.window_ms - now_ms).max(1000) as u64).div_ceil(1000));
            }
            times.push_back(now_ms);
            return None;
        }
        drop(map);
        // A source's first failure (the map's bound is kept by `record`).
        self.record(source, now_ms);
        None
    }

    /// Takes back the failure [`reserve`](Self::reserve) counted at `at_ms`.
    pub fn forgive(&self, source: &str, at_ms: i64) {
        let mut map = self.by_source.lock().expect("not poisoned");
        if let Some(times) = map.get_mut(source)
            && let Some(i) = times.iter().rposition(|t| *t == at_ms)
        {
            times.remove(i);
        }
    }

    pub fn record(&self, source: &str, now_ms: i64) {
        let mut map = self.by_source.lock().expect("not poisoned");
        if map.len() >= SOURCES_MAX && !map.contains_key(source) {
            let window_ms = self.window_ms;
            map.retain(|_, times| times.back().is_some_and(|t| *t > now_ms - window_ms));
            if map.len() >= SOURCES_MAX {
                map.clear();
            }
        }
        let times = map.entry(source.to_owned()).or_default();
        times.push_back(now_ms);
        // Never more than a window's worth at the highest limit allowed.
        if times.len() > 1000 {
            times.pop_front();
        }
    }

    /// A successful log-in clears the client's count.
    pub fn clear(&self, source: &str) {
        self.by_source.lock().expect("not poisoned").remove(source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_waits_after_the_limit_until_its_oldest_failure_leaves_the_minute() {
        let counter = FailureCounter::default();
        for i in 0..3 {
            assert_eq!(counter.wait_s("10.0.0.1", 1_000 + i, 3), None);
            counter.record("10.0.0.1", 1_000 + i * 10_000);
        }
        assert_eq!(counter.wait_s("10.0.0.1", 30_000, 3), Some(31));
        assert_eq!(
            counter.wait_s("10.0.0.2", 30_000, 3),
            None,
            "another client"
        );
        assert_eq!(
            counter.wait_s("10.0.0.1", 61_001, 3),
            None,
            "the first one left"
        );
        counter.record("10.0.0.1", 61_001);
        assert!(counter.wait_s("10.0.0.1", 61_002, 3).is_some());
        counter.clear("10.0.0.1");
        assert_eq!(counter.wait_s("10.0.0.1", 61_003, 3), None);
    }

    #[test]
    fn a_reserved_attempt_counts_until_forgiven() {
        let counter = FailureCounter::over(60_000);
        assert_eq!(counter.reserve("key_a", 1_000, 2), None);
        assert_eq!(counter.reserve("key_a", 2_000, 2), None);
        assert!(counter.reserve("key_a", 3_000, 2).is_some(), "two counted");
        counter.forgive("key_a", 2_000);
        assert_eq!(counter.reserve("key_a", 4_000, 2), None, "one was right");
        assert!(counter.wait_s("key_a", 5_000, 2).is_some());
    }

    #[test]
    fn many_sources_do_not_grow_without_bound() {
        let counter = FailureCounter::default();
        for i in 0..(SOURCES_MAX as i64 + 50) {
            counter.record(&format!("s{i}"), i);
        }
        assert!(counter.by_source.lock().unwrap().len() <= SOURCES_MAX);
    }
}
