//! Load on loopback: a client for single requests and a constant-rate load
//! generator that records every request's outcome.
//!
//! A request *fails* when it gets no answer (connection refused, reset,
//! timeout) or a `5xx`. Each record keeps the time it was sent (relative to
//! the start), so a test can ask whether any request failed after a given
//! instant — for example after a rollback took effect.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::backend::SERVED_BY_HEADER;

/// Why a request could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid header {name}: {reason}")]
    BadHeader { name: String, reason: String },
    #[error("request to {target} failed: {reason}")]
    Request { target: SocketAddr, reason: String },
    #[error("request to {target} timed out after {timeout:?}")]
    Timeout {
        target: SocketAddr,
        timeout: Duration,
    },
}

/// What one request got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The `x-served-by` header: which version answered (absent for
    /// answers that did not come from a backend, e.g. Envoy's own 503).
    pub served_by: Option<String>,
    /// Every response header, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body as text (lossy).
    pub body: String,
}

impl Reply {
    /// Whether the request counts as failed (5xx).
    pub fn failed(&self) -> bool {
        self.status >= 500
    }

    /// A response header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A keep-alive HTTP/1.1 client aimed at one listener.
#[derive(Clone, Debug)]
pub struct Client {
    target: SocketAddr,
    host: String,
    timeout: Duration,
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// A client for `target`, sending `Host: <host>`.
    pub fn new(target: SocketAddr, host: &str) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Client {
            target,
            host: host.to_owned(),
            timeout: Duration::from_secs(10),
            inner,
        }
    }

    /// Sets the per-request timeout (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The listener this client talks to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// `PUT path` with a JSON body.
    pub async fn put_json(&self, path: &str, body: &str) -> Result<Reply, LoadError> {
        let mut request = self.request(hyper::Method::PUT, path, Bytes::from(body.to_owned()))?;
        request.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.send(request).await
    }

    /// `GET path` with extra headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Reply, LoadError> {
        let mut request = self.request(hyper::Method::GET, path, Bytes::new())?;
        let request_headers = request.headers_mut();
        for (name, value) in headers {
            let bad = |reason: String| LoadError::BadHeader {
                name: (*name).to_owned(),
                reason,
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(e.to_string()))?;
            let value =
                HeaderValue::from_bytes(value.as_bytes()).map_err(|e| bad(e.to_string()))?;
            request_headers.append(name, value);
        }
        self.send(request).await
    }

    /// A request to `path` on the target with this client's `Host`.
    fn request(
        &self,
        method: hyper::Method,
        path: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, LoadError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.target, path))
            .body(Full::new(body))
            .map_err(|err| LoadError::Request {
                target: self.target,
                reason: err.to_string(),
            })?;
        let host = HeaderValue::from_str(&self.host).map_err(|err| LoadError::BadHeader {
            name: "host".into(),
            reason: err.to_string(),
        })?;
        request.headers_mut().insert(HOST, host);
        Ok(request)
    }

    /// Sends `request` on the pooled connections and reads the whole
    /// answer, within the client's timeout.
    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Reply, LoadError> {
        let failed = |reason: String| LoadError::Request {
            target: self.target,
            reason,
        };
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|err| failed(error_chain(&err)))?;
            let status = response.status().as_u16();
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|err| failed(error_chain(&err)))?;
            let served_by = headers
                .iter()
                .find(|(n, _)| n == SERVED_BY_HEADER)
                .map(|(_, v)| v.clone());
            Ok(Reply {
                status,
                served_by,
                headers,
                body: String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| LoadError::Timeout {
                target: self.target,
                timeout: self.timeout,
            })?
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How one generated request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An answer arrived.
    Answered {
        /// HTTP status.
        status: u16,
        /// Which version answered, if a backend did.
        served_by: Option<String>,
    },
    /// No answer: the reason.
    NoAnswer(String),
}

/// One generated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When it was sent, from the generator's start.
    pub sent_at: Duration,
    /// How long until the answer (or the failure).
    pub latency: Duration,
    /// What happened.
    pub outcome: Outcome,
}

impl Record {
    /// No answer, or a 5xx.
    pub fn failed(&self) -> bool {
        match &self.outcome {
            Outcome::Answered { status, .. } => *status >= 500,
            Outcome::NoAnswer(_) => true,
        }
    }

    /// The version that answered, if any.
    pub fn served_by(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Answered { served_by, .. } => served_by.as_deref(),
            Outcome::NoAnswer(_) => None,
        }
    }
}

/// What the load generator sends.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Requests per second.
    pub rate: f64,
    /// Path of every request.
    pub path: String,
    /// Headers on every request.
    pub headers: Vec<(String, String)>,
    /// Most requests in flight at once; beyond it the generator waits.
    pub max_in_flight: usize,
}

impl LoadPlan {
    /// `rate` requests per second to `/`, at most 256 in flight.
    pub fn at_rate(rate: f64) -> LoadPlan {
        LoadPlan {
            rate,
            path: "/".into(),
            headers: Vec::new(),
            max_in_flight: 256,
        }
    }
}

/// A running load generator. Stop it with [`LoadGenerator::stop`].
#[derive(Debug)]
pub struct LoadGenerator {
    started: Instant,
    records: Arc<Mutex<Vec<Record>>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LoadGenerator {
    /// Starts sending `plan` through `client`.
    pub fn start(client: Client, plan: LoadPlan) -> LoadGenerator {
        let started = Instant::now();
        let records = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(generate(client, plan, started, records.clone(), stopped));
        LoadGenerator {
            started,
            records,
            stop,
            task,
        }
    }

    /// When the generator started (records' `sent_at` is relative to it).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// A copy of the records so far.
    pub fn snapshot(&self) -> Summary {
        Summary::of(self.records.lock().map(|r| r.clone()).unwrap_or_default())
    }

    /// Stops sending, waits for requests in flight, returns every record.
    pub async fn stop(self) -> Summary {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        Summary::of(self.records.lock().map(|r| r.clone()).unwrap_or_default())
    }
}

async fn generate(
    client: Client,
    plan: LoadPlan,
    started: Instant,
    records: Arc<Mutex<Vec<Record>>>,
    mut stopped: watch::Receiver<bool>,
) {
    let period = Duration::from_secs_f64(1.0 / plan.rate.max(0.001));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = Arc::new(Semaphore::new(plan.max_in_flight.max(1)));
    let headers: Arc<Vec<(String, String)>> = Arc::new(plan.headers);
    let path: Arc<str> = Arc::from(plan.path.as_str());
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.changed() => break,
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (client, records, headers, path) = (
            client.clone(),
            records.clone(),
            headers.clone(),
            path.clone(),
        );
        tokio::spawn(async move {
            let sent = Instant::now();
            let header_refs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let outcome = match client.get(&path, &header_refs).await {
                Ok(reply) => Outcome::Answered {
                    status: reply.status,
                    served_by: reply.served_by,
                },
                Err(err) => Outcome::NoAnswer(err.to_string()),
            };
            let record = Record {
                sent_at: sent.duration_since(started),
                latency: sent.elapsed(),
                outcome,
            };
            if let Ok(mut records) = records.lock() {
                records.push(record);
            }
            drop(permit);
        });
    }
    // Wait for everything in flight.
    let _ = in_flight
        .acquire_many(plan.max_in_flight.max(1) as u32)
        .await;
}

/// Every record of a run, with the usual questions answered.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Records in completion order.
    pub records: Vec<Record>,
}

impl Summary {
    fn of(mut records: Vec<Record>) -> Summary {
        records.sort_by_key(|r| r.sent_at);
        Summary { records }
    }

    /// Requests sent.
    pub fn total(&self) -> usize {
        self.records.len()
    }

    /// Requests that failed.
    pub fn failed(&self) -> usize {
        self.records.iter().filter(|r| r.failed()).count()
    }

    /// Failed requests sent at or after `from` (relative to the start).
    pub fn failed_since(&self, from: Duration) -> usize {
        self.records
            .iter()
            .filter(|r| r.sent_at >= from && r.failed())
            .count()
    }

    /// Answered requests per version that served them.
    pub fn by_version(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for record in &self.records {
            if let Some(version) = record.served_by() {
                *counts.entry(version.to_owned()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Answered requests per version among those sent in `[from, to)`.
    pub fn by_version_between(&self, from: Duration, to: Duration) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for record in self
            .records
            .iter()
            .filter(|r| r.sent_at >= from && r.sent_at < to)
        {
            if let Some(version) = record.served_by() {
                *counts.entry(version.to_owned()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// The latency below which `q` (0..=1) of answered requests fall.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        let mut latencies: Vec<Duration> = self
            .records
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Answered { .. }))
            .map(|r| r.latency)
            .collect();
        if latencies.is_empty() {
            return None;
        }
        latencies.sort();
        let rank = ((latencies.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        latencies.get(rank).copied()
    }
}
