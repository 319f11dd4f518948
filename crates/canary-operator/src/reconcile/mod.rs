//! One reconcile of one `CanaryRollout`: the operator's shell around the
//! rollout driver (`canary_rollout::driver`), as `canary run` is the
//! standalone one. It feeds the driver what happened — the time, the
//! proxies' latest reading, measurements that finished, at most one
//! command — and carries out its effects in order: save the position in
//! the status, push the split, start measurements, publish events.
//!
//! Around the driver, what only a cluster has:
//!
//! 1. A command annotation is removed before it is obeyed (at most once),
//!    and handed to the driver before anything else.
//! 2. The Deployments, the spec's templates and the Istio object are read;
//!    what makes the rollout unrunnable is a `SpecValid` False condition.
//! 3. The driver is the one kept from the last reconcile, unless the
//!    rollout changed or its status holds a position this operator did not
//!    write: then it is opened again from the status (a position that does
//!    not fit the rollout is held, never restarted from step 1). A new
//!    canary revision is a new rollout, which starts once the canary
//!    Deployment is ready.
//! 4. Measurements run as tasks; one that finishes wakes the rollout's
//!    next reconcile, so a hanging metric source never delays an abort.
//! 5. After the driver, the Deployments: the canary is scaled down once
//!    the rollback is seen, a `copyTemplate` promotion copies the pod
//!    template and returns traffic to stable.
//! 6. A position that cannot be saved (or encoded) is fatal: the driver's
//!    fail-safe split is pushed (toward stable) and the reconcile fails.

mod edges;
mod runner;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_analysis::Timestamp;
use canary_api::{Board, CommandRequest, Refusal};
use canary_kube::{ApiError, PluginObject, PluginPusher, PushError};
use canary_rollout::driver::{
    Driver, Effects, Finished, Input, MeasureRequest, Position, PushOutcome, Report, Settings,
    SplitPush,
};
use canary_rollout::ports::{Clock, TrafficRouter, Versions};
use canary_rollout::{Command, CommandError, RolloutSpec, TrafficState};
use futures::channel::mpsc;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, CustomResourceExt, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use crate::commands::{removal_patch, COMMAND_ANNOTATION};
use crate::events::{EventRecorder, Note, Regarding};
use crate::fingerprint::template_fingerprint;
use crate::permissions::PATCH_ROLLOUTS;
use crate::resource::{
    CanaryRollout, CanaryRolloutSpec, CanaryRolloutStatus, Promotion, TargetKind,
};
use crate::spec_source::{load_spec, SpecError};
use crate::status::{condition, show_report, with_condition, ConditionValue, SPEC_VALID};
use crate::workload::apply::WorkloadError;
use crate::workload::plan::{all_to_stable, reaches};
use crate::workload::{plan, Plan, PlanInput, Stage, WorkloadAction, WorkloadView, Workloads};

pub use edges::{ClusterEdges, Edges, Gate, MeshWatch, PushLocks};
use runner::Runner;
pub use runner::Runners;
use writer::StatusWriter;

/// Longest a push or a reading of the proxies may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// Saves tried before a position that cannot be saved is fatal.
pub const SAVE_ATTEMPTS: u32 = 3;

/// Driver steps in one reconcile: a step that pushes is followed at once
/// by one that takes the push's outcome.
const STEPS_PER_RECONCILE: usize = 4;

/// Events kept in a saved position (the status must stay small).
const EVENTS_KEPT: usize = 30;

/// How soon to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// While waiting for a Deployment, for the proxies to show a split, or
    /// after a failed action.
    pub waiting: Duration,
    /// Longest sleep of a running rollout.
    pub running: Duration,
    /// A finished or invalid rollout: how often to check for a new canary
    /// version or a fixed spec.
    pub idle: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            waiting: Duration::from_secs(5),
            running: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The API server.
    pub client: Client,
    /// Where pushes, readings and measurements go.
    pub edges: Arc<dyn Edges>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Where Events go.
    pub events: EventRecorder,
    /// Every rollout's report and the operator's metrics, as the HTTP API
    /// serves them.
    pub board: Arc<Board>,
    /// Requeue times.
    pub timing: Timing,
    /// The drivers, between reconciles.
    pub runners: Runners,
    push_locks: PushLocks,
    wake: mpsc::UnboundedSender<ObjectRef<CanaryRollout>>,
    wakes: Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<CanaryRollout>>>>,
    failures: Mutex<HashMap<String, u32>>,
    /// Commands from the HTTP API, by rollout, until their reconcile.
    commands: Mutex<HashMap<String, CommandRequest>>,
}

impl Context {
    /// A context reaching the cluster through `client` and the world
    /// through `edges`.
    pub fn new(
        client: Client,
        edges: Arc<dyn Edges>,
        clock: Arc<dyn Clock>,
        events: EventRecorder,
    ) -> Context {
        let (wake, wakes) = mpsc::unbounded();
        Context {
            client,
            edges,
            clock,
            events,
            board: Arc::new(Board::default()),
            timing: Timing::default(),
            runners: Runners::default(),
            push_locks: PushLocks::default(),
            wake,
            wakes: Mutex::new(Some(wakes)),
            failures: Mutex::default(),
            commands: Mutex::default(),
        }
    }

    /// A command from the HTTP API for rollout `namespace/name`: handed to
    /// the rollout's next reconcile, which it wakes, and answered there.
    pub fn command(&self, request: CommandRequest) {
        let Some(key) = request.rollout.clone() else {
            let _ = request.reply.send(Err(Refusal::Unavailable(
                "name the rollout: POST /rollouts/{namespace}/{name}/{command}".into(),
            )));
            return;
        };
        let Some((namespace, name)) = key.split_once('/') else {
            let _ = request.reply.send(Err(Refusal::NoSuchRollout(key)));
            return;
        };
        if self.board.report(Some(&key)).is_none() {
            let _ = request.reply.send(Err(Refusal::NoSuchRollout(key)));
            return;
        }
        let rollout = ObjectRef::new(name).within(namespace);
        let earlier = self
            .commands
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(key, request);
        if let Some(earlier) = earlier {
            let _ = earlier.reply.send(Err(Refusal::Unavailable(
                "another command came before this one was taken".into(),
            )));
        }
        let _ = self.wake.unbounded_send(rollout);
    }

    /// Rollout `key` is gone: its driver, report, counters and pending
    /// command go.
    pub fn forget(&self, key: &str) {
        self.runners.take(key);
        self.board.forget(key);
        self.succeeded(key);
        if let Some(request) = self.take_api_command(key) {
            let _ = request
                .reply
                .send(Err(Refusal::NoSuchRollout(key.to_owned())));
        }
    }

    fn take_api_command(&self, key: &str) -> Option<CommandRequest> {
        self.commands
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key)
    }

    /// The rollouts whose measurements finished, to reconcile again; taken
    /// once, by the controller.
    pub fn take_wakes(&self) -> Option<mpsc::UnboundedReceiver<ObjectRef<CanaryRollout>>> {
        self.wakes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    /// Counts a failed reconcile of `key`; how many failed in a row.
    pub fn failed(&self, key: &str, error: &Error) -> u32 {
        self.board.metrics.failed(key, error.kind());
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count += 1;
        *count
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }
}

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no namespace (the resource is namespaced; only a
    /// malformed object lacks one).
    #[error("canaryrollout {0:?} has no namespace")]
    NoNamespace(String),
    /// A call to the API server failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The status changed under the reconcile (another writer, or an
    /// older copy of the object): the driver is opened again from it.
    #[error("the status changed while it was being written; reading it again: {0}")]
    Conflict(ApiError),
    /// The position could not be saved: the fail-safe split was pushed.
    #[error("{cause}; {pushed}")]
    Fatal {
        /// Why the position could not be saved.
        cause: String,
        /// What became of the push toward stable.
        pushed: String,
    },
}

impl Error {
    /// The error's kind, as the failure metric labels it.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NoNamespace(_) => "malformed",
            Error::Api(ApiError::Forbidden { .. } | ApiError::Unauthorized { .. }) => "forbidden",
            Error::Api(ApiError::Unreachable { .. }) => "unreachable",
            Error::Api(_) => "api",
            Error::Conflict(_) => "conflict",
            Error::Fatal { .. } => "fatal",
        }
    }
}

/// The Istio object a rollout writes to.
pub fn plugin_object(spec: &CanaryRolloutSpec, namespace: &str) -> PluginObject {
    let namespace = spec.target.namespace.as_deref().unwrap_or(namespace);
    match spec.target.kind {
        TargetKind::WasmPlugin => PluginObject::wasm_plugin(namespace, &spec.target.name),
        TargetKind::TrafficExtension => {
            PluginObject::traffic_extension(namespace, &spec.target.name)
        }
    }
}

/// The identity of a rollout: the canary's pod template, the version
/// names and the routes. Another identity starts a new rollout.
pub fn rollout_revision(spec: &CanaryRolloutSpec, canary: &WorkloadView) -> String {
    template_fingerprint(&json!({
        "template": canary.template,
        "stableVersion": spec.stable_version,
        "canaryVersion": spec.canary_version,
        "routes": spec.routes,
    }))
}

/// `namespace/name`, the key a rollout is known by.
pub fn rollout_key(object: &CanaryRollout) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// The reconcile of `object`; returns when to look again.
pub async fn reconcile_rollout(object: &CanaryRollout, ctx: &Context) -> Result<Duration, Error> {
    let key = rollout_key(object);
    let span = tracing::info_span!("reconcile", rollout = %key);
    async {
        let mut this = Reconciler::new(object, ctx)?;
        let result = this.reconcile().await;
        if let Some(reply) = this.reply.take() {
            let why = match &result {
                Err(error) => error.to_string(),
                Ok(_) => "the command was not taken".to_owned(),
            };
            let _ = reply.send(Err(Refusal::Unavailable(why)));
        }
        let notes = std::mem::take(&mut this.notes);
        ctx.events
            .publish(&this.regarding, &notes, ctx.clock.now())
            .await;
        if result.is_ok() {
            ctx.succeeded(&key);
        }
        result
    }
    .instrument(span)
    .await
}

/// What a rollout runs against.
struct World {
    stable: WorkloadView,
    canary: WorkloadView,
    spec: Arc<RolloutSpec>,
    target: PluginObject,
    /// The split the Istio object holds for the rollout's first route.
    in_force: TrafficState,
}

/// One reconcile.
struct Reconciler<'a> {
    ctx: &'a Context,
    object: &'a CanaryRollout,
    key: String,
    namespace: String,
    regarding: Regarding,
    writer: StatusWriter,
    previous: CanaryRolloutStatus,
    notes: Vec<Note>,
    /// Where the answer to a command from the HTTP API goes.
    reply: Option<tokio::sync::oneshot::Sender<Result<Report, Refusal>>>,
}

impl<'a> Reconciler<'a> {
    fn new(object: &'a CanaryRollout, ctx: &'a Context) -> Result<Reconciler<'a>, Error> {
        let name = object.name_any();
        let namespace = object
            .namespace()
            .ok_or_else(|| Error::NoNamespace(name.clone()))?;
        let previous = object.status.clone().unwrap_or_default();
        Ok(Reconciler {
            ctx,
            object,
            key: rollout_key(object),
            regarding: Regarding {
                namespace: namespace.clone(),
                name: name.clone(),
                uid: object.metadata.uid.clone(),
            },
            writer: StatusWriter {
                api: Api::namespaced_with(
                    ctx.client.clone(),
                    &namespace,
                    &CanaryRollout::api_resource(),
                ),
                namespace: namespace.clone(),
                name,
                resource_version: object.metadata.resource_version.clone(),
                written: previous.clone(),
            },
            namespace,
            previous,
            notes: Vec::new(),
            reply: None,
        })
    }

    fn spec(&self) -> &'a CanaryRolloutSpec {
        &self.object.spec
    }

    fn generation(&self) -> Option<i64> {
        self.object.metadata.generation
    }

    async fn reconcile(&mut self) -> Result<Duration, Error> {
        let command = self.take_command().await?;
        let world = match self.read().await? {
            Ok(world) => world,
            Err((reason, problem)) => return self.invalid(reason, problem).await,
        };
        let revision = rollout_revision(self.spec(), &world.canary);
        let same_revision = self.previous.canary_revision.as_deref() == Some(revision.as_str());
        if same_revision
            && self.spec().promotion == Promotion::CopyTemplate
            && self.previous.phase.as_deref() == Some("Promoted")
        {
            if let Some(command) = command {
                self.refuse(command, "the rollout is over: the canary was promoted");
            }
            return Ok(self.ctx.timing.idle);
        }
        let mut runner = match self.ctx.runners.take(&self.key) {
            Some(runner) if self.fits(&runner, &revision, &world.spec) => runner,
            _ => {
                let saved = match self.saved_position(same_revision) {
                    Ok(saved) => saved,
                    Err(problem) => return self.invalid("UnreadableState", problem).await,
                };
                if saved.is_none() && !world.canary.fully_ready() && command != Some(Command::Abort)
                {
                    return self.pending(&world, command, revision).await;
                }
                self.open(&world, saved, revision).await
            }
        };
        runner
            .router
            .canary_not_ready((!world.canary.fully_ready()).then(|| {
                format!(
                    "canary Deployment {} is not ready: {}",
                    world.canary.name,
                    world.canary.readiness()
                )
            }));
        let wake_at = self.drive(&mut runner, command).await?;
        let requeue = self.finish(&mut runner, &world, wake_at).await?;
        self.ctx.runners.put(&self.key, runner);
        Ok(requeue)
    }

    /// Whether a kept runner still drives this rollout as its status has
    /// it.
    fn fits(&self, runner: &Runner, revision: &str, spec: &RolloutSpec) -> bool {
        runner.revision == revision
            && runner.saved == self.previous.state
            && runner.driver.spec().fingerprint() == spec.fingerprint()
    }

    /// The position in the status, for this canary revision.
    fn saved_position(&mut self, same_revision: bool) -> Result<Option<Position>, String> {
        if !same_revision {
            if let Some(was) = &self.previous.canary_revision {
                self.notes.push(Note::normal(
                    "NewCanaryRevision",
                    "Rollout",
                    format!(
                        "canary Deployment {} or the rollout's versions changed (was revision {was}): a new rollout starts from the first step once the canary is ready",
                        self.spec().canary_workload
                    ),
                ));
            }
            return Ok(None);
        }
        match &self.previous.state {
            None => Ok(None),
            Some(state) => Position::from_json(state).map(Some).map_err(|error| {
                format!("status.state cannot be resumed from ({error}); the split in force stays; restore the status or delete and recreate the rollout")
            }),
        }
    }

    /// The driver of this rollout from `saved`.
    async fn open(&self, world: &World, saved: Option<Position>, revision: String) -> Runner {
        let pusher = PluginPusher::new(self.ctx.client.clone(), world.target.clone());
        let router = Arc::new(Gate::new(
            self.ctx.edges.router(pusher, &self.spec().routes),
            &self.ctx.push_locks,
            &world.target.to_string(),
            &self.spec().canary_version,
        ));
        let observed = tokio::time::timeout(IO_TIMEOUT, router.observe())
            .await
            .ok()
            .flatten()
            .is_some();
        let settings = Settings {
            observed,
            verify_deadline: router.verify_deadline(),
            target: router.describe(),
            events_kept: EVENTS_KEPT,
            ..Settings::default()
        };
        tracing::info!(
            "driving {} → {} on {}{}",
            world.spec.stable_version,
            world.spec.canary_version,
            settings.target,
            if saved.is_some() {
                " from the saved position"
            } else {
                ""
            }
        );
        let driver = Driver::open(
            Arc::clone(&world.spec),
            settings,
            saved,
            self.ctx.clock.now(),
        );
        Runner {
            driver,
            router,
            metrics: self.ctx.edges.metrics(&self.namespace),
            revision,
            saved: self.previous.state.clone(),
            inbox: Arc::default(),
            pushed: None,
        }
    }

    /// Steps the driver and carries out its effects; when it wants to be
    /// stepped again.
    async fn drive(
        &mut self,
        runner: &mut Runner,
        mut command: Option<Command>,
    ) -> Result<Option<Timestamp>, Error> {
        let mut wake_at = None;
        for _ in 0..STEPS_PER_RECONCILE {
            let now = self.ctx.clock.now();
            let observation = tokio::time::timeout(IO_TIMEOUT, runner.router.observe())
                .await
                .ok()
                .flatten();
            let asked = command.take();
            let effects = runner.driver.step(Input {
                now,
                observation: observation.as_ref(),
                finished: runner.take_finished(),
                command: asked,
                // Annotations and the API do not say who sent them.
                command_by: None,
                pushed: runner.pushed.take(),
            });
            if let Some(position) = &effects.save {
                self.save(runner, position, now).await?;
            }
            let report = runner.driver.report(now);
            self.publish(&effects, asked, &report);
            if let Some(split) = &effects.push {
                runner.pushed = Some(self.push(runner, split).await);
            }
            self.start_measurements(runner, &effects.measure, now);
            wake_at = effects.wake_at;
            if runner.pushed.is_none() {
                break;
            }
        }
        Ok(wake_at)
    }

    /// Writes the position and the report into the status; a position
    /// that cannot be saved is fatal.
    async fn save(
        &mut self,
        runner: &mut Runner,
        position: &Position,
        now: Timestamp,
    ) -> Result<(), Error> {
        let state = match serde_json::to_value(position) {
            Ok(state) => state,
            Err(error) => {
                let cause = format!("cannot encode the rollout's position: {error}");
                return Err(self.fail_safe(runner, cause, now).await);
            }
        };
        let mut status = self.writer.written.clone();
        status.state = Some(state.clone());
        status.canary_revision = Some(runner.revision.clone());
        let report = runner.driver.report(now);
        self.ctx.board.publish(&self.key, report.clone());
        let phase = self.phase(&report, None);
        let message = report.message.clone();
        show_report(&mut status, report, &phase, message, now, self.generation());
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.writer.write(&status).await {
                Ok(()) => {
                    runner.saved = Some(state);
                    return Ok(());
                }
                Err(conflict @ ApiError::Conflict { .. }) => return Err(Error::Conflict(conflict)),
                Err(error) if attempt < SAVE_ATTEMPTS => {
                    tracing::warn!("{error}; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(error) => {
                    let cause = format!("cannot save the rollout's position: {error}");
                    return Err(self.fail_safe(runner, cause, now).await);
                }
            }
        }
    }

    /// Pushes the driver's fail-safe split before the reconcile fails.
    async fn fail_safe(&mut self, runner: &mut Runner, cause: String, now: Timestamp) -> Error {
        tracing::error!("{cause}: the rollout cannot go on");
        let split = runner.driver.fail_safe(now, &cause);
        let pushed = match self.push(runner, &split).await {
            PushOutcome::Done(_) => format!("pushed {} toward stable", split.traffic),
            PushOutcome::Failed(error) => {
                format!(
                    "could not push {} toward stable either: {error}",
                    split.traffic
                )
            }
        };
        tracing::error!("{pushed}");
        self.notes
            .push(Note::warning("Fatal", "Push", format!("{cause}; {pushed}")));
        Error::Fatal { cause, pushed }
    }

    async fn push(&self, runner: &Runner, split: &SplitPush) -> PushOutcome {
        let routes = &runner.driver.spec().routes;
        let target = runner.router.describe();
        let outcome = match tokio::time::timeout(IO_TIMEOUT, runner.router.set(split, routes)).await
        {
            Ok(Ok(version)) => {
                tracing::info!(traffic = %split.traffic, "pushed to {target}");
                PushOutcome::Done(version)
            }
            Ok(Err(error)) => {
                tracing::warn!(traffic = %split.traffic, "push to {target} failed: {error}");
                PushOutcome::Failed(error.to_string())
            }
            Err(_) => PushOutcome::Failed(format!("no answer within {}s", IO_TIMEOUT.as_secs())),
        };
        self.ctx
            .board
            .metrics
            .pushed(&self.key, matches!(outcome, PushOutcome::Done(_)));
        outcome
    }

    /// The step's events and the command's answer, as Events and metrics.
    fn publish(&mut self, effects: &Effects, command: Option<Command>, report: &Report) {
        for event in &effects.events {
            self.ctx.board.metrics.decided(&self.key, event.kind);
            tracing::info!(event = ?event.kind, "{}", event.reason);
        }
        self.notes
            .extend(effects.events.iter().filter_map(Note::from_decision));
        match (command, &effects.answer) {
            (Some(command), Some(Ok(()))) => {
                if let Some(reply) = self.reply.take() {
                    let _ = reply.send(Ok(report.clone()));
                }
                tracing::info!(%command, "command accepted");
                self.notes.push(Note::normal(
                    "CommandAccepted",
                    "Command",
                    format!("{command}: accepted"),
                ));
            }
            (Some(_), Some(Err(refused))) => {
                if let Some(reply) = self.reply.take() {
                    let _ = reply.send(Err(Refusal::Refused(refused.clone())));
                }
                tracing::warn!("{refused}");
                self.notes.push(Note::warning(
                    "CommandRefused",
                    "Command",
                    refused.to_string(),
                ));
            }
            _ => {}
        }
    }

    /// Starts each measurement as its own task; a finished one wakes the
    /// rollout.
    fn start_measurements(&self, runner: &Runner, requests: &[MeasureRequest], now: Timestamp) {
        let spec = runner.driver.spec();
        for request in requests {
            let source = Arc::clone(&runner.metrics);
            let inbox = Arc::clone(&runner.inbox);
            let board = Arc::clone(&self.ctx.board);
            let wake = self.ctx.wake.clone();
            let rollout = ObjectRef::from_obj(self.object);
            let (key, request) = (self.key.clone(), request.clone());
            let (stable, canary) = (spec.stable_version.clone(), spec.canary_version.clone());
            tokio::spawn(
                async move {
                    let versions = Versions {
                        stable: &stable,
                        canary: &canary,
                    };
                    let measured = source.measure(&request, versions, now).await;
                    board
                        .metrics
                        .measured(&key, &request.metric.name, &measured.result);
                    inbox
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push(Finished {
                            key: request.key,
                            result: measured.result,
                            carry: measured.carry,
                        });
                    let _ = wake.unbounded_send(rollout);
                }
                .instrument(tracing::Span::current()),
            );
        }
    }

    /// After the driver: the Deployments, the status, when to look again.
    async fn finish(
        &mut self,
        runner: &mut Runner,
        world: &World,
        wake_at: Option<Timestamp>,
    ) -> Result<Duration, Error> {
        let report = runner.driver.report(self.ctx.clock.now());
        let stage = Stage::of(&report.phase);
        let plan = plan(&PlanInput {
            stage,
            promotion: self.spec().promotion,
            stable: &world.stable,
            canary: &world.canary,
        });
        let failure = self.act(Some(runner), world, &plan, Some(&report)).await;
        let settled = plan.waiting.is_none() && failure.is_none();
        let phase = self.phase(&report, Some(settled));
        let message = failure
            .clone()
            .or_else(|| plan.waiting.clone())
            .or_else(|| report.message.clone());
        self.ctx.board.publish(&self.key, report.clone());
        let now = self.ctx.clock.now();
        let mut status = self.writer.written.clone();
        status.state = runner.saved.clone();
        status.canary_revision = Some(runner.revision.clone());
        let waiting_for_proxies = report
            .push
            .applied
            .as_ref()
            .is_some_and(|applied| !applied.confirmed);
        show_report(&mut status, report, &phase, message, now, self.generation());
        self.writer.write_if_changed(&status).await?;
        let timing = self.ctx.timing;
        let mut requeue = match wake_at {
            Some(at) => at.since(now).min(timing.running),
            None if stage == Stage::Running => timing.running,
            None => timing.idle,
        };
        if !settled || waiting_for_proxies {
            requeue = requeue.min(timing.waiting);
        }
        Ok(requeue)
    }

    /// The phase people see: the report's, except that a `copyTemplate`
    /// promotion is `Promoting` until traffic is back on stable
    /// (`settled`: whether the workload actions are done; `None` before
    /// they ran).
    fn phase(&self, report: &Report, settled: Option<bool>) -> String {
        let copying = self.spec().promotion == Promotion::CopyTemplate;
        if report.phase == "Promoted" && copying && settled != Some(true) {
            "Promoting".to_owned()
        } else {
            report.phase.clone()
        }
    }

    /// Carries out the plan in order, stopping at the first failure; why
    /// it stopped.
    async fn act(
        &mut self,
        runner: Option<&Runner>,
        world: &World,
        plan: &Plan,
        report: Option<&Report>,
    ) -> Option<String> {
        let workloads = Workloads::new(self.ctx.client.clone(), &self.namespace);
        let (stable, canary) = (&world.stable, &world.canary);
        for action in &plan.actions {
            let done = match action {
                WorkloadAction::ScaleCanaryDown { from } => workloads
                    .scale_down(&canary.name, *from)
                    .await
                    .map(|()| Note::normal(
                        "ScaledDown",
                        "Scale",
                        format!("canary Deployment {} scaled from {from} to 0 replicas; stable Deployment {} untouched", canary.name, stable.name),
                    ))
                    .map_err(|error| error.to_string()),
                WorkloadAction::ScaleCanaryUp { to } => workloads
                    .scale_up(&canary.name, *to)
                    .await
                    .map(|()| Note::normal(
                        "ScaledUp",
                        "Scale",
                        format!("canary Deployment {} scaled up to {to} replicas", canary.name),
                    ))
                    .map_err(|error| error.to_string()),
                WorkloadAction::CopyTemplateToStable => workloads
                    .copy_template(stable, canary)
                    .await
                    .map(|()| Note::normal(
                        "TemplateCopied",
                        "CopyTemplate",
                        format!("pod template of {} copied to stable Deployment {}; traffic returns to it once it is fully ready", canary.name, stable.name),
                    ))
                    .map_err(|error| error.to_string()),
                WorkloadAction::ReturnToStable => {
                    let split = SplitPush {
                        traffic: all_to_stable(&self.spec().stable_version),
                        generation: report.map_or(0, |r| r.generation),
                    };
                    let Some(runner) = runner else {
                        return Some("no rollout runs to return traffic through".to_owned());
                    };
                    match self.push(runner, &split).await {
                        PushOutcome::Done(_) => Ok(Note::normal(
                            "TrafficReturnedToStable",
                            "Push",
                            format!(
                                "all traffic is on {} again, which now runs the pod template of {}",
                                self.spec().stable_version, self.spec().canary_version
                            ),
                        )),
                        PushOutcome::Failed(error) => Err(error),
                    }
                }
            };
            match done {
                Ok(note) => self.notes.push(note),
                Err(error) => {
                    tracing::warn!(?action, "action failed: {error}");
                    self.notes
                        .push(Note::warning("ActionFailed", "Scale", error.clone()));
                    return Some(error);
                }
            }
        }
        None
    }

    /// No rollout runs for this canary revision yet: the canary is scaled
    /// up and awaited.
    async fn pending(
        &mut self,
        world: &World,
        command: Option<Command>,
        revision: String,
    ) -> Result<Duration, Error> {
        if let Some(command) = command {
            self.refuse(
                command,
                &format!(
                    "no rollout runs yet; it starts once canary Deployment {} is ready",
                    world.canary.name
                ),
            );
        }
        let plan = plan(&PlanInput {
            stage: Stage::Pending,
            promotion: self.spec().promotion,
            stable: &world.stable,
            canary: &world.canary,
        });
        let mut failure = None;
        if reaches(&world.in_force, &self.spec().canary_version) {
            failure = self.canary_to_zero(world).await;
        }
        let failure = match failure {
            Some(failure) => Some(failure),
            None => self.act(None, world, &plan, None).await,
        };
        let message = failure.or(plan.waiting);
        let now = self.ctx.clock.now();
        let mut status = self.writer.written.clone();
        status.canary_revision = Some(revision);
        status.state = None;
        status.report = None;
        status.phase = Some("Pending".to_owned());
        status.message = message;
        status.observed_generation = self.generation();
        status.conditions = with_condition(
            &status.conditions,
            ConditionValue::new(SPEC_VALID, true, "Valid", ""),
            now,
            self.generation(),
        );
        self.writer.write_if_changed(&status).await?;
        Ok(self.ctx.timing.waiting)
    }

    /// Before a new rollout starts: the canary's traffic to 0 % (its new
    /// pods are not ready yet); why that failed.
    async fn canary_to_zero(&mut self, world: &World) -> Option<String> {
        let pusher = PluginPusher::new(self.ctx.client.clone(), world.target.clone());
        let router = Gate::new(
            self.ctx.edges.router(pusher, &self.spec().routes),
            &self.ctx.push_locks,
            &world.target.to_string(),
            &self.spec().canary_version,
        );
        let split = SplitPush {
            traffic: TrafficState::initial(
                &self.spec().stable_version,
                &self.spec().canary_version,
            ),
            generation: self.previous.report.as_ref().map_or(0, |r| r.generation),
        };
        let routes = &world.spec.routes;
        match tokio::time::timeout(IO_TIMEOUT, router.set(&split, routes)).await {
            Ok(Ok(_)) => {
                self.notes.push(Note::normal(
                    "TrafficToStable",
                    "Push",
                    format!(
                        "a new canary revision: {} until canary Deployment {} is ready",
                        split.traffic, world.canary.name
                    ),
                ));
                None
            }
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no answer within {}s", IO_TIMEOUT.as_secs())),
        }
    }

    fn refuse(&mut self, command: Command, why: &str) {
        let refused = CommandError {
            command,
            reason: why.to_owned(),
        };
        self.notes.push(Note::warning(
            "CommandRefused",
            "Command",
            refused.to_string(),
        ));
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(Refusal::Refused(refused)));
        }
    }

    /// The command in the annotation, removed from the object first; else
    /// one from the HTTP API.
    async fn take_command(&mut self) -> Result<Option<Command>, Error> {
        let Some(value) = self.object.annotations().get(COMMAND_ANNOTATION) else {
            return Ok(self.ctx.take_api_command(&self.key).map(|request| {
                self.reply = Some(request.reply);
                request.command
            }));
        };
        let api: Api<CanaryRollout> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let params = PatchParams {
            field_manager: Some(canary_kube::FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let patch = removal_patch(self.object.metadata.resource_version.as_deref());
        let name = &self.regarding.name;
        let stored = api
            .patch(name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|error| PATCH_ROLLOUTS.error(&self.namespace, Some(name), error))?;
        self.writer.resource_version = stored.metadata.resource_version;
        match value.parse::<Command>() {
            Ok(command) => {
                tracing::info!(%command, "command from the {COMMAND_ANNOTATION} annotation");
                Ok(Some(command))
            }
            Err(error) => {
                self.notes.push(Note::warning(
                    "CommandRefused",
                    "Command",
                    format!("{COMMAND_ANNOTATION}: {error}"),
                ));
                Ok(None)
            }
        }
    }

    /// The Deployments, the rollout and its Istio object, or why they do
    /// not make a runnable rollout (a reason and a problem).
    async fn read(&self) -> Result<Result<World, (&'static str, String)>, Error> {
        let spec = self.spec();
        let workloads = Workloads::new(self.ctx.client.clone(), &self.namespace);
        let stable = match self.workload(&workloads, &spec.stable_workload).await? {
            Ok(view) => view,
            Err(problem) => return Ok(Err(("WorkloadNotFound", problem))),
        };
        let canary = match self.workload(&workloads, &spec.canary_workload).await? {
            Ok(view) => view,
            Err(problem) => return Ok(Err(("WorkloadNotFound", problem))),
        };
        let name = &self.regarding.name;
        let rollout_spec = match load_spec(&self.ctx.client, &self.namespace, name, spec).await {
            Ok(rollout_spec) => rollout_spec,
            Err(SpecError::Invalid(problems)) => {
                return Ok(Err(("InvalidSpec", problems.to_string())))
            }
            Err(SpecError::Api(error)) => return Err(error.into()),
        };
        let target = plugin_object(spec, &self.namespace);
        let pusher = PluginPusher::new(self.ctx.client.clone(), target.clone());
        let mut in_force = None;
        let problem = match pusher.current().await {
            Ok(Some(config)) => {
                let route = spec.routes.first().map(String::as_str).unwrap_or_default();
                match TrafficState::from_config(&config, route) {
                    Some((split, _)) => {
                        in_force = Some(split);
                        None
                    }
                    None => Some(format!("{target} has no route entry {route:?}")),
                }
            }
            Ok(None) => Some(format!(
                "{target} has no filter configuration; write the initial one in its manifest"
            )),
            Err(PushError::Api(ApiError::NotFound { .. })) => {
                Some(format!("{target} does not exist"))
            }
            Err(PushError::Api(error)) => return Err(error.into()),
            Err(other) => Some(other.to_string()),
        };
        match (problem, in_force) {
            (None, Some(in_force)) => Ok(Ok(World {
                stable,
                canary,
                spec: rollout_spec,
                target,
                in_force,
            })),
            (problem, _) => Ok(Err(("InvalidTarget", problem.unwrap_or_default()))),
        }
    }

    /// A Deployment, or why it cannot be used (a problem of the spec).
    async fn workload(
        &self,
        workloads: &Workloads,
        name: &str,
    ) -> Result<Result<WorkloadView, String>, Error> {
        match workloads.get(name).await {
            Ok(view) => Ok(Ok(view)),
            Err(WorkloadError::Api(ApiError::NotFound { .. })) => Ok(Err(format!(
                "deployment {name:?} does not exist in namespace {:?}",
                self.namespace
            ))),
            Err(WorkloadError::Api(error)) => Err(error.into()),
            Err(WorkloadError::Malformed(error)) => Ok(Err(error.to_string())),
        }
    }

    /// Reports a rollout that cannot run as it is: `SpecValid` False with
    /// `reason`, one Warning event when the problem is new. Nothing else
    /// changes: the split in force and the saved position stay.
    async fn invalid(&mut self, reason: &str, problem: String) -> Result<Duration, Error> {
        let mut status = self.previous.clone();
        status.observed_generation = self.generation();
        if status.state.is_none() {
            status.phase = Some("Invalid".to_owned());
        }
        status.message = Some(problem.clone());
        let known = condition(&self.previous, SPEC_VALID)
            .is_some_and(|c| c.status == "False" && c.message == problem);
        status.conditions = with_condition(
            &status.conditions,
            ConditionValue::new(SPEC_VALID, false, reason, problem.clone()),
            self.ctx.clock.now(),
            self.generation(),
        );
        if !known {
            tracing::warn!(reason, "{problem}");
            self.notes.push(Note::warning(reason, "Validate", problem));
        }
        self.ctx.runners.take(&self.key);
        self.writer.write_if_changed(&status).await?;
        Ok(self.ctx.timing.idle)
    }
}
