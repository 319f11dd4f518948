//! Rollback: a failed analysis sends the canary back to weight 0 first,
//! and only once that is applied is the canary Deployment scaled to zero;
//! the stable Deployment is never touched.

use std::time::Duration;

use canary_analysis::Timestamp;
use canary_kube::fake_apiserver::{CannedResponse, Exchange};
use canary_rollout::Rollout;
use serde_json::json;

use crate::support::*;

fn steps() -> serde_json::Value {
    json!([
        {"setWeight": 25},
        {"analysis": {"templates": [{"templateName": "pod-health"}]}},
        {"setWeight": 100}
    ])
}

/// The rollout as saved at 25% with its analysis due, and the canary.
fn running_at_25_percent() -> (
    serde_json::Value,
    canary_operator::resource::CanaryRollout,
    serde_json::Value,
) {
    let spec = rollout_spec_json(steps());
    let canary = deployment("web-v2", "web:2", 2, 2, 1, 1);
    let (rollout, _) = Rollout::start(engine_spec(&spec), Timestamp::from_millis(T0));
    let status = saved_status(&spec, &rollout, &canary);
    let object = rollout_object(&spec, Some(&status));
    (spec, object, canary)
}

fn reads(canary: &serde_json::Value) -> Vec<Exchange> {
    vec![
        get(STABLE_PATH, &deployment("web-v1", "web:1", 3, 3, 1, 1)),
        get(CANARY_PATH, canary),
        get(TEMPLATE_PATH, &template_json()),
        get_plugin(&plugin_config("web-v1", Some(("web-v2", 25)))),
        pods(0, 2),
        put_status("101"),
    ]
}

#[tokio::test]
async fn weight_zero_is_applied_before_the_canary_is_scaled_down() {
    let (_, object, canary) = running_at_25_percent();
    let clock = ManualClock::at(T0 + 1_000);
    let zero = plugin_config("web-v1", Some(("web-v2", 0)));
    let mut script = reads(&canary);
    script.extend(post_events(2));
    script.extend([
        get_plugin(&plugin_config("web-v1", Some(("web-v2", 25)))),
        apply_plugin(&zero),
        patch_deployment(CANARY_PATH, &deployment("web-v2", "web:2", 0, 2, 2, 1)),
    ]);
    script.extend(post_events(1));
    script.push(put_status("102"));

    let (fake, requeue) = reconcile(&object, script, clock).await;

    let requests = fake.requests();
    assert_script_played(&fake);
    let sent = calls(&requests);
    let push = sent
        .iter()
        .position(|c| *c == format!("PATCH {PLUGIN_PATH}"))
        .unwrap();
    let scale = sent
        .iter()
        .position(|c| *c == format!("PATCH {CANARY_PATH}"))
        .unwrap();
    assert!(
        push < scale,
        "weight 0 first, then the scale-down: {sent:#?}"
    );
    assert!(
        !sent
            .iter()
            .any(|c| c.starts_with("PATCH") && c.ends_with("/deployments/web-v1")),
        "stable is untouched"
    );

    assert_eq!(
        requests[push].body_json().unwrap()["spec"]["pluginConfig"],
        zero
    );
    assert_eq!(
        requests[scale].body_json().unwrap(),
        json!({
            "metadata": {"annotations": {"canary.dev/replicas-before-scale-down": "2"}},
            "spec": {"replicas": 0}
        })
    );
    assert_eq!(
        requests[scale].header("content-type"),
        Some("application/merge-patch+json")
    );

    assert_eq!(
        event_reasons(&requests),
        ["AnalysisFailed", "Aborted", "ScaledDown"]
    );
    let written = statuses(&requests);
    assert_eq!(
        written[0]["status"]["phase"], "Aborting",
        "the decision, saved first"
    );
    assert_eq!(written[1]["status"]["phase"], "Aborted");
    assert_eq!(written[1]["status"]["traffic"]["canaryWeight"], 0.0);
    assert_eq!(
        condition(&written[1], "Progressing"),
        ("False".into(), "Aborted".into())
    );
    let metric = &written[1]["status"]["analyses"][0]["metrics"][0];
    assert_eq!(metric["name"], "pod-readiness");
    assert_eq!(metric["phase"], "Failed");
    assert_eq!(metric["latest"]["value"], "0");
    assert_eq!(requeue, Duration::from_secs(60));
}

#[tokio::test]
async fn the_canary_keeps_its_replicas_while_weight_zero_is_not_applied() {
    let (_, object, canary) = running_at_25_percent();
    let clock = ManualClock::at(T0 + 1_000);
    let mut script = reads(&canary);
    script.extend(post_events(2));
    script.extend([
        get_plugin(&plugin_config("web-v1", Some(("web-v2", 25)))),
        Exchange::new(
            "PATCH",
            &format!("{PLUGIN_PATH}?fieldManager=canary-controller.split.web&force=true"),
            CannedResponse::status(503, "ServiceUnavailable", "etcd is down"),
        ),
    ]);
    script.extend(post_events(1));
    script.push(put_status("102"));

    let (fake, requeue) = reconcile(&object, script, clock).await;

    let requests = fake.requests();
    assert_script_played(&fake);
    assert!(
        !calls(&requests)
            .iter()
            .any(|c| c.contains("/deployments/") && c.starts_with("PATCH")),
        "no scale-down before weight 0 is in force: {:#?}",
        calls(&requests)
    );
    assert_eq!(
        event_reasons(&requests),
        ["AnalysisFailed", "Aborted", "PushFailed"]
    );
    let written = statuses(&requests);
    assert_eq!(written[1]["status"]["phase"], "Aborting");
    assert_eq!(
        condition(&written[1], "TrafficPushed"),
        ("False".into(), "PushFailed".into())
    );
    assert_eq!(written[1]["status"]["traffic"]["canaryWeight"], 25.0);
    assert_eq!(requeue, Duration::from_secs(5), "retried soon");
}
