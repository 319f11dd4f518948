//! The controller checks that the Envoys apply what it pushed, through the
//! filter's `weight_bp` gauges: a push Envoy never loads (here an ECDS file
//! Envoy does not watch) is reported in the status, never taken for done,
//! and once the verify deadline passes the rollout rolls back with a
//! warning.

use std::time::Duration;

use crate::stage::{rollout, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_envoy_never_loads_is_reported_and_warned_about() {
    let stage = Stage::start(false).await;
    let rollout = stage.write_rollout(&rollout(
        "v2",
        "  verifyDeadline: 4s\n",
        &["setWeight: 20", "pause: {}"],
    ));
    let mut args = stage.run_args(&rollout, &stage.admin_url());
    // Same resource, but a copy this Envoy does not watch.
    let elsewhere = stage.dir.path().join("not-watched.ecds.yaml");
    std::fs::copy(stage.envoy.ecds_path().expect("ECDS"), &elsewhere).expect("copied");
    let push = args
        .iter()
        .position(|a| a == "--push")
        .expect("run_args has --push");
    args[push + 1] = format!("ecds-file:{}", elsewhere.display());
    let controller = stage.controller(&args).await;

    let status = controller
        .wait_for(
            "the status to say the Envoys still send 0%",
            Duration::from_secs(15),
            |s| {
                s.push.applied.as_ref().is_some_and(|a| {
                    a.differs
                        .as_deref()
                        .is_some_and(|d| d.contains("route app shows v1 100%"))
                })
            },
        )
        .await;
    assert_eq!(status.traffic.canary_weight, 20.0);
    let pushed = std::fs::read_to_string(&elsewhere).expect("pushed file");
    assert!(
        pushed.contains(r#"canary_weight\":20"#),
        "the controller did push 20% (to the wrong file): {pushed}"
    );
    let applied = status.push.applied.expect("applied view");
    assert!(!applied.confirmed);
    assert_eq!(applied.after_ms, None);

    assert_eq!(status.phase, "Progressing", "the pause does not start");
    // The operator hears about it in the log once the deadline is over,
    // and the rollout rolls back.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !controller
        .log()
        .contains("was not seen in force by every proxy")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no warning in the log:\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = controller.log();
    let warning = log
        .lines()
        .find(|l| l.contains("was not seen in force by every proxy"))
        .unwrap_or_default();
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("v2 20%, v1 80%"), "{warning}");
    // The warning is logged as the driver decides; the report follows.
    controller
        .wait_for(
            "the status to show the rollback",
            Duration::from_secs(10),
            |s| {
                s.traffic.canary_weight == 0.0
                    && ["RollingBack", "Aborted"].contains(&s.phase.as_str())
            },
        )
        .await;
}
