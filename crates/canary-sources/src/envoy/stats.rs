//! The filter's stats as Envoy's admin endpoint reports them, and the
//! values of a window between two scrapes.
//!
//! A measurement never uses lifetime totals: it takes the *difference*
//! between two snapshots (counters and histogram buckets), so a canary that
//! turns bad late is not diluted by its good past. Snapshots of several
//! Envoys are summed. If a counter went down between two snapshots, that
//! Envoy restarted, and the later value is the whole difference.

use std::collections::BTreeMap;
use std::time::Duration;

use canary_config::stats_names::{parse_envoy_name, Metric};
use serde::Deserialize;

/// Why an admin answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsParseError {
    #[error("Envoy's /stats answer is not JSON: {0}")]
    NotJson(String),
    #[error("Envoy's /stats answer has no `stats` list")]
    NoStats,
}

/// Identifies one version of one route entry.
pub type VersionKey = (String, String);

/// A latency histogram: cumulative counts at each upper bound (µs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// `(upper bound in microseconds, cumulative count)`, ascending.
    pub buckets: Vec<(f64, u64)>,
}

/// Health of an Envoy cluster's hosts (active health checks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterHealth {
    /// Hosts passing their health checks.
    pub healthy: u64,
    /// All hosts.
    pub total: u64,
}

/// Everything read in one scrape (of one or several Envoys, summed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Filter counters by (route, version) and metric.
    pub counters: BTreeMap<(VersionKey, Metric), u64>,
    /// Latency histograms by (route, version).
    pub latency: BTreeMap<VersionKey, Histogram>,
    /// Cluster health by cluster name.
    pub clusters: BTreeMap<String, ClusterHealth>,
    /// The filter's gauges (`weight_bp`, `effective_weight_bp`,
    /// `generation`, `guard_tripped`) by (route, version) and metric, of
    /// one Envoy: gauges are compared per Envoy, never summed, so
    /// [`Snapshot::merge`] leaves them out.
    pub gauges: BTreeMap<(VersionKey, Metric), u64>,
}

#[derive(Deserialize)]
struct AdminStats {
    stats: Vec<AdminStat>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AdminStat {
    Value {
        name: String,
        value: serde_json::Value,
    },
    Histograms {
        histograms: AdminHistograms,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AdminHistograms {
    WithBuckets(Vec<AdminHistogram>),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct AdminHistogram {
    name: String,
    #[serde(default)]
    buckets: Vec<AdminBucket>,
}

#[derive(Deserialize)]
struct AdminBucket {
    upper_bound: f64,
    cumulative: u64,
}

/// The admin path that returns what [`Snapshot::parse_admin_json`] reads:
/// the filter's stats with cumulative histogram buckets, and cluster
/// membership.
pub const ADMIN_STATS_PATH: &str =
    "/stats?format=json&histogram_buckets=cumulative&filter=(%5Ewasmcustom%5C.canary%5C.)%7C(%5Ecluster%5C..*%5C.membership_(healthy%7Ctotal)%24)";

impl Snapshot {
    /// Reads `GET /stats?format=json&histogram_buckets=cumulative`.
    pub fn parse_admin_json(text: &str) -> Result<Snapshot, StatsParseError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|err| StatsParseError::NotJson(err.to_string()))?;
        if value.get("stats").is_none_or(|s| !s.is_array()) {
            return Err(StatsParseError::NoStats);
        }
        let stats: AdminStats = serde_json::from_value(value)
            .map_err(|err| StatsParseError::NotJson(err.to_string()))?;
        let mut snapshot = Snapshot::default();
        for stat in stats.stats {
            match stat {
                AdminStat::Value { name, value } => {
                    let Some(value) = value.as_u64() else {
                        continue;
                    };
                    snapshot.add_value(&name, value);
                }
                AdminStat::Histograms {
                    histograms: AdminHistograms::WithBuckets(histograms),
                } => {
                    for histogram in histograms {
                        snapshot.add_histogram(histogram);
                    }
                }
                AdminStat::Histograms { .. } => {}
            }
        }
        Ok(snapshot)
    }

    fn add_value(&mut self, name: &str, value: u64) {
        if let Some(parsed) = parse_envoy_name(name) {
            if parsed.metric.kind() == canary_config::stats_names::MetricKind::Gauge {
                let key = (parsed.route.to_owned(), parsed.version.to_owned());
                self.gauges.insert((key, parsed.metric), value);
                return;
            }
            let key = (
                (parsed.route.to_owned(), parsed.version.to_owned()),
                parsed.metric,
            );
            *self.counters.entry(key).or_insert(0) += value;
        } else if let Some(rest) = name.strip_prefix("cluster.") {
            if let Some(cluster) = rest.strip_suffix(".membership_healthy") {
                self.clusters.entry(cluster.to_owned()).or_default().healthy += value;
            } else if let Some(cluster) = rest.strip_suffix(".membership_total") {
                self.clusters.entry(cluster.to_owned()).or_default().total += value;
            }
        }
    }

    fn add_histogram(&mut self, histogram: AdminHistogram) {
        let Some(parsed) = parse_envoy_name(&histogram.name) else {
            return;
        };
        if parsed.metric != Metric::LatencyMicros {
            return;
        }
        let incoming = Histogram {
            buckets: histogram
                .buckets
                .into_iter()
                .map(|b| (b.upper_bound, b.cumulative))
                .collect(),
        };
        let key = (parsed.route.to_owned(), parsed.version.to_owned());
        match self.latency.get_mut(&key) {
            Some(existing) => existing.add(&incoming),
            None => {
                self.latency.insert(key, incoming);
            }
        }
    }

    /// Adds another Envoy's snapshot to this one.
    pub fn merge(&mut self, other: &Snapshot) {
        for (key, value) in &other.counters {
            *self.counters.entry(key.clone()).or_insert(0) += value;
        }
        for (key, histogram) in &other.latency {
            self.latency.entry(key.clone()).or_default().add(histogram);
        }
        for (name, health) in &other.clusters {
            let entry = self.clusters.entry(name.clone()).or_default();
            entry.healthy += health.healthy;
            entry.total += health.total;
        }
    }

    /// A counter's value (0 when absent).
    pub fn counter(&self, route: &str, version: &str, metric: Metric) -> u64 {
        self.counters
            .get(&((route.to_owned(), version.to_owned()), metric))
            .copied()
            .unwrap_or(0)
    }
}

impl Histogram {
    /// Adds another histogram with the same bounds bucket by bucket; with
    /// different bounds, adds each of its buckets to the first bucket here
    /// whose bound is at least as large (never under-reporting latency).
    pub fn add(&mut self, other: &Histogram) {
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
            return;
        }
        let same_bounds = self.buckets.len() == other.buckets.len()
            && self
                .buckets
                .iter()
                .zip(&other.buckets)
                .all(|(a, b)| a.0 == b.0);
        if same_bounds {
            for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
                // Counts from a misbehaving endpoint must not wrap.
                mine.1 = mine.1.saturating_add(theirs.1);
            }
            return;
        }
        let mut disjoint = other.disjoint();
        for (bound, count) in disjoint.drain(..) {
            if let Some(index) = self.buckets.iter().position(|(b, _)| *b >= bound) {
                for bucket in self.buckets.iter_mut().skip(index) {
                    bucket.1 += count;
                }
            }
        }
    }

    /// Counts per bucket (not cumulative).
    fn disjoint(&self) -> Vec<(f64, u64)> {
        let mut previous = 0;
        self.buckets
            .iter()
            .map(|&(bound, cumulative)| {
                let count = cumulative.saturating_sub(previous);
                previous = cumulative;
                (bound, count)
            })
            .collect()
    }

    /// Samples in the histogram (the last bucket's cumulative count).
    pub fn count(&self) -> u64 {
        self.buckets.last().map(|b| b.1).unwrap_or(0)
    }

    /// The histogram of samples recorded after `earlier` (bucket-wise
    /// difference; a bucket that went down means a restart, and then the
    /// later histogram is the whole difference).
    pub fn since(&self, earlier: Option<&Histogram>) -> Histogram {
        let Some(earlier) = earlier else {
            return self.clone();
        };
        let comparable = earlier.buckets.len() == self.buckets.len()
            && earlier
                .buckets
                .iter()
                .zip(&self.buckets)
                .all(|(a, b)| a.0 == b.0 && a.1 <= b.1);
        if !comparable {
            return self.clone();
        }
        Histogram {
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(now, then)| (now.0, now.1 - then.1))
                .collect(),
        }
    }

    /// The value below which a share `q` (0..=1) of samples fall, by linear
    /// interpolation inside the bucket that holds it (as Prometheus'
    /// `histogram_quantile`), in the histogram's unit. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 || !q.is_finite() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut lower_bound = 0.0;
        let mut lower_count = 0u64;
        for &(bound, cumulative) in &self.buckets {
            if cumulative as f64 >= rank && cumulative > lower_count {
                let in_bucket = (cumulative - lower_count) as f64;
                let fraction = (rank - lower_count as f64) / in_bucket;
                return Some(lower_bound + (bound - lower_bound) * fraction.clamp(0.0, 1.0));
            }
            lower_bound = bound;
            lower_count = cumulative;
        }
        Some(lower_bound)
    }
}

/// What one version of one route entry did between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionWindow {
    /// Requests routed to the version.
    pub requests: u64,
    /// Requests that completed (with any status, or with no response).
    pub completed: u64,
    /// Completed requests that failed (5xx, or no response).
    pub errors: u64,
    /// The window's length.
    pub duration: Duration,
    /// Latency of the completed requests (µs).
    pub latency: Histogram,
}

pub(crate) fn delta(now: u64, then: u64) -> u64 {
    if now >= then {
        now - then
    } else {
        now
    }
}

impl VersionWindow {
    /// The window of `version` of `route` from `earlier` to `later`, which
    /// were taken `duration` apart.
    pub fn between(
        earlier: &Snapshot,
        later: &Snapshot,
        route: &str,
        version: &str,
        duration: Duration,
    ) -> VersionWindow {
        let d = |metric| {
            delta(
                later.counter(route, version, metric),
                earlier.counter(route, version, metric),
            )
        };
        let by_class: u64 = [
            Metric::Responses2xx,
            Metric::Responses3xx,
            Metric::Responses4xx,
            Metric::Responses5xx,
        ]
        .into_iter()
        .map(d)
        .sum();
        let errors = d(Metric::Errors);
        // Streams that ended without a response are errors but have no
        // status class.
        let no_response = errors.saturating_sub(d(Metric::Responses5xx));
        let key = (route.to_owned(), version.to_owned());
        let latency = later
            .latency
            .get(&key)
            .map(|h| h.since(earlier.latency.get(&key)))
            .unwrap_or_default();
        VersionWindow {
            requests: d(Metric::Requests),
            completed: by_class + no_response,
            errors,
            duration,
            latency,
        }
    }

    /// Share of completed requests that did not fail; `None` without any.
    pub fn success_rate(&self) -> Option<f64> {
        self.error_rate().map(|e| 1.0 - e)
    }

    /// Share of completed requests that failed; `None` without any.
    pub fn error_rate(&self) -> Option<f64> {
        (self.completed > 0).then(|| self.errors as f64 / self.completed as f64)
    }

    /// Requests per second routed to the version.
    pub fn request_rate(&self) -> Option<f64> {
        let seconds = self.duration.as_secs_f64();
        (seconds > 0.0).then(|| self.requests as f64 / seconds)
    }

    /// Latency quantile in milliseconds; `None` without samples.
    pub fn latency_ms(&self, quantile: f64) -> Option<f64> {
        self.latency.quantile(quantile).map(|us| us / 1_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = r#"{"stats":[
        {"name":"wasmcustom.canary.route.app.version.v2.rq_total","value":110},
        {"name":"wasmcustom.canary.route.app.version.v2.rq_2xx","value":95},
        {"name":"wasmcustom.canary.route.app.version.v2.rq_5xx","value":5},
        {"name":"wasmcustom.canary.route.app.version.v2.rq_error","value":7},
        {"name":"wasmcustom.canary.route.app.version.v2.weight_bp","value":1000},
        {"name":"cluster.canary.membership_healthy","value":1},
        {"name":"cluster.canary.membership_total","value":2},
        {"name":"server.uptime","value":3},
        {"histograms":[{"name":"wasmcustom.canary.route.app.version.v2.rq_latency_us","buckets":[
            {"upper_bound":1000,"interval":0,"cumulative":50},
            {"upper_bound":10000,"interval":0,"cumulative":90},
            {"upper_bound":100000,"interval":0,"cumulative":100}]}]}
    ]}"#;

    #[test]
    fn parses_counters_histograms_and_clusters() {
        let s = Snapshot::parse_admin_json(ADMIN).unwrap();
        assert_eq!(s.counter("app", "v2", Metric::Requests), 110);
        assert_eq!(s.counter("app", "v2", Metric::Errors), 7);
        assert_eq!(s.counter("app", "v1", Metric::Requests), 0);
        assert_eq!(
            s.clusters["canary"],
            ClusterHealth {
                healthy: 1,
                total: 2
            }
        );
        assert_eq!(s.latency[&("app".into(), "v2".into())].count(), 100);
        // The weight gauge is kept apart from the counters.
        assert_eq!(
            s.gauges[&(("app".into(), "v2".into()), Metric::Weight)],
            1000
        );
        assert_eq!(s.counter("app", "v2", Metric::Weight), 0);
    }

    #[test]
    fn merging_sums_counters_and_leaves_gauges_to_each_envoy() {
        let mut total = Snapshot::default();
        total.merge(&Snapshot::parse_admin_json(ADMIN).unwrap());
        total.merge(&Snapshot::parse_admin_json(ADMIN).unwrap());
        assert_eq!(total.counter("app", "v2", Metric::Requests), 220);
        assert!(total.gauges.is_empty());
    }

    #[test]
    fn refuses_garbage() {
        assert!(matches!(
            Snapshot::parse_admin_json("<html>"),
            Err(StatsParseError::NotJson(_))
        ));
        assert_eq!(
            Snapshot::parse_admin_json("{}"),
            Err(StatsParseError::NoStats)
        );
    }

    #[test]
    fn window_is_the_difference() {
        let earlier = Snapshot::parse_admin_json(ADMIN).unwrap();
        let mut later = earlier.clone();
        let key = ("app".to_owned(), "v2".to_owned());
        *later
            .counters
            .get_mut(&(key.clone(), Metric::Requests))
            .unwrap() += 20;
        *later
            .counters
            .get_mut(&(key.clone(), Metric::Responses2xx))
            .unwrap() += 10;
        *later
            .counters
            .get_mut(&(key.clone(), Metric::Responses5xx))
            .unwrap() += 8;
        // 8 5xx and 2 streams without a response.
        *later
            .counters
            .get_mut(&(key.clone(), Metric::Errors))
            .unwrap() += 10;
        let w = VersionWindow::between(&earlier, &later, "app", "v2", Duration::from_secs(10));
        assert_eq!(w.requests, 20);
        assert_eq!(w.completed, 20);
        assert_eq!(w.errors, 10);
        assert_eq!(w.error_rate(), Some(0.5));
        assert_eq!(w.request_rate(), Some(2.0));
        // No new latency samples.
        assert_eq!(w.latency_ms(0.99), None);
    }

    #[test]
    fn empty_window_has_no_rates() {
        let s = Snapshot::parse_admin_json(ADMIN).unwrap();
        let w = VersionWindow::between(&s, &s, "app", "v2", Duration::from_secs(1));
        assert_eq!(w.success_rate(), None);
        assert_eq!(w.latency_ms(0.5), None);
        assert_eq!(w.request_rate(), Some(0.0));
    }

    #[test]
    fn a_restart_counts_from_zero() {
        let earlier = Snapshot::parse_admin_json(ADMIN).unwrap();
        let mut later = Snapshot::default();
        later
            .counters
            .insert((("app".into(), "v2".into()), Metric::Requests), 4);
        let w = VersionWindow::between(&earlier, &later, "app", "v2", Duration::from_secs(1));
        assert_eq!(w.requests, 4);
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let h = Histogram {
            buckets: vec![(1000.0, 50), (10000.0, 90), (100000.0, 100)],
        };
        assert_eq!(h.quantile(0.5), Some(1000.0));
        assert_eq!(h.quantile(0.25), Some(500.0));
        // 0.7: rank 70, 20 of the 40 samples in (1000, 10000].
        assert_eq!(h.quantile(0.7), Some(5500.0));
        assert_eq!(h.quantile(1.0), Some(100000.0));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn merging_sums_envoys() {
        let one = Snapshot::parse_admin_json(ADMIN).unwrap();
        let mut both = one.clone();
        both.merge(&one);
        assert_eq!(both.counter("app", "v2", Metric::Requests), 220);
        assert_eq!(
            both.clusters["canary"],
            ClusterHealth {
                healthy: 2,
                total: 4
            }
        );
        assert_eq!(both.latency[&("app".into(), "v2".into())].count(), 200);
    }

    #[test]
    fn histograms_with_other_bounds_merge_upwards() {
        let mut a = Histogram {
            buckets: vec![(1000.0, 1), (10000.0, 2)],
        };
        let b = Histogram {
            buckets: vec![(500.0, 3), (5000.0, 4)],
        };
        a.add(&b);
        // b's 3 samples ≤ 500 go to ≤1000; its 1 sample in (500,5000] to ≤10000.
        assert_eq!(a.buckets, vec![(1000.0, 4), (10000.0, 6)]);
    }

    proptest::proptest! {
        #[test]
        fn quantiles_are_monotone(counts in proptest::collection::vec(0u64..50, 1..10), q1 in 0.0f64..1.0, q2 in 0.0f64..1.0) {
            let mut cumulative = 0;
            let buckets: Vec<(f64, u64)> = counts.iter().enumerate().map(|(i, c)| {
                cumulative += c;
                (10f64.powi(i as i32 + 1), cumulative)
            }).collect();
            let h = Histogram { buckets };
            let (lo, hi) = (q1.min(q2), q1.max(q2));
            if let (Some(a), Some(b)) = (h.quantile(lo), h.quantile(hi)) {
                proptest::prop_assert!(a <= b, "q{lo} = {a} > q{hi} = {b}");
            }
        }
    }
}
