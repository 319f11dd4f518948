//! The CPU usage ratio: CPU used by the selected pods ÷ CPU they request.
//!
//! Usage comes from the metrics API (`metrics.k8s.io/v1beta1` `PodMetrics`,
//! one entry per running container); requests from the pods' specs. As the
//! HorizontalPodAutoscaler does, a pod's request is the sum over its
//! containers and its sidecars (init containers with `restartPolicy:
//! Always`), and a container without a request makes the ratio undefined
//! rather than silently smaller. Where a container has a limit and no
//! request, the limit stands in: the API server itself defaults such a
//! request to the limit.
//!
//! Only live pods (see [`crate::readiness::is_live`]) that the metrics API
//! reports are counted, on both sides of the division; a pod that has just
//! started and has no metrics yet is left out rather than counted as idle.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Deserialize;

use crate::quantity::{quantity_nano_units, QuantityError};
use crate::readiness::is_live;
use crate::reading::{NoData, Ratio, RatioReading};

/// Largest CPU figure accepted for one container: 10¹⁵ cores, far beyond any
/// machine, and small enough that sums over any number of containers stay
/// exact in a `u128`.
const MAX_NANOCORES: u128 = 10u128.pow(24);

/// One pod's usage as the metrics API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodMetrics {
    /// Name of the pod.
    pub pod: String,
    /// Usage per running container.
    pub containers: Vec<ContainerMetrics>,
}

/// One container's usage (`containers[]` of a `PodMetrics`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ContainerMetrics {
    /// Name of the container.
    pub name: String,
    /// Usage by resource name (`cpu`, `memory`).
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

/// Which CPU figure of a container is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuField {
    /// `resources.requests.cpu`.
    Request,
    /// `resources.limits.cpu`.
    Limit,
    /// `usage.cpu` from the metrics API.
    Usage,
}

impl fmt::Display for CpuField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CpuField::Request => "request",
            CpuField::Limit => "limit",
            CpuField::Usage => "usage",
        })
    }
}

/// Why the CPU ratio cannot be computed from what the cluster reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuAccountingError {
    #[error(
        "container {container:?} of pod {pod:?} has neither a CPU request nor a CPU limit; \
         the CPU ratio divides by requests, so set resources.requests.cpu"
    )]
    NoCpuRequest { pod: String, container: String },
    #[error("the metrics API reports no CPU usage for container {container:?} of pod {pod:?}")]
    NoCpuUsage { pod: String, container: String },
    #[error("CPU {field} of container {container:?} of pod {pod:?} is unreadable: {source}")]
    UnreadableCpu {
        pod: String,
        container: String,
        field: CpuField,
        source: QuantityError,
    },
    #[error("CPU {field} of container {container:?} of pod {pod:?} is negative or implausibly large ({text})")]
    ImplausibleCpu {
        pod: String,
        container: String,
        field: CpuField,
        text: String,
    },
    #[error("the {pods} pods with metrics request no CPU at all (every request is 0)")]
    ZeroCpuRequests { pods: u64 },
}

/// CPU used and requested by the selected pods, in nanocores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuUsage {
    /// CPU used by live pods with metrics.
    pub used_nanocores: u128,
    /// CPU requested by the same pods.
    pub requested_nanocores: u128,
    /// Live pods the metrics API reports: the ratio's sample count.
    pub pods_with_metrics: u64,
    /// Live pods, with or without metrics.
    pub live_pods: u64,
    /// Pods left out because they are terminating, Succeeded or Failed.
    pub excluded_pods: u64,
}

impl CpuUsage {
    /// `used ÷ requested` over the pods with metrics; no data when there are
    /// no live pods or none has metrics.
    pub fn reading(&self) -> RatioReading {
        if self.live_pods == 0 {
            return RatioReading::NoData(NoData::without_live_pods(self.excluded_pods));
        }
        if self.pods_with_metrics == 0 || self.requested_nanocores == 0 {
            return RatioReading::NoData(NoData::NoPodMetrics {
                pods: self.live_pods,
            });
        }
        RatioReading::Measured(Ratio {
            value: self.used_nanocores as f64 / self.requested_nanocores as f64,
            samples: self.pods_with_metrics,
        })
    }
}

/// Sums usage and requests over the live `pods` that `metrics` reports.
/// Metrics of pods not among the live `pods` (already gone, terminating)
/// are ignored.
pub fn cpu_usage(pods: &[Pod], metrics: &[PodMetrics]) -> Result<CpuUsage, CpuAccountingError> {
    let metrics_by_pod: HashMap<&str, &PodMetrics> =
        metrics.iter().map(|m| (m.pod.as_str(), m)).collect();
    let mut usage = CpuUsage::default();
    for pod in pods {
        if !is_live(pod) {
            usage.excluded_pods += 1;
            continue;
        }
        usage.live_pods += 1;
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let Some(pod_metrics) = metrics_by_pod.get(name) else {
            tracing::debug!(pod = name, "no metrics yet; pod left out of the CPU ratio");
            continue;
        };
        usage.requested_nanocores += requested_nanocores(name, pod)?;
        usage.used_nanocores += used_nanocores(pod_metrics)?;
        usage.pods_with_metrics += 1;
    }
    if usage.pods_with_metrics > 0 && usage.requested_nanocores == 0 {
        return Err(CpuAccountingError::ZeroCpuRequests {
            pods: usage.pods_with_metrics,
        });
    }
    Ok(usage)
}

/// The pod's CPU request: its containers' and sidecars' requests (or
/// limits where a request is missing).
fn requested_nanocores(pod_name: &str, pod: &Pod) -> Result<u128, CpuAccountingError> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(0);
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|init| init.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .map(|container| container_request(pod_name, container))
        .sum()
}

fn container_request(pod_name: &str, container: &Container) -> Result<u128, CpuAccountingError> {
    let resources = container.resources.as_ref();
    let (field, quantity) = match (
        cpu_of(resources.and_then(|r| r.requests.as_ref())),
        cpu_of(resources.and_then(|r| r.limits.as_ref())),
    ) {
        (Some(request), _) => (CpuField::Request, request),
        (None, Some(limit)) => (CpuField::Limit, limit),
        (None, None) => {
            return Err(CpuAccountingError::NoCpuRequest {
                pod: pod_name.to_owned(),
                container: container.name.clone(),
            })
        }
    };
    nanocores(pod_name, &container.name, field, quantity)
}

fn cpu_of(list: Option<&BTreeMap<String, Quantity>>) -> Option<&Quantity> {
    list.and_then(|list| list.get("cpu"))
}

fn used_nanocores(pod_metrics: &PodMetrics) -> Result<u128, CpuAccountingError> {
    pod_metrics
        .containers
        .iter()
        .map(|container| match container.usage.get("cpu") {
            Some(cpu) => nanocores(&pod_metrics.pod, &container.name, CpuField::Usage, cpu),
            None => Err(CpuAccountingError::NoCpuUsage {
                pod: pod_metrics.pod.clone(),
                container: container.name.clone(),
            }),
        })
        .sum()
}

fn nanocores(
    pod: &str,
    container: &str,
    field: CpuField,
    quantity: &Quantity,
) -> Result<u128, CpuAccountingError> {
    let nanos =
        quantity_nano_units(quantity).map_err(|source| CpuAccountingError::UnreadableCpu {
            pod: pod.to_owned(),
            container: container.to_owned(),
            field,
            source,
        })?;
    match u128::try_from(nanos) {
        Ok(nanos) if nanos <= MAX_NANOCORES => Ok(nanos),
        _ => Err(CpuAccountingError::ImplausibleCpu {
            pod: pod.to_owned(),
            container: container.to_owned(),
            field,
            text: quantity.0.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::{pod, PodShape};

    fn metrics(pod: &str, containers: &[(&str, &str)]) -> PodMetrics {
        PodMetrics {
            pod: pod.to_owned(),
            containers: containers
                .iter()
                .map(|(name, cpu)| ContainerMetrics {
                    name: (*name).to_owned(),
                    usage: BTreeMap::from([
                        ("cpu".to_owned(), Quantity((*cpu).to_owned())),
                        ("memory".to_owned(), Quantity("30Mi".to_owned())),
                    ]),
                })
                .collect(),
        }
    }

    fn app(request: Option<&str>, limit: Option<&str>) -> PodShape {
        PodShape::ready().container("app", request, limit)
    }

    fn measured(value: f64, samples: u64) -> RatioReading {
        RatioReading::Measured(Ratio { value, samples })
    }

    #[test]
    fn usage_over_requests_summed_over_pods_and_containers() {
        let pods = [
            pod(
                "a",
                app(Some("500m"), None).container("proxy", Some("100m"), None),
            ),
            pod("b", app(Some("1"), Some("2"))),
        ];
        let metrics = [
            metrics("a", &[("app", "250m"), ("proxy", "50000000n")]),
            metrics("b", &[("app", "600000u")]),
        ];
        let usage = cpu_usage(&pods, &metrics).unwrap();
        assert_eq!(usage.used_nanocores, 900_000_000);
        assert_eq!(usage.requested_nanocores, 1_600_000_000);
        assert_eq!(usage.pods_with_metrics, 2);
        assert_eq!(usage.reading(), measured(0.5625, 2));
    }

    #[test]
    fn a_limit_stands_in_for_a_missing_request() {
        let pods = [pod("a", app(None, Some("2")))];
        let usage = cpu_usage(&pods, &[metrics("a", &[("app", "1")])]).unwrap();
        assert_eq!(usage.requested_nanocores, 2_000_000_000);
        assert_eq!(usage.reading(), measured(0.5, 1));
    }

    #[test]
    fn a_request_wins_over_a_limit() {
        let pods = [pod("a", app(Some("250m"), Some("4")))];
        let usage = cpu_usage(&pods, &[metrics("a", &[("app", "250m")])]).unwrap();
        assert_eq!(usage.reading(), measured(1.0, 1));
    }

    #[test]
    fn usage_above_requests_gives_a_ratio_above_one() {
        let pods = [pod("a", app(Some("100m"), None))];
        let usage = cpu_usage(&pods, &[metrics("a", &[("app", "150m")])]).unwrap();
        assert_eq!(usage.reading(), measured(1.5, 1));
    }

    #[test]
    fn a_container_with_neither_request_nor_limit_is_named() {
        let pods = [pod(
            "web-1",
            app(Some("1"), None).container("debug", None, None),
        )];
        let error = cpu_usage(&pods, &[metrics("web-1", &[("app", "1")])]).unwrap_err();
        assert_eq!(
            error,
            CpuAccountingError::NoCpuRequest {
                pod: "web-1".into(),
                container: "debug".into()
            }
        );
        assert!(error.to_string().starts_with(
            "container \"debug\" of pod \"web-1\" has neither a CPU request nor a CPU limit"
        ));
    }

    #[test]
    fn pods_without_metrics_are_left_out_of_both_sides() {
        let pods = [
            pod("measured", app(Some("1"), None)),
            pod("just-started", app(Some("3"), None)),
        ];
        let usage = cpu_usage(&pods, &[metrics("measured", &[("app", "800m")])]).unwrap();
        assert_eq!(usage.live_pods, 2);
        assert_eq!(usage.reading(), measured(0.8, 1));
    }

    #[test]
    fn missing_requests_of_pods_without_metrics_do_not_matter() {
        let pods = [
            pod("measured", app(Some("1"), None)),
            pod("unmeasured", app(None, None)),
        ];
        let usage = cpu_usage(&pods, &[metrics("measured", &[("app", "1")])]).unwrap();
        assert_eq!(usage.reading(), measured(1.0, 1));
    }

    #[test]
    fn no_metrics_for_any_pod_is_no_data() {
        let pods = [
            pod("a", app(Some("1"), None)),
            pod("b", app(Some("1"), None)),
        ];
        let usage = cpu_usage(&pods, &[metrics("gone", &[("app", "1")])]).unwrap();
        assert_eq!(
            usage.reading(),
            RatioReading::NoData(NoData::NoPodMetrics { pods: 2 })
        );
    }

    #[test]
    fn no_pods_is_no_data() {
        let usage = cpu_usage(&[], &[metrics("a", &[("app", "1")])]).unwrap();
        assert_eq!(usage.reading(), RatioReading::NoData(NoData::NoPods));
    }

    #[test]
    fn terminating_and_finished_pods_are_left_out() {
        let pods = [
            pod("old", app(Some("1"), None).terminating()),
            pod("done", app(Some("1"), None).phase("Succeeded")),
            pod("live", app(Some("1"), None)),
        ];
        let all_busy = [
            metrics("old", &[("app", "1")]),
            metrics("done", &[("app", "1")]),
            metrics("live", &[("app", "250m")]),
        ];
        let usage = cpu_usage(&pods, &all_busy).unwrap();
        assert_eq!(usage.excluded_pods, 2);
        assert_eq!(usage.reading(), measured(0.25, 1));
        let usage = cpu_usage(&pods[..2], &all_busy).unwrap();
        assert_eq!(
            usage.reading(),
            RatioReading::NoData(NoData::NoLivePods { excluded: 2 })
        );
    }

    #[test]
    fn sidecar_init_containers_count_and_plain_init_containers_do_not() {
        let shape = app(Some("1"), None)
            .init_container("istio-proxy", Some("Always"), Some("500m"))
            .init_container("migrate", None, Some("8"));
        let pods = [pod("a", shape)];
        let usage = cpu_usage(
            &pods,
            &[metrics("a", &[("app", "600m"), ("istio-proxy", "300m")])],
        )
        .unwrap();
        assert_eq!(usage.requested_nanocores, 1_500_000_000);
        assert_eq!(usage.reading(), measured(0.6, 1));
    }

    #[test]
    fn a_container_without_cpu_usage_is_an_error() {
        let pods = [pod("a", app(Some("1"), None))];
        let mut pod_metrics = metrics("a", &[("app", "1")]);
        pod_metrics.containers[0].usage.remove("cpu");
        assert_eq!(
            cpu_usage(&pods, &[pod_metrics]),
            Err(CpuAccountingError::NoCpuUsage {
                pod: "a".into(),
                container: "app".into()
            })
        );
    }

    #[test]
    fn unreadable_and_negative_quantities_are_errors() {
        let pods = [pod("a", app(Some("one"), None))];
        let error = cpu_usage(&pods, &[metrics("a", &[("app", "1")])]).unwrap_err();
        assert!(matches!(
            error,
            CpuAccountingError::UnreadableCpu {
                field: CpuField::Request,
                ..
            }
        ));
        assert_eq!(
            error.to_string(),
            "CPU request of container \"app\" of pod \"a\" is unreadable: \
             invalid quantity \"one\": it has no digits"
        );
        let pods = [pod("a", app(Some("1"), None))];
        let error = cpu_usage(&pods, &[metrics("a", &[("app", "-5m")])]).unwrap_err();
        assert!(matches!(
            error,
            CpuAccountingError::ImplausibleCpu {
                field: CpuField::Usage,
                ..
            }
        ));
        let error = cpu_usage(&pods, &[metrics("a", &[("app", "1e20")])]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "CPU usage of container \"app\" of pod \"a\" is negative or implausibly large (1e20)"
        );
    }

    #[test]
    fn all_zero_requests_are_an_error_not_infinity() {
        let pods = [pod("a", app(Some("0"), Some("1")))];
        assert_eq!(
            cpu_usage(&pods, &[metrics("a", &[("app", "1m")])]),
            Err(CpuAccountingError::ZeroCpuRequests { pods: 1 })
        );
    }
}
