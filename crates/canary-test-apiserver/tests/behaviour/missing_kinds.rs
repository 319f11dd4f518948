//! A mesh older than Istio 1.30 serves `WasmPlugin` but not
//! `TrafficExtension`: the API server answers 404 to its URLs and leaves it
//! out of discovery. The controller's push tells that apart from a missing
//! object and says what to do, instead of failing the same way forever.
//! https://kubernetes.io/docs/reference/using-api/api-concepts/#discovery-api

use canary_kube::{check_served, PluginKind, PluginObject, PluginPusher, PushError};
use canary_test_apiserver::{crds, TestApiServer};
use serde_json::json;

/// A server with Istio's WasmPlugin CRD only, as Istio 1.29 installs.
async fn istio_1_29() -> TestApiServer {
    let server = TestApiServer::start().await.unwrap();
    let wasm_plugin_only = crds::ISTIO_EXTENSIONS
        .split("\n---\n")
        .find(|document| document.contains("name: wasmplugins.extensions.istio.io"))
        .expect("the WasmPlugin CRD");
    server.load_yaml(wasm_plugin_only).unwrap();
    server
        .seed(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
        )
        .unwrap();
    server
}

#[tokio::test]
async fn a_kind_the_mesh_does_not_serve_is_named_with_what_to_do() {
    let server = istio_1_29().await;
    let client = server.admin_client().unwrap();
    check_served(&client, PluginKind::WasmPlugin).await.unwrap();
    let missing = check_served(&client, PluginKind::TrafficExtension)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.starts_with("kind TrafficExtension not served")
            && missing.contains("needs Istio ≥ 1.30; use the WasmPlugin placement"),
        "{missing}"
    );

    let pusher = PluginPusher::new(
        client.clone(),
        PluginObject::traffic_extension("istio-system", "canary"),
    );
    let error = pusher.current().await.unwrap_err();
    assert!(matches!(error, PushError::KindNotServed { .. }), "{error}");
    assert!(error.to_string().contains("needs Istio ≥ 1.30"), "{error}");
    assert!(matches!(
        pusher.check_kind().await,
        Err(PushError::KindNotServed { .. })
    ));

    // A missing object of a served kind stays a plain 404.
    let absent = PluginPusher::new(client, PluginObject::wasm_plugin("istio-system", "nope"));
    let error = absent.current().await.unwrap_err();
    assert!(
        matches!(
            error,
            PushError::Api(canary_kube::ApiError::NotFound { .. })
        ),
        "{error}"
    );
}

#[tokio::test]
async fn no_istio_at_all_is_named_too() {
    let server = TestApiServer::start().await.unwrap();
    let client = server.admin_client().unwrap();
    let error = check_served(&client, PluginKind::WasmPlugin)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("kind WasmPlugin not served") && error.contains("install Istio"),
        "{error}"
    );
}
