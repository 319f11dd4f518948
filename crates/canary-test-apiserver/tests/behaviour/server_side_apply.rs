//! Server-side apply: field managers, conflicts, force, removal of fields
//! a manager stops applying, and how schemaless fields merge.
//! https://kubernetes.io/docs/reference/using-api/server-side-apply/

use canary_test_apiserver::TestApiServer;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::support::{api, json_of, server, status_of, wasm_plugins};

const ISTIO: &str = "extensions.istio.io/v1alpha1";

/// The WasmPlugin as Git holds it: module, placement and the base
/// configuration with its `routes` list; no split.
fn git_manifest() -> Value {
    json!({
        "apiVersion": ISTIO,
        "kind": "WasmPlugin",
        "metadata": {"name": "canary", "namespace": "istio-system"},
        "spec": {
            "selector": {"matchLabels": {"istio": "ingressgateway"}},
            "url": "oci://registry.example.com/canary/canary-filter:0.1.0",
            "sha256": "1b306971da1e6b9837ec754f6744ddfc22efd295b6f67e0e2b537c98e9ae9e6d",
            "failStrategy": "FAIL_OPEN",
            "pluginConfig": {
                "routing_header": "x-canary-version",
                "routes": [{"name": "web", "stable": "web-v1", "canary": "web-v2", "canary_weight": 0}]
            }
        }
    })
}

/// What the controller applies: the split of route `web`, nothing else.
fn controller_split(weight_bp: u32) -> Value {
    json!({
        "apiVersion": ISTIO,
        "kind": "WasmPlugin",
        "metadata": {"name": "canary", "namespace": "istio-system"},
        "spec": {"pluginConfig": {"splits": {"web": {"canary_weight_bp": weight_bp}}}}
    })
}

async fn apply(
    api: &Api<DynamicObject>,
    manager: &str,
    force: bool,
    body: &Value,
) -> Result<DynamicObject, kube::Error> {
    let mut params = PatchParams::apply(manager);
    params.force = force;
    api.patch("canary", &params, &Patch::Apply(body)).await
}

/// (manager, operation, fieldsV1) of each managedFields entry.
fn owners(object: &DynamicObject) -> Vec<(String, String, Value)> {
    object
        .metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
                serde_json::to_value(m.fields_v1).unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn fields_of<'a>(owners: &'a [(String, String, Value)], manager: &str) -> &'a Value {
    &owners
        .iter()
        .find(|(m, _, _)| m == manager)
        .unwrap_or_else(|| panic!("{manager} owns nothing: {owners:?}"))
        .2
}

async fn plugins() -> (TestApiServer, Api<DynamicObject>) {
    let server = server().await;
    let plugins = wasm_plugins(&server.admin_client().unwrap(), "istio-system");
    (server, plugins)
}

// "Field management": each manager's fields in metadata.managedFields,
// with operation Apply and fieldsV1.
#[tokio::test]
async fn each_manager_owns_what_it_applied() {
    let (_server, plugins) = plugins().await;
    apply(&plugins, "argocd-controller", false, &git_manifest())
        .await
        .unwrap();
    let object = apply(&plugins, "canary-controller", true, &controller_split(1000))
        .await
        .unwrap();

    let owners = owners(&object);
    assert_eq!(owners.len(), 2, "{owners:?}");
    assert!(owners.iter().all(|(_, operation, _)| operation == "Apply"));
    assert_eq!(
        fields_of(&owners, "canary-controller"),
        &json!({"f:spec": {"f:pluginConfig": {"f:splits": {"f:web": {"f:canary_weight_bp": {}}}}}})
    );
    let git = fields_of(&owners, "argocd-controller");
    assert_eq!(
        git["f:spec"]["f:pluginConfig"],
        json!({"f:routes": {}, "f:routing_header": {}})
    );
    assert_eq!(git["f:spec"]["f:url"], json!({}));
    assert_eq!(
        json_of(&object)["spec"]["pluginConfig"]["splits"],
        json!({"web": {"canary_weight_bp": 1000}})
    );
}

// "Conflicts": an apply that would change a field another manager owns
// fails with 409, naming the manager and the field, unless forced; with
// force the applier takes the field over.
#[tokio::test]
async fn changing_a_field_another_manager_owns_conflicts_until_forced() {
    let (_server, plugins) = plugins().await;
    apply(&plugins, "kubectl", false, &git_manifest())
        .await
        .unwrap();
    let mut weighted = git_manifest();
    weighted["spec"] = json!({"pluginConfig": {"routes": [
        {"name": "web", "stable": "web-v1", "canary": "web-v2", "canary_weight": 10}
    ]}});

    let status = status_of(apply(&plugins, "canary-controller", false, &weighted).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"kubectl\" using extensions.istio.io/v1alpha1: .spec.pluginConfig.routes"
    );
    let causes = status.details.unwrap().causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, ".spec.pluginConfig.routes");
    assert_eq!(causes[0].reason, "FieldManagerConflict");

    let forced = apply(&plugins, "canary-controller", true, &weighted)
        .await
        .unwrap();
    let owners = owners(&forced);
    assert!(fields_of(&owners, "kubectl")["f:spec"]["f:pluginConfig"]
        .get("f:routes")
        .is_none());
    assert_eq!(
        json_of(&forced)["spec"]["pluginConfig"]["routes"][0]["canary_weight"],
        10
    );

    // Git applying its manifest again now conflicts with the controller:
    // the failure a GitOps sync meets when the split sits in `routes`.
    let status = status_of(apply(&plugins, "kubectl", false, &git_manifest()).await);
    assert_eq!(status.code, 409);
    assert!(
        status
            .message
            .contains("conflict with \"canary-controller\""),
        "{}",
        status.message
    );
}

// "Conflicts": a manager that applies the value already there shares the
// field instead of conflicting; the field stays while anyone owns it.
#[tokio::test]
async fn applying_the_same_value_shares_the_field() {
    let (_server, plugins) = plugins().await;
    apply(&plugins, "git", false, &git_manifest())
        .await
        .unwrap();
    let mut same_url = controller_split(0);
    same_url["spec"]["url"] = git_manifest()["spec"]["url"].clone();
    let shared = apply(&plugins, "ops", false, &same_url).await.unwrap();
    let owners = owners(&shared);
    assert_eq!(fields_of(&owners, "git")["f:spec"]["f:url"], json!({}));
    assert_eq!(fields_of(&owners, "ops")["f:spec"]["f:url"], json!({}));

    let mut without_url = git_manifest();
    without_url["spec"].as_object_mut().unwrap().remove("url");
    let kept = apply(&plugins, "git", false, &without_url).await.unwrap();
    assert_eq!(json_of(&kept)["spec"]["url"], git_manifest()["spec"]["url"]);
}

// "Merge strategy": fields a manager applied before and applies no more
// are removed, if no other manager owns them.
#[tokio::test]
async fn a_field_a_manager_stops_applying_is_removed() {
    let (_server, plugins) = plugins().await;
    apply(&plugins, "git", false, &git_manifest())
        .await
        .unwrap();
    let mut without = git_manifest();
    without["spec"]
        .as_object_mut()
        .unwrap()
        .remove("failStrategy");
    let applied = apply(&plugins, "git", false, &without).await.unwrap();
    assert!(json_of(&applied)["spec"].get("failStrategy").is_none());
}

// "Merge strategy": below x-kubernetes-preserve-unknown-fields there is no
// schema, so lists are atomic (one field, replaced whole) and maps are
// granular (each key its own field). A `splits` map keyed by route name
// that only the controller writes therefore survives every re-apply of
// Git's manifest, while a weight inside Git's `routes` list cannot.
#[tokio::test]
async fn the_split_survives_git_re_applying_its_manifest_mid_rollout() {
    let (_server, plugins) = plugins().await;
    apply(&plugins, "argocd-controller", false, &git_manifest())
        .await
        .unwrap();
    apply(&plugins, "canary-controller", true, &controller_split(1000))
        .await
        .unwrap();

    // A sync of the same manifest, without force: no conflict.
    let synced = apply(&plugins, "argocd-controller", false, &git_manifest())
        .await
        .unwrap();
    assert_eq!(
        json_of(&synced)["spec"]["pluginConfig"]["splits"]["web"]["canary_weight_bp"],
        1000
    );

    // Git changes the base configuration: a route added, the list is
    // replaced whole; the split is untouched.
    let mut changed = git_manifest();
    changed["spec"]["pluginConfig"]["routes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "api", "stable": "api-v1", "canary": "api-v2", "canary_weight": 0}));
    let synced = apply(&plugins, "argocd-controller", false, &changed)
        .await
        .unwrap();
    let config = &json_of(&synced)["spec"]["pluginConfig"];
    assert_eq!(config["routes"].as_array().unwrap().len(), 2);
    assert_eq!(config["splits"], json!({"web": {"canary_weight_bp": 1000}}));

    // The controller's next step, without force: nothing to conflict with.
    let stepped = apply(
        &plugins,
        "canary-controller",
        false,
        &controller_split(2500),
    )
    .await
    .unwrap();
    assert_eq!(
        json_of(&stepped)["spec"]["pluginConfig"]["splits"]["web"]["canary_weight_bp"],
        2500
    );
    assert_eq!(
        json_of(&stepped)["spec"]["pluginConfig"]["routes"],
        changed["spec"]["pluginConfig"]["routes"]
    );
    let owners = owners(&stepped);
    assert!(
        fields_of(&owners, "argocd-controller")["f:spec"]["f:pluginConfig"]
            .get("f:splits")
            .is_none()
    );
}

// The same on TrafficExtension, where the configuration is
// spec.wasm.pluginConfig.
#[tokio::test]
async fn the_split_survives_on_a_traffic_extension_too() {
    let server = server().await;
    let extensions = api(
        &server.admin_client().unwrap(),
        "istio-system",
        "extensions.istio.io",
        "v1alpha1",
        "TrafficExtension",
        "trafficextensions",
    );
    let git = json!({"apiVersion": ISTIO, "kind": "TrafficExtension",
        "metadata": {"name": "canary", "namespace": "istio-system"},
        "spec": {"wasm": {"url": "oci://x", "pluginConfig": {"routes": [{"name": "web", "canary_weight": 0}]}}}});
    let split = json!({"apiVersion": ISTIO, "kind": "TrafficExtension",
        "metadata": {"name": "canary", "namespace": "istio-system"},
        "spec": {"wasm": {"pluginConfig": {"splits": {"web": {"canary_weight_bp": 5000}}}}}});
    apply(&extensions, "git", false, &git).await.unwrap();
    apply(&extensions, "canary-controller", true, &split)
        .await
        .unwrap();
    let synced = apply(&extensions, "git", false, &git).await.unwrap();
    assert_eq!(
        json_of(&synced)["spec"]["wasm"]["pluginConfig"]["splits"]["web"]["canary_weight_bp"],
        5000
    );
    assert_eq!(json_of(&synced)["spec"]["wasm"]["url"], "oci://x");
}

// "Merge strategy": x-kubernetes-list-type: map lists merge item by item,
// each item owned on its own; a change to another manager's item
// conflicts.
#[tokio::test]
async fn list_map_items_are_merged_and_owned_by_key() {
    let server = server().await;
    server
        .load_yaml(
            r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gateways.example.com}
spec:
  group: example.com
  names: {kind: Gateway, plural: gateways}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                listeners:
                  type: array
                  x-kubernetes-list-type: map
                  x-kubernetes-list-map-keys: [name]
                  items:
                    type: object
                    properties:
                      name: {type: string}
                      port: {type: integer}
"#,
        )
        .unwrap();
    let gateways = api(
        &server.admin_client().unwrap(),
        "shop",
        "example.com",
        "v1",
        "Gateway",
        "gateways",
    );
    let listener = |name: &str, port: u16| {
        json!({"apiVersion": "example.com/v1", "kind": "Gateway", "metadata": {"name": "canary"},
               "spec": {"listeners": [{"name": name, "port": port}]}})
    };
    apply(&gateways, "team-a", false, &listener("http", 80))
        .await
        .unwrap();
    let both = apply(&gateways, "team-b", false, &listener("https", 443))
        .await
        .unwrap();
    assert_eq!(
        json_of(&both)["spec"]["listeners"],
        json!([{"name": "http", "port": 80}, {"name": "https", "port": 443}])
    );
    let status = status_of(apply(&gateways, "team-b", false, &listener("http", 8080)).await);
    assert_eq!(status.code, 409);
    assert!(
        status
            .message
            .contains(".spec.listeners[name=\"http\"].port"),
        "{}",
        status.message
    );
}

/// What `kubectl apply` (client-side) sends for a custom resource: a JSON
/// merge patch computed three ways from the last applied configuration
/// (its annotation), the new manifest and the live object: keys the last
/// configuration had and the new one drops become `null`; keys of the new
/// manifest whose value differs from the live one are set.
fn kubectl_three_way_patch(last: &Value, manifest: &Value, live: &Value) -> Value {
    fn deletions(last: &Value, manifest: &Value) -> Value {
        let mut patch = serde_json::Map::new();
        if let (Some(last), Some(manifest)) = (last.as_object(), manifest.as_object()) {
            for (key, value) in last {
                match manifest.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(next) if value.is_object() && next.is_object() => {
                        let inner = deletions(value, next);
                        if inner.as_object().is_some_and(|m| !m.is_empty()) {
                            patch.insert(key.clone(), inner);
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        Value::Object(patch)
    }
    fn changes(live: &Value, manifest: &Value) -> Value {
        let mut patch = serde_json::Map::new();
        if let Some(manifest) = manifest.as_object() {
            for (key, value) in manifest {
                match live.get(key) {
                    Some(current) if current == value => {}
                    Some(current) if current.is_object() && value.is_object() => {
                        patch.insert(key.clone(), changes(current, value));
                    }
                    _ => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        Value::Object(patch)
    }
    let mut patch = deletions(last, manifest);
    canary_test_apiserver::patch::merge_patch(&mut patch, &changes(live, manifest));
    patch
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `kubectl apply -f` of `manifest` onto the live object, as a merge patch
/// with kubectl's field manager.
async fn client_side_apply(plugins: &Api<DynamicObject>, manifest: &Value) -> DynamicObject {
    let mut manifest = manifest.clone();
    let live = json_of(&plugins.get("canary").await.unwrap());
    let last: Value = live["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .map(|text| serde_json::from_str(text).unwrap())
        .unwrap_or_else(|| json!({}));
    manifest["metadata"]["annotations"] = json!({LAST_APPLIED: manifest.to_string()});
    let patch = kubectl_three_way_patch(&last, &manifest, &live);
    let params = PatchParams {
        field_manager: Some("kubectl-client-side-apply".into()),
        ..PatchParams::default()
    };
    plugins
        .patch("canary", &params, &Patch::Merge(&patch))
        .await
        .unwrap()
}

// https://kubernetes.io/docs/tasks/manage-kubernetes-objects/declarative-config/#merge-patch-calculation
// (client-side apply: the three-way merge, lists of custom resources
// replaced whole). The split in its own map survives a client-side
// re-apply; a weight inside Git's `routes` list is reset to Git's.
#[tokio::test]
async fn client_side_apply_resets_a_weight_in_routes_but_leaves_the_split_map_alone() {
    let (_server, plugins) = plugins().await;
    let mut first = git_manifest();
    first["metadata"]["annotations"] = json!({LAST_APPLIED: git_manifest().to_string()});
    let params = PostParams {
        field_manager: Some("kubectl-client-side-apply".into()),
        ..PostParams::default()
    };
    plugins
        .create(&params, &serde_json::from_value(first).unwrap())
        .await
        .unwrap();

    // The controller's split in its own map and, the old way, a weight
    // inside the routes list.
    let mut weighted = controller_split(1000);
    weighted["spec"]["pluginConfig"]["routes"] =
        json!([{"name": "web", "stable": "web-v1", "canary": "web-v2", "canary_weight": 10}]);
    apply(&plugins, "canary-controller", true, &weighted)
        .await
        .unwrap();

    let mut next = git_manifest();
    next["spec"]["failStrategy"] = json!("FAIL_CLOSED");
    let after = json_of(&client_side_apply(&plugins, &next).await);
    assert_eq!(after["spec"]["failStrategy"], "FAIL_CLOSED");
    assert_eq!(
        after["spec"]["pluginConfig"]["splits"]["web"]["canary_weight_bp"], 1000,
        "split kept"
    );
    assert_eq!(
        after["spec"]["pluginConfig"]["routes"][0]["canary_weight"], 0,
        "Git's list replaced the weight"
    );
}
