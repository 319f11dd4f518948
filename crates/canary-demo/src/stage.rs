//! Everything the demo starts, and stopping it all again. Envoy is the only
//! child process; the upstreams, the load generator and the controller run
//! inside the demo. Dropping a [`Stage`] kills Envoy and removes every
//! temporary file, so an interrupted demo leaves nothing behind.

use std::sync::Arc;
use std::time::Duration;

use canary_api::{Board, CommandRequest};
use canary_config::stats_names::Metric;
use canary_lab::backend::Backend;
use canary_lab::envoy::{Delivery, Envoy, EnvoySpec};
use canary_lab::load::{Client, LoadGenerator, LoadPlan};
use canary_rollout::ports::SystemClock;
use canary_router::ecds_file::EcdsFile;
use canary_router::{Observer, Router, Target};
use canary_sources::envoy::EnvoySource;
use canary_sources::http::HttpClient;
use canary_sources::Sources;
use canary_standalone::{RunConfig, RunOutcome as Outcome, Shell, StateFile};
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::scenario::{filter_config, rollout_yaml, Timings};
use crate::view::{GuardView, ProxyGuard};

/// Requests per second the demo's load generator sends.
pub const RATE: f64 = 100.0;

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("cannot start the {what}: {reason}")]
    Start { what: &'static str, reason: String },
}

fn start_error(what: &'static str) -> impl Fn(String) -> StageError {
    move |reason| StageError::Start { what, reason }
}

/// The running demo.
pub struct Stage {
    /// Stable upstream, `v1`.
    pub stable: Backend,
    /// Canary upstream, `v2`.
    pub canary: Backend,
    /// Envoy with the filter.
    pub envoy: Envoy,
    /// Steady load through Envoy.
    pub load: Option<LoadGenerator>,
    /// What the controller publishes.
    pub board: Arc<Board>,
    /// The controller's task.
    pub controller: Option<JoinHandle<Result<Outcome, String>>>,
    /// Commands to the controller.
    pub commands: mpsc::Sender<CommandRequest>,
    stop_controller: Option<oneshot::Sender<()>>,
    /// Temporary files (rollout, state, Envoy's configuration and logs).
    /// Declared last so it is removed after everything that writes to it
    /// has been dropped.
    pub dir: TempDir,
}

/// How long a stopping controller gets to finish its current step.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Stage {
    /// Starts everything and the rollout.
    pub async fn start(timings: &Timings) -> Result<Stage, StageError> {
        let dir = tempfile::Builder::new()
            .prefix("canary-demo-")
            .tempdir()
            .map_err(|e| start_error("temporary folder")(e.to_string()))?;
        let stable = Backend::start("v1")
            .await
            .map_err(|e| start_error("stable upstream")(e.to_string()))?;
        let canary = Backend::start("v2")
            .await
            .map_err(|e| start_error("canary upstream")(e.to_string()))?;
        let mut spec = EnvoySpec::new(
            Delivery::Ecds,
            filter_config().to_string(),
            stable.addr(),
            canary.addr(),
        );
        spec.concurrency = 1;
        spec.health_check_interval = Some(timings.health_check);
        spec.stats_flush_interval = Some(Duration::from_millis(500));
        let envoy = Envoy::start(&spec)
            .await
            .map_err(|e| start_error("Envoy")(e.to_string()))?;
        let ecds = envoy
            .ecds_path()
            .ok_or_else(|| start_error("Envoy")("no ECDS file".into()))?
            .to_path_buf();

        let client =
            Client::new(envoy.listener(), "app.example.com").with_timeout(Duration::from_secs(5));
        let load = LoadGenerator::start(client, LoadPlan::at_rate(RATE));

        let rollout_file = dir.path().join("rollout.yaml");
        std::fs::write(&rollout_file, rollout_yaml(timings, canary.addr()))
            .map_err(|e| start_error("rollout file")(e.to_string()))?;
        let http = HttpClient::new().map_err(|e| start_error("HTTP client")(e.to_string()))?;
        let source = Arc::new(EnvoySource::new(
            vec![format!("http://{}", envoy.admin())],
            http.clone(),
        ));
        let clock = Arc::new(SystemClock);
        let scrape = Duration::from_millis(250);
        let scraper = Arc::clone(&source).spawn_scraper(clock.clone(), scrape);
        let sources = Sources {
            envoy: Some(Arc::clone(&source)),
            ..Sources::new(http)
        };
        let router = Router {
            target: Target::EcdsFile(EcdsFile::new(ecds, "canary")),
            observer: Observer::Envoy {
                source,
                every: scrape,
            },
        };
        let store = StateFile::lock(dir.path().join("state.json"), "canary demo")
            .map_err(|e| start_error("controller")(e.to_string()))?;
        let config = RunConfig {
            rollout_file,
            watch: false,
            observe_every: scrape,
        };
        let board = Arc::new(Board::default());
        let shell = Shell::new(
            config,
            Arc::new(router),
            Arc::new(sources),
            Box::new(store),
            board.clone(),
            clock,
            true,
        );
        let (commands, receiver) = mpsc::channel(4);
        let (stop_controller, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let outcome = shell
                .run(receiver, async move {
                    let _ = stopped.await;
                })
                .await
                .map_err(|e| e.to_string());
            scraper.abort();
            outcome
        });
        Ok(Stage {
            dir,
            stable,
            canary,
            envoy,
            load: Some(load),
            board,
            controller: Some(task),
            commands,
            stop_controller: Some(stop_controller),
        })
    }

    /// The guard of route `app` as Envoy shows it: its gauges, and the
    /// filter's log line once it tripped.
    pub async fn guard(&self) -> GuardView {
        let Ok(counters) = self.envoy.counters().await else {
            return GuardView::default();
        };
        let value = |metric: Metric| counters.get(&metric.envoy_name("app", "v2")).copied();
        let Some(tripped) = value(Metric::GuardTripped) else {
            return GuardView::default();
        };
        let percent = |metric: Metric| value(metric).unwrap_or(0) as f64 / 100.0;
        let proxy = ProxyGuard {
            proxy: format!("envoy {}", self.envoy.admin()),
            canary: "v2".into(),
            tripped: tripped > 0,
            effective_percent: percent(Metric::EffectiveWeight),
            configured_percent: percent(Metric::Weight),
        };
        let evidence = proxy
            .tripped
            .then(|| {
                let log = self.envoy.log();
                log.lines().rev().find_map(|line| {
                    line.split_once("canary: guard tripped")
                        .map(|(_, rest)| format!("guard tripped{rest}"))
                })
            })
            .flatten();
        GuardView {
            proxies: vec![proxy],
            evidence,
        }
    }

    /// Whether the controller has finished.
    pub fn controller_finished(&self) -> bool {
        self.controller.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the controller's outcome (asking it to stop first if
    /// `stop`).
    pub async fn controller_outcome(&mut self, stop: bool) -> Result<Outcome, String> {
        if stop {
            if let Some(stop) = self.stop_controller.take() {
                let _ = stop.send(());
            }
        }
        match self.controller.take() {
            Some(task) => task.await.map_err(|e| e.to_string())?,
            None => Err("the controller was already collected".into()),
        }
    }

    /// Stops everything in order and waits for it: the controller first
    /// (so it writes nothing more into the temporary folder), then the
    /// load, then Envoy; the folder goes last. Used on Ctrl-C, where
    /// dropping alone could race a state write still in flight on another
    /// worker thread.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop_controller.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.controller.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
                // Awaiting an aborted task returns once it no longer runs.
                let _ = task.await;
            }
        }
        if let Some(load) = self.load.take() {
            load.stop().await;
        }
        self.envoy.kill();
    }

    /// Stops the load and returns what it recorded.
    pub async fn stop_load(&mut self) -> canary_lab::load::Summary {
        match self.load.take() {
            Some(load) => load.stop().await,
            None => canary_lab::load::Summary::default(),
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some(stop) = self.stop_controller.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.controller.take() {
            task.abort();
        }
        // Envoy (the only child process) is killed by its own Drop, the
        // temporary folder removed by TempDir's.
    }
}
