//! How a rollout reaches the world: where its splits go and how its
//! proxies are read (a [`TrafficRouter`] onto its Istio object), and where
//! its measurements come from (a [`MetricSource`]). [`ClusterEdges`] is the
//! one the operator runs with; tests give their own (a fake fleet of
//! proxies behind the real Istio object, fake metrics).
//!
//! Every router is wrapped in a [`Gate`]: one push at a time per Istio
//! object (rollouts sharing a `WasmPlugin` read, change and write it in
//! turn), and no split that reaches the canary while its Deployment is not
//! ready (the push fails, and the driver retries it with backoff).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_kube::{PluginPusher, PodReader};
use canary_rollout::driver::{Observation, SplitPush};
use canary_rollout::ports::{BoxFuture, Clock, MetricSource, RouterError, TrafficRouter};
use canary_router::mesh::{MeshObserver, MeshSettings};
use canary_router::{Observer, Router, Target};
use canary_sources::kubernetes::KubernetesSource;
use canary_sources::mesh::MeshGauges;
use canary_sources::Sources;
use kube::Client;

use crate::workload::plan::reaches;

/// Where a rollout's pushes, observations and measurements go.
pub trait Edges: Send + Sync {
    /// The router of a rollout writing the split of `routes` to `target`.
    fn router(&self, target: PluginPusher, routes: &[String]) -> Arc<dyn TrafficRouter>;
    /// The metric source of a rollout in `namespace`.
    fn metrics(&self, namespace: &str) -> Arc<dyn MetricSource>;
}

/// The cluster's: server-side apply onto the Istio object, the proxies
/// read by `observer`, metrics from `sources` and the Kubernetes API
/// (reading the rollout's namespace by default).
pub struct ClusterEdges {
    client: Client,
    sources: Sources,
    observer: Observer,
    mesh: Option<MeshWatch>,
}

/// How the proxies of a mesh are read: from the Prometheus that scrapes
/// them, against the pods each rollout's Istio object applies to.
pub struct MeshWatch {
    /// The Prometheus scraping the proxies.
    pub gauges: MeshGauges,
    /// Istio's root namespace.
    pub root_namespace: String,
    /// Where the proxies of a root-namespace object run.
    pub proxy_namespaces: Vec<String>,
    /// The scrape job's interval.
    pub scrape_interval: Duration,
    /// The operator's clock.
    pub clock: Arc<dyn Clock>,
}

impl ClusterEdges {
    /// Edges reaching the cluster through `client`; every rollout's
    /// proxies are read by `observer`.
    pub fn new(client: Client, sources: Sources, observer: Observer) -> ClusterEdges {
        ClusterEdges {
            client,
            sources,
            observer,
            mesh: None,
        }
    }

    /// Edges that read each rollout's proxies through `mesh` (one
    /// observer per rollout, for its Istio object and route entries).
    pub fn with_mesh(mut self, mesh: MeshWatch) -> ClusterEdges {
        self.mesh = Some(mesh);
        self
    }
}

impl Edges for ClusterEdges {
    fn router(&self, target: PluginPusher, routes: &[String]) -> Arc<dyn TrafficRouter> {
        let observer = match &self.mesh {
            Some(mesh) => Observer::Mesh(MeshObserver::new(
                MeshSettings {
                    plugin: target.object().clone(),
                    routes: routes.to_vec(),
                    root_namespace: mesh.root_namespace.clone(),
                    proxy_namespaces: mesh.proxy_namespaces.clone(),
                    scrape_interval: mesh.scrape_interval,
                },
                PodReader::new(self.client.clone()),
                mesh.gauges.clone(),
                Arc::clone(&mesh.clock),
            )),
            None => self.observer.clone(),
        };
        Arc::new(Router {
            target: Target::Plugin(target),
            observer,
        })
    }

    fn metrics(&self, namespace: &str) -> Arc<dyn MetricSource> {
        let kubernetes = KubernetesSource::new(self.client.clone(), namespace);
        Arc::new(self.sources.with_kubernetes(Arc::new(kubernetes)))
    }
}

/// One lock per Istio object.
#[derive(Debug, Default)]
pub struct PushLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PushLocks {
    fn of(&self, object: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(locks.entry(object.to_owned()).or_default())
    }
}

/// A rollout's router, gated: pushes to one object one at a time, and
/// none that reaches a canary whose Deployment is not ready.
pub struct Gate {
    inner: Arc<dyn TrafficRouter>,
    lock: Arc<tokio::sync::Mutex<()>>,
    canary_version: String,
    /// Why the canary Deployment cannot take traffic, while it cannot.
    not_ready: Mutex<Option<String>>,
}

impl Gate {
    /// `inner`, pushing under the lock of `object` in `locks`.
    pub fn new(
        inner: Arc<dyn TrafficRouter>,
        locks: &PushLocks,
        object: &str,
        canary_version: &str,
    ) -> Gate {
        Gate {
            inner,
            lock: locks.of(object),
            canary_version: canary_version.to_owned(),
            not_ready: Mutex::new(None),
        }
    }

    /// Whether the canary can take traffic: `None` when it can, else why
    /// not.
    pub fn canary_not_ready(&self, why: Option<String>) {
        *self
            .not_ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = why;
    }

    fn refusal(&self, split: &SplitPush) -> Option<String> {
        let not_ready = self
            .not_ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()?;
        reaches(&split.traffic, &self.canary_version)
            .then(|| format!("not sending {} to the canary: {not_ready}", split.traffic))
    }
}

impl TrafficRouter for Gate {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn set<'a>(
        &'a self,
        split: &'a SplitPush,
        routes: &'a [String],
    ) -> BoxFuture<'a, Result<Option<String>, RouterError>> {
        Box::pin(async move {
            if let Some(refused) = self.refusal(split) {
                return Err(RouterError(refused));
            }
            let _guard = self.lock.lock().await;
            self.inner.set(split, routes).await
        })
    }

    fn observe(&self) -> BoxFuture<'_, Option<Observation>> {
        self.inner.observe()
    }

    fn verify_deadline(&self) -> Duration {
        self.inner.verify_deadline()
    }
}
