//! `kubectl` against the server, as a GitOps tool or a person applies the
//! shipped manifests mid-rollout: server-side apply (`--server-side`) and
//! client-side apply both leave the controller's split alone; a weight
//! kept inside Git's `routes` list makes a server-side re-apply conflict.
//! https://kubernetes.io/docs/reference/using-api/server-side-apply/#comparison-with-client-side-apply
//! and https://kubernetes.io/docs/tasks/manage-kubernetes-objects/declarative-config/

use std::path::{Path, PathBuf};
use std::process::Output;

use canary_test_apiserver::{Identity, TestApiServer};
use kube::api::{Patch, PatchParams};
use serde_json::{json, Value};

use crate::support::{json_of, server, wasm_plugins};

/// Runs kubectl without blocking the runtime the server runs on.
pub async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|error| {
            panic!("cannot run kubectl ({error}); install kubectl 1.32 or later (apt-get install kubectl)")
        })
}

pub async fn succeed(kubeconfig: &Path, args: &[&str]) -> String {
    let output = kubectl(kubeconfig, args).await;
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn manifest(name: &str, failure: &str) -> String {
    format!(
        "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata:\n  name: {name}\n  namespace: istio-system\n\
         spec:\n  url: oci://registry.example.com/canary/canary-filter:0.1.0\n  failStrategy: {failure}\n  pluginConfig:\n\
         \x20   routing_header: x-canary-version\n    routes:\n      - name: web\n        stable: web-v1\n        canary: web-v2\n        canary_weight: 0\n"
    )
}

/// A server, a temporary folder, and a kubeconfig in it for the
/// administrator.
pub async fn with_kubeconfig() -> (TestApiServer, tempfile::TempDir, PathBuf) {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server
        .write_kubeconfig(&Identity::admin(), &kubeconfig)
        .unwrap();
    (server, dir, kubeconfig)
}

async fn split(server: &TestApiServer, name: &str, config: Value) {
    let plugins = wasm_plugins(&server.admin_client().unwrap(), "istio-system");
    let body = json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
                      "metadata": {"name": name, "namespace": "istio-system"},
                      "spec": {"pluginConfig": config}});
    plugins
        .patch(
            name,
            &PatchParams::apply("canary-controller").force(),
            &Patch::Apply(&body),
        )
        .await
        .unwrap();
}

async fn stored(server: &TestApiServer, name: &str) -> Value {
    json_of(
        &wasm_plugins(&server.admin_client().unwrap(), "istio-system")
            .get(name)
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn kubectl_apply_server_side_and_client_side_leave_the_split_alone() {
    let (server, dir, kubeconfig) = with_kubeconfig().await;
    let file = dir.path().join("plugin.yaml");
    let path = file.to_str().unwrap();
    let splits = json!({"splits": {"web": {"canary_weight_bp": 1000}}});

    // Server-side, as `kubectl apply --server-side` and Argo CD's
    // ServerSideApply=true do.
    std::fs::write(&file, manifest("server-side", "FAIL_OPEN")).unwrap();
    succeed(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "--field-manager=argocd-controller",
            "-f",
            path,
        ],
    )
    .await;
    split(&server, "server-side", splits.clone()).await;
    std::fs::write(&file, manifest("server-side", "FAIL_CLOSED")).unwrap();
    succeed(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "--field-manager=argocd-controller",
            "-f",
            path,
        ],
    )
    .await;
    let object = stored(&server, "server-side").await;
    assert_eq!(object["spec"]["failStrategy"], "FAIL_CLOSED");
    assert_eq!(object["spec"]["pluginConfig"]["splits"], splits["splits"]);

    // Client-side, the default `kubectl apply`.
    std::fs::write(&file, manifest("client-side", "FAIL_OPEN")).unwrap();
    succeed(&kubeconfig, &["apply", "-f", path]).await;
    split(&server, "client-side", splits.clone()).await;
    std::fs::write(&file, manifest("client-side", "FAIL_CLOSED")).unwrap();
    succeed(&kubeconfig, &["apply", "-f", path]).await;
    let object = stored(&server, "client-side").await;
    assert_eq!(object["spec"]["failStrategy"], "FAIL_CLOSED");
    assert_eq!(object["spec"]["pluginConfig"]["splits"], splits["splits"]);
    let managers: Vec<String> = object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(managers, ["kubectl-client-side-apply", "canary-controller"]);

    let sent: Vec<(String, String)> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| (r.field_manager, r.content_type))
        .collect();
    assert!(
        sent.contains(&(
            "argocd-controller".into(),
            "application/apply-patch+yaml".into()
        )),
        "{sent:?}"
    );
    assert!(
        sent.contains(&(
            "kubectl-client-side-apply".into(),
            "application/merge-patch+json".into()
        )),
        "{sent:?}"
    );

    // kubectl reads what it wrote.
    let listed = succeed(
        &kubeconfig,
        &["get", "wasmplugins", "-n", "istio-system", "-o", "name"],
    )
    .await;
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        [
            "wasmplugin.extensions.istio.io/client-side",
            "wasmplugin.extensions.istio.io/server-side"
        ]
    );
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation:
// kubectl asks for strict validation; a field the CRD does not declare is
// an error, not silently dropped.
#[tokio::test]
async fn kubectl_apply_refuses_undeclared_fields() {
    let (_server, dir, kubeconfig) = with_kubeconfig().await;
    let file = dir.path().join("plugin.yaml");
    std::fs::write(
        &file,
        manifest("canary", "FAIL_OPEN").replace("  failStrategy:", "  failStrategyy:"),
    )
    .unwrap();
    let output = kubectl(
        &kubeconfig,
        &["apply", "--server-side", "-f", file.to_str().unwrap()],
    )
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown field \"spec.failStrategyy\""),
        "{stderr}"
    );
}

#[tokio::test]
async fn kubectl_apply_server_side_conflicts_with_a_weight_inside_routes() {
    let (server, dir, kubeconfig) = with_kubeconfig().await;
    let file = dir.path().join("plugin.yaml");
    let path = file.to_str().unwrap();
    std::fs::write(&file, manifest("canary", "FAIL_OPEN")).unwrap();
    succeed(&kubeconfig, &["apply", "--server-side", "-f", path]).await;
    split(
        &server,
        "canary",
        json!({"routes": [{"name": "web", "stable": "web-v1", "canary": "web-v2", "canary_weight": 10}]}),
    )
    .await;

    let output = kubectl(&kubeconfig, &["apply", "--server-side", "-f", path]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("conflict with \"canary-controller\""),
        "{stderr}"
    );
    assert!(stderr.contains(".spec.pluginConfig.routes"), "{stderr}");
}
