//! Git owns the Istio object; the controller owns only the split. A sync
//! of the shipped manifest mid-rollout — server-side apply as Argo CD or
//! Flux do it, or a client-side `kubectl apply` merge patch — leaves the
//! split the rollout pushed in place, and the rollout goes on.

use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

use crate::support::{has_condition, healthy, phase, repo_path, rollout, weight, Cluster};

const LIMIT: Duration = Duration::from_secs(30);

fn manifest() -> Value {
    let text = std::fs::read_to_string(repo_path("manifests/istio/wasm-plugin.yaml"))
        .expect("the shipped WasmPlugin");
    serde_yaml::from_str(&text).expect("YAML")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitops_sync_of_the_plugin_mid_rollout_leaves_the_split_alone() {
    let cluster = Cluster::start(
        rollout(json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}])),
        healthy(),
    )
    .await;
    cluster
        .until("paused at 10%", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 10.0
        })
        .await;
    assert_eq!(cluster.weight_in_object(), 10.0);
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("extensions.istio.io", "v1alpha1", "WasmPlugin"),
        "wasmplugins",
    );
    let plugins: Api<DynamicObject> =
        Api::namespaced_with(cluster.admin.clone(), "istio-system", &resource);
    let manifest = manifest();

    // Argo CD or Flux: server-side apply as their own field manager,
    // without forcing.
    plugins
        .patch(
            "canary",
            &PatchParams::apply("argocd-controller"),
            &Patch::Apply(&manifest),
        )
        .await
        .expect("the sync applies without a conflict");
    assert_eq!(
        cluster.weight_in_object(),
        10.0,
        "the split survives the sync"
    );

    // `kubectl apply` (client-side): a merge patch of the configuration.
    let patch = json!({"spec": {"pluginConfig": manifest["spec"]["pluginConfig"]}});
    plugins
        .patch(
            "canary",
            &PatchParams {
                field_manager: Some("kubectl-client-side-apply".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .expect("the merge patch applies");
    assert_eq!(
        cluster.weight_in_object(),
        10.0,
        "the split survives kubectl apply"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = cluster.status();
    assert_eq!(phase(&status), "Paused");
    assert!(!has_condition(&status, "Drift"), "{:?}", status.conditions);

    cluster.command("promote").await;
    cluster
        .until("paused at 50%", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 50.0
        })
        .await;
    assert_eq!(cluster.weight_in_object(), 50.0);
    cluster.assert_every_call_allowed();
}
