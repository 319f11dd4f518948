//! Simulated rollouts through the guard's own rule ([`GuardRule`],
//! [`Evidence`]), with fixed seeds, for the tests (a short run) and
//! `make bench-guard` (a long one). Native tooling only: the filter does
//! not build it.

use crate::guard::{Evidence, GuardRule};

/// The fraction of `trials` rollouts of `n` canary outcomes, each failing
/// with probability `errors`, that trip `rule`; the canary alone (no
/// stable window, so `p0` stays at the baseline). Stable's window can only
/// raise `p0`, and a higher `p0` only lowers a failure's evidence, so at
/// every step this statistic is at least the one the filter keeps: it is
/// the worst case for false trips. Returns the rollouts that tripped.
pub fn false_trips(rule: &GuardRule, errors: f64, n: u64, trials: u64, seed: u64) -> u64 {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..trials)
        .filter(|_| {
            let mut evidence = Evidence::default();
            (0..n).any(|_| evidence.add_canary(rule, rng.f64() < errors))
        })
        .count() as u64
}

/// One-sided 95% Clopper–Pearson upper bound of a binomial proportion:
/// `successes` of `trials`.
pub fn upper_95(successes: u64, trials: u64) -> f64 {
    if successes >= trials {
        return 1.0;
    }
    // P(X <= k; n, p), summed in log space.
    let cdf = |p: f64| -> f64 {
        let (n, k) = (trials as f64, successes);
        let mut log_term = n * (1.0 - p).ln(); // i = 0
        let mut total = log_term.exp();
        for i in 1..=k {
            let i = i as f64;
            log_term += ((n - i + 1.0) / i).ln() + (p / (1.0 - p)).ln();
            total += log_term.exp();
        }
        total
    };
    let (mut low, mut high) = (successes as f64 / trials as f64, 1.0);
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        if cdf(mid) > 0.05 {
            low = mid;
        } else {
            high = mid;
        }
    }
    high
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds_of_known_proportions() {
        // No event in n trials: about 3/n (the rule of three).
        let upper = upper_95(0, 3_000);
        assert!((upper - 0.000_998).abs() < 0.000_01, "{upper}");
        assert_eq!(upper_95(5, 5), 1.0);
        assert!(upper_95(10, 100) > 0.1 && upper_95(10, 100) < 0.2);
    }
}
