//! The measured split follows the configured weight.

use canary_e2e::setup::{count_versions, filter_config, served_by, Rig};
use canary_e2e::split::assert_share;
use canary_lab::envoy::Delivery;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_of_two_thousand() {
    let rig = Rig::start(Delivery::Inline, &filter_config(10.0, json!({}))).await;
    let replies = rig.send_plain(2_000).await;
    let counts = count_versions(&replies);
    let canary = served_by(&replies, "v2");
    assert_eq!(canary + served_by(&replies, "v1"), 2_000, "{counts:?}");
    assert_share(canary, 2_000, 10.0);
    // The backends saw exactly what the client saw.
    assert_eq!(rig.canary.served() as usize, canary);
    assert_eq!(rig.stable.served() as usize, 2_000 - canary);
    println!("split at 10%: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_percent_sends_none_to_canary() {
    let rig = Rig::start(Delivery::Inline, &filter_config(0.0, json!({}))).await;
    let replies = rig.send_plain(1_000).await;
    assert_eq!(
        served_by(&replies, "v1"),
        1_000,
        "{:?}",
        count_versions(&replies)
    );
    assert_eq!(rig.canary.served(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_percent_sends_all_to_canary() {
    let rig = Rig::start(Delivery::Inline, &filter_config(100.0, json!({}))).await;
    let replies = rig.send_plain(1_000).await;
    assert_eq!(
        served_by(&replies, "v2"),
        1_000,
        "{:?}",
        count_versions(&replies)
    );
    assert_eq!(rig.stable.served(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_percent() {
    let rig = Rig::start(Delivery::Inline, &filter_config(0.5, json!({}))).await;
    let n = 6_000;
    let replies = rig.send_plain(n).await;
    let canary = served_by(&replies, "v2");
    assert_share(canary, n, 0.5);
    println!("split at 0.5%: {canary} of {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_another_host_passes_untouched_to_stable() {
    let mut config = filter_config(100.0, json!({}));
    config["routes"][0]["match"] = json!({ "hosts": ["other.example.com"] });
    let rig = Rig::start(Delivery::Inline, &config).await;
    let replies = rig.send_plain(100).await;
    assert_eq!(served_by(&replies, "v1"), 100);
    // The request reached stable without a routing header at all.
    let echo = rig.get("/echo", &[]).await.unwrap();
    assert!(!echo.body.contains("x-canary-version"), "{}", echo.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_path_prefix_pick_the_entry() {
    let config = json!({
        "response_header": "x-canary-served-by",
        "routes": [
            { "name": "api", "match": { "hosts": ["*.example.com"], "path_prefix": "/api" },
              "stable": "v1", "canary": "v2", "canary_weight": 100 },
            { "name": "web", "match": { "hosts": ["app.example.com"] },
              "stable": "v1", "canary": "v2", "canary_weight": 0 }
        ]
    });
    let rig = Rig::start(Delivery::Inline, &config).await;
    let api = rig.get("/api/orders", &[]).await.unwrap();
    assert_eq!(api.served_by.as_deref(), Some("v2"));
    assert_eq!(api.header("x-canary-served-by"), Some("v2"));
    let web = rig.get("/index.html", &[]).await.unwrap();
    assert_eq!(web.served_by.as_deref(), Some("v1"));
    assert_eq!(web.header("x-canary-served-by"), Some("v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_header_is_off_by_default() {
    let rig = Rig::start(Delivery::Inline, &filter_config(50.0, json!({}))).await;
    let reply = rig.get("/", &[]).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-canary-served-by"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_the_default_version_go_unmarked() {
    let config = filter_config(50.0, json!({ "default_version": "v1" }));
    let rig = Rig::start(Delivery::Inline, &config).await;
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let echo = rig
            .get("/echo", &[("x-canary-version", "v2")])
            .await
            .unwrap();
        let marked = echo
            .body
            .lines()
            .any(|l| l.starts_with("x-canary-version:"));
        let version = echo.served_by.clone().unwrap_or_default();
        match version.as_str() {
            // Stable is the default route: no mark, and the client's own
            // header was removed before the filter ran.
            "v1" => assert!(
                !marked,
                "a stable request carried a routing header: {}",
                echo.body
            ),
            "v2" => assert!(echo.body.contains("x-canary-version: v2"), "{}", echo.body),
            other => panic!("served by {other:?}"),
        }
        *seen.entry(version).or_insert(0) += 1;
    }
    assert!(
        seen.get("v1").copied().unwrap_or(0) > 50 && seen.get("v2").copied().unwrap_or(0) > 50,
        "{seen:?}"
    );
}
