//! A person's command through the `canary.dev/command` annotation: the
//! annotation is removed first (guarded by the version read, so the
//! command runs at most once), then obeyed.

use canary_analysis::Timestamp;
use canary_kube::fake_apiserver::{CannedResponse, Exchange};
use canary_rollout::Rollout;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn abort_removes_the_annotation_then_rolls_back() {
    let spec = rollout_spec_json(json!([
        {"setWeight": 25},
        {"pause": {}}
    ]));
    let canary = deployment("web-v2", "web:2", 2, 2, 1, 1);
    let (rollout, _) = Rollout::start(engine_spec(&spec), Timestamp::from_millis(T0));
    let status = saved_status(&spec, &rollout, &canary);
    let mut object = rollout_object(&spec, Some(&status));
    object
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("canary.dev/command".into(), "abort".into());
    let clock = ManualClock::at(T0 + 5_000);

    let mut script = vec![
        Exchange::new(
            "PATCH",
            &format!("{ROLLOUT_PATH}?fieldManager=canary-controller"),
            CannedResponse::json(
                200,
                &json!({"apiVersion": "canary.dev/v1alpha1", "kind": "CanaryRollout",
                        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "150"},
                        "spec": spec}),
            ),
        ),
        get(STABLE_PATH, &deployment("web-v1", "web:1", 3, 3, 1, 1)),
        get(CANARY_PATH, &canary),
        get_plugin(&plugin_config("web-v1", Some(("web-v2", 25)))),
        put_status("151"),
    ];
    script.extend(post_events(2));
    script.extend([
        get_plugin(&plugin_config("web-v1", Some(("web-v2", 25)))),
        apply_plugin(&plugin_config("web-v1", Some(("web-v2", 0)))),
        patch_deployment(CANARY_PATH, &deployment("web-v2", "web:2", 0, 2, 2, 1)),
    ]);
    script.extend(post_events(1));
    script.push(put_status("152"));

    let (fake, _) = reconcile(&object, script, clock).await;
    let requests = fake.requests();
    assert_script_played(&fake);
    assert_eq!(
        requests[0].body_json().unwrap(),
        json!({"metadata": {"annotations": {"canary.dev/command": null}, "resourceVersion": "100"}}),
        "removed first, only from the version the command was read from"
    );
    assert_eq!(
        statuses(&requests)[0]["metadata"]["resourceVersion"],
        "150",
        "the status write follows the annotation's removal"
    );
    assert_eq!(
        event_reasons(&requests),
        ["CommandAccepted", "Aborted", "ScaledDown"]
    );
}
