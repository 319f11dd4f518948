//! The rollout as people see it: one report built from the driver, shown
//! by `canary status`, served at `/status`, written into a
//! CanaryRollout's status and drawn by the demo.

use std::time::Duration;

use canary_analysis::time::format_duration;
use canary_analysis::{AnalysisRun, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Comparison, Driver, Mode};
use crate::event::{Event, EventKind};
use crate::machine::{PauseReason, Phase, Status};
use crate::spec::Step;
use crate::traffic::TrafficState;

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Rollout name.
    pub rollout: String,
    /// `Progressing`, `Paused`, `PausedInconclusive`, `Held`, `Promoting`,
    /// `Promoted`, `RollingBack` or `Aborted`. `Promoting` and
    /// `RollingBack` become `Promoted` and `Aborted` once every proxy
    /// shows the final split.
    pub phase: String,
    /// Why a `Paused` rollout is paused: `Step`, `Manual` or `Drift`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    /// When a timed pause ends (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<u64>,
    /// Why the rollout is where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Index of the current step (0-based; equals `steps` when all done).
    pub step: usize,
    /// Number of steps.
    pub steps: usize,
    /// The current step, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    /// Every step, in words, in order.
    #[serde(default)]
    pub step_names: Vec<String>,
    /// The attempt (unix ms of its start or last retry).
    #[serde(default)]
    pub generation: u64,
    /// The split the rollout intends.
    pub traffic: SplitReport,
    /// Conditions a person should know about (drift, a held position,
    /// failing pushes, a split not seen, the in-proxy guard).
    #[serde(default)]
    pub conditions: Vec<ConditionReport>,
    /// The analyses running or last run.
    pub analyses: Vec<AnalysisReport>,
    /// Recent events, oldest first.
    pub events: Vec<EventReport>,
    /// Pushes to the proxies, and whether the proxies show the split.
    pub push: PushReport,
    /// When this report was built (unix ms).
    pub updated_at: u64,
}

/// A split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SplitReport {
    /// Stable version.
    pub stable: String,
    /// Canary version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// Canary weight in percent.
    pub canary_weight: f64,
    /// Stable weight in percent.
    pub stable_weight: f64,
    /// Whether the override header selects the canary.
    pub header_route: bool,
}

impl SplitReport {
    /// The report of `traffic`.
    pub fn of(traffic: &TrafficState) -> SplitReport {
        let weight = traffic.effective_weight().percent();
        SplitReport {
            stable: traffic.stable.clone(),
            canary: traffic.canary.clone(),
            canary_weight: weight,
            stable_weight: 100.0 - weight,
            header_route: traffic.header_route,
        }
    }
}

/// A condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionReport {
    /// `Drift`, `Held`, `PushFailing`, `SplitNotSeen`, `GuardTripped`,
    /// `Unverified`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What it is about, in words.
    pub message: String,
}

/// One analysis run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisReport {
    /// `step N` or `background`.
    pub slot: String,
    /// Run phase.
    pub phase: String,
    /// Why, when the run ended badly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Its metrics.
    pub metrics: Vec<MetricReport>,
}

/// One metric of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricReport {
    /// Metric name.
    pub name: String,
    /// Metric phase.
    pub phase: String,
    /// Measurements counted.
    pub count: u32,
    /// Successful measurements.
    pub successful: u32,
    /// Failed measurements.
    pub failed: u32,
    /// Inconclusive measurements.
    pub inconclusive: u32,
    /// Errors.
    pub errors: u32,
    /// Measurements without enough data.
    pub not_enough_data: u32,
    /// Retained measurements, oldest first.
    pub measurements: Vec<MeasurementReport>,
}

/// One measurement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementReport {
    /// Verdict.
    pub phase: String,
    /// When it finished (unix ms).
    pub finished_at: u64,
    /// The value, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Error or condition message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventReport {
    /// When (unix ms).
    pub at: u64,
    /// Kind, e.g. `WeightChanged`.
    pub kind: String,
    /// What happened, in words.
    pub reason: String,
}

impl EventReport {
    /// The report of `event`.
    pub fn of(event: &Event) -> EventReport {
        EventReport {
            at: event.at.millis(),
            kind: format!("{:?}", event.kind),
            reason: event.reason.clone(),
        }
    }
}

/// Pushes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    /// Where pushes go.
    pub target: String,
    /// Successful pushes since the controller started.
    pub pushes: u64,
    /// Failed pushes since the controller started.
    pub failures: u64,
    /// Version of the last successful push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_version: Option<String>,
    /// When the last successful push of the intended split happened (unix
    /// ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<u64>,
    /// The last push error, cleared by the next success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Whether the intended split is still waiting to be pushed.
    pub pending: bool,
    /// Whether the proxies show the intended split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<ProxiesReport>,
}

/// How the intended split compares with what the proxies show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Verification {
    /// Every proxy shows it.
    InForce,
    /// Not yet shown by every proxy.
    #[default]
    Pending,
    /// The proxies showed it, then something else.
    Drift,
    /// Not shown within the deadline.
    NotSeen,
    /// Nothing observes the proxies: pushed, not verified.
    Unverified,
}

/// What the proxies show of the intended split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxiesReport {
    /// Every proxy shows the intended split.
    pub confirmed: bool,
    /// In one word.
    pub verification: Verification,
    /// Proxies read.
    pub proxies: usize,
    /// When every proxy was first seen showing it (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// Milliseconds from the push to the first reading that showed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
    /// While not confirmed: what the proxies show instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differs: Option<String>,
}

impl ProxiesReport {
    /// In words: `applied by every Envoy, N ms after the push`, or `not
    /// applied yet: ` and what the proxies show instead.
    pub fn describe(&self) -> String {
        match (self.verification, self.after_ms) {
            (Verification::InForce, Some(ms)) => {
                format!("applied by every Envoy, {ms} ms after the push")
            }
            (Verification::InForce, None) => "applied by every Envoy".to_owned(),
            (Verification::Unverified, _) => {
                "pushed; nothing observes the proxies (unverified)".to_owned()
            }
            (Verification::NotSeen, _) => format!(
                "not seen in force: {}",
                self.differs
                    .as_deref()
                    .unwrap_or("no reading of the proxies")
            ),
            _ => format!(
                "not applied yet: {}",
                self.differs
                    .as_deref()
                    .unwrap_or("waiting for a reading of the proxies")
            ),
        }
    }
}

impl Driver {
    /// The report at `now`.
    pub fn report(&self, now: Timestamp) -> Report {
        let spec = &self.spec;
        let intended = self.intended();
        let seen = self.split.seen_at.is_some();
        let mut conditions = Vec::new();
        let mut report = Report {
            rollout: spec.name.clone(),
            step_names: spec.steps.iter().map(describe_step).collect(),
            steps: spec.steps.len(),
            generation: intended.generation,
            traffic: SplitReport::of(&intended.traffic),
            events: self.events.iter().map(EventReport::of).collect(),
            updated_at: now.millis(),
            ..Report::default()
        };
        match &self.mode {
            Mode::Running(rollout) => {
                let (phase, reason, until) = match rollout.phase() {
                    Phase::Progressing => ("Progressing", None, None),
                    Phase::Paused { reason, until } => ("Paused", Some(reason), until),
                    Phase::PausedInconclusive { .. } => ("PausedInconclusive", None, None),
                    Phase::Promoted if seen => ("Promoted", None, None),
                    Phase::Promoted => ("Promoting", None, None),
                    Phase::Aborted if seen => ("Aborted", None, None),
                    Phase::Aborted => ("RollingBack", None, None),
                };
                report.phase = phase.to_owned();
                report.pause_reason = reason.map(|r| format!("{r:?}"));
                report.paused_until = until.map(Timestamp::millis);
                report.message = rollout.message().map(str::to_owned);
                report.step = rollout.step();
                report.current_step = spec.steps.get(rollout.step()).map(describe_step);
                report.analyses = analyses_of(rollout);
                if reason == Some(PauseReason::Drift) {
                    conditions.push(ConditionReport {
                        kind: "Drift".into(),
                        message: last_event(self, EventKind::DriftDown)
                            .or_else(|| last_event(self, EventKind::DriftUp))
                            .unwrap_or_default(),
                    });
                }
                if rollout.status() == Status::Progressing && rollout.awaiting_confirmation() {
                    report.message.get_or_insert_with(|| {
                        format!("waiting until every proxy shows {}", intended.traffic)
                    });
                }
            }
            Mode::Held(held) => {
                report.phase = if held.aborted && seen {
                    "Aborted"
                } else if held.aborted {
                    "RollingBack"
                } else {
                    "Held"
                }
                .to_owned();
                report.message = Some(held.reason.clone());
                conditions.push(ConditionReport {
                    kind: "Held".into(),
                    message: held.reason.clone(),
                });
            }
        }
        if let Some(error) = &self.last_push_error {
            conditions.push(ConditionReport {
                kind: "PushFailing".into(),
                message: format!(
                    "{} push(es) in a row failed, retrying with backoff: {error}",
                    self.push_failures
                ),
            });
        }
        if self.not_seen_reported {
            conditions.push(ConditionReport {
                kind: "SplitNotSeen".into(),
                message: last_event(self, EventKind::SplitNotSeen).unwrap_or_default(),
            });
        }
        if let Some(guard) = &self.guard {
            conditions.push(ConditionReport {
                kind: "GuardTripped".into(),
                message: guard.clone(),
            });
        }
        if !self.settings.observed {
            conditions.push(ConditionReport {
                kind: "Unverified".into(),
                message: "nothing observes the proxies: a pushed split is taken as in force, and no promotion or rollback is verified".into(),
            });
        }
        let verification = if !self.settings.observed {
            Verification::Unverified
        } else if seen {
            Verification::InForce
        } else if self.not_seen_reported {
            Verification::NotSeen
        } else if matches!(
            self.rollout().map(crate::machine::Rollout::phase),
            Some(Phase::Paused {
                reason: PauseReason::Drift,
                ..
            })
        ) {
            Verification::Drift
        } else {
            Verification::Pending
        };
        let pushed_current = self.split.pushed.as_ref() == Some(&intended.traffic)
            && self.split.generation == intended.generation;
        report.push = PushReport {
            target: self.settings.target.clone(),
            pushes: self.pushes,
            failures: self.failed_pushes,
            last_version: self.split.version.clone(),
            last_at: self.split.pushed_at.map(Timestamp::millis),
            last_error: self.last_push_error.clone(),
            pending: !pushed_current,
            applied: Some(ProxiesReport {
                confirmed: seen,
                verification,
                proxies: self.proxies,
                since: self.split.seen_at.map(Timestamp::millis),
                after_ms: match (self.split.pushed_at, self.split.seen_at) {
                    (Some(pushed), Some(seen)) => {
                        Some(u64::try_from(seen.since(pushed).as_millis()).unwrap_or(u64::MAX))
                    }
                    _ => None,
                },
                differs: match &self.comparison {
                    Some(Comparison::InForce) | None => None,
                    Some(
                        Comparison::Above(what)
                        | Comparison::Below(what)
                        | Comparison::Unknown(what),
                    ) => Some(what.clone()),
                }
                .filter(|_| !seen),
            }),
        };
        report.conditions = conditions;
        report
    }
}

fn last_event(driver: &Driver, kind: EventKind) -> Option<String> {
    driver
        .events
        .iter()
        .rev()
        .find(|e| e.kind == kind)
        .map(|e| e.reason.clone())
}

/// The analyses of `rollout`: its step's, then the background one.
pub fn analyses_of(rollout: &crate::machine::Rollout) -> Vec<AnalysisReport> {
    let mut analyses = Vec::new();
    if let Some(run) = rollout.step_analysis() {
        analyses.push(analysis_report(format!("step {}", rollout.step() + 1), run));
    }
    if let Some(run) = rollout.background_analysis() {
        analyses.push(analysis_report("background".to_owned(), run));
    }
    analyses
}

fn analysis_report(slot: String, run: &AnalysisRun) -> AnalysisReport {
    let state = run.state();
    AnalysisReport {
        slot,
        phase: state.phase.to_string(),
        message: state.message.clone(),
        metrics: state
            .metrics
            .iter()
            .map(|m| MetricReport {
                name: m.name.clone(),
                phase: m.phase.to_string(),
                count: m.count,
                successful: m.successful,
                failed: m.failed,
                inconclusive: m.inconclusive,
                errors: m.error,
                not_enough_data: m.not_enough_data,
                measurements: m
                    .measurements
                    .iter()
                    .map(|x| MeasurementReport {
                        phase: x.phase.to_string(),
                        finished_at: x.finished_at.millis(),
                        value: x.value.clone(),
                        message: x.message.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// A step in words: `setWeight 25%`, `pause 30s`, `pause (until resumed)`,
/// `analysis`, `header route on`.
pub fn describe_step<A>(step: &Step<A>) -> String {
    match step {
        Step::SetWeight(weight) => format!("setWeight {weight}"),
        Step::Pause(Some(duration)) => format!("pause {}", format_duration(*duration)),
        Step::Pause(None) => "pause (until resumed)".to_owned(),
        Step::Analysis(_) => "analysis".to_owned(),
        Step::SetHeaderRoute(true) => "header route on".to_owned(),
        Step::SetHeaderRoute(false) => "header route off".to_owned(),
    }
}

/// Time left until `until`, for people (`12s`), or `None` if passed.
pub fn remaining(until: u64, now: u64) -> Option<String> {
    (until > now).then(|| format_duration(Duration::from_millis(until - now)))
}
