//! `canary run --rollout FILE`: runs a rollout until it ends (or, with
//! `--watch`, forever, starting a new rollout whenever the file names a new
//! canary version), serving the HTTP API meanwhile.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use canary_analysis::parse_duration;
use canary_api::{ApiState, Board, Limits, Readiness};
use canary_kube::{PluginObject, PluginPusher};
use canary_rollout::ports::SystemClock;
use canary_router::dry_run::DryRun;
use canary_router::ecds_file::EcdsFile;
use canary_router::{Observer, Router, Target};
use canary_sources::envoy::EnvoySource;
use canary_sources::http::HttpClient;
use canary_sources::kubernetes::KubernetesSource;
use canary_sources::Sources;
use canary_standalone::{RunConfig, RunOutcome, Shell, StateFile};
use tokio::sync::mpsc;
use tracing::{error, info};

use super::api_options::ApiOptions;

/// Arguments of `canary run`.
#[derive(Debug, clap::Args)]
pub struct Run {
    /// The rollout file (see `canary validate`).
    #[arg(long)]
    pub rollout: PathBuf,
    /// Where the rollout's position is persisted [default:
    /// .canary/<rollout file name>.state.json].
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Where configurations go: `ecds-file:PATH` (Envoy's file-based
    /// ECDS), `wasm-plugin:NAMESPACE/NAME` or
    /// `traffic-extension:NAMESPACE/NAME` (server-side apply of the Istio
    /// object's plugin configuration), `dry-run` (print only).
    #[arg(long, default_value = "dry-run")]
    pub push: String,
    /// ECDS resource name in the ECDS file.
    #[arg(long, default_value = "canary")]
    pub ecds_resource: String,
    /// The filter configuration (JSON) a dry run applies the rollout's
    /// splits to (the other targets hold their own).
    #[arg(long)]
    pub filter_config: Option<PathBuf>,
    /// An Envoy admin endpoint for the `envoy` provider (repeat for
    /// several; their stats are summed).
    #[arg(
        long = "envoy-admin",
        env = "CANARY_ENVOY_ADMIN",
        value_delimiter = ','
    )]
    pub envoy_admin: Vec<String>,
    /// Prometheus for templates that give no address.
    #[arg(long, env = "CANARY_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Use the Kubernetes API (in-cluster service account or kubeconfig)
    /// for the `kubernetes` provider and the Istio pushers.
    #[arg(long)]
    pub kubernetes: bool,
    /// Use the Kubernetes API at this URL instead of the environment's.
    #[arg(long, env = "CANARY_KUBE_URL")]
    pub kube_url: Option<String>,
    /// Namespace for `kubernetes` metrics that name none.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub api: ApiOptions,
    /// Keep running after the rollout ends; a new canary version in the
    /// rollout file starts a new rollout.
    #[arg(long)]
    pub watch: bool,
    /// How often Envoy's stats are scraped (window baselines, and what
    /// each Envoy shows of the split).
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
    pub scrape_interval: Duration,
    /// Write the API's bound address to this file once it listens (useful
    /// with `--listen 127.0.0.1:0`).
    #[arg(long)]
    pub address_file: Option<PathBuf>,
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// Exit code of a rollout that ended rolled back.
pub const EXIT_ABORTED: u8 = 3;

/// Exit code when stopped before every proxy showed a rollback or
/// promotion.
pub const EXIT_UNCONFIRMED: u8 = 4;

impl Run {
    /// Runs the controller.
    pub fn run(self) -> ExitCode {
        let Some(runtime) = super::runtime("canary run", super::Runtime::MultiThread) else {
            return ExitCode::FAILURE;
        };
        match runtime.block_on(self.serve()) {
            Ok(RunOutcome::Promoted | RunOutcome::Stopped) => ExitCode::SUCCESS,
            Ok(RunOutcome::Aborted) => ExitCode::from(EXIT_ABORTED),
            Ok(RunOutcome::StoppedUnconfirmed) => ExitCode::from(EXIT_UNCONFIRMED),
            Err(err) => {
                error!("{err}");
                eprintln!("canary run: {err}");
                ExitCode::FAILURE
            }
        }
    }

    async fn serve(self) -> Result<RunOutcome, String> {
        // Refuse an exposed API before anything else starts.
        let (token, tls) = self.api.security()?;
        let state_file = self
            .state
            .clone()
            .unwrap_or_else(|| default_state_file(&self.rollout));
        let holder = format!(
            "pid {} on {}, API {}",
            std::process::id(),
            hostname(),
            self.api.listen
        );
        let store = StateFile::lock(&state_file, &holder).map_err(|err| err.to_string())?;
        let kube = self.kube_client().await?;
        let http = HttpClient::new().map_err(|err| err.to_string())?;
        let envoy = (!self.envoy_admin.is_empty())
            .then(|| Arc::new(EnvoySource::new(self.envoy_admin.clone(), http.clone())));
        let clock = Arc::new(SystemClock);
        let scraper = envoy
            .clone()
            .map(|envoy| envoy.spawn_scraper(clock.clone(), self.scrape_interval));
        let sources = Sources {
            http,
            envoy: envoy.clone(),
            prometheus_url: self.prometheus_url.clone(),
            kubernetes: kube
                .clone()
                .map(|client| Arc::new(KubernetesSource::new(client, &self.namespace))),
        };
        let router = Router {
            target: self.target(kube)?,
            observer: match envoy {
                Some(source) => Observer::Envoy {
                    source,
                    every: self.scrape_interval,
                },
                None => Observer::None,
            },
        };
        let observed = router.observed();
        if !observed {
            info!("no --envoy-admin: nothing observes the proxies, so pushed splits are taken as in force (unverified)");
        }
        let board = Arc::new(Board::default());
        let (commands, receiver) = mpsc::channel(16);
        let api_state = ApiState {
            board: board.clone(),
            commands,
            token: Some(token),
            readiness: Readiness::SplitPushed,
            limits: Limits::default(),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let api = canary_api::serve(self.api.listen, api_state, tls)
            .await
            .map_err(|err| format!("cannot listen on {}: {err}", self.api.listen))?;
        let bound = api.addr;
        info!("API listening on {scheme}://{bound}");
        if let Some(path) = &self.address_file {
            std::fs::write(path, bound.to_string())
                .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        }
        let config = RunConfig {
            rollout_file: self.rollout.clone(),
            watch: self.watch,
            observe_every: self.scrape_interval,
        };
        let shell = Shell::new(
            config,
            Arc::new(router),
            Arc::new(sources),
            Box::new(store),
            board,
            clock,
            observed,
        );
        let outcome = shell
            .run(receiver, shutdown_signal())
            .await
            .map_err(|err| err.to_string());
        if let Some(scraper) = scraper {
            scraper.abort();
        }
        outcome
    }

    async fn kube_client(&self) -> Result<Option<kube::Client>, String> {
        if let Some(url) = &self.kube_url {
            return canary_kube::client_for_url(url)
                .map(Some)
                .map_err(|err| err.to_string());
        }
        let needed = self.kubernetes
            || self.push.starts_with("wasm-plugin:")
            || self.push.starts_with("traffic-extension:");
        if !needed {
            return Ok(None);
        }
        canary_kube::client_from_environment()
            .await
            .map(Some)
            .map_err(|err| err.to_string())
    }

    fn target(&self, kube: Option<kube::Client>) -> Result<Target, String> {
        if self.push == "dry-run" {
            let base = match &self.filter_config {
                Some(path) => read_filter_config(path)?,
                None => {
                    return Err(
                        "--push dry-run needs --filter-config: the filter configuration to apply the splits to".into(),
                    )
                }
            };
            return Ok(Target::DryRun(DryRun::default(), base));
        }
        if let Some(path) = self.push.strip_prefix("ecds-file:") {
            return Ok(Target::EcdsFile(EcdsFile::new(
                path,
                self.ecds_resource.clone(),
            )));
        }
        let plugin =
            |target: &str, make: fn(&str, &str) -> PluginObject| -> Result<Target, String> {
                let (namespace, name) = target
                    .split_once('/')
                    .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "--push {:?}: expected NAMESPACE/NAME after the kind",
                            self.push
                        )
                    })?;
                let client = kube
                    .clone()
                    .ok_or("the Istio pushers need the Kubernetes API")?;
                Ok(Target::Plugin(PluginPusher::new(
                    client,
                    make(namespace, name),
                )))
            };
        if let Some(target) = self.push.strip_prefix("wasm-plugin:") {
            return plugin(target, PluginObject::wasm_plugin);
        }
        if let Some(target) = self.push.strip_prefix("traffic-extension:") {
            return plugin(target, PluginObject::traffic_extension);
        }
        Err(format!(
            "--push {:?}: expected ecds-file:PATH, wasm-plugin:NAMESPACE/NAME, traffic-extension:NAMESPACE/NAME or dry-run",
            self.push
        ))
    }
}

fn read_filter_config(path: &Path) -> Result<canary_config::FilterConfig, String> {
    let text =
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let config =
        canary_config::parse_document(&text).map_err(|err| format!("{}: {err}", path.display()))?;
    canary_config::compile(&config).map_err(|err| format!("{}: {err}", path.display()))?;
    Ok(config)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "this host".into())
}

fn default_state_file(rollout: &Path) -> PathBuf {
    let name = rollout
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rollout".into());
    PathBuf::from(".canary").join(format!("{name}.state.json"))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
