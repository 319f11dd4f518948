//! Canary against stable on one proportion (the error rate, or the share of
//! requests slower than one latency bound), with a tolerance.
//!
//! The canary is worse than tolerated when its rate `a` and stable's `b`
//! satisfy `a > b + max(t, r·b)` ([`Tolerance`]). Each version's counts give a
//! mixture martingale `M_c(a)`, `M_s(b)` ([`crate::rate`]); requests of the
//! two versions are independent, so `M_c(a)·M_s(b)` is a test martingale
//! at the true pair. Its infimum over every pair within the tolerance is
//! the failure evidence: when the canary is in truth within the tolerance,
//! it never exceeds the martingale at the truth, so by Ville's inequality
//! it reaches `1/α` at any look with probability at most `α`. The success
//! evidence is the same infimum over every pair worse than tolerated,
//! against `1/β`. (This is universal inference with a mixture numerator:
//! the nuisance, stable's rate, is profiled out.)
//!
//! The bounds reported are the confidence sequence these tests invert: for
//! the difference `a - b`, and for the excess over the tolerated limit,
//! `a - b - max(t, r·b)`, which is above 0 exactly when the verdict is
//! Failed and below 0 exactly when it is Successful.

use serde::{Deserialize, Serialize};

use crate::prior::Prior;
use crate::rate::{RateEvidence, Tally};
use crate::settings::Tolerance;

/// What one comparison (or the whole judge) concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// The canary is shown worse than stable by more than the tolerance.
    Failed,
    /// The canary is shown no worse than the tolerance allows.
    Successful,
    /// Neither yet: keep watching. Not Argo's Inconclusive, which waits for
    /// a person; more data settles it.
    NotEnoughData,
}

/// An e-value and the value at which it decides.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The e-value (saturates at `f64::MAX`).
    pub value: f64,
    /// The verdict it supports holds once `value` reaches this (`1/α` or
    /// `1/β`).
    pub needed: f64,
}

/// An estimate with its confidence bounds: the lower at level `α` (the
/// failure side), the upper at level `β` (the success side).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// The observed value (0 while a version has no trials).
    pub estimate: f64,
    /// Lower confidence bound.
    pub lower: f64,
    /// Upper confidence bound.
    pub upper: f64,
}

/// One comparison, with everything it used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// Failed, Successful or NotEnoughData.
    pub verdict: Verdict,
    /// The canary's counts.
    pub canary: Tally,
    /// Stable's counts.
    pub stable: Tally,
    /// The canary's rate minus stable's.
    pub difference: Bounds,
    /// The canary's rate minus the tolerated limit, `b + max(t, r·b)` for
    /// stable's rate `b`:
    /// Failed exactly when `lower > 0`, Successful exactly when `upper < 0`.
    pub excess: Bounds,
    /// E-value against "the canary is within the tolerance"; Failed when it
    /// reaches `1/α`.
    pub failure_evidence: Evidence,
    /// E-value against "the canary is worse than the tolerance allows";
    /// Successful when it reaches `1/β`.
    pub success_evidence: Evidence,
}

/// The levels of one comparison.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Levels {
    /// Chance of a false Failed, over all looks.
    pub fail: f64,
    /// Chance of a false Successful, over all looks.
    pub succeed: f64,
}

/// Both versions' evidence, ready to be profiled.
struct Pair {
    canary: RateEvidence,
    stable: RateEvidence,
}

/// A tolerance limit shifted by `shift`: the canary's rate may reach
/// `max(b + absolute, (1 + relative)·b) + shift` while stable's is `b`.
#[derive(Debug, Clone, Copy)]
struct Limit {
    absolute: f64,
    relative: f64,
    shift: f64,
}

impl Limit {
    fn new(tolerance: Tolerance, shift: f64) -> Limit {
        Limit {
            absolute: tolerance.absolute,
            relative: tolerance.relative,
            shift,
        }
    }

    fn at(self, b: f64) -> f64 {
        (b + self.absolute).max((1.0 + self.relative) * b) + self.shift
    }

    fn slope_at(self, b: f64) -> f64 {
        if self.relative * b < self.absolute {
            1.0
        } else {
            1.0 + self.relative
        }
    }

    /// The two straight pieces whose maximum the limit is: `(t, k)` for
    /// `a ≤ t + k·b`.
    fn pieces(self) -> [(f64, f64); 2] {
        [
            (self.absolute + self.shift, 1.0),
            (self.shift, 1.0 + self.relative),
        ]
    }
}

impl Pair {
    /// `ln inf { M_c(a)·M_s(b) : a ≤ limit(b) }`: the log evidence against
    /// "within the tolerance". The region is the union of the two pieces'
    /// half-planes, so the infimum is the smaller of theirs.
    fn ln_against_within(&self, limit: Limit) -> f64 {
        limit
            .pieces()
            .into_iter()
            .map(|(t, k)| self.ln_against_below_line(t, k))
            .fold(f64::INFINITY, f64::min)
    }

    /// `ln inf { M_c(a)·M_s(b) : a ≤ t + k·b }`.
    fn ln_against_below_line(&self, t: f64, k: f64) -> f64 {
        let (c, s) = (&self.canary, &self.stable);
        let (a_hat, b_hat) = (c.estimate(), s.estimate());
        // Below stable's estimate both terms fall as b grows; once the
        // line passes the canary's estimate, the canary's term is at its
        // minimum and stable's only grows. Between, the sum is convex.
        let from = b_hat;
        let to = ((a_hat - t) / k).min(1.0);
        let value = |b: f64| s.ln_evidence(b) + c.ln_evidence((t + k * b).clamp(0.0, a_hat));
        if to <= from {
            return value(from.max(0.0));
        }
        let slope = |b: f64| s.slope(b) + k * c.slope(t + k * b);
        let curvature = |b: f64| s.curvature(b) + k * k * c.curvature(t + k * b);
        value(convex_minimum(slope, curvature, from, to))
    }

    /// `ln inf { M_c(a)·M_s(b) : a ≥ limit(b) }`: the log evidence against
    /// "worse than tolerated". The limit is convex in `b`, and `ln M_c` is
    /// convex and rising above the canary's estimate, so the profile is
    /// convex.
    fn ln_against_worse(&self, limit: Limit) -> f64 {
        let (c, s) = (&self.canary, &self.stable);
        let (a_hat, b_hat) = (c.estimate(), s.estimate());
        // Stable rates whose limit is still a rate at all.
        let highest = limit
            .pieces()
            .into_iter()
            .map(|(t, k)| (1.0 - t) / k)
            .fold(f64::INFINITY, f64::min);
        if highest < 0.0 {
            return f64::INFINITY;
        }
        // Where the limit reaches the canary's estimate: below, only
        // stable's term moves, and it falls.
        let from = limit
            .pieces()
            .into_iter()
            .map(|(t, k)| (a_hat - t) / k)
            .fold(f64::INFINITY, f64::min)
            .max(0.0);
        let to = b_hat.min(highest);
        let value = |b: f64| s.ln_evidence(b) + c.ln_evidence(limit.at(b).clamp(a_hat, 1.0));
        if to <= from {
            return value(to.max(0.0));
        }
        let slope = |b: f64| s.slope(b) + limit.slope_at(b) * c.slope(limit.at(b));
        let curvature = |b: f64| {
            let k = limit.slope_at(b);
            s.curvature(b) + k * k * c.curvature(limit.at(b))
        };
        value(convex_minimum(slope, curvature, from, to))
    }

    /// The lower confidence bound of the canary's rate minus the limit:
    /// the largest shift at which "within the shifted limit" is still
    /// rejected (that evidence falls as the shift grows).
    fn lower_excess(&self, tolerance: Tolerance, threshold: f64) -> f64 {
        last_true(|x| self.ln_against_within(Limit::new(tolerance, x)) >= threshold)
    }

    /// The upper confidence bound of the canary's rate minus the limit:
    /// the smallest shift at which "worse than the shifted limit" is
    /// rejected (that evidence grows with the shift).
    fn upper_excess(&self, tolerance: Tolerance, threshold: f64) -> f64 {
        -last_true(|y| self.ln_against_worse(Limit::new(tolerance, -y)) >= threshold)
    }
}

/// The largest shift `x` in `[-2, 2]` with `holds(x)`, for `holds` true up
/// to a point and false after it (`-2` if it never holds), by bisection.
/// Excesses of rates over a limit lie well inside the range.
fn last_true(holds: impl Fn(f64) -> bool) -> f64 {
    let (mut lo, mut hi) = (-2.0, 2.0);
    if !holds(lo) {
        return lo;
    }
    for _ in 0..BISECTIONS {
        let mid = 0.5 * (lo + hi);
        if holds(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Steps of the bisections that invert the tests into bounds: 2⁻²⁴ of the
/// range, a millionth of a percentage point.
const BISECTIONS: usize = 24;

/// The minimiser on `[from, to]` of a convex function given its
/// non-decreasing slope and its curvature: Newton's method on the slope,
/// kept inside a bracket that bisection narrows whenever a Newton step
/// would leave it.
fn convex_minimum(
    slope: impl Fn(f64) -> f64,
    curvature: impl Fn(f64) -> f64,
    from: f64,
    to: f64,
) -> f64 {
    if slope(from) >= 0.0 {
        return from;
    }
    if slope(to) <= 0.0 {
        return to;
    }
    let (mut lo, mut hi) = (from, to);
    let mut x = 0.5 * (lo + hi);
    for _ in 0..100 {
        let g = slope(x);
        if g == 0.0 {
            return x;
        }
        if g < 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let h = curvature(x);
        let newton = x - g / h;
        let next = if h > 0.0 && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - x).abs() <= 1e-10 * next.abs().max(1e-15) {
            return next;
        }
        x = next;
    }
    x
}

/// A comparison's verdict and evidence, without the bounds (which cost
/// more to invert): what a look needs to act.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Decision {
    pub verdict: Verdict,
    /// `ln` of the failure evidence.
    pub against_within: f64,
    /// `ln` of the success evidence.
    pub against_worse: f64,
}

/// One comparison's inputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Question<'p> {
    pub prior: &'p Prior,
    pub canary: Tally,
    pub stable: Tally,
    pub tolerance: Tolerance,
    pub levels: Levels,
}

impl Question<'_> {
    fn pair(&self) -> Pair {
        Pair {
            canary: RateEvidence::new(self.prior, self.canary),
            stable: RateEvidence::new(self.prior, self.stable),
        }
    }

    fn thresholds(&self) -> (f64, f64) {
        (-self.levels.fail.ln(), -self.levels.succeed.ln())
    }

    /// The verdict and its evidence.
    pub(crate) fn decide(&self) -> Decision {
        self.decide_with(&self.pair())
    }

    fn decide_with(&self, pair: &Pair) -> Decision {
        let (fail, succeed) = self.thresholds();
        let limit = Limit::new(self.tolerance, 0.0);
        let against_within = pair.ln_against_within(limit);
        let against_worse = pair.ln_against_worse(limit);
        let verdict = if against_within >= fail {
            Verdict::Failed
        } else if against_worse >= succeed {
            Verdict::Successful
        } else {
            Verdict::NotEnoughData
        };
        Decision {
            verdict,
            against_within,
            against_worse,
        }
    }

    /// The verdict, its evidence and the confidence bounds.
    pub(crate) fn compare(&self) -> Comparison {
        let pair = self.pair();
        let decision = self.decide_with(&pair);
        let (fail, succeed) = self.thresholds();
        let (a_hat, b_hat) = (pair.canary.estimate(), pair.stable.estimate());
        let both = self.canary.trials > 0 && self.stable.trials > 0;
        let none = Tolerance {
            absolute: 0.0,
            relative: 0.0,
        };
        let limit = Limit::new(self.tolerance, 0.0);
        Comparison {
            verdict: decision.verdict,
            canary: self.canary,
            stable: self.stable,
            difference: Bounds {
                estimate: if both { a_hat - b_hat } else { 0.0 },
                lower: pair.lower_excess(none, fail),
                upper: pair.upper_excess(none, succeed),
            },
            excess: Bounds {
                estimate: if both { a_hat - limit.at(b_hat) } else { 0.0 },
                lower: pair.lower_excess(self.tolerance, fail),
                upper: pair.upper_excess(self.tolerance, succeed),
            },
            failure_evidence: Evidence {
                value: saturate(decision.against_within),
                needed: 1.0 / self.levels.fail,
            },
            success_evidence: Evidence {
                value: saturate(decision.against_worse),
                needed: 1.0 / self.levels.succeed,
            },
        }
    }
}

fn saturate(ln_value: f64) -> f64 {
    if ln_value >= f64::MAX.ln() {
        f64::MAX
    } else {
        ln_value.exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(canary: (u64, u64), stable: (u64, u64)) -> Pair {
        let tally = |(events, trials)| Tally { events, trials };
        Pair {
            canary: RateEvidence::new(Prior::rates(), tally(canary)),
            stable: RateEvidence::new(Prior::rates(), tally(stable)),
        }
    }

    /// The profiled infimum, found by brute force over a fine grid of
    /// stable rates (and the canary's best rate for each).
    fn brute_force(pair: &Pair, limit: Limit, within: bool) -> f64 {
        let a_hat = pair.canary.estimate();
        (0..=200_000)
            .map(|i| f64::from(i) / 200_000.0)
            .filter(|&b| limit.at(b) <= 1.0 || within)
            .map(|b| {
                let a = if within {
                    limit.at(b).clamp(0.0, a_hat)
                } else {
                    limit.at(b).clamp(a_hat, 1.0)
                };
                pair.stable.ln_evidence(b) + pair.canary.ln_evidence(a)
            })
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn profiles_match_brute_force() {
        let tolerances = [
            Tolerance {
                absolute: 0.001,
                relative: 0.0,
            },
            Tolerance {
                absolute: 0.005,
                relative: 0.2,
            },
            Tolerance {
                absolute: 0.0,
                relative: 0.5,
            },
        ];
        let cases = [
            ((30, 1_000), (90, 9_000)),
            ((100, 1_000), (18, 1_800)),
            ((2, 1_000), (50, 5_000)),
            ((0, 500), (3, 4_000)),
            ((20, 20), (2, 180)),
        ];
        for tolerance in tolerances {
            for (canary, stable) in cases {
                let pair = pair(canary, stable);
                let limit = Limit::new(tolerance, 0.0);
                for within in [true, false] {
                    let fast = if within {
                        pair.ln_against_within(limit)
                    } else {
                        pair.ln_against_worse(limit)
                    };
                    let slow = brute_force(&pair, limit, within);
                    assert!(
                        fast <= slow + 1e-6 && fast >= slow - 1e-2,
                        "{canary:?} {stable:?} {tolerance:?} within={within}: {fast} vs {slow}"
                    );
                }
            }
        }
    }
}
