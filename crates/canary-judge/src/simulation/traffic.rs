//! Requests into what the filter and Envoy record.

use rand::Rng;
use rand_distr::{Binomial, Distribution, Poisson};
use statrs::function::erf::erfc;

use crate::look::Buckets;

/// The latency bucket bounds shipped in `manifests/envoy/*.yaml`
/// (`histogram_bucket_settings` for `rq_latency_us`), in microseconds.
pub const SHIPPED_BOUNDS_MICROS: [f64; 18] = [
    100.0,
    250.0,
    500.0,
    1_000.0,
    2_500.0,
    5_000.0,
    10_000.0,
    25_000.0,
    50_000.0,
    100_000.0,
    250_000.0,
    500_000.0,
    1_000_000.0,
    2_500_000.0,
    5_000_000.0,
    10_000_000.0,
    30_000_000.0,
    60_000_000.0,
];

/// A lognormal latency, optionally shifted by a constant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median of the lognormal part, ms.
    pub median_ms: f64,
    /// 99th percentile of the lognormal part, ms.
    pub p99_ms: f64,
    /// Added to every request, ms.
    pub shift_ms: f64,
}

impl Latency {
    /// The baseline of the targets: p50 20 ms, p99 100 ms.
    pub const BASELINE: Latency = Latency {
        median_ms: 20.0,
        p99_ms: 100.0,
        shift_ms: 0.0,
    };

    /// The same, `ms` slower.
    pub fn shifted(self, ms: f64) -> Latency {
        Latency {
            shift_ms: self.shift_ms + ms,
            ..self
        }
    }

    /// `P(latency ≤ ms)`.
    pub fn cdf(&self, ms: f64) -> f64 {
        let x = ms - self.shift_ms;
        if x <= 0.0 {
            return 0.0;
        }
        // z of the 99th percentile of a standard normal.
        const Z99: f64 = 2.326_347_874_040_841;
        let sigma = (self.p99_ms / self.median_ms).ln() / Z99;
        let z = (x / self.median_ms).ln() / sigma;
        0.5 * erfc(-z / std::f64::consts::SQRT_2)
    }
}

/// How one version behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    /// Probability that a request fails.
    pub error_rate: f64,
    /// Its latency.
    pub latency: Latency,
}

impl Behaviour {
    /// Baseline latency with this error rate.
    pub fn failing(error_rate: f64) -> Behaviour {
        Behaviour {
            error_rate,
            latency: Latency::BASELINE,
        }
    }
}

/// Counts one version gathered and not yet shown.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pending {
    pub requests: u64,
    pub errors: u64,
}

/// Draws requests for one stretch of time.
pub(crate) struct Traffic {
    stable: Behaviour,
    canary: Behaviour,
    stable_buckets: Vec<f64>,
    canary_buckets: Vec<f64>,
    bounds: Vec<f64>,
}

impl Traffic {
    pub(crate) fn new(stable: Behaviour, canary: Behaviour, bounds: &[f64]) -> Traffic {
        Traffic {
            stable,
            canary,
            stable_buckets: bucket_probabilities(&stable.latency, bounds),
            canary_buckets: bucket_probabilities(&canary.latency, bounds),
            bounds: bounds.to_vec(),
        }
    }

    /// Requests arriving at `rate` per second for `seconds`, split with the
    /// canary's `weight` (0 to 1): `(stable, canary)` counts.
    pub(crate) fn arrivals(
        &self,
        rng: &mut impl Rng,
        rate: f64,
        seconds: f64,
        weight: f64,
    ) -> (Pending, Pending) {
        let mean = rate * seconds;
        if mean <= 0.0 {
            return (Pending::default(), Pending::default());
        }
        let total = match Poisson::new(mean) {
            Ok(poisson) => poisson.sample(rng) as u64,
            Err(_) => 0,
        };
        let canary_requests = binomial(rng, total, weight);
        let stable_requests = total - canary_requests;
        let pending = |rng: &mut _, requests, behaviour: &Behaviour| Pending {
            requests,
            errors: binomial(rng, requests, behaviour.error_rate),
        };
        (
            pending(rng, stable_requests, &self.stable),
            pending(rng, canary_requests, &self.canary),
        )
    }

    /// The histogram increment of `requests` timed requests of one version.
    pub(crate) fn histogram(&self, rng: &mut impl Rng, requests: u64, canary: bool) -> Buckets {
        let probabilities = if canary {
            &self.canary_buckets
        } else {
            &self.stable_buckets
        };
        // A multinomial draw as a chain of binomials, bucket by bucket.
        let mut left = requests;
        let mut mass = 1.0;
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(self.bounds.len());
        for &p in probabilities.iter().take(self.bounds.len()) {
            let share = if mass > 0.0 { (p / mass).min(1.0) } else { 0.0 };
            let here = binomial(rng, left, share);
            left -= here;
            mass -= p;
            running += here;
            cumulative.push(running);
        }
        Buckets {
            bounds: self.bounds.clone(),
            cumulative,
            count: requests,
        }
    }
}

fn binomial(rng: &mut impl Rng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    Binomial::new(n, p).map_or(0, |b| b.sample(rng))
}

/// Probability of each bucket (below each bound; the last for `+Inf`).
fn bucket_probabilities(latency: &Latency, bounds_micros: &[f64]) -> Vec<f64> {
    let mut previous = 0.0;
    let mut out = Vec::with_capacity(bounds_micros.len() + 1);
    for &bound in bounds_micros {
        let at = latency.cdf(bound / 1000.0);
        out.push((at - previous).max(0.0));
        previous = at;
    }
    out.push((1.0 - previous).max(0.0));
    out
}
