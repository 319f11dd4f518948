//! Where measurements come from. Each provider turns a template's typed
//! query into a [`MeasurementResult`]: a value (with the number of samples
//! it stands on, when known), an error, or not enough data. Every provider
//! failure becomes an `Error` result (which the analysis counts toward
//! `consecutiveErrorLimit`, and which can only ever lead to a rollback),
//! never a pass.
//!
//! - [`envoy`]: the canary filter's stats from Envoy's admin endpoints,
//!   scraped in the background; also what the standalone observer reads.
//! - [`prometheus`], [`web`], [`kubernetes`]: Argo's providers and
//!   canary's pod readiness and CPU.
//! - [`mesh`]: what a mesh's proxies show of the split, from Prometheus
//!   only, against the pods that should carry the filter.
//! - [`http`]: the one HTTP client they share.
//! - [`redact`]: keeping secret values out of what they report.

pub mod envoy;
pub mod http;
pub mod kubernetes;
pub mod mesh;
pub mod prometheus;
pub mod redact;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use canary_analysis::provider::Provider;
use canary_analysis::{MeasurementResult, Timestamp};
use canary_rollout::driver::{MeasureRequest, Measured};
use canary_rollout::ports::{BoxFuture, MetricSource, Versions};

use crate::envoy::EnvoySource;
use crate::http::HttpClient;
use crate::kubernetes::KubernetesSource;

/// Window of an Envoy metric that sets neither `window` nor `interval`.
pub const DEFAULT_ENVOY_WINDOW: Duration = Duration::from_secs(60);

/// The configured metric sources.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Shared HTTP client (Prometheus, web).
    pub http: HttpClient,
    /// Envoy admin endpoints, if configured.
    pub envoy: Option<Arc<EnvoySource>>,
    /// Prometheus address for templates that do not set one.
    pub prometheus_url: Option<String>,
    /// The Kubernetes API, if configured.
    pub kubernetes: Option<Arc<KubernetesSource>>,
}

impl Sources {
    /// No source but the shared HTTP client (Prometheus and web metrics
    /// that name their own address still work).
    pub fn new(http: HttpClient) -> Sources {
        Sources {
            http,
            envoy: None,
            prometheus_url: None,
            kubernetes: None,
        }
    }

    /// The same sources reading Kubernetes through `kubernetes`.
    pub fn with_kubernetes(&self, kubernetes: Arc<KubernetesSource>) -> Sources {
        Sources {
            kubernetes: Some(kubernetes),
            ..self.clone()
        }
    }

    /// Measures `request` for `versions` at `now`, going on from what the
    /// metric carried (the judge's evidence). No remembered secret value
    /// appears in the result's message.
    pub async fn measure(
        &self,
        request: &MeasureRequest,
        versions: Versions<'_>,
        now: Timestamp,
    ) -> Measured {
        let measured = self.measure_unscrubbed(request, versions, now).await;
        Measured {
            result: redact::scrub_result(measured.result),
            carry: measured.carry,
        }
    }

    async fn measure_unscrubbed(
        &self,
        request: &MeasureRequest,
        versions: Versions<'_>,
        now: Timestamp,
    ) -> Measured {
        let metric = &request.metric;
        match &metric.provider {
            Provider::Prometheus(query) => {
                prometheus::measure(&self.http, query, self.prometheus_url.as_deref())
                    .await
                    .into()
            }
            Provider::Web(query) => web::measure(&self.http, query).await.into(),
            Provider::Envoy(query) => match &self.envoy {
                Some(envoy) => {
                    let window = metric.interval.unwrap_or(DEFAULT_ENVOY_WINDOW);
                    envoy
                        .measure(query, versions, now, window, request.in_force_since)
                        .await
                        .into()
                }
                None => no_envoy("envoy"),
            },
            Provider::Judge(query) => match &self.envoy {
                Some(envoy) => {
                    envoy
                        .judge(
                            query,
                            versions,
                            now,
                            request.in_force_since,
                            request.carry.as_ref(),
                        )
                        .await
                }
                None => no_envoy("judge"),
            },
            Provider::Kubernetes(query) => match &self.kubernetes {
                Some(kubernetes) => kubernetes.measure(query).await.into(),
                None => MeasurementResult::error(
                    "metric uses provider kubernetes, but the controller has no Kubernetes access (--kubernetes)",
                )
                .into(),
            },
        }
    }
}

fn no_envoy(provider: &str) -> Measured {
    MeasurementResult::error(format!(
        "metric uses provider {provider}, but no Envoy admin endpoint is configured (--envoy-admin)"
    ))
    .into()
}

impl MetricSource for Sources {
    fn measure<'a>(
        &'a self,
        request: &'a MeasureRequest,
        versions: Versions<'a>,
        now: Timestamp,
    ) -> BoxFuture<'a, Measured> {
        Box::pin(Sources::measure(self, request, versions, now))
    }
}
