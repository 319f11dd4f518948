//! Discovery documents, as `kubectl` reads them to map kinds to
//! resources: `/api`, `/api/v1`, `/apis`, `/apis/<group>`,
//! `/apis/<group>/<version>`, and `/version`. Only the legacy
//! (unaggregated) form is served; `kubectl` falls back to it.
//!
//! Reference: <https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api>.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::resources::Registry;

const RESOURCE_VERBS: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// `/api`.
pub fn core_versions(address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]
    })
}

fn group_versions(registry: &Registry) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for resource in registry.all() {
        if resource.group.is_empty() {
            continue;
        }
        let versions = groups.entry(resource.group.clone()).or_default();
        if !versions.contains(&resource.version) {
            versions.push(resource.version.clone());
        }
    }
    groups
}

fn group_document(group: &str, versions: &[String]) -> Value {
    let listed: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": listed,
        "preferredVersion": listed.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub fn groups(registry: &Registry) -> Value {
    let groups: Vec<Value> = group_versions(registry)
        .iter()
        .map(|(group, versions)| group_document(group, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, if served.
pub fn group(registry: &Registry, group: &str) -> Option<Value> {
    let versions = group_versions(registry).remove(group)?;
    let mut document = group_document(group, &versions);
    document["kind"] = json!("APIGroup");
    document["apiVersion"] = json!("v1");
    Some(document)
}

/// `/api/v1` or `/apis/<group>/<version>`, if served.
pub fn resources(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut listed = Vec::new();
    for resource in registry
        .all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        listed.push(json!({
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": RESOURCE_VERBS,
            "shortNames": resource.short_names,
        }));
        if resource.status_subresource {
            listed.push(json!({
                "name": format!("{}/status", resource.plural),
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if listed.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": listed,
    }))
}

/// `/openapi/v3`: one group-version document, the core group's.
pub fn openapi_v3_root() -> Value {
    json!({"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1"}}})
}

/// `/openapi/v3/api/v1`: not the API's schemas, only what `kubectl` looks
/// up before it sends a write: that PATCH takes `fieldValidation`, so it
/// leaves validation to the server instead of downloading schemas to
/// validate on the client. (`kubectl` checks a kind it does not find here
/// against Namespace.)
pub fn openapi_v3_core() -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": {
            "/api/v1/namespaces/{name}": {
                "patch": {
                    "operationId": "patchCoreV1Namespace",
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "Namespace"},
                    "parameters": [
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
                    ],
                    "responses": {"200": {"description": "OK"}}
                }
            }
        },
        "components": {"schemas": {}}
    })
}

/// `/version`: the Kubernetes release the server stands for.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0",
        "gitCommit": "canary-test-apiserver",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}
