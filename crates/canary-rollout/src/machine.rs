//! The rollout state machine: given the spec, the clock and measurement
//! results, it decides the traffic split, when to pause, promote or roll
//! back, and says why.
//!
//! It reads no clock and does no I/O. The caller loops:
//!
//! 1. [`Rollout::due_measurements`] at `now`: take those measurements and
//!    hand each result to [`Rollout::record`];
//! 2. [`Rollout::tick`] when [`Rollout::next_wake`] comes (pauses end,
//!    deadlines pass); [`Rollout::command`] when a person says so;
//! 3. after each [`Decision`] whose traffic changed, push
//!    [`TrafficState::apply`] of the new split, and persist
//!    [`Rollout::state`].
//!
//! Safety first: a Failed or Error analysis (inline or background) rolls
//! back at once, even while paused; a rollback sets the canary to 0% and
//! switches the override header off in the same decision.

use std::sync::Arc;

use canary_analysis::metric::Metric;
use canary_analysis::time::format_duration;
use canary_analysis::{
    AnalysisPhase, AnalysisRun, AnalysisSpec, MeasurementResult, RunState, Timestamp,
};
use canary_config::Weight;
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandError};
use crate::event::{Event, EventKind};
use crate::spec::{RolloutSpec, Step};
use crate::traffic::TrafficState;

/// Where the rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Working through the steps (possibly paused).
    Progressing,
    /// Done: the canary is the stable version.
    Promoted,
    /// Rolled back: the canary gets no traffic.
    Aborted,
}

/// Which analysis a measurement belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AnalysisSlot {
    /// The analysis of step `n` (0-based).
    Step(usize),
    /// The background analysis.
    Background,
}

/// Why the rollout is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PauseReason {
    /// A pause step.
    Step,
    /// A person paused it.
    Manual,
    /// The proxies showed the canary a smaller share than intended after
    /// they had shown the intended one (someone lowered it behind the
    /// rollout's back): only a person raises it again.
    Drift,
}

/// The phase as people see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Moving through the steps.
    Progressing,
    /// Paused until `until`, or until a person resumes when `None`.
    Paused {
        /// Why.
        reason: PauseReason,
        /// When the pause ends by itself.
        until: Option<Timestamp>,
    },
    /// An analysis was inconclusive: a person promotes or aborts.
    PausedInconclusive {
        /// Which analysis.
        analysis: AnalysisSlot,
    },
    /// The canary is the stable version.
    Promoted,
    /// Rolled back.
    Aborted,
}

/// Identifies one measurement request, so a late result cannot land in a
/// newer run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MeasurementKey {
    /// Which analysis.
    pub analysis: AnalysisSlot,
    /// Which run of it.
    pub run: u64,
    /// Which metric.
    pub metric: String,
}

/// A measurement to take now.
#[derive(Debug, Clone)]
pub struct DueMeasurement<'a> {
    /// Hand this back with the result.
    pub key: MeasurementKey,
    /// The metric, with its provider settings.
    pub metric: &'a Metric,
}

/// What a call decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What happened, in order.
    pub events: Vec<Event>,
    /// The split after the call.
    pub traffic: TrafficState,
    /// Whether the split differs from before the call (push it).
    pub traffic_changed: bool,
    /// The phase after the call.
    pub phase: Phase,
}

/// Why a result was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The run it was taken for is over (aborted, promoted, skipped).
    #[error("stale measurement: {0}")]
    Stale(String),
    /// The analysis refused it.
    #[error(transparent)]
    Analysis(#[from] canary_analysis::RecordError),
}

/// Why a saved state does not fit the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("saved rollout state does not match the rollout: {0}")]
pub struct RestoreError(pub String);

/// Everything about the rollout's position except the analysis runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Progress {
    status: Status,
    step: usize,
    step_started_at: Timestamp,
    pause_until: Option<Timestamp>,
    manual_pause: bool,
    awaiting_decision: Option<AnalysisSlot>,
    traffic: TrafficState,
    runs_started: u64,
    now: Timestamp,
    message: Option<String>,
    /// Identifies this attempt of the rollout: when it started, or was
    /// last retried (unix ms). Pushed with every split, so a proxy's
    /// in-proxy guard can tell a new attempt from the one it stopped.
    #[serde(default)]
    generation: u64,
    /// Since when the split decided last has not been seen in force by
    /// every proxy; the steps do not move on (and a timed pause does not
    /// count down) until it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unverified_since: Option<Timestamp>,
    /// Set while paused because the proxies showed the canary less
    /// traffic than intended: what they showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drift: Option<String>,
}

/// A saved analysis run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedRun {
    /// Run number.
    pub id: u64,
    /// Its state.
    pub run: RunState,
}

/// The rollout's state, to persist after each decision and restore with
/// [`Rollout::restore`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    #[serde(flatten)]
    progress: Progress,
    /// The current step's analysis run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<SavedRun>,
    /// The background analysis run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<SavedRun>,
}

impl RolloutState {
    /// Where the rollout is.
    pub fn status(&self) -> Status {
        self.progress.status
    }

    /// Index of the current step (the number of steps once all are done).
    pub fn step(&self) -> usize {
        self.progress.step
    }

    /// The split.
    pub fn traffic(&self) -> &TrafficState {
        &self.progress.traffic
    }

    /// The attempt's generation.
    pub fn generation(&self) -> u64 {
        self.progress.generation
    }

    /// The same state with the machine's clock left out, to tell whether
    /// anything but the time changed since it was last saved.
    pub fn without_clock(&self) -> RolloutState {
        let mut state = self.clone();
        state.progress.now = Timestamp::default();
        state
    }

    /// A finished rollout (promoted or aborted) made to fit `spec`: its
    /// position past the last step and no runs. Finished rollouts keep no
    /// step to resume, so an edited rollout still restores them.
    pub fn finished_for(mut self, spec: &RolloutSpec) -> RolloutState {
        if self.progress.status != Status::Progressing {
            self.progress.step = self.progress.step.min(spec.steps.len());
            self.inline = None;
            self.background = None;
        }
        self
    }
}

#[derive(Debug, Clone)]
struct ActiveRun {
    id: u64,
    run: AnalysisRun,
}

/// A rollout in progress.
#[derive(Debug, Clone)]
pub struct Rollout {
    spec: Arc<RolloutSpec>,
    progress: Progress,
    inline: Option<ActiveRun>,
    background: Option<ActiveRun>,
    /// Whether a new split must be confirmed ([`Rollout::confirm_split`])
    /// before the steps move on. Off, a split counts as in force the
    /// moment it is decided (the machine alone, in tests).
    gated: bool,
}

impl Rollout {
    /// Starts the rollout at `now`: everything on stable, then the first
    /// steps that need no waiting (usually the first `setWeight`).
    pub fn start(spec: Arc<RolloutSpec>, now: Timestamp) -> (Rollout, Decision) {
        Rollout::begin(spec, now, false)
    }

    /// Starts the rollout at `now` gated on confirmation (see
    /// [`Rollout::gate_on_confirmation`]): the first `setWeight` waits until
    /// the proxies show it.
    pub fn start_gated(spec: Arc<RolloutSpec>, now: Timestamp) -> (Rollout, Decision) {
        Rollout::begin(spec, now, true)
    }

    fn begin(spec: Arc<RolloutSpec>, now: Timestamp, gated: bool) -> (Rollout, Decision) {
        let traffic = TrafficState::initial(&spec.stable_version, &spec.canary_version);
        let mut rollout = Rollout {
            progress: Progress {
                status: Status::Progressing,
                step: 0,
                step_started_at: now,
                pause_until: None,
                manual_pause: false,
                awaiting_decision: None,
                traffic: traffic.clone(),
                runs_started: 0,
                now,
                message: None,
                generation: now.millis(),
                unverified_since: None,
                drift: None,
            },
            inline: None,
            background: None,
            gated,
            spec,
        };
        let mut events = vec![rollout.event(
            now,
            EventKind::Started,
            format!(
                "rollout {} started: {} → {} on route{} {}",
                rollout.spec.name,
                rollout.spec.stable_version,
                rollout.spec.canary_version,
                if rollout.spec.routes.len() == 1 {
                    ""
                } else {
                    "s"
                },
                rollout.spec.routes.join(", ")
            ),
        )];
        rollout.enter_step(now, &mut events);
        rollout.advance(now, &mut events);
        let decision = rollout.decision(events, &traffic);
        (rollout, decision)
    }

    /// Continues a rollout from a saved state.
    pub fn restore(spec: Arc<RolloutSpec>, state: RolloutState) -> Result<Rollout, RestoreError> {
        let progress = state.progress;
        if progress.step > spec.steps.len() {
            return Err(RestoreError(format!(
                "step {} was saved, the rollout has {} steps",
                progress.step,
                spec.steps.len()
            )));
        }
        let inline = match state.inline {
            None => None,
            Some(saved) => {
                let Some(Step::Analysis(analysis)) = spec.steps.get(progress.step) else {
                    return Err(RestoreError(format!(
                        "an analysis run was saved for step {}, which is not an analysis step",
                        progress.step + 1
                    )));
                };
                Some(restore_run(analysis, saved)?)
            }
        };
        let background = match (state.background, &spec.background) {
            (None, _) => None,
            (Some(saved), Some(bg)) => Some(restore_run(&bg.analysis, saved)?),
            (Some(_), None) => {
                return Err(RestoreError(
                    "a background analysis run was saved, the rollout has none".into(),
                ))
            }
        };
        Ok(Rollout {
            spec,
            progress,
            inline,
            background,
            gated: false,
        })
    }

    /// From now on, a new split only counts once [`Rollout::confirm_split`]
    /// says every proxy shows it: until then the steps do not move on and
    /// a timed pause does not count down. The split decided last (the one
    /// in force before a restart too) starts unconfirmed.
    pub fn gate_on_confirmation(&mut self, now: Timestamp) {
        self.gated = true;
        if self.progress.unverified_since.is_none() {
            self.progress.unverified_since = Some(now.max(self.progress.now));
        }
    }

    /// Whether the split decided last waits for confirmation.
    pub fn awaiting_confirmation(&self) -> bool {
        self.progress.unverified_since.is_some()
    }

    /// Every proxy shows the split decided last, as of `now`: the steps go
    /// on, and a timed pause resumes counting where it stopped.
    pub fn confirm_split(&mut self, now: Timestamp) -> Decision {
        let now = self.clock(now);
        let before = self.progress.traffic.clone();
        let mut events = Vec::new();
        if let Some(since) = self.progress.unverified_since.take() {
            // A pause stops counting while its split is not in force: the
            // time without it is added back, never the pause restarted.
            if let Some(until) = self.progress.pause_until.as_mut() {
                *until = until.plus(now.since(since).min(
                    // Only the part of the gap that fell inside the pause.
                    now.since(self.progress.step_started_at),
                ));
            }
            self.advance(now, &mut events);
        }
        self.decision(events, &before)
    }

    /// The split decided last is no longer seen in force (a proxy shows
    /// something else, or stopped reporting): the steps wait again until
    /// [`Rollout::confirm_split`].
    pub fn unconfirm_split(&mut self, now: Timestamp) {
        let now = self.clock(now);
        if self.gated && self.progress.unverified_since.is_none() {
            self.progress.unverified_since = Some(now);
        }
    }

    /// The proxies show the canary less traffic than intended after they
    /// had shown the intended split: pause until a person resumes (the
    /// canary's share is never raised back without one) or aborts.
    /// `shown` says what they show.
    pub fn pause_for_drift(&mut self, now: Timestamp, shown: String) -> Decision {
        let now = self.clock(now);
        let before = self.progress.traffic.clone();
        let mut events = Vec::new();
        if self.progress.status == Status::Progressing && self.progress.drift.is_none() {
            let reason = format!(
                "the proxies show less canary traffic than intended ({shown}; intended {}): paused; \
                 resume to restore the intended split, or abort to roll back",
                self.progress.traffic
            );
            self.progress.drift = Some(shown);
            self.unconfirm_split(now);
            events.push(self.event(now, EventKind::DriftDown, reason));
        }
        self.decision(events, &before)
    }

    /// Rolls back for a reason found outside the analyses (the in-proxy
    /// guard tripped, a split never showed, the controller cannot go on);
    /// `kind` names it in the event.
    pub fn abort_for(&mut self, now: Timestamp, kind: EventKind, cause: String) -> Decision {
        let now = self.clock(now);
        let before = self.progress.traffic.clone();
        let mut events = Vec::new();
        if self.progress.status == Status::Progressing {
            events.push(self.event(now, kind, cause.clone()));
            self.abort(now, cause, &mut events);
        }
        self.decision(events, &before)
    }

    /// This attempt's generation (unix ms of its start or last retry).
    pub fn generation(&self) -> u64 {
        self.progress.generation
    }

    /// Where the rollout is.
    pub fn status(&self) -> Status {
        self.progress.status
    }

    /// The state to persist.
    pub fn state(&self) -> RolloutState {
        let save = |active: &Option<ActiveRun>| {
            active.as_ref().map(|a| SavedRun {
                id: a.id,
                run: a.run.state().clone(),
            })
        };
        RolloutState {
            progress: self.progress.clone(),
            inline: save(&self.inline),
            background: save(&self.background),
        }
    }

    /// The rollout.
    pub fn spec(&self) -> &RolloutSpec {
        &self.spec
    }

    /// The split to push.
    pub fn traffic(&self) -> &TrafficState {
        &self.progress.traffic
    }

    /// Index of the current step (the number of steps once all are done).
    pub fn step(&self) -> usize {
        self.progress.step
    }

    /// Why the rollout ended as it did, or is waiting.
    pub fn message(&self) -> Option<&str> {
        self.progress.message.as_deref()
    }

    /// The phase as people see it.
    pub fn phase(&self) -> Phase {
        match self.progress.status {
            Status::Promoted => return Phase::Promoted,
            Status::Aborted => return Phase::Aborted,
            Status::Progressing => {}
        }
        if let Some(analysis) = self.progress.awaiting_decision {
            return Phase::PausedInconclusive { analysis };
        }
        if self.progress.drift.is_some() {
            return Phase::Paused {
                reason: PauseReason::Drift,
                until: None,
            };
        }
        if self.progress.manual_pause {
            return Phase::Paused {
                reason: PauseReason::Manual,
                until: None,
            };
        }
        match self.spec.steps.get(self.progress.step) {
            Some(Step::Pause(_)) => Phase::Paused {
                reason: PauseReason::Step,
                until: self.progress.pause_until,
            },
            _ => Phase::Progressing,
        }
    }

    /// The analysis run of the current step, if any.
    pub fn step_analysis(&self) -> Option<&AnalysisRun> {
        self.inline.as_ref().map(|a| &a.run)
    }

    /// The background analysis run, if started.
    pub fn background_analysis(&self) -> Option<&AnalysisRun> {
        self.background.as_ref().map(|a| &a.run)
    }

    /// Measurements to take at `now`.
    pub fn due_measurements(&self, now: Timestamp) -> Vec<DueMeasurement<'_>> {
        if self.progress.status != Status::Progressing {
            return Vec::new();
        }
        let now = now.max(self.progress.now);
        self.active_runs()
            .flat_map(|(slot, active)| {
                active
                    .run
                    .due(now)
                    .into_iter()
                    .map(move |metric| DueMeasurement {
                        key: MeasurementKey {
                            analysis: slot,
                            run: active.id,
                            metric: metric.name.clone(),
                        },
                        metric,
                    })
            })
            .collect()
    }

    /// The next time something happens without input (a measurement is
    /// due, a pause ends, a deadline passes); `None` when only a person
    /// can move the rollout on, or it is over.
    pub fn next_wake(&self) -> Option<Timestamp> {
        if self.progress.status != Status::Progressing {
            return None;
        }
        let deadline = self.spec.progress_deadline;
        let mut times: Vec<Timestamp> = Vec::new();
        for (_, active) in self.active_runs() {
            times.extend(active.run.next_due());
            times.extend(active.run.starved_since().map(|t| t.plus(deadline)));
        }
        if !self.progress.manual_pause
            && self.progress.awaiting_decision.is_none()
            && self.progress.drift.is_none()
            && self.progress.unverified_since.is_none()
        {
            times.extend(self.progress.pause_until);
        }
        times.into_iter().min()
    }

    /// Lets time pass to `now`.
    pub fn tick(&mut self, now: Timestamp) -> Decision {
        let now = self.clock(now);
        let before = self.progress.traffic.clone();
        let mut events = Vec::new();
        self.advance(now, &mut events);
        self.decision(events, &before)
    }

    /// Records a measurement that finished at `now`.
    pub fn record(
        &mut self,
        now: Timestamp,
        key: &MeasurementKey,
        result: &MeasurementResult,
    ) -> Result<Decision, RecordError> {
        let now = self.clock(now);
        if self.progress.status != Status::Progressing {
            return Err(RecordError::Stale(format!(
                "the rollout is {:?}",
                self.progress.status
            )));
        }
        let current = match key.analysis {
            AnalysisSlot::Step(n) if n == self.progress.step => self.inline.as_mut(),
            AnalysisSlot::Step(_) => None,
            AnalysisSlot::Background => self.background.as_mut(),
        };
        let Some(active) = current.filter(|a| a.id == key.run) else {
            return Err(RecordError::Stale(format!(
                "run {} of {:?} is no longer running",
                key.run, key.analysis
            )));
        };
        let phase = active.run.record(now, &key.metric, result)?;
        let value = match result {
            MeasurementResult::Value { value, .. } => format!(" (value {value})"),
            MeasurementResult::Error(message) => format!(" ({message})"),
            MeasurementResult::NotEnoughData(why) => format!(" ({why})"),
        };
        let before = self.progress.traffic.clone();
        let mut events = vec![self.event(
            now,
            EventKind::Measured,
            format!(
                "{}: metric {} {phase}{value}",
                self.slot_name(key.analysis),
                key.metric
            ),
        )];
        self.advance(now, &mut events);
        Ok(self.decision(events, &before))
    }

    /// Carries out a person's command at `now`.
    pub fn command(&mut self, now: Timestamp, command: Command) -> Result<Decision, CommandError> {
        let now = self.clock(now);
        let before = self.progress.traffic.clone();
        let mut events = Vec::new();
        let refuse = |reason: String| CommandError { command, reason };
        match (command, self.progress.status) {
            (Command::Retry, Status::Aborted) => self.retry(now, &mut events),
            (Command::Retry, _) => {
                return Err(refuse("only an aborted rollout can be retried".into()))
            }
            (_, Status::Promoted) => return Err(refuse("the rollout is already promoted".into())),
            (_, Status::Aborted) => {
                return Err(refuse(
                    "the rollout is aborted; retry it to start again".into(),
                ))
            }
            (Command::Abort, Status::Progressing) => {
                self.abort(now, "aborted by a person".into(), &mut events);
            }
            (Command::PromoteFull, Status::Progressing) => {
                self.promote_now(
                    now,
                    "promoted fully by a person; the remaining steps do not run",
                    &mut events,
                );
            }
            (Command::Promote, Status::Progressing) => {
                self.promote_step(now, &mut events).map_err(refuse)?
            }
            (Command::Pause, Status::Progressing) => {
                if self.progress.manual_pause {
                    return Err(refuse("the rollout is already paused".into()));
                }
                self.progress.manual_pause = true;
                events.push(self.event(
                    now,
                    EventKind::Paused,
                    format!("paused by a person at {}", self.step_name()),
                ));
            }
            (Command::Resume, Status::Progressing) => {
                self.resume(now, &mut events).map_err(refuse)?
            }
        }
        self.advance(now, &mut events);
        Ok(self.decision(events, &before))
    }

    fn clock(&mut self, now: Timestamp) -> Timestamp {
        let now = now.max(self.progress.now);
        self.progress.now = now;
        now
    }

    fn active_runs(&self) -> impl Iterator<Item = (AnalysisSlot, &ActiveRun)> + '_ {
        let inline = self
            .inline
            .as_ref()
            .map(|a| (AnalysisSlot::Step(self.progress.step), a));
        let background = self
            .background
            .as_ref()
            .map(|a| (AnalysisSlot::Background, a));
        inline.into_iter().chain(background)
    }

    fn promote_step(&mut self, now: Timestamp, events: &mut Vec<Event>) -> Result<(), String> {
        self.progress.manual_pause = false;
        match self.progress.awaiting_decision.take() {
            Some(AnalysisSlot::Background) => {
                let reason = "a person decided to go on after the inconclusive background analysis; it starts again".to_owned();
                events.push(self.event(now, EventKind::StepSkipped, reason));
                self.background = None;
                self.start_background(now, events);
                return Ok(());
            }
            Some(AnalysisSlot::Step(_)) => {
                let reason = format!(
                    "{}: a person decided to go on after the inconclusive analysis",
                    self.step_name()
                );
                events.push(self.event(now, EventKind::StepSkipped, reason));
                self.inline = None;
                self.next_step(now, events);
                return Ok(());
            }
            None => {}
        }
        match self.spec.steps.get(self.progress.step) {
            Some(Step::Pause(_) | Step::Analysis(_)) => {
                let reason = format!("{}: skipped by a person", self.step_name());
                events.push(self.event(now, EventKind::StepSkipped, reason));
                if let Some(mut active) = self.inline.take() {
                    active.run.terminate();
                }
                self.next_step(now, events);
                Ok(())
            }
            _ => Err("there is no pause or analysis to skip right now".into()),
        }
    }

    fn resume(&mut self, now: Timestamp, events: &mut Vec<Event>) -> Result<(), String> {
        if let Some(shown) = self.progress.drift.take() {
            // A person accepts raising the canary back to the intended
            // split; it counts once every proxy shows it again.
            self.progress.manual_pause = false;
            self.unconfirm_split(now);
            events.push(self.event(
                now,
                EventKind::Resumed,
                format!(
                    "resumed by a person after drift (the proxies showed {shown}): {} is restored",
                    self.progress.traffic
                ),
            ));
            return Ok(());
        }
        if self.progress.manual_pause {
            self.progress.manual_pause = false;
            events.push(self.event(
                now,
                EventKind::Resumed,
                format!("resumed by a person at {}", self.step_name()),
            ));
            return Ok(());
        }
        if self.progress.awaiting_decision.is_some() {
            return Err("the analysis was inconclusive and needs a decision: promote to go on, or abort to roll back".into());
        }
        match self.spec.steps.get(self.progress.step) {
            Some(Step::Pause(None)) => {
                let reason = format!("{}: resumed by a person", self.step_name());
                events.push(self.event(now, EventKind::PauseEnded, reason));
                self.next_step(now, events);
                Ok(())
            }
            Some(Step::Pause(Some(_))) => Err(format!(
                "{} is a timed pause that ends at {}; use promote to skip it",
                self.step_name(),
                self.progress.pause_until.unwrap_or(now)
            )),
            _ => Err("the rollout is not paused".into()),
        }
    }

    fn retry(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        self.inline = None;
        self.background = None;
        self.progress.status = Status::Progressing;
        self.progress.step = 0;
        self.progress.step_started_at = now;
        self.progress.pause_until = None;
        self.progress.manual_pause = false;
        self.progress.awaiting_decision = None;
        self.progress.message = None;
        self.progress.drift = None;
        self.progress.generation = now.millis().max(self.progress.generation + 1);
        let reason = format!(
            "retried by a person: starting again from step 1 with {}",
            self.spec.canary_version
        );
        events.push(self.event(now, EventKind::Retried, reason));
        self.enter_step(now, events);
    }

    /// Works through everything that can happen at `now` without input.
    fn advance(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        while self.progress.status == Status::Progressing {
            self.start_background_if_due(now, events);
            if self.abort_on_failure(now, events) || self.abort_on_deadline(now, events) {
                return;
            }
            if self.progress.awaiting_decision.is_some() {
                return;
            }
            if self.pause_on_inconclusive(now, events)
                || self.progress.manual_pause
                || self.progress.drift.is_some()
                || self.progress.unverified_since.is_some()
            {
                return;
            }
            if !self.step_forward(now, events) {
                return;
            }
        }
    }

    /// Takes the current step as far as it goes; `true` when it moved on.
    fn step_forward(&mut self, now: Timestamp, events: &mut Vec<Event>) -> bool {
        let Some(step) = self.spec.steps.get(self.progress.step).cloned() else {
            self.promote_now(now, "all steps passed", events);
            return false;
        };
        match step {
            Step::SetWeight(weight) => {
                self.set_weight(now, weight, events);
                if self.progress.unverified_since.is_some() {
                    // The step is done once every proxy shows the weight.
                    return false;
                }
                self.next_step(now, events);
                true
            }
            Step::SetHeaderRoute(on) => {
                if self.progress.traffic.header_route != on {
                    self.progress.traffic.header_route = on;
                    self.split_changed(now);
                    let reason = if on {
                        format!(
                            "{}: override header on: requests that ask for {} get it",
                            self.step_name(),
                            self.spec.canary_version
                        )
                    } else {
                        format!("{}: override header off", self.step_name())
                    };
                    events.push(self.event(now, EventKind::HeaderRouteChanged, reason));
                }
                if self.progress.unverified_since.is_some() {
                    return false;
                }
                self.next_step(now, events);
                true
            }
            Step::Pause(_) => match self.progress.pause_until {
                Some(until) if until <= now => {
                    let waited = until.since(self.progress.step_started_at);
                    let reason =
                        format!("{}: waited {}", self.step_name(), format_duration(waited));
                    events.push(self.event(now, EventKind::PauseEnded, reason));
                    self.next_step(now, events);
                    true
                }
                _ => false,
            },
            Step::Analysis(_) => match self.inline.as_ref().map(|a| a.run.phase()) {
                Some(AnalysisPhase::Successful) => {
                    let reason = format!("{}: analysis passed", self.step_name());
                    events.push(self.event(now, EventKind::AnalysisSucceeded, reason));
                    self.inline = None;
                    self.next_step(now, events);
                    true
                }
                _ => false,
            },
        }
    }

    fn set_weight(&mut self, now: Timestamp, weight: Weight, events: &mut Vec<Event>) {
        if self.progress.traffic.canary_weight == weight {
            return;
        }
        self.progress.traffic.canary_weight = weight;
        self.split_changed(now);
        let reason = format!("{}: {}", self.step_name(), self.progress.traffic);
        events.push(self.event(now, EventKind::WeightChanged, reason));
    }

    /// The split changed: when gated, it waits for confirmation.
    fn split_changed(&mut self, now: Timestamp) {
        if self.gated {
            self.progress.unverified_since = Some(now);
        }
    }

    fn next_step(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        self.progress.step += 1;
        self.progress.step_started_at = now;
        self.progress.pause_until = None;
        self.enter_step(now, events);
    }

    /// What a step does as it begins: a pause sets its end, an analysis
    /// starts its run.
    fn enter_step(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        match self.spec.steps.get(self.progress.step).cloned() {
            Some(Step::Pause(duration)) => {
                self.progress.pause_until = duration.map(|d| now.plus(d));
                let reason = match duration {
                    Some(d) => format!("{}: pausing for {}", self.step_name(), format_duration(d)),
                    None => format!("{}: paused until a person resumes", self.step_name()),
                };
                events.push(self.event(now, EventKind::PauseStarted, reason));
            }
            Some(Step::Analysis(analysis)) => {
                let run = self.new_run(&analysis, now);
                let reason = format!(
                    "{}: analysis started ({})",
                    self.step_name(),
                    describe(&analysis)
                );
                events.push(self.event(now, EventKind::AnalysisStarted, reason));
                self.inline = Some(run);
            }
            _ => {}
        }
    }

    fn start_background_if_due(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        let Some(background) = &self.spec.background else {
            return;
        };
        if self.background.is_none()
            && self.progress.step >= background.starting_step
            && self.progress.step < self.spec.steps.len()
        {
            self.start_background(now, events);
        }
    }

    fn start_background(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        let Some(background) = self.spec.background.clone() else {
            return;
        };
        let run = self.new_run(&background.analysis, now);
        let reason = format!(
            "background analysis started at {} ({})",
            self.step_name(),
            describe(&background.analysis)
        );
        events.push(self.event(now, EventKind::AnalysisStarted, reason));
        self.background = Some(run);
    }

    fn new_run(&mut self, analysis: &Arc<AnalysisSpec>, now: Timestamp) -> ActiveRun {
        self.progress.runs_started += 1;
        ActiveRun {
            id: self.progress.runs_started,
            run: AnalysisRun::start(Arc::clone(analysis), now),
        }
    }

    fn abort_on_failure(&mut self, now: Timestamp, events: &mut Vec<Event>) -> bool {
        let failed = self.active_runs().find_map(|(slot, active)| {
            let phase = active.run.phase();
            phase.is_failure().then(|| {
                (
                    slot,
                    phase,
                    active.run.message().unwrap_or("its metrics").to_owned(),
                )
            })
        });
        let Some((slot, phase, message)) = failed else {
            return false;
        };
        let reason = format!("{}: analysis {phase}: {message}", self.slot_name(slot));
        events.push(self.event(now, EventKind::AnalysisFailed, reason.clone()));
        self.abort(now, reason, events);
        true
    }

    fn abort_on_deadline(&mut self, now: Timestamp, events: &mut Vec<Event>) -> bool {
        let deadline = self.spec.progress_deadline;
        let starved = self.active_runs().find_map(|(slot, active)| {
            active
                .run
                .starved_since()
                .filter(|since| since.plus(deadline) <= now)
                .map(|since| (slot, since))
        });
        let Some((slot, since)) = starved else {
            return false;
        };
        let reason = format!(
            "{}: not enough data since {since}, longer than progressDeadline ({})",
            self.slot_name(slot),
            format_duration(deadline)
        );
        self.abort(now, reason, events);
        true
    }

    fn pause_on_inconclusive(&mut self, now: Timestamp, events: &mut Vec<Event>) -> bool {
        let inconclusive = self
            .active_runs()
            .find(|(_, active)| active.run.phase() == AnalysisPhase::Inconclusive)
            .map(|(slot, active)| (slot, active.run.message().unwrap_or_default().to_owned()));
        let Some((slot, message)) = inconclusive else {
            return false;
        };
        self.progress.awaiting_decision = Some(slot);
        self.progress.message = Some(message.clone());
        let reason = format!(
            "{}: analysis inconclusive ({message}); paused: promote to go on, or abort to roll back",
            self.slot_name(slot)
        );
        events.push(self.event(now, EventKind::AnalysisInconclusive, reason));
        true
    }

    fn abort(&mut self, now: Timestamp, cause: String, events: &mut Vec<Event>) {
        for active in [&mut self.inline, &mut self.background]
            .into_iter()
            .flatten()
        {
            active.run.terminate();
        }
        self.progress.status = Status::Aborted;
        self.progress.manual_pause = false;
        self.progress.awaiting_decision = None;
        self.progress.pause_until = None;
        self.progress.drift = None;
        let before = self.progress.traffic.clone();
        self.progress.traffic.canary_weight = Weight::ZERO;
        self.progress.traffic.header_route = false;
        if self.progress.traffic != before {
            self.split_changed(now);
        }
        let reason = format!(
            "rolled back: {} gets 0%, {} serves all traffic ({cause})",
            self.spec.canary_version, self.progress.traffic.stable
        );
        self.progress.message = Some(cause);
        events.push(self.event(now, EventKind::Aborted, reason));
    }

    fn promote_now(&mut self, now: Timestamp, cause: &str, events: &mut Vec<Event>) {
        for active in [&mut self.inline, &mut self.background]
            .into_iter()
            .flatten()
        {
            active.run.terminate();
        }
        self.inline = None;
        self.progress.status = Status::Promoted;
        self.progress.manual_pause = false;
        self.progress.awaiting_decision = None;
        self.progress.pause_until = None;
        self.progress.step = self.spec.steps.len();
        self.progress.drift = None;
        self.progress.traffic = TrafficState {
            stable: self.spec.canary_version.clone(),
            canary: None,
            canary_weight: Weight::ZERO,
            header_route: false,
        };
        self.split_changed(now);
        self.progress.message = Some(cause.to_owned());
        let reason = format!(
            "{} promoted ({cause}): it is the stable version and serves all traffic",
            self.spec.canary_version
        );
        events.push(self.event(now, EventKind::Promoted, reason));
    }

    fn decision(&self, events: Vec<Event>, before: &TrafficState) -> Decision {
        Decision {
            events,
            traffic_changed: self.progress.traffic != *before,
            traffic: self.progress.traffic.clone(),
            phase: self.phase(),
        }
    }

    fn event(&self, at: Timestamp, kind: EventKind, reason: String) -> Event {
        Event { at, kind, reason }
    }

    /// "step 3 of 13 (setWeight 25%)".
    fn step_name(&self) -> String {
        let total = self.spec.steps.len();
        let n = self.progress.step;
        match self.spec.steps.get(n) {
            None => format!("after step {total} of {total}"),
            Some(step) => format!("step {} of {total} ({})", n + 1, step_label(step)),
        }
    }

    fn slot_name(&self, slot: AnalysisSlot) -> String {
        match slot {
            AnalysisSlot::Step(_) => self.step_name(),
            AnalysisSlot::Background => "background analysis".into(),
        }
    }
}

fn restore_run(analysis: &Arc<AnalysisSpec>, saved: SavedRun) -> Result<ActiveRun, RestoreError> {
    let run = AnalysisRun::restore(Arc::clone(analysis), saved.run)
        .map_err(|err| RestoreError(err.to_string()))?;
    Ok(ActiveRun { id: saved.id, run })
}

fn step_label(step: &Step) -> String {
    match step {
        Step::SetWeight(w) => format!("setWeight {w}"),
        Step::Pause(Some(d)) => format!("pause {}", format_duration(*d)),
        Step::Pause(None) => "pause".into(),
        Step::Analysis(a) => format!("analysis {}", a.templates.join(", ")),
        Step::SetHeaderRoute(on) => format!("setHeaderRoute {}", if *on { "on" } else { "off" }),
    }
}

fn describe(analysis: &AnalysisSpec) -> String {
    let metrics: Vec<&str> = analysis.metrics.iter().map(|m| m.name.as_str()).collect();
    format!(
        "templates {}: metrics {}",
        analysis.templates.join(", "),
        metrics.join(", ")
    )
}
