//! The in-proxy guard and the controller: a canary that starts failing
//! every request is stopped inside Envoy within a few requests, and the
//! controller treats the trip as its own signal (not drift): it rolls the
//! rollout back everywhere, with the reason, and the rollback is seen.

use std::time::Duration;

use canary_lab::backend::Faults;
use serde_json::json;

use crate::stage::{rollout, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_trip_rolls_the_rollout_back() {
    let config = json!({
        "routes": [{
            "name": "app",
            "match": { "hosts": ["*"] },
            "stable": "v1",
            "canary": "v2",
            "canary_weight": 0,
            "guard": { "baseline_error_percent": 5 }
        }]
    });
    let mut stage = Stage::start_with(false, config).await;
    stage.start_load();
    let rollout = stage.write_rollout(&rollout(
        "v2",
        "",
        &["setWeight: 25", "pause: {duration: 10m}", "setWeight: 50"],
    ));
    let mut controller = stage
        .controller(&stage.run_args(&rollout, &stage.admin_url()))
        .await;
    controller
        .wait_for("25% in force", Duration::from_secs(15), |s| {
            s.traffic.canary_weight == 25.0 && s.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    stage
        .canary
        .set_faults(&Faults {
            error_rate: Some(1.0),
            ..Faults::default()
        })
        .await
        .expect("faults set");
    // The controller sees the trip, rolls back, sees the rollback: exit 3.
    assert_eq!(controller.wait_exit(Duration::from_secs(30)).await, Some(3));
    let log = controller.log();
    assert!(log.contains("GuardTripped"), "{log}");
    assert!(
        log.contains("the in-proxy guard stopped v2's traffic"),
        "{log}"
    );
    assert!(!log.contains("DriftDown"), "a trip is not drift:\n{log}");
    assert_eq!(stage.pushed().canary_weight, canary_config::Weight::ZERO);
    // The guard stops the canary within a handful of its requests, long
    // before the controller's own analysis could have.
    let summary = stage.stop_load().await;
    println!(
        "guard: {} of {} requests failed in all",
        summary.failed(),
        summary.total()
    );
    assert!(summary.failed() < 40, "{} failed", summary.failed());
}
