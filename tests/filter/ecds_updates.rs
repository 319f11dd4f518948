//! Live configuration over ECDS: bad updates are rejected while the last
//! good configuration keeps serving, and weight changes under load fail no
//! request and take effect within a second.

use std::time::{Duration, Instant};

use canary_config::stats_names::Metric;
use canary_e2e::setup::{filter_config, served_by, Rig};
use canary_lab::envoy::{Delivery, PushOutcome};
use canary_lab::load::{LoadGenerator, LoadPlan};
use serde_json::json;

const REJECTED: &str = "extension_config_discovery.http_filter.canary.update_rejected";

/// The filter's `weight_bp` gauges for `v1` and `v2` at `canary` percent.
fn weights(canary: u64) -> [(String, u64); 2] {
    [
        (
            Metric::Weight.envoy_name("app", "v1"),
            10_000 - canary * 100,
        ),
        (Metric::Weight.envoy_name("app", "v2"), canary * 100),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_update_is_rejected_and_the_previous_split_keeps_serving() {
    let mut rig = Rig::start(Delivery::Ecds, &filter_config(100.0, json!({}))).await;
    assert_eq!(served_by(&rig.send_plain(50).await, "v2"), 50);
    rig.wait_counters(&weights(100)).await;

    let bad_updates = [
        (
            filter_config(150.0, json!({})).to_string(),
            "routes[0].canary_weight",
        ),
        (
            filter_config(10.0, json!({ "stikcy": {} })).to_string(),
            "routes[0].stikcy",
        ),
        ("{\"routes\": [".to_owned(), "not valid JSON"),
    ];
    for (i, (update, named)) in bad_updates.iter().enumerate() {
        let outcome = rig
            .envoy
            .push_and_wait(update, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(outcome, PushOutcome::Rejected, "{update}");
        assert_eq!(rig.envoy.counter(REJECTED).await.unwrap(), i as u64 + 1);
        // Still 100% canary: the previous configuration serves, and the
        // weight gauges still say so.
        assert_eq!(
            served_by(&rig.send_plain(50).await, "v2"),
            50,
            "after {update}"
        );
        rig.wait_counters(&weights(100)).await;
        let log = rig.envoy.log();
        assert!(
            log.lines()
                .any(|l| l.contains("configuration rejected") && l.contains(named)),
            "the log does not name {named}:\n{log}"
        );
    }

    // A good update after the bad ones applies.
    let outcome = rig
        .envoy
        .push_and_wait(
            &filter_config(0.0, json!({})).to_string(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Applied);
    assert_eq!(served_by(&rig.send_plain(50).await, "v1"), 50);
    rig.wait_counters(&weights(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_weight_changes_under_load_fail_nothing() {
    let mut rig = Rig::start(Delivery::Ecds, &filter_config(0.0, json!({}))).await;
    let load = LoadGenerator::start(rig.client.clone(), LoadPlan::at_rate(200.0));
    let mut latencies = Vec::new();
    for change in 0..10 {
        let (weight, expect) = if change % 2 == 0 {
            (100.0, "v2")
        } else {
            (0.0, "v1")
        };
        let pushed = Instant::now();
        rig.envoy
            .push(&filter_config(weight, json!({})).to_string())
            .unwrap();
        // Probe until a request shows the new weight.
        let seen = loop {
            let reply = rig.get("/", &[]).await.expect("probe answered");
            assert_eq!(reply.status, 200);
            if reply.served_by.as_deref() == Some(expect) {
                break pushed.elapsed();
            }
            assert!(
                pushed.elapsed() < Duration::from_secs(5),
                "weight {weight} never took effect"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        assert!(
            seen < Duration::from_secs(1),
            "change {change} took {seen:?}"
        );
        latencies.push(seen);
        // Let the load run on the new weight for a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let summary = load.stop().await;
    assert!(
        summary.total() > 300,
        "load generator sent only {}",
        summary.total()
    );
    assert_eq!(
        summary.failed(),
        0,
        "failed requests during updates: {:?}",
        summary
            .records
            .iter()
            .filter(|r| r.failed())
            .take(5)
            .collect::<Vec<_>>()
    );
    let by_version = summary.by_version();
    assert!(
        by_version.get("v1").copied().unwrap_or(0) > 0
            && by_version.get("v2").copied().unwrap_or(0) > 0
    );
    latencies.sort();
    println!(
        "ECDS update to first request on the new weight: min {:?}, median {:?}, max {:?} over {} changes; load: {} requests, 0 failed",
        latencies[0],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        latencies.len(),
        summary.total()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_of_entries_and_versions_a_new_configuration_drops_go_to_zero() {
    let mut rig = Rig::start_with(Delivery::Ecds, &filter_config(10.0, json!({})), |spec| {
        spec.concurrency = 2;
    })
    .await;
    rig.wait_counters(&weights(10)).await;
    // The route entry is renamed and the canary is now v3.
    let mut renamed = filter_config(20.0, json!({}));
    renamed["routes"][0]["name"] = json!("shop");
    renamed["routes"][0]["canary"] = json!("v3");
    let outcome = rig
        .envoy
        .push_and_wait(&renamed.to_string(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Applied);
    let gauge = |metric: Metric, route: &str, version: &str, value: u64| {
        (metric.envoy_name(route, version), value)
    };
    let counters = rig
        .wait_counters(&[
            gauge(Metric::Weight, "app", "v1", 0),
            gauge(Metric::Weight, "app", "v2", 0),
            gauge(Metric::EffectiveWeight, "app", "v1", 0),
            gauge(Metric::EffectiveWeight, "app", "v2", 0),
            gauge(Metric::Weight, "shop", "v1", 8_000),
            gauge(Metric::Weight, "shop", "v3", 2_000),
            gauge(Metric::EffectiveWeight, "shop", "v3", 2_000),
        ])
        .await;
    // The old names still exist in Envoy (stats are never deleted), at 0.
    assert!(counters.contains_key(&Metric::Weight.envoy_name("app", "v2")));
    // Back to the first configuration: its gauges come back, the other's go.
    let outcome = rig
        .envoy
        .push_and_wait(
            &filter_config(10.0, json!({})).to_string(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Applied);
    rig.wait_counters(&[
        gauge(Metric::Weight, "app", "v2", 1_000),
        gauge(Metric::Weight, "shop", "v1", 0),
        gauge(Metric::Weight, "shop", "v3", 0),
    ])
    .await;
}
