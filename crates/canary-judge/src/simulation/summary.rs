//! Many rollouts into rates with confidence intervals and percentiles.

use statrs::distribution::{Beta, ContinuousCDF};

use super::rollout::{Ending, Outcome};

/// Exact (Clopper-Pearson) two-sided confidence interval for a binomial
/// proportion: `successes` of `trials`, at `confidence` (e.g. 0.95).
pub fn clopper_pearson(successes: u64, trials: u64, confidence: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let tail = (1.0 - confidence) / 2.0;
    let (x, n) = (successes as f64, trials as f64);
    let lower = if successes == 0 {
        0.0
    } else {
        Beta::new(x, n - x + 1.0).map_or(0.0, |b| b.inverse_cdf(tail))
    };
    let upper = if successes >= trials {
        1.0
    } else {
        Beta::new(x + 1.0, n - x).map_or(1.0, |b| b.inverse_cdf(1.0 - tail))
    };
    (lower, upper)
}

/// What a batch of rollouts of one scenario showed.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Rollouts run.
    pub runs: u64,
    /// Rolled back.
    pub rolled_back: u64,
    /// Promoted.
    pub promoted: u64,
    /// Stalled at a step.
    pub stalled: u64,
    /// Rolled back on errors (a rollout may count under both).
    pub failed_on_errors: u64,
    /// Rolled back on latency.
    pub failed_on_latency: u64,
    /// Time of each rollback, ms, sorted.
    pub rollback_ms: Vec<u64>,
    /// Time of each first Successful, ms, sorted.
    pub success_ms: Vec<u64>,
}

impl Summary {
    /// Summarises outcomes.
    pub fn of(outcomes: &[Outcome]) -> Summary {
        let count = |ending| outcomes.iter().filter(|o| o.ending == ending).count() as u64;
        let mut rollback_ms: Vec<u64> = outcomes
            .iter()
            .filter(|o| o.ending == Ending::RolledBack)
            .map(|o| o.at_ms)
            .collect();
        rollback_ms.sort_unstable();
        let mut success_ms: Vec<u64> = outcomes.iter().filter_map(|o| o.first_success_ms).collect();
        success_ms.sort_unstable();
        let rolled_back: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.ending == Ending::RolledBack)
            .collect();
        Summary {
            runs: outcomes.len() as u64,
            rolled_back: count(Ending::RolledBack),
            promoted: count(Ending::Promoted),
            stalled: count(Ending::Stalled),
            failed_on_errors: rolled_back.iter().filter(|o| o.errors_failed).count() as u64,
            failed_on_latency: rolled_back.iter().filter(|o| o.latency_failed).count() as u64,
            rollback_ms,
            success_ms,
        }
    }

    /// Share rolled back, with its 95% Clopper-Pearson interval.
    pub fn rollback_rate(&self) -> (f64, (f64, f64)) {
        let rate = if self.runs == 0 {
            0.0
        } else {
            self.rolled_back as f64 / self.runs as f64
        };
        (rate, clopper_pearson(self.rolled_back, self.runs, 0.95))
    }

    /// Share of all runs rolled back within `ms`.
    pub fn rolled_back_within(&self, ms: u64) -> f64 {
        let within = self.rollback_ms.iter().filter(|&&t| t <= ms).count();
        within as f64 / self.runs.max(1) as f64
    }

    /// The `q`-quantile (0 to 1) of the time to rollback over all runs, a
    /// run never rolled back counting as never: `None` when fewer than a
    /// `q` share of runs were rolled back.
    pub fn rollback_quantile(&self, q: f64) -> Option<u64> {
        quantile(&self.rollback_ms, self.runs, q)
    }

    /// The `q`-quantile of the time to the first Successful over all runs.
    pub fn success_quantile(&self, q: f64) -> Option<u64> {
        quantile(&self.success_ms, self.runs, q)
    }
}

/// The smallest time by which at least a `q` share of `runs` had happened.
fn quantile(sorted: &[u64], runs: u64, q: f64) -> Option<u64> {
    let needed = (q * runs as f64).ceil().max(1.0) as usize;
    sorted.get(needed - 1).copied()
}
