//! Judging a measured split against a weight.

/// The two-sided 99.99% acceptance interval for the number of canary
/// answers among `n` requests at canary probability `p` (normal
/// approximation to the binomial, z = 3.8906, plus one for continuity).
pub fn binomial_bounds(n: usize, p: f64) -> (f64, f64) {
    let n = n as f64;
    let mean = n * p;
    let sd = (n * p * (1.0 - p)).sqrt();
    let half = 3.8906 * sd + 1.0;
    ((mean - half).max(0.0), (mean + half).min(n))
}

/// Asserts `canary` of `n` is consistent with weight `percent`.
pub fn assert_share(canary: usize, n: usize, percent: f64) {
    let (low, high) = binomial_bounds(n, percent / 100.0);
    let got = canary as f64;
    assert!(
        got >= low && got <= high,
        "{canary} of {n} requests reached the canary at {percent}%: outside the 99.99% bound [{low:.1}, {high:.1}]"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_around_the_mean() {
        let (low, high) = binomial_bounds(2000, 0.1);
        assert!(low > 140.0 && low < 200.0, "{low}");
        assert!(low > 0.05 * 2000.0, "{low}");
        assert!(high > 200.0 && high < 260.0, "{high}");
        // Wide enough not to flake, narrow enough to catch a wrong weight:
        // 15% of 2 000 is far outside the 10% interval.
        assert!(high < 0.15 * 2000.0, "{high}");
        assert_eq!(binomial_bounds(100, 0.0), (0.0, 1.0));
    }
}
