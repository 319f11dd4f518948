//! The seed's failure scenario: the canary goes bad at 10% and the
//! controller rolls back to canary 0%, stable 100%; no request fails once
//! the rollback is in effect.

use std::time::Duration;

use canary_lab::backend::Faults;
use canary_rollout::EventKind;

use crate::stage::{seed_rollout, unix_ms, Stage};

async fn fault_at_ten_percent(faults: Faults, name: &str) {
    let mut stage = Stage::start(true).await;
    stage.start_load();
    let rollout = stage.write_rollout(&seed_rollout("", true));
    let args = stage.run_args(&rollout, &stage.admin_url());
    let mut controller = stage.controller(&args).await;
    controller
        .wait_for("the canary at 10%", Duration::from_secs(30), |s| {
            s.traffic.canary_weight == 10.0
        })
        .await;
    let fault_at = unix_ms();
    stage.canary.set_faults(&faults).await.unwrap();
    let code = controller.wait_exit(Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let summary = stage.stop_load().await;
    assert_eq!(
        code,
        Some(3),
        "canary run should end aborted (exit 3):\n{}",
        controller.log()
    );

    // Before exiting, the controller saw the rollback in Envoy's own
    // weight gauges.
    let log = controller.log();
    let confirmed = log
        .lines()
        .rfind(|l| l.contains("every proxy (1) shows"))
        .unwrap_or_else(|| panic!("the rollback was never confirmed:\n{log}"));
    assert!(confirmed.contains("v2 0%, v1 100%"), "{confirmed}");

    let pushed = stage.pushed();
    assert_eq!(pushed.stable, "v1");
    assert_eq!(
        pushed.canary_weight,
        canary_config::Weight::ZERO,
        "canary 0% after the rollback"
    );

    // Rollback in effect: after the last request the canary served.
    let absolute =
        |r: &canary_lab::load::Record| stage.load_started_ms + r.sent_at.as_millis() as u64;
    let last_canary = summary
        .records
        .iter()
        .filter(|r| r.served_by() == Some("v2"))
        .map(absolute)
        .max()
        .expect("the canary served some requests");
    assert!(
        last_canary >= fault_at,
        "the canary stopped serving before the fault"
    );
    let after: Vec<_> = summary
        .records
        .iter()
        .filter(|r| absolute(r) > last_canary)
        .collect();
    assert!(
        after.len() > 50,
        "too little load after the rollback: {}",
        after.len()
    );
    assert!(
        after
            .iter()
            .all(|r| r.served_by() == Some("v1") && !r.failed()),
        "requests after the rollback must all succeed on v1"
    );
    let failed_before = summary.records.iter().filter(|r| r.failed()).count();
    let saved = stage.saved();
    assert!(
        saved.events.iter().any(|e| e.kind == EventKind::Aborted),
        "{:?}",
        saved.events
    );
    assert!(!saved.events.iter().any(|e| e.kind == EventKind::Promoted));
    println!(
        "{name}: fault onset to rollback in effect {} ms; {failed_before} requests failed before it, 0 after",
        last_canary.saturating_sub(fault_at)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_answering_5xx_is_rolled_back() {
    fault_at_ten_percent(
        Faults {
            error_rate: Some(1.0),
            ..Faults::default()
        },
        "5xx",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_failing_its_health_checks_is_rolled_back() {
    fault_at_ten_percent(
        Faults {
            healthy: Some(false),
            ..Faults::default()
        },
        "health checks",
    )
    .await;
}
