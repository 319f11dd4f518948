//! The HTTP API and the CLI that talks to it, against a running
//! `canary run`: commands need the bearer token when one is set, the CLI
//! prints status as a table or JSON, and `/metrics`, `/healthz`, `/readyz`
//! answer.

use std::process::Command;
use std::time::Duration;

use canary_lab::load::Client;

use crate::stage::{rollout, Stage};

fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let binary = canary_lab::paths::canary_binary().unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(binary)
        .args(args)
        .output()
        .expect("canary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_need_the_token_and_the_cli_drives_the_rollout() {
    let stage = Stage::start(false).await;
    let rollout = stage.write_rollout(&rollout(
        "v2",
        "",
        &[
            "setWeight: 20",
            "pause: {}",
            "setWeight: 60",
            "pause: {}",
            "setWeight: 100",
        ],
    ));
    let mut args = stage.run_args(&rollout, &stage.admin_url());
    args.extend(["--token".to_owned(), "s3cret-token".to_owned()]);
    let mut controller = stage.controller(&args).await;
    controller
        .wait_for("the first pause", Duration::from_secs(30), |s| {
            s.phase == "Paused"
        })
        .await;
    let api = controller.api().to_owned();
    let addr: std::net::SocketAddr = api.trim_start_matches("http://").parse().unwrap();
    let raw = Client::new(addr, "canary");

    // Reads are open; commands without the token are refused.
    assert_eq!(raw.get("/healthz", &[]).await.unwrap().status, 200);
    let ready = raw.get("/readyz", &[]).await.unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
    let (code, _, stderr) = cli(&["resume", "--server", &api]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("token"), "{stderr}");
    let (code, _, stderr) = cli(&["resume", "--server", &api, "--token", "wrong"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        controller.status().await.traffic.canary_weight,
        20.0,
        "a refused command changed nothing"
    );

    // With the token: resume to the next pause, shown as a table.
    let (code, stdout, stderr) = cli(&["resume", "--server", &api, "--token", "s3cret-token"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("rollout app"), "{stdout}");
    controller
        .wait_for("60% and paused", Duration::from_secs(10), |s| {
            s.phase == "Paused" && s.traffic.canary_weight == 60.0
        })
        .await;

    // Every Envoy shows the pushed 60% in its weight gauges.
    let applied = controller
        .wait_for("the Envoys to apply 60%", Duration::from_secs(10), |s| {
            s.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    assert_eq!(applied.traffic.canary_weight, 60.0);
    let (code, stdout, _) = cli(&["status", "--server", &api]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("applied by every Envoy"), "{stdout}");

    // A command the rollout cannot take now is refused with the reason.
    let (code, _, stderr) = cli(&["retry", "--server", &api, "--token", "s3cret-token"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("refused"), "{stderr}");

    // Status as JSON for scripts.
    let (code, stdout, _) = cli(&["status", "--server", &api, "--json"]);
    assert_eq!(code, Some(0));
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("JSON status");
    assert_eq!(status["traffic"]["canaryWeight"], 60.0);
    assert_eq!(status["phase"], "Paused");
    assert_eq!(status["push"]["applied"]["confirmed"], true);

    // Prometheus text.
    let metrics = raw.get("/metrics", &[]).await.unwrap().body;
    assert!(
        metrics.contains("canary_rollout_canary_weight_percent{rollout=\"app\"} 60"),
        "{metrics}"
    );
    assert!(
        metrics.contains("canary_rollout_phase{rollout=\"app\",phase=\"Paused\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("canary_pushes_total{rollout=\"app\",result=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("canary_push_applied{rollout=\"app\"} 1"),
        "{metrics}"
    );

    // Promote fully: straight to the end.
    let (code, _, stderr) = cli(&[
        "promote",
        "--full",
        "--server",
        &api,
        "--token",
        "s3cret-token",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(controller.wait_exit(Duration::from_secs(10)).await, Some(0));
}
