//! The mixing distributions behind every e-value: a fixed mixture of Beta
//! priors over a proportion. Fixed means chosen before any data, the same
//! for every rollout, so the mixture martingale `m(x, n) / L(p)` is a
//! function of the counts alone: no path, no order, nothing to persist but
//! the counts.

use std::sync::OnceLock;

use statrs::function::beta::ln_beta;

/// A finite mixture `Σ w_k Beta(a_k, b_k)` over a proportion.
#[derive(Debug, Clone)]
pub(crate) struct Prior {
    /// `(ln w_k, a_k, b_k, ln B(a_k, b_k))`, weights summing to one.
    components: Vec<(f64, f64, f64, f64)>,
}

impl Prior {
    fn new(shapes: &[(f64, f64)]) -> Prior {
        let ln_weight = -(shapes.len() as f64).ln();
        let components = shapes
            .iter()
            .map(|&(a, b)| (ln_weight, a, b, ln_beta(a, b)))
            .collect();
        Prior { components }
    }

    /// For error rates: `Beta(1, κ)` for κ = 1, √10, 10, …, 10⁴ in equal
    /// parts. Roughly log-uniform over rates from 10⁻⁴ to 1, so a rate of
    /// 0.1% and one of 10% cost about the same (mass near the truth is what
    /// an e-value pays for), and `Beta(1, 1)` keeps mass near 100% for a
    /// canary that fails everything.
    pub(crate) fn rates() -> &'static Prior {
        static RATES: OnceLock<Prior> = OnceLock::new();
        RATES.get_or_init(|| {
            let shapes: Vec<(f64, f64)> = (0..=8)
                .map(|k| (1.0, 10f64.powf(f64::from(k) / 2.0)))
                .collect();
            Prior::new(&shapes)
        })
    }

    /// For the share of requests slower than a latency bound, which may be
    /// near 0, near 1 or anywhere between: the same ladder from both ends,
    /// `Beta(1, κ)` and `Beta(κ, 1)` for κ = √10 … 10³, plus `Beta(1, 1)`.
    pub(crate) fn shares() -> &'static Prior {
        static SHARES: OnceLock<Prior> = OnceLock::new();
        SHARES.get_or_init(|| {
            let mut shapes = vec![(1.0, 1.0)];
            for k in 1..=6 {
                let kappa = 10f64.powf(f64::from(k) / 2.0);
                shapes.push((1.0, kappa));
                shapes.push((kappa, 1.0));
            }
            Prior::new(&shapes)
        })
    }

    /// `ln ∫ θ^x (1-θ)^(n-x) dπ(θ)`: the mixture's probability of one
    /// particular sequence with `events` events among `trials` trials.
    pub(crate) fn ln_marginal(&self, events: u64, trials: u64) -> f64 {
        let x = events as f64;
        let rest = trials.saturating_sub(events) as f64;
        let terms = self
            .components
            .iter()
            .map(|&(ln_w, a, b, ln_b0)| ln_w + ln_beta(x + a, rest + b) - ln_b0);
        log_sum_exp(terms)
    }
}

/// `ln Σ e^t` without overflow.
pub(crate) fn log_sum_exp(terms: impl Iterator<Item = f64> + Clone) -> f64 {
    let top = terms.clone().fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        return top;
    }
    top + terms.map(|t| (t - top).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_data_has_probability_one() {
        assert!(Prior::rates().ln_marginal(0, 0).abs() < 1e-12);
        assert!(Prior::shares().ln_marginal(0, 0).abs() < 1e-12);
    }

    #[test]
    fn marginals_over_one_trial_add_up() {
        for prior in [Prior::rates(), Prior::shares()] {
            let total = prior.ln_marginal(0, 1).exp() + prior.ln_marginal(1, 1).exp();
            assert!((total - 1.0).abs() < 1e-9, "{total}");
        }
    }
}
