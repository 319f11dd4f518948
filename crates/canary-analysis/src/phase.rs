//! Phases of a measurement, a metric and an analysis run, ordered as Argo
//! Rollouts orders them when it picks the worst.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Phase of a metric or of a whole analysis run.
///
/// The order is Argo's (`analysisStatusOrder`): a later phase is worse.
/// Only completed phases take part in a run's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AnalysisPhase {
    /// Not measured yet.
    Pending,
    /// Measuring.
    Running,
    /// Passed.
    Successful,
    /// Neither passed nor failed: a person decides.
    Inconclusive,
    /// Could not be measured often enough in a row.
    Error,
    /// Failed.
    Failed,
}

impl AnalysisPhase {
    /// Whether the phase is final.
    pub fn completed(self) -> bool {
        matches!(
            self,
            AnalysisPhase::Successful
                | AnalysisPhase::Inconclusive
                | AnalysisPhase::Error
                | AnalysisPhase::Failed
        )
    }

    /// Whether the phase must stop a rollout (abort).
    pub fn is_failure(self) -> bool {
        matches!(self, AnalysisPhase::Error | AnalysisPhase::Failed)
    }
}

impl fmt::Display for AnalysisPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnalysisPhase::Pending => "Pending",
            AnalysisPhase::Running => "Running",
            AnalysisPhase::Successful => "Successful",
            AnalysisPhase::Inconclusive => "Inconclusive",
            AnalysisPhase::Error => "Error",
            AnalysisPhase::Failed => "Failed",
        })
    }
}

/// Phase of one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MeasurementPhase {
    /// The conditions passed.
    Successful,
    /// The conditions failed.
    Failed,
    /// Neither condition held.
    Inconclusive,
    /// The provider or the condition could not give an answer.
    Error,
    /// Too little data to judge; not counted.
    NotEnoughData,
}

impl fmt::Display for MeasurementPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MeasurementPhase::Successful => "Successful",
            MeasurementPhase::Failed => "Failed",
            MeasurementPhase::Inconclusive => "Inconclusive",
            MeasurementPhase::Error => "Error",
            MeasurementPhase::NotEnoughData => "NotEnoughData",
        })
    }
}
