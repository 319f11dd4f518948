//! Pushing a filter configuration to Envoy through its file-based ECDS: the
//! whole ECDS document is rewritten with the new configuration and a higher
//! `version_info`, then renamed into place.
//!
//! Everything except the configuration text is kept exactly as found in the
//! file (module, VM id, runtime, failure policy), so Envoy keeps its VM and
//! a push never reloads the module.

use std::path::{Path, PathBuf};

use canary_config::ecds::{filter_config_from_ecds, to_json_text, ExtractError};
use canary_config::FilterConfig;
use serde_json::Value;

use crate::atomic_file::{self, AtomicWriteError};

/// Why the ECDS file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EcdsFileError {
    #[error("cannot read the ECDS file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the ECDS file {path} is not YAML/JSON: {reason}")]
    NotADocument { path: PathBuf, reason: String },
    #[error("the ECDS file {path}: {source}")]
    Content {
        path: PathBuf,
        #[source]
        source: ExtractError,
    },
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
}

/// The ECDS file of one Envoy (or of several sharing the file).
#[derive(Debug, Clone)]
pub struct EcdsFile {
    path: PathBuf,
    resource: String,
}

/// What a push wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcdsReceipt {
    /// The `version_info` written; Envoy reports it back as
    /// `extension_config_discovery.http_filter.<name>.version_text`.
    pub version_info: String,
}

impl EcdsFile {
    /// The file at `path`, carrying the ECDS resource named `resource`
    /// (`canary` in the shipped files).
    pub fn new(path: impl Into<PathBuf>, resource: impl Into<String>) -> EcdsFile {
        EcdsFile {
            path: path.into(),
            resource: resource.into(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ECDS resource name.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    fn read_document(&self) -> Result<Value, EcdsFileError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| EcdsFileError::Read {
            path: self.path.clone(),
            source,
        })?;
        serde_yaml::from_str(&text).map_err(|err| EcdsFileError::NotADocument {
            path: self.path.clone(),
            reason: err.to_string(),
        })
    }

    /// The filter configuration the file holds now.
    pub fn current(&self) -> Result<FilterConfig, EcdsFileError> {
        let document = self.read_document()?;
        filter_config_from_ecds(&document, &self.resource).map_err(|source| {
            EcdsFileError::Content {
                path: self.path.clone(),
                source,
            }
        })
    }

    /// Writes `config` (already validated by the caller) with the next
    /// version. Keeps every other field of the document as it is.
    pub fn push(&self, config: &FilterConfig) -> Result<EcdsReceipt, EcdsFileError> {
        let mut document = self.read_document()?;
        let content_error = |reason: &str| EcdsFileError::Content {
            path: self.path.clone(),
            source: ExtractError::NotAStringValue(reason.to_owned()),
        };
        let resources = document
            .get_mut("resources")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| content_error("resources"))?;
        let resource = resources
            .iter_mut()
            .find(|r| r.get("name").and_then(Value::as_str) == Some(self.resource.as_str()))
            .ok_or_else(|| EcdsFileError::Content {
                path: self.path.clone(),
                source: ExtractError::NoResource(self.resource.clone()),
            })?;
        let value = resource
            .pointer_mut("/typed_config/config/configuration/value")
            .ok_or_else(|| content_error("typed_config.config.configuration.value"))?;
        *value = Value::String(to_json_text(config));
        let version_info = next_version(document.get("version_info"));
        document["version_info"] = Value::String(version_info.clone());
        let text = serde_json::to_string_pretty(&document).unwrap_or_default();
        atomic_file::replace(&self.path, text.as_bytes())?;
        Ok(EcdsReceipt { version_info })
    }
}

/// The version after `previous`: one more if it is a number, else 1.
fn next_version(previous: Option<&Value>) -> String {
    let number = match previous {
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(Value::Number(n)) => n.as_u64(),
        _ => None,
    };
    (number.unwrap_or(0) + 1).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_config::ecds::WasmPlugin;

    fn config(weight: f64) -> FilterConfig {
        serde_json::from_value(serde_json::json!({
            "routes": [{"name": "app", "match": {"hosts": ["*"]}, "stable": "v1", "canary": "v2", "canary_weight": weight}]
        }))
        .unwrap()
    }

    #[test]
    fn pushes_keep_the_vm_settings_and_bump_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canary-filter.ecds.yaml");
        let plugin = WasmPlugin::local("/opt/canary.wasm");
        std::fs::write(
            &path,
            serde_json::to_string(&plugin.ecds_document(&config(10.0), "41")).unwrap(),
        )
        .unwrap();
        let file = EcdsFile::new(&path, "canary");
        assert_eq!(file.current().unwrap(), config(10.0));

        let receipt = file.push(&config(25.0)).unwrap();
        assert_eq!(receipt.version_info, "42");
        assert_eq!(file.current().unwrap(), config(25.0));
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written, plugin.ecds_document(&config(25.0), "42"));
        assert_eq!(file.push(&config(0.0)).unwrap().version_info, "43");
    }

    #[test]
    fn reads_the_shipped_yaml_file() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../manifests/envoy/canary-filter.ecds.yaml");
        let file = EcdsFile::new(shipped, "canary");
        let current = file.current().unwrap();
        assert_eq!(current.routes[0].name, "app");
    }

    #[test]
    fn problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = EcdsFile::new(dir.path().join("nope.yaml"), "canary");
        assert!(missing
            .current()
            .unwrap_err()
            .to_string()
            .contains("nope.yaml"));
        let path = dir.path().join("other.yaml");
        std::fs::write(&path, "resources: []").unwrap();
        let err = EcdsFile::new(&path, "canary")
            .push(&config(1.0))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("other.yaml") && err.contains("no resource named canary"),
            "{err}"
        );
    }

    #[test]
    fn versions_count_up() {
        assert_eq!(next_version(None), "1");
        assert_eq!(next_version(Some(&Value::String("9".into()))), "10");
        assert_eq!(next_version(Some(&serde_json::json!(3))), "4");
        assert_eq!(next_version(Some(&Value::String("abc".into()))), "1");
    }
}
