//! `provider.envoy`: the canary filter's stats, read from one or more
//! Envoy admin endpoints (summed), as values of a window; and what each
//! Envoy shows of the split, for the standalone observer.
//!
//! A scraper reads every endpoint regularly and keeps a short history. A
//! measurement scrapes again and compares with the newest scrape at least
//! `window` old (or the oldest there is), never older than the moment the
//! split was seen in force, so its value covers only time under the split
//! it is judging.

mod judge;
pub mod stats;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_analysis::provider::{EnvoyQuantity, EnvoyQuery, VersionSelector};
use canary_analysis::{MeasurementResult, MetricValue, Timestamp};
use canary_config::stats_names::Metric;
use canary_rollout::driver::{Observation, ProxyState, RouteShows, Shows};
use canary_rollout::ports::{Clock, Versions};

use crate::http::{HttpClient, HttpRequest};
use stats::{Snapshot, VersionWindow, ADMIN_STATS_PATH};

/// How long scrapes are kept (the longest window a metric can ask for).
pub const HISTORY: Duration = Duration::from_secs(15 * 60);

/// Timeout of one admin request.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an Envoy admin endpoint could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    /// No endpoint is configured.
    #[error("no Envoy admin endpoints configured (--envoy-admin)")]
    NoEndpoints,
    /// The request failed.
    #[error("Envoy admin {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// It answered with an error status.
    #[error("Envoy admin {endpoint} answered {status}: {body}")]
    Status {
        /// The endpoint.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// The answer is not Envoy's stats.
    #[error("Envoy admin {endpoint}: {source}")]
    Unreadable {
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: stats::StatsParseError,
    },
}

/// One scrape: each endpoint's snapshot, or why it could not be read.
#[derive(Debug, Clone)]
struct Scrape {
    at: Timestamp,
    endpoints: Vec<Result<Snapshot, ScrapeError>>,
}

impl Scrape {
    /// Every endpoint summed; an error if any failed (a partial sum would
    /// look like a drop in traffic).
    fn total(&self) -> Result<Snapshot, ScrapeError> {
        let mut total = Snapshot::default();
        for endpoint in &self.endpoints {
            match endpoint {
                Ok(snapshot) => total.merge(snapshot),
                Err(error) => return Err(error.clone()),
            }
        }
        Ok(total)
    }
}

/// Envoy admin endpoints and their recent scrapes.
#[derive(Debug)]
pub struct EnvoySource {
    endpoints: Vec<String>,
    http: HttpClient,
    history: Mutex<VecDeque<Scrape>>,
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

    async fn fetch_one(&self, endpoint: &str) -> Result<Snapshot, ScrapeError> {
        let request =
            HttpRequest::get(&format!("{endpoint}{ADMIN_STATS_PATH}")).timeout(SCRAPE_TIMEOUT);
        let response = self
            .http
            .send(request)
            .await
            .map_err(|err| ScrapeError::Unreachable {
                endpoint: endpoint.to_owned(),
                reason: err.to_string(),
            })?;
        if !response.is_success() {
            return Err(ScrapeError::Status {
                endpoint: endpoint.to_owned(),
                status: response.status,
                body: response.text_excerpt(),
            });
        }
        let text = String::from_utf8_lossy(&response.body);
        Snapshot::parse_admin_json(&text).map_err(|source| ScrapeError::Unreadable {
            endpoint: endpoint.to_owned(),
            source,
        })
    }

    /// Reads every endpoint now and remembers what each answered.
    async fn scrape_at(&self, now: Timestamp) -> Scrape {
        let mut endpoints = Vec::with_capacity(self.endpoints.len());
        for endpoint in &self.endpoints {
            endpoints.push(self.fetch_one(endpoint).await);
        }
        let scrape = Scrape { at: now, endpoints };
        self.remember(scrape.clone());
        scrape
    }

    /// Scrapes now; an error if an endpoint could not be read.
    pub async fn scrape(&self, now: Timestamp) -> Result<(), ScrapeError> {
        if self.endpoints.is_empty() {
            return Err(ScrapeError::NoEndpoints);
        }
        self.scrape_at(now).await.total().map(|_| ())
    }

    fn remember(&self, scrape: Scrape) {
        if let Ok(mut history) = self.history.lock() {
            let now = scrape.at;
            history.push_back(scrape);
            while history
                .front()
                .is_some_and(|old| now.since(old.at) > HISTORY && history.len() > 1)
            {
                history.pop_front();
            }
        }
    }

    /// What every Envoy showed of the split at the newest scrape: each
    /// route's `weight_bp` gauges, or why an Envoy could not be read.
    pub fn observation(&self) -> Option<Observation> {
        let history = self.history.lock().ok()?;
        let scrape = history.back()?;
        let proxies = self
            .endpoints
            .iter()
            .zip(&scrape.endpoints)
            .map(|(endpoint, result)| ProxyState {
                proxy: endpoint.clone(),
                shows: match result {
                    Err(error) => Shows::Nothing(error.to_string()),
                    Ok(snapshot) => {
                        let mut routes: BTreeMap<String, RouteShows> = BTreeMap::new();
                        for (((route, version), metric), value) in &snapshot.gauges {
                            let shows = routes.entry(route.clone()).or_default();
                            match metric {
                                Metric::Weight => {
                                    shows.weights.insert(version.clone(), *value);
                                }
                                // The same value under each version.
                                Metric::Generation => shows.generation = Some(*value),
                                Metric::GuardTripped => shows.guard_tripped |= *value > 0,
                                _ => {}
                            }
                        }
                        Shows::Routes(routes)
                    }
                },
            })
            .collect();
        Some(Observation {
            at: scrape.at,
            proxies,
        })
    }

    /// The scrape to measure from: the newest taken at or before `start`
    /// and not before `floor`, else the oldest not before `floor`; always
    /// before `before`.
    fn baseline(
        &self,
        start: Timestamp,
        floor: Timestamp,
        before: Timestamp,
    ) -> Option<(Timestamp, Result<Snapshot, ScrapeError>)> {
        let history = self.history.lock().ok()?;
        let usable = || {
            history
                .iter()
                .filter(|scrape| scrape.at >= floor && scrape.at < before)
        };
        let chosen = usable()
            .rfind(|scrape| scrape.at <= start)
            .or_else(|| usable().next())?;
        Some((chosen.at, chosen.total()))
    }

    /// Scrapes every `every` in the background, so a window baseline and a
    /// fresh observation exist. Abort the returned task to stop.
    pub fn spawn_scraper(
        self: Arc<Self>,
        clock: Arc<dyn Clock>,
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

    /// Measures `query` over its window (or `default_window`) ending now,
    /// starting no earlier than `in_force_since` for the canary's traffic
    /// (`None`: the split is not seen in force yet, so no data).
    pub async fn measure(
        &self,
        query: &EnvoyQuery,
        names: Versions<'_>,
        now: Timestamp,
        default_window: Duration,
        in_force_since: Option<Timestamp>,
    ) -> MeasurementResult {
        if self.endpoints.is_empty() {
            return MeasurementResult::error(ScrapeError::NoEndpoints.to_string());
        }
        let current = match self.scrape_at(now).await.total() {
            Ok(snapshot) => snapshot,
            Err(err) => return MeasurementResult::error(err.to_string()),
        };
        if query.quantity == EnvoyQuantity::ReadyRatio {
            return ready_ratio(&current, query.cluster.as_deref().unwrap_or_default());
        }
        let Some(floor) = in_force_since else {
            return MeasurementResult::not_enough_data(
                "the split is not seen in force by every proxy yet",
            );
        };
        let window = query.window.unwrap_or(default_window);
        let start = Timestamp::from_millis(
            now.millis()
                .saturating_sub(u64::try_from(window.as_millis()).unwrap_or(u64::MAX)),
        );
        let Some((taken, earlier)) = self.baseline(start, floor, now) else {
            return MeasurementResult::not_enough_data(
                "no scrape of Envoy's stats since the split was seen in force to compare with yet",
            );
        };
        let earlier = match earlier {
            Ok(snapshot) => snapshot,
            Err(err) => return MeasurementResult::error(err.to_string()),
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
