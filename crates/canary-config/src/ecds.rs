//! The Envoy objects that carry a filter configuration: the Wasm filter's
//! `typed_config`, and the ECDS document (a `DiscoveryResponse` holding one
//! `TypedExtensionConfig`) that Envoy reads from a file.
//!
//! Every update renders the same VM settings (module, VM id, runtime), so
//! Envoy keeps the running VM and only the plugin configuration changes: a
//! weight change or a rollback never reloads or downloads the module.

use serde_json::{json, Value};

use crate::schema::FilterConfig;

/// Type URL of the Wasm HTTP filter's configuration.
pub const WASM_FILTER_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// Type URL of an ECDS resource.
pub const TYPED_EXTENSION_CONFIG_TYPE_URL: &str =
    "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

/// Where Envoy gets the filter module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleSource {
    /// A file on the proxy's disk.
    Local {
        /// Path of the `.wasm` file.
        filename: String,
    },
    /// Fetched over HTTP from a cluster, pinned by digest.
    Remote {
        /// URL of the module.
        uri: String,
        /// Envoy cluster that serves `uri`.
        cluster: String,
        /// Hex sha256 of the module; Envoy refuses anything else.
        sha256: String,
    },
}

/// The filter's identity and VM settings, identical across updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmPlugin {
    /// ECDS resource name and filter name (`canary` in the shipped files).
    pub name: String,
    /// Root context id.
    pub root_id: String,
    /// VM id: plugins with the same VM id and module share a VM.
    pub vm_id: String,
    /// The module.
    pub module: ModuleSource,
    /// `FAIL_OPEN` (shipped), `FAIL_RELOAD` or `FAIL_CLOSED`.
    pub failure_policy: String,
}

impl WasmPlugin {
    /// The shipped settings (`canary`, V8, `FAIL_OPEN`) for a local module.
    pub fn local(filename: &str) -> WasmPlugin {
        WasmPlugin {
            name: "canary".into(),
            root_id: "canary".into(),
            vm_id: "canary".into(),
            module: ModuleSource::Local {
                filename: filename.into(),
            },
            failure_policy: "FAIL_OPEN".into(),
        }
    }

    /// The Wasm filter's `typed_config` carrying `config` as the JSON
    /// `StringValue` the filter reads.
    pub fn typed_config(&self, config: &FilterConfig) -> Value {
        self.typed_config_raw(&to_json_text(config))
    }

    /// As [`WasmPlugin::typed_config`], with the configuration text as is
    /// (used to deliver deliberately broken configurations in tests).
    pub fn typed_config_raw(&self, config_text: &str) -> Value {
        let code = match &self.module {
            ModuleSource::Local { filename } => json!({ "local": { "filename": filename } }),
            ModuleSource::Remote {
                uri,
                cluster,
                sha256,
            } => json!({
                "remote": {
                    "http_uri": { "uri": uri, "cluster": cluster, "timeout": "10s" },
                    "sha256": sha256
                }
            }),
        };
        json!({
            "@type": WASM_FILTER_TYPE_URL,
            "config": {
                "name": self.name,
                "root_id": self.root_id,
                "failure_policy": self.failure_policy,
                "vm_config": {
                    "vm_id": self.vm_id,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": code
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": config_text
                }
            }
        })
    }

    /// The ECDS file document for `config`, with `version_info`.
    pub fn ecds_document(&self, config: &FilterConfig, version_info: &str) -> Value {
        self.ecds_document_raw(&to_json_text(config), version_info)
    }

    /// As [`WasmPlugin::ecds_document`], with the configuration text as is.
    pub fn ecds_document_raw(&self, config_text: &str, version_info: &str) -> Value {
        json!({
            "version_info": version_info,
            "resources": [{
                "@type": TYPED_EXTENSION_CONFIG_TYPE_URL,
                "name": self.name,
                "typed_config": self.typed_config_raw(config_text)
            }]
        })
    }
}

/// The filter configuration as compact JSON text.
pub fn to_json_text(config: &FilterConfig) -> String {
    // Serialising plain strings, numbers and lists cannot fail.
    serde_json::to_string(config).unwrap_or_default()
}

/// Why a filter configuration could not be found in an Envoy object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("no resource named {0} in the ECDS document")]
    NoResource(String),
    #[error("the filter's configuration is not a StringValue holding JSON (at {0})")]
    NotAStringValue(String),
    #[error("the filter's configuration is invalid: {0}")]
    Invalid(#[from] crate::validate::ConfigErrors),
}

/// The filter configuration inside an ECDS document (for resuming from
/// what Envoy currently has).
pub fn filter_config_from_ecds(document: &Value, name: &str) -> Result<FilterConfig, ExtractError> {
    let resource = document
        .get("resources")
        .and_then(Value::as_array)
        .and_then(|resources| {
            resources
                .iter()
                .find(|r| r.get("name").and_then(Value::as_str) == Some(name))
        })
        .ok_or_else(|| ExtractError::NoResource(name.to_owned()))?;
    let text = resource
        .pointer("/typed_config/config/configuration/value")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ExtractError::NotAStringValue("typed_config.config.configuration.value".into())
        })?;
    let config = crate::validate::parse_document(text.as_bytes())?;
    crate::validate::compile(&config)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> FilterConfig {
        crate::validate::parse_document(
            br#"{"routes":[{"name":"app","match":{"hosts":["*"]},"stable":"v1","canary":"v2","canary_weight":10}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn ecds_round_trip() {
        let plugin = WasmPlugin::local("/m.wasm");
        let document = plugin.ecds_document(&config(), "7");
        assert_eq!(document["version_info"], "7");
        assert_eq!(
            document["resources"][0]["typed_config"]["config"]["vm_config"]["code"]["local"]
                ["filename"],
            "/m.wasm"
        );
        assert_eq!(
            filter_config_from_ecds(&document, "canary").unwrap(),
            config()
        );
        assert!(matches!(
            filter_config_from_ecds(&document, "other"),
            Err(ExtractError::NoResource(_))
        ));
    }

    #[test]
    fn remote_modules_are_pinned() {
        let mut plugin = WasmPlugin::local("x");
        plugin.module = ModuleSource::Remote {
            uri: "https://m/canary.wasm".into(),
            cluster: "modules".into(),
            sha256: "ab".repeat(32),
        };
        let typed = plugin.typed_config(&config());
        assert_eq!(
            typed["config"]["vm_config"]["code"]["remote"]["sha256"],
            "ab".repeat(32)
        );
    }

    #[test]
    fn invalid_embedded_configuration_is_reported() {
        let document = WasmPlugin::local("x").ecds_document_raw("{\"routes\": 3}", "1");
        assert!(matches!(
            filter_config_from_ecds(&document, "canary"),
            Err(ExtractError::Invalid(_))
        ));
    }
}
