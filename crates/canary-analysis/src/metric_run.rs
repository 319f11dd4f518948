//! One metric's measurements and verdict, following Argo Rollouts'
//! analysis controller (`generateMetricTasks`, `runMeasurements`,
//! `assessMetricStatus`):
//!
//! - the first measurement is due when the run starts, or `initialDelay`
//!   later; measurement n+1 is due `interval` after measurement n
//!   *finished*, or 10 s after it when it was an Error;
//! - Successful, Failed and Inconclusive count; Error does not; any
//!   non-error resets the consecutive-error counter;
//! - Failed when `failed > failureLimit`, Inconclusive when
//!   `inconclusive > inconclusiveLimit`, Error when
//!   `consecutiveError > consecutiveErrorLimit` (the later rule wins when
//!   several hold, as in Argo); then Successful on
//!   `consecutiveSuccessLimit` or when the effective count is reached.
//!
//! canary adds "not enough data": the measurement is kept for the record
//! but counts for nothing, and the metric is measured again one interval
//! later.
//!
//! Where canary differs: a metric is measured at most once per
//! [`MIN_INTERVAL`] (Argo accepts any interval, `0s` included, which turns
//! a provider into a busy loop against its source and the state store).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::condition::assess;
use crate::metric::Metric;
use crate::phase::{AnalysisPhase, MeasurementPhase};
use crate::time::Timestamp;
use crate::value::MeasurementResult;

/// Argo's retry delay after an Error (and the delay between measurements
/// of a metric without an interval that must measure again).
pub const ERROR_RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// The shortest time between two measurements of one metric: a shorter
/// `interval` is measured at this pace instead.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// One measurement as kept in the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Its phase.
    pub phase: MeasurementPhase,
    /// When it finished (the time the result was recorded).
    pub finished_at: Timestamp,
    /// The value, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Why it errored or had too little data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A metric's counters and record (Argo's `MetricResult`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricState {
    /// Metric name.
    pub name: String,
    /// Current phase.
    pub phase: AnalysisPhase,
    /// Successful + Failed + Inconclusive measurements.
    pub count: u32,
    /// Successful measurements.
    pub successful: u32,
    /// Failed measurements.
    pub failed: u32,
    /// Inconclusive measurements.
    pub inconclusive: u32,
    /// Errored measurements.
    pub error: u32,
    /// Errors since the last non-error.
    pub consecutive_error: u32,
    /// Successes since the last non-success.
    pub consecutive_success: u32,
    /// Measurements with too little data.
    pub not_enough_data: u32,
    /// Start of the current run of "not enough data" measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starved_since: Option<Timestamp>,
    /// The latest measurement (kept even when retention is small).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Measurement>,
    /// The most recent measurements, oldest first.
    pub measurements: Vec<Measurement>,
    /// Why the metric is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl MetricState {
    /// A metric not measured yet.
    pub fn new(name: &str) -> MetricState {
        MetricState {
            name: name.to_owned(),
            phase: AnalysisPhase::Pending,
            count: 0,
            successful: 0,
            failed: 0,
            inconclusive: 0,
            error: 0,
            consecutive_error: 0,
            consecutive_success: 0,
            not_enough_data: 0,
            starved_since: None,
            last: None,
            measurements: Vec::new(),
            message: None,
        }
    }

    /// When the next measurement is due, or `None` when the metric takes
    /// no more measurements.
    pub fn next_due(&self, metric: &Metric, run_started_at: Timestamp) -> Option<Timestamp> {
        if self.phase.completed() {
            return None;
        }
        let Some(last) = &self.last else {
            return Some(run_started_at.plus(metric.initial_delay.unwrap_or_default()));
        };
        if metric.effective_count().is_some_and(|n| self.count >= n) {
            return None;
        }
        let interval = match (last.phase, metric.interval) {
            (MeasurementPhase::Error, _) | (_, None) => ERROR_RETRY_INTERVAL,
            (_, Some(interval)) => interval.max(MIN_INTERVAL),
        };
        Some(last.finished_at.plus(interval))
    }

    /// Records a finished measurement and returns its phase.
    pub fn record(
        &mut self,
        metric: &Metric,
        now: Timestamp,
        result: &MeasurementResult,
        retention: usize,
    ) -> MeasurementPhase {
        let (phase, value, message) = judge(metric, result);
        match phase {
            MeasurementPhase::Successful => {
                self.successful += 1;
                self.count += 1;
                self.consecutive_error = 0;
                self.consecutive_success += 1;
            }
            MeasurementPhase::Failed => {
                self.failed += 1;
                self.count += 1;
                self.consecutive_error = 0;
                self.consecutive_success = 0;
            }
            MeasurementPhase::Inconclusive => {
                self.inconclusive += 1;
                self.count += 1;
                self.consecutive_error = 0;
                self.consecutive_success = 0;
            }
            MeasurementPhase::Error => {
                self.error += 1;
                self.consecutive_error += 1;
                self.consecutive_success = 0;
            }
            MeasurementPhase::NotEnoughData => {
                self.not_enough_data += 1;
            }
        }
        if phase == MeasurementPhase::NotEnoughData {
            self.starved_since.get_or_insert(now);
        } else {
            self.starved_since = None;
        }
        let measurement = Measurement {
            phase,
            finished_at: now,
            value,
            message,
        };
        self.measurements.push(measurement.clone());
        let excess = self.measurements.len().saturating_sub(retention.max(1));
        self.measurements.drain(..excess);
        self.last = Some(measurement);
        phase
    }

    /// Updates the phase from the counters (Argo's `assessMetricStatus`).
    /// `terminating` is set when the run is stopping: a metric without
    /// measurements, or one that runs until stopped, then counts as
    /// Successful.
    pub fn assess(&mut self, metric: &Metric, terminating: bool) {
        if self.phase.completed() {
            return;
        }
        let (phase, message) = verdict(metric, self, terminating);
        self.phase = phase;
        if message.is_some() {
            self.message = message;
        }
    }
}

/// The phase of one measurement and what to record about it.
fn judge(
    metric: &Metric,
    result: &MeasurementResult,
) -> (MeasurementPhase, Option<String>, Option<String>) {
    match result {
        MeasurementResult::Error(message) => (MeasurementPhase::Error, None, Some(message.clone())),
        MeasurementResult::NotEnoughData(why) => {
            (MeasurementPhase::NotEnoughData, None, Some(why.clone()))
        }
        MeasurementResult::Value { value, samples } => {
            let text = Some(value.to_string());
            if value.is_empty_list() {
                let why = "the query returned no data".to_owned();
                return (MeasurementPhase::NotEnoughData, text, Some(why));
            }
            if let (Some(min), Some(samples)) = (metric.min_samples, samples) {
                if *samples < min {
                    let why = format!("{samples} samples, fewer than minSamples ({min})");
                    return (MeasurementPhase::NotEnoughData, text, Some(why));
                }
            }
            let (phase, message) = assess(
                metric.success_condition.as_ref(),
                metric.failure_condition.as_ref(),
                value,
            );
            (phase, text, message)
        }
    }
}

fn verdict(
    metric: &Metric,
    state: &MetricState,
    terminating: bool,
) -> (AnalysisPhase, Option<String>) {
    if state.last.is_none() {
        return if terminating {
            (
                AnalysisPhase::Successful,
                Some("run terminated before the first measurement".into()),
            )
        } else {
            (AnalysisPhase::Pending, None)
        };
    }
    // Argo checks the limits in this order and the last one exceeded wins.
    let limits = [
        (
            metric.failure_limit >= 0,
            AnalysisPhase::Failed,
            ("failed", i64::from(state.failed)),
            ("failureLimit", metric.failure_limit),
        ),
        (
            true,
            AnalysisPhase::Inconclusive,
            ("inconclusive", i64::from(state.inconclusive)),
            ("inconclusiveLimit", i64::from(metric.inconclusive_limit)),
        ),
        (
            true,
            AnalysisPhase::Error,
            ("consecutiveErrors", i64::from(state.consecutive_error)),
            (
                "consecutiveErrorLimit",
                i64::from(metric.consecutive_error_limit),
            ),
        ),
    ];
    let exceeded = limits
        .into_iter()
        .rev()
        .find(|(applies, _, (_, seen), (_, limit))| *applies && seen > limit);
    if let Some((_, phase, (counter, seen), (name, limit))) = exceeded {
        return (
            phase,
            Some(format!("{counter} ({seen}) > {name} ({limit})")),
        );
    }
    let success_limit = metric.consecutive_success_limit;
    if success_limit > 0 && state.consecutive_success >= success_limit {
        return (
            AnalysisPhase::Successful,
            Some(format!("consecutiveSuccessLimit ({success_limit}) reached")),
        );
    }
    if let Some(n) = metric.effective_count() {
        if state.count >= n {
            let failure_applies = metric.failure_limit >= 0;
            let success_applies = success_limit > 0;
            return match (failure_applies, success_applies) {
                (true, true) => (
                    AnalysisPhase::Inconclusive,
                    Some(format!(
                        "count ({n}) reached without {success_limit} successes in a row and without exceeding failureLimit ({})",
                        metric.failure_limit
                    )),
                ),
                (false, true) => (
                    AnalysisPhase::Failed,
                    Some(format!("count ({n}) reached without {success_limit} successes in a row")),
                ),
                _ => (AnalysisPhase::Successful, Some(format!("count ({n}) reached"))),
            };
        }
    }
    if terminating {
        return (AnalysisPhase::Successful, Some("run terminated".into()));
    }
    (AnalysisPhase::Running, None)
}
