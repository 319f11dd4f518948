//! The root context: receives the configuration, validates it completely,
//! defines the metrics it needs, and hands each request a shared pointer to
//! the result. A configuration that fails validation is refused (Envoy keeps
//! serving the previous one) and the log names the field and the reason.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use canary_config::CompiledConfig;

use crate::host::{self, LogLevel};
use crate::metrics::RouteMetrics;
use crate::request::CanaryRequest;

/// A configuration in force: what every request of this root context reads.
#[derive(Debug)]
pub struct ActiveConfig {
    /// The validated configuration.
    pub config: CompiledConfig,
    /// Metric ids for its route entries.
    pub metrics: RouteMetrics,
}

/// One plugin instance in one VM.
#[derive(Debug, Default)]
pub struct CanaryRoot {
    /// `None` until a configuration has been accepted; requests then pass
    /// untouched (and reach stable).
    active: Option<Rc<ActiveConfig>>,
}

impl Context for CanaryRoot {}

impl RootContext for CanaryRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = host::plugin_configuration().unwrap_or_default();
        match canary_config::parse(&raw) {
            Ok(config) => {
                let metrics = RouteMetrics::define(&config);
                host::log(
                    LogLevel::Info,
                    &format!("canary: configuration accepted: {}", summary(&config)),
                );
                self.active = Some(Rc::new(ActiveConfig { config, metrics }));
                true
            }
            Err(errors) => {
                for error in &errors.0 {
                    host::log(
                        LogLevel::Error,
                        &format!("canary: configuration rejected: {error}"),
                    );
                }
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(CanaryRequest::new(self.active.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One line describing each route entry's split, for the log.
fn summary(config: &CompiledConfig) -> String {
    let routes: Vec<String> = config
        .routes
        .iter()
        .map(|route| match &route.canary {
            Some(canary) => format!(
                "{} ({} / {} at {})",
                route.name, route.stable, canary, route.weight
            ),
            None => format!("{} ({} only)", route.name, route.stable),
        })
        .collect();
    if routes.is_empty() {
        "no route entries".to_owned()
    } else {
        routes.join(", ")
    }
}
