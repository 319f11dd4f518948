//! `canary run --watch`: after a rollout ends the controller keeps
//! running, and a rollout file naming a new canary version starts a new
//! rollout from the first step.

use std::time::Duration;

use crate::stage::Stage;

fn rollout(canary: &str) -> String {
    crate::stage::rollout(canary, "", &["setWeight: 30", "pause: {}"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_canary_version_starts_a_new_rollout() {
    let stage = Stage::start(false).await;
    let path = stage.write_rollout(&rollout("v2"));
    let mut args = stage.run_args(&path, &stage.admin_url());
    args.push("--watch".to_owned());
    let controller = stage.controller(&args).await;
    controller
        .wait_for("v2 at 30%", Duration::from_secs(30), |s| {
            s.phase == "Paused" && s.traffic.canary.as_deref() == Some("v2")
        })
        .await;

    // The same file rewritten with another canary version.
    let temp = path.with_extension("new");
    std::fs::write(&temp, rollout("v3")).unwrap();
    std::fs::rename(&temp, &path).unwrap();
    let status = controller
        .wait_for("a new rollout of v3", Duration::from_secs(30), |s| {
            s.traffic.canary.as_deref() == Some("v3") && s.phase == "Paused"
        })
        .await;
    assert_eq!(status.traffic.canary_weight, 30.0);
    assert!(
        status
            .events
            .iter()
            .any(|e| e.kind == "Started" && e.reason.contains("v3")),
        "{:?}",
        status.events
    );
    let pushed = stage.pushed();
    assert_eq!(pushed.canary.as_deref(), Some("v3"));
    assert!(
        controller.log().contains("new canary version v3"),
        "{}",
        controller.log()
    );
}
