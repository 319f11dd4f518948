//! What the judge accepts and refuses.

mod support;

use canary_judge::{Buckets, Judge, JudgeSettings, LookError, Side, Verdict};
use support::{buckets, counters, timed, BOUNDS};

fn judge() -> Judge {
    Judge::new(JudgeSettings::default()).expect("defaults are valid")
}

#[test]
fn a_look_without_new_data_changes_nothing() {
    let mut judge = judge();
    judge.observe(&counters((100, 1), (10, 0))).expect("valid");
    let before = judge.clone();
    judge.observe(&counters((0, 0), (0, 0))).expect("valid");
    judge.observe(&timed([0; 5], [0; 5])).expect("valid");
    // The empty histogram only teaches the bounds.
    assert_eq!(judge.stable().requests, before.stable().requests);
    assert_eq!(judge.assess().looks, before.assess().looks + 1);
    let settled = judge.clone();
    judge.observe(&timed([0; 5], [0; 5])).expect("valid");
    assert_eq!(judge, settled);
}

#[test]
fn counts_add_up_across_looks() {
    let mut judge = judge();
    judge.observe(&counters((100, 1), (10, 2))).expect("valid");
    judge.observe(&counters((50, 0), (5, 1))).expect("valid");
    judge
        .observe(&timed([1, 2, 3, 4, 5], [0, 1, 0, 0, 0]))
        .expect("valid");
    judge
        .observe(&timed([1, 0, 0, 0, 0], [0, 0, 0, 0, 1]))
        .expect("valid");
    assert_eq!((judge.stable().requests, judge.stable().errors), (150, 1));
    assert_eq!((judge.canary().requests, judge.canary().errors), (15, 3));
    assert_eq!(judge.stable().at_or_below, vec![2, 4, 7, 11]);
    assert_eq!(judge.stable().timed, 16);
    assert_eq!(judge.canary().timed, 2);
    assert_eq!(judge.bounds(), &BOUNDS);
    let errors = judge.assess().errors;
    assert_eq!((errors.canary.events, errors.canary.trials), (3, 15));
}

#[test]
fn an_error_whose_request_came_before_the_first_look_counts_as_a_request() {
    let mut judge = judge();
    judge.observe(&counters((0, 0), (0, 1))).expect("valid");
    let errors = judge.assess().errors;
    assert_eq!((errors.canary.events, errors.canary.trials), (1, 1));
}

fn refused(look: canary_judge::Look) -> LookError {
    let mut judge = judge();
    judge.observe(&counters((10, 0), (1, 0))).expect("valid");
    let before = judge.clone();
    let error = judge.observe(&look).expect_err("refused");
    assert_eq!(judge, before, "a refused look changes nothing");
    assert!(!error.to_string().is_empty());
    error
}

fn with_canary_histogram(latency: Buckets) -> canary_judge::Look {
    let mut look = counters((5, 0), (5, 0));
    look.canary.latency = Some(latency);
    look
}

#[test]
fn bad_histograms_are_refused_with_the_reason() {
    let no_bounds = Buckets {
        bounds: vec![],
        cumulative: vec![],
        count: 0,
    };
    assert_eq!(
        refused(with_canary_histogram(no_bounds)),
        LookError::NoBounds { side: Side::Canary }
    );

    let mut short = buckets([1, 1, 1, 1, 1]);
    short.cumulative.pop();
    assert!(matches!(
        refused(with_canary_histogram(short)),
        LookError::CountMismatch {
            bounds: 4,
            counts: 3,
            ..
        }
    ));

    let mut unordered = buckets([1, 1, 1, 1, 1]);
    unordered.bounds.swap(1, 2);
    assert!(matches!(
        refused(with_canary_histogram(unordered)),
        LookError::BadBound { index: 2, .. }
    ));

    let mut negative = buckets([1, 1, 1, 1, 1]);
    negative.bounds[0] = -1.0;
    assert!(matches!(
        refused(with_canary_histogram(negative)),
        LookError::BadBound { index: 0, .. }
    ));

    let mut not_cumulative = buckets([1, 1, 1, 1, 1]);
    not_cumulative.cumulative[2] = 0;
    assert!(matches!(
        refused(with_canary_histogram(not_cumulative)),
        LookError::NotCumulative { .. }
    ));

    let mut over_total = buckets([1, 1, 1, 1, 1]);
    over_total.count = 3;
    assert!(matches!(
        refused(with_canary_histogram(over_total)),
        LookError::NotCumulative { .. }
    ));
}

#[test]
fn bounds_may_not_change() {
    let mut judge = judge();
    judge.observe(&timed([1; 5], [1; 5])).expect("valid");
    let mut other = buckets([1; 5]);
    other.bounds[3] = 250_000.0;
    let mut look = counters((0, 0), (0, 0));
    look.stable.latency = Some(other);
    assert!(matches!(
        judge.observe(&look),
        Err(LookError::BoundsChanged {
            side: Side::Stable,
            ..
        })
    ));
    // Nor may the two versions disagree in one look.
    let mut fresh = self::judge();
    let mut look = timed([1; 5], [1; 5]);
    if let Some(latency) = &mut look.canary.latency {
        latency.bounds[3] = 250_000.0;
    }
    assert!(matches!(
        fresh.observe(&look),
        Err(LookError::BoundsChanged {
            side: Side::Canary,
            ..
        })
    ));
    assert_eq!(fresh.assess().latency.verdict, Verdict::NotEnoughData);
}

#[test]
fn overflowing_counts_are_refused() {
    let mut judge = judge();
    judge
        .observe(&counters((u64::MAX, 0), (1, 0)))
        .expect("valid");
    assert_eq!(
        judge.observe(&counters((1, 0), (0, 0))),
        Err(LookError::Overflow { side: Side::Stable })
    );
}

#[test]
fn settings_out_of_range_are_refused() {
    use canary_judge::SettingsError;
    let bad = |settings: JudgeSettings| Judge::new(settings).expect_err("refused");
    let defaults = JudgeSettings::default();
    assert!(matches!(
        bad(JudgeSettings {
            alpha: 0.0,
            ..defaults
        }),
        SettingsError::NotAProbability { field: "alpha", .. }
    ));
    assert!(matches!(
        bad(JudgeSettings {
            error_share: 1.0,
            ..defaults
        }),
        SettingsError::NotAProbability {
            field: "errorShare",
            ..
        }
    ));
    assert!(matches!(
        bad(JudgeSettings {
            success_risk: 0.001,
            ..defaults
        }),
        SettingsError::SuccessRiskBelowAlpha { .. }
    ));
    let mut negative = defaults;
    negative.latency.relative = -0.1;
    assert!(matches!(
        bad(negative),
        SettingsError::BadTolerance {
            field: "latency.relative",
            ..
        }
    ));
}
