//! The filter's metrics in one VM. Each metric name is defined once per VM
//! (Envoy hands out a new id on every definition) when a configuration is
//! applied, never on the request path. Counter increments are added up in
//! the VM and handed to the host every [`FLUSH_MILLIS`]; histogram samples
//! go to the host as they happen.

use canary_config::stats_names::{weight_gauges, Metric, MetricKind};
use canary_config::{CompiledConfig, Version};

use crate::host::{self, MetricType};

/// How often counted increments reach Envoy's stats, in milliseconds.
pub const FLUSH_MILLIS: u32 = 250;

/// Every metric defined in this VM, and the counts not yet flushed.
#[derive(Debug, Default)]
pub struct Counters {
    /// Full name and host id of each defined metric, by slot.
    defined: Vec<(String, u32)>,
    /// Increments waiting for the next flush, by slot.
    pending: Vec<u64>,
}

impl Counters {
    /// The slot of `name`, defining it with the host the first time.
    /// `None` if the host refuses the definition.
    fn slot(&mut self, name: &str, kind: MetricKind) -> Option<usize> {
        if let Some(slot) = self.defined.iter().position(|(defined, _)| defined == name) {
            return Some(slot);
        }
        let host_kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Histogram => MetricType::Histogram,
            MetricKind::Gauge => MetricType::Gauge,
        };
        let id = host::define_metric(host_kind, name)?;
        self.defined.push((name.to_owned(), id));
        self.pending.push(0);
        Some(self.defined.len() - 1)
    }

    /// Counts one for the counter in `slot`.
    pub fn count(&mut self, slot: Option<usize>) {
        if let Some(pending) = slot.and_then(|slot| self.pending.get_mut(slot)) {
            *pending += 1;
        }
    }

    /// Records a histogram sample at once.
    pub fn record(&self, slot: Option<usize>, value: u64) {
        if let Some((_, id)) = slot.and_then(|slot| self.defined.get(slot)) {
            host::record(*id, value);
        }
    }

    /// Sets the gauge in `slot`.
    pub fn set(&self, slot: Option<usize>, value: u64) {
        // A gauge's `record` sets its value.
        self.record(slot, value);
    }

    /// Hands every pending increment to the host.
    pub fn flush(&mut self) {
        for ((_, id), pending) in self.defined.iter().zip(self.pending.iter_mut()) {
            if *pending > 0 {
                host::increment(*id, i64::try_from(*pending).unwrap_or(i64::MAX));
                *pending = 0;
            }
        }
    }
}

/// Slots of every metric of one version of one route entry, by
/// [`Metric::index`].
pub type VersionSlots = [Option<usize>; Metric::ALL.len()];

/// Slots for every route entry: `[stable, canary]` per entry.
#[derive(Debug, Default)]
pub struct RouteMetrics {
    table: Vec<[VersionSlots; 2]>,
}

impl RouteMetrics {
    /// Defines (or finds) every metric the configuration needs.
    pub fn define(config: &CompiledConfig, counters: &mut Counters) -> RouteMetrics {
        let mut version = |route: &str, version: &str| -> VersionSlots {
            Metric::ALL
                .map(|metric| counters.slot(&metric.filter_name(route, version), metric.kind()))
        };
        let table = config
            .routes
            .iter()
            .map(|route| {
                let canary = route.canary.as_deref().unwrap_or(&route.stable);
                [
                    version(&route.name, &route.stable),
                    version(&route.name, canary),
                ]
            })
            .collect();
        RouteMetrics { table }
    }

    /// Publishes each route entry's split in its `weight_bp` gauges: the
    /// canary's weight, and the rest for stable (all of it when the entry
    /// has no canary).
    pub fn publish_weights(&self, config: &CompiledConfig, counters: &Counters) {
        for (index, route) in config.routes.iter().enumerate() {
            for (version, value) in weight_gauges(route.weight, route.canary.is_some()) {
                counters.set(self.slot(index, version, Metric::Weight), value);
            }
        }
    }

    /// The slot of `metric` of `version` of route entry `route`.
    pub fn slot(&self, route: usize, version: Version, metric: Metric) -> Option<usize> {
        *self
            .table
            .get(route)?
            .get(version.index())?
            .get(metric.index())?
    }
}
