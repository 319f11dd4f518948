//! The controller killed with SIGKILL in the middle of a rollout and
//! started again continues from the same step with the same weights, and
//! repeats no decision.

use std::time::Duration;

use canary_rollout::EventKind;

use crate::stage::{rollout, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_controller_resumes_where_it_was() {
    let mut stage = Stage::start(false).await;
    stage.start_load();
    let rollout = stage.write_rollout(&rollout(
        "v2",
        "",
        &[
            "setWeight: 10",
            "pause: {duration: 1s}",
            "setWeight: 25",
            "pause: {}",
            "setWeight: 50",
            "pause: {duration: 1s}",
            "setWeight: 100",
        ],
    ));
    let args = stage.run_args(&rollout, &stage.admin_url());
    let mut first = stage.controller(&args).await;
    let before = first
        .wait_for(
            "the indefinite pause at 25%",
            Duration::from_secs(30),
            |s| s.phase == "Paused" && s.traffic.canary_weight == 25.0,
        )
        .await;
    first.kill_hard();

    let mut second = stage.controller(&args).await;
    let after = second.status().await;
    assert_eq!(after.step, before.step, "resumed at another step");
    assert_eq!(after.traffic, before.traffic, "resumed with other weights");
    assert_eq!(after.phase, "Paused");
    assert!(second.log().contains("resuming from"), "{}", second.log());

    second
        .client()
        .command(canary_rollout::Command::Resume)
        .await
        .unwrap();
    let code = second.wait_exit(Duration::from_secs(30)).await;
    let summary = stage.stop_load().await;
    assert_eq!(code, Some(0), "{}", second.log());
    let saved = stage.saved();
    let changes: Vec<&str> = saved
        .events
        .iter()
        .filter(|e| e.kind == EventKind::WeightChanged)
        .map(|e| e.reason.as_str())
        .collect();
    assert_eq!(
        changes.len(),
        4,
        "each weight exactly once (10, 25, 50, 100): {changes:?}"
    );
    assert_eq!(
        saved
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Promoted)
            .count(),
        1
    );
    assert_eq!(summary.failed(), 0);

    // Started again after the promotion: it stays promoted and repeats
    // nothing.
    let mut third = stage.controller(&args).await;
    assert_eq!(third.wait_exit(Duration::from_secs(10)).await, Some(0));
    assert!(third.log().contains("resuming from"), "{}", third.log());
    let again = stage.saved();
    assert_eq!(
        crate::stage::decisions(&again.events),
        crate::stage::decisions(&saved.events),
        "a restart after the promotion decided something"
    );
    assert_eq!(stage.pushed().stable, "v2");
}
