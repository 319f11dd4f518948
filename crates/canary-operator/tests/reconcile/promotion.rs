//! Promotion by copying the canary's pod template: stable gets the
//! template, and only once stable reports every replica updated and ready
//! does traffic return to it; then the canary is scaled down.

use canary_analysis::Timestamp;
use canary_operator::resource::CanaryRollout;
use canary_rollout::Rollout;
use serde_json::json;

use crate::support::*;

/// Saved at 100% in a 10 s pause; the pause ends at T0 + 10 s.
fn promoted_after_pause() -> (serde_json::Value, CanaryRollout) {
    let spec = rollout_spec_json(json!([
        {"setWeight": 100},
        {"pause": {"duration": 10}}
    ]));
    let canary = deployment("web-v2", "web:2", 2, 2, 1, 1);
    let (rollout, _) = Rollout::start(engine_spec(&spec), Timestamp::from_millis(T0));
    let status = saved_status(&spec, &rollout, &canary);
    let object = rollout_object(&spec, Some(&status));
    (spec, object)
}

fn plugin_calls(requests: &[canary_kube::fake_apiserver::RecordedRequest]) -> usize {
    calls(requests)
        .iter()
        .filter(|c| *c == &format!("PATCH {PLUGIN_PATH}"))
        .count()
}

#[tokio::test]
async fn traffic_returns_to_stable_only_after_stable_reports_ready() {
    let (spec, object) = promoted_after_pause();
    let clock = ManualClock::at(T0 + 10_000);
    let canary = deployment("web-v2", "web:2", 2, 2, 1, 1);
    let all_canary = plugin_config("web-v1", Some(("web-v2", 100)));

    // 1. The pause ends, the machine promotes: copy the template to stable.
    let mut script = vec![
        get(STABLE_PATH, &deployment("web-v1", "web:1", 3, 3, 4, 4)),
        get(CANARY_PATH, &canary),
        get_plugin(&all_canary),
        put_status("101"),
    ];
    script.extend(post_events(2));
    script.push(patch_deployment(
        STABLE_PATH,
        &deployment("web-v1", "web:2", 3, 3, 5, 4),
    ));
    script.extend(post_events(1));
    script.push(put_status("102"));
    let (first, _) = reconcile(&object, script, clock.clone()).await;
    let requests = first.requests();
    assert_script_played(&first);
    assert_eq!(
        event_reasons(&requests),
        ["PauseEnded", "Promoted", "TemplateCopied"]
    );
    let copy = requests
        .iter()
        .find(|r| r.method == "PATCH" && r.path == STABLE_PATH)
        .unwrap();
    assert_eq!(
        copy.body_json().unwrap(),
        json!({
            "metadata": {"resourceVersion": "rv-web-v1-4"},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}
        }),
        "the canary's template, stable's labels kept, guarded by stable's version"
    );
    assert_eq!(
        plugin_calls(&requests),
        0,
        "the canary keeps serving meanwhile"
    );
    assert_eq!(statuses(&requests)[1]["status"]["phase"], "Promoting");

    // 2. Stable rolls: the new generation is not observed yet, then not
    //    every replica is ready. Traffic stays on the canary.
    let mut status = last_status(&requests);
    for stable in [
        deployment("web-v1", "web:2", 3, 3, 5, 4),
        deployment("web-v1", "web:2", 3, 2, 5, 5),
    ] {
        clock.set(clock_now(&clock) + 5_000);
        let object = rollout_object(&spec, Some(&status));
        let script = vec![
            get(STABLE_PATH, &stable),
            get(CANARY_PATH, &canary),
            get_plugin(&all_canary),
            put_status("103"),
        ];
        let (waiting, requeue) = reconcile(&object, script, clock.clone()).await;
        let requests = waiting.requests();
        assert_eq!(plugin_calls(&requests), 0, "stable is not ready: {stable}");
        assert!(!calls(&requests).iter().any(|c| c.starts_with("PATCH")));
        if let Some(written) = statuses(&requests).last() {
            assert_eq!(written["status"]["phase"], "Promoting");
            assert!(written["status"]["message"]
                .as_str()
                .unwrap()
                .contains("waiting for stable Deployment web-v1"));
            status = serde_json::from_value(written["status"].clone()).unwrap();
        }
        assert_eq!(requeue, std::time::Duration::from_secs(5));
    }

    // 3. Stable is ready: all traffic to it, then the canary scaled down.
    clock.set(clock_now(&clock) + 5_000);
    let object = rollout_object(&spec, Some(&status));
    let stable_only = plugin_config("web-v1", None);
    let mut script = vec![
        get(STABLE_PATH, &deployment("web-v1", "web:2", 3, 3, 5, 5)),
        get(CANARY_PATH, &canary),
        get_plugin(&all_canary),
        get_plugin(&all_canary),
        apply_plugin(&stable_only),
    ];
    script.extend(post_events(1));
    script.push(patch_deployment(
        CANARY_PATH,
        &deployment("web-v2", "web:2", 0, 2, 2, 1),
    ));
    script.extend(post_events(1));
    script.push(put_status("104"));
    let (last, _) = reconcile(&object, script, clock).await;
    let requests = last.requests();
    assert_script_played(&last);
    let sent = calls(&requests);
    let push = sent
        .iter()
        .position(|c| *c == format!("PATCH {PLUGIN_PATH}"))
        .unwrap();
    let scale = sent
        .iter()
        .position(|c| *c == format!("PATCH {CANARY_PATH}"))
        .unwrap();
    assert!(push < scale);
    assert_eq!(
        requests[push].body_json().unwrap()["spec"]["pluginConfig"],
        stable_only
    );
    assert_eq!(
        event_reasons(&requests),
        ["TrafficReturnedToStable", "ScaledDown"]
    );
    let written = statuses(&requests);
    assert_eq!(written[0]["status"]["phase"], "Promoted");
    assert_eq!(written[0]["status"]["traffic"]["stable"], "web-v1");
    assert_eq!(written[0]["status"]["traffic"]["stableWeight"], 100.0);
    assert_eq!(
        condition(&written[0], "Progressing"),
        ("False".into(), "Promoted".into())
    );
}

fn clock_now(clock: &ManualClock) -> u64 {
    use canary_rollout::ports::Clock;
    clock.now().millis()
}
