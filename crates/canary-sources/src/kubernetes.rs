//! `provider.kubernetes`: the ready-pod ratio and the CPU usage ratio of
//! the pods a label selector picks, read from the Kubernetes API (pods, and
//! `metrics.k8s.io` pod metrics). No pods, or no metrics yet, is *not
//! enough data*; an unreachable API or an unusable pod spec is an error.

use canary_analysis::provider::{KubernetesQuantity, KubernetesQuery};
use canary_analysis::MeasurementResult;
use canary_kube::{PodReader, PodSelector, RatioReading};

/// Reads pods through one client.
#[derive(Clone)]
pub struct KubernetesSource {
    reader: PodReader,
    default_namespace: String,
}

impl std::fmt::Debug for KubernetesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesSource")
            .field("default_namespace", &self.default_namespace)
            .finish()
    }
}

impl KubernetesSource {
    /// A source using `client`; templates without a namespace read
    /// `default_namespace`.
    pub fn new(client: kube::Client, default_namespace: &str) -> KubernetesSource {
        KubernetesSource {
            reader: PodReader::new(client),
            default_namespace: default_namespace.to_owned(),
        }
    }

    /// Measures `query`.
    pub async fn measure(&self, query: &KubernetesQuery) -> MeasurementResult {
        let namespace = query
            .namespace
            .as_deref()
            .unwrap_or(&self.default_namespace);
        let selector = match PodSelector::new(namespace, &query.selector) {
            Ok(selector) => selector,
            Err(err) => return MeasurementResult::error(err.to_string()),
        };
        let reading = match query.quantity {
            KubernetesQuantity::ReadyRatio => self
                .reader
                .ready_ratio(&selector)
                .await
                .map_err(|e| e.to_string()),
            KubernetesQuantity::CpuRatio => self
                .reader
                .cpu_ratio(&selector)
                .await
                .map_err(|e| e.to_string()),
        };
        match reading {
            Ok(RatioReading::Measured(ratio)) => {
                MeasurementResult::sampled(ratio.value, ratio.samples)
            }
            Ok(RatioReading::NoData(why)) => MeasurementResult::not_enough_data(why.to_string()),
            Err(err) => MeasurementResult::error(err),
        }
    }
}
