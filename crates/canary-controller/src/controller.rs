//! The loop that runs one rollout: take due measurements, feed them to the
//! state machine, let time pass, obey commands, and after every decision
//! persist the new position and push the split to the proxies.
//!
//! Order matters for safety: the state is saved *before* a push, and the
//! split in force is pushed again on every start. A crash between the two
//! therefore re-pushes on restart; it never loses an abort and never
//! repeats a promotion.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use canary_analysis::{MeasurementResult, Timestamp};
use canary_config::FilterConfig;
use canary_rollout::{
    load_rollout, Command, Decision, Event, LoadedRollout, MeasurementKey, Phase, RecordError,
    Rollout, RolloutSpec,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::applied;
use crate::clock::Clock;
use crate::envoy_stats::VersionKey;
use crate::measure::Providers;
use crate::metrics::ControllerMetrics;
use crate::providers::envoy::VersionNames;
use crate::push::Pusher;
use crate::status::{self, AppliedView, PushView, StatusView};
use crate::store::{PushRecord, Saved, StateStore, StoreError, FORMAT};

/// Events kept for `/status` and the state file.
pub const EVENTS_KEPT: usize = 200;

/// How often a failed push is retried.
pub const PUSH_RETRY: Duration = Duration::from_secs(1);

/// How long the proxies may take to show a push before the controller
/// warns that they do not.
pub const APPLY_WARNING: Duration = Duration::from_secs(10);

/// How often the loop looks again while measurements are in flight.
pub const IN_FLIGHT_POLL: Duration = Duration::from_millis(100);

/// A measurement that has finished.
#[derive(Debug)]
struct Finished {
    key: MeasurementKey,
    metric: String,
    result: MeasurementResult,
}

/// How often the rollout file is checked in watch mode.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Why the controller could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("{0}")]
    Rollout(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the state file {path} belongs to rollout {saved} (canary {canary}) and cannot be resumed with the \
         rollout file as it is now: {reason}; move the state file away to start over"
    )]
    Restore {
        path: PathBuf,
        saved: String,
        canary: String,
        reason: String,
    },
    #[error("no base filter configuration: {0}")]
    NoBase(String),
    #[error("the rollout's split cannot be applied to the filter configuration: {0}")]
    Apply(String),
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The canary became stable.
    Promoted,
    /// Rolled back.
    Aborted,
    /// Asked to stop (signal); the position is saved.
    Stopped,
}

/// What the controller was told to run.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The rollout file.
    pub rollout_file: PathBuf,
    /// Where the position is persisted.
    pub state_file: PathBuf,
    /// Keep running after the rollout ends and start a new rollout when
    /// the rollout file names a new canary version.
    pub watch: bool,
    /// How often Envoy's stats are scraped for window baselines.
    pub scrape_interval: Duration,
    /// The filter configuration the split is applied to; read from the
    /// push target when absent.
    pub base_config: Option<FilterConfig>,
}

/// A command from the API, with where to send the answer.
pub type CommandRequest = (Command, oneshot::Sender<Result<StatusView, String>>);

/// What the API reads while the loop runs.
#[derive(Debug, Default)]
pub struct Shared {
    /// The latest status.
    pub status: RwLock<StatusView>,
    /// Counters for `/metrics`.
    pub metrics: ControllerMetrics,
}

impl Shared {
    /// A copy of the latest status.
    pub fn status(&self) -> StatusView {
        self.status.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether the split in force has reached the proxies.
    pub fn ready(&self) -> Result<(), String> {
        let status = self.status();
        if status.rollout.is_empty() {
            return Err("no rollout loaded yet".into());
        }
        if status.push.pending {
            return Err(format!(
                "the split in force is not pushed yet: {}",
                status
                    .push
                    .last_error
                    .as_deref()
                    .unwrap_or("push in progress")
            ));
        }
        Ok(())
    }
}

/// The running controller.
pub struct Controller {
    config: ControllerConfig,
    spec: Arc<RolloutSpec>,
    rollout: Rollout,
    rollout_text: String,
    base: FilterConfig,
    pusher: Pusher,
    providers: Providers,
    store: StateStore,
    events: VecDeque<Event>,
    pushed: Option<PushRecord>,
    push_view: PushView,
    applying: Option<Applying>,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
}

/// The last push, until the Envoys show it in effect.
struct Applying {
    /// The `weight_bp` gauge values it sets.
    expected: Vec<(VersionKey, u64)>,
    pushed_at: Timestamp,
    warned: bool,
}

/// Reads secrets for `valueFrom.secretKeyRef` args from the environment:
/// `CANARY_SECRET_<NAME>_<KEY>`, upper case, other characters as `_`.
pub fn secret_from_env(reference: &canary_analysis::SecretKeyRef) -> Option<String> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    std::env::var(format!(
        "CANARY_SECRET_{}_{}",
        clean(&reference.name),
        clean(&reference.key)
    ))
    .ok()
}

fn load(path: &std::path::Path) -> Result<(LoadedRollout, String), ControllerError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ControllerError::Rollout(format!("cannot read {}: {err}", path.display()))
    })?;
    let loaded = load_rollout(path, &secret_from_env)
        .map_err(|err| ControllerError::Rollout(err.to_string()))?;
    Ok((loaded, text))
}

impl Controller {
    /// Loads the rollout, restores or starts it, and pushes the split in
    /// force.
    pub async fn start(
        config: ControllerConfig,
        pusher: Pusher,
        providers: Providers,
        shared: Arc<Shared>,
        clock: Arc<dyn Clock>,
    ) -> Result<Controller, ControllerError> {
        let (loaded, rollout_text) = load(&config.rollout_file)?;
        let spec = Arc::new(loaded.spec);
        let base = match &config.base_config {
            Some(base) => base.clone(),
            None => pusher
                .current()
                .await
                .map_err(|err| ControllerError::NoBase(err.to_string()))?
                .ok_or_else(|| {
                    ControllerError::NoBase(format!(
                        "{} cannot tell its current configuration; pass --filter-config",
                        pusher.describe()
                    ))
                })?,
        };
        let store = StateStore::new(&config.state_file);
        let saved = store.load()?;
        let now = clock.now();
        let mut events = VecDeque::new();
        let mut pushed = None;
        let mut first_decision = None;
        let rollout = match saved {
            Some(saved)
                if saved.rollout == spec.name && saved.canary_version == spec.canary_version =>
            {
                let rollout = Rollout::restore(spec.clone(), saved.state).map_err(|err| {
                    ControllerError::Restore {
                        path: config.state_file.clone(),
                        saved: saved.rollout.clone(),
                        canary: saved.canary_version.clone(),
                        reason: err.to_string(),
                    }
                })?;
                info!(
                    rollout = %spec.name,
                    step = rollout.step(),
                    traffic = %rollout.traffic(),
                    "resuming from {}",
                    config.state_file.display()
                );
                events.extend(saved.events);
                pushed = saved.pushed;
                rollout
            }
            other => {
                if let Some(saved) = other {
                    info!(
                        rollout = %spec.name,
                        "state file {} is for {} (canary {}); starting a new rollout of canary {}",
                        config.state_file.display(),
                        saved.rollout,
                        saved.canary_version,
                        spec.canary_version
                    );
                }
                let (rollout, decision) = Rollout::start(spec.clone(), now);
                first_decision = Some(decision);
                rollout
            }
        };
        let push_view = PushView {
            target: pusher.describe(),
            last_version: pushed.as_ref().and_then(|p: &PushRecord| p.version.clone()),
            last_at: pushed.as_ref().map(|p| p.at.millis()),
            pending: true,
            ..PushView::default()
        };
        let mut controller = Controller {
            config,
            spec,
            rollout,
            rollout_text,
            base,
            pusher,
            providers,
            store,
            events,
            pushed,
            push_view,
            applying: None,
            shared,
            clock,
        };
        // The split must apply to the base before anything is pushed.
        controller
            .rollout
            .traffic()
            .apply(&controller.base, &controller.spec.routes)
            .map_err(|err| ControllerError::Apply(err.to_string()))?;
        if let Some(decision) = first_decision {
            controller.absorb(decision);
        }
        // Always push the split in force on start: idempotent, and it
        // covers a crash between saving and pushing.
        controller.settle(true).await?;
        Ok(controller)
    }

    /// The rollout's current phase.
    pub fn phase(&self) -> Phase {
        self.rollout.phase()
    }

    /// Runs until the rollout ends (or forever with `watch`), or until
    /// `shutdown` resolves.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<CommandRequest>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<Outcome, ControllerError> {
        tokio::pin!(shutdown);
        let scraper = self.spawn_scraper();
        // Measurements run as their own tasks and report here, so a slow
        // metrics source never delays a command (an abort is applied at
        // once) or another metric.
        let (results, mut finished) = mpsc::unbounded_channel::<Finished>();
        let mut in_flight: HashSet<MeasurementKey> = HashSet::new();
        let outcome = loop {
            self.start_due_measurements(&mut in_flight, &results);
            let decision = self.rollout.tick(self.clock.now());
            self.absorb(decision);
            self.settle(false).await?;
            self.check_applied();
            if !self.config.watch {
                match self.rollout.phase() {
                    Phase::Promoted => break Outcome::Promoted,
                    Phase::Aborted => break Outcome::Aborted,
                    _ => {}
                }
            }
            let wait = self.wait_time(!in_flight.is_empty());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                Some(done) = finished.recv() => {
                    in_flight.remove(&done.key);
                    self.record(done);
                }
                request = commands.recv() => {
                    if let Some((command, reply)) = request {
                        let answer = self.obey(command).await;
                        let _ = reply.send(answer);
                    }
                }
                _ = &mut shutdown => break Outcome::Stopped,
            }
            if self.config.watch {
                self.check_rollout_file().await;
            }
        };
        self.settle(false).await?;
        if outcome != Outcome::Stopped {
            // The last push (a rollback or the promotion) is the one that
            // matters most: wait until the Envoys show it, or until the
            // warning says they do not.
            while self.applying.as_ref().is_some_and(|a| !a.warned) {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.scrape_interval) => {}
                    _ = &mut shutdown => break,
                }
                self.check_applied();
            }
        }
        if let Some(scraper) = scraper {
            scraper.abort();
        }
        info!(rollout = %self.spec.name, outcome = ?outcome, traffic = %self.rollout.traffic(), "controller stopping");
        Ok(outcome)
    }

    fn spawn_scraper(&self) -> Option<tokio::task::JoinHandle<()>> {
        let envoy = self.providers.envoy.clone()?;
        Some(envoy.spawn_scraper(self.clock.clone(), self.config.scrape_interval))
    }

    /// How long to sleep: until the machine's next wake-up, sooner while a
    /// push is pending or the rollout file is watched. While measurements
    /// are in flight the machine may already consider them due; their
    /// results wake the loop, so it only looks again every 100 ms.
    fn wait_time(&self, measuring: bool) -> Duration {
        let now = self.clock.now();
        let mut wait = match self.rollout.next_wake() {
            Some(at) if at > now => at.since(now),
            Some(_) if measuring => IN_FLIGHT_POLL,
            Some(_) => Duration::ZERO,
            None => Duration::from_secs(3600),
        };
        if self.push_view.pending {
            wait = wait.min(PUSH_RETRY);
        }
        if self.applying.is_some() {
            wait = wait.min(self.config.scrape_interval);
        }
        if self.config.watch {
            wait = wait.min(WATCH_INTERVAL);
        }
        wait
    }

    /// Starts every due measurement that is not already running, each as
    /// its own task reporting to `results`.
    fn start_due_measurements(
        &mut self,
        in_flight: &mut HashSet<MeasurementKey>,
        results: &mpsc::UnboundedSender<Finished>,
    ) {
        let now = self.clock.now();
        for due in self.rollout.due_measurements(now) {
            if !in_flight.insert(due.key.clone()) {
                continue;
            }
            let providers = self.providers.clone();
            let metric = due.metric.clone();
            let key = due.key;
            let (stable, canary) = (
                self.spec.stable_version.clone(),
                self.spec.canary_version.clone(),
            );
            let results = results.clone();
            tokio::spawn(async move {
                let names = VersionNames {
                    stable: &stable,
                    canary: &canary,
                };
                let result = providers.measure(&metric, names, now).await;
                let _ = results.send(Finished {
                    key,
                    metric: metric.name,
                    result,
                });
            });
        }
    }

    /// Hands a finished measurement to the state machine.
    fn record(&mut self, done: Finished) {
        let Finished {
            key,
            metric,
            result,
        } = done;
        self.shared.metrics.measured(&metric, &result);
        match &result {
            MeasurementResult::Error(err) => {
                warn!(rollout = %self.spec.name, metric = %metric, "measurement error: {err}")
            }
            MeasurementResult::NotEnoughData(why) => {
                info!(rollout = %self.spec.name, metric = %metric, "not enough data: {why}")
            }
            MeasurementResult::Value { .. } => {}
        }
        match self.rollout.record(self.clock.now(), &key, &result) {
            Ok(decision) => self.absorb(decision),
            Err(RecordError::Stale(why)) => debug!("dropped a late measurement: {why}"),
            Err(err) => {
                warn!(rollout = %self.spec.name, metric = %metric, "measurement not recorded: {err}")
            }
        }
    }

    /// Applies a person's command.
    async fn obey(&mut self, command: Command) -> Result<StatusView, String> {
        let now = self.clock.now();
        match self.rollout.command(now, command) {
            Ok(decision) => {
                info!(rollout = %self.spec.name, %command, "command accepted");
                self.absorb(decision);
                self.settle(false).await.map_err(|err| err.to_string())?;
                Ok(self.shared.status())
            }
            Err(err) => {
                warn!(rollout = %self.spec.name, %command, "command refused: {}", err.reason);
                Err(err.to_string())
            }
        }
    }

    /// Takes in a decision: logs and keeps its events, marks a push due.
    fn absorb(&mut self, decision: Decision) {
        for event in decision.events {
            info!(
                rollout = %self.spec.name,
                event = ?event.kind,
                traffic = %decision.traffic,
                "{}",
                event.reason
            );
            self.shared.metrics.decided(event.kind);
            self.events.push_back(event);
            while self.events.len() > EVENTS_KEPT {
                self.events.pop_front();
            }
        }
        if decision.traffic_changed {
            self.push_view.pending = true;
        }
    }

    /// Saves the position, then pushes the split if one is due (or
    /// `force`), then saves the push record.
    async fn settle(&mut self, force: bool) -> Result<(), ControllerError> {
        self.save()?;
        if self.push_view.pending || force {
            self.push_view.pending = true;
            self.push_now().await;
            if !self.push_view.pending {
                self.save()?;
            }
        }
        self.publish();
        Ok(())
    }

    async fn push_now(&mut self) {
        let traffic = self.rollout.traffic().clone();
        let config = match traffic.apply(&self.base, &self.spec.routes) {
            Ok(config) => config,
            Err(err) => {
                error!(rollout = %self.spec.name, "cannot build the filter configuration for {traffic}: {err}");
                self.push_view.failures += 1;
                self.push_view.last_error = Some(err.to_string());
                self.shared.metrics.pushed(false);
                return;
            }
        };
        match self.pusher.push(&config).await {
            Ok(receipt) => {
                let now = self.clock.now();
                info!(
                    rollout = %self.spec.name,
                    traffic = %traffic,
                    version = receipt.version.as_deref().unwrap_or("-"),
                    "pushed to {}",
                    receipt.target
                );
                self.push_view.pushes += 1;
                self.push_view.pending = false;
                self.push_view.last_error = None;
                self.push_view.last_version = receipt.version.clone();
                self.push_view.last_at = Some(now.millis());
                if self.providers.envoy.is_some() {
                    self.applying = Some(Applying {
                        expected: applied::expected(&config, &self.spec.routes),
                        pushed_at: now,
                        warned: false,
                    });
                    self.push_view.applied = Some(AppliedView::default());
                }
                self.pushed = Some(PushRecord {
                    config,
                    version: receipt.version,
                    at: now,
                });
                self.shared.metrics.pushed(true);
            }
            Err(err) => {
                error!(rollout = %self.spec.name, traffic = %traffic, "push to {} failed: {err}", self.pusher.describe());
                self.push_view.failures += 1;
                self.push_view.last_error = Some(err.to_string());
                self.shared.metrics.pushed(false);
            }
        }
    }

    /// Compares the newest scrape of the Envoys' `weight_bp` gauges with
    /// the last push: logs and reports when they show it, warns once when
    /// they still do not after [`APPLY_WARNING`].
    fn check_applied(&mut self) {
        let (Some(applying), Some(envoy)) = (self.applying.as_mut(), self.providers.envoy.as_ref())
        else {
            return;
        };
        let now = self.clock.now();
        let seen = envoy
            .latest_weights(applying.pushed_at)
            .map(|weights| applied::check(&applying.expected, &weights, envoy.endpoints().len()));
        let view = match seen {
            Some(Ok(())) => {
                let after = now.since(applying.pushed_at);
                info!(
                    rollout = %self.spec.name,
                    traffic = %self.rollout.traffic(),
                    "every Envoy applies the pushed split ({} ms after the push)",
                    after.as_millis()
                );
                self.applying = None;
                AppliedView {
                    confirmed: true,
                    after_ms: Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX)),
                    differs: None,
                }
            }
            Some(Err(differs)) => AppliedView {
                confirmed: false,
                after_ms: None,
                differs: Some(differs),
            },
            None => AppliedView {
                confirmed: false,
                after_ms: None,
                differs: Some("no scrape of Envoy's stats since the push".to_owned()),
            },
        };
        if let Some(applying) = self.applying.as_mut() {
            if !applying.warned && now.since(applying.pushed_at) >= APPLY_WARNING {
                applying.warned = true;
                warn!(
                    rollout = %self.spec.name,
                    traffic = %self.rollout.traffic(),
                    "{} s after the push the Envoys do not show it in effect: {}",
                    APPLY_WARNING.as_secs(),
                    view.differs.as_deref().unwrap_or_default()
                );
            }
        }
        if self.push_view.applied.as_ref() != Some(&view) {
            self.push_view.applied = Some(view);
            self.publish();
        }
    }

    fn save(&self) -> Result<(), ControllerError> {
        let saved = Saved {
            format: FORMAT,
            rollout: self.spec.name.clone(),
            canary_version: self.spec.canary_version.clone(),
            state: self.rollout.state(),
            events: self.events.iter().cloned().collect(),
            pushed: self.pushed.clone(),
            saved_at: self.clock.now(),
        };
        self.store.save(&saved)?;
        Ok(())
    }

    fn publish(&self) {
        let events: Vec<Event> = self.events.iter().cloned().collect();
        let view = status::view(
            &self.rollout,
            &events,
            self.push_view.clone(),
            self.clock.now(),
        );
        self.shared.metrics.observe(&view);
        if let Ok(mut status) = self.shared.status.write() {
            *status = view;
        }
    }

    /// Watch mode: a rollout file that names a new canary version starts a
    /// new rollout from the first step.
    async fn check_rollout_file(&mut self) {
        let Ok(text) = std::fs::read_to_string(&self.config.rollout_file) else {
            return;
        };
        if text == self.rollout_text {
            return;
        }
        self.rollout_text = text;
        let loaded = match load(&self.config.rollout_file) {
            Ok((loaded, _)) => loaded,
            Err(err) => {
                warn!("the changed rollout file is invalid and was not applied: {err}");
                return;
            }
        };
        let spec = loaded.spec;
        if spec.canary_version == self.spec.canary_version && spec.name == self.spec.name {
            info!(
                rollout = %spec.name,
                "the rollout file changed but names the same canary version; the running rollout goes on"
            );
            return;
        }
        info!(
            rollout = %spec.name,
            "new canary version {} (was {}): starting a new rollout",
            spec.canary_version,
            self.spec.canary_version
        );
        let spec = Arc::new(spec);
        let (rollout, decision) = Rollout::start(spec.clone(), self.clock.now());
        if let Err(err) = rollout.traffic().apply(&self.base, &spec.routes) {
            warn!("the new rollout's split does not apply to the filter configuration, not started: {err}");
            return;
        }
        self.spec = spec;
        self.rollout = rollout;
        self.absorb(decision);
        if let Err(err) = self.settle(true).await {
            error!("cannot save the new rollout's state: {err}");
        }
    }
}

/// Parses `now`-relative helpers for tests and tools.
pub fn unix_now() -> Timestamp {
    crate::clock::SystemClock.now()
}
