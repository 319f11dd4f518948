//! Reading the selected pods' readiness and CPU from the API server.
//!
//! The I/O is two list calls; the arithmetic is in [`crate::readiness`]
//! and [`crate::cpu`].

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::Client;
use serde::Deserialize;

use crate::api_error::{ApiCall, ApiError};
use crate::cpu::{cpu_usage, ContainerMetrics, CpuAccountingError, PodMetrics};
use crate::readiness::pod_readiness;
use crate::reading::RatioReading;

/// Which pods a ratio is read over: one namespace and a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSelector {
    namespace: String,
    labels: String,
}

/// Why a [`PodSelector`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("the namespace is empty")]
    EmptyNamespace,
    /// An empty selector matches every pod of the namespace, stable and
    /// canary alike, which would blur exactly what the analysis compares.
    #[error("the label selector is empty; it would select every pod in namespace {0:?}")]
    EmptyLabels(String),
}

impl PodSelector {
    /// Pods of `namespace` matching `labels` (`app=web,version=canary`,
    /// any selector the API server accepts).
    pub fn new(namespace: &str, labels: &str) -> Result<PodSelector, SelectorError> {
        if namespace.trim().is_empty() {
            return Err(SelectorError::EmptyNamespace);
        }
        if labels.trim().is_empty() {
            return Err(SelectorError::EmptyLabels(namespace.to_owned()));
        }
        Ok(PodSelector {
            namespace: namespace.to_owned(),
            labels: labels.to_owned(),
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The label selector.
    pub fn labels(&self) -> &str {
        &self.labels
    }

    fn list_params(&self) -> ListParams {
        ListParams::default().labels(&self.labels)
    }
}

/// Why the CPU ratio could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CpuReadError {
    /// Listing pods or pod metrics failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The pods and metrics were read but do not give a ratio.
    #[error(transparent)]
    Accounting(#[from] CpuAccountingError),
}

/// `PodMetrics` of the metrics API (`metrics.k8s.io/v1beta1`, resource
/// `pods`), which k8s-openapi has no type for.
pub fn pod_metrics_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
        "pods",
    )
}

/// Reads ratios over selected pods. Cheap to clone; holds no state between
/// reads, so every read reflects the cluster at that moment.
#[derive(Clone)]
pub struct PodReader {
    client: Client,
}

impl PodReader {
    /// A reader using `client`.
    pub fn new(client: Client) -> PodReader {
        PodReader { client }
    }

    /// The client it reads through.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The ready-pod ratio (one list call). Sample count: live pods.
    pub async fn ready_ratio(&self, selector: &PodSelector) -> Result<RatioReading, ApiError> {
        let pods = self.list_pods(selector).await?;
        let readiness = pod_readiness(&pods);
        tracing::debug!(
            namespace = selector.namespace(),
            selector = selector.labels(),
            ready = readiness.ready,
            live = readiness.live,
            excluded = readiness.excluded,
            "pod readiness"
        );
        Ok(readiness.reading())
    }

    /// The CPU usage ratio: pods, then their metrics (no metrics call when
    /// no pod matches). Sample count: live pods with metrics.
    pub async fn cpu_ratio(&self, selector: &PodSelector) -> Result<RatioReading, CpuReadError> {
        let pods = self.list_pods(selector).await?;
        let metrics = if pods.is_empty() {
            Vec::new()
        } else {
            self.list_pod_metrics(selector).await?
        };
        let usage = cpu_usage(&pods, &metrics)?;
        tracing::debug!(
            namespace = selector.namespace(),
            selector = selector.labels(),
            used_nanocores = %usage.used_nanocores,
            requested_nanocores = %usage.requested_nanocores,
            pods_with_metrics = usage.pods_with_metrics,
            live_pods = usage.live_pods,
            "pod CPU usage"
        );
        Ok(usage.reading())
    }

    async fn list_pods(&self, selector: &PodSelector) -> Result<Vec<Pod>, ApiError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), selector.namespace());
        let call = || ApiCall::list(&ApiResource::erase::<Pod>(&()), selector.namespace());
        let list = api
            .list(&selector.list_params())
            .await
            .map_err(|error| ApiError::from_kube(call(), error))?;
        Ok(list.items)
    }

    async fn list_pod_metrics(&self, selector: &PodSelector) -> Result<Vec<PodMetrics>, ApiError> {
        let resource = pod_metrics_resource();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), selector.namespace(), &resource);
        let call = || ApiCall::list(&resource, selector.namespace());
        let list = api
            .list(&selector.list_params())
            .await
            .map_err(|error| ApiError::from_kube(call(), error))?;
        list.items
            .into_iter()
            .map(|object| {
                pod_metrics_of(object).map_err(|error| ApiError::UnexpectedAnswer {
                    call: Box::new(call()),
                    source: kube::Error::SerdeError(error),
                })
            })
            .collect()
    }
}

/// A `PodMetrics` object as the dynamic API returns it.
fn pod_metrics_of(object: DynamicObject) -> Result<PodMetrics, serde_json::Error> {
    let containers = match object.data.get("containers") {
        Some(containers) => Vec::<ContainerMetrics>::deserialize(containers)?,
        None => Vec::new(),
    };
    Ok(PodMetrics {
        pod: object.metadata.name.unwrap_or_default(),
        containers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_must_name_a_namespace_and_labels() {
        assert_eq!(
            PodSelector::new("", "app=web"),
            Err(SelectorError::EmptyNamespace)
        );
        assert_eq!(
            PodSelector::new("shop", " "),
            Err(SelectorError::EmptyLabels("shop".into()))
        );
        let selector = PodSelector::new("shop", "app=web,version=canary").unwrap();
        assert_eq!(selector.namespace(), "shop");
        assert_eq!(selector.labels(), "app=web,version=canary");
    }

    #[test]
    fn pod_metrics_are_read_from_dynamic_objects() {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "metrics.k8s.io/v1beta1",
            "kind": "PodMetrics",
            "metadata": { "name": "web-1", "namespace": "shop" },
            "timestamp": "2026-01-01T00:00:00Z",
            "window": "15s",
            "containers": [{ "name": "app", "usage": { "cpu": "12345n", "memory": "10Mi" } }]
        }))
        .unwrap();
        let metrics = pod_metrics_of(object).unwrap();
        assert_eq!(metrics.pod, "web-1");
        assert_eq!(metrics.containers[0].usage["cpu"].0, "12345n");
        let broken: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "web-1" },
            "containers": [{ "usage": {} }]
        }))
        .unwrap();
        assert!(pod_metrics_of(broken).is_err());
    }
}
