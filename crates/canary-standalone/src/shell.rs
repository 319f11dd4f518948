//! The loop of `canary run`: it feeds the driver what happened (time, the
//! proxies' latest reading, finished measurements, pushes, one command at
//! a time) and carries out what the driver says, in order: save, push,
//! start measurements, publish.
//!
//! Measurements run as their own tasks, so a slow metric source never
//! delays a command (an abort is applied at once) or another metric. A
//! position that cannot be saved stops the loop, but only after pushing
//! the canary to 0% (toward stable) if the push path still works.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use canary_analysis::Timestamp;
use canary_api::{Board, CommandRequest, Refusal};
use canary_rollout::driver::{
    Driver, Effects, Finished, Input, Outcome, PushOutcome, Settings, SplitPush,
};
use canary_rollout::ports::{
    Clock, MetricSource, PositionStore, StoreError, TrafficRouter, Versions,
};
use canary_rollout::{EventKind, LoadedRollout, RolloutSpec};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn, Instrument};

use crate::rollout_file::{load, LoadFailure};

/// How often the rollout file is checked in watch mode.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Longest a push may take before it counts as failed.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(15);

/// Saves tried before a position that cannot be saved stops the loop.
pub const SAVE_ATTEMPTS: u32 = 3;

/// What `canary run` was told to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The rollout file.
    pub rollout_file: PathBuf,
    /// Keep running after the rollout ends, and follow the rollout file: a
    /// new canary version starts a new rollout.
    pub watch: bool,
    /// How often the proxies' reading is looked at (their scrape
    /// interval).
    pub observe_every: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Promoted, and every proxy shows it.
    Promoted,
    /// Rolled back, and every proxy shows it.
    Aborted,
    /// Asked to stop (signal); the position is saved.
    Stopped,
    /// Asked to stop while a rollback or promotion was not yet seen in
    /// force by every proxy.
    StoppedUnconfirmed,
}

/// Why `canary run` could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The rollout file cannot be used.
    #[error(transparent)]
    Rollout(#[from] LoadFailure),
    /// The saved position cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The position could not be saved: the loop stopped, after trying
    /// to push the canary to 0%.
    #[error("{cause}; {pushed}")]
    Fatal {
        /// Why the loop cannot go on.
        cause: StoreError,
        /// What became of the push toward stable.
        pushed: String,
    },
}

/// A finished measurement, and which rollout attempt asked for it.
struct Done {
    driver: u64,
    metric: String,
    finished: Finished,
}

/// The running shell.
pub struct Shell<R, M> {
    config: RunConfig,
    router: Arc<R>,
    metrics: Arc<M>,
    store: Box<dyn PositionStore>,
    board: Arc<Board>,
    clock: Arc<dyn Clock>,
    settings: Settings,
}

impl<R, M> Shell<R, M>
where
    R: TrafficRouter + 'static,
    M: MetricSource + 'static,
{
    /// A shell pushing through `router`, measuring with `metrics`, keeping
    /// its position in `store` and publishing on `board`.
    pub fn new(
        config: RunConfig,
        router: Arc<R>,
        metrics: Arc<M>,
        store: Box<dyn PositionStore>,
        board: Arc<Board>,
        clock: Arc<dyn Clock>,
        observed: bool,
    ) -> Shell<R, M> {
        let settings = Settings {
            observed,
            verify_deadline: router.verify_deadline(),
            target: router.describe(),
            ..Settings::default()
        };
        Shell {
            config,
            router,
            metrics,
            store,
            board,
            clock,
            settings,
        }
    }

    /// Runs until the rollout ends and the proxies show it (or forever
    /// with `watch`), or until `shutdown` resolves.
    pub async fn run(
        self,
        commands: mpsc::Receiver<CommandRequest>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<RunOutcome, ShellError> {
        let (loaded, text) = load(&self.config.rollout_file)?;
        let spec = Arc::new(loaded.spec);
        let saved = self.store.load()?;
        if let Some(position) = saved.as_ref().filter(|p| p.same_rollout(&spec)) {
            let step = position.state.as_ref().map_or(0, |s| s.step());
            info!(
                rollout = %spec.name,
                "resuming from the saved position (step {}, {})",
                step + 1,
                position
                    .state
                    .as_ref()
                    .map(|s| s.traffic().to_string())
                    .unwrap_or_else(|| "held".into())
            );
        }
        let driver = Driver::open(
            Arc::clone(&spec),
            self.settings.clone(),
            saved,
            self.clock.now(),
        );
        let span = tracing::info_span!("rollout", name = %spec.name);
        let mut running = Running {
            shell: self,
            driver,
            text,
            attempt: 0,
        };
        running.run(commands, shutdown).instrument(span).await
    }
}

struct Running<R, M> {
    shell: Shell<R, M>,
    driver: Driver,
    /// The rollout file's text the driver was made from.
    text: String,
    /// Counts drivers, so a late measurement of a replaced rollout is
    /// dropped.
    attempt: u64,
}

impl<R, M> Running<R, M>
where
    R: TrafficRouter + 'static,
    M: MetricSource + 'static,
{
    async fn run(
        &mut self,
        mut commands: mpsc::Receiver<CommandRequest>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<RunOutcome, ShellError> {
        tokio::pin!(shutdown);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut pushed: Option<PushOutcome> = None;
        let mut finished: Vec<Finished> = Vec::new();
        let mut command: Option<CommandRequest> = None;
        let mut last_outcome = None;
        info!(
            "running {} → {} on {}",
            self.driver.spec().stable_version,
            self.driver.spec().canary_version,
            self.shell.settings.target
        );
        loop {
            let now = self.shell.clock.now();
            let observation = self.shell.router.observe().await;
            // A command whose client has gone, or that waited past its
            // deadline, is not carried out.
            let reply = command.take().and_then(|request| {
                match request.stale(tokio::time::Instant::now()) {
                    Some(why) => {
                        warn!("not carried out: {why}");
                        let _ = request
                            .reply
                            .send(Err(Refusal::Unavailable(format!("not carried out: {why}"))));
                        None
                    }
                    None => Some(request),
                }
            });
            let by = reply.as_ref().map(|request| request.by.to_string());
            let effects = self.driver.step(Input {
                now,
                observation: observation.as_ref(),
                finished: std::mem::take(&mut finished),
                command: reply.as_ref().map(|request| request.command),
                command_by: by.as_deref(),
                pushed: pushed.take(),
            });
            if let Err(fatal) = self.save(&effects, now).await {
                if let Some(request) = reply {
                    let _ = request
                        .reply
                        .send(Err(Refusal::Unavailable(fatal.to_string())));
                }
                return Err(fatal);
            }
            self.log(&effects);
            if let Some(split) = &effects.push {
                pushed = Some(self.push(split).await);
            }
            self.start_measurements(&effects, now, &done_tx);
            self.publish(now);
            if let Some(request) = reply {
                let answer = match effects.answer.clone() {
                    Some(Ok(())) => {
                        info!(command = %request.command, by = %request.by, "command accepted");
                        Ok(self.driver.report(now))
                    }
                    Some(Err(refused)) => {
                        warn!(command = %request.command, by = %request.by, "command refused: {}", refused.reason);
                        Err(Refusal::Refused(refused))
                    }
                    None => Err(Refusal::Unavailable("the command was not taken".into())),
                };
                let _ = request.reply.send(answer);
            }
            last_outcome = effects.finished.or(last_outcome);
            if let Some(outcome) = effects.finished {
                if !self.shell.config.watch {
                    info!(?outcome, traffic = %self.driver.intended().traffic, "the rollout ended and every proxy shows it");
                    return Ok(match outcome {
                        Outcome::Promoted => RunOutcome::Promoted,
                        Outcome::Aborted => RunOutcome::Aborted,
                    });
                }
            }
            if pushed.is_some() {
                // Hand the push's outcome to the driver at once.
                continue;
            }
            let wait = self.wait_time(&effects, now);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                Some(done) = done_rx.recv() => {
                    if done.driver == self.attempt {
                        self.shell.board.metrics.measured(&self.id(), &done.metric, &done.finished.result);
                        finished.push(done.finished);
                    }
                    while let Ok(more) = done_rx.try_recv() {
                        if more.driver == self.attempt {
                            self.shell.board.metrics.measured(&self.id(), &more.metric, &more.finished.result);
                            finished.push(more.finished);
                        }
                    }
                }
                request = commands.recv() => {
                    if let Some(request) = request {
                        match &request.rollout {
                            Some(name) if *name != self.id() => {
                                let _ = request.reply.send(Err(Refusal::NoSuchRollout(name.clone())));
                            }
                            _ => command = Some(request),
                        }
                    }
                }
                () = &mut shutdown => {
                    let report = self.driver.report(self.shell.clock.now());
                    info!(phase = %report.phase, traffic = %self.driver.intended().traffic, "stopping");
                    return Ok(match report.phase.as_str() {
                        "RollingBack" | "Promoting" => {
                            error!("stopping before every proxy shows the {} ({}): {}", if report.phase == "RollingBack" { "rollback" } else { "promotion" }, self.driver.intended().traffic, report.push.applied.map(|a| a.describe()).unwrap_or_default());
                            RunOutcome::StoppedUnconfirmed
                        }
                        _ => RunOutcome::Stopped,
                    });
                }
            }
            if self.shell.config.watch {
                self.follow_rollout_file();
            }
        }
    }

    fn id(&self) -> String {
        self.driver.spec().name.clone()
    }

    /// Saves the position; after a few failed attempts, pushes the canary
    /// to 0% and stops.
    async fn save(&mut self, effects: &Effects, now: Timestamp) -> Result<(), ShellError> {
        let Some(position) = &effects.save else {
            return Ok(());
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.shell.store.save(position) {
                Ok(()) => return Ok(()),
                Err(err) if attempt < SAVE_ATTEMPTS => {
                    warn!("{err}; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(cause) => {
                    error!("{cause}: the rollout cannot go on");
                    let split = self.driver.fail_safe(now, &cause.to_string());
                    let pushed = match self.push(&split).await {
                        PushOutcome::Done(_) => {
                            format!("pushed {} before stopping", split.traffic)
                        }
                        PushOutcome::Failed(error) => format!(
                            "could not push {} before stopping either: {error}",
                            split.traffic
                        ),
                    };
                    error!("{pushed}");
                    return Err(ShellError::Fatal { cause, pushed });
                }
            }
        }
    }

    async fn push(&self, split: &SplitPush) -> PushOutcome {
        let routes = self.driver.spec().routes.clone();
        let result =
            tokio::time::timeout(PUSH_TIMEOUT, self.shell.router.set(split, &routes)).await;
        let outcome = match result {
            Ok(Ok(version)) => {
                info!(traffic = %split.traffic, version = version.as_deref().unwrap_or("-"), "pushed to {}", self.shell.settings.target);
                PushOutcome::Done(version)
            }
            Ok(Err(error)) => {
                error!(traffic = %split.traffic, "push to {} failed: {error}", self.shell.settings.target);
                PushOutcome::Failed(error.to_string())
            }
            Err(_) => {
                error!(traffic = %split.traffic, "push to {} timed out", self.shell.settings.target);
                PushOutcome::Failed(format!("no answer within {}s", PUSH_TIMEOUT.as_secs()))
            }
        };
        self.shell
            .board
            .metrics
            .pushed(&self.id(), matches!(outcome, PushOutcome::Done(_)));
        outcome
    }

    fn log(&self, effects: &Effects) {
        let id = self.id();
        for event in &effects.events {
            match event.kind {
                EventKind::PushFailed
                | EventKind::SplitNotSeen
                | EventKind::DriftUp
                | EventKind::DriftDown
                | EventKind::GuardTripped
                | EventKind::SpecMismatch
                | EventKind::Fatal
                | EventKind::AnalysisFailed
                | EventKind::Aborted => warn!(event = ?event.kind, "{}", event.reason),
                _ => info!(event = ?event.kind, "{}", event.reason),
            }
            self.shell.board.metrics.decided(&id, event.kind);
        }
    }

    fn start_measurements(
        &self,
        effects: &Effects,
        now: Timestamp,
        done: &mpsc::UnboundedSender<Done>,
    ) {
        let spec = self.driver.spec();
        for request in &effects.measure {
            let metrics = Arc::clone(&self.shell.metrics);
            let request = request.clone();
            let done = done.clone();
            let attempt = self.attempt;
            let (stable, canary) = (spec.stable_version.clone(), spec.canary_version.clone());
            tokio::spawn(async move {
                let versions = Versions {
                    stable: &stable,
                    canary: &canary,
                };
                let measured = metrics.measure(&request, versions, now).await;
                match &measured.result {
                    canary_analysis::MeasurementResult::Error(err) => {
                        warn!(metric = %request.metric.name, "measurement error: {err}")
                    }
                    canary_analysis::MeasurementResult::NotEnoughData(why) => {
                        debug!(metric = %request.metric.name, "not enough data: {why}")
                    }
                    canary_analysis::MeasurementResult::Value { .. } => {}
                }
                let _ = done.send(Done {
                    driver: attempt,
                    metric: request.metric.name.clone(),
                    finished: Finished {
                        key: request.key,
                        result: measured.result,
                        carry: measured.carry,
                    },
                });
            });
        }
    }

    fn publish(&self, now: Timestamp) {
        self.shell
            .board
            .publish(&self.id(), self.driver.report(now));
    }

    fn wait_time(&self, effects: &Effects, now: Timestamp) -> Duration {
        let mut wait = match effects.wake_at {
            Some(at) => at.since(now).max(Duration::from_millis(1)),
            None => Duration::from_secs(3600),
        };
        if self.shell.settings.observed {
            wait = wait.min(self.shell.config.observe_every);
        }
        if self.shell.config.watch {
            wait = wait.min(WATCH_INTERVAL);
        }
        wait
    }

    /// Watch mode: a changed rollout file is taken as the rollout now. A
    /// new canary version starts a new rollout; any other change resumes
    /// the same position against the new file, which holds it when the
    /// two no longer fit. An invalid file is reported and changes nothing.
    fn follow_rollout_file(&mut self) {
        let path = &self.shell.config.rollout_file;
        let text = match canary_analysis::yaml::read_file(path) {
            Ok(text) => text,
            Err(err) => {
                // Said once per outage: the text is forgotten until the
                // file can be read again (and is then compared anew).
                if !self.text.is_empty() {
                    warn!(
                        "the rollout file {} cannot be read, the running rollout goes on: {err}",
                        path.display()
                    );
                    self.text.clear();
                }
                return;
            }
        };
        if text == self.text {
            return;
        }
        self.text = text;
        let loaded: LoadedRollout = match load(path) {
            Ok((loaded, _)) => loaded,
            Err(err) => {
                warn!(
                    "the changed rollout file is not applied, the running rollout goes on: {err}"
                );
                return;
            }
        };
        let spec: Arc<RolloutSpec> = Arc::new(loaded.spec);
        if spec.fingerprint() == self.driver.spec().fingerprint() {
            debug!("the rollout file changed in form only");
            return;
        }
        let now = self.shell.clock.now();
        let position = self.driver.position();
        let new_rollout = !position.same_rollout(&spec);
        info!(
            "the rollout file changed: {}",
            if new_rollout {
                format!(
                    "new canary version {}, a new rollout starts",
                    spec.canary_version
                )
            } else {
                "the rollout continues against it".to_owned()
            }
        );
        self.driver = Driver::open(spec, self.shell.settings.clone(), Some(position), now);
        self.attempt += 1;
    }
}
