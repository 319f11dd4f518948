//! Hundreds of idle connections to the API, under a small open-files
//! limit, do not stop the controller: the API serves a capped number of
//! connections and keeps the other descriptors for state saves, pushes and
//! Envoy's stats, so the rollout goes on to the end.

use std::time::Duration;

use crate::stage::{rollout, Stage};

/// Open files the controller may have.
const OPEN_FILES: usize = 128;

/// Idle connections tried against the API, well past that limit (those
/// past the API's cap and its listen queue are refused by the kernel).
const IDLE: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_open_files_limit_do_not_stop_the_rollout() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("this test needs `prlimit` (util-linux): apt-get install util-linux");
    }
    let stage = Stage::start(false).await;
    let rollout = stage.write_rollout(&rollout(
        "v2",
        "",
        &[
            "setWeight: 20",
            "pause: {duration: 3s}",
            "setWeight: 50",
            "pause: {duration: 2s}",
            "setWeight: 100",
        ],
    ));
    let args = stage.run_args(&rollout, &stage.admin_url());
    let limit = format!("--nofile={OPEN_FILES}:{OPEN_FILES}");
    let mut controller = stage.controller_under(&args, &["prlimit", &limit]).await;
    controller
        .wait_for("the first pause", Duration::from_secs(30), |s| {
            s.phase == "Paused"
        })
        .await;
    let addr = controller.api().trim_start_matches("http://").to_owned();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        match tokio::net::TcpStream::connect(&addr).await {
            Ok(stream) => idle.push(stream),
            Err(_) => break,
        }
    }
    assert!(
        idle.len() > OPEN_FILES + 16,
        "only {} idle connections could be opened",
        idle.len()
    );
    let code = controller.wait_exit(Duration::from_secs(60)).await;
    let log = controller.log();
    assert_eq!(code, Some(0), "the rollout did not end promoted:\n{log}");
    assert!(!log.contains("Too many open files"), "{log}");
    drop(idle);
}
