//! A real Envoy on loopback, started from the bootstraps the project ships
//! (`manifests/envoy/standalone.yaml`, `manifests/envoy/ecds.yaml`), with
//! only what must differ per run changed: ephemeral ports, the upstream
//! addresses, the module's path, the filter configuration, and optional
//! active health checks. Each instance gets its own temporary folder and a
//! dynamic `--base-id`, so any number can run side by side.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use canary_config::ecds::WasmPlugin;

use crate::load::Client;
use crate::paths;

/// The shipped bootstrap with the filter configured inline.
pub const STANDALONE_BOOTSTRAP: &str = include_str!("../../../manifests/envoy/standalone.yaml");
/// The shipped bootstrap that takes the filter configuration over ECDS.
pub const ECDS_BOOTSTRAP: &str = include_str!("../../../manifests/envoy/ecds.yaml");

/// Name of the HTTP filter (and ECDS resource) in the shipped bootstraps.
pub const FILTER_NAME: &str = "canary";

/// Why Envoy could not be started or talked to.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    #[error("{0}")]
    NotInstalled(String),
    #[error("the shipped bootstrap does not have the expected shape: {0}")]
    Bootstrap(String),
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "Envoy did not become ready within {timeout:?}: {reason}\n--- envoy log (tail) ---\n{log}"
    )]
    NotReady {
        timeout: Duration,
        reason: String,
        log: String,
    },
    #[error("Envoy admin request {path} failed: {reason}")]
    Admin { path: String, reason: String },
    #[error("this Envoy takes its filter configuration inline; start it with Delivery::Ecds to push updates")]
    NotEcds,
    #[error("a request through Envoy's listener failed: {0}")]
    Listener(String),
    #[error("32 connections never reached all {0} of Envoy's workers")]
    WorkersUnreached(u32),
}

fn io_error(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> EnvoyError {
    let action = action.into();
    move |source| EnvoyError::Io { action, source }
}

/// How the filter receives its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Inline in the bootstrap (`standalone.yaml`).
    Inline,
    /// Over ECDS from a file (`ecds.yaml`), updatable while running.
    Ecds,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct EnvoySpec {
    /// Inline or ECDS.
    pub delivery: Delivery,
    /// The filter configuration's JSON text (may be deliberately invalid).
    pub filter_config: String,
    /// Stable cluster endpoints.
    pub stable: Vec<SocketAddr>,
    /// Canary cluster endpoints.
    pub canary: Vec<SocketAddr>,
    /// Worker threads (`--concurrency`).
    pub concurrency: u32,
    /// The filter module; `None` means the built one (see [`paths::filter_module`]).
    pub module: Option<PathBuf>,
    /// Active HTTP health checks on `/healthz` at this interval, if set.
    pub health_check_interval: Option<Duration>,
    /// How often Envoy merges histograms and flushes stats (`stats_flush_interval`).
    pub stats_flush_interval: Option<Duration>,
    /// Leave out the wasm filter entirely (a plain Envoy with the same routes).
    pub without_filter: bool,
    /// Replace the routes by Envoy's native `weighted_clusters` split with
    /// this canary percentage (used with `without_filter` as the baseline
    /// the filter is compared with).
    pub native_canary_percent: Option<u32>,
}

impl EnvoySpec {
    /// One stable and one canary endpoint, one worker, the built module.
    pub fn new(
        delivery: Delivery,
        filter_config: impl Into<String>,
        stable: SocketAddr,
        canary: SocketAddr,
    ) -> EnvoySpec {
        EnvoySpec {
            delivery,
            filter_config: filter_config.into(),
            stable: vec![stable],
            canary: vec![canary],
            concurrency: 1,
            module: None,
            health_check_interval: None,
            stats_flush_interval: None,
            without_filter: false,
            native_canary_percent: None,
        }
    }
}

/// What an ECDS push led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Envoy applied the new configuration.
    Applied,
    /// Envoy (or the filter) rejected it; the previous one keeps serving.
    Rejected,
}

/// A running Envoy. Dropping it kills the process.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    dir: TempDir,
    admin: SocketAddr,
    listener: SocketAddr,
    ecds_path: Option<PathBuf>,
    plugin: WasmPlugin,
    version: u64,
    admin_client: Client,
}

impl Envoy {
    /// Starts Envoy and waits until it serves (at most 30 s).
    pub async fn start(spec: &EnvoySpec) -> Result<Envoy, EnvoyError> {
        let binary = paths::envoy_binary().map_err(EnvoyError::NotInstalled)?;
        let module = match &spec.module {
            Some(module) => module.clone(),
            None => paths::filter_module().map_err(EnvoyError::NotInstalled)?,
        };
        let dir = tempfile::Builder::new()
            .prefix("canary-envoy-")
            .tempdir()
            .map_err(io_error("creating Envoy's temporary folder"))?;
        let plugin = WasmPlugin::local(&module.to_string_lossy());
        let ecds_path =
            (spec.delivery == Delivery::Ecds).then(|| dir.path().join("canary-filter.ecds.yaml"));
        if let Some(path) = &ecds_path {
            let document = plugin.ecds_document_raw(&spec.filter_config, "1");
            write_json(path, &document)?;
        }
        let bootstrap = render_bootstrap(spec, &plugin, ecds_path.as_deref())?;
        let bootstrap_path = dir.path().join("bootstrap.json");
        write_json(&bootstrap_path, &bootstrap)?;

        let admin_path = dir.path().join("admin-address");
        let log_path = dir.path().join("envoy.log");
        let log = fs::File::create(&log_path).map_err(io_error("creating Envoy's log file"))?;
        let log_err = log
            .try_clone()
            .map_err(io_error("creating Envoy's log file"))?;
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&bootstrap_path)
            .arg("--use-dynamic-base-id")
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--concurrency")
            .arg(spec.concurrency.to_string())
            .arg("--log-level")
            .arg("info")
            .arg("--drain-time-s")
            .arg("1")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io_error(format!("starting {}", binary.display())))?;

        let mut envoy = Envoy {
            child,
            dir,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            ecds_path,
            plugin,
            version: 1,
            admin_client: Client::new(SocketAddr::from(([127, 0, 0, 1], 0)), "admin"),
        };
        envoy
            .wait_ready(&admin_path, Duration::from_secs(30))
            .await?;
        if envoy.ecds_path.is_some() {
            // The listener serves (with a pass-through stand-in) before the
            // first ECDS file is read; wait until it has been applied or
            // rejected, so callers see the configuration they asked for.
            envoy.wait_first_ecds(Duration::from_secs(30)).await?;
        }
        Ok(envoy)
    }

    async fn wait_ready(&mut self, admin_path: &Path, timeout: Duration) -> Result<(), EnvoyError> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("admin address not written yet");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(timeout, format!("Envoy exited with {status}")));
            }
            if let Ok(text) = fs::read_to_string(admin_path) {
                if let Ok(admin) = text.trim().parse::<SocketAddr>() {
                    self.admin = admin;
                    self.admin_client =
                        Client::new(admin, "admin").with_timeout(Duration::from_secs(5));
                    match self.listener_address().await {
                        Ok(Some(listener)) => {
                            self.listener = listener;
                            return Ok(());
                        }
                        Ok(None) => last = "listener not bound yet".into(),
                        Err(err) => last = err.to_string(),
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(self.not_ready(timeout, last))
    }

    async fn wait_first_ecds(&self, timeout: Duration) -> Result<(), EnvoyError> {
        let deadline = Instant::now() + timeout;
        let prefix = format!("extension_config_discovery.http_filter.{FILTER_NAME}.");
        loop {
            let counters = self.counters().await?;
            let seen = ["update_success", "update_rejected"]
                .iter()
                .map(|c| counters.get(&format!("{prefix}{c}")).copied().unwrap_or(0))
                .sum::<u64>();
            if seen > 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(
                    timeout,
                    "the first ECDS configuration was never processed".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn not_ready(&self, timeout: Duration, reason: String) -> EnvoyError {
        EnvoyError::NotReady {
            timeout,
            reason,
            log: tail(&self.log(), 40),
        }
    }

    async fn listener_address(&self) -> Result<Option<SocketAddr>, EnvoyError> {
        let ready = self.admin_get("/ready").await?;
        if ready.trim() != "LIVE" {
            return Ok(None);
        }
        let text = self.admin_get("/listeners?format=json").await?;
        let value: Value = serde_json::from_str(&text).map_err(|err| EnvoyError::Admin {
            path: "/listeners".into(),
            reason: err.to_string(),
        })?;
        let port = value
            .pointer("/listener_statuses/0/local_address/socket_address/port_value")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        Ok(port.map(|port| SocketAddr::from(([127, 0, 0, 1], port))))
    }

    /// The ingress listener.
    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    /// The admin endpoint.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The ECDS file Envoy watches, when started with [`Delivery::Ecds`].
    pub fn ecds_path(&self) -> Option<&Path> {
        self.ecds_path.as_deref()
    }

    /// The filter's VM and module settings (what every push must repeat).
    pub fn plugin(&self) -> &WasmPlugin {
        &self.plugin
    }

    /// Everything Envoy logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET on the admin endpoint.
    pub async fn admin_get(&self, path: &str) -> Result<String, EnvoyError> {
        let reply = self
            .admin_client
            .get(path, &[])
            .await
            .map_err(|err| EnvoyError::Admin {
                path: path.into(),
                reason: err.to_string(),
            })?;
        if reply.status != 200 {
            return Err(EnvoyError::Admin {
                path: path.into(),
                reason: format!("status {}: {}", reply.status, reply.body.trim()),
            });
        }
        Ok(reply.body)
    }

    /// Every counter and gauge, by name.
    pub async fn counters(&self) -> Result<BTreeMap<String, u64>, EnvoyError> {
        let text = self.admin_get("/stats").await?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((name.to_owned(), value.trim().parse().ok()?))
            })
            .collect())
    }

    /// One counter (0 when absent).
    pub async fn counter(&self, name: &str) -> Result<u64, EnvoyError> {
        Ok(self.counters().await?.get(name).copied().unwrap_or(0))
    }

    /// The Prometheus exposition of `/stats/prometheus`.
    pub async fn prometheus(&self) -> Result<String, EnvoyError> {
        self.admin_get("/stats/prometheus").await
    }

    /// Writes a new filter configuration for ECDS (temporary file in the
    /// same folder, then rename: Envoy only notices a file moved into
    /// place). Returns at once; see [`Envoy::push_and_wait`].
    pub fn push(&mut self, filter_config: &str) -> Result<(), EnvoyError> {
        let path = self.ecds_path.clone().ok_or(EnvoyError::NotEcds)?;
        self.version += 1;
        let document = self
            .plugin
            .ecds_document_raw(filter_config, &self.version.to_string());
        let temp = path.with_extension(format!("tmp{}", self.version));
        write_json(&temp, &document)?;
        fs::rename(&temp, &path)
            .map_err(io_error(format!("renaming {} into place", temp.display())))
    }

    /// Pushes and waits (up to `timeout`) until Envoy counts the update as
    /// applied or rejected.
    pub async fn push_and_wait(
        &mut self,
        filter_config: &str,
        timeout: Duration,
    ) -> Result<PushOutcome, EnvoyError> {
        let success =
            format!("extension_config_discovery.http_filter.{FILTER_NAME}.update_success");
        let rejected =
            format!("extension_config_discovery.http_filter.{FILTER_NAME}.update_rejected");
        let before = self.counters().await?;
        let (s0, r0) = (
            before.get(&success).copied().unwrap_or(0),
            before.get(&rejected).copied().unwrap_or(0),
        );
        self.push(filter_config)?;
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.counters().await?;
            if now.get(&rejected).copied().unwrap_or(0) > r0 {
                return Ok(PushOutcome::Rejected);
            }
            if now.get(&success).copied().unwrap_or(0) > s0 {
                return Ok(PushOutcome::Applied);
            }
            if Instant::now() >= deadline {
                return Err(EnvoyError::Admin {
                    path: "/stats".into(),
                    reason: format!("neither {success} nor {rejected} moved within {timeout:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Clients for `host` (each with its own connection) until every one of
    /// Envoy's `workers` holds at least one of their connections, so load
    /// sent through all of them reaches every worker. Gives up after 32
    /// clients.
    pub async fn clients_on_every_worker(
        &self,
        host: &str,
        workers: u32,
    ) -> Result<Vec<Client>, EnvoyError> {
        let mut clients = Vec::new();
        while clients.len() < 32 {
            let client = Client::new(self.listener(), host);
            client
                .get("/", &[])
                .await
                .map_err(|e| EnvoyError::Listener(e.to_string()))?;
            clients.push(client);
            let counters = self.counters().await?;
            // `listener.<address>_<configured port>.worker_<w>.downstream_cx_active`
            let busy = (0..workers)
                .filter(|w| {
                    let suffix = format!(".worker_{w}.downstream_cx_active");
                    counters.iter().any(|(name, value)| {
                        name.starts_with("listener.127.0.0.1_")
                            && name.ends_with(&suffix)
                            && *value > 0
                    })
                })
                .count();
            if busy == workers as usize {
                return Ok(clients);
            }
        }
        Err(EnvoyError::WorkersUnreached(workers))
    }

    /// Kills Envoy now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.kill();
    }
}

fn write_json(path: &Path, value: &Value) -> Result<(), EnvoyError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    fs::write(path, text).map_err(io_error(format!("writing {}", path.display())))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The shipped bootstrap with this run's ports, upstreams, module and
/// filter configuration.
fn render_bootstrap(
    spec: &EnvoySpec,
    plugin: &WasmPlugin,
    ecds_path: Option<&Path>,
) -> Result<Value, EnvoyError> {
    let shipped = match spec.delivery {
        Delivery::Inline => STANDALONE_BOOTSTRAP,
        Delivery::Ecds => ECDS_BOOTSTRAP,
    };
    let mut bootstrap: Value = serde_yaml::from_str(shipped)
        .map_err(|err| EnvoyError::Bootstrap(format!("not YAML: {err}")))?;
    let shape = |what: &str| EnvoyError::Bootstrap(format!("missing {what}"));

    *bootstrap
        .pointer_mut("/admin/address/socket_address/port_value")
        .ok_or_else(|| shape("admin port"))? = json!(0);
    if let Some(interval) = spec.stats_flush_interval {
        bootstrap["stats_flush_interval"] = json!(format!("{}s", interval.as_secs_f64()));
    }
    let listener = bootstrap
        .pointer_mut("/static_resources/listeners/0")
        .ok_or_else(|| shape("listener"))?;
    *listener
        .pointer_mut("/address/socket_address/port_value")
        .ok_or_else(|| shape("listener port"))? = json!(0);
    if let Some(percent) = spec.native_canary_percent {
        let percent = percent.min(100);
        *listener
            .pointer_mut(
                "/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts/0/routes",
            )
            .ok_or_else(|| shape("routes"))? = json!([{
            "name": "split",
            "match": { "prefix": "/" },
            "route": { "weighted_clusters": { "clusters": [
                { "name": "stable", "weight": 100 - percent },
                { "name": "canary", "weight": percent }
            ]}}
        }]);
    }
    let filters = listener
        .pointer_mut("/filter_chains/0/filters/0/typed_config/http_filters")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| shape("http_filters"))?;
    let position = filters
        .iter()
        .position(|f| f.get("name").and_then(Value::as_str) == Some(FILTER_NAME))
        .ok_or_else(|| shape("the canary http filter"))?;
    if spec.without_filter {
        filters.remove(position);
    } else if let Some(filter) = filters.get_mut(position) {
        match ecds_path {
            Some(path) => {
                *filter
                    .pointer_mut("/config_discovery/config_source/path_config_source/path")
                    .ok_or_else(|| shape("config_discovery path"))? = json!(path.to_string_lossy());
            }
            None => filter["typed_config"] = plugin.typed_config_raw(&spec.filter_config),
        }
    }

    let clusters = bootstrap
        .pointer_mut("/static_resources/clusters")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| shape("clusters"))?;
    for cluster in clusters.iter_mut() {
        let name = cluster
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let endpoints = match name.as_str() {
            "stable" => &spec.stable,
            "canary" => &spec.canary,
            _ => continue,
        };
        let lb_endpoints: Vec<Value> = endpoints
            .iter()
            .map(|addr| {
                json!({ "endpoint": { "address": { "socket_address": {
                    "address": addr.ip().to_string(), "port_value": addr.port()
                }}}})
            })
            .collect();
        cluster["load_assignment"] =
            json!({ "cluster_name": name, "endpoints": [{ "lb_endpoints": lb_endpoints }] });
        if let Some(interval) = spec.health_check_interval {
            cluster["health_checks"] = json!([{
                "timeout": "1s",
                "interval": format!("{}s", interval.as_secs_f64()),
                "no_traffic_interval": format!("{}s", interval.as_secs_f64()),
                "unhealthy_threshold": 1,
                "healthy_threshold": 1,
                "http_health_check": { "path": "/healthz" }
            }]);
        }
    }
    Ok(bootstrap)
}
