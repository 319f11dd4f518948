//! A new `CanaryRollout`: the first reconcile starts the rollout, saves
//! its state, announces each decision, applies the first weight to the
//! WasmPlugin, and reports it in force.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

fn steps() -> serde_json::Value {
    json!([
        {"setWeight": 10},
        {"pause": {"duration": "30s"}},
        {"analysis": {"templates": [{"templateName": "pod-health"}]}},
        {"setWeight": 100}
    ])
}

#[tokio::test]
async fn the_first_reconcile_applies_the_first_weight_and_records_it() {
    let spec = rollout_spec_json(steps());
    let object = rollout_object(&spec, None);
    let clock = ManualClock::at(T0);
    let before = plugin_config("web-v1", Some(("web-v2", 0)));
    let after = plugin_config("web-v1", Some(("web-v2", 10)));
    let mut script = vec![
        get(STABLE_PATH, &deployment("web-v1", "web:1", 3, 3, 1, 1)),
        get(CANARY_PATH, &deployment("web-v2", "web:2", 1, 1, 1, 1)),
        get(TEMPLATE_PATH, &template_json()),
        get_plugin(&before),
        put_status("101"),
    ];
    script.extend(post_events(3));
    script.extend([get_plugin(&before), apply_plugin(&after), put_status("102")]);

    let (fake, requeue) = reconcile(&object, script, clock).await;

    let requests = fake.requests();
    assert_eq!(
        calls(&requests),
        [
            format!("GET {STABLE_PATH}"),
            format!("GET {CANARY_PATH}"),
            format!("GET {TEMPLATE_PATH}"),
            format!("GET {PLUGIN_PATH}"),
            format!("PUT {STATUS_PATH}"),
            format!("POST {EVENTS_PATH}"),
            format!("POST {EVENTS_PATH}"),
            format!("POST {EVENTS_PATH}"),
            format!("GET {PLUGIN_PATH}"),
            format!("PATCH {PLUGIN_PATH}"),
            format!("PUT {STATUS_PATH}"),
        ]
    );
    assert_script_played(&fake);

    // The WasmPlugin patch: server-side apply of pluginConfig only, as the
    // controller's field manager.
    let apply = &requests[9];
    assert_eq!(
        apply.query_params(),
        [
            ("fieldManager".to_owned(), "canary-controller".to_owned()),
            ("force".to_owned(), "true".to_owned())
        ]
    );
    assert_eq!(
        apply.header("content-type"),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(
        apply.body_json().unwrap(),
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": "canary", "namespace": "shop"},
            "spec": {"pluginConfig": after}
        })
    );

    // One event per decision, about the rollout.
    assert_eq!(
        event_reasons(&requests),
        ["Started", "WeightChanged", "PauseStarted"]
    );
    let event = requests[6].body_json().unwrap();
    assert_eq!(event["regarding"]["kind"], "CanaryRollout");
    assert_eq!(event["regarding"]["uid"], "uid-web");
    assert_eq!(event["reportingController"], "canary.dev/canary-controller");
    assert_eq!(event["eventTime"], "2026-01-01T10:00:00.000000Z");

    // The state is saved before the push, then the split is reported in force.
    let written = statuses(&requests);
    assert_eq!(written.len(), 2);
    let saved = &written[0];
    assert_eq!(saved["metadata"]["resourceVersion"], "100");
    assert_eq!(saved["status"]["phase"], "Paused");
    assert_eq!(saved["status"]["step"], 1);
    assert_eq!(saved["status"]["steps"], 4);
    assert_eq!(saved["status"]["observedGeneration"], 1);
    assert_eq!(saved["status"]["traffic"]["canaryWeight"], 0.0);
    assert!(saved["status"]["state"].is_object(), "{saved}");
    assert_eq!(
        condition(saved, "SpecValid"),
        ("True".into(), "Valid".into())
    );
    assert_eq!(
        condition(saved, "Progressing"),
        ("True".into(), "Paused".into())
    );

    let reported = &written[1];
    assert_eq!(reported["metadata"]["resourceVersion"], "101");
    assert_eq!(reported["status"]["traffic"]["canaryWeight"], 10.0);
    assert_eq!(reported["status"]["traffic"]["stableWeight"], 90.0);
    assert_eq!(reported["status"]["pausedUntil"], "2026-01-01T10:00:30Z");
    assert_eq!(
        condition(reported, "TrafficPushed"),
        ("True".into(), "InForce".into())
    );

    // Next look: when the pause ends.
    assert_eq!(requeue, Duration::from_secs(30));
}

#[tokio::test]
async fn a_reconcile_with_nothing_due_writes_nothing() {
    let spec = rollout_spec_json(steps());
    let clock = ManualClock::at(T0);
    let before = plugin_config("web-v1", Some(("web-v2", 0)));
    let after = plugin_config("web-v1", Some(("web-v2", 10)));
    let mut script = vec![
        get(STABLE_PATH, &deployment("web-v1", "web:1", 3, 3, 1, 1)),
        get(CANARY_PATH, &deployment("web-v2", "web:2", 1, 1, 1, 1)),
        get(TEMPLATE_PATH, &template_json()),
        get_plugin(&before),
        put_status("101"),
    ];
    script.extend(post_events(3));
    script.extend([get_plugin(&before), apply_plugin(&after), put_status("102")]);
    let (first, _) = reconcile(&rollout_object(&spec, None), script, clock.clone()).await;
    let status = last_status(&first.requests());

    // Ten seconds later, mid-pause: the watch delivers the object with the
    // status just written.
    clock.set(T0 + 10_000);
    let again = rollout_object(&spec, Some(&status));
    let script = vec![
        get(STABLE_PATH, &deployment("web-v1", "web:1", 3, 3, 1, 1)),
        get(CANARY_PATH, &deployment("web-v2", "web:2", 1, 1, 1, 1)),
        get(TEMPLATE_PATH, &template_json()),
        get_plugin(&after),
    ];
    let (second, requeue) = reconcile(&again, script, clock).await;

    assert_eq!(
        calls(&second.requests()),
        [
            format!("GET {STABLE_PATH}"),
            format!("GET {CANARY_PATH}"),
            format!("GET {TEMPLATE_PATH}"),
            format!("GET {PLUGIN_PATH}"),
        ],
        "only reads: no status write, no event, no push"
    );
    assert_eq!(requeue, Duration::from_secs(20));
}
