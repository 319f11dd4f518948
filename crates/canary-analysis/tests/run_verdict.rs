//! The run's verdict over several metrics (Argo's `assessRunStatus`),
//! dry-run metrics and measurement retention.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use canary_analysis::{AnalysisPhase, AnalysisRun, AnalysisSpec};
use support::{at, spec, value};

/// Metrics `a` (count 3) and `b` (count 1), both `result >= 0.5`.
fn two_metrics() -> Arc<AnalysisSpec> {
    spec(
        "  - name: a\n    interval: 10s\n    count: 3\n    successCondition: result >= 0.5\n    provider: {kubernetes: {selector: x=y, quantity: ready-ratio}}\n\
         \x20 - name: b\n    successCondition: result >= 0.5\n    provider: {kubernetes: {selector: x=y, quantity: cpu-ratio}}\n",
    )
}

fn phases(run: &AnalysisRun) -> Vec<AnalysisPhase> {
    run.state().metrics.iter().map(|m| m.phase).collect()
}

#[test]
fn the_run_is_running_until_every_metric_completes() {
    let mut run = AnalysisRun::start(two_metrics(), at(0));
    run.record(at(0), "b", &value(1.0)).expect("b due");
    assert_eq!(
        phases(&run),
        vec![AnalysisPhase::Pending, AnalysisPhase::Successful]
    );
    // a's first measurement is still due; b is done.
    run.record(at(0), "a", &value(1.0)).expect("a due");
    assert_eq!(run.phase(), AnalysisPhase::Running);
    run.record(at(10), "a", &value(1.0)).expect("a due");
    run.record(at(20), "a", &value(1.0)).expect("a due");
    assert_eq!(run.phase(), AnalysisPhase::Successful);
}

#[test]
fn the_first_bad_metric_stops_the_run_with_its_phase() {
    let mut run = AnalysisRun::start(two_metrics(), at(0));
    run.record(at(0), "a", &value(1.0)).expect("a due");
    run.record(at(0), "b", &value(0.1)).expect("b due");
    assert_eq!(run.phase(), AnalysisPhase::Failed);
    assert_eq!(run.next_due(), None, "a takes no more measurements");
    assert!(run.due(at(100)).is_empty());
    assert_eq!(
        phases(&run),
        vec![AnalysisPhase::Successful, AnalysisPhase::Failed]
    );
    let message = run.message().unwrap_or_default();
    assert!(
        message.contains("metric \"b\" assessed Failed"),
        "{message}"
    );
}

#[test]
fn worse_phases_rank_above_better_ones() {
    use AnalysisPhase::*;
    let mut order = vec![Failed, Successful, Error, Running, Inconclusive, Pending];
    order.sort();
    assert_eq!(
        order,
        vec![Pending, Running, Successful, Inconclusive, Error, Failed]
    );
}

#[test]
fn a_dry_run_metric_never_changes_the_verdict() {
    let mut dry = (*two_metrics()).clone();
    dry.dry_run.insert("b".into());
    let mut run = AnalysisRun::start(Arc::new(dry), at(0));
    run.record(at(0), "b", &value(0.1)).expect("b due");
    assert_eq!(phases(&run)[1], AnalysisPhase::Failed, "b itself failed");
    assert_eq!(run.phase(), AnalysisPhase::Running, "but the run goes on");
    for secs in [0, 10, 20] {
        run.record(at(secs), "a", &value(1.0)).expect("a due");
    }
    assert_eq!(run.phase(), AnalysisPhase::Successful);
}

#[test]
fn measurements_are_kept_up_to_the_retention_limit() {
    let metric = "  - name: m\n    interval: 1s\n    successCondition: result >= 0.5\n    provider: {kubernetes: {selector: x=y, quantity: ready-ratio}}\n";
    let mut run = AnalysisRun::start(spec(metric), at(0));
    for secs in 0..25 {
        run.record(at(secs), "m", &value(1.0)).expect("due");
    }
    let kept = &run.state().metrics[0].measurements;
    assert_eq!(kept.len(), 10, "Argo keeps 10 by default");
    assert_eq!(kept[0].finished_at, at(15), "the oldest are dropped");

    let mut limited = (*spec(metric)).clone();
    limited.retention = BTreeMap::from([("m".to_owned(), 3)]);
    let mut run = AnalysisRun::start(Arc::new(limited), at(0));
    for secs in 0..25 {
        run.record(at(secs), "m", &value(1.0)).expect("due");
    }
    assert_eq!(run.state().metrics[0].measurements.len(), 3);
    assert_eq!(run.state().metrics[0].count, 25, "counters keep counting");
}

#[test]
fn a_terminated_run_takes_no_more_measurements() {
    let mut run = AnalysisRun::start(two_metrics(), at(0));
    run.terminate();
    assert_eq!(run.phase(), AnalysisPhase::Successful);
    assert!(run.due(at(0)).is_empty());
    assert!(run.record(at(0), "a", &value(1.0)).is_err());
}

#[test]
fn a_saved_run_continues_where_it_stopped() {
    let mut run = AnalysisRun::start(two_metrics(), at(0));
    run.record(at(0), "a", &value(1.0)).expect("due");
    let saved = serde_json::to_string(run.state()).expect("serializes");
    let state = serde_json::from_str(&saved).expect("deserializes");
    let restored = AnalysisRun::restore(two_metrics(), state).expect("fits");
    assert_eq!(restored.state(), run.state());
    assert_eq!(restored.next_due(), run.next_due());
    let other = spec("  - name: z\n    successCondition: result >= 0.5\n    provider: {kubernetes: {selector: x=y, quantity: ready-ratio}}\n");
    assert!(AnalysisRun::restore(other, run.state().clone()).is_err());
}
