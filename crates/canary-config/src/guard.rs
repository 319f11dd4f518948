//! The guard: a sequential test, run in the proxy, that sends a route
//! entry's traffic to stable at once when its canary fails far more often
//! than stable does.
//!
//! The statistic is a one-sided CUSUM of the log-likelihood ratio of the
//! canary's outcomes, pooled across the Envoy's workers:
//!
//! - null: the canary fails with probability `p0`, the larger of the
//!   entry's baseline error rate (5% by default) and stable's recent
//!   failure rate (see [`GuardRule::null_index`]);
//! - alternative: it fails with `p1 = p0 + SHIFT·(1 − p0)`, i.e. on top of
//!   stable's failures it fails 70% of the requests stable serves;
//! - each canary outcome adds `ln(p1/p0)` (failure) or `ln(1 − SHIFT)`
//!   (success) to the statistic, which never goes below zero; the guard
//!   trips when it reaches `h` ([`THRESHOLD`]).
//!
//! Why this is safe: while the canary fails no more often than `p0`, every
//! run of the statistic from any starting point is a nonnegative
//! supermartingale of mean at most 1 (in `e^S`), so by Ville's inequality
//! it reaches `e^h` with probability at most `e^-h`; a union over the `n`
//! possible starting points bounds a false trip in `n` canary requests by
//! `n·e^-h` ([`false_trip_bound`]). `p0` never falls below the baseline,
//! so the bound holds for any two versions that fail at most the baseline
//! rate, whatever stable's window shows. The statistic is kept in whole
//! thousandths of a nat, rounding every failure's evidence down and every
//! success's up, so the kept value never exceeds the exact one and the
//! bound carries over.
//!
//! What it catches: with `p0` at the 5% baseline a canary failure adds
//! 2.66 nats and a success takes 1.20 away, so a canary that fails every
//! request trips it on its 9th failure ([`GuardRule::hard_failure_requests`]),
//! and a canary failing less than about 31% of its requests never does
//! (that is the analysis's job). When stable fails too (a shared
//! dependency down), `p0` follows stable up and a canary failure adds
//! little or nothing.
//!
//! The filter keeps one [`Evidence`] per route entry, generation and
//! canary version in Envoy's shared data (so every worker adds to it and
//! sees a trip), and one [`StableBatch`] per worker.

use crate::quote::quoted;
use crate::weight::{Weight, BUCKETS};

/// Stable outcomes in the long window (one `u32` of bits, newest first).
pub const WINDOW: u32 = 32;
/// Stable outcomes in the short window, which lets `p0` follow a shared
/// outage within two stable failures.
pub const RECENT: u32 = 4;
/// A window raises `p0` only when it holds at least this many failures: a
/// single stable failure is not yet an outage.
pub const MIN_FAILURES: u32 = 2;
/// The alternative's shift: the share of the requests stable serves that
/// the canary is supposed to fail as well.
pub const SHIFT: f64 = 0.7;
/// The threshold `h`, in thousandths of a nat (23.5 nats).
pub const THRESHOLD: u32 = 23_500;
/// Canary requests one proxy may see in one generation while the false-trip
/// bound stays at or below 0.1% (`0.001·e^h`, about 16 million).
pub const ASSUMED_MAX_CANARY_REQUESTS: u64 = 16_000_000;

/// Thousandths of a nat per nat.
const MILLI: f64 = 1000.0;

/// The bound on a false trip while the canary fails no more often than
/// the null allows: `n·e^-h` for `n` canary requests, at most 1.
pub fn false_trip_bound(canary_requests: u64) -> f64 {
    false_trip_bound_at(THRESHOLD, canary_requests)
}

/// [`false_trip_bound`] for another threshold (thousandths of a nat).
pub fn false_trip_bound_at(threshold: u32, canary_requests: u64) -> f64 {
    let h = f64::from(threshold) / MILLI;
    (canary_requests as f64 * (-h).exp()).min(1.0)
}

/// The rule for one route entry: the evidence each outcome adds, by null
/// rate, precomputed when the configuration is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRule {
    /// The baseline error rate: `p0` never goes below it.
    baseline: Weight,
    /// Evidence of one canary failure, in thousandths of a nat, by
    /// [`GuardRule::null_index`].
    failure: [u32; WINDOW as usize + 1],
    /// Evidence one canary success takes away, in thousandths of a nat.
    success: u32,
    /// The threshold, in thousandths of a nat.
    threshold: u32,
}

impl GuardRule {
    /// The rule with the shipped threshold and a baseline error rate.
    pub fn new(baseline: Weight) -> GuardRule {
        GuardRule::with_threshold(baseline, THRESHOLD)
    }

    /// The rule with another threshold (thousandths of a nat), for studying
    /// the bound where trips are frequent enough to count.
    pub fn with_threshold(baseline: Weight, threshold: u32) -> GuardRule {
        let floor = f64::from(baseline.basis_points()) / f64::from(BUCKETS);
        let mut failure = [0u32; WINDOW as usize + 1];
        for (m, evidence) in failure.iter_mut().enumerate() {
            let p0 = floor.max(m as f64 / f64::from(WINDOW));
            // ln(p1/p0), rounded down; p0 = 1 (or a zero floor, refused by
            // validation) gives no evidence.
            *evidence = if p0 >= 1.0 || p0 <= 0.0 {
                0
            } else {
                (MILLI * (1.0 + SHIFT * (1.0 - p0) / p0).ln()).floor() as u32
            };
        }
        GuardRule {
            baseline,
            failure,
            success: (MILLI * -(1.0 - SHIFT).ln()).ceil() as u32,
            threshold,
        }
    }

    /// The baseline error rate.
    pub fn baseline(&self) -> Weight {
        self.baseline
    }

    /// The threshold, in thousandths of a nat.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// Which null rate stable's recent outcomes call for, as `m` in
    /// `p0 = max(baseline, m/32)`: stable's failure share over its last 32
    /// outcomes, or over its last 4, whichever is larger, each counted only
    /// when it holds at least two failures.
    pub fn null_index(stable_outcomes: u32) -> usize {
        let long = stable_outcomes.count_ones();
        let short = (stable_outcomes & ((1 << RECENT) - 1)).count_ones();
        let mut m = 0;
        if long >= MIN_FAILURES {
            m = long;
        }
        if short >= MIN_FAILURES {
            m = m.max(short * (WINDOW / RECENT));
        }
        m as usize
    }

    /// `p0` for a null index, in basis points.
    pub fn null_rate(&self, index: usize) -> Weight {
        let window = u32::from(BUCKETS) * index.min(WINDOW as usize) as u32 / WINDOW;
        let bp = u16::try_from(window).unwrap_or(BUCKETS);
        Weight::from_basis_points(bp.max(self.baseline.basis_points())).unwrap_or(Weight::FULL)
    }

    /// Evidence of one canary failure at a null index, in thousandths of a
    /// nat.
    pub fn failure_evidence(&self, index: usize) -> u32 {
        self.failure.get(index).copied().unwrap_or(0)
    }

    /// Evidence one canary success takes away, in thousandths of a nat.
    pub fn success_evidence(&self) -> u32 {
        self.success
    }

    /// Canary failures in a row that trip the guard from a statistic of
    /// zero while stable is healthy (`p0` at the baseline).
    pub fn hard_failure_requests(&self) -> u32 {
        self.threshold.div_ceil(self.failure_evidence(0).max(1))
    }
}

/// What the guard knows about one route entry's canary in one Envoy,
/// shared by its workers. Stored in Envoy's shared data as
/// [`Evidence::encode`]d bytes under [`shared_key`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Whether the guard has tripped. Once set, it stays set for this key.
    pub tripped: bool,
    /// The CUSUM statistic, in thousandths of a nat.
    pub statistic: u32,
    /// Stable's last 32 outcomes across workers, newest in bit 0, a set
    /// bit for a failure (zeros until 32 have been seen).
    pub stable_outcomes: u32,
    /// Canary requests that ended since the key was created.
    pub canary_requests: u32,
    /// Of those, the ones that failed.
    pub canary_failures: u32,
    /// Canary failures in a row, up to the last canary outcome.
    pub failure_run: u32,
    /// `p0` at the last canary outcome, in basis points.
    pub null_rate_bp: u16,
}

/// Bytes of an encoded [`Evidence`].
pub const ENCODED_LEN: usize = 24;
/// First byte of an encoded [`Evidence`]: the layout's version.
const LAYOUT: u8 = 1;

impl Evidence {
    /// Adds a worker's stable outcomes (oldest first within the batch, as
    /// they were pushed) to the pooled window.
    pub fn add_stable(&mut self, batch: StableBatch) {
        if batch.count >= WINDOW as u8 {
            self.stable_outcomes = batch.bits;
        } else if batch.count > 0 {
            let mask = (1u32 << batch.count) - 1;
            self.stable_outcomes = (self.stable_outcomes << batch.count) | (batch.bits & mask);
        }
    }

    /// Adds one canary outcome. Returns whether this outcome tripped the
    /// guard (true once per key).
    pub fn add_canary(&mut self, rule: &GuardRule, failed: bool) -> bool {
        if self.tripped {
            return false;
        }
        let index = GuardRule::null_index(self.stable_outcomes);
        self.null_rate_bp = rule.null_rate(index).basis_points();
        self.canary_requests = self.canary_requests.saturating_add(1);
        if failed {
            self.canary_failures = self.canary_failures.saturating_add(1);
            self.failure_run = self.failure_run.saturating_add(1);
            self.statistic = self.statistic.saturating_add(rule.failure_evidence(index));
        } else {
            self.failure_run = 0;
            self.statistic = self.statistic.saturating_sub(rule.success_evidence());
        }
        self.tripped = self.statistic >= rule.threshold();
        self.tripped
    }

    /// The bytes kept in Envoy's shared data.
    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        let fields = [
            self.statistic,
            self.stable_outcomes,
            self.canary_requests,
            self.canary_failures,
            self.failure_run,
        ];
        out[0] = LAYOUT;
        out[1] = u8::from(self.tripped);
        out[2..4].copy_from_slice(&self.null_rate_bp.to_le_bytes());
        for (chunk, field) in out[4..].chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&field.to_le_bytes());
        }
        out
    }

    /// Reads [`Evidence::encode`]d bytes; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Evidence> {
        if bytes.len() != ENCODED_LEN || bytes.first() != Some(&LAYOUT) {
            return None;
        }
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
        };
        Some(Evidence {
            tripped: *bytes.get(1)? != 0,
            null_rate_bp: u16::from_le_bytes(bytes.get(2..4)?.try_into().ok()?),
            statistic: word(4)?,
            stable_outcomes: word(8)?,
            canary_requests: word(12)?,
            canary_failures: word(16)?,
            failure_run: word(20)?,
        })
    }
}

/// Stable outcomes one worker saw since it last added to the shared
/// [`Evidence`] (it adds them with its next canary outcome, so stable's
/// requests cost no shared-data call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StableBatch {
    bits: u32,
    count: u8,
}

impl StableBatch {
    /// Records one stable outcome.
    pub fn push(&mut self, failed: bool) {
        self.bits = (self.bits << 1) | u32::from(failed);
        self.count = self.count.saturating_add(1).min(WINDOW as u8);
    }

    /// Whether no outcome was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// The shared-data key of a route entry's guard in one generation with one
/// canary version: a new generation or canary starts from fresh evidence.
/// Route and version names hold no dots, so the key is unambiguous.
pub fn shared_key(route: &str, generation: u64, canary: &str) -> String {
    format!("canary.guard.{route}.{generation}.{canary}")
}

/// The log line for a trip, with the evidence.
pub fn trip_message(
    route: &str,
    stable: &str,
    canary: &str,
    generation: u64,
    rule: &GuardRule,
    evidence: &Evidence,
) -> String {
    let nats = |milli: u32| format!("{}.{:02}", milli / 1000, milli % 1000 / 10);
    let null = Weight::from_basis_points(evidence.null_rate_bp).unwrap_or(Weight::FULL);
    format!(
        "guard tripped on route {route}: canary {canary} (generation {generation}) failed {run} requests in a row, \
         {failures} of {requests} since the generation started; evidence {statistic} nats >= {threshold} \
         against a null error rate of {null} (baseline {baseline}, stable's last 32 outcomes: {stable_failures} failed); \
         all of the route's traffic goes to {stable} until the generation or the canary version changes",
        route = quoted(route),
        canary = quoted(canary),
        stable = quoted(stable),
        run = evidence.failure_run,
        failures = evidence.canary_failures,
        requests = evidence.canary_requests,
        statistic = nats(evidence.statistic),
        threshold = nats(rule.threshold()),
        baseline = rule.baseline(),
        stable_failures = evidence.stable_outcomes.count_ones(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> GuardRule {
        GuardRule::new(crate::schema::DEFAULT_BASELINE_ERROR)
    }

    #[test]
    fn evidence_per_outcome_at_the_default_baseline() {
        let rule = rule();
        // ln(1 + 0.7·0.95/0.05) = ln 14.3 = 2.6603; -ln 0.3 = 1.2040.
        assert_eq!(rule.failure_evidence(0), 2_660);
        assert_eq!(rule.success_evidence(), 1_204);
        assert_eq!(rule.hard_failure_requests(), 9);
        // Stable failing everything: a canary failure is no evidence.
        assert_eq!(rule.failure_evidence(32), 0);
        // Evidence falls as the null rises.
        for m in 1..=32 {
            assert!(rule.failure_evidence(m) <= rule.failure_evidence(m - 1));
        }
    }

    #[test]
    fn the_null_follows_stable_only_with_two_failures() {
        assert_eq!(GuardRule::null_index(0), 0);
        assert_eq!(
            GuardRule::null_index(0b1),
            0,
            "one failure is not an outage"
        );
        assert_eq!(GuardRule::null_index(0b11), 16, "2 of the last 4");
        assert_eq!(GuardRule::null_index(0b1111), 32, "4 of the last 4");
        assert_eq!(GuardRule::null_index(0b1000_0001 << 8), 2, "2 of 32");
        assert_eq!(GuardRule::null_index(u32::MAX), 32);
        let rule = rule();
        assert_eq!(rule.null_rate(0).basis_points(), 500, "the baseline");
        assert_eq!(rule.null_rate(16).basis_points(), 5_000);
        assert_eq!(rule.null_rate(32), Weight::FULL);
    }

    #[test]
    fn nine_failures_in_a_row_trip_it_once() {
        let rule = rule();
        let mut evidence = Evidence::default();
        for i in 1..=8 {
            assert!(!evidence.add_canary(&rule, true), "tripped after {i}");
        }
        assert!(evidence.add_canary(&rule, true));
        assert!(evidence.tripped);
        assert_eq!(evidence.failure_run, 9);
        // It stays tripped, and later outcomes change nothing.
        let tripped = evidence;
        assert!(!evidence.add_canary(&rule, false));
        assert_eq!(evidence, tripped);
    }

    #[test]
    fn successes_wear_the_evidence_down_to_zero() {
        let rule = rule();
        let mut evidence = Evidence::default();
        evidence.add_canary(&rule, true);
        evidence.add_canary(&rule, false);
        assert_eq!(evidence.statistic, 2_660 - 1_204);
        evidence.add_canary(&rule, false);
        evidence.add_canary(&rule, false);
        assert_eq!(evidence.statistic, 0);
        assert_eq!(evidence.failure_run, 0);
        assert_eq!((evidence.canary_requests, evidence.canary_failures), (4, 1));
    }

    #[test]
    fn a_shared_outage_gives_little_evidence() {
        let rule = rule();
        let mut evidence = Evidence::default();
        let mut stable = StableBatch::default();
        // Stable fails its last four requests too.
        for _ in 0..4 {
            stable.push(true);
        }
        evidence.add_stable(stable);
        for _ in 0..1_000 {
            evidence.add_canary(&rule, true);
        }
        assert!(!evidence.tripped);
        assert_eq!(evidence.statistic, 0);
    }

    #[test]
    fn stable_batches_shift_into_the_pooled_window() {
        let mut evidence = Evidence::default();
        let mut batch = StableBatch::default();
        batch.push(true);
        batch.push(false);
        evidence.add_stable(batch);
        assert_eq!(evidence.stable_outcomes, 0b10);
        let mut batch = StableBatch::default();
        batch.push(true);
        evidence.add_stable(batch);
        assert_eq!(evidence.stable_outcomes, 0b101);
        // A full batch replaces the window.
        let mut batch = StableBatch::default();
        for i in 0..40 {
            batch.push(i % 2 == 0);
        }
        evidence.add_stable(batch);
        assert_eq!(evidence.stable_outcomes.count_ones(), 16);
        evidence.add_stable(StableBatch::default());
        assert_eq!(evidence.stable_outcomes.count_ones(), 16);
    }

    #[test]
    fn encoding_round_trips_and_refuses_other_bytes() {
        let evidence = Evidence {
            tripped: true,
            statistic: 23_940,
            stable_outcomes: 0xdead_beef,
            canary_requests: 70_000,
            canary_failures: 12,
            failure_run: 9,
            null_rate_bp: 500,
        };
        assert_eq!(Evidence::decode(&evidence.encode()), Some(evidence));
        assert_eq!(Evidence::decode(&[]), None);
        assert_eq!(Evidence::decode(&[2; ENCODED_LEN]), None);
        assert_eq!(Evidence::decode(&evidence.encode()[..10]), None);
    }

    #[test]
    fn the_bound_and_its_assumption() {
        let bound = false_trip_bound(ASSUMED_MAX_CANARY_REQUESTS);
        assert!(bound <= 0.001, "{bound}");
        assert!(false_trip_bound(2 * ASSUMED_MAX_CANARY_REQUESTS) > 0.001);
        assert_eq!(false_trip_bound(u64::MAX), 1.0);
    }

    #[test]
    fn the_trip_message_carries_the_evidence() {
        let rule = rule();
        let mut evidence = Evidence::default();
        while !evidence.add_canary(&rule, true) {}
        let line = trip_message("web", "v1", "v2", 7, &rule, &evidence);
        for needle in [
            "route \"web\"",
            "canary \"v2\" (generation 7)",
            "failed 9 requests in a row",
            "9 of 9",
            "23.94 nats >= 23.50",
            "null error rate of 5%",
            "goes to \"v1\"",
        ] {
            assert!(line.contains(needle), "{needle:?} not in {line}");
        }
        assert_eq!(shared_key("web", 7, "v2"), "canary.guard.web.7.v2");
    }
}
