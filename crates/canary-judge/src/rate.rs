//! What one version's counts say about its rate: the mixture e-value
//! against any hypothesised rate, and the confidence sequence it gives.
//!
//! For requests that are independent Bernoulli trials with rate `p`,
//! `M_n(p) = m(x, n) / (p^x (1-p)^(n-x))`, with `m` the [`Prior`]'s
//! probability of the observed sequence, is a nonnegative martingale with
//! mean one (a Bayes factor against the point `p`). Ville's inequality
//! gives `P(∃n: M_n(p) ≥ 1/α) ≤ α`, so `{p : M_n(p) < 1/α}` holds the true
//! rate at every look at once with probability at least `1 - α`.

use serde::{Deserialize, Serialize};

use crate::prior::Prior;

/// Events among trials for one version: errors among requests, or requests
/// slower than a latency bound among timed requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// How many trials had the event.
    pub events: u64,
    /// How many trials there were.
    pub trials: u64,
}

impl Tally {
    /// The observed share, `None` before any trial.
    pub fn share(self) -> Option<f64> {
        (self.trials > 0).then(|| self.events as f64 / self.trials as f64)
    }
}

/// One version's evidence about its rate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateEvidence {
    events: f64,
    misses: f64,
    ln_marginal: f64,
}

impl RateEvidence {
    /// `tally.events <= tally.trials` is the caller's to ensure.
    pub(crate) fn new(prior: &Prior, tally: Tally) -> RateEvidence {
        RateEvidence {
            events: tally.events as f64,
            misses: tally.trials.saturating_sub(tally.events) as f64,
            ln_marginal: prior.ln_marginal(tally.events, tally.trials),
        }
    }

    /// The maximum-likelihood rate (0 without trials).
    pub(crate) fn estimate(&self) -> f64 {
        let trials = self.events + self.misses;
        if trials > 0.0 {
            self.events / trials
        } else {
            0.0
        }
    }

    /// `ln M_n(p)`, the log e-value against the rate being `p`.
    pub(crate) fn ln_evidence(&self, p: f64) -> f64 {
        let mut value = self.ln_marginal;
        if self.events > 0.0 {
            value -= self.events * p.ln();
        }
        if self.misses > 0.0 {
            value -= self.misses * (-p).ln_1p();
        }
        value
    }

    /// `d/dp ln M_n(p)`: negative below the estimate, positive above.
    pub(crate) fn slope(&self, p: f64) -> f64 {
        let mut value = 0.0;
        if self.events > 0.0 {
            value -= self.events / p;
        }
        if self.misses > 0.0 {
            value += self.misses / (1.0 - p);
        }
        value
    }

    /// `d²/dp² ln M_n(p)`: never negative (`ln M_n` is convex in `p`).
    pub(crate) fn curvature(&self, p: f64) -> f64 {
        let mut value = 0.0;
        if self.events > 0.0 {
            value += self.events / (p * p);
        }
        if self.misses > 0.0 {
            value += self.misses / ((1.0 - p) * (1.0 - p));
        }
        value
    }

    /// The smallest rate not yet rejected at `ln(1/α) = threshold`: below
    /// it, `M_n(p) ≥ 1/α`.
    pub(crate) fn lower(&self, threshold: f64) -> f64 {
        if self.events == 0.0 {
            // M_n(0) = m ≤ 1 < 1/α: nothing excludes a rate of zero.
            return 0.0;
        }
        // In u = ln p, ln M is convex and decreasing up to the estimate.
        let (x, y) = (self.events, self.misses);
        let f = |u: f64| self.ln_evidence(u.exp()) - threshold;
        let df = |u: f64| {
            let p = u.exp();
            -x + y * p / (1.0 - p)
        };
        root_from_left(f, df, self.estimate().ln()).exp()
    }

    /// The largest rate not yet rejected at `ln(1/α) = threshold`.
    pub(crate) fn upper(&self, threshold: f64) -> f64 {
        if self.misses == 0.0 {
            return 1.0;
        }
        // In v = ln(1 - p), ln M is convex and decreasing up to the estimate.
        let (x, y) = (self.events, self.misses);
        let f = |v: f64| self.ln_evidence(-v.exp_m1()) - threshold;
        let df = |v: f64| {
            let q = v.exp();
            -y + x * q / (1.0 - q)
        };
        -root_from_left(f, df, (-self.estimate()).ln_1p()).exp_m1()
    }
}

/// The root of `f` on `(-∞, end]` for `f` convex and decreasing there, with
/// `f(end) ≤ 0` and `f → +∞` to the left. Newton's method started left of
/// the root stays left of it and climbs monotonically (the tangent of a
/// convex function lies below it), so no bracketing is needed once a
/// starting point with `f > 0` is found.
fn root_from_left(f: impl Fn(f64) -> f64, df: impl Fn(f64) -> f64, end: f64) -> f64 {
    let mut step = 1.0;
    let mut u = end - step;
    while f(u) <= 0.0 {
        step *= 2.0;
        u = end - step;
        if step > 1e6 {
            return u;
        }
    }
    for _ in 0..200 {
        let value = f(u);
        if value <= 1e-10 {
            break;
        }
        let slope = df(u);
        if !(slope < 0.0) || !slope.is_finite() {
            break;
        }
        let next = (u - value / slope).min(end);
        if (next - u).abs() <= 1e-13 * (1.0 + u.abs()) {
            u = next;
            break;
        }
        u = next;
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(events: u64, trials: u64) -> RateEvidence {
        RateEvidence::new(&Prior::rates(), Tally { events, trials })
    }

    #[test]
    fn bounds_bracket_the_estimate_and_sit_on_the_threshold() {
        let threshold = (1.0f64 / 0.01).ln();
        for (x, n) in [(1, 10), (3, 100), (30, 1000), (500, 100_000), (99, 100)] {
            let e = evidence(x, n);
            let (lo, hi) = (e.lower(threshold), e.upper(threshold));
            assert!(lo < e.estimate() && e.estimate() < hi, "{x}/{n}: {lo} {hi}");
            assert!((e.ln_evidence(lo) - threshold).abs() < 1e-6, "{x}/{n} lower");
            assert!((e.ln_evidence(hi) - threshold).abs() < 1e-6, "{x}/{n} upper");
        }
    }

    #[test]
    fn edges() {
        let threshold = 5.0;
        assert_eq!(evidence(0, 0).lower(threshold), 0.0);
        assert_eq!(evidence(0, 0).upper(threshold), 1.0);
        assert_eq!(evidence(0, 1000).lower(threshold), 0.0);
        assert!(evidence(0, 1000).upper(threshold) < 0.02);
        assert_eq!(evidence(20, 20).upper(threshold), 1.0);
        assert!(evidence(20, 20).lower(threshold) > 0.5);
    }
}
