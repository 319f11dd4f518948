//! A root context's configuration: received, validated completely, and
//! turned into what requests read. A configuration that fails validation
//! is refused (Envoy keeps the previous one serving) and the log names each
//! field and reason.

use std::rc::Rc;

use canary_config::CompiledConfig;

use crate::guard::RouteGuard;
use crate::host::{self, LogLevel};
use crate::metrics::{RouteMetrics, FLUSH_MILLIS};
use crate::vm;

/// A configuration in force.
#[derive(Debug)]
pub struct ActiveConfig {
    /// The validated configuration.
    pub config: CompiledConfig,
    /// Metric slots for its route entries.
    pub metrics: RouteMetrics,
    /// The guard of each route entry (by index), when it has one.
    pub guards: Vec<Option<RouteGuard>>,
    /// The gauge slots this configuration sets; any other gauge this VM set
    /// is set back to 0 once no configuration in force claims it.
    pub gauges: Vec<usize>,
    /// Whether the request path must read `:authority` (false when every
    /// entry matches every host).
    pub needs_authority: bool,
}

impl ActiveConfig {
    /// The guard of route entry `index`, if it has one.
    pub fn guard(&self, index: usize) -> Option<&RouteGuard> {
        self.guards.get(index)?.as_ref()
    }
}

/// `proxy_on_configure`: returns whether the configuration was accepted.
pub fn configure(root: u32) -> bool {
    let raw = host::plugin_configuration().unwrap_or_default();
    let config = match canary_config::parse(&raw) {
        Ok(config) => config,
        Err(errors) => {
            for error in &errors.0 {
                host::log(
                    LogLevel::Error,
                    &format!("canary: configuration rejected: {error}"),
                );
            }
            return false;
        }
    };
    let accepted = vm::with(|vm| {
        let metrics = RouteMetrics::define(&config, &mut vm.counters);
        let guards: Vec<Option<RouteGuard>> =
            config.routes.iter().map(RouteGuard::for_route).collect();
        let tripped: Vec<bool> = guards
            .iter()
            .map(|guard| guard.as_ref().is_some_and(RouteGuard::start))
            .collect();
        let gauges = metrics.publish(
            &config,
            |index| tripped.get(index).copied().unwrap_or(false),
            &mut vm.counters,
        );
        let needs_authority = config.routes.iter().any(|route| {
            !route
                .hosts
                .contains(&canary_config::host_match::HostPattern::Any)
        });
        let summary = summary(&config, &tripped);
        let active = Rc::new(ActiveConfig {
            config,
            metrics,
            guards,
            gauges,
            needs_authority,
        });
        match vm.roots.iter_mut().find(|(id, _)| *id == root) {
            Some((_, slot)) => *slot = Some(active),
            None => vm.roots.push((root, Some(active))),
        }
        vm.retire_gauges();
        summary
    });
    match accepted {
        Some(summary) => {
            host::set_tick_period(FLUSH_MILLIS);
            host::log(
                LogLevel::Info,
                &format!("canary: configuration accepted: {summary}"),
            );
            true
        }
        None => false,
    }
}

/// One line describing each route entry's split, for the log.
fn summary(config: &CompiledConfig, tripped: &[bool]) -> String {
    let routes: Vec<String> = config
        .routes
        .iter()
        .enumerate()
        .map(|(index, route)| {
            let mut line = match &route.canary {
                Some(canary) => format!(
                    "{} ({} / {} at {}",
                    route.name, route.stable, canary, route.weight
                ),
                None => format!("{} ({} only", route.name, route.stable),
            };
            if route.generation != 0 {
                line.push_str(&format!(", generation {}", route.generation));
            }
            if route.guard.is_some() {
                let tripped = tripped.get(index).copied().unwrap_or(false);
                line.push_str(if tripped {
                    ", guard tripped: all to stable"
                } else {
                    ", guard on"
                });
            }
            line.push(')');
            line
        })
        .collect();
    if routes.is_empty() {
        "no route entries".to_owned()
    } else {
        routes.join(", ")
    }
}
