//! One reconcile of one `CanaryRollout`: read what the cluster reports,
//! restore the state machine from `status`, let it measure and decide,
//! save the decision, then act on the cluster and report.
//!
//! Order matters for safety, as in the file-based controller:
//!
//! 1. A command annotation is removed before it is obeyed (at most once).
//! 2. The Deployments, the spec's templates and the filter configuration
//!    in force are read.
//! 3. The machine is restored (or started, once the canary is ready),
//!    takes the due measurements, and ticks.
//! 4. If it decided anything, the new state is written to `status` before
//!    anything acts on it, so a controller that dies after a decision
//!    resumes from it and never repeats or loses it. Then one Event per
//!    decision.
//! 5. The workload plan is carried out in order, stopping at the first
//!    failure (a rollback's scale-down never runs before its weight-0 push
//!    succeeded).
//! 6. The status is written again with what is now in force, if it
//!    changed. A reconcile that finds nothing to do writes nothing.
//!
//! It returns when to look again: the machine's next wake-up, sooner while
//! waiting for workloads or after a failure.

mod push_locks;
mod status_writer;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use canary_config::FilterConfig;
use canary_kube::{ApiError, PluginObject, PluginPusher};
use canary_rollout::ports::Clock;
use canary_rollout::{ApplyError, Command, Event as Decided, Phase, Rollout, Status, TrafficState};
use canary_sources::Sources;
use kube::api::Api;
use kube::{Client, CustomResourceExt, ResourceExt};
use serde_json::json;

use crate::events::{EventRecorder, Note, Regarding};
use crate::fingerprint::template_fingerprint;
use crate::resource::{CanaryRollout, CanaryRolloutSpec, Promotion, TargetKind};
use crate::spec_source::{load_spec, SpecError};
use crate::status::{
    condition, phase_name, traffic_status, with_machine, without_machine, ConditionValue,
    PROGRESSING, SPEC_VALID, TRAFFIC_PUSHED,
};
use crate::workload::{plan, PlanInput, Stage, WorkloadAction, WorkloadView, Workloads};

pub use push_locks::PushLocks;
use status_writer::StatusWriter;
use steps::{ActionFailure, Reconcile, Targets};

/// How soon to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// While waiting for a Deployment or after a failed action.
    pub waiting: Duration,
    /// Longest sleep of a running rollout (it also notices a new canary
    /// template this often).
    pub running: Duration,
    /// A promoted, aborted or invalid rollout: how often to check for a
    /// new canary version or a fixed spec.
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
    /// Metric sources (the Kubernetes one is made per rollout, reading
    /// its namespace by default).
    pub providers: Sources,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Where Events go.
    pub events: EventRecorder,
    /// Serialises writes to one Istio object.
    pub push_locks: PushLocks,
    /// Requeue times.
    pub timing: Timing,
}

/// Why a reconcile stopped early (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The object has no namespace (the resource is namespaced; only a
    /// malformed object lacks one).
    #[error("canaryrollout {0:?} has no namespace")]
    NoNamespace(String),
    /// A call to the API server failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The status could not be written as JSON.
    #[error("cannot write the status as JSON: {0}")]
    Encode(#[from] serde_json::Error),
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

/// The split `config` holds for the first of `routes`.
pub fn in_force_split(
    config: &FilterConfig,
    routes: &[String],
) -> Result<TrafficState, ApplyError> {
    let name = routes
        .first()
        .ok_or_else(|| ApplyError::MissingRoute(String::new()))?;
    TrafficState::from_config(config, name)
        .map(|(traffic, _)| traffic)
        .ok_or_else(|| ApplyError::MissingRoute(name.clone()))
}

/// The reconcile of `object`; returns when to look again.
pub async fn reconcile_rollout(
    object: &CanaryRollout,
    ctx: &Context,
) -> Result<Duration, ReconcileError> {
    let name = object.name_any();
    let namespace = object
        .namespace()
        .ok_or_else(|| ReconcileError::NoNamespace(name.clone()))?;
    let spec = &object.spec;
    let previous = object.status.clone().unwrap_or_default();
    let regarding = Regarding {
        namespace: namespace.clone(),
        name: name.clone(),
        uid: object.metadata.uid.clone(),
    };
    let mut writer = StatusWriter {
        api: Api::namespaced_with(
            ctx.client.clone(),
            &namespace,
            &CanaryRollout::api_resource(),
        ),
        namespace: namespace.clone(),
        name: name.clone(),
        resource_version: object.metadata.resource_version.clone(),
        written: previous.clone(),
    };
    let mut reconcile = Reconcile {
        ctx,
        spec,
        namespace: &namespace,
        generation: object.metadata.generation,
        regarding: &regarding,
        previous: &previous,
        notes: Vec::new(),
    };

    let command = reconcile.take_command(object, &mut writer).await?;

    let workloads = Workloads::new(ctx.client.clone(), &namespace);
    let stable = match reconcile
        .workload(&workloads, &spec.stable_workload)
        .await?
    {
        Ok(view) => view,
        Err(problem) => {
            return reconcile
                .invalid("WorkloadNotFound", problem, &mut writer)
                .await
        }
    };
    let canary = match reconcile
        .workload(&workloads, &spec.canary_workload)
        .await?
    {
        Ok(view) => view,
        Err(problem) => {
            return reconcile
                .invalid("WorkloadNotFound", problem, &mut writer)
                .await
        }
    };
    let rollout_spec = match load_spec(&ctx.client, &namespace, &name, spec).await {
        Ok(rollout_spec) => rollout_spec,
        Err(SpecError::Invalid(problems)) => {
            return reconcile
                .invalid("InvalidSpec", problems.to_string(), &mut writer)
                .await
        }
        Err(SpecError::Api(error)) => return Err(error.into()),
    };
    let target = plugin_object(spec, &namespace);
    let pusher = PluginPusher::new(ctx.client.clone(), target.clone());
    let in_force = match reconcile.split_in_force(&pusher).await? {
        Ok(split) => split,
        Err(problem) => {
            return reconcile
                .invalid("InvalidTarget", problem, &mut writer)
                .await
        }
    };

    // The machine: restored, restarted, or started once the canary is ready.
    let now = ctx.clock.now();
    let revision = rollout_revision(spec, &canary);
    let mut decided: Vec<Decided> = Vec::new();
    let mut machine = reconcile.restore(&rollout_spec, &revision);
    let mut state_changed = previous.canary_revision.as_deref() != Some(revision.as_str());
    if machine.is_none() && previous.state.is_some() {
        state_changed = true;
    }
    let mut command = command;
    if command == Some(Command::Retry)
        && machine
            .as_ref()
            .is_some_and(|m| m.phase() == Phase::Aborted)
    {
        reconcile.notes.push(Note::normal(
            "Retried",
            "Command",
            "retry: the rollout starts again from the first step once the canary is ready",
        ));
        machine = None;
        command = None;
        state_changed = true;
    }
    let abort_while_pending = machine.is_none() && command == Some(Command::Abort);
    if machine.is_none() && (canary.fully_ready() || abort_while_pending) {
        let (started, decision) = Rollout::start(Arc::clone(&rollout_spec), now);
        decided.extend(decision.events);
        machine = Some(started);
    }
    match (machine.as_mut(), command) {
        (Some(rollout), Some(command)) => reconcile.obey(rollout, command, now, &mut decided),
        (None, Some(command)) => reconcile.notes.push(Note::warning(
            "CommandRefused",
            "Command",
            format!("cannot {command}: no rollout runs yet; it starts once canary Deployment {} is ready", canary.name),
        )),
        _ => {}
    }
    if let Some(rollout) = machine.as_mut() {
        decided.extend(reconcile.measure_due(rollout, &namespace).await);
        decided.extend(rollout.tick(ctx.clock.now()).events);
    }
    state_changed |= !decided.is_empty();

    // The plan, from the machine's wish and what the cluster reports.
    let stage = match machine.as_ref().map(Rollout::phase) {
        None => Stage::Pending,
        Some(Phase::Promoted) => Stage::Promoted,
        Some(Phase::Aborted) => Stage::Aborted,
        Some(_) => Stage::Running,
    };
    let wanted = machine.as_ref().map_or_else(
        || TrafficState::initial(&spec.stable_version, &spec.canary_version),
        |m| m.traffic().clone(),
    );
    let plan = plan(&PlanInput {
        stage,
        promotion: spec.promotion,
        wanted: &wanted,
        in_force: &in_force,
        stable_version: &spec.stable_version,
        canary_version: &spec.canary_version,
        stable: &stable,
        canary: &canary,
    });

    // The decision is durable before anything acts on it.
    let mut status = previous.clone();
    status.observed_generation = object.metadata.generation;
    status.canary_revision = Some(revision);
    match &machine {
        Some(rollout) => with_machine(&mut status, rollout, ctx.clock.now()),
        None => without_machine(&mut status),
    }
    if !state_changed {
        // Only the machine's clock moved: keep the saved state, so a quiet
        // reconcile writes nothing.
        status.state = previous.state.clone();
    }
    let machine_phase = machine.as_ref().map(Rollout::phase);
    let machine_message = machine
        .as_ref()
        .and_then(Rollout::message)
        .map(str::to_owned);
    status.phase = Some(phase_name(stage, machine_phase, plan.settled()).to_owned());
    status.message = plan.waiting.clone().or_else(|| machine_message.clone());
    status.traffic = Some(traffic_status(&in_force));
    reconcile.set(
        &mut status,
        ConditionValue::new(SPEC_VALID, true, "Valid", ""),
    );
    reconcile.set(
        &mut status,
        progressing(stage, machine_phase, plan.settled()),
    );
    if state_changed {
        writer.write(&status).await?;
    }
    let mut notes = std::mem::take(&mut reconcile.notes);
    notes.extend(decided.iter().filter_map(Note::from_decision));
    ctx.events.publish(&regarding, &notes, now).await;

    // Act, in plan order, stopping at the first failure.
    let mut split_now = in_force;
    let mut failure: Option<ActionFailure> = None;
    let targets = Targets {
        pusher: &pusher,
        rollout_spec: &rollout_spec,
        workloads: &workloads,
        stable: &stable,
        canary: &canary,
        returns_to_stable: stage == Stage::Promoted && spec.promotion == Promotion::CopyTemplate,
    };
    for action in &plan.actions {
        match reconcile.act(action, &targets).await {
            Ok(note) => {
                if let WorkloadAction::Push(split) = action {
                    split_now = split.clone();
                }
                if let Some(note) = note {
                    ctx.events
                        .publish(&regarding, &[note], ctx.clock.now())
                        .await;
                }
            }
            Err(error) => {
                tracing::warn!(rollout = %name, namespace = %namespace, ?action, "action failed: {}", error.message);
                failure = Some(error);
                break;
            }
        }
    }

    // What is in force now.
    let settled = plan.waiting.is_none() && failure.is_none();
    status.phase = Some(phase_name(stage, machine_phase, settled).to_owned());
    status.message = failure
        .as_ref()
        .map(|error| error.message.clone())
        .or_else(|| plan.waiting.clone())
        .or(machine_message);
    status.traffic = Some(traffic_status(&split_now));
    reconcile.set(&mut status, progressing(stage, machine_phase, settled));
    let pushed = match &failure {
        Some(ActionFailure {
            push: true,
            message,
        }) => ConditionValue::new(TRAFFIC_PUSHED, false, "PushFailed", message.clone()),
        _ if plan.held => ConditionValue::new(
            TRAFFIC_PUSHED,
            false,
            "Held",
            plan.waiting.clone().unwrap_or_default(),
        ),
        _ => ConditionValue::new(TRAFFIC_PUSHED, true, "InForce", split_now.to_string()),
    };
    let warning = match (&failure, plan.held) {
        (
            Some(ActionFailure {
                push: true,
                message,
            }),
            _,
        ) => Some(Note::warning("PushFailed", "Push", message.clone())),
        (Some(ActionFailure { message, .. }), _) => {
            Some(Note::warning("ActionFailed", "Scale", message.clone()))
        }
        (None, true) => Some(Note::warning(
            "TrafficHeld",
            "Push",
            plan.waiting.clone().unwrap_or_default(),
        )),
        (None, false) => None,
    };
    let was = condition(&previous, TRAFFIC_PUSHED).map(|c| (c.status.clone(), c.reason.clone()));
    reconcile.set(&mut status, pushed);
    let is = condition(&status, TRAFFIC_PUSHED).map(|c| (c.status.clone(), c.reason.clone()));
    if let Some(warning) = warning {
        if was != is || warning.reason == "ActionFailed" {
            ctx.events
                .publish(&regarding, &[warning], ctx.clock.now())
                .await;
        }
    }
    writer.write_if_changed(&status).await?;

    let timing = ctx.timing;
    let requeue = if failure.is_some() || !settled {
        timing.waiting
    } else {
        match machine.as_ref() {
            Some(rollout) if rollout.state().status() == Status::Progressing => {
                match rollout.next_wake() {
                    Some(at) => at.since(ctx.clock.now()).min(timing.running),
                    None => timing.running,
                }
            }
            _ => timing.idle,
        }
    };
    Ok(requeue)
}

/// The `Progressing` condition for where the rollout is.
fn progressing(stage: Stage, machine: Option<Phase>, settled: bool) -> ConditionValue {
    let phase = phase_name(stage, machine, settled);
    match phase {
        "Promoted" => ConditionValue::new(
            PROGRESSING,
            false,
            "Promoted",
            "the canary is the stable version",
        ),
        "Aborted" => ConditionValue::new(
            PROGRESSING,
            false,
            "Aborted",
            "rolled back: the canary gets no traffic",
        ),
        other => ConditionValue::new(PROGRESSING, true, other, ""),
    }
}
