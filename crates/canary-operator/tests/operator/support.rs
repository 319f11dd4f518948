//! A cluster for the operator: the stateful test API server with the
//! shipped CRD and RBAC, the Istio object from `manifests/istio`, two
//! Deployments, and the operator running as the controller's
//! ServiceAccount. The proxies are a fake fleet behind the real Istio
//! object (every push goes through the API server, then reaches the
//! fleet); metrics are fakes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_analysis::MeasurementResult;
use canary_kube::PluginPusher;
use canary_operator::events::EventRecorder;
use canary_operator::operator::{run_controller, WatchScope};
use canary_operator::reconcile::{Context, Edges, Timing};
use canary_operator::resource::CanaryRolloutStatus;
use canary_rollout::driver::{Observation, SplitPush};
use canary_rollout::fixtures::{FakeFleet, FakeMetrics};
use canary_rollout::ports::{
    BoxFuture, Clock, MetricSource, RouterError, SystemClock, TrafficRouter,
};
use canary_rollout::TrafficState;
use canary_router::Target;
use canary_test_apiserver::{crds, Identity, RecordedRequest, TestApiServer};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::{json, Value};

/// The controller's identity, as the shipped manifests bind it.
pub fn controller() -> Identity {
    Identity::service_account("canary-system", "canary-controller")
}

/// A path from the repository's root.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

/// The rollout `shop/web`: web-v1 → web-v2 through the WasmPlugin
/// `istio-system/canary` (manifests/istio/wasm-plugin.yaml).
pub fn rollout(steps: Value) -> Value {
    json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "target": {"kind": "WasmPlugin", "name": "canary", "namespace": "istio-system"},
            "stableWorkload": "web-v1",
            "canaryWorkload": "web-v2",
            "routes": ["web"],
            "stableVersion": "web-v1",
            "canaryVersion": "web-v2",
            "verifyDeadline": "3s",
            "steps": steps
        }
    })
}

/// The template `check`: one metric, `ready`, every 200 ms, twice.
pub fn template() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "check", "namespace": "shop"},
        "spec": {"metrics": [{
            "name": "ready",
            "interval": "200ms",
            "count": 2,
            "successCondition": "result >= 0.5",
            "provider": {"kubernetes": {"selector": "app=web,version=web-v2", "quantity": "ready-ratio"}}
        }]}
    })
}

/// A ready Deployment of the `web` app running `image`.
pub fn deployment(name: &str, image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web", "version": name}},
            "template": {
                "metadata": {"labels": {"app": "web", "version": name}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            }
        },
        "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                   "readyReplicas": replicas, "availableReplicas": replicas}
    })
}

/// Metrics that always pass.
pub fn healthy() -> FakeMetrics {
    FakeMetrics::new(|_, _, _| MeasurementResult::sampled(1.0, 10))
}

/// The fleet behind the real Istio object.
struct FleetRouter {
    target: Target,
    fleet: FakeFleet,
}

impl TrafficRouter for FleetRouter {
    fn describe(&self) -> String {
        self.target.describe()
    }

    fn set<'a>(
        &'a self,
        split: &'a SplitPush,
        routes: &'a [String],
    ) -> BoxFuture<'a, Result<Option<String>, RouterError>> {
        Box::pin(async move {
            let version = self
                .target
                .push(split, routes)
                .await
                .map_err(|e| RouterError(e.to_string()))?;
            self.fleet.set(split, routes).await?;
            Ok(version)
        })
    }

    fn observe(&self) -> BoxFuture<'_, Option<Observation>> {
        self.fleet.observe()
    }

    fn verify_deadline(&self) -> Duration {
        self.fleet.verify_deadline()
    }
}

/// Edges onto the fake fleet and fake metrics.
pub struct FleetEdges {
    pub fleet: FakeFleet,
    pub metrics: FakeMetrics,
}

impl Edges for FleetEdges {
    fn router(&self, target: PluginPusher, _routes: &[String]) -> Arc<dyn TrafficRouter> {
        Arc::new(FleetRouter {
            target: Target::Plugin(target),
            fleet: self.fleet.clone(),
        })
    }

    fn metrics(&self, _namespace: &str) -> Arc<dyn MetricSource> {
        Arc::new(self.metrics.clone())
    }
}

/// A cluster with the operator running.
pub struct Cluster {
    pub server: TestApiServer,
    pub admin: Client,
    pub fleet: FakeFleet,
    pub metrics: FakeMetrics,
    pub ctx: Arc<Context>,
    operator: Option<tokio::task::JoinHandle<()>>,
    /// Every status seen by [`Cluster::until`], in order.
    pub seen: Mutex<Vec<CanaryRolloutStatus>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(operator) = self.operator.take() {
            operator.abort();
        }
    }
}

/// The stored objects, without the operator.
pub async fn server() -> TestApiServer {
    canary_kube::install_crypto_provider();
    let server = TestApiServer::start()
        .await
        .expect("the test API server starts");
    server
        .load_yaml(crds::ISTIO_EXTENSIONS)
        .expect("Istio CRDs load");
    server
        .load_yaml(crds::ARGO_ANALYSIS)
        .expect("Argo CRDs load");
    for namespace in ["shop", "canary-system", "istio-system"] {
        server
            .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
            .expect("namespace");
    }
    server
        .load_files(&[
            repo_path("manifests/kubernetes/crd/crd.yaml"),
            repo_path("manifests/kubernetes/cluster-wide/cluster-role.yaml"),
            repo_path("manifests/kubernetes/controller/rbac.yaml"),
            repo_path("manifests/istio/wasm-plugin.yaml"),
        ])
        .expect("the shipped manifests load");
    for object in [
        deployment("web-v1", "web:1", 3),
        deployment("web-v2", "web:2", 2),
        template(),
    ] {
        server.seed(object).expect("seeded");
    }
    server
}

/// The operator's context, as the controller's ServiceAccount.
pub fn context(
    server: &TestApiServer,
    fleet: &FakeFleet,
    metrics: &FakeMetrics,
    instance: &str,
) -> Arc<Context> {
    let client = server.client(&controller()).expect("a client");
    let edges = Arc::new(FleetEdges {
        fleet: fleet.clone(),
        metrics: metrics.clone(),
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let events = EventRecorder::new(client.clone(), instance);
    let mut ctx = Context::new(client, edges, clock, events);
    ctx.timing = Timing {
        waiting: Duration::from_millis(100),
        running: Duration::from_millis(300),
        idle: Duration::from_millis(500),
    };
    Arc::new(ctx)
}

impl Cluster {
    /// A cluster with `rollout` created and the operator running, with
    /// `metrics` and two proxies.
    pub async fn start(rollout: Value, metrics: FakeMetrics) -> Cluster {
        let fleet =
            FakeFleet::new(&["web".to_owned()], "web-v1", 2).with_clock(Arc::new(SystemClock));
        Cluster::start_with(rollout, metrics, fleet).await
    }

    /// Like [`Cluster::start`], with a prepared fleet.
    pub async fn start_with(rollout: Value, metrics: FakeMetrics, fleet: FakeFleet) -> Cluster {
        Cluster::prepare(rollout, metrics, fleet).await.run()
    }

    /// The cluster with `rollout` created, the operator not started.
    pub async fn prepare(rollout: Value, metrics: FakeMetrics, fleet: FakeFleet) -> Cluster {
        let server = server().await;
        let admin = server.admin_client().expect("admin");
        let cluster = Cluster {
            ctx: context(&server, &fleet, &metrics, "canary-controller-0"),
            server,
            admin,
            fleet,
            metrics,
            operator: None,
            seen: Mutex::new(Vec::new()),
        };
        cluster.create(rollout).await;
        cluster
    }

    /// Starts the operator (no leader election).
    pub fn run(mut self) -> Cluster {
        let ctx = Arc::clone(&self.ctx);
        self.operator = Some(tokio::spawn(run_controller(
            ctx,
            WatchScope::Namespace("shop".into()),
        )));
        self
    }

    /// Creates `object` as the administrator.
    pub async fn create(&self, object: Value) {
        let api = rollouts(&self.admin);
        let object: DynamicObject = serde_json::from_value(object).expect("an object");
        api.create(&Default::default(), &object)
            .await
            .expect("the rollout is created");
    }

    /// The rollout's status.
    pub fn status(&self) -> CanaryRolloutStatus {
        self.server
            .object("canary.dev/v1alpha1", "CanaryRollout", "shop", "web")
            .and_then(|object| object.get("status").cloned())
            .map(|status| serde_json::from_value(status).expect("a status"))
            .unwrap_or_default()
    }

    /// Waits until the status satisfies `done`, failing after `limit`.
    pub async fn until(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&CanaryRolloutStatus) -> bool,
    ) -> CanaryRolloutStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let status = self.status();
            {
                let mut seen = self.seen.lock().unwrap();
                if seen.last() != Some(&status) {
                    seen.push(status.clone());
                }
            }
            if done(&status) {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {what}; status: {}",
                serde_json::to_string_pretty(&status).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Gives the rollout `command` through its annotation.
    pub async fn command(&self, command: &str) {
        let patch = json!({"metadata": {"annotations": {"canary.dev/command": command}}});
        rollouts(&self.admin)
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotated");
    }

    /// The Istio object's filter configuration.
    pub fn plugin_config(&self) -> Value {
        self.server
            .object(
                "extensions.istio.io/v1alpha1",
                "WasmPlugin",
                "istio-system",
                "canary",
            )
            .expect("the WasmPlugin")["spec"]["pluginConfig"]
            .clone()
    }

    /// The split the Istio object holds for route `web`.
    pub fn split_in_object(&self) -> TrafficState {
        let text = self.plugin_config().to_string();
        let config = canary_config::parse_document(text.as_bytes()).expect("a valid configuration");
        TrafficState::from_config(&config, "web")
            .expect("route web")
            .0
    }

    /// The canary's weight in the Istio object, in percent.
    pub fn weight_in_object(&self) -> f64 {
        let split = self.split_in_object();
        if split.canary.as_deref() == Some("web-v2") {
            split.effective_weight().percent()
        } else {
            0.0
        }
    }

    /// A Deployment as stored.
    pub fn deployment(&self, name: &str) -> Value {
        self.server
            .object("apps/v1", "Deployment", "shop", name)
            .expect("the Deployment")
    }

    /// Waits until Deployment `name` satisfies `done`.
    pub async fn until_deployment(&self, name: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let deployment = self.deployment(name);
            if done(&deployment) {
                return deployment;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for Deployment {name}: {deployment:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Plays the Deployment controller: Deployment `name` reports every
    /// replica of its current template ready.
    pub fn mark_ready(&self, name: &str) {
        let mut deployment = self.deployment(name);
        let replicas = deployment["spec"]["replicas"].clone();
        deployment["status"] = json!({
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas
        });
        self.server.seed(deployment).expect("status stored");
    }

    /// The canary weights the fleet was sent, in percent, in order.
    pub fn pushes(&self) -> Vec<f64> {
        self.fleet
            .pushes()
            .iter()
            .map(|(_, split)| split.traffic.effective_weight().percent())
            .collect()
    }

    /// Every request the controller made, each allowed by the shipped
    /// RBAC.
    pub fn assert_every_call_allowed(&self) -> Vec<RecordedRequest> {
        let requests = self.server.requests_by(&controller());
        assert!(!requests.is_empty());
        for request in &requests {
            assert!(
                request.allowed() && request.code != 403,
                "{} was refused",
                request.describe()
            );
        }
        requests
    }
}

/// CanaryRollouts of `shop`.
pub fn rollouts(client: &Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("canary.dev", "v1alpha1", "CanaryRollout"),
        "canaryrollouts",
    );
    Api::namespaced_with(client.clone(), "shop", &resource)
}

/// The report's phase.
pub fn phase(status: &CanaryRolloutStatus) -> &str {
    status.phase.as_deref().unwrap_or("")
}

/// Whether the status has condition `type_` True.
pub fn has_condition(status: &CanaryRolloutStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The report's current step (0-based).
pub fn step(status: &CanaryRolloutStatus) -> usize {
    status.report.as_ref().map_or(0, |r| r.step)
}

/// The report's intended canary weight.
pub fn weight(status: &CanaryRolloutStatus) -> f64 {
    status
        .report
        .as_ref()
        .map_or(0.0, |r| r.traffic.canary_weight)
}
