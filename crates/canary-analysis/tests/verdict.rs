//! A metric's verdict from its counters (Argo's `runMeasurements` and
//! `assessMetricStatus`), including the defaults and strict comparisons.

mod support;

use canary_analysis::{AnalysisPhase, MeasurementPhase, MeasurementResult};
use support::{at, metric_phase, one_metric_run, record, value};

const PASS: f64 = 1.0;
const FAIL: f64 = 0.0;

fn run_with(fields: &str) -> canary_analysis::AnalysisRun {
    one_metric_run(&format!(
        "    interval: 10s\n{fields}    successCondition: result >= 0.5\n"
    ))
}

#[test]
fn failure_limit_is_strict_and_the_seed_template_fails_only_when_all_three_fail() {
    // interval 15s, count 3, failureLimit 2: two failures are tolerated.
    let mut run = run_with("    count: 3\n    failureLimit: 2\n");
    record(&mut run, 0, value(FAIL));
    record(&mut run, 10, value(FAIL));
    assert_eq!(
        run.phase(),
        AnalysisPhase::Running,
        "failed (2) is not > failureLimit (2)"
    );
    record(&mut run, 20, value(PASS));
    assert_eq!(run.phase(), AnalysisPhase::Successful);

    let mut run = run_with("    count: 3\n    failureLimit: 2\n");
    for secs in [0, 10, 20] {
        record(&mut run, secs, value(FAIL));
    }
    assert_eq!(
        run.phase(),
        AnalysisPhase::Failed,
        "failed (3) > failureLimit (2)"
    );
    let message = run.message().unwrap_or_default();
    assert!(
        message.contains("failed (3) > failureLimit (2)"),
        "{message}"
    );
}

#[test]
fn failure_limit_defaults_to_zero() {
    let mut run = run_with("    count: 5\n");
    record(&mut run, 0, value(FAIL));
    assert_eq!(run.phase(), AnalysisPhase::Failed);
}

#[test]
fn failure_limit_minus_one_turns_failing_off() {
    let mut run = run_with("    count: 6\n    failureLimit: -1\n    consecutiveSuccessLimit: 2\n");
    for secs in [0, 10, 20, 30] {
        record(&mut run, secs, value(FAIL));
    }
    assert_eq!(run.phase(), AnalysisPhase::Running, "4 failures, no limit");
    record(&mut run, 40, value(PASS));
    record(&mut run, 50, value(PASS));
    assert_eq!(run.phase(), AnalysisPhase::Successful);
}

#[test]
fn errors_do_not_count_and_any_other_result_resets_the_error_streak() {
    let mut run = run_with("    count: 2\n");
    record(&mut run, 0, MeasurementResult::error("timeout"));
    record(&mut run, 10, MeasurementResult::error("timeout"));
    let state = &run.state().metrics[0];
    assert_eq!(
        (state.count, state.error, state.consecutive_error),
        (0, 2, 2)
    );
    record(&mut run, 20, value(PASS));
    let state = &run.state().metrics[0];
    assert_eq!(
        (state.count, state.error, state.consecutive_error),
        (1, 2, 0)
    );
    assert_eq!(
        run.phase(),
        AnalysisPhase::Running,
        "count 2 not reached: errors did not count"
    );
}

#[test]
fn consecutive_error_limit_defaults_to_four_and_is_strict() {
    let mut run = run_with("");
    for i in 0..4 {
        record(&mut run, i * 10, MeasurementResult::error("unreachable"));
    }
    assert_eq!(run.phase(), AnalysisPhase::Running, "4 errors are not > 4");
    record(&mut run, 40, MeasurementResult::error("unreachable"));
    assert_eq!(run.phase(), AnalysisPhase::Error);
    let message = run.message().unwrap_or_default();
    assert!(
        message.contains("consecutiveErrors (5) > consecutiveErrorLimit (4)"),
        "{message}"
    );
}

#[test]
fn consecutive_error_limit_can_be_set() {
    let mut run = run_with("    consecutiveErrorLimit: 1\n");
    record(&mut run, 0, MeasurementResult::error("x"));
    assert_eq!(run.phase(), AnalysisPhase::Running);
    record(&mut run, 10, MeasurementResult::error("x"));
    assert_eq!(run.phase(), AnalysisPhase::Error);
}

#[test]
fn an_evaluation_error_is_an_error_measurement() {
    let mut run = one_metric_run("    interval: 10s\n    successCondition: result[0] >= 0.5\n");
    let phase = run
        .record(
            at(0),
            "m",
            &MeasurementResult::value(canary_analysis::MetricValue::String("x".into())),
        )
        .expect("recorded");
    assert_eq!(phase, MeasurementPhase::Error);
    assert_eq!(run.state().metrics[0].count, 0);
}

#[test]
fn inconclusive_limit_defaults_to_zero_and_is_strict() {
    let fields = "    interval: 10s\n    successCondition: result >= 0.9\n    failureCondition: result < 0.5\n";
    let mut run = one_metric_run(fields);
    record(&mut run, 0, value(0.7));
    assert_eq!(run.phase(), AnalysisPhase::Inconclusive);

    let mut run = one_metric_run(&format!("{fields}    inconclusiveLimit: 1\n"));
    record(&mut run, 0, value(0.7));
    assert_eq!(
        run.phase(),
        AnalysisPhase::Running,
        "inconclusive (1) is not > 1"
    );
    record(&mut run, 10, value(0.7));
    assert_eq!(run.phase(), AnalysisPhase::Inconclusive);
}

#[test]
fn consecutive_success_limit_passes_early_and_resets_on_a_failure() {
    let mut run = run_with("    count: 10\n    failureLimit: 5\n    consecutiveSuccessLimit: 3\n");
    record(&mut run, 0, value(PASS));
    record(&mut run, 10, value(PASS));
    record(&mut run, 20, value(FAIL));
    record(&mut run, 30, value(PASS));
    record(&mut run, 40, value(PASS));
    assert_eq!(
        run.phase(),
        AnalysisPhase::Running,
        "the failure reset the streak"
    );
    record(&mut run, 50, value(PASS));
    assert_eq!(run.phase(), AnalysisPhase::Successful);
    assert_eq!(run.state().metrics[0].count, 6, "stopped before count 10");
}

#[test]
fn count_reached_without_the_success_streak_is_inconclusive_with_a_failure_limit() {
    let mut run = run_with("    count: 3\n    failureLimit: 1\n    consecutiveSuccessLimit: 3\n");
    record(&mut run, 0, value(PASS));
    record(&mut run, 10, value(FAIL));
    record(&mut run, 20, value(PASS));
    assert_eq!(run.phase(), AnalysisPhase::Inconclusive);
}

#[test]
fn count_reached_without_the_success_streak_fails_when_only_the_streak_applies() {
    let mut run = run_with("    count: 3\n    failureLimit: -1\n    consecutiveSuccessLimit: 3\n");
    record(&mut run, 0, value(PASS));
    record(&mut run, 10, value(FAIL));
    record(&mut run, 20, value(PASS));
    assert_eq!(run.phase(), AnalysisPhase::Failed);
}

#[test]
fn the_metric_phase_is_recorded_per_metric() {
    let mut run = run_with("    count: 1\n");
    record(&mut run, 0, value(PASS));
    assert_eq!(metric_phase(&run), AnalysisPhase::Successful);
}
