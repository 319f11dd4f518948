//! The driver through the simulator: a fake fleet of proxies read every
//! 250 ms, pushes that can fail or arrive late, proxies changed behind the
//! rollout's back, hanging measurements and restarts.

mod support;

use std::sync::Arc;
use std::time::Duration;

use canary_analysis::{MeasurementResult, Timestamp};
use canary_rollout::driver::{Outcome, Verification};
use canary_rollout::fixtures::{FakeMetrics, Sim};
use canary_rollout::{Command, EventKind, RolloutSpec};
use support::{example, pod_health, spec};

fn seed_spec(rollout: &str) -> Arc<RolloutSpec> {
    let template = example("pod-health.yaml");
    spec(&[
        ("examples/rollout.yaml", rollout),
        ("examples/pod-health.yaml", &template),
    ])
}

fn seed() -> Arc<RolloutSpec> {
    seed_spec(&example("rollout.yaml"))
}

fn metrics(ready: f64, cpu: f64) -> FakeMetrics {
    let measure = pod_health(ready, cpu);
    FakeMetrics::new(move |metric, now, _| measure(metric, now))
}

fn healthy() -> FakeMetrics {
    metrics(0.66, 0.4)
}

fn secs(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

/// Canary weights pushed, in basis points, without repeats.
fn weights_pushed(sim: &Sim) -> Vec<u64> {
    let canary = sim.driver.spec().canary_version.clone();
    let mut weights: Vec<u64> = Vec::new();
    for (_, push) in sim.fleet.pushes() {
        let share = match &push.traffic.canary {
            Some(_) => u64::from(push.traffic.canary_weight.basis_points()),
            None if push.traffic.stable == canary => 10_000,
            None => 0,
        };
        if weights.last() != Some(&share) {
            weights.push(share);
        }
    }
    weights
}

#[test]
fn the_seed_promotes_once_every_proxy_shows_each_step() {
    let mut sim = Sim::start(seed(), 3, healthy());
    assert_eq!(sim.run_until(secs(600)), Some(Outcome::Promoted));
    assert_eq!(weights_pushed(&sim), vec![1000, 2500, 5000, 7500, 10_000]);
    let report = sim.report();
    assert_eq!(report.phase, "Promoted");
    let applied = report.push.applied.expect("applied");
    assert_eq!(applied.verification, Verification::InForce);
    assert_eq!(applied.proxies, 3);
    // Each weight holds 60 s once seen; a reading comes every 250 ms.
    let promoted = sim.first(EventKind::Promoted).expect("promoted");
    assert!((240_000..=241_500).contains(&promoted), "{promoted}");
}

#[test]
fn pushes_failing_mid_rollout_abort_and_never_promote() {
    let mut sim = Sim::start(seed(), 2, healthy());
    assert_eq!(sim.run_until(secs(50)), None);
    sim.fleet.fail_pushes(Some("the ECDS folder is gone"));
    // 25% is decided at about 60 s; it never shows; 30 s later the
    // rollout is rolled back, and the rollback cannot be pushed either.
    assert_eq!(sim.run_until(secs(200)), None);
    let report = sim.report();
    assert_eq!(report.phase, "RollingBack", "{report:#?}");
    assert!(sim.first(EventKind::Promoted).is_none());
    let aborted = sim.first(EventKind::SplitNotSeen).expect("not seen");
    assert!((90_000..92_000).contains(&aborted), "{aborted}");
    assert!(report.conditions.iter().any(|c| c.kind == "SplitNotSeen"));
    assert!(report.conditions.iter().any(|c| c.kind == "PushFailing"));
    assert!(report.push.failures > 3, "retried with backoff");
    assert_eq!(
        report.push.applied.expect("applied").verification,
        Verification::NotSeen
    );
    // Pushes work again: the rollback goes out and is seen.
    sim.fleet.fail_pushes(None);
    assert_eq!(sim.run_until(secs(300)), Some(Outcome::Aborted));
    assert_eq!(sim.report().phase, "Aborted");
    assert_eq!(weights_pushed(&sim), vec![1000, 0]);
}

#[test]
fn drift_toward_the_canary_is_reasserted_at_once() {
    let mut sim = Sim::start(seed(), 2, healthy());
    sim.run_until(secs(10));
    sim.fleet.tamper(1, &[("web-v1", 5000), ("web-v2", 5000)]);
    sim.run_until(secs(11));
    let drift = sim.first(EventKind::DriftUp).expect("drift up");
    assert!((10_000..=10_500).contains(&drift), "{drift}");
    let last = sim.fleet.pushes().last().expect("push").clone();
    assert!(last.0 >= secs(10), "pushed again after the drift");
    assert_eq!(last.1.traffic.canary_weight.basis_points(), 1000);
    // The pause is not restarted: at most the time without the split is
    // added back, and the rollout goes on.
    assert_eq!(sim.run_until(secs(600)), Some(Outcome::Promoted));
    let promoted = sim.first(EventKind::Promoted).expect("promoted");
    assert!(promoted < 243_000, "{promoted}");
}

#[test]
fn drift_toward_stable_pauses_until_a_person_resumes() {
    let mut sim = Sim::start(seed(), 2, healthy());
    sim.run_until(secs(70));
    assert_eq!(sim.report().traffic.canary_weight, 25.0);
    sim.fleet.tamper(0, &[("web-v1", 10_000), ("web-v2", 0)]);
    sim.run_until(secs(300));
    let report = sim.report();
    assert_eq!(report.phase, "Paused");
    assert_eq!(report.pause_reason.as_deref(), Some("Drift"));
    assert!(report.conditions.iter().any(|c| c.kind == "Drift"));
    let pushes = sim.fleet.pushes().len();
    sim.run_until(secs(900));
    assert_eq!(sim.fleet.pushes().len(), pushes, "nothing raises it back");
    assert_eq!(sim.report().phase, "Paused", "no deadline aborts it");
    // A person resumes: 25% is pushed again and the rollout goes on.
    assert_eq!(sim.step(Some(Command::Resume)), Some(Ok(())));
    assert_eq!(sim.run_until(secs(2000)), Some(Outcome::Promoted));
}

#[test]
fn canary_metrics_wait_until_the_split_is_seen() {
    let mut sim = Sim::start(seed(), 2, healthy());
    sim.fleet.set_apply_delay(Duration::from_secs(3));
    sim.run_until(secs(200));
    // The pause after setWeight 10 starts once every proxy shows 10%.
    let seen = sim.first(EventKind::SplitInForce).expect("seen");
    assert!((3000..=3250).contains(&seen), "{seen}");
    let pause = sim
        .events()
        .into_iter()
        .find(|e| e.kind == EventKind::PauseStarted)
        .expect("pause");
    assert_eq!(pause.at.millis(), seen);
    // Every measurement covers only time with its split in force.
    for (at, request) in sim.measure_requests() {
        let since = request.in_force_since.expect("measured only once seen");
        assert!(since <= at);
    }
}

#[test]
fn an_abort_never_waits_behind_a_hanging_measurement() {
    let measurements = healthy();
    let mut sim = Sim::start(seed(), 1, measurements.clone());
    measurements.hang("pod-readiness");
    sim.run_until(secs(40));
    assert_eq!(
        sim.report().analyses[0].metrics[0].count,
        0,
        "still hanging"
    );
    assert_eq!(sim.step(Some(Command::Abort)), Some(Ok(())));
    let push = sim
        .log
        .last()
        .and_then(|(_, e)| e.push.clone())
        .expect("push");
    assert_eq!(push.traffic.canary_weight.basis_points(), 0);
    assert_eq!(sim.run_until(secs(41)), Some(Outcome::Aborted));
}

#[test]
fn a_guard_trip_rolls_back_everywhere() {
    let mut sim = Sim::start(seed(), 3, healthy());
    sim.run_until(secs(70));
    sim.fleet.trip_guard(2);
    assert_eq!(sim.run_until(secs(72)), Some(Outcome::Aborted));
    let report = sim.report();
    assert!(report
        .conditions
        .iter()
        .any(|c| c.kind == "GuardTripped" && c.message.contains("proxy-2")));
    assert!(sim.first(EventKind::GuardTripped).is_some());
    assert!(
        sim.first(EventKind::DriftDown).is_none(),
        "a trip is not drift"
    );
    // A retry is a new attempt: the old trip does not count.
    assert_eq!(sim.step(Some(Command::Retry)), Some(Ok(())));
    sim.run_until(secs(80));
    assert_eq!(sim.report().phase, "Paused");
    assert_eq!(sim.report().traffic.canary_weight, 10.0);
}

#[test]
fn a_proxy_that_goes_silent_holds_the_steps_then_aborts() {
    let mut sim = Sim::start(seed(), 2, healthy());
    sim.run_until(secs(10));
    sim.fleet.silence(1, true);
    sim.run_until(secs(120));
    let report = sim.report();
    assert_eq!(report.phase, "RollingBack");
    assert!(report
        .events
        .iter()
        .any(|e| e.kind == "SplitNotSeen" && e.reason.contains("proxy-1")));
    assert_eq!(weights_pushed(&sim), vec![1000, 0]);
}

#[test]
fn without_an_observer_nothing_is_verified() {
    let spec = seed();
    let fleet = canary_rollout::fixtures::FakeFleet::new(&spec.routes, &spec.stable_version, 1);
    fleet.unobserved();
    let mut sim = Sim::open(
        spec,
        fleet,
        healthy(),
        Default::default(),
        Timestamp::default(),
    );
    assert_eq!(sim.run_until(secs(600)), Some(Outcome::Promoted));
    let report = sim.report();
    assert_eq!(
        report.push.applied.expect("applied").verification,
        Verification::Unverified
    );
    assert!(report.conditions.iter().any(|c| c.kind == "Unverified"));
}

#[test]
fn a_restart_at_any_effect_repeats_and_skips_nothing() {
    // Run the seed and crash at every decision: after saving it (its push
    // lost), or after pushing it; each time a new driver resumes from the
    // store.
    for after_push in [false, true] {
        let spec = seed();
        let mut sim = Sim::start(Arc::clone(&spec), 2, healthy());
        let mut restarts = 0;
        let mut log = Vec::new();
        while sim.now < secs(600) && sim.outcome().is_none() {
            sim.crash_on_decision = Some(after_push);
            sim.run_until(secs(600));
            if !sim.crashed {
                break;
            }
            log.append(&mut sim.log);
            let (fleet, metrics, store, now) = (
                sim.fleet.clone(),
                sim.metrics.clone(),
                sim.store.clone(),
                sim.now,
            );
            sim = Sim::open(Arc::clone(&spec), fleet, metrics, store, now);
            restarts += 1;
        }
        log.append(&mut sim.log);
        sim.log = log;
        assert_eq!(
            sim.outcome(),
            Some(Outcome::Promoted),
            "after_push={after_push}"
        );
        assert!(restarts > 20, "{restarts}");
        assert_eq!(weights_pushed(&sim), vec![1000, 2500, 5000, 7500, 10_000]);
        let count = |kind| sim.events().iter().filter(|e| e.kind == kind).count();
        assert_eq!(count(EventKind::Promoted), 1);
        assert_eq!(count(EventKind::WeightChanged), 5, "10, 25, 50, 75, 100");
        assert_eq!(count(EventKind::AnalysisSucceeded), 4);
    }
}

#[test]
fn an_edited_rollout_is_held_without_raising_the_canary() {
    let spec = seed();
    let mut sim = Sim::start(Arc::clone(&spec), 1, healthy());
    sim.run_until(secs(70));
    assert_eq!(sim.report().traffic.canary_weight, 25.0);
    // Someone edits the steps mid-rollout (25% becomes 40%).
    let edited = seed_spec(&example("rollout.yaml").replace("setWeight: 25", "setWeight: 40"));
    let mut held = Sim::open(
        Arc::clone(&edited),
        sim.fleet.clone(),
        healthy(),
        sim.store.clone(),
        sim.now,
    );
    held.run_until(secs(400));
    let report = held.report();
    assert_eq!(report.phase, "Held");
    assert!(report.conditions.iter().any(|c| c.kind == "Held"));
    assert_eq!(report.traffic.canary_weight, 25.0, "kept, not raised");
    let refused = held.step(Some(Command::Promote)).expect("answer");
    let reason = refused.expect_err("refused").reason;
    assert!(reason.contains("retry"), "{reason}");
    // Restoring the rollout as it was resumes it where it was.
    let mut restored = Sim::open(
        spec,
        held.fleet.clone(),
        healthy(),
        held.store.snapshot(),
        held.now,
    );
    assert_eq!(restored.run_until(secs(1200)), Some(Outcome::Promoted));
    // Retrying the edited one starts it again from the first step.
    let mut again = Sim::open(
        Arc::clone(&edited),
        held.fleet.clone(),
        healthy(),
        held.store.snapshot(),
        held.now,
    );
    assert_eq!(again.step(Some(Command::Retry)), Some(Ok(())));
    again.run_until(again.now.plus(Duration::from_secs(5)));
    assert_eq!(again.report().traffic.canary_weight, 10.0);
}

#[test]
fn a_position_naming_another_canary_is_never_pushed() {
    let spec = seed();
    let mut sim = Sim::start(Arc::clone(&spec), 1, healthy());
    sim.run_until(secs(20));
    let mut position = sim.store.saved().expect("saved");
    let mut json = serde_json::to_value(&position).expect("json");
    json["state"]["traffic"]["canary"] = "v9".into();
    position = canary_rollout::driver::Position::from_json(&json).expect("reads");
    let store = canary_rollout::fixtures::MemoryStore::default();
    canary_rollout::ports::PositionStore::save(&store, &position).expect("save");
    let mut held = Sim::open(spec, sim.fleet.clone(), healthy(), store, sim.now);
    held.run_until(held.now.plus(Duration::from_secs(5)));
    let report = held.report();
    assert_eq!(report.phase, "Held");
    assert!(report.message.unwrap_or_default().contains("v9"));
    for (_, push) in held.fleet.pushes().iter().skip(sim.fleet.pushes().len()) {
        assert_ne!(push.traffic.canary.as_deref(), Some("v9"));
    }
    assert_eq!(report.traffic.canary_weight, 0.0);
}

#[test]
fn an_aborted_rollout_gets_traffic_again_only_by_retry() {
    let spec = seed();
    let mut sim = Sim::start(Arc::clone(&spec), 1, metrics(0.1, 0.99));
    assert_eq!(sim.run_until(secs(600)), Some(Outcome::Aborted));
    // The rollout file is edited after the abort: still aborted.
    let edited = seed_spec(&example("rollout.yaml").replace("setWeight: 25", "setWeight: 40"));
    let mut reopened = Sim::open(
        edited,
        sim.fleet.clone(),
        healthy(),
        sim.store.clone(),
        sim.now,
    );
    assert_eq!(
        reopened.run_until(sim.now.plus(Duration::from_secs(60))),
        Some(Outcome::Aborted)
    );
    let refused = reopened.step(Some(Command::Resume)).expect("answer");
    assert!(refused.is_err());
    assert_eq!(reopened.step(Some(Command::Retry)), Some(Ok(())));
}

#[test]
fn a_measurement_result_shape_is_unchanged() {
    // The driver hands providers the metric as the template wrote it.
    let mut sim = Sim::start(seed(), 1, healthy());
    sim.run_until(secs(40));
    let (_, request) = sim.measure_requests().into_iter().next().expect("request");
    assert_eq!(request.metric.name, "pod-readiness");
    let _: MeasurementResult = MeasurementResult::sampled(1.0, 1);
}

/// A rollout judged in the background by a judge metric.
fn judged() -> Arc<RolloutSpec> {
    spec(&[(
        "rollout.yaml",
        "apiVersion: canary.dev/v1alpha1\nkind: CanaryRollout\nmetadata: {name: web}\nspec:\n  routes: [web]\n  stableVersion: web-v1\n  canaryVersion: web-v2\n  analysis: {templates: [{templateName: judge}]}\n  steps:\n  - setWeight: 10\n  - pause: {duration: 30s}\n  - setWeight: 50\n  - pause: {duration: 30s}\n---\napiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: judge}\nspec:\n  metrics:\n  - name: judge\n    interval: 1s\n    provider:\n      judge: {route: web}\n",
    )])
}

/// A judge stand-in: counts its looks in its carry, and says Failed once
/// it has counted `fail_at` (never when 0).
fn counting_judge(fail_at: u64) -> FakeMetrics {
    FakeMetrics::carrying(move |request, _| {
        let looks = request.carry.as_ref().and_then(|c| c.as_u64()).unwrap_or(0) + 1;
        let verdict = if fail_at > 0 && looks >= fail_at {
            "Failed"
        } else {
            "NotEnoughData"
        };
        let value = canary_analysis::MetricValue::Map(
            [(
                "verdict".to_owned(),
                canary_analysis::MetricValue::String(verdict.to_owned()),
            )]
            .into_iter()
            .collect(),
        );
        canary_rollout::driver::Measured {
            result: MeasurementResult::sampled(value, looks),
            carry: Some(serde_json::json!(looks)),
        }
    })
}

fn carried(request: &canary_rollout::driver::MeasureRequest) -> Option<u64> {
    request.carry.as_ref().and_then(|c| c.as_u64())
}

#[test]
fn a_metrics_carry_goes_on_over_steps_and_restarts() {
    let spec = judged();
    let mut sim = Sim::start(Arc::clone(&spec), 1, counting_judge(0));
    assert_eq!(sim.run_until(secs(40)), None);
    let carries: Vec<Option<u64>> = sim
        .measure_requests()
        .iter()
        .map(|(_, r)| carried(r))
        .collect();
    assert_eq!(carries[0], None);
    // Each request carries what the one before handed back, over the step
    // from 10% to 50%.
    for pair in carries.windows(2) {
        assert_eq!(pair[1], Some(pair[0].unwrap_or(0) + 1), "{carries:?}");
    }
    let saved = sim.store.saved().expect("saved");
    let last = *carries.last().unwrap();
    assert!(saved.carry["judge"].as_u64() >= last, "{:?}", saved.carry);
    // A restart goes on from the saved carry.
    let mut resumed = Sim::open(
        Arc::clone(&spec),
        sim.fleet.clone(),
        sim.metrics.clone(),
        sim.store.clone(),
        sim.now,
    );
    assert_eq!(resumed.run_until(secs(50)), None);
    let (_, first) = resumed
        .measure_requests()
        .into_iter()
        .next()
        .expect("a measurement after the restart");
    assert_eq!(carried(&first), saved.carry["judge"].as_u64());
    assert_eq!(resumed.run_until(secs(200)), Some(Outcome::Promoted));
}

#[test]
fn a_retry_judges_the_new_attempt_anew() {
    let spec = judged();
    let mut sim = Sim::start(Arc::clone(&spec), 1, counting_judge(5));
    assert_eq!(sim.run_until(secs(60)), Some(Outcome::Aborted));
    assert!(sim
        .store
        .saved()
        .expect("saved")
        .carry
        .contains_key("judge"));
    assert_eq!(sim.step(Some(Command::Retry)), Some(Ok(())));
    let retried_at = sim.now;
    sim.run_until(secs(70));
    let after: Vec<Option<u64>> = sim
        .measure_requests()
        .into_iter()
        .filter(|(at, _)| *at >= retried_at)
        .map(|(_, r)| carried(&r))
        .collect();
    assert_eq!(after.first(), Some(&None), "{after:?}");
}

#[test]
fn positions_saved_before_carries_existed_still_load() {
    let mut sim = Sim::start(seed(), 1, healthy());
    sim.run_until(secs(20));
    let mut json = serde_json::to_value(sim.store.saved().expect("saved")).unwrap();
    assert!(json.get("carry").is_none(), "no carry, no field: {json}");
    json.as_object_mut().unwrap().remove("carry");
    let position = canary_rollout::driver::Position::from_json(&json).expect("loads");
    assert!(position.carry.is_empty());
}
