//! "Not enough data": an empty result, fewer samples than `minSamples`,
//! or the provider's own word neither passes nor fails; the metric is
//! measured again one interval later and the measurement does not count.

mod support;

use canary_analysis::{AnalysisPhase, MeasurementPhase, MeasurementResult};
use support::{at, empty, one_metric_run, record, value};

fn seed_metric() -> canary_analysis::AnalysisRun {
    one_metric_run("    interval: 15s\n    count: 3\n    failureLimit: 2\n    minSamples: 20\n    successCondition: result >= 0.5\n")
}

#[test]
fn an_empty_result_is_not_counted_and_is_retried_at_the_next_interval() {
    let mut run = seed_metric();
    let phase = run.record(at(0), "m", &empty()).expect("due");
    assert_eq!(phase, MeasurementPhase::NotEnoughData);
    let state = &run.state().metrics[0];
    assert_eq!((state.count, state.failed, state.error), (0, 0, 0));
    assert_eq!(run.next_due(), Some(at(15)));
    assert_eq!(run.phase(), AnalysisPhase::Running);
}

#[test]
fn fewer_samples_than_min_samples_is_not_enough_data() {
    let mut run = seed_metric();
    let phase = run
        .record(at(0), "m", &MeasurementResult::sampled(0.1, 19))
        .expect("due");
    assert_eq!(
        phase,
        MeasurementPhase::NotEnoughData,
        "a failing value on 19 samples is not judged"
    );
    let phase = run
        .record(at(15), "m", &MeasurementResult::sampled(0.1, 20))
        .expect("due");
    assert_eq!(phase, MeasurementPhase::Failed, "20 samples are enough");
    assert_eq!(run.state().metrics[0].failed, 1);
}

#[test]
fn the_providers_own_not_enough_data_neither_passes_nor_fails() {
    let mut run = seed_metric();
    for i in 0..10 {
        record(
            &mut run,
            i * 15,
            MeasurementResult::not_enough_data("3 requests in the window"),
        );
    }
    assert_eq!(run.phase(), AnalysisPhase::Running);
    let state = &run.state().metrics[0];
    assert_eq!((state.count, state.not_enough_data), (0, 10));
}

#[test]
fn the_run_knows_since_when_it_has_lacked_data() {
    let mut run = seed_metric();
    assert_eq!(run.starved_since(), None);
    record(&mut run, 0, empty());
    record(&mut run, 15, empty());
    assert_eq!(
        run.starved_since(),
        Some(at(0)),
        "from the first measurement without data"
    );
    record(&mut run, 30, MeasurementResult::sampled(0.9, 100));
    assert_eq!(
        run.starved_since(),
        None,
        "a counted measurement ends the drought"
    );
    record(&mut run, 45, empty());
    assert_eq!(run.starved_since(), Some(at(45)));
}

#[test]
fn not_enough_data_does_not_break_an_error_streak() {
    let mut run = one_metric_run("    interval: 15s\n    successCondition: result >= 0.5\n");
    for i in 0..4 {
        record(&mut run, i * 20, MeasurementResult::error("down"));
    }
    record(&mut run, 80, empty());
    record(&mut run, 95, MeasurementResult::error("down"));
    assert_eq!(
        run.phase(),
        AnalysisPhase::Error,
        "5 errors in a row; the empty result between them is no success"
    );
    let _ = value(0.0);
}
