//! What a rollout's owner may set, and the defaults.

use serde::{Deserialize, Serialize};

/// How much worse than stable the canary may be before it counts as worse:
/// its share (of errors, or of requests slower than a latency bound) may
/// exceed stable's by `absolute`, or by `relative × stable's share`,
/// whichever is larger.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tolerance {
    /// As a fraction: `0.005` allows half a percentage point.
    pub absolute: f64,
    /// A multiple of stable's share: `0.1` allows a tenth more.
    pub relative: f64,
}

impl Tolerance {
    /// The allowed excess over stable's share `stable`.
    pub fn allowance(self, stable: f64) -> f64 {
        self.absolute.max(self.relative * stable)
    }

    /// The largest share the canary may have while stable's is `stable`.
    pub fn limit(self, stable: f64) -> f64 {
        stable + self.allowance(stable)
    }
}

/// The judge's settings. Every field has a default chosen so the
/// simulated rollouts meet the project's targets (see `docs/judge.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JudgeSettings {
    /// The probability of any false rollback over a whole rollout, errors
    /// and latency together, every look and every step: at most this when
    /// the canary is in truth within both tolerances.
    pub alpha: f64,
    /// The part of `alpha` spent on errors; the rest goes to latency.
    pub error_share: f64,
    /// The probability, per metric, of calling Successful a canary that is
    /// in truth worse than the tolerance allows (a false promotion).
    pub success_risk: f64,
    /// How much more often the canary may fail than stable.
    pub errors: Tolerance,
    /// How much larger a share of the canary's requests than of stable's
    /// may be slower than any latency bound.
    pub latency: Tolerance,
}

/// The defaults, as constants so the documentation can quote them.
pub mod defaults {
    use super::Tolerance;

    /// One false rollback in a hundred rollouts at most.
    pub const ALPHA: f64 = 0.01;
    /// Errors decide most rollbacks; latency's shifts are large when real.
    pub const ERROR_SHARE: f64 = 0.9;
    /// The usual one-sided level of a non-inferiority test.
    pub const SUCCESS_RISK: f64 = 0.05;
    /// Errors: a tenth of a percentage point.
    pub const ERRORS: Tolerance = Tolerance {
        absolute: 0.001,
        relative: 0.0,
    };
    /// Latency: two points, or a fifth of stable's share, at every bound.
    pub const LATENCY: Tolerance = Tolerance {
        absolute: 0.02,
        relative: 0.2,
    };
}

impl Default for JudgeSettings {
    fn default() -> Self {
        JudgeSettings {
            alpha: defaults::ALPHA,
            error_share: defaults::ERROR_SHARE,
            success_risk: defaults::SUCCESS_RISK,
            errors: defaults::ERRORS,
            latency: defaults::LATENCY,
        }
    }
}

/// A setting out of its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// A probability outside `(0, 1)`.
    #[error("{field} is {value}: it must be a probability strictly between 0 and 1")]
    NotAProbability {
        /// Which setting.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// `successRisk` below `alpha`: Failed and Successful could then both
    /// hold at once.
    #[error("successRisk ({success_risk}) must be at least alpha ({alpha})")]
    SuccessRiskBelowAlpha {
        /// `successRisk`.
        success_risk: f64,
        /// `alpha`.
        alpha: f64,
    },
    /// A tolerance part negative or not finite.
    #[error("{field} is {value}: it must be a finite number, 0 or more")]
    BadTolerance {
        /// Which setting.
        field: &'static str,
        /// Its value.
        value: f64,
    },
}

impl JudgeSettings {
    /// Checks every field; the judge refuses settings that fail.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let probability = |field, value: f64| {
            if value > 0.0 && value < 1.0 {
                Ok(())
            } else {
                Err(SettingsError::NotAProbability { field, value })
            }
        };
        probability("alpha", self.alpha)?;
        probability("errorShare", self.error_share)?;
        probability("successRisk", self.success_risk)?;
        if self.success_risk < self.alpha {
            return Err(SettingsError::SuccessRiskBelowAlpha {
                success_risk: self.success_risk,
                alpha: self.alpha,
            });
        }
        let tolerance = |field, value: f64| {
            if value.is_finite() && value >= 0.0 {
                Ok(())
            } else {
                Err(SettingsError::BadTolerance { field, value })
            }
        };
        tolerance("errors.absolute", self.errors.absolute)?;
        tolerance("errors.relative", self.errors.relative)?;
        tolerance("latency.absolute", self.latency.absolute)?;
        tolerance("latency.relative", self.latency.relative)?;
        Ok(())
    }

    /// The part of `alpha` spent on errors.
    pub fn error_alpha(&self) -> f64 {
        self.alpha * self.error_share
    }

    /// The part of `alpha` spent on latency (over all its bounds).
    pub fn latency_alpha(&self) -> f64 {
        self.alpha * (1.0 - self.error_share)
    }
}
