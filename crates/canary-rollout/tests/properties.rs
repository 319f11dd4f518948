//! Properties over arbitrary measurement results, commands and timing:
//! no promotion after a Failed or Error analysis, no rising weight while
//! an analysis fails, every abort at canary 0%, and restoring a saved
//! state gives the same decisions as never stopping.

mod support;

use std::sync::Arc;

use canary_analysis::{AnalysisPhase, MeasurementResult, MetricValue};
use canary_config::Weight;
use canary_rollout::{Command, Decision, EventKind, Rollout, RolloutSpec, RolloutState};
use proptest::prelude::*;
use support::{at, spec};

const ROLLOUT: &str = r#"apiVersion: canary.dev/v1alpha1
kind: CanaryRollout
metadata: {name: web}
spec:
  routes: [web]
  stableVersion: v1
  canaryVersion: v2
  progressDeadline: 2m
  analysis:
    startingStep: 1
    templates: [{templateName: watch}]
  steps:
  - setWeight: 10
  - pause: {duration: 20s}
  - analysis: {templates: [{templateName: gate}]}
  - setWeight: 30
  - setHeaderRoute: {enabled: true}
  - pause: {}
  - setHeaderRoute: {enabled: false}
  - setWeight: 60
  - analysis: {templates: [{templateName: gate}]}
  - setWeight: 100
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: gate}
spec:
  metrics:
  - name: a
    interval: 10s
    count: 2
    successCondition: result >= 0.5
    failureCondition: result < 0.2
    provider: {prometheus: {query: up}}
  - name: b
    interval: 10s
    count: 2
    minSamples: 5
    successCondition: result >= 0.5
    provider: {envoy: {route: web, quantity: success-rate}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: watch}
spec:
  metrics:
  - name: c
    interval: 15s
    failureLimit: 1
    successCondition: result >= 0.5
    provider: {kubernetes: {selector: app=web, quantity: ready-ratio}}
  - name: d
    interval: 15s
    successCondition: result >= 0.5
    provider: {kubernetes: {selector: app=web, quantity: cpu-ratio}}
  dryRun: [{metricName: d}]
"#;

fn rollout_spec() -> Arc<RolloutSpec> {
    spec(&[("rollout.yaml", ROLLOUT)])
}

/// One input to the rollout.
#[derive(Debug, Clone)]
enum Input {
    /// Let `secs` pass, then take every due measurement with outcomes
    /// picked from `outcomes` (cycled).
    Measure { secs: u64, outcomes: Vec<u8> },
    /// Let `secs` pass, then a person's command.
    Command { secs: u64, command: Command },
}

fn outcome(code: u8) -> MeasurementResult {
    match code % 6 {
        0 => MeasurementResult::sampled(0.9, 100),
        1 => MeasurementResult::sampled(0.1, 100),
        2 => MeasurementResult::sampled(0.3, 100),
        3 => MeasurementResult::error("timeout"),
        4 => MeasurementResult::value(MetricValue::List(vec![])),
        _ => MeasurementResult::sampled(0.9, 1),
    }
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Promote),
        Just(Command::PromoteFull),
        Just(Command::Abort),
        Just(Command::Retry),
        Just(Command::Pause),
        Just(Command::Resume),
    ]
}

fn input(commands: bool) -> impl Strategy<Value = Input> {
    let measure = (0u64..30, prop::collection::vec(0u8..6, 1..6))
        .prop_map(|(secs, outcomes)| Input::Measure { secs, outcomes });
    if commands {
        prop_oneof![
            6 => measure,
            1 => (0u64..30, command()).prop_map(|(secs, command)| Input::Command { secs, command }),
        ]
        .boxed()
    } else {
        measure.boxed()
    }
}

/// Applies one input at `*now`, returning every decision it produced.
fn apply(rollout: &mut Rollout, now: &mut u64, input: &Input) -> Vec<Decision> {
    let mut out = Vec::new();
    match input {
        Input::Measure { secs, outcomes } => {
            *now += secs;
            out.push(rollout.tick(at(*now)));
            let due: Vec<_> = rollout
                .due_measurements(at(*now))
                .into_iter()
                .map(|d| d.key)
                .collect();
            for (i, key) in due.iter().enumerate() {
                let result = outcome(outcomes[i % outcomes.len()]);
                if let Ok(decision) = rollout.record(at(*now), key, &result) {
                    out.push(decision);
                }
            }
        }
        Input::Command { secs, command } => {
            *now += secs;
            if let Ok(decision) = rollout.command(at(*now), *command) {
                out.push(decision);
            }
        }
    }
    out
}

fn failing(rollout: &Rollout) -> bool {
    [rollout.step_analysis(), rollout.background_analysis()]
        .into_iter()
        .flatten()
        .any(|run| run.phase().is_failure())
}

fn has(decision: &Decision, kind: EventKind) -> bool {
    decision.events.iter().any(|e| e.kind == kind)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_failed_or_errored_analysis_never_leads_to_promotion(inputs in prop::collection::vec(input(true), 1..60)) {
        let (mut rollout, first) = Rollout::start(rollout_spec(), at(0));
        let mut now = 0;
        let mut failed_since_start = has(&first, EventKind::AnalysisFailed);
        for input in &inputs {
            for decision in apply(&mut rollout, &mut now, input) {
                if has(&decision, EventKind::Retried) {
                    failed_since_start = false;
                }
                failed_since_start |= has(&decision, EventKind::AnalysisFailed);
                if failed_since_start {
                    prop_assert!(!has(&decision, EventKind::Promoted), "promoted after a failure: {decision:?}");
                }
            }
        }
    }

    #[test]
    fn the_weight_never_rises_while_an_analysis_fails(inputs in prop::collection::vec(input(false), 1..60)) {
        let (mut rollout, _) = Rollout::start(rollout_spec(), at(0));
        let mut now = 0;
        for input in &inputs {
            let before = rollout.traffic().effective_weight();
            let decisions = apply(&mut rollout, &mut now, input);
            let after = rollout.traffic().effective_weight();
            if failing(&rollout) || decisions.iter().any(|d| has(d, EventKind::AnalysisFailed)) {
                prop_assert!(after <= before, "rose from {before} to {after} with a failing analysis");
                prop_assert_eq!(after, Weight::ZERO);
            }
        }
    }

    #[test]
    fn every_abort_ends_at_canary_zero(inputs in prop::collection::vec(input(true), 1..60)) {
        let (mut rollout, _) = Rollout::start(rollout_spec(), at(0));
        let mut now = 0;
        for input in &inputs {
            for decision in apply(&mut rollout, &mut now, input) {
                if has(&decision, EventKind::Aborted) {
                    prop_assert_eq!(decision.traffic.effective_weight(), Weight::ZERO);
                    prop_assert!(!decision.traffic.header_route);
                    prop_assert_eq!(&decision.traffic.stable, "v1");
                }
            }
            if rollout.state().status() == canary_rollout::Status::Aborted {
                prop_assert_eq!(rollout.traffic().effective_weight(), Weight::ZERO);
                prop_assert!(rollout.due_measurements(at(now)).is_empty());
            }
        }
    }

    #[test]
    fn restoring_a_saved_state_gives_the_same_decisions(
        inputs in prop::collection::vec(input(true), 1..50),
        cut in 0usize..50,
    ) {
        let spec = rollout_spec();
        let (mut straight, first) = Rollout::start(Arc::clone(&spec), at(0));
        let (mut resumed, first_again) = Rollout::start(Arc::clone(&spec), at(0));
        prop_assert_eq!(first, first_again);
        let (mut now_a, mut now_b) = (0, 0);
        for (i, input) in inputs.iter().enumerate() {
            if i == cut {
                let json = serde_json::to_string(&resumed.state()).expect("serializes");
                let state: RolloutState = serde_json::from_str(&json).expect("deserializes");
                resumed = Rollout::restore(Arc::clone(&spec), state).expect("restores");
            }
            let a = apply(&mut straight, &mut now_a, input);
            let b = apply(&mut resumed, &mut now_b, input);
            prop_assert_eq!(a, b);
        }
        prop_assert_eq!(straight.state(), resumed.state());
        prop_assert_eq!(straight.next_wake(), resumed.next_wake());
    }
}

#[test]
fn the_property_inputs_reach_every_outcome() {
    // The generators above would prove little if the scenario could not
    // fail, promote, or pause on an inconclusive analysis.
    let spec = rollout_spec();
    let run = |code: u8, commands: &[Command]| {
        let (mut rollout, _) = Rollout::start(Arc::clone(&spec), at(0));
        let mut now = 0;
        for _ in 0..40 {
            apply(
                &mut rollout,
                &mut now,
                &Input::Measure {
                    secs: 10,
                    outcomes: vec![code],
                },
            );
            for command in commands {
                apply(
                    &mut rollout,
                    &mut now,
                    &Input::Command {
                        secs: 0,
                        command: *command,
                    },
                );
            }
        }
        rollout
    };
    assert_eq!(
        run(0, &[Command::Resume]).state().status(),
        canary_rollout::Status::Promoted
    );
    assert_eq!(
        run(1, &[]).state().status(),
        canary_rollout::Status::Aborted
    );
    let inconclusive = run(2, &[]);
    assert_eq!(
        inconclusive.step_analysis().map(|r| r.phase()),
        Some(AnalysisPhase::Inconclusive)
    );
    assert_eq!(
        run(3, &[]).state().status(),
        canary_rollout::Status::Aborted,
        "errors in a row"
    );
    assert_eq!(
        run(4, &[]).state().status(),
        canary_rollout::Status::Aborted,
        "progress deadline"
    );
}
