//! The seed's success scenario: the split measured at the upstreams follows
//! 10 → 25 → 50 → 75 → 100, the rollout ends Promoted with the canary as
//! the new stable, and no request fails.

use std::time::Duration;

use canary_e2e::split::assert_share;
use canary_rollout::EventKind;

use crate::stage::{seed_rollout, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_rollout_promotes_with_the_split_following_each_step() {
    let mut stage = Stage::start(true).await;
    stage.start_load();
    let rollout = stage.write_rollout(&seed_rollout("", true));
    let args = stage.run_args(&rollout, &stage.admin_url());
    let mut controller = stage.controller(&args).await;
    let code = controller.wait_exit(Duration::from_secs(120)).await;
    // Let the load run a moment on the promoted split.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let summary = stage.stop_load().await;
    assert_eq!(
        code,
        Some(0),
        "canary run did not end promoted:\n{}",
        controller.log()
    );

    let saved = stage.saved();
    assert_eq!(
        saved.state.as_ref().expect("state").status(),
        canary_rollout::Status::Promoted
    );
    let pushed = stage.pushed();
    assert_eq!(pushed.stable, "v2", "the canary is the new stable");
    assert_eq!(pushed.canary_weight, canary_config::Weight::ZERO);

    // The weight changes, in order, and the split measured at the upstreams
    // between them.
    let changes: Vec<u64> = saved
        .events
        .iter()
        .filter(|e| e.kind == EventKind::WeightChanged)
        .map(|e| e.at.millis())
        .collect();
    let promoted = saved
        .events
        .iter()
        .find(|e| e.kind == EventKind::Promoted)
        .map(|e| e.at.millis())
        .expect("a Promoted event");
    assert_eq!(changes.len(), 5, "weight changes: {:?}", saved.events);
    let weights = [10.0, 25.0, 50.0, 75.0, 100.0];
    let mut measured = Vec::new();
    for (i, weight) in weights.iter().enumerate() {
        let from = changes[i] + 300;
        let to = changes.get(i + 1).copied().unwrap_or(promoted);
        let window: Vec<_> = summary
            .records
            .iter()
            .filter(|r| {
                let at = stage.load_started_ms + r.sent_at.as_millis() as u64;
                at >= from && at < to
            })
            .collect();
        let canary = window
            .iter()
            .filter(|r| r.served_by() == Some("v2"))
            .count();
        measured.push((*weight, canary, window.len()));
        if window.len() >= 50 {
            assert_share(canary, window.len(), *weight);
        }
    }
    println!("split per step (weight, canary, requests): {measured:?}");
    assert!(
        measured.iter().filter(|(_, _, n)| *n >= 50).count() >= 4,
        "too few requests per step: {measured:?}"
    );
    let after = summary
        .records
        .iter()
        .filter(|r| stage.load_started_ms + r.sent_at.as_millis() as u64 > promoted + 300)
        .collect::<Vec<_>>();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|r| r.served_by() == Some("v2")),
        "after promotion everything goes to v2"
    );
    assert_eq!(
        summary.failed(),
        0,
        "failed requests: {:?}",
        summary
            .records
            .iter()
            .filter(|r| r.failed())
            .take(5)
            .collect::<Vec<_>>()
    );
    println!("success: {} requests, 0 failed", summary.total());
}
