//! Which proxies should carry the filter: the pods an Istio plugin object
//! selects, read from the API server, so an observer can compare them with
//! what reports the filter's gauges.
//!
//! Istio applies a `WasmPlugin` or `TrafficExtension` to:
//! - the pods its `selector.matchLabels` selects, in its own namespace, or
//!   in every namespace when it lives in the root namespace
//!   (`istio-system` unless the mesh configures another);
//! - with `targetRefs` to a Gateway API `Gateway`, the gateway's pods,
//!   labelled `gateway.networking.k8s.io/gateway-name=<name>`;
//! - with neither, every proxy of its namespace (of the mesh, in the root
//!   namespace).
//!
//! A pod is a proxy when it has an `istio-proxy` container (a sidecar, a
//! native sidecar among the init containers, or a gateway). Only running
//! pods that are not terminating should carry the filter; terminating pods
//! are returned marked, so their last series can be told apart and left
//! out. Pods of a root-namespace plugin are looked for in the namespaces
//! the caller names (reading pods in every namespace would need a
//! cluster-wide grant).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::core::{ApiResource, DynamicObject};
use serde_json::Value;

use crate::api_error::{ApiCall, ApiError};
use crate::plugin_object::PluginObject;
use crate::pod_reader::PodReader;
use crate::readiness::is_live;

/// The container Istio's proxy runs in, in sidecars and gateways alike.
pub const PROXY_CONTAINER: &str = "istio-proxy";

/// The label Istio puts on the pods of a gateway it deploys for a Gateway
/// API `Gateway`.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// Where the proxies of a plugin object are: namespaces, and a label
/// selector (none: every proxy there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyScope {
    /// Namespaces to list pods in.
    pub namespaces: Vec<String>,
    /// Label selector; `None` selects every proxy of those namespaces.
    pub labels: Option<String>,
}

/// Why the proxies of a plugin object cannot be told.
#[derive(Debug, thiserror::Error)]
pub enum ProxiesError {
    /// Reading the object or the pods failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The object targets something whose proxies are not known here.
    #[error("{object} targets a {kind} ({name:?}); only selectors and Gateway targets are followed to their pods")]
    UnsupportedTarget {
        object: PluginObject,
        kind: String,
        name: String,
    },
}

/// A pod that should carry the filter (or did, until it started
/// terminating).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProxyPod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Whether it is being deleted: its series are its last ones.
    pub terminating: bool,
}

impl ProxyScope {
    /// The scope of `object` as the API server returned it (`spec` is read
    /// where [`PluginObject::kind`] keeps it). `root_namespace` is the
    /// mesh's root namespace; a plugin there is looked for in
    /// `root_scope_namespaces` (its own namespace when empty).
    pub fn of_plugin(
        plugin: &PluginObject,
        object: &Value,
        root_namespace: &str,
        root_scope_namespaces: &[String],
    ) -> Result<ProxyScope, ProxiesError> {
        let spec = object.get("spec").unwrap_or(&Value::Null);
        let namespaces = if plugin.namespace == root_namespace && !root_scope_namespaces.is_empty()
        {
            root_scope_namespaces.to_vec()
        } else {
            vec![plugin.namespace.clone()]
        };
        let refs: Vec<&Value> = spec
            .get("targetRefs")
            .and_then(Value::as_array)
            .map(|refs| refs.iter().collect())
            .or_else(|| spec.get("targetRef").map(|one| vec![one]))
            .unwrap_or_default();
        if !refs.is_empty() {
            let mut gateways = Vec::new();
            for target in refs {
                let kind = target.get("kind").and_then(Value::as_str).unwrap_or("");
                let name = target.get("name").and_then(Value::as_str).unwrap_or("");
                if kind != "Gateway" {
                    return Err(ProxiesError::UnsupportedTarget {
                        object: plugin.clone(),
                        kind: kind.to_owned(),
                        name: name.to_owned(),
                    });
                }
                gateways.push(name.to_owned());
            }
            return Ok(ProxyScope {
                // A targetRef names an object of the plugin's namespace.
                namespaces: vec![plugin.namespace.clone()],
                labels: Some(format!("{GATEWAY_NAME_LABEL} in ({})", gateways.join(","))),
            });
        }
        let labels: BTreeMap<String, String> = spec
            .pointer("/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let labels = (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        });
        Ok(ProxyScope { namespaces, labels })
    }
}

/// `pod` as a proxy: `None` when it has no `istio-proxy` container, has
/// finished, or has not started running yet (it serves nothing).
pub fn proxy_pod(pod: &Pod) -> Option<ProxyPod> {
    let spec = pod.spec.as_ref()?;
    let has_proxy = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|container| container.name == PROXY_CONTAINER);
    if !has_proxy {
        return None;
    }
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let running = pod
        .status
        .as_ref()
        .and_then(|status| status.phase.as_deref())
        == Some("Running");
    let carrying = is_live(pod) && running;
    if !(terminating || carrying) {
        return None;
    }
    Some(ProxyPod {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone()?,
        terminating,
    })
}

impl PodReader {
    /// The pods `plugin` applies to now (one get, one list per
    /// namespace), sorted, terminating ones marked.
    pub async fn proxies(
        &self,
        plugin: &PluginObject,
        root_namespace: &str,
        root_scope_namespaces: &[String],
    ) -> Result<Vec<ProxyPod>, ProxiesError> {
        let resource = plugin.kind.api_resource();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client().clone(), &plugin.namespace, &resource);
        let object = api.get(&plugin.name).await.map_err(|error| {
            ApiError::from_kube(
                ApiCall::get(&resource, &plugin.namespace, &plugin.name),
                error,
            )
        })?;
        let object = serde_json::to_value(&object).unwrap_or_default();
        let scope = ProxyScope::of_plugin(plugin, &object, root_namespace, root_scope_namespaces)?;
        let mut proxies = Vec::new();
        for namespace in &scope.namespaces {
            let pods: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
            let params = match &scope.labels {
                Some(labels) => ListParams::default().labels(labels),
                None => ListParams::default(),
            };
            let list = pods.list(&params).await.map_err(|error| {
                ApiError::from_kube(
                    ApiCall::list(&ApiResource::erase::<Pod>(&()), namespace),
                    error,
                )
            })?;
            proxies.extend(list.items.iter().filter_map(proxy_pod));
        }
        proxies.sort();
        Ok(proxies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plugin(namespace: &str) -> PluginObject {
        PluginObject::wasm_plugin(namespace, "canary")
    }

    #[test]
    fn a_selector_in_the_root_namespace_looks_where_told() {
        let object = json!({"spec": {"selector": {"matchLabels": {"istio": "ingressgateway", "app": "gw"}}}});
        let scope =
            ProxyScope::of_plugin(&plugin("istio-system"), &object, "istio-system", &[]).unwrap();
        assert_eq!(
            scope,
            ProxyScope {
                namespaces: vec!["istio-system".into()],
                labels: Some("app=gw,istio=ingressgateway".into())
            }
        );
        let wider = ProxyScope::of_plugin(
            &plugin("istio-system"),
            &object,
            "istio-system",
            &["istio-system".into(), "gateways".into()],
        )
        .unwrap();
        assert_eq!(wider.namespaces, ["istio-system", "gateways"]);
        // Outside the root namespace, only the plugin's own namespace.
        let shop =
            ProxyScope::of_plugin(&plugin("shop"), &object, "istio-system", &["x".into()]).unwrap();
        assert_eq!(shop.namespaces, ["shop"]);
    }

    #[test]
    fn gateway_targets_select_the_gateways_pods() {
        let object = json!({"spec": {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "web-gateway"}]}});
        let scope = ProxyScope::of_plugin(&plugin("shop"), &object, "istio-system", &[]).unwrap();
        assert_eq!(
            scope.labels.as_deref(),
            Some("gateway.networking.k8s.io/gateway-name in (web-gateway)")
        );
        let service = json!({"spec": {"targetRefs": [{"kind": "Service", "name": "web"}]}});
        let error =
            ProxyScope::of_plugin(&plugin("shop"), &service, "istio-system", &[]).unwrap_err();
        assert!(
            error.to_string().contains("targets a Service (\"web\")"),
            "{error}"
        );
    }

    #[test]
    fn no_selector_is_every_proxy() {
        let scope =
            ProxyScope::of_plugin(&plugin("shop"), &json!({"spec": {}}), "istio-system", &[])
                .unwrap();
        assert_eq!(scope.labels, None);
    }

    fn pod(containers: &[&str], init: &[&str], phase: &str, terminating: bool) -> Pod {
        let container = |name: &&str| json!({"name": name, "image": "x"});
        let mut metadata = json!({"name": "p", "namespace": "shop"});
        if terminating {
            metadata["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(json!({
            "metadata": metadata,
            "spec": {"containers": containers.iter().map(container).collect::<Vec<_>>(),
                     "initContainers": init.iter().map(container).collect::<Vec<_>>()},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn proxies_are_running_pods_with_istio_proxy() {
        let carrying = |pod: &Pod| proxy_pod(pod).map(|p| p.terminating);
        assert_eq!(
            carrying(&pod(&["app", "istio-proxy"], &[], "Running", false)),
            Some(false)
        );
        assert_eq!(
            carrying(&pod(&["app"], &["istio-proxy"], "Running", false)),
            Some(false)
        );
        assert_eq!(
            carrying(&pod(&["istio-proxy"], &[], "Running", true)),
            Some(true)
        );
        assert_eq!(carrying(&pod(&["app"], &[], "Running", false)), None);
        assert_eq!(
            carrying(&pod(&["istio-proxy"], &[], "Pending", false)),
            None
        );
        assert_eq!(
            carrying(&pod(&["istio-proxy"], &[], "Succeeded", false)),
            None
        );
    }
}
