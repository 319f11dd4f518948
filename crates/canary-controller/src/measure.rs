//! Taking one measurement: the metric's provider settings in, a
//! [`MeasurementResult`] out. Every provider failure becomes an `Error`
//! result (which the analysis counts toward `consecutiveErrorLimit`, and
//! which can only ever lead to a rollback), never a pass.

use std::sync::Arc;
use std::time::Duration;

use canary_analysis::metric::Metric;
use canary_analysis::provider::Provider;
use canary_analysis::{MeasurementResult, Timestamp};

use crate::providers::envoy::{EnvoySource, VersionNames};
use crate::providers::http::HttpClient;
use crate::providers::kubernetes::KubernetesSource;
use crate::providers::{prometheus, web};

/// Window of an Envoy metric that sets neither `window` nor `interval`.
pub const DEFAULT_ENVOY_WINDOW: Duration = Duration::from_secs(60);

/// The configured metric sources.
#[derive(Debug, Clone)]
pub struct Providers {
    /// Shared HTTP client (Prometheus, web).
    pub http: HttpClient,
    /// Envoy admin endpoints, if configured.
    pub envoy: Option<Arc<EnvoySource>>,
    /// Prometheus address for templates that do not set one.
    pub prometheus_url: Option<String>,
    /// The Kubernetes API, if configured.
    pub kubernetes: Option<Arc<KubernetesSource>>,
}

impl Providers {
    /// Measures `metric` for the rollout's versions at `now`.
    pub async fn measure(
        &self,
        metric: &Metric,
        names: VersionNames<'_>,
        now: Timestamp,
    ) -> MeasurementResult {
        match &metric.provider {
            Provider::Prometheus(query) => prometheus::measure(&self.http, query, self.prometheus_url.as_deref()).await,
            Provider::Web(query) => web::measure(&self.http, query).await,
            Provider::Envoy(query) => match &self.envoy {
                Some(envoy) => {
                    let window = metric.interval.unwrap_or(DEFAULT_ENVOY_WINDOW);
                    envoy.measure(query, names, now, window).await
                }
                None => MeasurementResult::error(
                    "metric uses provider envoy, but no Envoy admin endpoint is configured (--envoy-admin)",
                ),
            },
            Provider::Kubernetes(query) => match &self.kubernetes {
                Some(kubernetes) => kubernetes.measure(query).await,
                None => MeasurementResult::error(
                    "metric uses provider kubernetes, but the controller has no Kubernetes access (--kubernetes)",
                ),
            },
        }
    }
}
