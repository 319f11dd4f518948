//! Names of the filter's metrics, shared by the filter (which defines them),
//! the shipped Envoy `stats_tags` (which turn route and version into
//! labels) and the controller (which reads them back).
//!
//! The filter defines `canary.route.<route>.version.<version>.<metric>`;
//! Envoy files custom metrics under `wasmcustom.`, so the admin endpoint
//! shows `wasmcustom.canary.route.<route>.version.<version>.<metric>`. With
//! [`ROUTE_TAG_REGEX`] and [`VERSION_TAG_REGEX`] in the bootstrap's
//! `stats_config.stats_tags`, `/stats/prometheus` shows
//! `canary_<metric>{route="<route>",version="<version>"}`.

/// Prefix of every metric the filter defines (before Envoy's `wasmcustom.`).
pub const PREFIX: &str = "canary";

/// Envoy's namespace for metrics defined by wasm modules.
pub const ENVOY_NAMESPACE: &str = "wasmcustom";

/// Tag name for the route entry.
pub const ROUTE_TAG: &str = "route";
/// Tag name for the version.
pub const VERSION_TAG: &str = "version";

/// Envoy `stats_tags` regex extracting the `route` label.
pub const ROUTE_TAG_REGEX: &str = r"^wasmcustom\.canary\.(route\.([A-Za-z0-9_-]+)\.)version\.";
/// Envoy `stats_tags` regex extracting the `version` label.
pub const VERSION_TAG_REGEX: &str =
    r"^wasmcustom\.canary\.route\.[A-Za-z0-9_-]+\.(version\.([A-Za-z0-9_-]+)\.)";

/// Every metric the filter records per route entry and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Counter: requests the filter routed (counted when the request
    /// headers arrive).
    Requests,
    /// Counter: completed responses with a 2xx status.
    Responses2xx,
    /// Counter: completed responses with a 3xx status.
    Responses3xx,
    /// Counter: completed responses with a 4xx status.
    Responses4xx,
    /// Counter: completed responses with a 5xx status, including Envoy's
    /// own local replies (upstream reset, connect failure, timeout).
    Responses5xx,
    /// Counter: failed requests: 5xx responses plus streams that ended
    /// without any response.
    Errors,
    /// Histogram: time from request headers to the end of the stream, in
    /// microseconds; its count is the number of completed requests.
    LatencyMicros,
    /// Gauge: the share of the route entry's traffic the configuration in
    /// force sends to this version, in hundredths of a percent (0 to
    /// 10 000). Set when a configuration is applied, never per request, so
    /// the controller can see that a push took effect in the proxy.
    Weight,
    /// Gauge: the share the filter really sends to this version, after the
    /// guard: equal to [`Metric::Weight`] until the guard trips, then
    /// everything to stable.
    EffectiveWeight,
    /// Gauge: the generation of the split in force (the same value under
    /// each version of the entry), so the controller can tell which
    /// attempt of a rollout each proxy applies.
    Generation,
    /// Gauge, entries with a guard only: 1 while the guard has sent this
    /// version's traffic to stable, else 0 (stable's is always 0).
    GuardTripped,
    /// Counter, entries with a guard only: how many times the guard tripped
    /// for this version (once per generation and canary version at most).
    GuardTrips,
}

/// Whether a metric is a counter, a gauge or a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic counter.
    Counter,
    /// Histogram.
    Histogram,
    /// Gauge (set, not added to).
    Gauge,
}

impl Metric {
    /// All metrics, in a fixed order (the filter's table layout).
    pub const ALL: [Metric; 12] = [
        Metric::Requests,
        Metric::Responses2xx,
        Metric::Responses3xx,
        Metric::Responses4xx,
        Metric::Responses5xx,
        Metric::Errors,
        Metric::LatencyMicros,
        Metric::Weight,
        Metric::EffectiveWeight,
        Metric::Generation,
        Metric::GuardTripped,
        Metric::GuardTrips,
    ];

    /// The last segment of the metric's name.
    pub const fn suffix(self) -> &'static str {
        match self {
            Metric::Requests => "rq_total",
            Metric::Responses2xx => "rq_2xx",
            Metric::Responses3xx => "rq_3xx",
            Metric::Responses4xx => "rq_4xx",
            Metric::Responses5xx => "rq_5xx",
            Metric::Errors => "rq_error",
            Metric::LatencyMicros => "rq_latency_us",
            Metric::Weight => "weight_bp",
            Metric::EffectiveWeight => "effective_weight_bp",
            Metric::Generation => "generation",
            Metric::GuardTripped => "guard_tripped",
            Metric::GuardTrips => "guard_tripped_total",
        }
    }

    /// Counter, gauge or histogram.
    pub const fn kind(self) -> MetricKind {
        match self {
            Metric::LatencyMicros => MetricKind::Histogram,
            Metric::Weight
            | Metric::EffectiveWeight
            | Metric::Generation
            | Metric::GuardTripped => MetricKind::Gauge,
            _ => MetricKind::Counter,
        }
    }

    /// Whether the filter defines this metric only for entries with a
    /// guard.
    pub const fn guard_only(self) -> bool {
        matches!(self, Metric::GuardTripped | Metric::GuardTrips)
    }

    /// Position in [`Metric::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Metric::Requests => 0,
            Metric::Responses2xx => 1,
            Metric::Responses3xx => 2,
            Metric::Responses4xx => 3,
            Metric::Responses5xx => 4,
            Metric::Errors => 5,
            Metric::LatencyMicros => 6,
            Metric::Weight => 7,
            Metric::EffectiveWeight => 8,
            Metric::Generation => 9,
            Metric::GuardTripped => 10,
            Metric::GuardTrips => 11,
        }
    }

    /// The counter for a response status class, if the status has one
    /// (`200..=599`).
    pub const fn for_status(status: u32) -> Option<Metric> {
        match status {
            200..=299 => Some(Metric::Responses2xx),
            300..=399 => Some(Metric::Responses3xx),
            400..=499 => Some(Metric::Responses4xx),
            500..=599 => Some(Metric::Responses5xx),
            _ => None,
        }
    }

    /// The name the filter defines: `canary.route.<r>.version.<v>.<suffix>`.
    pub fn filter_name(self, route: &str, version: &str) -> String {
        format!("{PREFIX}.route.{route}.version.{version}.{}", self.suffix())
    }

    /// The name Envoy's admin endpoint shows (with `wasmcustom.`).
    pub fn envoy_name(self, route: &str, version: &str) -> String {
        format!("{ENVOY_NAMESPACE}.{}", self.filter_name(route, version))
    }
}

/// Whether a request with this final status failed: a 5xx (Envoy's own
/// local replies included) or no response at all (status 0). What
/// [`Metric::Errors`] counts, and what the guard treats as a failure.
pub const fn is_failure(status: u32) -> bool {
    status == 0 || status >= 500
}

/// A metric name from Envoy's admin endpoint, taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedName<'a> {
    /// Route entry name.
    pub route: &'a str,
    /// Version name.
    pub version: &'a str,
    /// Which metric.
    pub metric: Metric,
}

/// Parses `wasmcustom.canary.route.<r>.version.<v>.<suffix>` (or the same
/// without `wasmcustom.`); `None` for any other name.
pub fn parse_envoy_name(name: &str) -> Option<ParsedName<'_>> {
    let rest = name.strip_prefix("wasmcustom.").unwrap_or(name);
    let rest = rest.strip_prefix("canary.route.")?;
    let (route, rest) = rest.split_once(".version.")?;
    let (version, suffix) = rest.split_once('.')?;
    let metric = Metric::ALL.into_iter().find(|m| m.suffix() == suffix)?;
    if route.is_empty() || version.is_empty() || route.contains('.') {
        return None;
    }
    Some(ParsedName {
        route,
        version,
        metric,
    })
}

/// The [`Metric::Weight`] values a route entry's split sets, by version:
/// the canary's weight, and the rest for stable (all of it when the entry
/// has no canary). The filter publishes them; the controller expects them.
/// The same rule gives [`Metric::EffectiveWeight`], with the canary's
/// weight at 0 once the guard has tripped.
pub fn weight_gauges(
    weight: crate::weight::Weight,
    has_canary: bool,
) -> impl Iterator<Item = (crate::Version, u64)> {
    let full = u64::from(crate::weight::BUCKETS);
    let canary = has_canary.then(|| u64::from(weight.basis_points()));
    let stable = full.saturating_sub(canary.unwrap_or(0));
    std::iter::once((crate::Version::Stable, stable))
        .chain(canary.map(|bp| (crate::Version::Canary, bp)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_gauges_split_all_traffic() {
        use crate::weight::Weight;
        use crate::Version;
        let split = |percent, has_canary| {
            let weight = Weight::from_percent(percent).expect("valid");
            weight_gauges(weight, has_canary).collect::<Vec<_>>()
        };
        assert_eq!(
            split(12.5, true),
            vec![(Version::Stable, 8750), (Version::Canary, 1250)]
        );
        assert_eq!(split(0.0, false), vec![(Version::Stable, 10_000)]);
    }

    #[test]
    fn names_round_trip() {
        for metric in Metric::ALL {
            let name = metric.envoy_name("checkout", "v2");
            assert_eq!(
                parse_envoy_name(&name),
                Some(ParsedName {
                    route: "checkout",
                    version: "v2",
                    metric
                })
            );
            assert_eq!(Metric::ALL[metric.index()], metric);
        }
        assert_eq!(
            Metric::Requests.envoy_name("a", "b"),
            "wasmcustom.canary.route.a.version.b.rq_total"
        );
    }

    #[test]
    fn every_name_carries_route_and_version_for_the_tag_regexes() {
        // The shipped `stats_tags` extract labels from names of this shape
        // only; every metric, guard ones included, must have it.
        for metric in Metric::ALL {
            let name = metric.envoy_name("web-1", "v_2");
            let rest = name
                .strip_prefix("wasmcustom.canary.route.web-1.version.v_2.")
                .unwrap_or_else(|| panic!("{name}"));
            assert_eq!(rest, metric.suffix());
            assert!(!rest.contains('.'), "{name}");
        }
        let suffixes: std::collections::BTreeSet<_> =
            Metric::ALL.iter().map(|m| m.suffix()).collect();
        assert_eq!(suffixes.len(), Metric::ALL.len(), "suffixes are unique");
    }

    #[test]
    fn foreign_names_do_not_parse() {
        assert_eq!(parse_envoy_name("cluster.stable.upstream_rq_total"), None);
        assert_eq!(
            parse_envoy_name("wasmcustom.canary.route.a.version.b.other"),
            None
        );
        assert_eq!(parse_envoy_name("wasmcustom.canary.route.a.b"), None);
    }

    #[test]
    fn status_classes() {
        assert_eq!(Metric::for_status(204), Some(Metric::Responses2xx));
        assert_eq!(Metric::for_status(503), Some(Metric::Responses5xx));
        assert_eq!(Metric::for_status(0), None);
        assert_eq!(Metric::for_status(101), None);
    }
}
