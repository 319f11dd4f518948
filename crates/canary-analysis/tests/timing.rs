//! When measurements are due (Argo's `generateMetricTasks` and
//! `calculateNextReconcileTime`).

mod support;

use canary_analysis::{AnalysisPhase, MeasurementResult, RecordError};
use support::{at, one_metric_run, record, value};

const PASSING: &str = "    successCondition: result >= 0.5\n";

#[test]
fn the_first_measurement_is_due_when_the_run_starts() {
    let run = one_metric_run(&format!("    interval: 15s\n    count: 3\n{PASSING}"));
    assert_eq!(run.next_due(), Some(at(0)));
    assert_eq!(run.due(at(0)).len(), 1);
}

#[test]
fn initial_delay_postpones_only_the_first_measurement() {
    let mut run = one_metric_run(&format!(
        "    initialDelay: 1m\n    interval: 15s\n    count: 3\n{PASSING}"
    ));
    assert_eq!(run.next_due(), Some(at(60)));
    assert!(run.due(at(59)).is_empty());
    record(&mut run, 60, value(1.0));
    assert_eq!(run.next_due(), Some(at(75)));
}

#[test]
fn the_interval_counts_from_when_the_previous_measurement_finished() {
    let mut run = one_metric_run(&format!("    interval: 15s\n    count: 3\n{PASSING}"));
    // The first measurement was due at 0 s but finished at 4 s.
    record(&mut run, 4, value(1.0));
    assert_eq!(run.next_due(), Some(at(19)));
    record(&mut run, 25, value(1.0));
    assert_eq!(run.next_due(), Some(at(40)));
}

#[test]
fn an_error_is_retried_after_ten_seconds_whatever_the_interval() {
    let mut run = one_metric_run(&format!("    interval: 5m\n    count: 3\n{PASSING}"));
    record(&mut run, 0, MeasurementResult::error("connection refused"));
    assert_eq!(run.next_due(), Some(at(10)));
    record(&mut run, 10, value(1.0));
    assert_eq!(
        run.next_due(),
        Some(at(310)),
        "back to the interval after a success"
    );
}

#[test]
fn without_count_and_interval_one_measurement_decides() {
    let mut run = one_metric_run(PASSING);
    record(&mut run, 0, value(1.0));
    assert_eq!(run.phase(), AnalysisPhase::Successful);
    assert_eq!(run.next_due(), None);
}

#[test]
fn an_interval_without_count_measures_until_stopped() {
    let mut run = one_metric_run(&format!("    interval: 10s\n{PASSING}"));
    for i in 0..50 {
        record(&mut run, i * 10, value(1.0));
    }
    assert_eq!(run.phase(), AnalysisPhase::Running);
    assert_eq!(run.next_due(), Some(at(500)));
    run.terminate();
    assert_eq!(
        run.phase(),
        AnalysisPhase::Successful,
        "a terminated run ends Successful"
    );
    assert_eq!(run.next_due(), None);
}

#[test]
fn count_ends_the_measurements() {
    let mut run = one_metric_run(&format!("    interval: 15s\n    count: 3\n{PASSING}"));
    for secs in [0, 15, 30] {
        assert_eq!(run.phase(), AnalysisPhase::Running);
        record(&mut run, secs, value(1.0));
    }
    assert_eq!(run.phase(), AnalysisPhase::Successful);
    assert_eq!(run.next_due(), None);
    assert!(matches!(
        run.record(at(45), "m", &value(1.0)),
        Err(RecordError::Finished(_))
    ));
}

#[test]
fn a_result_before_its_time_is_refused() {
    let mut run = one_metric_run(&format!("    interval: 15s\n    count: 3\n{PASSING}"));
    record(&mut run, 0, value(1.0));
    assert_eq!(
        run.record(at(14), "m", &value(1.0)),
        Err(RecordError::NotDue {
            metric: "m".into(),
            due: at(15)
        })
    );
    assert!(matches!(
        run.record(at(15), "other", &value(1.0)),
        Err(RecordError::UnknownMetric(_))
    ));
}

#[test]
fn an_interval_below_a_second_is_measured_once_a_second() {
    // Argo accepts `interval: 0s`; here it would make a busy loop against
    // the metric source and the state store.
    let mut run = one_metric_run(&format!("    interval: 0s\n    count: 5\n{PASSING}"));
    record(&mut run, 3, value(1.0));
    assert_eq!(run.next_due(), Some(at(4)));
}
