//! Whether the API server serves a kind at all: Istio's `TrafficExtension`
//! exists only from Istio 1.30, and a cluster without Istio serves neither
//! it nor `WasmPlugin`. A missing kind is a [`KindNotServed`], worded for
//! the person who must change the installation, not an error to retry.
//!
//! The check is the discovery document of the resource's group and
//! version (`GET /apis/<group>/<version>`): a 404, or a list without the
//! resource's plural, means the kind is not served.

use kube::Client;
use serde::Deserialize;

use crate::api_error::{ApiCall, ApiError, Verb};
use crate::plugin_object::{PluginKind, ISTIO_EXTENSIONS_GROUP, ISTIO_EXTENSIONS_VERSION};

/// The API server does not serve the kind that carries the filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kind {kind} not served ({plural}.{group}/{version} is not in the API server's discovery): {remedy}", kind = .kind.kind(), plural = .kind.plural(), group = ISTIO_EXTENSIONS_GROUP, version = ISTIO_EXTENSIONS_VERSION, remedy = .kind.remedy())]
pub struct KindNotServed {
    /// The kind that is missing.
    pub kind: PluginKind,
}

impl PluginKind {
    /// What to do when the API server does not serve this kind.
    pub fn remedy(self) -> &'static str {
        match self {
            PluginKind::TrafficExtension => {
                "needs Istio ≥ 1.30; use the WasmPlugin placement (manifests/istio, or manifests/istio/placements/mesh)"
            }
            PluginKind::WasmPlugin => {
                "needs Istio's CRDs (extensions.istio.io/v1alpha1 WasmPlugin, Istio 1.12 or later); install Istio first"
            }
        }
    }
}

/// Why the check could not tell.
#[derive(Debug, thiserror::Error)]
pub enum ServedError {
    /// The kind is not served.
    #[error(transparent)]
    NotServed(#[from] KindNotServed),
    /// The discovery request failed for another reason.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The part of an `APIResourceList` read here.
#[derive(Debug, Deserialize)]
struct ResourceList {
    #[serde(default)]
    resources: Vec<ResourceEntry>,
}

#[derive(Debug, Deserialize)]
struct ResourceEntry {
    name: String,
}

/// Whether `resources` (an `APIResourceList`) lists `kind`'s plural.
fn lists(resources: &ResourceList, kind: PluginKind) -> bool {
    resources.resources.iter().any(|r| r.name == kind.plural())
}

/// Checks that the API server serves `kind` (one discovery request).
pub async fn check_served(client: &Client, kind: PluginKind) -> Result<(), ServedError> {
    let path = format!("/apis/{ISTIO_EXTENSIONS_GROUP}/{ISTIO_EXTENSIONS_VERSION}");
    let call = || ApiCall::new(Verb::Get, &kind.api_resource(), "", None);
    let request = http::Request::get(&path)
        .body(Vec::new())
        .map_err(|error| ApiError::InvalidRequest {
            call: Box::new(call()),
            source: kube::Error::HttpError(error),
        })?;
    match client.request::<ResourceList>(request).await {
        Ok(list) if lists(&list, kind) => Ok(()),
        Ok(_) => Err(KindNotServed { kind }.into()),
        Err(error) => match ApiError::from_kube(call(), error) {
            ApiError::NotFound { .. } => Err(KindNotServed { kind }.into()),
            other => Err(other.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_says_what_to_do() {
        let text = KindNotServed {
            kind: PluginKind::TrafficExtension,
        }
        .to_string();
        assert!(
            text.starts_with("kind TrafficExtension not served")
                && text.contains("needs Istio ≥ 1.30; use the WasmPlugin placement"),
            "{text}"
        );
        let text = KindNotServed {
            kind: PluginKind::WasmPlugin,
        }
        .to_string();
        assert!(text.contains("install Istio"), "{text}");
    }

    #[test]
    fn a_list_without_the_plural_does_not_serve_it() {
        let list: ResourceList = serde_json::from_value(serde_json::json!({
            "kind": "APIResourceList", "groupVersion": "extensions.istio.io/v1alpha1",
            "resources": [{"name": "wasmplugins", "kind": "WasmPlugin", "namespaced": true}]
        }))
        .unwrap();
        assert!(lists(&list, PluginKind::WasmPlugin));
        assert!(!lists(&list, PluginKind::TrafficExtension));
    }
}
