//! The observer of a mesh: what the proxies of an Istio plugin object show
//! of the split, from Prometheus only, against the pods the object applies
//! to (from Kubernetes). See `canary_sources::mesh` for how a pod that
//! exports nothing, a pod not scraped yet and a terminating pod's last
//! series are told apart.
//!
//! Reading takes a few requests (the plugin object, the pods, three
//! queries), so it runs in the background: [`MeshObserver::latest`]
//! answers at once with the newest reading and starts the next one when
//! that is older than half a scrape interval. A command is never kept
//! waiting behind a slow Prometheus.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canary_kube::{PluginObject, PodReader};
use canary_rollout::driver::{Observation, ProxyState, Shows};
use canary_rollout::ports::Clock;
use canary_sources::mesh::{observation, MeshGauges};

/// Istio's default root namespace.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// Where a mesh observer looks.
#[derive(Debug, Clone)]
pub struct MeshSettings {
    /// The object carrying the filter.
    pub plugin: PluginObject,
    /// The rollout's route entries.
    pub routes: Vec<String>,
    /// The mesh's root namespace.
    pub root_namespace: String,
    /// Where the proxies of a root-namespace plugin run (its own
    /// namespace when empty).
    pub proxy_namespaces: Vec<String>,
    /// How often Prometheus scrapes the proxies (the scrape job's
    /// `scrape_interval`).
    pub scrape_interval: Duration,
}

struct Inner {
    settings: MeshSettings,
    proxies: PodReader,
    gauges: MeshGauges,
    clock: Arc<dyn Clock>,
    latest: Mutex<Option<Observation>>,
    started: Mutex<Option<Instant>>,
    reading: AtomicBool,
}

/// Reads a mesh's proxies through Prometheus. Cheap to clone.
#[derive(Clone)]
pub struct MeshObserver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MeshObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshObserver")
            .field("settings", &self.inner.settings)
            .field("prometheus", &self.inner.gauges.address())
            .finish()
    }
}

impl MeshObserver {
    /// An observer of `settings.plugin`'s proxies, reading pods through
    /// `proxies` and gauges through `gauges`.
    pub fn new(
        settings: MeshSettings,
        proxies: PodReader,
        gauges: MeshGauges,
        clock: Arc<dyn Clock>,
    ) -> MeshObserver {
        MeshObserver {
            inner: Arc::new(Inner {
                settings,
                proxies,
                gauges,
                clock,
                latest: Mutex::new(None),
                started: Mutex::new(None),
                reading: AtomicBool::new(false),
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &MeshSettings {
        &self.inner.settings
    }

    /// How long a split may take to show: istiod's push, up to a scrape
    /// interval until Prometheus has it, and many missed scrapes before
    /// the split counts as lost; at least a minute.
    pub fn verify_deadline(&self) -> Duration {
        Duration::from_secs(60).max(self.inner.settings.scrape_interval * 10)
    }

    /// Reads everything now: the plugin's pods, then Prometheus. A failure
    /// to read either is an observation whose one entry says why (the
    /// split is then not in force).
    pub async fn read(&self) -> Observation {
        let inner = &self.inner;
        let settings = &inner.settings;
        let now = inner.clock.now();
        let failed = |proxy: String, why: String| Observation {
            at: now,
            proxies: vec![ProxyState {
                proxy,
                shows: Shows::Nothing(why),
            }],
        };
        let pods = match inner
            .proxies
            .proxies(
                &settings.plugin,
                &settings.root_namespace,
                &settings.proxy_namespaces,
            )
            .await
        {
            Ok(pods) => pods,
            Err(error) => {
                return failed(
                    format!("the proxies of {}", settings.plugin),
                    format!("cannot tell which pods carry the filter: {error}"),
                )
            }
        };
        let mut namespaces: Vec<String> = pods.iter().map(|p| p.namespace.clone()).collect();
        namespaces.sort();
        namespaces.dedup();
        if namespaces.is_empty() {
            return Observation {
                at: now,
                proxies: Vec::new(),
            };
        }
        match inner.gauges.read(&settings.routes, &namespaces).await {
            Ok(reading) => observation(&pods, &reading, now),
            Err(error) => failed(
                format!("Prometheus at {}", inner.gauges.address()),
                format!("waiting: cannot read the filter's gauges: {error}"),
            ),
        }
    }

    /// The newest reading, if any; starts the next one in the background
    /// when none is running and the newest is older than half a scrape
    /// interval (at least 500 ms).
    pub fn latest(&self) -> Option<Observation> {
        let every = (self.inner.settings.scrape_interval / 2).max(Duration::from_millis(500));
        let due = self
            .inner
            .started
            .lock()
            .map(|started| started.is_none_or(|at| at.elapsed() >= every))
            .unwrap_or(true);
        if due && !self.inner.reading.swap(true, Ordering::AcqRel) {
            if let Ok(mut started) = self.inner.started.lock() {
                *started = Some(Instant::now());
            }
            let observer = self.clone();
            tokio::spawn(async move {
                let observation = observer.read().await;
                if let Ok(mut latest) = observer.inner.latest.lock() {
                    *latest = Some(observation);
                }
                observer.inner.reading.store(false, Ordering::Release);
            });
        }
        self.inner
            .latest
            .lock()
            .ok()
            .and_then(|latest| latest.clone())
    }
}
