//! The rollout driver: the one place that decides what a rollout does,
//! for every shell that runs one (`canary run`, the Kubernetes operator,
//! the test simulator). It reads no clock and does no I/O.
//!
//! A shell calls [`Driver::step`] whenever something happened — time
//! passed, the proxies were read, measurements finished, a push returned,
//! a person commanded — and carries out the [`Effects`] in order: save the
//! position, push the split, start the measurements, publish the events,
//! come back at `wake_at`.
//!
//! The rules it adds to the state machine ([`crate::machine`]):
//!
//! - **A split counts once the proxies show it.** A new split is pushed
//!   (failed pushes are retried with backoff) and the steps wait until
//!   every targeted proxy shows it: a `setWeight` step ends then, a pause
//!   starts then, and canary metrics measure only from then. A split not
//!   seen within the verify deadline rolls the rollout back; a rollback or
//!   promotion is reported as done only once seen, and is pushed again
//!   until it is.
//! - **Drift only toward stable.** A proxy showing the canary more than
//!   intended gets the intended split again at once; one showing it less
//!   (after the split had been seen) pauses the rollout until a person
//!   resumes or aborts.
//! - **The in-proxy guard is obeyed.** A proxy whose guard stopped the
//!   canary for this attempt rolls the rollout back everywhere.
//! - **A position is bound to its rollout.** A saved position whose
//!   rollout changed (steps edited, versions edited in the state) is held:
//!   the canary's share is not raised until a person retries, aborts or
//!   restores the rollout.

mod observation;
mod position;
mod report;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use canary_analysis::metric::Metric;
use canary_analysis::time::format_duration;
use canary_analysis::{MeasurementResult, Timestamp};
use canary_config::Weight;

use crate::command::{Command, CommandError};
use crate::event::{Event, EventKind};
use crate::machine::{Decision, MeasurementKey, PauseReason, Phase, RecordError, Rollout, Status};
use crate::spec::RolloutSpec;
use crate::traffic::TrafficState;

pub use observation::{
    compare, expected_weights, guard_trips, Comparison, Observation, ProxyState, RouteShows, Shows,
};
pub use position::{fits_versions, Held, Position, PositionError, SplitRecord, FORMAT};
pub use report::{
    analyses_of, describe_step, remaining, AnalysisReport, ConditionReport, EventReport,
    MeasurementReport, MetricReport, ProxiesReport, PushReport, Report, SplitReport, Verification,
};

/// How the driver behaves, as the shell that runs it sets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Whether the shell observes the proxies. Without an observer (a dry
    /// run) a successful push counts as in force, and the report says the
    /// split is unverified.
    pub observed: bool,
    /// How long the proxies may take to show a split, when the rollout
    /// does not say (`verifyDeadline`); it scales with how they are
    /// observed (scrape interval, Prometheus delay).
    pub verify_deadline: Duration,
    /// First wait after a failed push; doubled after each failure.
    pub push_retry: Duration,
    /// Longest wait between push attempts.
    pub push_retry_max: Duration,
    /// While a pushed split is not seen, how often it is pushed again (a
    /// proxy that missed an update gets it; pushes are idempotent).
    pub repush: Duration,
    /// Re-assertions after drift toward the canary within one step before
    /// the rollout pauses for a person instead.
    pub drift_up_limit: u32,
    /// Events kept in the position and the report.
    pub events_kept: usize,
    /// Where pushes go, for people (`ECDS file …`, `WasmPlugin …`).
    pub target: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            observed: true,
            verify_deadline: Duration::from_secs(30),
            push_retry: Duration::from_secs(1),
            push_retry_max: Duration::from_secs(30),
            repush: Duration::from_secs(5),
            drift_up_limit: 3,
            events_kept: 200,
            target: String::new(),
        }
    }
}

/// What happened since the last step.
#[derive(Debug, Clone, Default)]
pub struct Input<'a> {
    /// The time now.
    pub now: Timestamp,
    /// The latest reading of the proxies (older readings are ignored).
    pub observation: Option<&'a Observation>,
    /// Measurements that finished.
    pub finished: Vec<Finished>,
    /// A person's command, at most one per step (it is applied before
    /// anything else in the step).
    pub command: Option<Command>,
    /// Who sent the command (`cli from 127.0.0.1:50312`): its events say
    /// so.
    pub command_by: Option<&'a str>,
    /// How the push asked for by the previous step went.
    pub pushed: Option<PushOutcome>,
}

/// A finished measurement.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The key it was started with.
    pub key: MeasurementKey,
    /// What it measured.
    pub result: MeasurementResult,
    /// What the metric carries to its next measurement ([`Measured::carry`]).
    pub carry: Option<Carry>,
}

/// What a metric's measurements hand on to the next one, opaque to the
/// driver: the judge's evidence and the counters it last read. The driver
/// keeps the newest per metric name in the saved [`Position`], so it
/// survives steps and restarts, and hands it to the metric's next
/// [`MeasureRequest`].
pub type Carry = serde_json::Value;

/// What a metric source hands back for one measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The measurement.
    pub result: MeasurementResult,
    /// What to hand to the metric's next measurement; `None` keeps what
    /// was carried before.
    pub carry: Option<Carry>,
}

impl From<MeasurementResult> for Measured {
    fn from(result: MeasurementResult) -> Measured {
        Measured {
            result,
            carry: None,
        }
    }
}

/// How a push went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// Delivered; the target's version for it, when it has one.
    Done(Option<String>),
    /// Not delivered, and why.
    Failed(String),
}

/// A split to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPush {
    /// The split, on every route entry the rollout drives.
    pub traffic: TrafficState,
    /// The attempt it belongs to.
    pub generation: u64,
}

impl SplitPush {
    /// `base` with this split on `routes` (in its `splits` map), checked
    /// with the filter's own validation.
    pub fn apply(
        &self,
        base: &canary_config::FilterConfig,
        routes: &[String],
    ) -> Result<canary_config::FilterConfig, crate::traffic::ApplyError> {
        self.traffic.apply(self.generation, base, routes)
    }
}

/// A measurement to start.
#[derive(Debug, Clone)]
pub struct MeasureRequest {
    /// Hand this back in [`Finished`].
    pub key: MeasurementKey,
    /// The metric and its provider settings.
    pub metric: Metric,
    /// Since when the split has been seen in force; a measurement of the
    /// canary's own traffic covers no time before it. `None` while the
    /// split is not seen: such a measurement has no data yet.
    pub in_force_since: Option<Timestamp>,
    /// What the metric's previous measurement handed on, if anything.
    pub carry: Option<Carry>,
}

/// How a rollout ended, once the proxies show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The canary is the stable version everywhere.
    Promoted,
    /// The canary gets no traffic anywhere.
    Aborted,
}

/// What the shell does after a step, in this order.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// Save this position before anything below happens.
    pub save: Option<Position>,
    /// Then push this split.
    pub push: Option<SplitPush>,
    /// Start these measurements (each on its own; a slow one must not
    /// delay the next step).
    pub measure: Vec<MeasureRequest>,
    /// What happened, in order.
    pub events: Vec<Event>,
    /// The answer to the step's command.
    pub answer: Option<Result<(), CommandError>>,
    /// Step again at this time at the latest.
    pub wake_at: Option<Timestamp>,
    /// Set once the rollout has ended and the proxies show it.
    pub finished: Option<Outcome>,
}

enum Mode {
    Running(Box<Rollout>),
    Held(Box<Held>),
}

/// One rollout, driven.
pub struct Driver {
    spec: Arc<RolloutSpec>,
    settings: Settings,
    mode: Mode,
    split: SplitRecord,
    /// When the intended split was decided, or last stopped being seen.
    pending_since: Timestamp,
    /// The intended split being tracked (a new one starts over).
    tracked: Option<SplitPush>,
    /// The split whose push outcome is awaited.
    requested: Option<SplitPush>,
    next_push_at: Option<Timestamp>,
    push_failures: u32,
    pushes: u64,
    failed_pushes: u64,
    last_push_error: Option<String>,
    last_observed: Option<Timestamp>,
    comparison: Option<Comparison>,
    proxies: usize,
    not_seen_reported: bool,
    drift_ups: (usize, u32),
    guard: Option<String>,
    in_flight: HashSet<MeasurementKey>,
    /// What each metric's measurements hand on, by metric name.
    carry: BTreeMap<String, Carry>,
    /// The position handed out for saving before `saved`: what is durable
    /// when saving `saved` fails.
    saved_before: Option<Position>,
    events: VecDeque<Event>,
    /// Events from opening the rollout, handed out by the first step.
    backlog: Vec<Event>,
    fingerprint: String,
    saved: Option<Position>,
    now: Timestamp,
}

impl Driver {
    /// A new rollout of `spec`, starting at `now` with everything on
    /// stable.
    pub fn start(spec: Arc<RolloutSpec>, settings: Settings, now: Timestamp) -> Driver {
        let (rollout, decision) = Rollout::start_gated(Arc::clone(&spec), now);
        let mut driver = Driver::new(spec, settings, Mode::Running(Box::new(rollout)), now);
        let mut events = Vec::new();
        driver.take(decision, &mut events);
        driver.backlog = events;
        driver
    }

    /// The rollout of `spec` from its saved position: resumed when the
    /// position was made for it, started anew when it is about another
    /// canary version (or there is none), held when it does not fit.
    pub fn open(
        spec: Arc<RolloutSpec>,
        settings: Settings,
        saved: Option<Position>,
        now: Timestamp,
    ) -> Driver {
        match saved {
            Some(position) if position.same_rollout(&spec) => {
                Driver::resume(spec, settings, position, now)
            }
            _ => Driver::start(spec, settings, now),
        }
    }

    fn resume(
        spec: Arc<RolloutSpec>,
        settings: Settings,
        position: Position,
        now: Timestamp,
    ) -> Driver {
        let fingerprint = spec.fingerprint();
        let events = position.events.clone();
        let split = position.split.clone();
        let mode = match (position.state, position.held) {
            (_, Some(held)) => match (&held.saved, held.aborted) {
                (Some(saved), false) if held.saved_fingerprint == fingerprint => {
                    match restore(&spec, saved.clone()) {
                        Ok(rollout) => Mode::Running(Box::new(rollout)),
                        Err(_) => Mode::Held(Box::new(held)),
                    }
                }
                _ => Mode::Held(Box::new(Held {
                    reason: held_reason(&held, &fingerprint),
                    ..held
                })),
            },
            (Some(state), None) => {
                let finished = state.status() != Status::Progressing;
                let fits_spec = finished
                    || position.fingerprint.is_empty()
                    || position.fingerprint == fingerprint;
                let state = state.finished_for(&spec);
                let restored = if fits_spec {
                    fits_versions(state.traffic(), &spec)
                        .and_then(|()| restore(&spec, state.clone()))
                } else {
                    Err("the rollout's steps, analyses or deadlines changed since this position was saved".into())
                };
                match restored {
                    Ok(rollout) => Mode::Running(Box::new(rollout)),
                    Err(reason) => {
                        Mode::Held(Box::new(hold(&spec, state, &position.fingerprint, reason)))
                    }
                }
            }
            (None, None) => {
                return Driver::start(spec, settings, now);
            }
        };
        let mut driver = Driver::new(spec, settings, mode, now);
        driver.events = events.into();
        driver.carry = position.carry;
        // Nothing is taken as in force after a restart until the proxies
        // show it again, and the split is pushed again (a crash may have
        // come between saving a decision and pushing it).
        driver.track_intended();
        driver.split.version = split.version;
        if let Mode::Running(rollout) = &mut driver.mode {
            rollout.gate_on_confirmation(now);
        }
        if let Mode::Held(held) = &driver.mode {
            driver.backlog.push(Event {
                at: now,
                kind: EventKind::SpecMismatch,
                reason: held.reason.clone(),
            });
        }
        driver
    }

    fn new(spec: Arc<RolloutSpec>, settings: Settings, mode: Mode, now: Timestamp) -> Driver {
        Driver {
            fingerprint: spec.fingerprint(),
            spec,
            settings,
            mode,
            split: SplitRecord::default(),
            pending_since: now,
            tracked: None,
            requested: None,
            next_push_at: None,
            push_failures: 0,
            pushes: 0,
            failed_pushes: 0,
            last_push_error: None,
            last_observed: None,
            comparison: None,
            proxies: 0,
            not_seen_reported: false,
            drift_ups: (0, 0),
            guard: None,
            in_flight: HashSet::new(),
            carry: BTreeMap::new(),
            saved_before: None,
            events: VecDeque::new(),
            backlog: Vec::new(),
            saved: None,
            now,
        }
    }

    /// The rollout.
    pub fn spec(&self) -> &Arc<RolloutSpec> {
        &self.spec
    }

    /// The state machine, unless held.
    pub fn rollout(&self) -> Option<&Rollout> {
        match &self.mode {
            Mode::Running(rollout) => Some(rollout),
            Mode::Held(_) => None,
        }
    }

    /// The split the rollout wants in force, and its attempt.
    pub fn intended(&self) -> SplitPush {
        match &self.mode {
            Mode::Running(rollout) => SplitPush {
                traffic: rollout.traffic().clone(),
                generation: rollout.generation(),
            },
            Mode::Held(held) => SplitPush {
                traffic: held.traffic.clone(),
                generation: held.generation,
            },
        }
    }

    /// The split to push before a shell gives up because the position of
    /// the last step could not be saved: the one saved before it (the
    /// unsaved decision does not count) with the canary at 0% and the
    /// override header off — toward stable, never away from it. Records
    /// why.
    pub fn fail_safe(&mut self, now: Timestamp, why: &str) -> SplitPush {
        let saved = self.saved_before.as_ref().and_then(|position| {
            match (&position.state, &position.held) {
                (Some(state), _) => Some(SplitPush {
                    traffic: state.traffic().clone(),
                    generation: state.generation(),
                }),
                (None, Some(held)) => Some(SplitPush {
                    traffic: held.traffic.clone(),
                    generation: held.generation,
                }),
                (None, None) => None,
            }
        });
        let mut split = saved.unwrap_or_else(|| SplitPush {
            traffic: TrafficState::initial(&self.spec.stable_version, &self.spec.canary_version),
            generation: self.intended().generation,
        });
        split.traffic.canary_weight = Weight::ZERO;
        split.traffic.header_route = false;
        self.remember(Event {
            at: now,
            kind: EventKind::Fatal,
            reason: format!(
                "the controller cannot go on ({why}); pushing {} before it stops",
                split.traffic
            ),
        });
        split
    }

    /// The position to save now.
    pub fn position(&self) -> Position {
        let (state, held) = match &self.mode {
            Mode::Running(rollout) => (Some(rollout.state()), None),
            Mode::Held(held) => (None, Some(held.as_ref().clone())),
        };
        Position {
            format: position::FORMAT,
            rollout: self.spec.name.clone(),
            stable_version: self.spec.stable_version.clone(),
            canary_version: self.spec.canary_version.clone(),
            fingerprint: self.fingerprint.clone(),
            state,
            held,
            split: self.split.clone(),
            events: self.events.iter().cloned().collect(),
            carry: self.carry.clone(),
        }
    }

    /// Takes in what happened and says what to do.
    pub fn step(&mut self, input: Input<'_>) -> Effects {
        let now = input.now.max(self.now);
        self.now = now;
        let mut events = std::mem::take(&mut self.backlog);
        let mut effects = Effects::default();
        if let Some(outcome) = input.pushed {
            self.push_returned(now, outcome, &mut events);
        }
        if let Some(command) = input.command {
            let first = events.len();
            effects.answer = Some(self.command(now, command, &mut events));
            if let Some(by) = input.command_by {
                for event in &mut events[first..] {
                    event.reason.push_str(&format!(" (by {by})"));
                }
            }
        }
        if let Some(observation) = input.observation {
            self.observe(now, observation, &mut events);
        }
        for finished in input.finished {
            self.record(now, finished, &mut events);
        }
        self.tick(now, &mut events);
        effects.measure = self.due_measurements(now);
        effects.push = self.push_due(now);
        effects.wake_at = self.wake_at(now);
        effects.finished = self.outcome();
        for event in &events {
            self.remember(event.clone());
        }
        effects.events = events;
        let position = self.position();
        let changed = self
            .saved
            .as_ref()
            .is_none_or(|saved| clockless(saved) != clockless(&position) || effects.push.is_some());
        if changed {
            self.saved_before = self.saved.replace(position.clone());
            effects.save = Some(position);
        }
        effects
    }

    fn remember(&mut self, event: Event) {
        self.events.push_back(event);
        while self.events.len() > self.settings.events_kept {
            self.events.pop_front();
        }
    }

    /// Takes a machine decision's events, and notices a new split.
    fn take(&mut self, decision: Decision, events: &mut Vec<Event>) {
        events.extend(decision.events);
        self.track_intended();
    }

    /// When the intended split differs from the one being tracked, starts
    /// tracking it: not pushed, not seen.
    fn track_intended(&mut self) {
        let intended = self.intended();
        if self.tracked.as_ref() == Some(&intended) {
            return;
        }
        self.split = SplitRecord {
            pushed: None,
            generation: intended.generation,
            pushed_at: None,
            version: None,
            seen_at: None,
        };
        self.tracked = Some(intended);
        self.pending_since = self.now;
        self.next_push_at = None;
        self.push_failures = 0;
        self.not_seen_reported = false;
    }

    fn push_returned(&mut self, now: Timestamp, outcome: PushOutcome, events: &mut Vec<Event>) {
        let Some(requested) = self.requested.take() else {
            return;
        };
        match outcome {
            PushOutcome::Done(version) => {
                self.pushes += 1;
                self.push_failures = 0;
                self.next_push_at = None;
                self.last_push_error = None;
                let current = requested == self.intended();
                if !current {
                    // The rollout moved on while the push was out.
                    return;
                }
                let already_seen = self.split.seen_at.is_some();
                self.split.pushed = Some(requested.traffic);
                self.split.generation = requested.generation;
                self.split.pushed_at = Some(now);
                self.split.version = version;
                if !self.settings.observed && !already_seen {
                    self.split.seen_at = Some(now);
                    self.confirm(now, events);
                }
            }
            PushOutcome::Failed(error) => {
                self.failed_pushes += 1;
                self.push_failures += 1;
                let shift = self.push_failures.saturating_sub(1).min(16);
                let wait = self
                    .settings
                    .push_retry
                    .saturating_mul(1 << shift)
                    .min(self.settings.push_retry_max);
                self.next_push_at = Some(now.plus(wait));
                if self.push_failures == 1 {
                    events.push(Event {
                        at: now,
                        kind: EventKind::PushFailed,
                        reason: format!(
                            "push of {} to {} failed, retrying with backoff: {error}",
                            requested.traffic, self.settings.target
                        ),
                    });
                }
                self.last_push_error = Some(error);
            }
        }
    }

    fn confirm(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        if let Mode::Running(rollout) = &mut self.mode {
            let decision = rollout.confirm_split(now);
            self.take(decision, events);
        }
    }

    fn unconfirm(&mut self, now: Timestamp) {
        self.split.seen_at = None;
        self.pending_since = now;
        if let Mode::Running(rollout) = &mut self.mode {
            rollout.unconfirm_split(now);
        }
    }

    fn observe(&mut self, now: Timestamp, observation: &Observation, events: &mut Vec<Event>) {
        if !self.settings.observed || self.last_observed.is_some_and(|at| observation.at <= at) {
            return;
        }
        self.last_observed = Some(observation.at);
        self.proxies = observation.proxies.len();
        let intended = self.intended();
        let routes = self.spec.routes.clone();
        let trips = guard_trips(observation, &routes, intended.generation);
        if !trips.is_empty() && intended.traffic.effective_weight() > Weight::ZERO {
            let places: Vec<String> = trips
                .iter()
                .map(|(proxy, route)| format!("{proxy} (route {route})"))
                .collect();
            let cause = format!(
                "the in-proxy guard stopped {}'s traffic on {}: it failed where {} did not",
                self.spec.canary_version,
                places.join(", "),
                intended.traffic.stable
            );
            self.guard = Some(cause.clone());
            self.stop_toward_stable(now, EventKind::GuardTripped, cause, events);
            return;
        }
        let comparison = compare(
            observation,
            &routes,
            &intended.traffic,
            intended.generation,
            &self.spec.canary_version,
        );
        let seen = self.split.seen_at.is_some();
        match &comparison {
            Comparison::InForce if !seen && observation.at >= self.pending_since => {
                self.split.seen_at = Some(observation.at);
                self.not_seen_reported = false;
                let after = self
                    .split
                    .pushed_at
                    .map(|pushed| {
                        format!(
                            ", {} ms after the push",
                            observation.at.since(pushed).as_millis()
                        )
                    })
                    .unwrap_or_default();
                events.push(Event {
                    at: now,
                    kind: EventKind::SplitInForce,
                    reason: format!(
                        "every proxy ({}) shows {}{after}",
                        observation.proxies.len(),
                        intended.traffic
                    ),
                });
                self.confirm(now, events);
            }
            Comparison::Above(what) if seen => {
                let step = self.rollout().map_or(0, Rollout::step);
                if self.drift_ups.0 != step {
                    self.drift_ups = (step, 0);
                }
                self.drift_ups.1 += 1;
                events.push(Event {
                    at: now,
                    kind: EventKind::DriftUp,
                    reason: format!(
                        "a proxy gives {} more traffic than intended ({what}); pushing {} again",
                        self.spec.canary_version, intended.traffic
                    ),
                });
                self.unconfirm(now);
                self.next_push_at = Some(now);
                if self.drift_ups.1 > self.settings.drift_up_limit {
                    let shown = format!(
                        "the split was changed toward the canary {} times in this step, last: {what}",
                        self.drift_ups.1
                    );
                    self.pause_for_drift(now, shown, events);
                }
            }
            Comparison::Below(what) if seen => {
                self.unconfirm(now);
                self.pause_for_drift(now, what.clone(), events);
            }
            Comparison::Unknown(what) if seen => {
                events.push(Event {
                    at: now,
                    kind: EventKind::SplitNotSeen,
                    reason: format!(
                        "the split is no longer seen in force ({what}); the steps wait until every proxy shows it again"
                    ),
                });
                self.unconfirm(now);
            }
            _ => {}
        }
        self.comparison = Some(comparison);
    }

    fn pause_for_drift(&mut self, now: Timestamp, shown: String, events: &mut Vec<Event>) {
        if let Mode::Running(rollout) = &mut self.mode {
            let decision = rollout.pause_for_drift(now, shown);
            self.take(decision, events);
        }
    }

    /// Rolls back for a reason found outside the analyses; while held,
    /// lowers the held split to 0% for the canary.
    fn stop_toward_stable(
        &mut self,
        now: Timestamp,
        kind: EventKind,
        cause: String,
        events: &mut Vec<Event>,
    ) {
        match &mut self.mode {
            Mode::Running(rollout) => {
                let decision = rollout.abort_for(now, kind, cause);
                self.take(decision, events);
            }
            Mode::Held(held) => {
                if held.traffic.effective_weight() > Weight::ZERO || held.traffic.header_route {
                    held.traffic.canary_weight = Weight::ZERO;
                    held.traffic.header_route = false;
                    held.aborted = true;
                    events.push(Event {
                        at: now,
                        kind,
                        reason: format!("{cause}; the canary gets 0%"),
                    });
                    self.track_intended();
                }
            }
        }
    }

    fn command(
        &mut self,
        now: Timestamp,
        command: Command,
        events: &mut Vec<Event>,
    ) -> Result<(), CommandError> {
        let after_drift = self.drift_paused();
        match &mut self.mode {
            Mode::Running(rollout) => {
                let decision = rollout.command(now, command)?;
                self.take(decision, events);
                if command == Command::Resume && after_drift {
                    // A person restores the intended split, which drift
                    // had lowered: push it at once and wait to see it.
                    self.next_push_at = Some(now);
                    self.pending_since = now;
                }
                Ok(())
            }
            Mode::Held(held) => match command {
                Command::Abort => {
                    held.traffic.canary_weight = Weight::ZERO;
                    held.traffic.header_route = false;
                    held.aborted = true;
                    events.push(Event {
                        at: now,
                        kind: EventKind::Aborted,
                        reason: format!(
                            "aborted by a person while held: {} gets 0%, {} serves all traffic",
                            self.spec.canary_version, held.traffic.stable
                        ),
                    });
                    self.track_intended();
                    Ok(())
                }
                Command::Retry => {
                    let (rollout, decision) = Rollout::start_gated(Arc::clone(&self.spec), now);
                    events.push(Event {
                        at: now,
                        kind: EventKind::Retried,
                        reason: format!(
                            "retried by a person: starting again from step 1 with the rollout as it is now ({} → {})",
                            self.spec.stable_version, self.spec.canary_version
                        ),
                    });
                    self.mode = Mode::Running(Box::new(rollout));
                    self.take(decision, events);
                    Ok(())
                }
                other => Err(CommandError {
                    command: other,
                    reason: format!(
                        "{}; retry to start again from step 1 with the rollout as it is now, abort to roll back, or restore the rollout as it was",
                        held.reason
                    ),
                }),
            },
        }
        .inspect(|()| {
            if command == Command::Retry {
                // A new attempt is judged anew: the evidence that stopped
                // the last one would stop it again at once.
                self.carry.clear();
                self.guard = None;
                self.drift_ups = (0, 0);
            }
        })
    }

    fn record(&mut self, now: Timestamp, finished: Finished, events: &mut Vec<Event>) {
        self.in_flight.remove(&finished.key);
        let Mode::Running(rollout) = &mut self.mode else {
            return;
        };
        match rollout.record(now, &finished.key, &finished.result) {
            Ok(decision) => {
                if let Some(carry) = finished.carry {
                    self.carry.insert(finished.key.metric.clone(), carry);
                }
                self.take(decision, events);
            }
            Err(RecordError::Stale(_)) => {}
            Err(error) => events.push(Event {
                at: now,
                kind: EventKind::Measured,
                reason: format!(
                    "measurement of {} not recorded: {error}",
                    finished.key.metric
                ),
            }),
        }
    }

    fn tick(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        if let Mode::Running(rollout) = &mut self.mode {
            let decision = rollout.tick(now);
            self.take(decision, events);
        }
        self.check_deadline(now, events);
    }

    fn verify_deadline(&self) -> Duration {
        self.spec
            .verify_deadline
            .unwrap_or(self.settings.verify_deadline)
    }

    /// Whether the rollout is paused because of drift toward stable (no
    /// deadline runs then: less canary traffic is the safe direction).
    fn drift_paused(&self) -> bool {
        matches!(
            self.rollout().map(Rollout::phase),
            Some(Phase::Paused {
                reason: PauseReason::Drift,
                ..
            })
        )
    }

    fn check_deadline(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        if !self.settings.observed || self.split.seen_at.is_some() || self.drift_paused() {
            return;
        }
        let deadline = self.verify_deadline();
        if now < self.pending_since.plus(deadline) {
            return;
        }
        let intended = self.intended();
        let what = self
            .comparison
            .as_ref()
            .map(describe_comparison)
            .unwrap_or_else(|| "no reading of the proxies yet".into());
        let progressing =
            matches!(&self.mode, Mode::Running(r) if r.status() == Status::Progressing);
        let lowerable =
            matches!(&self.mode, Mode::Held(h) if h.traffic.effective_weight() > Weight::ZERO);
        if progressing || lowerable {
            let cause = format!(
                "{} was not seen in force by every proxy within verifyDeadline ({}): {what}",
                intended.traffic,
                format_duration(deadline)
            );
            self.stop_toward_stable(now, EventKind::SplitNotSeen, cause, events);
        } else if !self.not_seen_reported {
            self.not_seen_reported = true;
            events.push(Event {
                at: now,
                kind: EventKind::SplitNotSeen,
                reason: format!(
                    "{} is not seen in force by every proxy {} after it was decided ({what}); it is pushed again until it is",
                    intended.traffic,
                    format_duration(deadline)
                ),
            });
        }
    }

    fn due_measurements(&mut self, now: Timestamp) -> Vec<MeasureRequest> {
        let Mode::Running(rollout) = &self.mode else {
            return Vec::new();
        };
        let since = if self.settings.observed {
            self.split.seen_at
        } else {
            self.split.pushed_at
        };
        let mut requests = Vec::new();
        for due in rollout.due_measurements(now) {
            if self.in_flight.contains(&due.key) {
                continue;
            }
            requests.push(MeasureRequest {
                key: due.key.clone(),
                metric: due.metric.clone(),
                in_force_since: since,
                carry: self.carry.get(&due.metric.name).cloned(),
            });
        }
        for request in &requests {
            self.in_flight.insert(request.key.clone());
        }
        requests
    }

    fn push_due(&mut self, now: Timestamp) -> Option<SplitPush> {
        if self.requested.is_some() {
            return None;
        }
        let intended = self.intended();
        let pushed = self.split.pushed.as_ref() == Some(&intended.traffic)
            && self.split.generation == intended.generation;
        let due = if !pushed {
            self.next_push_at.is_none_or(|at| at <= now)
        } else if self.split.seen_at.is_none() && self.settings.observed && !self.drift_paused() {
            // Pushed but not seen: push again now and then, and at once
            // after drift toward the canary.
            self.next_push_at.is_some_and(|at| at <= now)
                || self
                    .split
                    .pushed_at
                    .is_some_and(|at| at.plus(self.settings.repush) <= now)
        } else {
            false
        };
        if !due {
            return None;
        }
        self.next_push_at = None;
        self.requested = Some(intended.clone());
        Some(intended)
    }

    fn wake_at(&self, now: Timestamp) -> Option<Timestamp> {
        let mut times = Vec::new();
        if let Mode::Running(rollout) = &self.mode {
            times.extend(rollout.next_wake().filter(|at| *at > now));
        }
        times.extend(self.next_push_at);
        if self.settings.observed && self.split.seen_at.is_none() && !self.drift_paused() {
            times.extend(self.split.pushed_at.map(|at| at.plus(self.settings.repush)));
            if !self.not_seen_reported {
                times.push(self.pending_since.plus(self.verify_deadline()));
            }
        }
        times.into_iter().filter(|at| *at > now).min()
    }

    fn outcome(&self) -> Option<Outcome> {
        self.split.seen_at?;
        match &self.mode {
            Mode::Running(rollout) => match rollout.status() {
                Status::Promoted => Some(Outcome::Promoted),
                Status::Aborted => Some(Outcome::Aborted),
                Status::Progressing => None,
            },
            Mode::Held(held) if held.aborted => Some(Outcome::Aborted),
            Mode::Held(_) => None,
        }
    }
}

fn describe_comparison(comparison: &Comparison) -> String {
    match comparison {
        Comparison::InForce => "every proxy shows it".into(),
        Comparison::Above(what) | Comparison::Below(what) | Comparison::Unknown(what) => {
            what.clone()
        }
    }
}

fn clockless(position: &Position) -> Position {
    let mut position = position.clone();
    position.state = position.state.as_ref().map(|s| s.without_clock());
    position
}

fn restore(
    spec: &Arc<RolloutSpec>,
    state: crate::machine::RolloutState,
) -> Result<Rollout, String> {
    Rollout::restore(Arc::clone(spec), state).map_err(|e| e.to_string())
}

fn hold(
    spec: &RolloutSpec,
    state: crate::machine::RolloutState,
    saved_fingerprint: &str,
    why: String,
) -> Held {
    let saved_traffic = state.traffic().clone();
    let aborted = state.status() == Status::Aborted;
    let traffic = match fits_versions(&saved_traffic, spec) {
        Ok(()) => saved_traffic,
        // A split naming versions this rollout does not have is not pushed
        // again: everything goes to the rollout's stable version.
        Err(_) => TrafficState::initial(&spec.stable_version, &spec.canary_version),
    };
    let held = Held {
        traffic,
        generation: state.generation(),
        reason: String::new(),
        aborted,
        saved: Some(state),
        saved_fingerprint: saved_fingerprint.to_owned(),
    };
    Held {
        reason: format!(
            "the saved position does not fit the rollout as it is now: {why}; the split stays at {} and the canary's share is not raised",
            held.traffic
        ),
        ..held
    }
}

fn held_reason(held: &Held, fingerprint: &str) -> String {
    if held.saved_fingerprint == fingerprint && held.aborted {
        "the rollout was aborted while held; retry to start again".into()
    } else {
        held.reason.clone()
    }
}
