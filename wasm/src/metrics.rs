//! Per-route, per-version metric ids. Metrics are defined when a
//! configuration is applied, never on the request path, and each name is
//! defined once per VM: Envoy hands out a new id on every definition, so
//! ids are cached by name across configurations.

use std::cell::RefCell;

use canary_config::stats_names::{Metric, MetricKind};
use canary_config::{CompiledConfig, Version};

use crate::host::{self, MetricType};

thread_local! {
    /// Ids already defined in this VM, by full metric name (a few dozen at
    /// most, searched only when a configuration is applied).
    static DEFINED: RefCell<Vec<(String, u32)>> = const { RefCell::new(Vec::new()) };
}

/// The ids of every metric of one version of one route entry, indexed by
/// [`Metric::index`]. `None` where the host refused the definition (the
/// filter then routes without recording that metric).
pub type VersionMetrics = [Option<u32>; Metric::ALL.len()];

/// Metric ids for every route entry: `[stable, canary]` per entry.
#[derive(Debug, Default)]
pub struct RouteMetrics {
    table: Vec<[VersionMetrics; 2]>,
}

impl RouteMetrics {
    /// Defines (or looks up) every metric the configuration needs.
    pub fn define(config: &CompiledConfig) -> RouteMetrics {
        let table = config
            .routes
            .iter()
            .map(|route| {
                let canary = route.canary.as_deref().unwrap_or(&route.stable);
                [
                    define_version(&route.name, &route.stable),
                    define_version(&route.name, canary),
                ]
            })
            .collect();
        RouteMetrics { table }
    }

    /// Adds one to `metric` of `version` of route entry `route`.
    pub fn increment(&self, route: usize, version: Version, metric: Metric) {
        if let Some(id) = self.id(route, version, metric) {
            host::increment(id);
        }
    }

    /// Records a histogram sample.
    pub fn record(&self, route: usize, version: Version, metric: Metric, value: u64) {
        if let Some(id) = self.id(route, version, metric) {
            host::record(id, value);
        }
    }

    fn id(&self, route: usize, version: Version, metric: Metric) -> Option<u32> {
        *self
            .table
            .get(route)?
            .get(version.index())?
            .get(metric.index())?
    }
}

fn define_version(route: &str, version: &str) -> VersionMetrics {
    Metric::ALL.map(|metric| define_once(&metric.filter_name(route, version), metric.kind()))
}

fn define_once(name: &str, kind: MetricKind) -> Option<u32> {
    DEFINED.with(|defined| {
        let mut defined = defined.borrow_mut();
        if let Some((_, id)) = defined.iter().find(|(defined, _)| defined == name) {
            return Some(*id);
        }
        let host_kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Histogram => MetricType::Histogram,
        };
        let id = host::define_metric(host_kind, name)?;
        defined.push((name.to_owned(), id));
        Some(id)
    })
}
