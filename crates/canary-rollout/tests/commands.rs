//! Phases and commands: pauses, promotion, abort, retry, inconclusive
//! analysis, background analysis, header routes and the progress
//! deadline.

mod support;

use canary_analysis::{MeasurementResult, MetricValue};
use canary_config::Weight;
use canary_rollout::{AnalysisSlot, Command, EventKind, PauseReason, Phase, RecordError, Rollout};
use support::{at, spec, Sim};

const TEMPLATE: &str = r#"
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: check}
spec:
  metrics:
  - name: m
    interval: 10s
    count: 2
    successCondition: result >= 0.9
    failureCondition: result < 0.5
    provider: {kubernetes: {selector: app=web, quantity: ready-ratio}}
"#;

fn rollout(steps: &str, extra: &str) -> Sim {
    let text = format!(
        "apiVersion: canary.dev/v1alpha1\nkind: CanaryRollout\nmetadata: {{name: web}}\nspec:\n  routes: [web]\n  stableVersion: v1\n  canaryVersion: v2\n{extra}  steps:\n{steps}{TEMPLATE}"
    );
    Sim::start(spec(&[("rollout.yaml", &text)]))
}

fn measured(
    x: f64,
) -> impl Fn(&canary_analysis::metric::Metric, canary_analysis::Timestamp) -> MeasurementResult {
    move |_, _| MeasurementResult::sampled(x, 100)
}

fn weight(percent: f64) -> Weight {
    Weight::from_percent(percent).expect("valid")
}

#[test]
fn a_timed_pause_ends_by_itself_and_promote_skips_it_sooner() {
    let mut sim = rollout(
        "  - setWeight: 20\n  - pause: {duration: 1m}\n  - setWeight: 40\n",
        "",
    );
    assert_eq!(
        sim.rollout.phase(),
        Phase::Paused {
            reason: PauseReason::Step,
            until: Some(at(60))
        }
    );
    assert_eq!(sim.rollout.next_wake(), Some(at(60)));
    let decision = sim
        .rollout
        .command(at(10), Command::Promote)
        .expect("promote");
    assert_eq!(decision.events[0].kind, EventKind::StepSkipped);
    assert_eq!(decision.phase, Phase::Promoted, "40% was the last step");
}

#[test]
fn an_indefinite_pause_waits_for_a_person_to_resume() {
    let mut sim = rollout(
        "  - setWeight: 20\n  - pause: {}\n  - setWeight: 40\n  - pause: {duration: 1m}\n",
        "",
    );
    assert_eq!(
        sim.rollout.next_wake(),
        None,
        "only a person can move it on"
    );
    sim.run(10_000, &measured(1.0));
    assert_eq!(sim.rollout.traffic().canary_weight, weight(20.0));
    let decision = sim
        .rollout
        .command(at(500), Command::Resume)
        .expect("resume");
    assert_eq!(decision.traffic.canary_weight, weight(40.0));
    let refused = sim
        .rollout
        .command(at(501), Command::Resume)
        .expect_err("timed pause");
    assert!(refused.reason.contains("timed pause"), "{refused}");
}

#[test]
fn a_manual_pause_holds_the_steps_but_not_a_rollback() {
    let mut sim = rollout("  - setWeight: 20\n  - analysis: {templates: [{templateName: check}]}\n  - setWeight: 40\n", "");
    sim.rollout.command(at(0), Command::Pause).expect("pause");
    sim.run(100, &measured(1.0));
    assert_eq!(
        sim.rollout.phase(),
        Phase::Paused {
            reason: PauseReason::Manual,
            until: None
        }
    );
    assert_eq!(
        sim.rollout.traffic().canary_weight,
        weight(20.0),
        "passed analysis, still held"
    );
    let decision = sim
        .rollout
        .command(at(100), Command::Resume)
        .expect("resume");
    assert_eq!(decision.phase, Phase::Promoted);

    let mut sim = rollout("  - setWeight: 20\n  - analysis: {templates: [{templateName: check}]}\n  - setWeight: 40\n", "");
    sim.rollout.command(at(0), Command::Pause).expect("pause");
    sim.run(100, &measured(0.1));
    assert_eq!(
        sim.rollout.phase(),
        Phase::Aborted,
        "failure rolls back even while paused"
    );
}

#[test]
fn abort_sends_the_canary_to_zero_at_once_and_retry_starts_over() {
    let mut sim = rollout(
        "  - setWeight: 20\n  - setHeaderRoute: {enabled: true}\n  - pause: {}\n",
        "",
    );
    assert!(sim.rollout.traffic().header_route);
    let decision = sim.rollout.command(at(5), Command::Abort).expect("abort");
    assert!(decision.traffic_changed);
    assert_eq!(decision.traffic.canary_weight, Weight::ZERO);
    assert!(
        !decision.traffic.header_route,
        "no override into an aborted canary"
    );
    assert_eq!(decision.phase, Phase::Aborted);
    for command in [
        Command::Promote,
        Command::Pause,
        Command::Resume,
        Command::Abort,
    ] {
        assert!(
            sim.rollout.command(at(6), command).is_err(),
            "{command} after abort"
        );
    }
    let decision = sim.rollout.command(at(7), Command::Retry).expect("retry");
    assert_eq!(decision.events[0].kind, EventKind::Retried);
    assert_eq!(decision.traffic.canary_weight, weight(20.0));
    assert!(
        sim.rollout.command(at(8), Command::Retry).is_err(),
        "only after an abort"
    );
}

#[test]
fn promote_fully_makes_the_canary_stable_now() {
    let mut sim = rollout("  - setWeight: 5\n  - pause: {}\n  - setWeight: 50\n", "");
    let decision = sim
        .rollout
        .command(at(1), Command::PromoteFull)
        .expect("promote fully");
    assert_eq!(decision.phase, Phase::Promoted);
    assert_eq!(decision.traffic.stable, "v2");
    assert_eq!(decision.traffic.canary, None);
    assert!(sim.rollout.command(at(2), Command::Abort).is_err());
}

#[test]
fn an_inconclusive_analysis_waits_for_a_decision() {
    let steps = "  - setWeight: 20\n  - analysis: {templates: [{templateName: check}]}\n  - setWeight: 40\n";
    let mut sim = rollout(steps, "");
    sim.run(100, &measured(0.7));
    assert_eq!(
        sim.rollout.phase(),
        Phase::PausedInconclusive {
            analysis: AnalysisSlot::Step(1)
        }
    );
    assert!(
        sim.rollout.command(at(100), Command::Resume).is_err(),
        "resume is no decision"
    );
    let decision = sim
        .rollout
        .command(at(100), Command::Promote)
        .expect("go on");
    assert_eq!(decision.phase, Phase::Promoted);

    let mut sim = rollout(steps, "");
    sim.run(100, &measured(0.7));
    let decision = sim
        .rollout
        .command(at(100), Command::Abort)
        .expect("roll back");
    assert_eq!(decision.traffic.canary_weight, Weight::ZERO);
}

#[test]
fn background_analysis_starts_at_its_step_and_a_failure_aborts_anywhere() {
    let background = "  analysis:\n    startingStep: 1\n    templates: [{templateName: check}]\n";
    let mut sim = rollout("  - setWeight: 10\n  - pause: {duration: 30s}\n  - setWeight: 30\n  - pause: {duration: 5m}\n", background);
    assert!(
        sim.rollout.background_analysis().is_some(),
        "step 1 is reached at once"
    );
    sim.run(10_000, &|_, now| {
        // Healthy for the first two measurements, then the canary breaks.
        MeasurementResult::sampled(if now.millis() < 20_000 { 1.0 } else { 0.1 }, 100)
    });
    assert_eq!(
        sim.rollout.phase(),
        Phase::Promoted,
        "count 2 passed at 10 s; it watched no further"
    );

    let mut sim = rollout("  - setWeight: 10\n  - pause: {duration: 30s}\n  - setWeight: 30\n  - pause: {duration: 5m}\n", background);
    sim.run(10_000, &measured(0.1));
    assert_eq!(sim.rollout.phase(), Phase::Aborted);
    assert_eq!(sim.first(EventKind::Aborted), Some(0));
}

#[test]
fn a_header_route_step_switches_the_override_and_keeps_the_weight() {
    let mut sim = rollout("  - setWeight: 5\n  - setHeaderRoute: {enabled: true}\n  - pause: {}\n  - setHeaderRoute: {enabled: false}\n  - setWeight: 50\n  - pause: {}\n", "");
    let traffic = sim.rollout.traffic().clone();
    assert!(traffic.header_route);
    assert_eq!(traffic.canary_weight, weight(5.0));
    sim.rollout.command(at(1), Command::Resume).expect("resume");
    assert!(!sim.rollout.traffic().header_route);
    assert_eq!(sim.rollout.traffic().canary_weight, weight(50.0));
}

#[test]
fn the_progress_deadline_aborts_a_rollout_that_never_gets_enough_data() {
    let mut sim = rollout(
        "  - setWeight: 10\n  - analysis: {templates: [{templateName: check}]}\n",
        "  progressDeadline: 2m\n",
    );
    sim.run(10_000, &|_, _| {
        MeasurementResult::value(MetricValue::List(vec![]))
    });
    assert_eq!(sim.rollout.phase(), Phase::Aborted);
    assert_eq!(
        sim.first(EventKind::Aborted),
        Some(120),
        "first empty result at 0 s, deadline 2 m"
    );
    assert!(sim
        .rollout
        .message()
        .unwrap_or_default()
        .contains("progressDeadline"));
    assert!(
        !sim.kinds().contains(&EventKind::AnalysisFailed),
        "no measurement failed"
    );
}

#[test]
fn a_result_for_an_ended_run_is_refused() {
    let mut sim = rollout(
        "  - setWeight: 10\n  - analysis: {templates: [{templateName: check}]}\n",
        "",
    );
    let key = sim.rollout.due_measurements(at(0))[0].key.clone();
    sim.rollout
        .command(at(1), Command::Promote)
        .expect("skip the analysis");
    let late = sim
        .rollout
        .record(at(2), &key, &MeasurementResult::value(0.1));
    assert!(matches!(late, Err(RecordError::Stale(_))), "{late:?}");
}

#[test]
fn the_decision_carries_a_valid_filter_configuration() {
    let sim = rollout("  - setWeight: 12.5\n  - pause: {}\n", "");
    let base = canary_config::parse_document(
        br#"{"routes": [{"name": "web", "match": {"hosts": ["*"]}, "stable": "v1"}]}"#,
    )
    .expect("base");
    let config = sim
        .rollout
        .traffic()
        .apply(sim.rollout.generation(), &base, &sim.rollout.spec().routes)
        .expect("applies");
    let json = serde_json::to_string(&config).expect("serializes");
    let compiled = canary_config::parse(json.as_bytes()).expect("the filter accepts it");
    assert_eq!(compiled.routes[0].weight, weight(12.5));
    assert_eq!(compiled.routes[0].canary.as_deref(), Some("v2"));
}

#[test]
fn start_sets_the_first_weight_in_the_same_decision() {
    let spec = spec(&[(
        "r.yaml",
        "apiVersion: canary.dev/v1alpha1\nkind: CanaryRollout\nmetadata: {name: w}\nspec:\n  routes: [w]\n  stableVersion: a\n  canaryVersion: b\n  steps:\n  - setWeight: 10\n  - pause: {}\n",
    )]);
    let (_, decision) = Rollout::start(spec, at(0));
    let kinds: Vec<EventKind> = decision.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Started,
            EventKind::WeightChanged,
            EventKind::PauseStarted
        ]
    );
    assert!(decision.traffic_changed);
}
