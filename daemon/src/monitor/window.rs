//! Sliding-window sums in constant memory per subject, for velocity rules ("more than N
//! payments from this terminal in the last minute", "more than X CNY from this payer in the
//! last hour").
//!
//! [`SlidingWindow`] splits its window into `buckets` buckets of `bucket_ms` each and keeps
//! one `(bucket index, sum)` pair per bucket in a ring buffer: at most 120 pairs (16 bytes
//! each) plus a running total, whatever the event rate. [`WindowCounter`] keeps one window per
//! subject in a [`BoundedMap`], so the whole counter holds at most `max_subjects` windows.
//!
//! # What the sum covers
//!
//! Time is split into buckets `[k * bucket_ms, (k + 1) * bucket_ms)`. The window ending at
//! `now_ms` is the bucket holding `now_ms` and the `buckets - 1` before it, so the trailing
//! edge moves one whole bucket at a time: an event at `t` is counted by `sum(now)` for every
//! `now` in `[t, t + span_ms - bucket_ms]`, possibly a little longer (up to the end of the
//! last bucket), and never for `now >= t + span_ms`, where `span_ms = buckets * bucket_ms`.
//! With 60 buckets over 60 s an event at `t` counts until at least `t + 59 s` and is gone
//! at `t + 60 s`. `bucket_ms = window_ms / buckets` rounded down (at least 1 ms, so at most
//! `window_ms` buckets), so `span_ms <= window_ms`; choose a `window_ms` divisible by
//! `buckets` to get `span_ms == window_ms` exactly.
//!
//! # Time that is not monotonic
//!
//! The window never moves backwards: it ends at the later of `now_ms` and the newest event
//! added so far. An event older than that end
//! - still inside the window goes into its own bucket: the ring holds every bucket of the
//!   window, so that bucket is always present (no event is moved to another bucket);
//! - at or beyond the window's trailing edge is ignored (it would already have expired).
//!
//! A `now_ms` far in the future moves the window there: everything before is forgotten, in
//! O(1). Index arithmetic is done in `i128`, so any `i64` time works, including the
//! extremes. Callers should pass the daemon's clock, never a time taken from a request: a
//! single far-future time would make later events look too old to count.
//!
//! # Weights
//!
//! Weights are non-negative (counts, amounts in minor units): a negative weight is clamped
//! to 0, so a crafted input can never lower a sum. Bucket sums saturate at `i64::MAX`.

use super::bounded::BoundedMap;

/// Most buckets a window may have: bounds memory at 120 * 16 bytes per subject.
pub const MAX_BUCKETS: usize = 120;

/// One bucket of the ring: which bucket it is (`time.div_euclid(bucket_ms)`) and its sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    index: i64,
    sum: i64,
}

/// A sum of weights over the last `span_ms` (see the module docs for the exact coverage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingWindow {
    bucket_ms: i64,
    /// Ring buffer: bucket `k` lives at `k.rem_euclid(len)`. A slot whose `index` is not in
    /// the window is stale and ignored; it is reset when its slot is reused.
    ring: Box<[Bucket]>,
    /// Index of the newest bucket that received an event; `None` before the first add.
    head: Option<i64>,
    /// Sum of the ring's buckets inside the window ending at `head`. `i128` so that it can
    /// be decremented exactly even when the buckets add up to more than `i64::MAX`.
    total: i128,
}

impl SlidingWindow {
    /// A window of `window_ms` (at least 1) split into `buckets` buckets (clamped to
    /// `1..=MAX_BUCKETS` and to at most `window_ms`, so each bucket spans at least 1 ms).
    pub fn new(window_ms: i64, buckets: usize) -> Self {
        let window_ms = window_ms.max(1);
        let max_by_width = usize::try_from(window_ms).unwrap_or(usize::MAX);
        let buckets = buckets.clamp(1, MAX_BUCKETS).min(max_by_width);
        // `buckets <= 120`, so the cast is exact and the quotient is at least 1.
        let bucket_ms = window_ms / buckets as i64;
        SlidingWindow {
            bucket_ms,
            ring: vec![Bucket { index: 0, sum: 0 }; buckets].into_boxed_slice(),
            head: None,
            total: 0,
        }
    }

    /// Width of one bucket in ms.
    pub fn bucket_ms(&self) -> i64 {
        self.bucket_ms
    }

    /// Number of buckets.
    pub fn buckets(&self) -> usize {
        self.ring.len()
    }

    /// The span the window really covers: `buckets * bucket_ms`, at most the `window_ms`
    /// it was created with.
    pub fn span_ms(&self) -> i64 {
        self.bucket_ms * self.ring.len() as i64
    }

    /// Adds `weight` (negative clamped to 0) at `now_ms` and returns the sum over the window,
    /// this event included. An event at or beyond the trailing edge of the window (which
    /// ends at the newest time seen) is ignored; the current sum is still returned.
    pub fn add(&mut self, now_ms: i64, weight: i64) -> i64 {
        let weight = weight.max(0);
        let index = now_ms.div_euclid(self.bucket_ms);
        let head = match self.head {
            Some(head) if head >= index => head,
            _ => {
                self.advance(index);
                index
            }
        };
        if self.is_expired(index, head) {
            return self.sum(now_ms);
        }
        let slot = self.slot(index);
        let bucket = &mut self.ring[slot];
        if bucket.index != index {
            // The slot holds a bucket from an earlier lap of the ring, already outside
            // the window (and out of `total`): reuse it.
            *bucket = Bucket { index, sum: 0 };
        }
        let before = bucket.sum;
        bucket.sum = before.saturating_add(weight);
        self.total += i128::from(bucket.sum) - i128::from(before);
        self.sum(now_ms)
    }

    /// The sum over the window ending at the later of `now_ms` and the newest event.
    /// O(1) when `now_ms` is in the newest event's bucket, else O(buckets elapsed since
    /// then), at most O(buckets).
    pub fn sum(&self, now_ms: i64) -> i64 {
        let Some(head) = self.head else {
            return 0;
        };
        let index = now_ms.div_euclid(self.bucket_ms);
        let total = if index > head {
            self.total_moved_to(head, index)
        } else {
            self.total
        };
        clamp_to_i64(total)
    }

    /// Whether the window's sum at `now_ms` is 0: its subject holds no state worth keeping.
    pub fn is_idle(&self, now_ms: i64) -> bool {
        self.sum(now_ms) == 0
    }

    /// Moves the window's end to bucket `index` (newer than `head`), dropping the buckets
    /// that fall out of it from `total`.
    fn advance(&mut self, index: i64) {
        if let Some(head) = self.head {
            self.total = self.total_moved_to(head, index);
        }
        self.head = Some(index);
    }

    /// What `total` becomes when the window's end moves from bucket `head` to the later
    /// bucket `index`: the buckets that fall out of the window are taken off. O(buckets
    /// elapsed), at most O(buckets).
    fn total_moved_to(&self, head: i64, index: i64) -> i128 {
        let len = self.ring.len() as i128;
        let elapsed = i128::from(index) - i128::from(head);
        if elapsed >= len {
            return 0;
        }
        // Window ending at `head`: buckets `head - len + 1 ..= head`; the first `elapsed`
        // of them leave it.
        let first_out = i128::from(head) - len + 1;
        (first_out..first_out + elapsed)
            .fold(self.total, |total, expired| total - self.sum_of(expired))
    }

    /// Whether bucket `index` is outside the window ending at bucket `head`.
    fn is_expired(&self, index: i64, head: i64) -> bool {
        i128::from(head) - i128::from(index) >= self.ring.len() as i128
    }

    /// The sum held for bucket `index`, 0 if its slot holds another bucket.
    fn sum_of(&self, index: i128) -> i128 {
        let bucket = self.ring[self.slot(index)];
        if i128::from(bucket.index) == index {
            i128::from(bucket.sum)
        } else {
            0
        }
    }

    /// The ring slot of bucket `index`.
    fn slot(&self, index: impl Into<i128>) -> usize {
        // `rem_euclid` is in `0..len` and `len <= MAX_BUCKETS`, so the cast is exact.
        index.into().rem_euclid(self.ring.len() as i128) as usize
    }
}

fn clamp_to_i64(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// One [`SlidingWindow`] per subject, for at most `max_subjects` subjects (least recently
/// updated evicted first). Memory: `max_subjects` windows of `buckets` buckets each, plus
/// the keys.
#[derive(Debug, Clone)]
pub struct WindowCounter<K> {
    windows: BoundedMap<K, SlidingWindow>,
    window_ms: i64,
    buckets: usize,
}

impl<K: Ord + Clone> WindowCounter<K> {
    /// A counter whose windows span `window_ms` in `buckets` buckets (clamped as in
    /// [`SlidingWindow::new`]) for at most `max_subjects` subjects (at least 1).
    pub fn new(window_ms: i64, buckets: usize, max_subjects: usize) -> Self {
        WindowCounter {
            windows: BoundedMap::new(max_subjects),
            window_ms,
            buckets,
        }
    }

    /// Adds `weight` at `now_ms` to `key`'s window and returns its sum, as
    /// [`SlidingWindow::add`]. A weight of 0 or less for an unknown key adds nothing and
    /// creates no entry (so it cannot evict another subject); it returns 0.
    pub fn add(&mut self, key: K, now_ms: i64, weight: i64) -> i64 {
        if weight <= 0 {
            return match self.windows.get_mut(&key) {
                Some(window) => window.add(now_ms, 0),
                None => 0,
            };
        }
        let (window_ms, buckets) = (self.window_ms, self.buckets);
        self.windows
            .get_or_insert_with(key, || SlidingWindow::new(window_ms, buckets))
            .add(now_ms, weight)
    }

    /// `key`'s sum at `now_ms`, 0 for an unknown key. Does not count as a use of `key`.
    pub fn sum(&self, key: &K, now_ms: i64) -> i64 {
        self.windows.get(key).map_or(0, |window| window.sum(now_ms))
    }

    /// How many subjects have a window.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no subject has a window.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The most subjects kept.
    pub fn capacity(&self) -> usize {
        self.windows.capacity()
    }

    /// How many subjects were evicted to make room so far.
    pub fn evictions(&self) -> u64 {
        self.windows.evictions()
    }

    /// Drops every subject whose window is idle at `now_ms`; returns how many. Walks every
    /// subject: call it periodically, not per event.
    pub fn prune(&mut self, now_ms: i64) -> usize {
        let before = self.windows.len();
        self.windows.retain(|_, window| !window.is_idle(now_ms));
        before - self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn minute_window() -> SlidingWindow {
        SlidingWindow::new(MINUTE, 60)
    }

    /// The sum recomputed from scratch by scanning the ring, to check the running total.
    fn scanned_sum(window: &SlidingWindow, now_ms: i64) -> i64 {
        let Some(head) = window.head else { return 0 };
        let end = i128::from(head.max(now_ms.div_euclid(window.bucket_ms)));
        let len = window.ring.len() as i128;
        let total: i128 = window
            .ring
            .iter()
            .filter(|b| i128::from(b.index) > end - len && i128::from(b.index) <= end)
            .map(|b| i128::from(b.sum))
            .sum();
        clamp_to_i64(total)
    }

    #[test]
    fn parameters_are_clamped() {
        let w = SlidingWindow::new(MINUTE, 60);
        assert_eq!(
            (w.bucket_ms(), w.buckets(), w.span_ms()),
            (1000, 60, MINUTE)
        );
        let w = SlidingWindow::new(MINUTE, 0);
        assert_eq!((w.bucket_ms(), w.buckets()), (MINUTE, 1));
        let w = SlidingWindow::new(MINUTE, 10_000);
        assert_eq!((w.bucket_ms(), w.buckets()), (500, MAX_BUCKETS));
        let w = SlidingWindow::new(10, 60);
        assert_eq!((w.bucket_ms(), w.buckets(), w.span_ms()), (1, 10, 10));
        let w = SlidingWindow::new(0, 60);
        assert_eq!((w.bucket_ms(), w.buckets()), (1, 1));
        let w = SlidingWindow::new(i64::MIN, 60);
        assert_eq!((w.bucket_ms(), w.buckets()), (1, 1));
        // Not divisible: the span is rounded down, never longer than asked.
        let w = SlidingWindow::new(1000, 7);
        assert_eq!((w.bucket_ms(), w.buckets(), w.span_ms()), (142, 7, 994));
        let w = SlidingWindow::new(i64::MAX, 120);
        assert_eq!(w.span_ms(), i64::MAX / 120 * 120);
    }

    #[test]
    fn empty_window_sums_to_zero() {
        let w = minute_window();
        assert_eq!(w.sum(0), 0);
        assert_eq!(w.sum(i64::MIN), 0);
        assert!(w.is_idle(i64::MAX));
    }

    #[test]
    fn sums_across_bucket_boundaries() {
        let mut w = minute_window();
        assert_eq!(w.add(1_000, 1), 1);
        assert_eq!(w.add(1_999, 2), 3);
        assert_eq!(w.add(2_000, 3), 6);
        assert_eq!(w.add(30_500, 4), 10);
        // Bucket [1 s, 2 s) leaves at 61 s, [2 s, 3 s) at 62 s, [30 s, 31 s) at 90 s.
        assert_eq!(w.sum(60_999), 10);
        assert_eq!(w.sum(61_000), 7);
        assert_eq!(w.sum(62_000), 4);
        assert_eq!(w.sum(89_999), 4);
        assert_eq!(w.sum(90_000), 0);
        assert!(w.is_idle(90_000));
        for now in (0..100_000).step_by(250) {
            assert_eq!(w.sum(now), scanned_sum(&w, now), "now = {now}");
        }
    }

    #[test]
    fn documented_trailing_edge_with_60_buckets_over_60_s() {
        // Earliest and latest instant of a bucket: counted until at least t + 59 s, gone at
        // t + 60 s, and exactly until the end of the bucket 59 s later.
        for t in [120_000, 120_999, 120_500, -5_500] {
            let mut w = minute_window();
            w.add(t, 1);
            assert_eq!(w.sum(t), 1);
            assert_eq!(w.sum(t + 59_000), 1, "t = {t}");
            assert_eq!(w.sum(t + 60_000), 0, "t = {t}");
            let bucket_end = (t.div_euclid(1000) + 60) * 1000;
            assert_eq!(w.sum(bucket_end - 1), 1, "t = {t}");
            assert_eq!(w.sum(bucket_end), 0, "t = {t}");
        }
    }

    #[test]
    fn a_window_that_only_moves_forward_by_adds_expires_old_buckets() {
        let mut w = SlidingWindow::new(10, 10); // 1 ms buckets
        for t in 0..1000 {
            let sum = w.add(t, 1);
            assert_eq!(sum, (t + 1).min(10), "t = {t}");
            assert_eq!(w.total, i128::from(sum));
        }
        // Weights every other ms, then gaps of several buckets.
        let mut w = SlidingWindow::new(10, 10);
        for t in (0..100).step_by(3) {
            w.add(t, t);
            assert_eq!(w.sum(t), scanned_sum(&w, t), "t = {t}");
            assert_eq!(w.sum(t + 4), scanned_sum(&w, t + 4), "t = {t}");
        }
    }

    #[test]
    fn a_large_time_jump_forgets_everything() {
        let mut w = minute_window();
        w.add(1_000, 5);
        w.add(2_000, 5);
        assert_eq!(w.sum(1_000_000_000), 0);
        assert_eq!(w.add(1_000_000_000, 1), 1);
        // The jump moved the window: the old events are beyond its trailing edge now.
        assert_eq!(w.add(2_000, 7), 1);
        assert_eq!(w.sum(1_000_000_000), 1);
        assert_eq!(w.sum(1_000_060_000), 0);
    }

    #[test]
    fn late_events_inside_the_window_count_in_their_own_bucket() {
        let mut w = minute_window();
        w.add(100_000, 1);
        // 30 s late: still inside the window ending at 100 s, so it counts, in bucket 70 s,
        // and leaves the window when that bucket does (at 130 s), before the 100 s event.
        assert_eq!(w.add(70_000, 2), 3);
        assert_eq!(w.sum(129_999), 3);
        assert_eq!(w.sum(130_000), 1);
        assert_eq!(w.sum(159_999), 1);
        assert_eq!(w.sum(160_000), 0);
    }

    #[test]
    fn events_beyond_the_trailing_edge_are_ignored() {
        let mut w = minute_window();
        w.add(100_000, 1);
        // Bucket 40 s is the first one out of the window ending in bucket 100 s.
        assert_eq!(w.add(40_999, 5), 1);
        assert_eq!(w.add(41_000, 5), 6);
        assert_eq!(w.add(-1_000_000, 5), 6);
        assert_eq!(w.add(i64::MIN, 5), 6);
        assert_eq!(w.sum(100_000), 6);
    }

    #[test]
    fn the_window_never_moves_backwards() {
        let mut w = minute_window();
        w.add(100_000, 1);
        w.add(130_000, 1);
        // A query for an earlier time still sees the window ending at 130 s.
        assert_eq!(w.sum(0), 2);
        assert_eq!(w.sum(100_000), 2);
        assert_eq!(w.sum(i64::MIN), 2);
        assert!(!w.is_idle(0));
    }

    #[test]
    fn negative_weights_are_clamped_to_zero() {
        let mut w = minute_window();
        assert_eq!(w.add(0, 10), 10);
        assert_eq!(w.add(0, -3), 10);
        assert_eq!(w.add(500, i64::MIN), 10);
        let mut w = minute_window();
        assert_eq!(w.add(0, -1), 0);
        assert!(w.is_idle(0));
    }

    #[test]
    fn sums_saturate_instead_of_overflowing() {
        let mut w = minute_window();
        assert_eq!(w.add(0, i64::MAX), i64::MAX);
        assert_eq!(w.add(0, i64::MAX), i64::MAX);
        assert_eq!(w.add(1_000, i64::MAX), i64::MAX);
        assert_eq!(w.add(2_000, 1), i64::MAX);
        // Expiring a saturated bucket is exact: the other buckets are still counted.
        assert_eq!(w.sum(60_000), i64::MAX);
        assert_eq!(w.sum(61_000), 1);
        assert_eq!(w.sum(62_000), 0);
    }

    #[test]
    fn extreme_times_do_not_panic() {
        for (window_ms, buckets) in [(MINUTE, 60), (1, 1), (7, 120), (i64::MAX, 120)] {
            let mut w = SlidingWindow::new(window_ms, buckets);
            for now in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
                w.add(now, 1);
                w.add(now, i64::MAX);
                w.add(now, i64::MIN);
                let _ = w.sum(now);
                let _ = w.sum(i64::MIN);
                let _ = w.sum(i64::MAX);
                let _ = w.is_idle(now);
            }
        }
        let mut w = minute_window();
        w.add(i64::MIN, 3);
        assert_eq!(w.sum(i64::MIN), 3);
        assert_eq!(w.sum(i64::MIN + 59_000), 3);
        assert_eq!(w.sum(i64::MAX), 0);
        assert_eq!(w.add(i64::MAX, 2), 2);
        assert_eq!(w.add(i64::MIN, 9), 2);
        assert_eq!(w.sum(i64::MIN), 2);
    }

    #[test]
    fn running_total_matches_a_full_scan_under_pseudo_random_times() {
        // Jittery, mostly increasing times with occasional jumps, late events and
        // negative weights: the O(1) running total must agree with a full scan.
        let mut w = SlidingWindow::new(1_000, 10);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut now: i64 = 0;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let step = (state % 400) as i64 - 100; // -100..300 ms
            now += if state.is_multiple_of(97) {
                5_000
            } else {
                step
            };
            let weight = (state >> 32) as i64 % 50 - 5;
            w.add(now, weight);
            assert_eq!(w.total, i128::from(scanned_sum(&w, i64::MIN)));
            let probe = now + (state % 1_500) as i64;
            assert_eq!(w.sum(probe), scanned_sum(&w, probe), "probe = {probe}");
        }
    }

    #[test]
    fn counter_tracks_subjects_separately() {
        let mut c = WindowCounter::new(MINUTE, 60, 100);
        assert!(c.is_empty());
        assert_eq!(c.add("term-1", 0, 1), 1);
        assert_eq!(c.add("term-1", 1_000, 1), 2);
        assert_eq!(c.add("term-2", 1_000, 5), 5);
        assert_eq!(c.sum(&"term-1", 30_000), 2);
        assert_eq!(c.sum(&"term-2", 30_000), 5);
        assert_eq!(c.sum(&"unknown", 30_000), 0);
        assert_eq!(c.sum(&"term-1", 60_000), 1);
        assert_eq!(c.len(), 2);
        assert_eq!(c.capacity(), 100);
    }

    #[test]
    fn counter_zero_weight_for_unknown_key_creates_nothing() {
        let mut c = WindowCounter::new(MINUTE, 60, 1);
        c.add("a", 0, 1);
        assert_eq!(c.add("b", 0, 0), 0);
        assert_eq!(c.add("c", 0, -5), 0);
        assert_eq!(c.len(), 1);
        assert_eq!(c.evictions(), 0);
        assert_eq!(c.sum(&"a", 0), 1);
        // For a known key a zero weight still moves its window forward.
        assert_eq!(c.add("a", 120_000, 0), 0);
    }

    #[test]
    fn counter_prunes_idle_subjects() {
        let mut c = WindowCounter::new(MINUTE, 60, 100);
        c.add(1u32, 0, 1);
        c.add(2u32, 30_000, 1);
        c.add(3u32, 59_000, 1);
        assert_eq!(c.prune(59_999), 0);
        assert_eq!(c.prune(60_000), 1);
        assert_eq!(c.len(), 2);
        assert_eq!(c.sum(&2, 60_000), 1);
        assert_eq!(c.prune(119_000), 2);
        assert!(c.is_empty());
        assert_eq!(c.evictions(), 0);
    }

    #[test]
    fn counter_memory_is_bounded_under_100k_subjects() {
        let mut c = WindowCounter::new(MINUTE, 60, 1_000);
        for key in 0u64..100_000 {
            c.add(key, key as i64, 1);
            assert!(c.len() <= 1_000);
        }
        assert_eq!(c.len(), 1_000);
        assert_eq!(c.evictions(), 99_000);
        assert_eq!(c.sum(&99_999, 99_999), 1);
        assert_eq!(c.sum(&0, 99_999), 0);
    }
}
