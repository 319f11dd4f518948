//! What the proxies of a mesh show of the split, read from Prometheus
//! only (never from a proxy's admin port): the filter's gauges
//! `canary_weight_bp`, `canary_generation` and `canary_guard_tripped`,
//! labelled `route` and `version` by the proxies' stats bootstrap
//! (`manifests/istio/stats`) and `namespace` and `pod` by the scrape job
//! (`manifests/prometheus/scrape-configs.yaml`), compared with the pods
//! that should carry the filter (from Kubernetes, [`ProxyPod`]).
//!
//! Each pod that should carry the filter becomes one proxy of the
//! [`Observation`]:
//! - its series, when it exports the gauges for the rollout's routes;
//! - *unconfirmed*, named, when Prometheus scrapes it (`up` is 1) but it
//!   exports nothing for those routes (filter not loaded, stats bootstrap
//!   missing, a selector that misses it);
//! - *waiting* when Prometheus has not scraped it yet, or its last scrape
//!   failed.
//!
//! Series of pods that are terminating, or that no longer exist, are left
//! out: they are the last values of a proxy that no longer serves.
//! Either way a proxy without the split keeps the split from being in
//! force, so the rollout waits (and, past the verify deadline, fails
//! toward stable).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use canary_analysis::Timestamp;
use canary_config::stats_names::{Metric, PREFIX, ROUTE_TAG, VERSION_TAG};
use canary_kube::ProxyPod;
use canary_rollout::driver::{Observation, ProxyState, RouteShows, Shows};

use crate::http::HttpClient;
use crate::prometheus::{vector, VectorSample};

/// The label the scrape job gives each series for the pod's namespace.
pub const NAMESPACE_LABEL: &str = "namespace";
/// The label the scrape job gives each series for the pod's name.
pub const POD_LABEL: &str = "pod";

/// Timeout of one query.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The gauges read, by name in Prometheus.
const GAUGES: [Metric; 3] = [Metric::Weight, Metric::Generation, Metric::GuardTripped];

/// A metric's name in Prometheus: Envoy exports the filter's
/// `wasmcustom.canary.…<suffix>` stats as `canary_<suffix>` once the
/// route and version are tags.
pub fn prometheus_name(metric: Metric) -> String {
    format!("{PREFIX}_{}", metric.suffix())
}

/// A pod, as the scrape job labels it.
pub type PodKey = (String, String);

/// What Prometheus holds for the rollout's routes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshReading {
    /// The gauges, by pod, then route.
    pub gauges: BTreeMap<PodKey, BTreeMap<String, RouteShows>>,
    /// The oldest sample of each pod's weight gauges.
    pub sampled_at: BTreeMap<PodKey, Timestamp>,
    /// Pods Prometheus scrapes, and whether their last scrape worked.
    pub up: BTreeMap<PodKey, bool>,
}

/// Reads the gauges from one Prometheus.
#[derive(Debug, Clone)]
pub struct MeshGauges {
    http: HttpClient,
    address: String,
}

/// `names` as a PromQL regex alternative, each matched literally.
fn alternatives(names: &[String]) -> String {
    names
        .iter()
        .map(|name| {
            name.chars()
                .flat_map(|c| {
                    let special = "\\.+*?()|[]{}^$".contains(c);
                    // A backslash for the regex, doubled for the string.
                    special
                        .then_some("\\\\")
                        .into_iter()
                        .flat_map(str::chars)
                        .chain(std::iter::once(c))
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("|")
}

fn pod_of(sample: &VectorSample) -> Option<PodKey> {
    Some((
        sample.labels.get(NAMESPACE_LABEL)?.clone(),
        sample.labels.get(POD_LABEL)?.clone(),
    ))
}

impl MeshGauges {
    /// Reads from the Prometheus at `address` (`http://prometheus:9090`).
    pub fn new(http: HttpClient, address: &str) -> MeshGauges {
        MeshGauges {
            http,
            address: address.trim_end_matches('/').to_owned(),
        }
    }

    /// The address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The queries for `routes` of pods in `namespaces`: the gauges, the
    /// weight gauges' sample times, and the scrape targets' `up`.
    pub fn queries(routes: &[String], namespaces: &[String]) -> [String; 3] {
        let names: Vec<String> = GAUGES.iter().map(|m| prometheus_name(*m)).collect();
        let matchers = format!(
            "{ROUTE_TAG}=~\"{}\",{NAMESPACE_LABEL}=~\"{}\"",
            alternatives(routes),
            alternatives(namespaces)
        );
        [
            format!("{{__name__=~\"{}\",{matchers}}}", names.join("|")),
            format!(
                "timestamp({}{{{matchers}}})",
                prometheus_name(Metric::Weight)
            ),
            format!(
                "max by ({NAMESPACE_LABEL}, {POD_LABEL}) (up{{{NAMESPACE_LABEL}=~\"{}\"}})",
                alternatives(namespaces)
            ),
        ]
    }

    /// Reads what Prometheus holds now for `routes` in `namespaces`.
    pub async fn read(
        &self,
        routes: &[String],
        namespaces: &[String],
    ) -> Result<MeshReading, String> {
        let [gauges, times, up] = MeshGauges::queries(routes, namespaces);
        let mut reading = MeshReading::default();
        for sample in vector(&self.http, &self.address, &gauges, QUERY_TIMEOUT).await? {
            let (Some(pod), Some(route), Some(version), Some(name)) = (
                pod_of(&sample),
                sample.labels.get(ROUTE_TAG),
                sample.labels.get(VERSION_TAG),
                sample.labels.get("__name__"),
            ) else {
                continue;
            };
            let Some(metric) = GAUGES.into_iter().find(|m| prometheus_name(*m) == *name) else {
                continue;
            };
            if !(sample.value.is_finite() && sample.value >= 0.0) {
                continue;
            }
            // Gauges are whole numbers.
            let value = sample.value as u64;
            let shows = reading
                .gauges
                .entry(pod)
                .or_default()
                .entry(route.clone())
                .or_default();
            match metric {
                Metric::Weight => {
                    shows.weights.insert(version.clone(), value);
                }
                Metric::Generation => shows.generation = Some(value),
                _ => shows.guard_tripped |= value > 0,
            }
        }
        for sample in vector(&self.http, &self.address, &times, QUERY_TIMEOUT).await? {
            let Some(pod) = pod_of(&sample) else { continue };
            let at = Timestamp::from_millis((sample.value.max(0.0) * 1000.0) as u64);
            let oldest = reading.sampled_at.entry(pod).or_insert(at);
            *oldest = (*oldest).min(at);
        }
        for sample in vector(&self.http, &self.address, &up, QUERY_TIMEOUT).await? {
            let Some(pod) = pod_of(&sample) else { continue };
            reading.up.insert(pod, sample.value >= 1.0);
        }
        Ok(reading)
    }
}

/// The observation of `proxies` (the pods that should carry the filter)
/// from `reading`, read at `now`. Its time is the oldest sample used, so
/// nothing in it predates it; `now` when no pod had samples.
pub fn observation(proxies: &[ProxyPod], reading: &MeshReading, now: Timestamp) -> Observation {
    let mut oldest: Option<Timestamp> = None;
    let mut states = Vec::new();
    let mut ignored = BTreeSet::new();
    for proxy in proxies {
        let key = (proxy.namespace.clone(), proxy.name.clone());
        let name = format!("{}/{}", proxy.namespace, proxy.name);
        if proxy.terminating {
            ignored.insert(name);
            continue;
        }
        let shows = match (reading.gauges.get(&key), reading.up.get(&key)) {
            (Some(routes), _) => {
                if let Some(at) = reading.sampled_at.get(&key) {
                    oldest = Some(oldest.map_or(*at, |o| o.min(*at)));
                }
                Shows::Routes(routes.clone())
            }
            (None, Some(true)) => Shows::Nothing(format!(
                "unconfirmed: Prometheus scrapes {name} but it exports none of the filter's gauges \
                 for these routes (is the filter loaded there, and the canary-stats-bootstrap \
                 annotation set?)"
            )),
            (None, Some(false)) => {
                Shows::Nothing(format!("waiting: Prometheus' last scrape of {name} failed"))
            }
            (None, None) => {
                Shows::Nothing(format!("waiting: Prometheus has not scraped {name} yet"))
            }
        };
        states.push(ProxyState { proxy: name, shows });
    }
    let strays: Vec<String> = reading
        .gauges
        .keys()
        .map(|(namespace, pod)| format!("{namespace}/{pod}"))
        .filter(|name| !states.iter().any(|s| s.proxy == *name))
        .collect();
    if !ignored.is_empty() || !strays.is_empty() {
        tracing::debug!(
            terminating = ?ignored,
            not_selected = ?strays,
            "series of pods that do not carry the filter now are left out"
        );
    }
    Observation {
        at: oldest.unwrap_or(now).min(now),
        proxies: states,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, terminating: bool) -> ProxyPod {
        ProxyPod {
            namespace: "istio-system".into(),
            name: name.into(),
            terminating,
        }
    }

    fn key(name: &str) -> PodKey {
        ("istio-system".into(), name.into())
    }

    fn shows(canary_bp: u64) -> BTreeMap<String, RouteShows> {
        let mut weights = BTreeMap::new();
        weights.insert("web-v1".to_owned(), 10_000 - canary_bp);
        weights.insert("web-v2".to_owned(), canary_bp);
        BTreeMap::from([(
            "web".to_owned(),
            RouteShows {
                weights,
                generation: Some(3),
                guard_tripped: false,
            },
        )])
    }

    #[test]
    fn each_pod_is_shown_unconfirmed_or_waiting_and_terminating_ones_are_left_out() {
        let mut reading = MeshReading::default();
        reading.gauges.insert(key("gw-a"), shows(1000));
        reading
            .sampled_at
            .insert(key("gw-a"), Timestamp::from_millis(5_000));
        reading.up.insert(key("gw-a"), true);
        reading.up.insert(key("gw-silent"), true);
        reading.up.insert(key("gw-failing"), false);
        reading.gauges.insert(key("gw-old"), shows(0));
        reading.gauges.insert(key("gw-gone"), shows(0));
        let proxies = [
            pod("gw-a", false),
            pod("gw-silent", false),
            pod("gw-failing", false),
            pod("gw-new", false),
            pod("gw-old", true),
        ];
        let observed = observation(&proxies, &reading, Timestamp::from_millis(9_000));
        assert_eq!(observed.at, Timestamp::from_millis(5_000));
        let by_name: BTreeMap<&str, &Shows> = observed
            .proxies
            .iter()
            .map(|p| (p.proxy.as_str(), &p.shows))
            .collect();
        assert_eq!(by_name.len(), 4, "{by_name:?}");
        assert_eq!(by_name["istio-system/gw-a"], &Shows::Routes(shows(1000)));
        let text = |name: &str| match by_name[name] {
            Shows::Nothing(text) => text.clone(),
            other => panic!("{other:?}"),
        };
        assert!(text("istio-system/gw-silent")
            .starts_with("unconfirmed: Prometheus scrapes istio-system/gw-silent"));
        assert!(text("istio-system/gw-failing").starts_with("waiting: Prometheus' last scrape"));
        assert!(text("istio-system/gw-new")
            .starts_with("waiting: Prometheus has not scraped istio-system/gw-new"));
    }

    #[test]
    fn no_samples_is_now() {
        let observed = observation(
            &[pod("gw", false)],
            &MeshReading::default(),
            Timestamp::from_millis(7),
        );
        assert_eq!(observed.at, Timestamp::from_millis(7));
        assert_eq!(observed.proxies.len(), 1);
    }

    #[test]
    fn queries_match_routes_and_namespaces_literally() {
        let [gauges, times, up] =
            MeshGauges::queries(&["web".into(), "a.b".into()], &["istio-system".into()]);
        assert_eq!(
            gauges,
            r#"{__name__=~"canary_weight_bp|canary_generation|canary_guard_tripped",route=~"web|a\\.b",namespace=~"istio-system"}"#
        );
        assert_eq!(
            times,
            r#"timestamp(canary_weight_bp{route=~"web|a\\.b",namespace=~"istio-system"})"#
        );
        assert_eq!(
            up,
            r#"max by (namespace, pod) (up{namespace=~"istio-system"})"#
        );
    }
}
