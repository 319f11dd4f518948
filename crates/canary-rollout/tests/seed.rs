//! The seed's two scenarios (`shared/seed/canary-deployment-flow.md`) in
//! simulated time, with the shipped example files.
//!
//! Each weight step is: setWeight, a 30 s pause, then the pod-health
//! analysis (interval 15 s, count 3, failureLimit 2), whose measurements
//! are taken at +0 s, +15 s and +30 s after the pause. So each weight holds
//! for 30 s + 30 s = 60 s when healthy.

mod support;

use canary_config::Weight;
use canary_rollout::{EventKind, Phase};
use support::{example, pod_health, spec, Sim};

fn seed() -> Sim {
    let rollout = example("rollout.yaml");
    let template = example("pod-health.yaml");
    Sim::start(spec(&[
        ("examples/rollout.yaml", &rollout),
        ("examples/pod-health.yaml", &template),
    ]))
}

#[test]
fn success_goes_10_25_50_75_100_and_ends_promoted() {
    let mut sim = seed();
    // Readiness 2/3, CPU 40%: every measurement passes.
    sim.run(3600, &pod_health(0.66, 0.4));
    assert_eq!(
        sim.weight_changes(),
        vec![
            (0, 10.0),
            (60, 25.0),
            (120, 50.0),
            (180, 75.0),
            (240, 100.0)
        ]
    );
    assert_eq!(sim.rollout.phase(), Phase::Promoted);
    assert_eq!(sim.first(EventKind::Promoted), Some(240));
    let traffic = sim.rollout.traffic();
    assert_eq!(traffic.stable, "web-v2", "the canary is the new stable");
    assert_eq!(traffic.canary, None);
    assert_eq!(traffic.canary_weight, Weight::ZERO);
    assert_eq!(
        sim.kinds()
            .iter()
            .filter(|k| **k == EventKind::AnalysisSucceeded)
            .count(),
        4
    );
    assert_eq!(sim.rollout.next_wake(), None);
}

#[test]
fn failure_aborts_when_argo_would_with_the_canary_at_zero() {
    let mut sim = seed();
    // Readiness below 0.5 and CPU above 0.9 from the start: the analysis
    // begins after the 30 s pause; measurements at 30, 45 and 60 s fail;
    // after the third, failed (3) > failureLimit (2): abort at 60 s.
    sim.run(3600, &pod_health(0.33, 0.95));
    assert_eq!(sim.rollout.phase(), Phase::Aborted);
    assert_eq!(sim.first(EventKind::Aborted), Some(60));
    assert_eq!(sim.weight_changes(), vec![(0, 10.0), (60, 0.0)]);
    let traffic = sim.rollout.traffic();
    assert_eq!(traffic.canary_weight, Weight::ZERO);
    assert_eq!(traffic.stable, "web-v1", "stable keeps serving");
    assert!(!traffic.header_route);
    let reason = sim.rollout.message().unwrap_or_default();
    assert!(reason.contains("failed (3) > failureLimit (2)"), "{reason}");
}

#[test]
fn two_failures_out_of_three_are_tolerated() {
    let mut sim = seed();
    // The first measurement of each analysis passes, the next two fail:
    // failed (2) is not > failureLimit (2), so every step passes.
    sim.run(3600, &|metric, now| {
        let first_of_analysis = (now.millis() / 1000) % 60 == 30;
        let (ready, cpu) = if first_of_analysis {
            (0.66, 0.4)
        } else {
            (0.33, 0.95)
        };
        pod_health(ready, cpu)(metric, now)
    });
    assert_eq!(sim.rollout.phase(), Phase::Promoted);
}

#[test]
fn a_canary_that_turns_bad_at_25_percent_goes_back_to_zero() {
    let mut sim = seed();
    // Healthy during the 10% step (analysis over by 60 s), then readiness
    // drops: the 25% analysis fails at 90, 105 and 120 s.
    sim.run(3600, &|metric, now| {
        if now.millis() < 61_000 {
            pod_health(0.66, 0.4)(metric, now)
        } else {
            pod_health(0.33, 0.95)(metric, now)
        }
    });
    assert_eq!(
        sim.weight_changes(),
        vec![(0, 10.0), (60, 25.0), (120, 0.0)]
    );
    assert_eq!(sim.rollout.phase(), Phase::Aborted);
}
