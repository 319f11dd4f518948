//! `canary operator`: reconcile `CanaryRollout` objects in a cluster.
//! `canary crd`: print the CustomResourceDefinition.
//! `canary oci`: write the filter module as an OCI image layout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use canary_analysis::parse_duration;
use canary_api::{ApiState, Readiness};
use canary_operator::events::EventRecorder;
use canary_operator::leader::LeaseSettings;
use canary_operator::operator::{run, OperatorSettings, WatchScope};
use canary_operator::reconcile::{ClusterEdges, Context, MeshWatch};
use canary_rollout::ports::{Clock, SystemClock};
use canary_router::Observer;
use canary_sources::envoy::EnvoySource;
use canary_sources::http::HttpClient;
use canary_sources::mesh::MeshGauges;
use canary_sources::Sources as Providers;
use tracing::{error, info};

use super::run::shutdown_signal;

/// Arguments of `canary operator`.
#[derive(Debug, clap::Args)]
pub struct Operator {
    /// Reconcile the rollouts of this namespace only [default: every
    /// namespace].
    #[arg(long, env = "CANARY_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Use the Kubernetes API at this URL instead of the environment's
    /// (in-cluster service account or kubeconfig).
    #[arg(long, env = "CANARY_KUBE_URL")]
    pub kube_url: Option<String>,
    /// Prometheus for templates that give no address.
    #[arg(long, env = "CANARY_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// An Envoy admin endpoint for the `envoy` provider, e.g. the gateway
    /// beside which the controller runs as a sidecar
    /// (`http://127.0.0.1:15000`); repeat for several.
    #[arg(
        long = "envoy-admin",
        env = "CANARY_ENVOY_ADMIN",
        value_delimiter = ','
    )]
    pub envoy_admin: Vec<String>,
    /// How often Envoy's stats are scraped (window baselines).
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
    pub scrape_interval: Duration,
    /// Read what the mesh's proxies apply from this Prometheus (the one
    /// scraping them with the shipped job), against the pods each
    /// rollout's Istio object applies to; takes precedence over
    /// --envoy-admin for observing. See docs/install-istio.md.
    #[arg(long, env = "CANARY_MESH_PROMETHEUS")]
    pub mesh_prometheus: Option<String>,
    /// The scrape interval of the proxies' job in --mesh-prometheus.
    #[arg(long, default_value = "15s", value_parser = parse_duration_arg)]
    pub mesh_scrape_interval: Duration,
    /// Istio's root namespace.
    #[arg(long, default_value = canary_router::mesh::DEFAULT_ROOT_NAMESPACE)]
    pub mesh_root_namespace: String,
    /// Where the proxies of a root-namespace Istio object run (a gateway's
    /// namespace); repeat for several. The controller needs `list pods`
    /// there.
    #[arg(long = "mesh-proxy-namespace", value_delimiter = ',')]
    pub mesh_proxy_namespaces: Vec<String>,
    /// Run without leader election: only ever one replica.
    #[arg(long)]
    pub no_leader_election: bool,
    /// Namespace of the leader lease (the controller's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "canary-system")]
    pub lease_namespace: String,
    /// Name of the leader lease.
    #[arg(long, default_value = "canary-controller")]
    pub lease_name: String,
    #[command(flatten)]
    pub api: super::api_options::ApiOptions,
    /// This instance's identity in the lease and in Events [default: the
    /// pod's name, $POD_NAME, else the host name].
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

impl Operator {
    /// Runs the operator until a signal, or until it loses the lease.
    pub fn run(self) -> ExitCode {
        let Some(runtime) = super::runtime("canary operator", super::Runtime::MultiThread) else {
            return ExitCode::FAILURE;
        };
        match runtime.block_on(self.serve()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                error!("{err}");
                eprintln!("canary operator: {err}");
                ExitCode::FAILURE
            }
        }
    }

    async fn serve(self) -> Result<(), String> {
        canary_kube::install_crypto_provider();
        let client = match &self.kube_url {
            Some(url) => canary_kube::client_for_url(url),
            None => canary_kube::client_from_environment().await,
        }
        .map_err(|err| err.to_string())?;
        let identity = self.identity.clone().unwrap_or_else(default_identity);
        let http = HttpClient::new().map_err(|err| err.to_string())?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let envoy = (!self.envoy_admin.is_empty())
            .then(|| Arc::new(EnvoySource::new(self.envoy_admin.clone(), http.clone())));
        if let Some(envoy) = &envoy {
            Arc::clone(envoy).spawn_scraper(Arc::clone(&clock), self.scrape_interval);
        }
        // In a mesh the proxies are read from Prometheus (--mesh-prometheus);
        // beside a gateway, from its Envoy; otherwise nothing observes them
        // and status says the split is unverified.
        let observer = match &envoy {
            Some(source) => Observer::Envoy {
                source: Arc::clone(source),
                every: self.scrape_interval,
            },
            None => Observer::None,
        };
        let mesh = self.mesh_prometheus.as_deref().map(|address| MeshWatch {
            gauges: MeshGauges::new(http.clone(), address),
            root_namespace: self.mesh_root_namespace.clone(),
            proxy_namespaces: self.mesh_proxy_namespaces.clone(),
            scrape_interval: self.mesh_scrape_interval,
            clock: Arc::clone(&clock),
        });
        match (&mesh, &envoy) {
            (Some(_), _) => info!("the proxies are read from Prometheus (--mesh-prometheus)"),
            (None, Some(_)) => info!("the proxies are read from --envoy-admin"),
            (None, None) => info!(
                "neither --mesh-prometheus nor --envoy-admin: nothing observes the proxies, so pushed splits are taken as in force (unverified)"
            ),
        }
        let sources = Providers {
            http,
            envoy,
            prometheus_url: self.prometheus_url.clone(),
            kubernetes: None,
        };
        let mut edges = ClusterEdges::new(client.clone(), sources, observer);
        if let Some(mesh) = mesh {
            edges = edges.with_mesh(mesh);
        }
        let edges = Arc::new(edges);
        let events = EventRecorder::new(client.clone(), &identity);
        let context = Arc::new(Context::new(client, edges, clock, events));
        let (token, tls) = self.api.security()?;
        let (commands, mut requests) = tokio::sync::mpsc::channel(16);
        let api_state = ApiState {
            board: Arc::clone(&context.board),
            commands,
            token: Some(token),
            readiness: Readiness::Serving,
            limits: canary_api::Limits::default(),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let _api = canary_api::serve(self.api.listen, api_state, tls)
            .await
            .map_err(|err| format!("cannot listen on {}: {err}", self.api.listen))?;
        info!("API listening on {scheme}://{}", _api.addr);
        let forward = Arc::clone(&context);
        tokio::spawn(async move {
            while let Some(request) = requests.recv().await {
                forward.command(request);
            }
        });
        let settings = OperatorSettings {
            scope: match &self.watch_namespace {
                Some(namespace) => WatchScope::Namespace(namespace.clone()),
                None => WatchScope::AllNamespaces,
            },
            lease: (!self.no_leader_election)
                .then(|| LeaseSettings::new(&self.lease_namespace, &self.lease_name, &identity)),
        };
        info!(%identity, "canary operator starting");
        run(context, settings, shutdown_signal())
            .await
            .map_err(|err| err.to_string())
    }
}

/// The host name (a pod's name in Kubernetes), or a name from the pid.
fn default_identity() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("canary-operator-{}", std::process::id()))
}

/// Arguments of `canary crd`.
#[derive(Debug, clap::Args)]
pub struct Crd {}

impl Crd {
    /// Prints the CRD as YAML (`kubectl apply -f -` takes it).
    pub fn run(self) -> ExitCode {
        match canary_operator::resource::crd_yaml() {
            Ok(yaml) => {
                crate::cli::out(&yaml);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("canary crd: {err}");
                ExitCode::FAILURE
            }
        }
    }
}

/// Arguments of `canary oci`.
#[derive(Debug, clap::Args)]
pub struct Oci {
    /// The filter module (`make wasm` builds it).
    #[arg(
        long,
        default_value = "target/wasm32-wasip1/wasm-release/canary_filter.wasm"
    )]
    pub module: PathBuf,
    /// The OCI image layout folder to write.
    #[arg(long, default_value = "target/oci/canary-filter")]
    pub out: PathBuf,
    /// The tag recorded in the layout's index.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    pub tag: String,
}

impl Oci {
    /// Writes the layout and prints the manifest digest on standard output.
    pub fn run(self) -> ExitCode {
        match canary_oci::build(&self.module, &self.out, &self.tag) {
            Ok(image) => {
                crate::cli::out(&format!("{}\n", image.manifest.digest));
                eprintln!(
                    "canary oci: wrote {} (tag {}); pin it in a WasmPlugin with `sha256: {}`",
                    self.out.display(),
                    self.tag,
                    image.manifest.hex()
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("canary oci: {err}");
                ExitCode::FAILURE
            }
        }
    }
}
