//! The seed flow end to end: promotion step by step, rollback with the
//! canary scaled down only once weight 0 is seen, retry.

use std::time::Duration;

use canary_api::{Actor, CommandRequest, Refusal};
use canary_rollout::Command;
use canary_test_apiserver::RecordedRequest;
use serde_json::json;

use crate::support::{healthy, phase, rollout, rollouts, step, weight, Cluster};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flow_promotes_step_by_step_and_returns_traffic_to_stable() {
    let cluster = Cluster::start(
        rollout(json!([
            {"setWeight": 10},
            {"pause": {"duration": "300ms"}},
            {"analysis": {"templates": [{"templateName": "check"}]}},
            {"setWeight": 50},
            {"pause": {"duration": "300ms"}},
            {"setWeight": 100}
        ])),
        healthy(),
    )
    .await;

    cluster
        .until("the promotion copies the template", LIMIT, |s| {
            phase(s) == "Promoting"
        })
        .await;
    cluster
        .until_deployment("web-v1", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
        })
        .await;
    let split = cluster.split_in_object();
    assert_eq!(
        (split.stable.as_str(), split.canary.as_deref()),
        ("web-v2", None),
        "traffic stays on the canary until stable is ready: {split}"
    );
    cluster.mark_ready("web-v1");
    let status = cluster
        .until("promoted", LIMIT, |s| phase(s) == "Promoted")
        .await;

    let split = cluster.split_in_object();
    assert_eq!(split.stable, "web-v1");
    assert_eq!(split.canary, None, "every request to stable: {split}");
    assert_eq!(cluster.deployment("web-v2")["spec"]["replicas"], 0);
    let mut raised: Vec<f64> = cluster.pushes().into_iter().filter(|w| *w > 0.0).collect();
    raised.dedup();
    assert_eq!(raised, [10.0, 50.0, 100.0], "each step's weight, in order");
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.status == "False" && c.reason == "Promoted"),
        "{:?}",
        status.conditions
    );
    cluster.assert_every_call_allowed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_scales_the_canary_down_after_weight_zero_is_seen_and_only_retry_resumes() {
    let cluster = Cluster::start(
        rollout(json!([{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}])),
        healthy(),
    )
    .await;
    cluster
        .until("paused at 25%", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 25.0
        })
        .await;
    assert_eq!(cluster.weight_in_object(), 25.0);

    cluster.command("abort").await;
    cluster
        .until("aborted", LIMIT, |s| phase(s) == "Aborted")
        .await;
    cluster
        .until_deployment("web-v2", |d| d["spec"]["replicas"] == 0)
        .await;
    assert_eq!(cluster.weight_in_object(), 0.0);
    let canary = cluster.deployment("web-v2");
    assert_eq!(
        canary["metadata"]["annotations"]["canary.dev/replicas-before-scale-down"],
        "2"
    );
    let stored = cluster
        .server
        .object("canary.dev/v1alpha1", "CanaryRollout", "shop", "web")
        .unwrap();
    assert!(
        stored["metadata"]["annotations"]
            .get("canary.dev/command")
            .is_none(),
        "the command is taken once"
    );
    // The push of weight 0 came before the scale-down (the request log is
    // written once the answer is sent).
    let deadline = tokio::time::Instant::now() + LIMIT;
    let is_scale_down = |r: &RecordedRequest| {
        r.attributes.resource == "deployments" && r.attributes.verb == "patch"
    };
    while !cluster
        .assert_every_call_allowed()
        .iter()
        .any(is_scale_down)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scale-down logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let requests = cluster.assert_every_call_allowed();
    let last_push = requests
        .iter()
        .rposition(|r| r.attributes.resource == "wasmplugins" && r.attributes.verb == "patch")
        .expect("pushes");
    let scale_down = requests
        .iter()
        .position(is_scale_down)
        .expect("the scale-down");
    assert!(
        last_push < scale_down,
        "weight 0 is pushed before the scale-down"
    );
    let seen_zero = cluster
        .fleet
        .pushes()
        .last()
        .map(|(_, split)| split.traffic.effective_weight().percent());
    assert_eq!(seen_zero, Some(0.0));

    // Nothing but retry gives the canary traffic again.
    cluster.command("resume").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(phase(&cluster.status()), "Aborted");
    assert_eq!(cluster.weight_in_object(), 0.0);

    cluster.command("retry").await;
    cluster
        .until_deployment("web-v2", |d| d["spec"]["replicas"] == 2)
        .await;
    cluster.mark_ready("web-v2");
    let status = cluster
        .until("paused at 25% again", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 25.0
        })
        .await;
    assert_eq!(step(&status), 1);
    assert_eq!(cluster.weight_in_object(), 25.0);
    cluster.assert_every_call_allowed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_still_arrive_after_the_watch_history_expires() {
    let cluster = Cluster::start(
        rollout(json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}])),
        healthy(),
    )
    .await;
    cluster
        .until("paused at 10%", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 10.0
        })
        .await;
    cluster.server.expire_watch_history();
    cluster.server.drop_watch_connections();
    cluster.command("promote").await;
    cluster
        .until("paused at 50%", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 50.0
        })
        .await;
    cluster.assert_every_call_allowed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_canary_template_takes_its_traffic_away_until_it_is_ready_then_starts_over() {
    let cluster = Cluster::start(
        rollout(json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}])),
        healthy(),
    )
    .await;
    cluster
        .until("paused at 10%", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 10.0
        })
        .await;
    cluster.command("promote").await;
    cluster
        .until("paused at 50%", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 50.0
        })
        .await;

    // A new image: the Deployment controller has not rolled it out yet.
    let mut canary = cluster.deployment("web-v2");
    canary["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:3");
    canary["metadata"]["generation"] = json!(2);
    cluster.server.seed(canary).expect("the new template");
    cluster
        .until("pending", LIMIT, |s| phase(s) == "Pending")
        .await;
    assert_eq!(
        cluster.weight_in_object(),
        0.0,
        "no traffic to unready pods"
    );

    cluster.mark_ready("web-v2");
    let status = cluster
        .until("the new rollout at its first pause", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 10.0
        })
        .await;
    assert_eq!(step(&status), 1);
    cluster.assert_every_call_allowed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_through_the_http_api_are_answered_with_the_report() {
    let cluster = Cluster::start(
        rollout(json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}])),
        healthy(),
    )
    .await;
    cluster
        .until("paused at 10%", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 10.0
        })
        .await;
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(30);
    let ask = |command| {
        let (request, answer) = CommandRequest::new(
            Some("shop/web".into()),
            command,
            Actor::local("test"),
            deadline(),
        );
        cluster.ctx.command(request);
        answer
    };
    let refused = ask(Command::Retry).await.unwrap().unwrap_err();
    assert!(matches!(refused, Refusal::Refused(_)), "{refused}");
    let report = ask(Command::Promote).await.unwrap().expect("accepted");
    assert_eq!(report.traffic.canary_weight, 50.0);
    let (request, answer) = CommandRequest::new(
        Some("shop/other".into()),
        Command::Abort,
        Actor::local("test"),
        deadline(),
    );
    cluster.ctx.command(request);
    assert!(matches!(
        answer.await.unwrap(),
        Err(Refusal::NoSuchRollout(_))
    ));
    cluster
        .until("paused at 50%", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 50.0
        })
        .await;
    cluster.assert_every_call_allowed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_rollout_is_forgotten() {
    let cluster = Cluster::start(
        rollout(json!([{"setWeight": 10}, {"pause": {}}])),
        healthy(),
    )
    .await;
    cluster
        .until("paused at 10%", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 10.0
        })
        .await;
    assert!(cluster.ctx.board.report(Some("shop/web")).is_some());
    rollouts(&cluster.admin)
        .delete("web", &Default::default())
        .await
        .expect("deleted");
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !(cluster.ctx.runners.is_empty() && cluster.ctx.board.report(Some("shop/web")).is_none())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deleted rollout is still driven"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
