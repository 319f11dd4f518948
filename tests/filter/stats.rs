//! Per-route, per-version stats match what the upstreams really served,
//! errors show, and Prometheus sees `route` and `version` labels.

use std::time::Duration;

use canary_config::stats_names::Metric;
use canary_e2e::setup::{filter_config, Rig};
use canary_lab::envoy::Delivery;
use serde_json::json;

fn name(metric: Metric, version: &str) -> String {
    metric.envoy_name("app", version)
}

/// The value of a Prometheus sample `metric{route="app",version="..."}`.
fn prometheus_sample(text: &str, metric: &str, version: &str) -> Option<f64> {
    let prefix = format!("{metric}{{route=\"app\",version=\"{version}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_equal_what_each_upstream_served() {
    let rig = Rig::start_with(Delivery::Inline, &filter_config(30.0, json!({})), |spec| {
        spec.stats_flush_interval = Some(Duration::from_millis(500));
        spec.concurrency = 2;
    })
    .await;
    let n = 1_000;
    rig.send_plain(n).await;
    let (stable, canary) = (rig.stable.served(), rig.canary.served());
    assert_eq!(stable + canary, n as u64);

    rig.wait_counters(&[
        (name(Metric::Requests, "v1"), stable),
        (name(Metric::Requests, "v2"), canary),
        (name(Metric::Responses2xx, "v1"), stable),
        (name(Metric::Responses2xx, "v2"), canary),
        (name(Metric::Responses5xx, "v1"), 0),
        (name(Metric::Responses5xx, "v2"), 0),
        (name(Metric::Errors, "v1"), 0),
        (name(Metric::Errors, "v2"), 0),
    ])
    .await;

    // Histogram counts catch up at the next flush and then equal the
    // request counts; Prometheus shows them with labels.
    let envoy = &rig.envoy;
    let text = canary_lab::wait::until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async move {
            let text = envoy.prometheus().await.ok()?;
            let v1 = prometheus_sample(&text, "canary_rq_latency_us_count", "v1")?;
            let v2 = prometheus_sample(&text, "canary_rq_latency_us_count", "v2")?;
            (v1 as u64 == stable && v2 as u64 == canary).then_some(text)
        },
    )
    .await
    .unwrap_or_else(|| panic!("histogram counts never matched {stable}/{canary}"));
    assert_eq!(
        prometheus_sample(&text, "canary_rq_total", "v1"),
        Some(stable as f64)
    );
    assert_eq!(
        prometheus_sample(&text, "canary_rq_total", "v2"),
        Some(canary as f64)
    );
    assert!(text.contains("canary_rq_latency_us_bucket{route=\"app\",version=\"v2\",le=\"1000\"}"));
    // The split in force, in hundredths of a percent.
    assert_eq!(
        prometheus_sample(&text, "canary_weight_bp", "v2"),
        Some(3000.0)
    );
    assert_eq!(
        prometheus_sample(&text, "canary_weight_bp", "v1"),
        Some(7000.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_shows_in_its_error_counters() {
    let rig = Rig::start(Delivery::Inline, &filter_config(50.0, json!({}))).await;
    rig.canary.set_error_rate(1.0);
    let replies = rig.send_plain(400).await;
    let failed = replies.iter().filter(|r| r.status == 503).count() as u64;
    assert_eq!(failed, rig.canary.served_errors());
    assert!(failed > 100, "{failed}");
    rig.wait_counters(&[
        (name(Metric::Responses5xx, "v2"), failed),
        (name(Metric::Errors, "v2"), failed),
        (name(Metric::Errors, "v1"), 0),
        (name(Metric::Responses2xx, "v1"), rig.stable.served()),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_local_replies_count_as_canary_errors() {
    let rig = Rig::start(Delivery::Inline, &filter_config(100.0, json!({}))).await;
    // Nothing listens on the canary's port any more: Envoy answers 503
    // itself (connection refused), and the filter counts it.
    rig.canary.close();
    let canary = rig.canary.addr();
    canary_lab::wait::until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async move {
            tokio::net::TcpStream::connect(canary)
                .await
                .err()
                .map(|_| ())
        },
    )
    .await
    .expect("the canary's port closes");
    let replies = rig.send_plain(20).await;
    assert!(
        replies
            .iter()
            .all(|r| r.status == 503 && r.served_by.is_none()),
        "{replies:?}"
    );
    rig.wait_counters(&[
        (name(Metric::Responses5xx, "v2"), 20),
        (name(Metric::Errors, "v2"), 20),
    ])
    .await;
}

/// The shipped bootstraps, and the fragment Istio's proxies merge into
/// theirs (`manifests/istio/stats`), extract exactly the labels the code
/// names.
#[test]
fn shipped_stats_tags_match_the_metric_names() {
    use canary_config::stats_names::{ROUTE_TAG_REGEX, VERSION_TAG_REGEX};
    let istio = std::fs::read_to_string(
        canary_lab::paths::repo_root().join("manifests/istio/stats/custom_bootstrap.json"),
    )
    .expect("the Istio stats bootstrap exists");
    for (file, text) in [
        ("standalone.yaml", canary_lab::envoy::STANDALONE_BOOTSTRAP),
        ("ecds.yaml", canary_lab::envoy::ECDS_BOOTSTRAP),
        ("istio/stats/custom_bootstrap.json", istio.as_str()),
    ] {
        let bootstrap: serde_json::Value = serde_yaml_value(text);
        let tags = bootstrap["stats_config"]["stats_tags"]
            .as_array()
            .expect("stats_tags");
        let find = |tag: &str| {
            tags.iter()
                .find(|t| t["tag_name"] == tag)
                .and_then(|t| t["regex"].as_str())
                .unwrap_or_else(|| panic!("{file}: no {tag} tag"))
                .to_owned()
        };
        assert_eq!(find("route"), ROUTE_TAG_REGEX, "{file}");
        assert_eq!(find("version"), VERSION_TAG_REGEX, "{file}");
        let buckets =
            |b: &serde_json::Value| b["stats_config"]["histogram_bucket_settings"].clone();
        assert_eq!(
            buckets(&bootstrap),
            buckets(&serde_yaml_value(canary_lab::envoy::ECDS_BOOTSTRAP)),
            "{file}: latency buckets"
        );
        if file.starts_with("istio/") {
            continue;
        }
        let text = bootstrap.to_string();
        assert!(
            text.contains("\"remove\":\"x-canary-version\""),
            "{file}: routing header not removed"
        );
        if file == "standalone.yaml" {
            assert!(text.contains("FAIL_OPEN"), "{file}: not FAIL_OPEN");
        }
    }
    let ecds_resource = std::fs::read_to_string(
        canary_lab::paths::repo_root().join("manifests/envoy/canary-filter.ecds.yaml"),
    )
    .expect("the shipped ECDS resource exists");
    let ecds_resource = serde_yaml_value(&ecds_resource).to_string();
    assert!(
        ecds_resource.contains("FAIL_OPEN"),
        "canary-filter.ecds.yaml: not FAIL_OPEN"
    );
}

fn serde_yaml_value(text: &str) -> serde_json::Value {
    serde_yaml::from_str(text).expect("shipped bootstrap is YAML")
}

/// The shipped WasmPlugin/TrafficExtension examples pin the OCI digest of
/// the filter as built from this tree (the build is reproducible).
#[test]
fn the_istio_examples_pin_the_built_module() {
    let module = canary_lab::paths::filter_module().unwrap_or_else(|e| panic!("{e}"));
    let out = tempfile::tempdir().unwrap();
    let image = canary_oci::build(&module, out.path(), "0.1.0").expect("OCI layout");
    let digest = image
        .manifest
        .digest
        .trim_start_matches("sha256:")
        .to_owned();
    let root = canary_lab::paths::repo_root().join("manifests/istio");
    for file in [
        "wasm-plugin.yaml",
        "placements/gateway-api/wasm-plugin.yaml",
        "placements/mesh/wasm-plugin.yaml",
        "placements/traffic-extension/traffic-extension.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            text.contains(&format!("sha256: {digest}")),
            "manifests/istio/{file} does not pin the current module (sha256 {digest}); run `make oci` and put its digest there"
        );
    }
}
