//! What the judge concludes from given counts.

mod support;

use canary_judge::{Judge, JudgeSettings, Tolerance, Verdict};
use proptest::prelude::*;
use support::{counters, timed};

fn judge() -> Judge {
    Judge::new(JudgeSettings::default()).expect("defaults are valid")
}

#[test]
fn no_data_is_not_enough_data() {
    let judge = judge();
    let assessment = judge.assess();
    assert_eq!(assessment.verdict, Verdict::NotEnoughData);
    assert_eq!(assessment.errors.verdict, Verdict::NotEnoughData);
    assert_eq!(assessment.latency.verdict, Verdict::NotEnoughData);
    assert!(assessment.latency.deciding.is_none());
    assert_eq!(assessment.looks, 0);
}

#[test]
fn a_canary_failing_everything_fails_on_its_first_requests() {
    let mut judge = judge();
    judge.observe(&counters((180, 2), (20, 20))).expect("valid");
    let assessment = judge.assess();
    assert_eq!(assessment.errors.verdict, Verdict::Failed);
    assert_eq!(assessment.verdict, Verdict::Failed);
    assert!(assessment.errors.failure_evidence.value >= assessment.errors.failure_evidence.needed);
    assert!(assessment.errors.excess.lower > 0.0);
    assert!(assessment.errors.difference.lower > 0.5);
    assert_eq!(judge.verdicts().overall, Verdict::Failed);
}

#[test]
fn errors_fail_only_once_the_evidence_is_in() {
    let mut judge = judge();
    // 3% against 1%: a handful of requests say nothing yet...
    judge.observe(&counters((900, 9), (100, 3))).expect("valid");
    assert_eq!(judge.assess().errors.verdict, Verdict::NotEnoughData);
    // ...thousands do.
    for _ in 0..10 {
        judge
            .observe(&counters((9_000, 90), (1_000, 30)))
            .expect("valid");
    }
    let errors = judge.assess().errors;
    assert_eq!(errors.verdict, Verdict::Failed);
    assert!((errors.difference.estimate - 0.02).abs() < 1e-9);
}

#[test]
fn a_trivial_difference_ends_successful() {
    let settings = JudgeSettings {
        errors: Tolerance {
            absolute: 0.005,
            relative: 0.0,
        },
        ..JudgeSettings::default()
    };
    let mut judge = Judge::new(settings).expect("valid");
    // 1.05% against 1%, well inside half a point.
    for _ in 0..100 {
        judge
            .observe(&counters((10_000, 100), (10_000, 105)))
            .expect("valid");
    }
    let errors = judge.assess().errors;
    assert_eq!(errors.verdict, Verdict::Successful);
    assert!(errors.excess.upper < 0.0);
    assert!(errors.success_evidence.value >= errors.success_evidence.needed);
}

#[test]
fn without_stable_data_nothing_can_fail() {
    let mut judge = judge();
    // All traffic on the canary, from the start: nothing to compare with.
    judge
        .observe(&counters((0, 0), (10_000, 10_000)))
        .expect("valid");
    assert_ne!(judge.assess().errors.verdict, Verdict::Failed);
}

#[test]
fn at_full_weight_the_canary_is_compared_with_stable_s_past() {
    let mut judge = judge();
    judge
        .observe(&counters((20_000, 200), (2_000, 20)))
        .expect("valid");
    assert_ne!(judge.assess().verdict, Verdict::Failed);
    // The canary now takes everything and fails 10%: stable's evidence
    // from before still stands.
    judge
        .observe(&counters((0, 0), (2_000, 400)))
        .expect("valid");
    assert_eq!(judge.assess().errors.verdict, Verdict::Failed);
}

#[test]
fn latency_fails_on_a_shift_and_says_where() {
    let mut judge = judge();
    // Stable mostly under 25 ms; the canary mostly between 50 and 100 ms.
    judge
        .observe(&timed([300, 500, 150, 40, 10], [0, 5, 20, 60, 15]))
        .expect("valid");
    let latency = judge.assess().latency;
    assert_eq!(latency.verdict, Verdict::Failed);
    let deciding = latency.deciding.expect("a deciding bound");
    assert_eq!(deciding.comparison.verdict, Verdict::Failed);
    assert!(deciding.bound_micros <= 50_000.0);
    assert_eq!(latency.bounds.len(), support::BOUNDS.len());
}

#[test]
fn the_same_latency_ends_successful() {
    let mut judge = judge();
    for _ in 0..40 {
        judge
            .observe(&timed([300, 500, 150, 40, 10], [300, 500, 150, 40, 10]))
            .expect("valid");
    }
    let latency = judge.assess().latency;
    assert_eq!(latency.verdict, Verdict::Successful);
    assert!(latency
        .bounds
        .iter()
        .all(|b| b.comparison.excess.upper < 0.0));
}

#[test]
fn the_assessment_and_the_quick_verdicts_agree() {
    let mut judge = judge();
    judge
        .observe(&counters((1_800, 18), (200, 30)))
        .expect("valid");
    judge
        .observe(&timed([300, 500, 150, 40, 10], [250, 500, 180, 50, 20]))
        .expect("valid");
    let (quick, full) = (judge.verdicts(), judge.assess());
    assert_eq!(quick.overall, full.verdict);
    assert_eq!(quick.errors, full.errors.verdict);
    assert_eq!(quick.latency, full.latency.verdict);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The verdict, the evidence and the bounds tell one story.
    #[test]
    fn verdict_evidence_and_bounds_agree(
        stable_requests in 0u64..50_000,
        stable_rate in 0.0f64..0.2,
        canary_requests in 0u64..5_000,
        canary_rate in 0.0f64..1.0,
    ) {
        let stable_errors = (stable_requests as f64 * stable_rate) as u64;
        let canary_errors = (canary_requests as f64 * canary_rate) as u64;
        let mut judge = judge();
        judge.observe(&counters((stable_requests, stable_errors), (canary_requests, canary_errors))).expect("valid");
        let errors = judge.assess().errors;
        let fails = errors.failure_evidence.value >= errors.failure_evidence.needed;
        let succeeds = errors.success_evidence.value >= errors.success_evidence.needed;
        prop_assert_eq!(errors.verdict == Verdict::Failed, fails);
        prop_assert_eq!(errors.verdict == Verdict::Successful, succeeds && !fails);
        prop_assert!(!(fails && succeeds));
        // The bounds are found by bisection to 2^-24 of their range.
        let slack = 1e-6;
        if fails { prop_assert!(errors.excess.lower > -slack); }
        if errors.excess.lower > slack { prop_assert!(fails); }
        if succeeds { prop_assert!(errors.excess.upper < slack); }
        if errors.excess.upper < -slack { prop_assert!(succeeds); }
        prop_assert!(errors.difference.lower <= errors.difference.upper + slack);
        if canary_requests > 0 && stable_requests > 0 {
            prop_assert!(errors.difference.lower <= errors.difference.estimate + slack);
            prop_assert!(errors.difference.estimate <= errors.difference.upper + slack);
        }
    }

    /// More canary errors never undo a failure.
    #[test]
    fn more_canary_errors_never_help_the_canary(
        stable_requests in 1u64..20_000,
        stable_errors in 0u64..200,
        canary_requests in 1u64..2_000,
        canary_errors in 0u64..400,
    ) {
        let stable_errors = stable_errors.min(stable_requests);
        let canary_errors = canary_errors.min(canary_requests - 1);
        let verdict = |errors| {
            let mut judge = judge();
            judge.observe(&counters((stable_requests, stable_errors), (canary_requests, errors))).expect("valid");
            judge.verdicts().errors
        };
        if verdict(canary_errors) == Verdict::Failed {
            prop_assert_eq!(verdict(canary_errors + 1), Verdict::Failed);
        }
    }
}
