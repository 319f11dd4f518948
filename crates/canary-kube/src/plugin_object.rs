//! The Istio object that carries the filter configuration, and the
//! server-side apply patch that sets it.
//!
//! Istio hands `pluginConfig` to the filter as JSON text (a
//! `google.protobuf.StringValue`), so the object's `pluginConfig` holds the
//! configuration as the JSON object the filter reads. The controller
//! writes only its `splits` ([`PluginObject::split_patch`]).

use std::fmt;

use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Map, Value};

/// API group of Istio's proxy extension resources.
pub const ISTIO_EXTENSIONS_GROUP: &str = "extensions.istio.io";
/// API version of both resources.
pub const ISTIO_EXTENSIONS_VERSION: &str = "v1alpha1";

/// Which Istio resource carries the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// `WasmPlugin`: the configuration is `spec.pluginConfig`.
    WasmPlugin,
    /// `TrafficExtension` (Istio 1.30+, superseding `WasmPlugin`): the
    /// configuration is `spec.wasm.pluginConfig`.
    TrafficExtension,
}

impl PluginKind {
    /// The resource's kind as written in manifests.
    pub fn kind(self) -> &'static str {
        match self {
            PluginKind::WasmPlugin => "WasmPlugin",
            PluginKind::TrafficExtension => "TrafficExtension",
        }
    }

    /// The resource's plural, the path segment of its URLs.
    pub fn plural(self) -> &'static str {
        match self {
            PluginKind::WasmPlugin => "wasmplugins",
            PluginKind::TrafficExtension => "trafficextensions",
        }
    }

    /// The resource for kube's dynamic API.
    pub fn api_resource(self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(
                ISTIO_EXTENSIONS_GROUP,
                ISTIO_EXTENSIONS_VERSION,
                self.kind(),
            ),
            self.plural(),
        )
    }

    /// Where the filter configuration sits under `spec`.
    pub fn config_path(self) -> &'static [&'static str] {
        match self {
            PluginKind::WasmPlugin => &["pluginConfig"],
            PluginKind::TrafficExtension => &["wasm", "pluginConfig"],
        }
    }
}

/// The named object the controller writes the configuration to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginObject {
    /// Its resource.
    pub kind: PluginKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl PluginObject {
    /// A `WasmPlugin` named `name` in `namespace`.
    pub fn wasm_plugin(namespace: &str, name: &str) -> PluginObject {
        PluginObject {
            kind: PluginKind::WasmPlugin,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// A `TrafficExtension` named `name` in `namespace`.
    pub fn traffic_extension(namespace: &str, name: &str) -> PluginObject {
        PluginObject {
            kind: PluginKind::TrafficExtension,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The server-side apply patch for `config_json`: `apiVersion`, `kind`,
    /// `metadata.name`, `metadata.namespace` and the configuration at
    /// [`PluginKind::config_path`], nothing else, so the controller's field
    /// manager owns the configuration and no other field of the object.
    pub fn apply_patch(&self, config_json: Value) -> Value {
        let spec = self
            .kind
            .config_path()
            .iter()
            .rev()
            .fold(config_json, |inner, key| {
                let mut outer = Map::new();
                outer.insert((*key).to_owned(), inner);
                Value::Object(outer)
            });
        json!({
            "apiVersion": format!("{ISTIO_EXTENSIONS_GROUP}/{ISTIO_EXTENSIONS_VERSION}"),
            "kind": self.kind.kind(),
            "metadata": { "name": self.name, "namespace": self.namespace },
            "spec": spec,
        })
    }

    /// The server-side apply patch that sets `splits` (a map of route
    /// entry name to split) inside the configuration and nothing else.
    pub fn split_patch(&self, splits: Value) -> Value {
        let mut config = Map::new();
        config.insert("splits".to_owned(), splits);
        self.apply_patch(Value::Object(config))
    }

    /// The configuration in an object as the API server returned it.
    pub fn stored_config<'a>(&self, object: &'a Value) -> Option<&'a Value> {
        self.kind
            .config_path()
            .iter()
            .try_fold(object.get("spec")?, |value, key| value.get(key))
    }
}

impl fmt::Display for PluginObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{} {:?} in namespace {:?}",
            self.kind.plural(),
            ISTIO_EXTENSIONS_GROUP,
            self.name,
            self.namespace
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_plugin_patch_holds_only_identity_and_plugin_config() {
        let object = PluginObject::wasm_plugin("shop", "canary");
        assert_eq!(
            object.apply_patch(json!({ "routes": [] })),
            json!({
                "apiVersion": "extensions.istio.io/v1alpha1",
                "kind": "WasmPlugin",
                "metadata": { "name": "canary", "namespace": "shop" },
                "spec": { "pluginConfig": { "routes": [] } }
            })
        );
    }

    #[test]
    fn traffic_extension_patch_nests_under_wasm() {
        let object = PluginObject::traffic_extension("mesh", "split");
        assert_eq!(
            object.apply_patch(json!({ "routes": [] })),
            json!({
                "apiVersion": "extensions.istio.io/v1alpha1",
                "kind": "TrafficExtension",
                "metadata": { "name": "split", "namespace": "mesh" },
                "spec": { "wasm": { "pluginConfig": { "routes": [] } } }
            })
        );
    }

    #[test]
    fn stored_config_is_found_where_the_patch_put_it() {
        for object in [
            PluginObject::wasm_plugin("shop", "canary"),
            PluginObject::traffic_extension("shop", "canary"),
        ] {
            let config = json!({ "routes": [{ "name": "app" }] });
            let patch = object.apply_patch(config.clone());
            assert_eq!(object.stored_config(&patch), Some(&config));
            assert_eq!(object.stored_config(&json!({ "spec": {} })), None);
        }
    }

    #[test]
    fn resources_are_istio_extensions() {
        let resource = PluginKind::TrafficExtension.api_resource();
        assert_eq!(resource.api_version, "extensions.istio.io/v1alpha1");
        assert_eq!(resource.plural, "trafficextensions");
        assert_eq!(PluginKind::WasmPlugin.api_resource().plural, "wasmplugins");
        assert_eq!(
            PluginObject::wasm_plugin("shop", "canary").to_string(),
            "wasmplugins.extensions.istio.io \"canary\" in namespace \"shop\""
        );
    }
}
