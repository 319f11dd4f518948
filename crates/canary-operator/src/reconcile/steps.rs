//! The parts of one reconcile: reading, restoring, measuring, acting,
//! reporting a rollout that cannot run.

use std::sync::Arc;
use std::time::Duration;

use canary_analysis::{MeasurementResult, Timestamp};
use canary_kube::{ApiError, PluginObject, PluginPusher, PushError};
use canary_rollout::driver::MeasureRequest;
use canary_rollout::ports::Versions;
use canary_rollout::{
    ApplyError, Command, Event as Decided, RecordError, Rollout, RolloutSpec, RolloutState,
    TrafficState,
};
use canary_sources::kubernetes::KubernetesSource;
use canary_sources::Sources;
use kube::api::{Api, Patch, PatchParams};
use kube::ResourceExt;

use super::{in_force_split, Context, ReconcileError, StatusWriter};
use crate::commands::{parse_command, removal_patch, COMMAND_ANNOTATION};
use crate::events::{Note, Regarding};
use crate::permissions::PATCH_ROLLOUTS;
use crate::resource::{CanaryRollout, CanaryRolloutSpec, CanaryRolloutStatus};
use crate::status::{condition, with_condition, ConditionValue, SPEC_VALID};
use crate::workload::apply::WorkloadError;
use crate::workload::{WorkloadAction, WorkloadView, Workloads};

/// Why an action did not complete.
#[derive(Debug, thiserror::Error)]
enum ActionError {
    #[error(transparent)]
    Push(#[from] PushError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("{0} has no filter configuration to apply the split to")]
    NoConfig(PluginObject),
    #[error(transparent)]
    Workload(#[from] ApiError),
}

/// An action that failed: whether it was the push (the split in force is
/// not the one wanted) and why.
#[derive(Debug)]
pub(super) struct ActionFailure {
    pub(super) push: bool,
    pub(super) message: String,
}

/// What the actions of one reconcile act on.
pub(super) struct Targets<'a> {
    pub(super) pusher: &'a PluginPusher,
    pub(super) rollout_spec: &'a RolloutSpec,
    pub(super) workloads: &'a Workloads,
    pub(super) stable: &'a WorkloadView,
    pub(super) canary: &'a WorkloadView,
    /// A push now ends a `copyTemplate` promotion.
    pub(super) returns_to_stable: bool,
}

/// One reconcile's inputs and the notes it collects before its first
/// status write.
pub(super) struct Reconcile<'a> {
    pub(super) ctx: &'a Context,
    pub(super) spec: &'a CanaryRolloutSpec,
    pub(super) namespace: &'a str,
    pub(super) generation: Option<i64>,
    pub(super) regarding: &'a Regarding,
    pub(super) previous: &'a CanaryRolloutStatus,
    pub(super) notes: Vec<Note>,
}

impl Reconcile<'_> {
    pub(super) fn set(&self, status: &mut CanaryRolloutStatus, value: ConditionValue) {
        status.conditions = with_condition(
            &status.conditions,
            value,
            self.ctx.clock.now(),
            self.generation,
        );
    }

    /// The command in the annotation, removed from the object first.
    pub(super) async fn take_command(
        &mut self,
        object: &CanaryRollout,
        writer: &mut StatusWriter,
    ) -> Result<Option<Command>, ReconcileError> {
        let Some(value) = object.annotations().get(COMMAND_ANNOTATION) else {
            return Ok(None);
        };
        let api: Api<CanaryRollout> = Api::namespaced(self.ctx.client.clone(), self.namespace);
        let params = PatchParams {
            field_manager: Some(canary_kube::FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let patch = removal_patch(object.metadata.resource_version.as_deref());
        let name = &self.regarding.name;
        let stored = api
            .patch(name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|error| PATCH_ROLLOUTS.error(self.namespace, Some(name), error))?;
        writer.resource_version = stored.metadata.resource_version;
        match parse_command(value) {
            Ok(command) => Ok(Some(command)),
            Err(reason) => {
                self.notes
                    .push(Note::warning("CommandRefused", "Command", reason));
                Ok(None)
            }
        }
    }

    /// A Deployment, or why it cannot be used (a problem of the spec).
    pub(super) async fn workload(
        &self,
        workloads: &Workloads,
        name: &str,
    ) -> Result<Result<WorkloadView, String>, ReconcileError> {
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

    /// The split the target holds for the rollout's routes, or why the
    /// target cannot carry the rollout (a problem of the spec).
    pub(super) async fn split_in_force(
        &self,
        pusher: &PluginPusher,
    ) -> Result<Result<TrafficState, String>, ReconcileError> {
        let object = pusher.object();
        match pusher.current().await {
            Ok(Some(config)) => Ok(in_force_split(&config, &self.spec.routes)
                .map_err(|error| format!("{object}: {error}"))),
            Ok(None) => Ok(Err(format!(
                "{object} has no filter configuration; write the initial one in its manifest"
            ))),
            Err(PushError::Api(ApiError::NotFound { .. })) => {
                Ok(Err(format!("{object} does not exist")))
            }
            Err(PushError::Api(error)) => Err(error.into()),
            Err(other) => Ok(Err(other.to_string())),
        }
    }

    /// The machine saved in the status, when it is for `revision` and fits
    /// the spec; a note says why it was not.
    pub(super) fn restore(&mut self, spec: &Arc<RolloutSpec>, revision: &str) -> Option<Rollout> {
        let saved = self.previous.canary_revision.as_deref();
        match (&self.previous.state, saved) {
            (Some(state), Some(saved)) if saved == revision => {
                let restored = serde_json::from_value::<RolloutState>(state.clone())
                    .map_err(|error| error.to_string())
                    .and_then(|state| {
                        Rollout::restore(Arc::clone(spec), state).map_err(|error| error.to_string())
                    });
                match restored {
                    Ok(rollout) => Some(rollout),
                    Err(reason) => {
                        self.notes.push(Note::warning(
                            "RolloutRestarted",
                            "Rollout",
                            format!("the saved state does not fit the rollout as it is now ({reason}); it starts again from the first step"),
                        ));
                        None
                    }
                }
            }
            (_, Some(saved)) if saved != revision => {
                self.notes.push(Note::normal(
                    "NewCanaryRevision",
                    "Rollout",
                    format!(
                        "canary Deployment {} or the rollout's versions changed (revision {revision}, was {saved}): a new rollout starts from the first step once the canary is ready",
                        self.spec.canary_workload
                    ),
                ));
                None
            }
            _ => None,
        }
    }

    pub(super) fn obey(
        &mut self,
        rollout: &mut Rollout,
        command: Command,
        now: Timestamp,
        decided: &mut Vec<Decided>,
    ) {
        match rollout.command(now, command) {
            Ok(decision) => {
                self.notes.push(Note::normal(
                    "CommandAccepted",
                    "Command",
                    format!("{command}: accepted"),
                ));
                decided.extend(decision.events);
            }
            Err(error) => self.notes.push(Note::warning(
                "CommandRefused",
                "Command",
                error.to_string(),
            )),
        }
    }

    /// Takes every due measurement (concurrently) and records them.
    pub(super) async fn measure_due(&self, rollout: &mut Rollout, namespace: &str) -> Vec<Decided> {
        let now = self.ctx.clock.now();
        let due: Vec<_> = rollout
            .due_measurements(now)
            .into_iter()
            .map(|due| (due.key, due.metric.clone()))
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        let providers = Sources {
            kubernetes: Some(Arc::new(KubernetesSource::new(
                self.ctx.client.clone(),
                namespace,
            ))),
            ..self.ctx.providers.clone()
        };
        let names = Versions {
            stable: &self.spec.stable_version,
            canary: &self.spec.canary_version,
        };
        let requests: Vec<MeasureRequest> = due
            .iter()
            .map(|(key, metric)| MeasureRequest {
                key: key.clone(),
                metric: metric.clone(),
                in_force_since: Some(canary_analysis::Timestamp::default()),
                carry: None,
            })
            .collect();
        let results: Vec<MeasurementResult> = futures::future::join_all(
            requests
                .iter()
                .map(|request| providers.measure(request, names, now)),
        )
        .await
        .into_iter()
        .map(|measured| measured.result)
        .collect();
        let mut decided = Vec::new();
        for ((key, metric), result) in due.into_iter().zip(results) {
            match rollout.record(self.ctx.clock.now(), &key, &result) {
                Ok(decision) => decided.extend(decision.events),
                Err(RecordError::Stale(why)) => {
                    tracing::debug!(metric = %metric.name, "dropped a late measurement: {why}")
                }
                Err(error) => {
                    tracing::warn!(metric = %metric.name, "measurement not recorded: {error}")
                }
            }
        }
        decided
    }

    /// Carries out one action; the event to publish when it did.
    pub(super) async fn act(
        &self,
        action: &WorkloadAction,
        targets: &Targets<'_>,
    ) -> Result<Option<Note>, ActionFailure> {
        let workload_failed = |error: ApiError| ActionFailure {
            push: false,
            message: error.to_string(),
        };
        let (canary, stable) = (&targets.canary.name, &targets.stable.name);
        match action {
            WorkloadAction::Push(split) => {
                self.push(targets.pusher, targets.rollout_spec, split)
                    .await
                    .map_err(|error| ActionFailure {
                        push: true,
                        message: error.to_string(),
                    })?;
                Ok(targets.returns_to_stable.then(|| {
                    Note::normal(
                        "TrafficReturnedToStable",
                        "Push",
                        format!(
                            "all traffic is on {} again, which now runs the pod template of {}",
                            self.spec.stable_version, self.spec.canary_version
                        ),
                    )
                }))
            }
            WorkloadAction::ScaleCanaryDown { from } => {
                targets
                    .workloads
                    .scale_down(canary, *from)
                    .await
                    .map_err(workload_failed)?;
                Ok(Some(Note::normal(
                    "ScaledDown",
                    "Scale",
                    format!("canary Deployment {canary} scaled from {from} to 0 replicas; stable Deployment {stable} untouched"),
                )))
            }
            WorkloadAction::ScaleCanaryUp { to } => {
                targets
                    .workloads
                    .scale_up(canary, *to)
                    .await
                    .map_err(workload_failed)?;
                Ok(Some(Note::normal(
                    "ScaledUp",
                    "Scale",
                    format!("canary Deployment {canary} scaled up to {to} replicas"),
                )))
            }
            WorkloadAction::CopyTemplateToStable => {
                targets
                    .workloads
                    .copy_template(targets.stable, targets.canary)
                    .await
                    .map_err(workload_failed)?;
                Ok(Some(Note::normal(
                    "TemplateCopied",
                    "CopyTemplate",
                    format!("pod template of {canary} copied to stable Deployment {stable}; traffic returns to it once it is fully ready"),
                )))
            }
        }
    }

    /// Writes `split` to the target: read, apply, write, under the
    /// target's lock so rollouts sharing it never lose each other's routes.
    async fn push(
        &self,
        pusher: &PluginPusher,
        spec: &RolloutSpec,
        split: &TrafficState,
    ) -> Result<(), ActionError> {
        let _guard = self.ctx.push_locks.lock(pusher.object()).await;
        let base = pusher
            .current()
            .await?
            .ok_or_else(|| ActionError::NoConfig(pusher.object().clone()))?;
        let config = split.apply(0, &base, &spec.routes)?;
        if config != base {
            pusher.push(&config, &spec.routes).await?;
        }
        Ok(())
    }

    /// Reports a rollout that cannot run as it is: `SpecValid` False with
    /// `reason`, one Warning event when the problem is new. Nothing else
    /// changes: the split in force stays.
    pub(super) async fn invalid(
        &mut self,
        reason: &str,
        problem: String,
        writer: &mut StatusWriter,
    ) -> Result<Duration, ReconcileError> {
        let mut status = self.previous.clone();
        status.observed_generation = self.generation;
        if status.state.is_none() {
            status.phase = Some("Invalid".to_owned());
        }
        status.message = Some(problem.clone());
        let known = condition(self.previous, SPEC_VALID)
            .is_some_and(|c| c.status == "False" && c.message == problem);
        self.set(
            &mut status,
            ConditionValue::new(SPEC_VALID, false, reason, problem.clone()),
        );
        let mut notes = std::mem::take(&mut self.notes);
        if !known {
            notes.push(Note::warning(reason, "Validate", problem));
        }
        self.ctx
            .events
            .publish(self.regarding, &notes, self.ctx.clock.now())
            .await;
        writer.write_if_changed(&status).await?;
        Ok(self.ctx.timing.idle)
    }
}
