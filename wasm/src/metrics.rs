//! The filter's metrics in one VM. Each metric name is defined once per VM
//! (Envoy hands out a new id on every definition) when a configuration is
//! applied, never on the request path. Counter increments are added up in
//! the VM and handed to the host every [`FLUSH_MILLIS`]; histogram samples
//! go to the host as they happen; gauges are set when a configuration is
//! applied or a guard trips, and a gauge no configuration in force defines
//! any more is set back to 0 (see [`Counters::retire`]).

use canary_config::stats_names::{weight_gauges, Metric, MetricKind};
use canary_config::{CompiledConfig, CompiledRoute, Version, Weight};

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
    /// Gauges this VM has set to a value and not set back to 0 since.
    set_gauges: Vec<usize>,
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
    pub fn set(&mut self, slot: Option<usize>, value: u64) {
        // A gauge's `record` sets its value.
        self.record(slot, value);
        if let Some(slot) = slot {
            if !self.set_gauges.contains(&slot) {
                self.set_gauges.push(slot);
            }
        }
    }

    /// Sets back to 0 every gauge this VM set that `defined` no longer
    /// claims, so a route entry or version a new configuration dropped (or
    /// renamed) does not keep showing its last value.
    pub fn retire(&mut self, defined: impl Fn(usize) -> bool) {
        let mut kept = Vec::with_capacity(self.set_gauges.len());
        for slot in std::mem::take(&mut self.set_gauges) {
            if defined(slot) {
                kept.push(slot);
            } else {
                self.record(Some(slot), 0);
            }
        }
        self.set_gauges = kept;
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
    /// Defines (or finds) every metric the configuration needs: the guard's
    /// only for entries with a guard.
    pub fn define(config: &CompiledConfig, counters: &mut Counters) -> RouteMetrics {
        let mut version = |route: &CompiledRoute, version: &str| -> VersionSlots {
            Metric::ALL.map(|metric| {
                if metric.guard_only() && route.guard.is_none() {
                    return None;
                }
                counters.slot(&metric.filter_name(&route.name, version), metric.kind())
            })
        };
        let table = config
            .routes
            .iter()
            .map(|route| {
                let canary = route.canary.as_deref().unwrap_or(&route.stable);
                [version(route, &route.stable), version(route, canary)]
            })
            .collect();
        RouteMetrics { table }
    }

    /// Sets every gauge of the configuration: per route entry and version,
    /// the configured split (`weight_bp`), the split after the guard
    /// (`effective_weight_bp`), the generation, and whether the guard has
    /// tripped. Returns the slots it set (what this configuration claims).
    pub fn publish(
        &self,
        config: &CompiledConfig,
        tripped: impl Fn(usize) -> bool,
        counters: &mut Counters,
    ) -> Vec<usize> {
        let mut claimed = Vec::new();
        for (index, route) in config.routes.iter().enumerate() {
            for (version, value) in weight_gauges(route.weight, route.canary.is_some()) {
                let slot = self.slot(index, version, Metric::Weight);
                counters.set(slot, value);
                claimed.extend(slot);
            }
            for version in [Version::Stable, Version::Canary] {
                let slot = self.slot(index, version, Metric::Generation);
                counters.set(slot, route.generation);
                claimed.extend(slot);
                claimed.extend(self.slot(index, version, Metric::EffectiveWeight));
                claimed.extend(self.slot(index, version, Metric::GuardTripped));
            }
            self.publish_guard(config, index, tripped(index), counters);
        }
        claimed
    }

    /// Sets route entry `index`'s gauges that follow its guard: the split
    /// after the guard, and whether it has tripped.
    pub fn publish_guard(
        &self,
        config: &CompiledConfig,
        index: usize,
        tripped: bool,
        counters: &mut Counters,
    ) {
        let Some(route) = config.routes.get(index) else {
            return;
        };
        let effective = if tripped { Weight::ZERO } else { route.weight };
        for (version, value) in weight_gauges(effective, route.canary.is_some()) {
            counters.set(self.slot(index, version, Metric::EffectiveWeight), value);
        }
        if route.guard.is_some() {
            counters.set(self.slot(index, Version::Stable, Metric::GuardTripped), 0);
            if route.canary.is_some() {
                let slot = self.slot(index, Version::Canary, Metric::GuardTripped);
                counters.set(slot, u64::from(tripped));
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
