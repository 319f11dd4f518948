//! Git and the controller sharing the shipped WasmPlugin mid-rollout: the
//! controller's own push (`canary_kube::PluginPusher`, as the controller's
//! service account, under the shipped RBAC) owns `pluginConfig.splits.<route>`
//! and nothing else, so re-applying Git's files, client-side as `kubectl
//! apply` and Argo CD's default sync do, server-side as `kubectl apply
//! --server-side`, Argo CD's `ServerSideApply=true` (which forces) and
//! Flux's kustomize-controller do, leaves the split alone, and neither
//! side's apply conflicts with the other's.
//! https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy
//! and https://kubernetes.io/docs/tasks/manage-kubernetes-objects/declarative-config/

use std::path::Path;

use canary_config::{FilterConfig, Split, Weight};
use canary_kube::{split_field_manager, PluginObject, PluginPusher};
use canary_test_apiserver::{crds, Identity, TestApiServer};
use serde_json::Value;

use crate::kubectl::{kubectl, succeed, with_kubeconfig};
use crate::support::repo_path;

const SHIPPED: &str = "manifests/istio/wasm-plugin.yaml";

fn controller() -> Identity {
    Identity::service_account("canary-system", "canary-controller")
}

/// The server with the controller's access to the shipped plugin.
fn grant_controller(server: &TestApiServer) {
    server
        .load_files(&[
            repo_path("manifests/istio/controller-access.yaml"),
            repo_path("manifests/istio/placements/mesh/controller-access.yaml"),
        ])
        .expect("the shipped Roles load");
}

fn pusher(server: &TestApiServer, name: &str) -> PluginPusher {
    let client = server.client(&controller()).expect("controller client");
    PluginPusher::new(client, PluginObject::wasm_plugin("istio-system", name))
}

fn split(percent: f64, generation: u64) -> Split {
    Split {
        stable: "web-v1".into(),
        canary: Some("web-v2".into()),
        canary_weight: Weight::from_percent(percent).expect("a weight"),
        override_enabled: false,
        generation,
    }
}

/// What a rollout step does: read the object, write the split into its
/// configuration, push.
async fn push(pusher: &PluginPusher, route: &str, split: &Split) {
    let base: FilterConfig = pusher
        .current()
        .await
        .expect("the plugin is readable")
        .expect("the plugin has a configuration");
    let routes = vec![route.to_owned()];
    let config = split.apply_to(&base, &routes).expect("the split fits");
    pusher
        .push(&config, &routes)
        .await
        .unwrap_or_else(|error| panic!("the controller's push failed: {error}"));
}

fn plugin(server: &TestApiServer, name: &str) -> Value {
    server
        .object(
            "extensions.istio.io/v1alpha1",
            "WasmPlugin",
            "istio-system",
            name,
        )
        .expect("the plugin exists")
}

fn stored_split(server: &TestApiServer, name: &str, route: &str) -> Split {
    let object = plugin(server, name);
    serde_json::from_value(object["spec"]["pluginConfig"]["splits"][route].clone())
        .unwrap_or_else(|error| panic!("no split for {route} in {object}: {error}"))
}

/// The shipped file with one more host on the `web` entry: a change Git
/// makes to `routes` mid-rollout.
fn edited_copy(dir: &Path) -> String {
    let text = std::fs::read_to_string(repo_path(SHIPPED)).unwrap();
    let edited = text.replace(
        "hosts: [web.example.com, web.shop.svc.cluster.local]",
        "hosts: [web.example.com, www.example.com, web.shop.svc.cluster.local]",
    );
    assert_ne!(edited, text, "the shipped file's hosts line moved");
    let path = dir.join("wasm-plugin.yaml");
    std::fs::write(&path, edited).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Fails on any 409 in the log: no one's apply conflicted.
fn assert_no_conflicts(server: &TestApiServer) {
    let conflicts: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.code == 409)
        .map(|r| r.describe())
        .collect();
    assert!(conflicts.is_empty(), "conflicts: {conflicts:?}");
}

/// The fields each manager owns under `spec.pluginConfig`.
fn plugin_config_owners(object: &Value) -> Vec<(String, Value)> {
    object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| {
            let owned = entry["fieldsV1"]["f:spec"].get("f:pluginConfig")?;
            Some((entry["manager"].as_str()?.to_owned(), owned.clone()))
        })
        .collect()
}

#[test]
fn the_shipped_plugins_leave_splits_to_the_controller() {
    for file in [
        SHIPPED,
        "manifests/istio/placements/mesh/wasm-plugin.yaml",
        "manifests/istio/placements/gateway-api/wasm-plugin.yaml",
        "manifests/istio/placements/traffic-extension/traffic-extension.yaml",
    ] {
        let text = std::fs::read_to_string(repo_path(file)).unwrap();
        let object: Value = serde_yaml::from_str(&text).unwrap();
        let spec = &object["spec"];
        let config = spec
            .get("pluginConfig")
            .or_else(|| spec["wasm"].get("pluginConfig"))
            .unwrap_or_else(|| panic!("{file} has no pluginConfig"));
        assert!(
            config.get("splits").is_none(),
            "{file} sets pluginConfig.splits, which the controller owns; a forcing sync (Argo CD's ServerSideApply) would take it over"
        );
    }
}

// Client-side apply: kubectl's three-way merge patch names only what the
// files and the last-applied annotation hold; `splits` is in neither.
#[tokio::test]
async fn client_side_kubectl_apply_mid_rollout_leaves_the_split_alone() {
    let (server, dir, kubeconfig) = with_kubeconfig().await;
    grant_controller(&server);
    succeed(
        &kubeconfig,
        &["apply", "-f", repo_path(SHIPPED).to_str().unwrap()],
    )
    .await;
    let pusher = pusher(&server, "canary");
    push(&pusher, "web", &split(25.0, 11)).await;

    // Git unchanged, then Git changing the route entry.
    succeed(
        &kubeconfig,
        &["apply", "-f", repo_path(SHIPPED).to_str().unwrap()],
    )
    .await;
    assert_eq!(stored_split(&server, "canary", "web"), split(25.0, 11));
    succeed(&kubeconfig, &["apply", "-f", &edited_copy(dir.path())]).await;
    let object = plugin(&server, "canary");
    assert_eq!(
        object["spec"]["pluginConfig"]["routes"][0]["match"]["hosts"][1],
        "www.example.com"
    );
    assert_eq!(stored_split(&server, "canary", "web"), split(25.0, 11));

    // The next step goes through, on top of Git's new routes.
    push(&pusher, "web", &split(50.0, 11)).await;
    assert_eq!(stored_split(&server, "canary", "web"), split(50.0, 11));
    assert_eq!(
        plugin(&server, "canary")["spec"]["pluginConfig"]["routes"][0]["match"]["hosts"][1],
        "www.example.com"
    );
    assert_no_conflicts(&server);
}

// Server-side apply by Git's own manager, without forcing: Git's manager
// and the controller's own disjoint fields of one schemaless map.
#[tokio::test]
async fn server_side_apply_by_another_manager_neither_conflicts_nor_touches_the_split() {
    let (server, dir, kubeconfig) = with_kubeconfig().await;
    grant_controller(&server);
    let git = ["apply", "--server-side", "--field-manager=git"];
    succeed(
        &kubeconfig,
        &[&git[..], &["-f", repo_path(SHIPPED).to_str().unwrap()]].concat(),
    )
    .await;
    let pusher = pusher(&server, "canary");
    push(&pusher, "web", &split(10.0, 3)).await;

    let revision = plugin(&server, "canary")["metadata"]["resourceVersion"].clone();
    succeed(
        &kubeconfig,
        &[&git[..], &["-f", repo_path(SHIPPED).to_str().unwrap()]].concat(),
    )
    .await;
    // Nothing changed, so nothing was written: no drift to report.
    assert_eq!(
        plugin(&server, "canary")["metadata"]["resourceVersion"],
        revision
    );
    succeed(
        &kubeconfig,
        &[&git[..], &["-f", &edited_copy(dir.path())]].concat(),
    )
    .await;
    assert_eq!(stored_split(&server, "canary", "web"), split(10.0, 3));
    push(&pusher, "web", &split(20.0, 3)).await;
    assert_eq!(stored_split(&server, "canary", "web"), split(20.0, 3));
    assert_no_conflicts(&server);

    // Who owns what: Git everything it wrote, the controller only its split.
    let owners = plugin_config_owners(&plugin(&server, "canary"));
    let manager = split_field_manager(&["web".to_owned()]);
    let controller_owns = owners
        .iter()
        .find(|(name, _)| *name == manager)
        .map(|(_, owned)| owned.clone())
        .unwrap_or_else(|| panic!("{manager} owns nothing: {owners:?}"));
    let keys: Vec<&String> = controller_owns.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["f:splits"], "{controller_owns}");
    let split_keys: Vec<&String> = controller_owns["f:splits"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(split_keys, ["f:web"]);
    let git_owns = &owners.iter().find(|(name, _)| name == "git").unwrap().1;
    assert!(git_owns.get("f:routes").is_some() && git_owns.get("f:splits").is_none());
    // Every call the controller made was allowed by the shipped Role.
    for request in server.requests_by(&controller()) {
        assert!(request.allowed(), "{} was refused", request.describe());
    }
}

// Argo CD with ServerSideApply=true applies as `argocd-controller` with
// force; Flux's kustomize-controller applies the built kustomization as
// `kustomize-controller`. Neither holds `splits`, so forcing takes nothing
// from the controller.
#[tokio::test]
async fn argo_cd_and_flux_syncs_mid_rollout_leave_the_split_alone() {
    let (server, _dir, kubeconfig) = with_kubeconfig().await;
    server
        .load_yaml(crds::ISTIO_NETWORKING)
        .expect("Istio networking CRDs load");
    grant_controller(&server);
    // The Istio objects of the built kustomization, as a sync sends them
    // (its Namespace, ConfigMap and Role do not touch the plugin).
    let built = canary_test_apiserver::kustomize(&repo_path("manifests/istio")).unwrap();
    let istio: Vec<&str> = built
        .split("\n---\n")
        .filter(|document| {
            document.contains("apiVersion: extensions.istio.io/")
                || document.contains("apiVersion: networking.istio.io/")
        })
        .collect();
    assert!(istio.len() >= 4, "{built}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("istio.yaml");
    std::fs::write(&file, istio.join("\n---\n")).unwrap();
    let file = file.to_str().unwrap();
    let flux = [
        "apply",
        "--server-side",
        "--field-manager=kustomize-controller",
        "-f",
        file,
    ];
    let argo = [
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=argocd-controller",
        "-f",
        file,
    ];
    succeed(&kubeconfig, &flux).await;
    let pusher = pusher(&server, "canary");
    push(&pusher, "web", &split(25.0, 5)).await;

    let revision = plugin(&server, "canary")["metadata"]["resourceVersion"].clone();
    succeed(&kubeconfig, &flux).await;
    assert_eq!(
        plugin(&server, "canary")["metadata"]["resourceVersion"],
        revision,
        "a Flux re-sync of unchanged files wrote the plugin"
    );
    succeed(&kubeconfig, &argo).await;
    assert_eq!(stored_split(&server, "canary", "web"), split(25.0, 5));
    push(&pusher, "web", &split(50.0, 5)).await;
    succeed(&kubeconfig, &argo).await;
    succeed(&kubeconfig, &flux).await;
    assert_eq!(stored_split(&server, "canary", "web"), split(50.0, 5));
    // A rollback after the syncs goes through at once.
    push(&pusher, "web", &split(0.0, 5)).await;
    assert_eq!(stored_split(&server, "canary", "web"), split(0.0, 5));
    assert_no_conflicts(&server);
}

// Two rollouts driving different entries of the mesh-wide plugin: each
// set of routes has its own field manager, so neither push removes the
// other's split (a manager's field it stops applying would be removed).
#[tokio::test]
async fn rollouts_sharing_a_plugin_keep_each_others_split() {
    let (server, _dir, kubeconfig) = with_kubeconfig().await;
    grant_controller(&server);
    let mesh = repo_path("manifests/istio/placements/mesh/wasm-plugin.yaml");
    succeed(
        &kubeconfig,
        &["apply", "--server-side", "-f", mesh.to_str().unwrap()],
    )
    .await;
    let pusher = pusher(&server, "canary-mesh");
    let api = Split {
        stable: "api-v1".into(),
        canary: Some("api-v2".into()),
        ..split(5.0, 9)
    };
    push(&pusher, "web", &split(10.0, 8)).await;
    push(&pusher, "api", &api).await;
    push(&pusher, "web", &split(20.0, 8)).await;
    assert_eq!(stored_split(&server, "canary-mesh", "web"), split(20.0, 8));
    assert_eq!(stored_split(&server, "canary-mesh", "api"), api);
    let output = kubectl(
        &kubeconfig,
        &["apply", "--server-side", "-f", mesh.to_str().unwrap()],
    )
    .await;
    assert!(output.status.success());
    assert_eq!(stored_split(&server, "canary-mesh", "api"), api);
    assert_no_conflicts(&server);
}
