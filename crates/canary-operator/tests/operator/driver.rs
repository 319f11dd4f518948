//! The driver's behaviours, through the operator: what the proxies show
//! gates every step, drift is handled only toward stable, a command never
//! waits behind a measurement, and a position that no longer fits its
//! rollout is held.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_analysis::{MeasurementResult, Timestamp};
use canary_rollout::fixtures::{FakeFleet, FakeMetrics};
use canary_rollout::ports::SystemClock;
use canary_test_apiserver::{ApiStatus, RequestMatch};
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::support::{has_condition, healthy, phase, rollout, rollouts, step, weight, Cluster};

const LIMIT: Duration = Duration::from_secs(30);

fn paused_at(percent: f64) -> impl Fn(&canary_operator::resource::CanaryRolloutStatus) -> bool {
    move |s| {
        phase(s) == "Paused"
            && weight(s) == percent
            && s.report
                .as_ref()
                .and_then(|r| r.push.applied.as_ref())
                .is_some_and(|a| a.confirmed)
    }
}

fn events(status: &canary_operator::resource::CanaryRolloutStatus) -> Vec<String> {
    status
        .report
        .as_ref()
        .map(|r| r.events.iter().map(|e| e.kind.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_pushes_never_promote_and_roll_back() {
    let fleet = FakeFleet::new(&["web".to_owned()], "web-v1", 2).with_clock(Arc::new(SystemClock));
    fleet.fail_pushes(Some("the proxies cannot be reached"));
    let cluster = Cluster::start_with(
        rollout(json!([{"setWeight": 10}, {"setWeight": 100}])),
        healthy(),
        fleet,
    )
    .await;
    cluster
        .until("pushes fail", LIMIT, |s| has_condition(s, "PushFailing"))
        .await;
    cluster
        .until("rolled back", LIMIT, |s| {
            matches!(phase(s), "RollingBack" | "Aborted")
        })
        .await;
    cluster.fleet.fail_pushes(None);
    cluster
        .until("the rollback is seen", LIMIT, |s| phase(s) == "Aborted")
        .await;
    assert!(
        cluster
            .seen
            .lock()
            .unwrap()
            .iter()
            .all(|s| !matches!(phase(s), "Promoted" | "Promoting")),
        "never promoted"
    );
    assert_eq!(cluster.weight_in_object(), 0.0);
    cluster.assert_every_call_allowed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_toward_the_canary_is_reasserted() {
    let cluster = Cluster::start(
        rollout(json!([{"setWeight": 10}, {"pause": {}}])),
        healthy(),
    )
    .await;
    cluster.until("paused at 10%", LIMIT, paused_at(10.0)).await;
    let before = cluster.pushes().len();
    cluster
        .fleet
        .tamper(0, &[("web-v1", 5000), ("web-v2", 5000)]);
    cluster
        .until("drift up is noticed", LIMIT, |s| {
            events(s).iter().any(|e| e == "DriftUp")
        })
        .await;
    cluster
        .until("in force again", LIMIT, paused_at(10.0))
        .await;
    assert!(
        cluster.pushes().len() > before,
        "the split was pushed again"
    );
    assert_eq!(cluster.pushes().last(), Some(&10.0));
    assert_eq!(cluster.weight_in_object(), 10.0);
    cluster.assert_every_call_allowed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_toward_stable_pauses_with_a_drift_condition() {
    let cluster = Cluster::start(
        rollout(json!([{"setWeight": 10}, {"pause": {"duration": "1h"}}, {"setWeight": 50}])),
        healthy(),
    )
    .await;
    cluster.until("paused at 10%", LIMIT, paused_at(10.0)).await;
    let before = cluster.pushes();
    cluster.fleet.tamper(1, &[("web-v1", 10_000)]);
    let status = cluster
        .until("paused for drift", LIMIT, |s| {
            has_condition(s, "Drift")
                && s.report.as_ref().and_then(|r| r.pause_reason.as_deref()) == Some("Drift")
        })
        .await;
    assert_eq!(phase(&status), "Paused");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        cluster.pushes(),
        before,
        "the canary's share is never raised back without a person"
    );
    assert!(cluster
        .status()
        .conditions
        .iter()
        .any(|c| c.type_ == "Drift"));
    cluster.assert_every_call_allowed();
}

/// When a measurement was taken, and since when it counted.
type Asked = (Timestamp, Option<Timestamp>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_metrics_wait_until_the_split_is_seen() {
    let asked: Arc<Mutex<Vec<Asked>>> = Arc::default();
    let record = Arc::clone(&asked);
    let metrics = FakeMetrics::new(move |_, now, since| {
        record.lock().unwrap().push((now, since));
        MeasurementResult::sampled(1.0, 10)
    });
    let fleet = FakeFleet::new(&["web".to_owned()], "web-v1", 2).with_clock(Arc::new(SystemClock));
    fleet.set_apply_delay(Duration::from_millis(1500));
    let cluster = Cluster::start_with(
        rollout(json!([
            {"setWeight": 10},
            {"analysis": {"templates": [{"templateName": "check"}]}},
            {"pause": {}}
        ])),
        metrics,
        fleet,
    )
    .await;
    cluster
        .until("past the analysis", LIMIT, |s| {
            phase(s) == "Paused" && step(s) == 2
        })
        .await;
    let pushed_at = cluster
        .fleet
        .pushes()
        .iter()
        .find(|(_, split)| split.traffic.effective_weight().percent() == 10.0)
        .map(|(at, _)| *at)
        .expect("10% was pushed");
    let applied_at = pushed_at.plus(Duration::from_millis(1500));
    let asked = asked.lock().unwrap().clone();
    assert!(!asked.is_empty());
    for (at, since) in &asked {
        match since {
            Some(since) => assert!(
                *since >= applied_at,
                "a measurement at {at} counted from {since}, before the proxies showed the split at {applied_at}"
            ),
            None => assert!(*at < applied_at.plus(Duration::from_secs(1))),
        }
    }
    assert!(asked.iter().any(|(_, since)| since.is_some()));
    cluster.assert_every_call_allowed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_is_obeyed_while_a_measurement_hangs() {
    let metrics = healthy();
    metrics.hang("ready");
    let cluster = Cluster::start(
        rollout(json!([
            {"setWeight": 10},
            {"analysis": {"templates": [{"templateName": "check"}]}},
            {"setWeight": 50}
        ])),
        metrics,
    )
    .await;
    cluster
        .until("the analysis runs", LIMIT, |s| {
            step(s) == 1 && s.report.as_ref().is_some_and(|r| !r.analyses.is_empty())
        })
        .await;
    cluster.command("abort").await;
    cluster
        .until(
            "aborted though the measurement hangs",
            Duration::from_secs(10),
            |s| phase(s) == "Aborted",
        )
        .await;
    assert_eq!(cluster.weight_in_object(), 0.0);
    cluster.assert_every_call_allowed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_edited_mid_rollout_hold_the_split() {
    let cluster = Cluster::start(
        rollout(json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}])),
        healthy(),
    )
    .await;
    cluster.until("paused at 10%", LIMIT, paused_at(10.0)).await;
    let patch = json!({"spec": {"steps": [{"setWeight": 10}, {"setWeight": 60}, {"pause": {}}]}});
    rollouts(&cluster.admin)
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let status = cluster
        .until("held", LIMIT, |s| has_condition(s, "Held"))
        .await;
    assert_eq!(phase(&status), "Held");
    assert_eq!(step(&status), 0, "never restarted, never moved on");
    cluster.command("resume").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        cluster.pushes().iter().all(|w| *w <= 10.0),
        "the canary's share is not raised while held: {:?}",
        cluster.pushes()
    );
    assert_eq!(cluster.weight_in_object(), 10.0);
    // Retry starts again with the rollout as it is now.
    cluster.command("retry").await;
    cluster
        .until("running the new steps", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 60.0
        })
        .await;
    cluster.assert_every_call_allowed();
}

/// Replaces every `from` string inside `value` by `to`.
fn rename(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(text) if text == from => *text = to.to_owned(),
        Value::Array(items) => items.iter_mut().for_each(|v| rename(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| rename(v, from, to)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_position_is_held_not_obeyed() {
    let cluster = Cluster::start(
        rollout(json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}])),
        healthy(),
    )
    .await;
    cluster.until("paused at 10%", LIMIT, paused_at(10.0)).await;
    let api = rollouts(&cluster.admin);
    let mut object = api.get("web").await.unwrap();
    rename(
        &mut object.data["status"]["state"]["state"],
        "web-v2",
        "web-v9",
    );
    api.replace_status("web", &PostParams::default(), &object)
        .await
        .expect("the status is edited");
    let status = cluster
        .until("held", LIMIT, |s| has_condition(s, "Held"))
        .await;
    let held = status.conditions.iter().find(|c| c.type_ == "Held");
    assert!(
        held.is_some_and(|c| c.message.contains("does not fit")),
        "{status:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        cluster
            .fleet
            .pushes()
            .iter()
            .all(|(_, split)| split.traffic.canary.as_deref() != Some("web-v9")),
        "the edited version is never pushed"
    );
    assert!(cluster.weight_in_object() <= 10.0);
    assert_ne!(cluster.split_in_object().canary.as_deref(), Some("web-v9"));
    cluster.assert_every_call_allowed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_that_cannot_be_saved_pushes_toward_stable_and_is_counted() {
    let cluster = Cluster::start(
        rollout(json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}])),
        healthy(),
    )
    .await;
    cluster.until("paused at 10%", LIMIT, paused_at(10.0)).await;
    let before = cluster.pushes().len();
    for _ in 0..3 {
        cluster.server.fail_next(
            RequestMatch::new("update", "canaryrollouts").subresource("status"),
            ApiStatus::internal("etcdserver: request timed out"),
        );
    }
    cluster.command("promote").await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !cluster.pushes()[before..].contains(&0.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fail-safe push: {:?}",
            cluster.pushes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !cluster.pushes()[before..].contains(&50.0),
        "the unsaved decision is never carried out: {:?}",
        cluster.pushes()
    );
    let counted = "canary_reconcile_errors_total{rollout=\"shop/web\",kind=\"fatal\"} 1";
    while !cluster.ctx.board.metrics.render().contains(counted) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the failure is not counted: {}",
            cluster.ctx.board.metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The next reconcile resumes from the saved position.
    cluster
        .until("paused at 10% again", LIMIT, paused_at(10.0))
        .await;
    cluster.assert_every_call_allowed();
}
