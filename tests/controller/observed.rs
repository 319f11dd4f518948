//! The controller decides from what Envoy shows, not from what it pushed:
//! pushes that fail never lead to a promotion, a split changed behind its
//! back is corrected toward stable or paused for a person, one state file
//! has one writer, and an edited state is never obeyed.

use std::time::{Duration, Instant};

use canary_rollout::Command;

use crate::stage::{rollout, Stage};

const DEADLINE: &str = "  verifyDeadline: 3s\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_pushes_end_in_a_rollback_never_a_promotion() {
    let stage = Stage::start(false).await;
    let rollout = stage.write_rollout(&rollout(
        "v2",
        DEADLINE,
        &[
            "setWeight: 10",
            "pause: {duration: 2s}",
            "setWeight: 50",
            "pause: {duration: 1s}",
        ],
    ));
    // Pushes go to an ECDS file in a folder that disappears mid-rollout.
    let folder = stage.dir.path().join("ecds");
    std::fs::create_dir(&folder).expect("folder");
    let ecds = stage.envoy.ecds_path().expect("ECDS").to_path_buf();
    let mut args = stage.run_args(&rollout, &stage.admin_url());
    let push = args.iter().position(|a| a == "--push").expect("--push");
    // Envoy watches its own folder; the controller writes through a link
    // to it that stops working when the folder holding the link is moved.
    std::os::unix::fs::symlink(ecds.parent().expect("parent"), folder.join("envoy")).expect("link");
    args[push + 1] = format!(
        "ecds-file:{}",
        folder
            .join("envoy")
            .join(ecds.file_name().expect("name"))
            .display()
    );
    let mut controller = stage.controller(&args).await;
    controller
        .wait_for("10% in force", Duration::from_secs(15), |s| {
            s.traffic.canary_weight == 10.0 && s.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    std::fs::rename(&folder, stage.dir.path().join("ecds-moved")).expect("moved away");

    // 50% cannot be pushed; it is never seen, and 3 s later the rollout
    // rolls back, which cannot be pushed either: reported, not claimed.
    let status = controller
        .wait_for("the rollback not seen", Duration::from_secs(30), |s| {
            s.phase == "RollingBack" && s.conditions.iter().any(|c| c.kind == "SplitNotSeen")
        })
        .await;
    assert!(status.conditions.iter().any(|c| c.kind == "PushFailing"));
    assert_eq!(status.traffic.canary_weight, 0.0, "the intention is stable");
    let metrics = reqwest_get(&format!("{}/metrics", controller.api())).await;
    assert!(
        metrics.contains("canary_rollout_phase{rollout=\"app\",phase=\"RollingBack\"} 1"),
        "{metrics}"
    );
    assert!(!controller.log().contains("promoted"));

    // Asked to stop now, it says the rollback is not confirmed.
    controller.terminate();
    assert_eq!(controller.wait_exit(Duration::from_secs(10)).await, Some(4));
    assert!(controller
        .log()
        .contains("stopping before every proxy shows the rollback"));

    // With the folder back, the rollback goes out, is seen, and it ends.
    std::fs::rename(stage.dir.path().join("ecds-moved"), &folder).expect("moved back");
    let mut again = stage.controller(&args).await;
    assert_eq!(again.wait_exit(Duration::from_secs(20)).await, Some(3));
    let saved = stage.saved();
    assert!(saved
        .events
        .iter()
        .all(|e| e.kind != canary_rollout::EventKind::Promoted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_lowered_behind_its_back_pauses_the_rollout() {
    let stage = Stage::start(false).await;
    let rollout = stage.write_rollout(&rollout(
        "v2",
        DEADLINE,
        &["setWeight: 20", "pause: {duration: 30s}", "setWeight: 60"],
    ));
    let controller = stage
        .controller(&stage.run_args(&rollout, &stage.admin_url()))
        .await;
    controller
        .wait_for("20% in force", Duration::from_secs(15), |s| {
            s.traffic.canary_weight == 20.0 && s.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    let reverted = Instant::now();
    stage.overwrite_split(0.0);
    let status = controller
        .wait_for("a drift pause", Duration::from_secs(10), |s| {
            s.pause_reason.as_deref() == Some("Drift")
        })
        .await;
    let took = reverted.elapsed();
    // Envoy applies the file within milliseconds; the controller reads it
    // every 250 ms: two readings at most.
    assert!(
        took < Duration::from_millis(1500),
        "drift seen after {took:?}"
    );
    assert_eq!(status.phase, "Paused");
    assert!(status.conditions.iter().any(|c| c.kind == "Drift"));
    // Nothing raises it back on its own, and the pause does not run out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stage.pushed().canary_weight, canary_config::Weight::ZERO);
    // A person resumes: 20% again, in force.
    controller
        .client()
        .command(Command::Resume)
        .await
        .expect("resumed");
    controller
        .wait_for("20% in force again", Duration::from_secs(10), |s| {
            s.phase == "Paused"
                && s.pause_reason.as_deref() == Some("Step")
                && s.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_raised_behind_its_back_is_put_back_at_once() {
    let stage = Stage::start(false).await;
    let rollout = stage.write_rollout(&rollout("v2", DEADLINE, &["setWeight: 20", "pause: {}"]));
    let controller = stage
        .controller(&stage.run_args(&rollout, &stage.admin_url()))
        .await;
    controller
        .wait_for("20% in force", Duration::from_secs(15), |s| {
            s.push.applied.as_ref().is_some_and(|a| a.confirmed) && s.traffic.canary_weight == 20.0
        })
        .await;
    stage.overwrite_split(50.0);
    let status = controller
        .wait_for("the drift corrected", Duration::from_secs(10), |s| {
            s.events.iter().any(|e| e.kind == "DriftUp")
                && s.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    assert_eq!(status.phase, "Paused");
    assert_eq!(status.pause_reason.as_deref(), Some("Step"));
    assert_eq!(stage.pushed().canary_weight.basis_points(), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_state_file_has_one_writer_and_an_edited_state_is_held() {
    let stage = Stage::start(false).await;
    let rollout = stage.write_rollout(&rollout("v2", DEADLINE, &["setWeight: 20", "pause: {}"]));
    let args = stage.run_args(&rollout, &stage.admin_url());
    let mut first = stage.controller(&args).await;
    first
        .wait_for("20% in force", Duration::from_secs(15), |s| {
            s.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    let mut second = stage.controller(&args).await;
    assert_eq!(second.wait_exit(Duration::from_secs(10)).await, Some(1));
    let refusal = second.log();
    assert!(
        refusal.contains("in use by another canary run")
            && refusal.contains(&format!("pid {}", first.pid())),
        "{refusal}"
    );
    first.terminate();
    assert_eq!(first.wait_exit(Duration::from_secs(10)).await, Some(0));

    // Someone edits the state to name canary v9: it is never pushed.
    let path = stage.dir.path().join("state.json");
    let text = std::fs::read_to_string(&path).expect("state");
    std::fs::write(
        &path,
        text.replace("\"canary\": \"v2\"", "\"canary\": \"v9\""),
    )
    .expect("edited");
    let held = stage.controller(&args).await;
    let status = held
        .wait_for("held", Duration::from_secs(10), |s| s.phase == "Held")
        .await;
    assert!(status.message.unwrap_or_default().contains("v9"));
    assert_eq!(status.traffic.canary_weight, 0.0);
    let file = std::fs::read_to_string(stage.envoy.ecds_path().expect("ECDS")).expect("ECDS");
    assert!(!file.contains("v9"), "{file}");
    let refused = held.client().command(Command::Resume).await;
    assert!(refused.is_err(), "resume refused while held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_that_cannot_be_saved_stops_the_rollout_toward_stable() {
    let stage = Stage::start(false).await;
    let rollout = stage.write_rollout(&rollout("v2", DEADLINE, &["setWeight: 50", "pause: {}"]));
    let folder = stage.dir.path().join("state");
    std::fs::create_dir(&folder).expect("folder");
    let mut args = stage.run_args(&rollout, &stage.admin_url());
    let state = args.iter().position(|a| a == "--state").expect("--state");
    args[state + 1] = folder.join("state.json").display().to_string();
    let mut controller = stage.controller(&args).await;
    controller
        .wait_for("50% in force", Duration::from_secs(15), |s| {
            s.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    // The state folder turns into a file: nothing can be saved in it.
    std::fs::rename(&folder, stage.dir.path().join("state-moved")).expect("moved");
    std::fs::write(&folder, "not a folder").expect("file");
    let _ = controller.client().command(Command::Promote).await;
    assert_eq!(controller.wait_exit(Duration::from_secs(15)).await, Some(1));
    let log = controller.log();
    assert!(
        log.contains("pushed v2 0%, v1 100% before stopping"),
        "{log}"
    );
    assert_eq!(stage.pushed().canary_weight, canary_config::Weight::ZERO);
}

async fn reqwest_get(url: &str) -> String {
    let client = canary_sources::http::HttpClient::new().expect("client");
    let response = client
        .send(canary_sources::http::HttpRequest::get(url))
        .await
        .expect("GET");
    String::from_utf8_lossy(&response.body).into_owned()
}
