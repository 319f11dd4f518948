//! An analysis run: the metrics of an [`AnalysisSpec`] measured side by
//! side, and the run's verdict (Argo's `assessRunStatus`): the worst phase
//! among completed metrics, ignoring `dryRun` metrics; a metric that ends
//! Failed, Error or Inconclusive stops the whole run at once.
//!
//! The run never reads a clock or a provider. [`AnalysisRun::due`] says
//! which measurements to take at `now`; the caller takes them and hands
//! each result to [`AnalysisRun::record`] with the time it finished.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::compose::AnalysisSpec;
use crate::metric::Metric;
use crate::metric_run::MetricState;
use crate::phase::{AnalysisPhase, MeasurementPhase};
use crate::time::Timestamp;
use crate::value::MeasurementResult;

/// The run's persistent state (everything but the spec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    /// When the run started.
    pub started_at: Timestamp,
    /// The run's phase.
    pub phase: AnalysisPhase,
    /// Set when the run was stopped from outside.
    pub terminated: bool,
    /// Why the run is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// One entry per metric, in spec order.
    pub metrics: Vec<MetricState>,
}

/// A running analysis.
#[derive(Debug, Clone)]
pub struct AnalysisRun {
    spec: Arc<AnalysisSpec>,
    state: RunState,
}

/// Why a result was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// No metric of that name in this run.
    #[error("the analysis has no metric named {0:?}")]
    UnknownMetric(String),
    /// The metric takes no more measurements.
    #[error("metric {0:?} takes no more measurements")]
    Finished(String),
    /// The metric's next measurement is not due yet.
    #[error("metric {metric:?} is not due until {due}")]
    NotDue {
        /// The metric.
        metric: String,
        /// When it is due.
        due: Timestamp,
    },
}

/// Why a saved state does not fit a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("saved analysis state does not match its spec: {0}")]
pub struct StateMismatch(pub String);

impl AnalysisRun {
    /// Starts a run at `now`.
    pub fn start(spec: Arc<AnalysisSpec>, now: Timestamp) -> AnalysisRun {
        let metrics = spec
            .metrics
            .iter()
            .map(|m| MetricState::new(&m.name))
            .collect();
        AnalysisRun {
            spec,
            state: RunState {
                started_at: now,
                phase: AnalysisPhase::Running,
                terminated: false,
                message: None,
                metrics,
            },
        }
    }

    /// Continues a run from a saved state.
    pub fn restore(spec: Arc<AnalysisSpec>, state: RunState) -> Result<AnalysisRun, StateMismatch> {
        let spec_names: Vec<&str> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
        let state_names: Vec<&str> = state.metrics.iter().map(|m| m.name.as_str()).collect();
        if spec_names != state_names {
            return Err(StateMismatch(format!(
                "metrics {state_names:?} were saved, the spec has {spec_names:?}"
            )));
        }
        Ok(AnalysisRun { spec, state })
    }

    /// The spec.
    pub fn spec(&self) -> &AnalysisSpec {
        &self.spec
    }

    /// The state to persist.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// The run's phase.
    pub fn phase(&self) -> AnalysisPhase {
        self.state.phase
    }

    /// Why the run is in its phase.
    pub fn message(&self) -> Option<&str> {
        self.state.message.as_deref()
    }

    /// Metrics to measure at `now`.
    pub fn due(&self, now: Timestamp) -> Vec<&Metric> {
        self.scheduled()
            .filter(|(_, due)| *due <= now)
            .map(|(metric, _)| metric)
            .collect()
    }

    /// The earliest time a measurement is due, if any.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.scheduled().map(|(_, due)| due).min()
    }

    /// When the metrics that decide the run began to lack data, if they do
    /// now (the earliest such time).
    pub fn starved_since(&self) -> Option<Timestamp> {
        if self.stopped() {
            return None;
        }
        self.spec
            .metrics
            .iter()
            .zip(&self.state.metrics)
            .filter(|(metric, state)| {
                !self.spec.is_dry_run(&metric.name) && !state.phase.completed()
            })
            .filter_map(|(_, state)| state.starved_since)
            .min()
    }

    /// Records a measurement of `metric` that finished at `now`.
    pub fn record(
        &mut self,
        now: Timestamp,
        metric: &str,
        result: &MeasurementResult,
    ) -> Result<MeasurementPhase, RecordError> {
        let index = self
            .spec
            .metrics
            .iter()
            .position(|m| m.name == metric)
            .ok_or_else(|| RecordError::UnknownMetric(metric.to_owned()))?;
        let spec = Arc::clone(&self.spec);
        let definition = &spec.metrics[index];
        let due = match self.stopped() {
            true => None,
            false => self.state.metrics[index].next_due(definition, self.state.started_at),
        };
        let due = due.ok_or_else(|| RecordError::Finished(metric.to_owned()))?;
        if now < due {
            return Err(RecordError::NotDue {
                metric: metric.to_owned(),
                due,
            });
        }
        let retention = spec.retention_of(metric);
        let phase = self.state.metrics[index].record(definition, now, result, retention);
        self.assess();
        Ok(phase)
    }

    /// Stops the run: no more measurements; metrics still measuring end
    /// Successful, as Argo ends a terminated run.
    pub fn terminate(&mut self) {
        if self.state.phase.completed() {
            return;
        }
        self.state.terminated = true;
        self.assess();
    }

    fn stopped(&self) -> bool {
        self.state.phase.completed() || self.state.terminated
    }

    fn scheduled(&self) -> impl Iterator<Item = (&Metric, Timestamp)> + '_ {
        let stopped = self.stopped();
        self.spec
            .metrics
            .iter()
            .zip(&self.state.metrics)
            .filter(move |_| !stopped)
            .filter_map(|(metric, state)| {
                state
                    .next_due(metric, self.state.started_at)
                    .map(|due| (metric, due))
            })
    }

    /// Whether a metric that decides the run has ended badly.
    fn stopping_metric(&self) -> bool {
        self.state.metrics.iter().any(|m| {
            !self.spec.is_dry_run(&m.name)
                && matches!(
                    m.phase,
                    AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
                )
        })
    }

    fn assess(&mut self) {
        let spec = Arc::clone(&self.spec);
        let mut terminating = self.state.terminated || self.stopping_metric();
        loop {
            for (metric, state) in spec.metrics.iter().zip(self.state.metrics.iter_mut()) {
                state.assess(metric, terminating);
            }
            // A metric that just ended badly stops the others in the same
            // step (Argo does it on the reconcile its status update causes).
            if !terminating && self.stopping_metric() {
                terminating = true;
                continue;
            }
            break;
        }

        let mut worst: Option<(AnalysisPhase, Option<String>)> = None;
        let mut all_completed = true;
        for state in &self.state.metrics {
            if !state.phase.completed() {
                all_completed = false;
                continue;
            }
            let dry_run = spec.is_dry_run(&state.name);
            let phase = if dry_run {
                AnalysisPhase::Successful
            } else {
                state.phase
            };
            if worst.as_ref().is_none_or(|(w, _)| phase > *w) {
                let message = (!dry_run && phase != AnalysisPhase::Successful).then(|| {
                    format!(
                        "metric {:?} assessed {phase} due to {}",
                        state.name,
                        state.message.as_deref().unwrap_or("its measurements")
                    )
                });
                worst = Some((phase, message));
            }
        }
        let (phase, message) = match worst {
            Some((phase, message)) if terminating || all_completed => (phase, message),
            None if terminating => (AnalysisPhase::Successful, None),
            _ => (AnalysisPhase::Running, None),
        };
        self.state.phase = phase;
        if message.is_some() {
            self.state.message = message;
        }
    }
}
