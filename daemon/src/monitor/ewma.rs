//! Exponentially weighted moving averages: a subject's "normal" against which the monitor
//! compares what it sees now (average ticket size of a merchant, decline rate of a
//! terminal).
//!
//! [`Ewma`] is a mean plus a sample count in constant memory (24 bytes): each observation
//! moves the mean a fraction `alpha` of the way towards it, so older samples fade out
//! geometrically. [`RateBaseline`] is an `Ewma` of per-period ratios (hits / total of one
//! completed period, e.g. declines / attempts per terminal per 10 minutes).
//!
//! Hostile or broken inputs never poison the state: NaN and infinite observations are
//! ignored, and the mean always stays between the smallest and largest value observed, so
//! it stays finite.

/// Smallest accepted smoothing factor: an `alpha` at or below 0 is raised to this.
pub const MIN_ALPHA: f64 = 1e-6;

/// An exponentially weighted moving average with the number of samples it has seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ewma {
    alpha: f64,
    mean: Option<f64>,
    count: u64,
}

impl Ewma {
    /// An average with smoothing factor `alpha`: the weight of the newest sample, clamped to
    /// `MIN_ALPHA..=1`. A NaN `alpha` becomes 1 (no smoothing: the mean is the last sample),
    /// which is easy to notice, rather than a near-0 one that would freeze the mean.
    pub fn new(alpha: f64) -> Self {
        let alpha = if alpha.is_nan() {
            1.0
        } else {
            alpha.clamp(MIN_ALPHA, 1.0)
        };
        Ewma {
            alpha,
            mean: None,
            count: 0,
        }
    }

    /// The smoothing factor in use (after clamping).
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Folds `value` into the mean; the first observation sets it. NaN and infinite values
    /// are ignored and not counted.
    pub fn observe(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        let next = match self.mean {
            None => value,
            Some(mean) => {
                // The convex form cannot overflow the way `mean + alpha * (value - mean)`
                // can (the difference of two huge values of opposite sign is infinite);
                // clamping removes any rounding past the two endpoints.
                let blended = (1.0 - self.alpha) * mean + self.alpha * value;
                blended.clamp(mean.min(value), mean.max(value))
            }
        };
        self.mean = Some(next);
        self.count = self.count.saturating_add(1);
    }

    /// The current mean, `None` before the first (finite) observation.
    pub fn mean(&self) -> Option<f64> {
        self.mean
    }

    /// How many observations were folded in (ignored ones excluded).
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// A baseline for a ratio in `[0, 1]` (decline rate, refund rate, ...), one observation per
/// completed period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateBaseline {
    ewma: Ewma,
}

impl RateBaseline {
    /// A baseline with smoothing factor `alpha` per period (clamped as in [`Ewma::new`]).
    pub fn new(alpha: f64) -> Self {
        RateBaseline {
            ewma: Ewma::new(alpha),
        }
    }

    /// Folds in the ratio of one completed period. Values outside `[0, 1]` are clamped into
    /// it; NaN and infinite values are ignored.
    pub fn observe_ratio(&mut self, ratio: f64) {
        if ratio.is_finite() {
            self.ewma.observe(ratio.clamp(0.0, 1.0));
        }
    }

    /// Folds in a completed period with `hits` out of `total` (hits above total count as
    /// `total`). A period with `total == 0` has no ratio and is ignored.
    pub fn observe(&mut self, hits: u64, total: u64) {
        if total == 0 {
            return;
        }
        // u64 -> f64 may round for huge counts; the ratio is still within [0, 1].
        self.observe_ratio(hits.min(total) as f64 / total as f64);
    }

    /// The baseline ratio, `None` before the first period.
    pub fn baseline(&self) -> Option<f64> {
        self.ewma.mean()
    }

    /// How many periods were folded in.
    pub fn periods(&self) -> u64 {
        self.ewma.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a mean");
        assert!(
            (actual - expected).abs() < 1e-9,
            "{actual} is not close to {expected}"
        );
    }

    #[test]
    fn first_observation_sets_the_mean() {
        let mut e = Ewma::new(0.1);
        assert_eq!(e.mean(), None);
        assert_eq!(e.count(), 0);
        e.observe(42.0);
        assert_eq!(e.mean(), Some(42.0));
        assert_eq!(e.count(), 1);
    }

    #[test]
    fn each_observation_moves_the_mean_by_alpha() {
        let mut e = Ewma::new(0.25);
        e.observe(0.0);
        e.observe(100.0);
        assert_close(e.mean(), 25.0);
        e.observe(100.0);
        assert_close(e.mean(), 43.75);
        assert_eq!(e.count(), 3);
    }

    #[test]
    fn converges_to_a_new_level() {
        let mut e = Ewma::new(0.1);
        for _ in 0..100 {
            e.observe(10.0);
        }
        assert_close(e.mean(), 10.0);
        // After n steps 0.9^n of the 40-unit gap is left: 3e-8 at n = 200, 2e-17 at 400.
        for _ in 0..200 {
            e.observe(50.0);
        }
        let mean = e.mean().expect("a mean");
        assert!((49.9999..50.0).contains(&mean), "{mean}");
        for _ in 0..200 {
            e.observe(50.0);
        }
        assert_close(e.mean(), 50.0);
        // An alternating signal settles between its two values.
        let mut e = Ewma::new(0.5);
        for i in 0..1000 {
            e.observe(if i % 2 == 0 { 0.0 } else { 3.0 });
        }
        let mean = e.mean().expect("a mean");
        assert!((1.0..=2.0).contains(&mean), "{mean}");
    }

    #[test]
    fn alpha_is_clamped() {
        assert_eq!(Ewma::new(0.3).alpha(), 0.3);
        assert_eq!(Ewma::new(1.0).alpha(), 1.0);
        assert_eq!(Ewma::new(2.0).alpha(), 1.0);
        assert_eq!(Ewma::new(f64::INFINITY).alpha(), 1.0);
        assert_eq!(Ewma::new(0.0).alpha(), MIN_ALPHA);
        assert_eq!(Ewma::new(-1.0).alpha(), MIN_ALPHA);
        assert_eq!(Ewma::new(f64::NEG_INFINITY).alpha(), MIN_ALPHA);
        assert_eq!(Ewma::new(f64::NAN).alpha(), 1.0);
        let mut e = Ewma::new(5.0);
        e.observe(1.0);
        e.observe(7.0);
        assert_eq!(e.mean(), Some(7.0));
    }

    #[test]
    fn nan_and_infinities_are_ignored() {
        let mut e = Ewma::new(0.5);
        e.observe(f64::NAN);
        e.observe(f64::INFINITY);
        assert_eq!(e.mean(), None);
        assert_eq!(e.count(), 0);
        e.observe(4.0);
        e.observe(f64::NAN);
        e.observe(f64::NEG_INFINITY);
        e.observe(f64::INFINITY);
        assert_eq!(e.mean(), Some(4.0));
        assert_eq!(e.count(), 1);
    }

    #[test]
    fn extreme_values_keep_the_mean_finite() {
        let mut e = Ewma::new(0.5);
        e.observe(f64::MAX);
        e.observe(-f64::MAX);
        let mean = e.mean().expect("a mean");
        assert!(mean.is_finite(), "{mean}");
        e.observe(f64::MAX);
        e.observe(f64::MAX);
        let mean = e.mean().expect("a mean");
        assert!(mean.is_finite() && mean <= f64::MAX, "{mean}");
        let mut e = Ewma::new(MIN_ALPHA);
        e.observe(f64::MAX);
        for _ in 0..10 {
            e.observe(-f64::MAX);
            e.observe(f64::MIN_POSITIVE);
        }
        assert!(e.mean().is_some_and(f64::is_finite));
    }

    #[test]
    fn baseline_tracks_ratios() {
        let mut b = RateBaseline::new(0.5);
        assert_eq!(b.baseline(), None);
        assert_eq!(b.periods(), 0);
        b.observe(1, 10);
        assert_close(b.baseline(), 0.1);
        b.observe_ratio(0.3);
        assert_close(b.baseline(), 0.2);
        assert_eq!(b.periods(), 2);
        for _ in 0..100 {
            b.observe(5, 100);
        }
        assert_close(b.baseline(), 0.05);
        assert_eq!(b.periods(), 102);
    }

    #[test]
    fn baseline_ignores_empty_periods_and_bad_ratios() {
        let mut b = RateBaseline::new(0.5);
        b.observe(0, 0);
        b.observe(7, 0);
        b.observe_ratio(f64::NAN);
        b.observe_ratio(f64::INFINITY);
        b.observe_ratio(f64::NEG_INFINITY);
        assert_eq!(b.baseline(), None);
        assert_eq!(b.periods(), 0);
        // Out-of-range values are clamped into [0, 1].
        b.observe(20, 10);
        assert_eq!(b.baseline(), Some(1.0));
        b.observe_ratio(-3.0);
        assert_close(b.baseline(), 0.5);
        b.observe(u64::MAX, u64::MAX);
        b.observe(0, u64::MAX);
        let baseline = b.baseline().expect("a baseline");
        assert!((0.0..=1.0).contains(&baseline));
        assert_eq!(b.periods(), 4);
    }
}
