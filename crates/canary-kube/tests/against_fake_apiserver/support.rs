//! Objects as the API server sends them, and a client for the fake.

use canary_config::FilterConfig;
use canary_kube::fake_apiserver::{CannedResponse, Exchange, FakeApiServer};
use canary_kube::{
    client_for_url, ApiError, AppliedConfig, CpuReadError, PluginObject, PluginPusher, PodReader,
    PodSelector, PushError, RatioReading,
};
use serde_json::{json, Value};

/// The path and query of the pod list for `app=web,version=canary` in `shop`.
pub const PODS_TARGET: &str =
    "/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb%2Cversion%3Dcanary";
/// The same for pod metrics.
pub const POD_METRICS_TARGET: &str =
    "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods?labelSelector=app%3Dweb%2Cversion%3Dcanary";

/// The path and query of the apply to the `WasmPlugin` `shop/canary`.
pub const WASM_PLUGIN_TARGET: &str = "/apis/extensions.istio.io/v1alpha1/namespaces/shop/wasmplugins/canary?fieldManager=canary-controller&force=true";

/// A valid filter configuration with the canary at `weight` percent.
pub fn filter_config(weight: u32) -> FilterConfig {
    let text = format!(
        r#"{{"routes":[{{"name":"web","match":{{"hosts":["shop.example.com"]}},"stable":"v1","canary":"v2","canary_weight":0}}],"splits":{{"web":{{"stable":"v1","canary":"v2","canary_weight":{weight},"generation":1}}}}}}"#
    );
    canary_config::parse_document(text.as_bytes()).unwrap()
}

/// `config` pushed to `object` through a fake playing `script`.
pub async fn push_through_fake(
    object: PluginObject,
    script: Vec<Exchange>,
    config: &FilterConfig,
) -> (FakeApiServer, Result<AppliedConfig, PushError>) {
    let (fake, client) = fake_with_client(script).await;
    let pushed = PluginPusher::new(client, object).push(config).await;
    (fake, pushed)
}

/// The decoded query parameter selecting the canary's pods.
pub fn label_selector() -> (String, String) {
    (
        "labelSelector".to_owned(),
        "app=web,version=canary".to_owned(),
    )
}

/// A fake playing `script`, and a client pointed at it.
pub async fn fake_with_client(script: Vec<Exchange>) -> (FakeApiServer, kube::Client) {
    let fake = FakeApiServer::start(script).await.unwrap();
    let client = client_for_url(fake.url()).unwrap();
    (fake, client)
}

/// The canary's pods in `shop`.
pub fn canary_pods() -> PodSelector {
    PodSelector::new("shop", "app=web,version=canary").unwrap()
}

/// A running pod with a `Ready` condition of `ready` and one container
/// `app` requesting `cpu_request`.
pub fn pod(name: &str, ready: bool, cpu_request: &str) -> Value {
    json!({
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": { "app": "web", "version": "canary" },
            "uid": format!("uid-{name}"),
        },
        "spec": {
            "containers": [{
                "name": "app",
                "image": "registry.example/web:2",
                "resources": { "requests": { "cpu": cpu_request, "memory": "64Mi" } }
            }]
        },
        "status": {
            "phase": "Running",
            "conditions": [
                { "type": "PodScheduled", "status": "True" },
                { "type": "Ready", "status": if ready { "True" } else { "False" } }
            ]
        }
    })
}

/// A `PodList`.
pub fn pod_list(items: Vec<Value>) -> Value {
    json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": { "resourceVersion": "1001" },
        "items": items,
    })
}

/// One pod's `PodMetrics`, CPU per container.
pub fn pod_metrics(name: &str, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(container, cpu)| json!({ "name": container, "usage": { "cpu": cpu, "memory": "48Mi" } }))
        .collect();
    json!({
        "metadata": { "name": name, "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z" },
        "timestamp": "2026-01-01T00:00:00Z",
        "window": "15.2s",
        "containers": containers,
    })
}

/// A `PodMetricsList`.
pub fn pod_metrics_list(items: Vec<Value>) -> Value {
    json!({
        "kind": "PodMetricsList",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": items,
    })
}

/// The pod list answered with `items`.
pub fn pods_answer(items: Vec<Value>) -> Exchange {
    Exchange::new(
        "GET",
        PODS_TARGET,
        CannedResponse::json(200, &pod_list(items)),
    )
}

/// The pod metrics list answered with `items`.
pub fn pod_metrics_answer(items: Vec<Value>) -> Exchange {
    Exchange::new(
        "GET",
        POD_METRICS_TARGET,
        CannedResponse::json(200, &pod_metrics_list(items)),
    )
}

/// The canary's ready ratio read from a fake playing `script`.
pub async fn read_ready_ratio(
    script: Vec<Exchange>,
) -> (FakeApiServer, Result<RatioReading, ApiError>) {
    let (fake, client) = fake_with_client(script).await;
    let reading = PodReader::new(client).ready_ratio(&canary_pods()).await;
    (fake, reading)
}

/// The canary's CPU ratio read from a fake playing `script`.
pub async fn read_cpu_ratio(
    script: Vec<Exchange>,
) -> (FakeApiServer, Result<RatioReading, CpuReadError>) {
    let (fake, client) = fake_with_client(script).await;
    let reading = PodReader::new(client).cpu_ratio(&canary_pods()).await;
    (fake, reading)
}
