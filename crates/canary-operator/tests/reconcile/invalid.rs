//! A rollout that cannot run as written: the status says why (with the
//! object and field), one Warning event is published, and nothing else is
//! touched.

use canary_kube::fake_apiserver::{CannedResponse, Exchange};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_missing_template_is_reported_once_and_nothing_is_pushed() {
    let spec = rollout_spec_json(json!([
        {"setWeight": 10},
        {"analysis": {"templates": [{"templateName": "pod-health"}]}}
    ]));
    let clock = ManualClock::at(T0);
    let reads = || {
        vec![
            get(STABLE_PATH, &deployment("web-v1", "web:1", 3, 3, 1, 1)),
            get(CANARY_PATH, &deployment("web-v2", "web:2", 1, 1, 1, 1)),
            Exchange::new(
                "GET",
                TEMPLATE_PATH,
                CannedResponse::status(
                    404,
                    "NotFound",
                    "analysistemplates.argoproj.io \"pod-health\" not found",
                ),
            ),
        ]
    };
    let mut script = reads();
    script.extend(post_events(1));
    script.push(put_status("101"));
    let (fake, _) = reconcile(&rollout_object(&spec, None), script, clock.clone()).await;
    let requests = fake.requests();
    assert_script_played(&fake);
    assert_eq!(event_reasons(&requests), ["InvalidSpec"]);
    let event = requests
        .iter()
        .find(|r| r.method == "POST")
        .unwrap()
        .body_json()
        .unwrap();
    assert_eq!(event["type"], "Warning");
    assert_eq!(
        event["note"],
        "canaryrollout shop/web: spec: analysistemplate shop/pod-health does not exist"
    );
    let written = &statuses(&requests)[0];
    assert_eq!(written["status"]["phase"], "Invalid");
    assert_eq!(
        condition(written, "SpecValid"),
        ("False".into(), "InvalidSpec".into())
    );

    // Reconciled again unchanged: no second event, no write.
    let status = last_status(&requests);
    let (again, _) = reconcile(&rollout_object(&spec, Some(&status)), reads(), clock).await;
    assert_eq!(again.requests().len(), 3, "{:#?}", calls(&again.requests()));
}

#[tokio::test]
async fn a_spec_error_names_the_field_of_the_resource() {
    let spec = rollout_spec_json(json!([{"setWeight": 10, "pause": {}}]));
    let clock = ManualClock::at(T0);
    let mut script = vec![
        get(STABLE_PATH, &deployment("web-v1", "web:1", 3, 3, 1, 1)),
        get(CANARY_PATH, &deployment("web-v2", "web:2", 1, 1, 1, 1)),
    ];
    script.extend(post_events(1));
    script.push(put_status("101"));
    let (fake, _) = reconcile(&rollout_object(&spec, None), script, clock).await;
    let requests = fake.requests();
    assert_script_played(&fake);
    let written = &statuses(&requests)[0];
    assert!(
        written["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("canaryrollout shop/web: spec.steps[0]: a step does one thing"),
        "{written}"
    );
}
