//! `provider.envoy`: the canary filter's stats, read from one or more
//! Envoy admin endpoints (summed), as values of a window.
//!
//! The source keeps a short history of scrapes. A measurement scrapes
//! again and compares with the newest scrape at least `window` old (or the
//! oldest there is), so its value covers that window only. The caller
//! should also call [`EnvoySource::scrape`] regularly (the controller does
//! it every second) so a baseline exists when a measurement comes due.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use canary_analysis::provider::{EnvoyQuantity, EnvoyQuery, VersionSelector};
use canary_analysis::{MeasurementResult, MetricValue, Timestamp};

use crate::envoy_stats::{Snapshot, VersionWindow, ADMIN_STATS_PATH};
use crate::providers::http::{HttpClient, HttpRequest};

/// How long scrapes are kept (the longest window a metric can ask for).
pub const HISTORY: Duration = Duration::from_secs(15 * 60);

/// Timeout of one admin request.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// The names of the two versions a measurement is about.
#[derive(Debug, Clone, Copy)]
pub struct VersionNames<'a> {
    /// Stable version name.
    pub stable: &'a str,
    /// Canary version name.
    pub canary: &'a str,
}

/// Envoy admin endpoints and their recent scrapes.
#[derive(Debug)]
pub struct EnvoySource {
    endpoints: Vec<String>,
    http: HttpClient,
    history: Mutex<VecDeque<(Timestamp, Snapshot)>>,
}

impl EnvoySource {
    /// A source reading `endpoints` (`http://127.0.0.1:9901`, ...).
    pub fn new(endpoints: Vec<String>, http: HttpClient) -> EnvoySource {
        EnvoySource {
            endpoints: endpoints
                .into_iter()
                .map(|e| e.trim_end_matches('/').to_owned())
                .collect(),
            http,
            history: Mutex::new(VecDeque::new()),
        }
    }

    /// The admin endpoints.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Scrapes every endpoint and sums them. Fails if any endpoint fails:
    /// a partial sum would look like a drop in traffic.
    pub async fn fetch(&self) -> Result<Snapshot, String> {
        if self.endpoints.is_empty() {
            return Err("no Envoy admin endpoints configured (--envoy-admin)".into());
        }
        let mut total = Snapshot::default();
        for endpoint in &self.endpoints {
            let request =
                HttpRequest::get(&format!("{endpoint}{ADMIN_STATS_PATH}")).timeout(SCRAPE_TIMEOUT);
            let response = self
                .http
                .send(request)
                .await
                .map_err(|err| format!("Envoy admin {endpoint}: {err}"))?;
            if !response.is_success() {
                return Err(format!(
                    "Envoy admin {endpoint} answered {}: {}",
                    response.status,
                    response.text_excerpt()
                ));
            }
            let text = String::from_utf8_lossy(&response.body);
            let snapshot = Snapshot::parse_admin_json(&text)
                .map_err(|err| format!("Envoy admin {endpoint}: {err}"))?;
            total.merge(&snapshot);
        }
        Ok(total)
    }

    /// Scrapes now and remembers the result.
    pub async fn scrape(&self, now: Timestamp) -> Result<(), String> {
        let snapshot = self.fetch().await?;
        self.remember(now, snapshot);
        Ok(())
    }

    fn remember(&self, now: Timestamp, snapshot: Snapshot) {
        if let Ok(mut history) = self.history.lock() {
            history.push_back((now, snapshot));
            while history
                .front()
                .is_some_and(|(taken, _)| now.since(*taken) > HISTORY && history.len() > 1)
            {
                history.pop_front();
            }
        }
    }

    /// The `weight_bp` gauges of the newest scrape, if one was taken at or
    /// after `since`.
    pub fn latest_weights(&self, since: Timestamp) -> Option<crate::applied::Weights> {
        let history = self.history.lock().ok()?;
        history
            .back()
            .filter(|(taken, _)| *taken >= since)
            .map(|(_, snapshot)| snapshot.weights.clone())
    }

    /// The newest scrape taken at or before `at`, else the oldest.
    fn baseline(&self, at: Timestamp, before: Timestamp) -> Option<(Timestamp, Snapshot)> {
        let history = self.history.lock().ok()?;
        history
            .iter()
            .rev()
            .find(|(taken, _)| *taken <= at)
            .or_else(|| history.front())
            .filter(|(taken, _)| *taken < before)
            .cloned()
    }

    /// Scrapes every `every` in the background, so a window baseline
    /// exists when a measurement comes due. Abort the returned task to stop.
    pub fn spawn_scraper(
        self: std::sync::Arc<Self>,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(err) = self.scrape(clock.now()).await {
                    tracing::debug!("scrape of Envoy's stats failed: {err}");
                }
            }
        })
    }

    /// Measures `query` over its window (or `default_window`) ending now.
    pub async fn measure(
        &self,
        query: &EnvoyQuery,
        names: VersionNames<'_>,
        now: Timestamp,
        default_window: Duration,
    ) -> MeasurementResult {
        let current = match self.fetch().await {
            Ok(snapshot) => snapshot,
            Err(err) => return MeasurementResult::error(err),
        };
        if query.quantity == EnvoyQuantity::ReadyRatio {
            return ready_ratio(&current, query.cluster.as_deref().unwrap_or_default());
        }
        let window = query.window.unwrap_or(default_window);
        let start = Timestamp::from_millis(now.millis().saturating_sub(window.as_millis() as u64));
        let baseline = self.baseline(start, now);
        self.remember(now, current.clone());
        let Some((taken, earlier)) = baseline else {
            return MeasurementResult::not_enough_data(
                "no earlier scrape of Envoy's stats to compare with yet",
            );
        };
        let elapsed = now.since(taken);
        let window_of = |version: &str| {
            VersionWindow::between(&earlier, &current, &query.route, version, elapsed)
        };
        match query.version {
            VersionSelector::Canary => single(query, &window_of(names.canary), names.canary),
            VersionSelector::Stable => single(query, &window_of(names.stable), names.stable),
            VersionSelector::Both => {
                let canary = single(query, &window_of(names.canary), names.canary);
                let stable = single(query, &window_of(names.stable), names.stable);
                match (canary, stable) {
                    (
                        MeasurementResult::Value {
                            value: c,
                            samples: cs,
                        },
                        MeasurementResult::Value {
                            value: s,
                            samples: ss,
                        },
                    ) => {
                        let map = [("canary".to_owned(), c), ("stable".to_owned(), s)]
                            .into_iter()
                            .collect();
                        let samples = match (cs, ss) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        MeasurementResult::Value {
                            value: MetricValue::Map(map),
                            samples,
                        }
                    }
                    (other, MeasurementResult::Value { .. }) | (_, other) => other,
                }
            }
        }
    }
}

/// Healthy hosts ÷ hosts of a cluster, now.
fn ready_ratio(snapshot: &Snapshot, cluster: &str) -> MeasurementResult {
    match snapshot.clusters.get(cluster) {
        None => MeasurementResult::error(format!(
            "Envoy has no cluster {cluster:?} (or it reports no membership stats)"
        )),
        Some(health) if health.total == 0 => {
            MeasurementResult::not_enough_data(format!("cluster {cluster} has no hosts"))
        }
        Some(health) => {
            MeasurementResult::sampled(health.healthy as f64 / health.total as f64, health.total)
        }
    }
}

/// One version's value for the query.
fn single(query: &EnvoyQuery, window: &VersionWindow, version: &str) -> MeasurementResult {
    let route = &query.route;
    let seconds = window.duration.as_secs_f64();
    let none = |what: &str| {
        MeasurementResult::not_enough_data(format!(
            "no {what} for {version} on route {route} in the last {seconds:.1}s"
        ))
    };
    match query.quantity {
        EnvoyQuantity::SuccessRate => match window.success_rate() {
            Some(rate) => MeasurementResult::sampled(rate, window.completed),
            None => none("completed requests"),
        },
        EnvoyQuantity::ErrorRate => match window.error_rate() {
            Some(rate) => MeasurementResult::sampled(rate, window.completed),
            None => none("completed requests"),
        },
        EnvoyQuantity::RequestRate => match window.request_rate() {
            Some(rate) => MeasurementResult::sampled(rate, window.requests),
            None => none("time elapsed"),
        },
        EnvoyQuantity::Latency { quantile } => match window.latency_ms(quantile) {
            Some(ms) => MeasurementResult::sampled(ms, window.latency.count()),
            None => {
                none("latency samples (histograms reach the admin endpoint at Envoy's stats flush)")
            }
        },
        EnvoyQuantity::ReadyRatio => {
            MeasurementResult::error("ready-ratio is not a traffic quantity")
        }
    }
}
