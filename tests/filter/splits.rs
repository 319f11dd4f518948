//! The split in `splits` (written by the controller) decides over the
//! route entry's own fields (written in Git), and its generation shows.

use canary_config::stats_names::Metric;
use canary_e2e::setup::{filter_config, served_by, Rig};
use canary_lab::envoy::Delivery;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_in_splits_decides() {
    // Git's entry says 0%; the controller's split says 100% to v2.
    let mut config = filter_config(0.0, json!({}));
    config["splits"] = json!({
        "app": { "stable": "v1", "canary": "v2", "canary_weight": 100, "generation": 1733100000000u64 }
    });
    let rig = Rig::start(Delivery::Inline, &config).await;
    assert_eq!(served_by(&rig.send_plain(50).await, "v2"), 50);
    rig.wait_counters(&[
        (Metric::Weight.envoy_name("app", "v2"), 10_000),
        (
            Metric::Generation.envoy_name("app", "v1"),
            1_733_100_000_000,
        ),
        (
            Metric::Generation.envoy_name("app", "v2"),
            1_733_100_000_000,
        ),
    ])
    .await;
}
