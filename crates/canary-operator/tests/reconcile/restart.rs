//! A new canary version (a change of the canary Deployment's pod
//! template) during a rollout: the canary goes back to 0% at once, and the
//! rollout starts again from the first step once the new pods are ready.
//! And a weight step never sends more traffic to a canary that is not
//! ready.

use std::time::Duration;

use canary_analysis::Timestamp;
use canary_rollout::Rollout;
use serde_json::json;

use crate::support::*;

fn steps() -> serde_json::Value {
    json!([
        {"setWeight": 25},
        {"pause": {"duration": "1m"}},
        {"setWeight": 50},
        {"pause": {}}
    ])
}

#[tokio::test]
async fn a_new_canary_template_restarts_the_rollout_from_the_first_step() {
    let spec = rollout_spec_json(steps());
    let old_canary = deployment("web-v2", "web:2", 2, 2, 1, 1);
    let (rollout, _) = Rollout::start(engine_spec(&spec), Timestamp::from_millis(T0));
    let status = saved_status(&spec, &rollout, &old_canary);
    let clock = ManualClock::at(T0 + 20_000);

    // web:3 is rolling out on the canary Deployment: 1 of 2 pods updated.
    let rolling = deployment("web-v2", "web:3", 2, 1, 2, 2);
    let mut script = vec![
        get(STABLE_PATH, &deployment("web-v1", "web:1", 3, 3, 1, 1)),
        get(CANARY_PATH, &rolling),
        get_plugin(&plugin_config("web-v1", Some(("web-v2", 25)))),
        put_status("101"),
    ];
    script.extend(post_events(1));
    script.extend([
        get_plugin(&plugin_config("web-v1", Some(("web-v2", 25)))),
        apply_plugin(&plugin_config("web-v1", Some(("web-v2", 0)))),
        put_status("102"),
    ]);
    let (fake, requeue) =
        reconcile(&rollout_object(&spec, Some(&status)), script, clock.clone()).await;
    let requests = fake.requests();
    assert_script_played(&fake);
    assert_eq!(event_reasons(&requests), ["NewCanaryRevision"]);
    let written = statuses(&requests);
    assert_eq!(written[0]["status"]["phase"], "Pending");
    assert!(
        written[0]["status"].get("state").is_none(),
        "the old run is dropped"
    );
    assert_ne!(
        written[0]["status"]["canaryRevision"],
        json!(status.canary_revision),
        "the new version's revision"
    );
    assert_eq!(written[1]["status"]["traffic"]["canaryWeight"], 0.0);
    assert!(written[1]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("waiting for canary Deployment web-v2"));
    assert_eq!(requeue, Duration::from_secs(5));

    // The new pods are ready: the rollout starts again at step 1 (25%).
    clock.set(T0 + 40_000);
    let pending = last_status(&requests);
    let ready = deployment("web-v2", "web:3", 2, 2, 2, 2);
    let mut script = vec![
        get(STABLE_PATH, &deployment("web-v1", "web:1", 3, 3, 1, 1)),
        get(CANARY_PATH, &ready),
        get_plugin(&plugin_config("web-v1", Some(("web-v2", 0)))),
        put_status("103"),
    ];
    script.extend(post_events(3));
    script.extend([
        get_plugin(&plugin_config("web-v1", Some(("web-v2", 0)))),
        apply_plugin(&plugin_config("web-v1", Some(("web-v2", 25)))),
        put_status("104"),
    ]);
    let (fake, _) = reconcile(&rollout_object(&spec, Some(&pending)), script, clock).await;
    let requests = fake.requests();
    assert_script_played(&fake);
    assert_eq!(
        event_reasons(&requests),
        ["Started", "WeightChanged", "PauseStarted"]
    );
    assert_eq!(statuses(&requests)[0]["status"]["step"], 1);
}

#[tokio::test]
async fn more_traffic_is_held_until_the_canary_is_ready() {
    let spec = rollout_spec_json(steps());
    let canary = deployment("web-v2", "web:2", 2, 2, 1, 1);
    let (rollout, _) = Rollout::start(engine_spec(&spec), Timestamp::from_millis(T0));
    let status = saved_status(&spec, &rollout, &canary);
    // The pause ends; one canary pod has become unready meanwhile.
    let clock = ManualClock::at(T0 + 60_000);
    let degraded = deployment("web-v2", "web:2", 2, 1, 1, 1);
    let mut script = vec![
        get(STABLE_PATH, &deployment("web-v1", "web:1", 3, 3, 1, 1)),
        get(CANARY_PATH, &degraded),
        get_plugin(&plugin_config("web-v1", Some(("web-v2", 25)))),
        put_status("101"),
    ];
    script.extend(post_events(3));
    script.extend(post_events(1));
    script.push(put_status("102"));
    let (fake, requeue) = reconcile(&rollout_object(&spec, Some(&status)), script, clock).await;
    let requests = fake.requests();
    assert_script_played(&fake);
    assert!(
        !calls(&requests).iter().any(|c| c.starts_with("PATCH")),
        "50% is not sent to a canary with 1 of 2 pods ready"
    );
    assert_eq!(
        event_reasons(&requests),
        ["PauseEnded", "WeightChanged", "PauseStarted", "TrafficHeld"]
    );
    let reported = &statuses(&requests)[1];
    assert_eq!(
        condition(reported, "TrafficPushed"),
        ("False".into(), "Held".into())
    );
    assert_eq!(reported["status"]["traffic"]["canaryWeight"], 25.0);
    assert_eq!(requeue, Duration::from_secs(5));
}
