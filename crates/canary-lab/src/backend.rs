//! An upstream that answers as one version, on loopback, with faults that
//! can be switched while it serves.
//!
//! - every request except the ones below: `200` with body `<version>\n` and
//!   header `x-served-by: <version>`, or a `503` when the error share says
//!   so; after the configured extra latency.
//! - `GET /healthz`: `200` while healthy, `503` otherwise (for Envoy's
//!   active health checks, which stand in for pod readiness).
//! - `GET /echo`: like any other request, but the body lists the request
//!   headers the backend received (`name: value` per line), so a test can
//!   see what Envoy forwarded.
//! - `GET /metrics`: Prometheus text with the backend's own counters and a
//!   CPU usage ratio a scenario can set (`canary_sim_cpu_usage_ratio`).
//!
//! - `GET /_sim/state`: the counters and fault settings as JSON.
//! - `PUT /_sim/faults`: change faults while serving, with a JSON object of
//!   any of `error_rate` (0–1), `latency_ms`, `healthy`, `cpu` (so a test
//!   can drive a backend that runs as its own process).
//!
//! Health checks, metric scrapes and `/_sim/` calls are not counted as
//! served requests.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Response header naming the version that answered.
pub const SERVED_BY_HEADER: &str = "x-served-by";

/// Live settings and counters, shared with the serving tasks.
#[derive(Debug)]
struct State {
    version: String,
    served: AtomicU64,
    served_errors: AtomicU64,
    health_checks: AtomicU64,
    /// Share of requests answered with 503, in parts per million.
    error_ppm: AtomicU32,
    extra_latency_us: AtomicU64,
    healthy: AtomicBool,
    /// Simulated CPU usage ratio, in parts per million of the limit.
    cpu_ppm: AtomicU32,
}

/// A running upstream. Dropping it stops the server.
#[derive(Debug)]
pub struct Backend {
    addr: SocketAddr,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Backend {
    /// Starts a backend for `version` on an ephemeral loopback port.
    pub async fn start(version: &str) -> io::Result<Backend> {
        Backend::start_on(version, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a backend for `version` on `addr`.
    pub async fn start_on(version: &str, addr: SocketAddr) -> io::Result<Backend> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            version: version.to_owned(),
            served: AtomicU64::new(0),
            served_errors: AtomicU64::new(0),
            health_checks: AtomicU64::new(0),
            error_ppm: AtomicU32::new(0),
            extra_latency_us: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            cpu_ppm: AtomicU32::new(200_000),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, state.clone(), stopped));
        Ok(Backend {
            addr,
            state,
            stop,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The version it answers as.
    pub fn version(&self) -> &str {
        &self.state.version
    }

    /// Answers this share of requests (0.0 to 1.0) with `503`.
    pub fn set_error_rate(&self, share: f64) {
        let ppm = (share.clamp(0.0, 1.0) * 1_000_000.0).round() as u32;
        self.state.error_ppm.store(ppm, Ordering::Relaxed);
    }

    /// Adds this much latency to every counted request.
    pub fn set_latency(&self, extra: Duration) {
        let micros = u64::try_from(extra.as_micros()).unwrap_or(u64::MAX);
        self.state.extra_latency_us.store(micros, Ordering::Relaxed);
    }

    /// Makes `/healthz` answer `200` (true) or `503` (false).
    pub fn set_healthy(&self, healthy: bool) {
        self.state.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Sets the CPU usage ratio `/metrics` reports (0.0 to any, 1.0 = at
    /// the limit).
    pub fn set_cpu_usage(&self, ratio: f64) {
        let ppm = (ratio.max(0.0) * 1_000_000.0)
            .round()
            .min(f64::from(u32::MAX)) as u32;
        self.state.cpu_ppm.store(ppm, Ordering::Relaxed);
    }

    /// Requests answered so far (health checks and scrapes excluded).
    pub fn served(&self) -> u64 {
        self.state.served.load(Ordering::Relaxed)
    }

    /// Requests answered with an injected `503` so far.
    pub fn served_errors(&self) -> u64 {
        self.state.served_errors.load(Ordering::Relaxed)
    }

    /// Health checks answered so far.
    pub fn health_checks(&self) -> u64 {
        self.state.health_checks.load(Ordering::Relaxed)
    }

    /// Stops listening and closes idle connections, keeping the counters
    /// readable: new connections are refused from now on.
    pub fn close(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops accepting, closes the listener and lets open connections
    /// finish their current request.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors or similar: back off briefly, keep serving.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(state.clone(), request));
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopped.changed() => connection.as_mut().graceful_shutdown(),
            }
        });
    }
}

async fn answer(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    match request.uri().path() {
        "/healthz" => {
            state.health_checks.fetch_add(1, Ordering::Relaxed);
            let status = if state.healthy.load(Ordering::Relaxed) {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Ok(reply(&state, status, Bytes::from_static(b"")))
        }
        "/metrics" => Ok(reply(
            &state,
            StatusCode::OK,
            Bytes::from(metrics_text(&state)),
        )),
        "/_sim/state" => Ok(json_reply(&state, StatusCode::OK, state_json(&state))),
        "/_sim/faults" if request.method() == hyper::Method::PUT => {
            let body = match request.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(err) => {
                    return Ok(json_reply(
                        &state,
                        StatusCode::BAD_REQUEST,
                        error_json(&err.to_string()),
                    ))
                }
            };
            match apply_faults(&state, &body) {
                Ok(()) => Ok(json_reply(&state, StatusCode::OK, state_json(&state))),
                Err(reason) => Ok(json_reply(
                    &state,
                    StatusCode::BAD_REQUEST,
                    error_json(&reason),
                )),
            }
        }
        _ => {
            let latency = state.extra_latency_us.load(Ordering::Relaxed);
            if latency > 0 {
                tokio::time::sleep(Duration::from_micros(latency)).await;
            }
            let error_ppm = state.error_ppm.load(Ordering::Relaxed);
            let fail =
                error_ppm >= 1_000_000 || (error_ppm > 0 && fastrand::u32(..1_000_000) < error_ppm);
            state.served.fetch_add(1, Ordering::Relaxed);
            if fail {
                state.served_errors.fetch_add(1, Ordering::Relaxed);
                Ok(reply(
                    &state,
                    StatusCode::SERVICE_UNAVAILABLE,
                    Bytes::from_static(b"injected failure\n"),
                ))
            } else if request.uri().path() == "/echo" {
                let mut body = String::new();
                for (name, value) in request.headers() {
                    body.push_str(name.as_str());
                    body.push_str(": ");
                    body.push_str(&String::from_utf8_lossy(value.as_bytes()));
                    body.push('\n');
                }
                Ok(reply(&state, StatusCode::OK, Bytes::from(body)))
            } else {
                Ok(reply(
                    &state,
                    StatusCode::OK,
                    Bytes::from(format!("{}\n", state.version)),
                ))
            }
        }
    }
}

fn reply(state: &State, status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(&state.version) {
        response.headers_mut().insert(SERVED_BY_HEADER, value);
    }
    response
}

fn json_reply(state: &State, status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = reply(state, status, Bytes::from(body.to_string()));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_json(reason: &str) -> serde_json::Value {
    serde_json::json!({ "error": reason })
}

fn state_json(state: &State) -> serde_json::Value {
    serde_json::json!({
        "version": state.version,
        "served": state.served.load(Ordering::Relaxed),
        "served_errors": state.served_errors.load(Ordering::Relaxed),
        "health_checks": state.health_checks.load(Ordering::Relaxed),
        "error_rate": f64::from(state.error_ppm.load(Ordering::Relaxed)) / 1_000_000.0,
        "latency_ms": state.extra_latency_us.load(Ordering::Relaxed) as f64 / 1_000.0,
        "healthy": state.healthy.load(Ordering::Relaxed),
        "cpu": f64::from(state.cpu_ppm.load(Ordering::Relaxed)) / 1_000_000.0,
    })
}

/// Faults a backend can be switched to over HTTP.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Share of requests answered with 503 (0–1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Added latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Whether `/healthz` passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// CPU usage ratio reported on `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
}

fn apply_faults(state: &State, body: &[u8]) -> Result<(), String> {
    let faults: Faults =
        serde_json::from_slice(body).map_err(|err| format!("invalid faults: {err}"))?;
    if let Some(rate) = faults.error_rate {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("error_rate must be between 0 and 1, got {rate}"));
        }
        state
            .error_ppm
            .store((rate * 1_000_000.0).round() as u32, Ordering::Relaxed);
    }
    if let Some(ms) = faults.latency_ms {
        if !(0.0..=600_000.0).contains(&ms) {
            return Err(format!("latency_ms must be between 0 and 600000, got {ms}"));
        }
        state
            .extra_latency_us
            .store((ms * 1_000.0).round() as u64, Ordering::Relaxed);
    }
    if let Some(healthy) = faults.healthy {
        state.healthy.store(healthy, Ordering::Relaxed);
    }
    if let Some(cpu) = faults.cpu {
        if !(0.0..=1_000.0).contains(&cpu) {
            return Err(format!("cpu must be between 0 and 1000, got {cpu}"));
        }
        state
            .cpu_ppm
            .store((cpu * 1_000_000.0).round() as u32, Ordering::Relaxed);
    }
    Ok(())
}

fn metrics_text(state: &State) -> String {
    let version = &state.version;
    let cpu = f64::from(state.cpu_ppm.load(Ordering::Relaxed)) / 1_000_000.0;
    let ready = u8::from(state.healthy.load(Ordering::Relaxed));
    format!(
        "# TYPE canary_sim_requests_total counter\n\
         canary_sim_requests_total{{version=\"{version}\"}} {}\n\
         # TYPE canary_sim_errors_total counter\n\
         canary_sim_errors_total{{version=\"{version}\"}} {}\n\
         # TYPE canary_sim_cpu_usage_ratio gauge\n\
         canary_sim_cpu_usage_ratio{{version=\"{version}\"}} {cpu}\n\
         # TYPE canary_sim_ready gauge\n\
         canary_sim_ready{{version=\"{version}\"}} {ready}\n",
        state.served.load(Ordering::Relaxed),
        state.served_errors.load(Ordering::Relaxed),
    )
}
