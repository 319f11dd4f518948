//! What one version's counts say about its rate: the mixture e-value
//! against any hypothesised rate, and the confidence sequence it gives.
//!
//! For requests that are independent Bernoulli trials with rate `p`,
//! `M_n(p) = m(x, n) / (p^x (1-p)^(n-x))`, with `m` the [`Prior`]'s
//! probability of the observed sequence, is a nonnegative martingale with
//! mean one (a Bayes factor against the point `p`). Ville's inequality
//! gives `P(∃n: M_n(p) ≥ 1/α) ≤ α`, so `{p : M_n(p) < 1/α}` holds the true
//! rate at every look at once with probability at least `1 - α`.
//! [`crate::comparison`] combines two versions' martingales.

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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(events: u64, trials: u64) -> RateEvidence {
        RateEvidence::new(Prior::rates(), Tally { events, trials })
    }

    #[test]
    fn evidence_is_least_near_the_estimate() {
        for (x, n) in [(1, 10), (3, 100), (30, 1000), (500, 100_000), (99, 100)] {
            let e = evidence(x, n);
            let at = e.ln_evidence(e.estimate());
            assert!(at <= 0.0, "{x}/{n}: a mixture never beats the best fit");
            assert!(e.ln_evidence(e.estimate() * 0.5) > at);
            assert!(e.ln_evidence((e.estimate() * 1.5).min(0.999)) > at);
        }
    }

    #[test]
    fn slope_and_curvature_match_differences() {
        let e = evidence(30, 1000);
        for p in [0.01, 0.03, 0.05] {
            let h = 1e-6;
            let numeric = (e.ln_evidence(p + h) - e.ln_evidence(p - h)) / (2.0 * h);
            assert!((numeric - e.slope(p)).abs() < 1e-3 * e.slope(p).abs().max(1.0));
            let numeric = (e.slope(p + h) - e.slope(p - h)) / (2.0 * h);
            assert!((numeric - e.curvature(p)).abs() < 1e-3 * e.curvature(p));
        }
    }
}
