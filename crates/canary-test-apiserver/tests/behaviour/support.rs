//! Shared setup: a server with the canary, Istio and Argo CRDs and the
//! namespaces the scenarios use, and small helpers.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use canary_test_apiserver::{crds, Settings, TestApiServer};
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::{json, Value};

/// A path from the repository's root.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

/// A server with the CRDs loaded and namespaces `shop` and
/// `canary-system`.
pub async fn server() -> TestApiServer {
    server_with(Settings::default()).await
}

/// Like [`server`], with settings.
pub async fn server_with(settings: Settings) -> TestApiServer {
    let server = TestApiServer::start_with(settings)
        .await
        .expect("server starts");
    server
        .load_files(&[repo_path("manifests/kubernetes/crd/crd.yaml")])
        .expect("the canary CRD loads");
    server
        .load_yaml(crds::ISTIO_EXTENSIONS)
        .expect("Istio CRDs load");
    server
        .load_yaml(crds::ARGO_ANALYSIS)
        .expect("Argo CRDs load");
    for namespace in ["shop", "canary-system", "istio-system"] {
        server
            .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
            .expect("namespace");
    }
    server
}

/// The dynamic API of a kind.
pub fn api(
    client: &Client,
    namespace: &str,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// WasmPlugins of `namespace`.
pub fn wasm_plugins(client: &Client, namespace: &str) -> Api<DynamicObject> {
    api(
        client,
        namespace,
        "extensions.istio.io",
        "v1alpha1",
        "WasmPlugin",
        "wasmplugins",
    )
}

/// CanaryRollouts of `namespace`.
pub fn rollouts(client: &Client, namespace: &str) -> Api<DynamicObject> {
    api(
        client,
        namespace,
        "canary.dev",
        "v1alpha1",
        "CanaryRollout",
        "canaryrollouts",
    )
}

/// Creates `object` through `api`, failing the test on an error.
pub async fn create<K>(api: &Api<K>, object: Value) -> K
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).expect("the object fits its type");
    api.create(&kube::api::PostParams::default(), &object)
        .await
        .expect("the create succeeds")
}

/// The Status of a failed call.
pub fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A field of a dynamic object, as JSON.
pub fn json_of(object: &DynamicObject) -> Value {
    serde_json::to_value(object).expect("objects serialize")
}

/// `metadata.resourceVersion` as a number.
pub fn revision_of(object: &DynamicObject) -> u64 {
    object
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a numeric resourceVersion")
}

/// A minimal valid CanaryRollout.
pub fn rollout(name: &str) -> Value {
    json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "stableWorkload": "web-v1",
            "canaryWorkload": "web-v2",
            "stableVersion": "v1",
            "canaryVersion": "v2",
            "target": {"kind": "WasmPlugin", "name": "canary", "namespace": "istio-system"},
            "routes": ["web"],
            "steps": [{"setWeight": 10}]
        }
    })
}

/// A Deployment with one container.
pub fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web", "version": name}},
            "template": {
                "metadata": {"labels": {"app": "web", "version": name}},
                "spec": {"containers": [{"name": "app", "image": format!("registry.example.com/{name}:1")}]}
            }
        }
    })
}

/// Waits for `condition` to hold, failing after a deadline.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
