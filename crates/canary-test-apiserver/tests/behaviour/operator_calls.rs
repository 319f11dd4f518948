//! The controller's own client code (canary-kube) against the server, as
//! the controller's ServiceAccount with the RBAC the manifests ship: the
//! plugin push (server-side apply), the pod readers, an Event and the
//! Lease, each allowed, each logged.

use canary_config::{Split, Weight};
use canary_kube::{PluginObject, PluginPusher, PodReader, PodSelector, RatioReading};
use canary_test_apiserver::Identity;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::support::{repo_path, server};

fn controller() -> Identity {
    Identity::service_account("canary-system", "canary-controller")
}

fn pod(name: &str, ready: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web", "version": "v2"}},
        "spec": {"containers": [{"name": "app", "image": "web:2", "resources": {"requests": {"cpu": "100m"}}}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}]}
    })
}

fn pod_metrics(name: &str, cpu: &str) -> serde_json::Value {
    json!({
        "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web", "version": "v2"}},
        "timestamp": "2026-01-01T00:00:00Z", "window": "15s",
        "containers": [{"name": "app", "usage": {"cpu": cpu, "memory": "10Mi"}}]
    })
}

#[tokio::test]
async fn the_controllers_calls_work_and_are_allowed_by_the_shipped_rbac() {
    let server = server().await;
    server
        .load_files(&[
            repo_path("manifests/kubernetes/cluster-wide/cluster-role.yaml"),
            repo_path("manifests/kubernetes/controller/rbac.yaml"),
            repo_path("manifests/istio/wasm-plugin.yaml"),
        ])
        .unwrap();
    for object in [
        pod("web-v2-a", "True"),
        pod("web-v2-b", "False"),
        pod_metrics("web-v2-a", "50m"),
        pod_metrics("web-v2-b", "30m"),
    ] {
        server.seed(object).unwrap();
    }
    let client = server.client(&controller()).unwrap();

    // The plugin push: read the base, apply a weight, read back.
    let pusher = PluginPusher::new(
        client.clone(),
        PluginObject::wasm_plugin("istio-system", "canary"),
    );
    let mut config = pusher
        .current()
        .await
        .unwrap()
        .expect("the manifest's configuration");
    let mut split = Split::of(&config, "web").expect("route web");
    split.canary_weight = Weight::from_basis_points(1000).unwrap();
    split.generation = 1;
    config.splits.insert("web".to_owned(), split);
    let applied = pusher.push(&config).await.unwrap();
    assert_eq!(applied.generation, Some(2));
    let again = pusher.push(&config).await.unwrap();
    assert_eq!(
        again, applied,
        "the same configuration again changes nothing"
    );

    // The kubernetes metric provider.
    let reader = PodReader::new(client.clone());
    let selector = PodSelector::new("shop", "app=web,version=v2").unwrap();
    let RatioReading::Measured(ready) = reader.ready_ratio(&selector).await.unwrap() else {
        panic!("measured")
    };
    assert_eq!((ready.value, ready.samples), (0.5, 2));
    let RatioReading::Measured(cpu) = reader.cpu_ratio(&selector).await.unwrap() else {
        panic!("measured")
    };
    assert!(
        (cpu.value - 0.4).abs() < 1e-9,
        "80m used of 200m requested: {}",
        cpu.value
    );

    // An Event, and the Lease.
    let events: Api<Event> = Api::namespaced(client.clone(), "shop");
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": "web.1"}, "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "canary.dev/canary-controller", "reportingInstance": "canary-0",
        "action": "Rollout", "reason": "WeightChanged", "type": "Normal", "note": "canary 10%",
        "regarding": {"apiVersion": "canary.dev/v1alpha1", "kind": "CanaryRollout", "name": "web", "namespace": "shop"}
    }))
    .unwrap();
    events.create(&PostParams::default(), &event).await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client, "canary-system");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "canary-controller"},
                                                     "spec": {"holderIdentity": "canary-0"}}))
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    leases
        .replace("canary-controller", &PostParams::default(), &created)
        .await
        .unwrap();

    let calls: Vec<String> = server
        .requests_by(&controller())
        .iter()
        .map(|r| r.describe())
        .collect();
    assert_eq!(
        calls,
        [
            "get wasmplugins.extensions.istio.io \"canary\" in namespace \"istio-system\"",
            "patch wasmplugins.extensions.istio.io \"canary\" in namespace \"istio-system\"",
            "patch wasmplugins.extensions.istio.io \"canary\" in namespace \"istio-system\"",
            "list pods in namespace \"shop\"",
            "list pods in namespace \"shop\"",
            "list pods.metrics.k8s.io in namespace \"shop\"",
            "create events.events.k8s.io in namespace \"shop\"",
            "create leases.coordination.k8s.io in namespace \"canary-system\"",
            "update leases.coordination.k8s.io \"canary-controller\" in namespace \"canary-system\"",
        ]
    );
    let refused: Vec<String> = server
        .requests_by(&controller())
        .iter()
        .filter(|r| !r.allowed())
        .map(|r| r.describe())
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
}
