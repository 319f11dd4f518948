//! What `GET /status` answers and `canary status` shows: the rollout's
//! phase, step, weights, every measurement with its value and verdict,
//! recent events and the last push. Built from the state machine after each
//! decision; read by the API without touching the machine.

use std::time::Duration;

use canary_analysis::time::format_duration;
use canary_analysis::{AnalysisRun, Timestamp};
use canary_rollout::{Event, Phase, Rollout, Step};
use serde::{Deserialize, Serialize};

/// The whole status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// Rollout name.
    pub rollout: String,
    /// `Progressing`, `Paused`, `PausedInconclusive`, `Promoted`, `Aborted`.
    pub phase: String,
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
    /// The split in force.
    pub traffic: TrafficView,
    /// The analyses running or last run.
    pub analyses: Vec<AnalysisView>,
    /// Recent events, oldest first.
    pub events: Vec<EventView>,
    /// Pushes to the proxies.
    pub push: PushView,
    /// When this view was built (unix ms).
    pub updated_at: u64,
}

/// The split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficView {
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

/// One analysis run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisView {
    /// `step N` or `background`.
    pub slot: String,
    /// Run phase.
    pub phase: String,
    /// Why, when the run ended badly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Its metrics.
    pub metrics: Vec<MetricView>,
}

/// One metric of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricView {
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
    pub measurements: Vec<MeasurementView>,
}

/// One measurement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementView {
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// When (unix ms).
    pub at: u64,
    /// Kind, e.g. `WeightChanged`.
    pub kind: String,
    /// What happened, in words.
    pub reason: String,
}

/// Pushes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushView {
    /// Where pushes go.
    pub target: String,
    /// Successful pushes since the controller started.
    pub pushes: u64,
    /// Failed pushes since the controller started.
    pub failures: u64,
    /// Version of the last successful push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_version: Option<String>,
    /// When the last successful push happened (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<u64>,
    /// The last push error, cleared by the next success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Whether the split in force is still waiting to be pushed.
    pub pending: bool,
    /// Whether the Envoys read through the `envoy` provider show the last
    /// push in effect (from the filter's `weight_bp` gauges); absent when
    /// no Envoy admin endpoint is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<AppliedView>,
}

/// What the proxies show of the last push.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedView {
    /// Every Envoy shows the pushed split.
    pub confirmed: bool,
    /// Milliseconds from the push to the first scrape that showed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
    /// While not confirmed: what the Envoys show instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differs: Option<String>,
}

impl AppliedView {
    /// In words: `applied by every Envoy, N ms after the push`, or
    /// `not applied yet: ` and what the Envoys show instead.
    pub fn describe(&self) -> String {
        match (self.confirmed, self.after_ms) {
            (true, Some(ms)) => format!("applied by every Envoy, {ms} ms after the push"),
            (true, None) => "applied by every Envoy".to_owned(),
            (false, _) => format!(
                "not applied yet: {}",
                self.differs
                    .as_deref()
                    .unwrap_or("waiting for a scrape of Envoy's stats")
            ),
        }
    }
}

/// Builds the view of `rollout` at `now`.
pub fn view(rollout: &Rollout, events: &[Event], push: PushView, now: Timestamp) -> StatusView {
    let spec = rollout.spec();
    let traffic = rollout.traffic();
    let weight = traffic.effective_weight().percent();
    let (phase, paused_until) = match rollout.phase() {
        Phase::Progressing => ("Progressing", None),
        Phase::Paused { until, .. } => ("Paused", until.map(|t| t.millis())),
        Phase::PausedInconclusive { .. } => ("PausedInconclusive", None),
        Phase::Promoted => ("Promoted", None),
        Phase::Aborted => ("Aborted", None),
    };
    let step = rollout.step();
    let mut analyses = Vec::new();
    if let Some(run) = rollout.step_analysis() {
        analyses.push(analysis_view(format!("step {}", step + 1), run));
    }
    if let Some(run) = rollout.background_analysis() {
        analyses.push(analysis_view("background".to_owned(), run));
    }
    StatusView {
        rollout: spec.name.clone(),
        phase: phase.to_owned(),
        paused_until,
        message: rollout.message().map(str::to_owned),
        step,
        steps: spec.steps.len(),
        current_step: spec.steps.get(step).map(describe_step),
        traffic: TrafficView {
            stable: traffic.stable.clone(),
            canary: traffic.canary.clone(),
            canary_weight: weight,
            stable_weight: 100.0 - weight,
            header_route: traffic.header_route,
        },
        analyses,
        events: events
            .iter()
            .map(|e| EventView {
                at: e.at.millis(),
                kind: format!("{:?}", e.kind),
                reason: e.reason.clone(),
            })
            .collect(),
        push,
        updated_at: now.millis(),
    }
}

fn analysis_view(slot: String, run: &AnalysisRun) -> AnalysisView {
    let state = run.state();
    AnalysisView {
        slot,
        phase: state.phase.to_string(),
        message: state.message.clone(),
        metrics: state
            .metrics
            .iter()
            .map(|m| MetricView {
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
                    .map(|x| MeasurementView {
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
