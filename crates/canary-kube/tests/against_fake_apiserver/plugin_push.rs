use canary_kube::fake_apiserver::{CannedResponse, Exchange, RecordedRequest};
use canary_kube::{AppliedConfig, PluginObject, PushError};
use serde_json::{json, Value};

use crate::support::{filter_config as config, push_through_fake, WASM_PLUGIN_TARGET};
const TRAFFIC_EXTENSION_TARGET: &str = "/apis/extensions.istio.io/v1alpha1/namespaces/shop/trafficextensions/canary?fieldManager=canary-controller&force=true";

/// `pluginConfig` exactly as the filter must read it.
fn expected_plugin_config(weight: u32) -> Value {
    json!({
        "routing_header": "x-canary-version",
        "routes": [{
            "name": "web",
            "match": { "hosts": ["shop.example.com"] },
            "stable": "v1",
            "canary": "v2",
            "canary_weight": 0
        }],
        "splits": {"web": {"stable": "v1", "canary": "v2", "canary_weight": weight, "generation": 1}}
    })
}

/// What the controller applies: the configuration's `splits`, as the
/// filter reads them; Git owns the rest.
fn applied_plugin_config(weight: u32) -> Value {
    let text = canary_config::ecds::to_json_text(&config(weight));
    let full: Value = serde_json::from_str(&text).unwrap();
    json!({ "splits": full["splits"] })
}

/// The object as the API server returns it after the apply: the patch
/// merged with fields other managers own.
fn stored_wasm_plugin(plugin_config: Value) -> Value {
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {
            "name": "canary",
            "namespace": "shop",
            "resourceVersion": "4711",
            "generation": 7,
            "uid": "0b6c1f0e-2f7e-4d7a-9d55-1b7c7a1e1f00"
        },
        "spec": {
            "url": "oci://registry.example/canary-filter:1.0",
            "sha256": "ab".repeat(32),
            "phase": "AUTHZ",
            "failStrategy": "FAIL_OPEN",
            "pluginConfig": plugin_config
        }
    })
}

/// The `WasmPlugin` `shop/canary`.
fn canary_plugin() -> PluginObject {
    PluginObject::wasm_plugin("shop", "canary")
}

/// The apply to `shop/canary` answered with `stored`.
fn wasm_plugin_answer(stored: &Value) -> Exchange {
    Exchange::new(
        "PATCH",
        WASM_PLUGIN_TARGET,
        CannedResponse::json(200, stored),
    )
}

fn assert_is_apply(request: &RecordedRequest, path: &str) {
    assert_eq!(request.method, "PATCH");
    assert_eq!(request.path, path);
    assert_eq!(
        request.query_params(),
        [
            ("fieldManager".to_owned(), "canary-controller".to_owned()),
            ("force".to_owned(), "true".to_owned())
        ]
    );
    assert_eq!(
        request.header("content-type"),
        Some("application/apply-patch+yaml")
    );
}

#[tokio::test]
async fn applies_only_the_split_with_the_controller_as_field_manager() {
    let (fake, pushed) = push_through_fake(
        canary_plugin(),
        vec![wasm_plugin_answer(&stored_wasm_plugin(
            expected_plugin_config(25),
        ))],
        &config(25),
    )
    .await;

    let applied = pushed.unwrap();

    assert_eq!(
        applied,
        AppliedConfig {
            resource_version: Some("4711".into()),
            generation: Some(7)
        }
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_is_apply(
        &requests[0],
        "/apis/extensions.istio.io/v1alpha1/namespaces/shop/wasmplugins/canary",
    );
    assert_eq!(
        requests[0].body_json(),
        Some(json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": { "name": "canary", "namespace": "shop" },
            "spec": { "pluginConfig": applied_plugin_config(25) }
        }))
    );
    assert!(fake.unused_exchanges().is_empty());
}

#[tokio::test]
async fn the_plugin_config_sent_is_what_the_filter_reads() {
    let (fake, pushed) = push_through_fake(
        canary_plugin(),
        vec![wasm_plugin_answer(&stored_wasm_plugin(
            expected_plugin_config(10),
        ))],
        &config(10),
    )
    .await;

    pushed.unwrap();

    let body = fake.requests()[0].body_json().unwrap();
    let sent = &body["spec"]["pluginConfig"];
    let filter_text = canary_config::ecds::to_json_text(&config(10));
    let filter: Value = serde_json::from_str(&filter_text).unwrap();
    assert_eq!(sent, &json!({ "splits": filter["splits"] }));
}

#[tokio::test]
async fn traffic_extensions_carry_the_config_under_wasm() {
    let stored = json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "TrafficExtension",
        "metadata": { "name": "canary", "namespace": "shop", "resourceVersion": "12", "generation": 2 },
        "spec": {
            "selector": { "matchLabels": { "app": "web" } },
            "wasm": {
                "url": "oci://registry.example/canary-filter:1.0",
                "pluginConfig": expected_plugin_config(50)
            }
        }
    });
    let (fake, pushed) = push_through_fake(
        PluginObject::traffic_extension("shop", "canary"),
        vec![Exchange::new(
            "PATCH",
            TRAFFIC_EXTENSION_TARGET,
            CannedResponse::json(200, &stored),
        )],
        &config(50),
    )
    .await;

    pushed.unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_is_apply(
        &requests[0],
        "/apis/extensions.istio.io/v1alpha1/namespaces/shop/trafficextensions/canary",
    );
    assert_eq!(
        requests[0].body_json(),
        Some(json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "TrafficExtension",
            "metadata": { "name": "canary", "namespace": "shop" },
            "spec": { "wasm": { "pluginConfig": applied_plugin_config(50) } }
        }))
    );
}

#[tokio::test]
async fn an_invalid_config_is_refused_without_any_request() {
    let mut duplicate_routes = config(10);
    let first_route = duplicate_routes.routes[0].clone();
    duplicate_routes.routes.push(first_route);

    let (fake, pushed) = push_through_fake(canary_plugin(), vec![], &duplicate_routes).await;

    let error = pushed.unwrap_err();
    assert!(matches!(error, PushError::InvalidConfig { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("nothing was sent"), "{message}");
    assert!(message.contains("routes[1].name"), "{message}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn keys_another_manager_left_in_the_config_are_caught() {
    let mut merged = expected_plugin_config(10);
    merged["debug_header"] = json!("x-debug");

    let (fake, pushed) = push_through_fake(
        canary_plugin(),
        vec![wasm_plugin_answer(&stored_wasm_plugin(merged))],
        &config(10),
    )
    .await;

    let error = pushed.unwrap_err();
    assert!(
        matches!(error, PushError::StoredConfigInvalid { .. }),
        "{error}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_stored_config_that_differs_is_caught() {
    let (_fake, pushed) = push_through_fake(
        canary_plugin(),
        vec![wasm_plugin_answer(&stored_wasm_plugin(
            expected_plugin_config(90),
        ))],
        &config(10),
    )
    .await;

    let error = pushed.unwrap_err();

    assert!(
        matches!(error, PushError::StoredConfigDiffers { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("\"canary_weight\":90"),
        "{error}"
    );
}

#[tokio::test]
async fn current_reads_the_configuration_the_object_holds() {
    let path = "/apis/extensions.istio.io/v1alpha1/namespaces/shop/wasmplugins/canary";
    let stored = stored_wasm_plugin(expected_plugin_config(10));
    let (fake, client) = crate::support::fake_with_client(vec![Exchange::new(
        "GET",
        path,
        CannedResponse::json(200, &stored),
    )])
    .await;
    let current = canary_kube::PluginPusher::new(client, canary_plugin())
        .current()
        .await
        .unwrap();
    assert_eq!(current, Some(config(10)));
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, path);
    assert!(fake.unused_exchanges().is_empty());
}

#[tokio::test]
async fn current_refuses_a_configuration_the_filter_would_reject() {
    let path = "/apis/extensions.istio.io/v1alpha1/namespaces/shop/wasmplugins/canary";
    let mut bad = expected_plugin_config(10);
    bad["routes"][0]["canary_weight"] = json!(250);
    let stored = stored_wasm_plugin(bad);
    let (_fake, client) = crate::support::fake_with_client(vec![Exchange::new(
        "GET",
        path,
        CannedResponse::json(200, &stored),
    )])
    .await;
    let err = canary_kube::PluginPusher::new(client, canary_plugin())
        .current()
        .await
        .unwrap_err();
    assert!(
        matches!(err, PushError::StoredConfigInvalid { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("routes[0].canary_weight"), "{err}");
}

#[tokio::test]
async fn current_of_a_missing_object_is_a_clear_error() {
    let path = "/apis/extensions.istio.io/v1alpha1/namespaces/shop/wasmplugins/canary";
    let (_fake, client) = crate::support::fake_with_client(vec![Exchange::new(
        "GET",
        path,
        CannedResponse::status(
            404,
            "NotFound",
            "wasmplugins.extensions.istio.io \"canary\" not found",
        ),
    )])
    .await;
    let err = canary_kube::PluginPusher::new(client, canary_plugin())
        .current()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("not found") && text.contains("shop"),
        "{text}"
    );
}
