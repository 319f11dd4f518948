//! With a metrics source unreachable (Prometheus, here), measurements
//! error, the errors accumulate, and the rollout is rolled back: never
//! promoted. (Envoy's admin endpoint stays readable, so the rollback is
//! seen in force; an unreadable Envoy is the `observed` tests' case.)

use std::time::Duration;

use canary_rollout::EventKind;

use crate::stage::{seed_rollout, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_metrics_source_ends_in_a_rollback() {
    let mut stage = Stage::start(false).await;
    stage.start_load();
    // Allow one consecutive error (Argo's default is four, each retried
    // after 10 s); the second in a row fails the analysis.
    let rollout = stage.write_rollout(&seed_rollout("    consecutiveErrorLimit: 1\n", true));
    let closed = canary_lab::prometheus::free_port().unwrap();
    let mut args = stage.run_args(&rollout, &stage.admin_url());
    args.push("--prometheus-url".to_owned());
    args.push(format!("http://127.0.0.1:{closed}"));
    let mut controller = stage.controller(&args).await;
    let code = controller.wait_exit(Duration::from_secs(60)).await;
    let summary = stage.stop_load().await;
    assert_eq!(code, Some(3), "should end aborted:\n{}", controller.log());
    let saved = stage.saved();
    assert!(saved.events.iter().any(|e| e.kind == EventKind::Aborted));
    assert!(!saved.events.iter().any(|e| e.kind == EventKind::Promoted));
    let weights: Vec<&str> = saved
        .events
        .iter()
        .filter(|e| e.kind == EventKind::WeightChanged)
        .map(|e| e.reason.as_str())
        .collect();
    assert_eq!(
        weights.len(),
        1,
        "the weight never went past the first step: {weights:?}"
    );
    let pushed = stage.pushed();
    assert_eq!(pushed.canary_weight, canary_config::Weight::ZERO);
    assert!(
        controller.log().contains("measurement error"),
        "{}",
        controller.log()
    );
    assert_eq!(summary.failed(), 0);

    // Started again (with the metrics source back): the abort is not
    // forgotten, nothing is pushed but canary 0%.
    let mut again = stage.controller(&args).await;
    assert_eq!(again.wait_exit(Duration::from_secs(10)).await, Some(3));
    assert!(again.log().contains("resuming from"), "{}", again.log());
    let after = stage.saved();
    assert_eq!(
        crate::stage::decisions(&after.events),
        crate::stage::decisions(&saved.events),
        "a restart after the abort decided something"
    );
    assert_eq!(stage.pushed().canary_weight, canary_config::Weight::ZERO);
}
