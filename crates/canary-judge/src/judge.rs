//! The judge: evidence accumulated over a rollout, and its verdict.

use serde::{Deserialize, Serialize};

use crate::assessment::{combine, Assessment, BoundComparison, LatencyAssessment, Verdicts};
use crate::comparison::{Levels, Question, Verdict};
use crate::look::{Buckets, Increment, Look, LookError, Side};
use crate::prior::Prior;
use crate::rate::Tally;
use crate::settings::{JudgeSettings, SettingsError};

/// Compares canary with stable over every interval the split was in force.
///
/// Its whole evidence is the counts it was fed, so the struct is its own
/// state: serialise it after each look and deserialise it after a restart
/// to go on with the same evidence and the same `α` budget. Starting a new
/// judge mid-rollout spends the budget a second time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "JudgeRecord")]
pub struct Judge {
    settings: JudgeSettings,
    looks: u64,
    stable: Totals,
    canary: Totals,
    /// Latency bounds in microseconds, from the first histogram on.
    bounds: Vec<f64>,
    /// The verdicts for the counts above (derived; recomputed on load).
    #[serde(skip)]
    verdicts: Verdicts,
}

/// One version's counts since the judge started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Requests routed to the version.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Timed requests at or below each latency bound.
    pub at_or_below: Vec<u64>,
    /// Timed requests in all.
    pub timed: u64,
}

impl Totals {
    /// Errors among requests. An error whose request was counted before
    /// the judge's first look (in flight at the start) counts as a request.
    pub fn errors(&self) -> Tally {
        Tally {
            events: self.errors,
            trials: self.requests.max(self.errors),
        }
    }

    /// Requests slower than the bound at `index`, among timed requests.
    fn slower_than(&self, index: usize) -> Tally {
        let at_or_below = self.at_or_below.get(index).copied().unwrap_or(0);
        Tally {
            events: self.timed.saturating_sub(at_or_below),
            trials: self.timed,
        }
    }

    fn add(&self, increment: &Increment, bounds: usize, side: Side) -> Result<Totals, LookError> {
        let overflow = || LookError::Overflow { side };
        let mut next = self.clone();
        next.requests = next
            .requests
            .checked_add(increment.requests)
            .ok_or_else(overflow)?;
        next.errors = next
            .errors
            .checked_add(increment.errors)
            .ok_or_else(overflow)?;
        if let Some(buckets) = &increment.latency {
            next.at_or_below.resize(bounds, 0);
            for (total, &added) in next.at_or_below.iter_mut().zip(&buckets.cumulative) {
                *total = total.checked_add(added).ok_or_else(overflow)?;
            }
            next.timed = next.timed.checked_add(buckets.count).ok_or_else(overflow)?;
        }
        Ok(next)
    }
}

impl Judge {
    /// A judge with no evidence yet.
    pub fn new(settings: JudgeSettings) -> Result<Judge, SettingsError> {
        settings.validate()?;
        let mut judge = Judge {
            settings,
            looks: 0,
            stable: Totals::default(),
            canary: Totals::default(),
            bounds: Vec::new(),
            verdicts: Verdicts::default(),
        };
        judge.decide(true);
        Ok(judge)
    }

    /// The settings it judges by.
    pub fn settings(&self) -> &JudgeSettings {
        &self.settings
    }

    /// Stable's counts so far.
    pub fn stable(&self) -> &Totals {
        &self.stable
    }

    /// The canary's counts so far.
    pub fn canary(&self) -> &Totals {
        &self.canary
    }

    /// The latency bounds seen (microseconds), empty before any histogram.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Adds one look's increments. A look is taken whole or not at all: on
    /// error nothing changes. A look without new data changes nothing.
    pub fn observe(&mut self, look: &Look) -> Result<(), LookError> {
        let mut bounds = self.bounds.clone();
        for (side, increment) in [(Side::Stable, &look.stable), (Side::Canary, &look.canary)] {
            if let Some(buckets) = &increment.latency {
                buckets.validate(side)?;
                check_bounds(&mut bounds, buckets, side)?;
            }
        }
        let stable = self.stable.add(&look.stable, bounds.len(), Side::Stable)?;
        let canary = self.canary.add(&look.canary, bounds.len(), Side::Canary)?;
        if stable == self.stable && canary == self.canary && bounds == self.bounds {
            return Ok(());
        }
        let latency_changed = stable.timed != self.stable.timed
            || canary.timed != self.canary.timed
            || bounds != self.bounds;
        self.stable = stable;
        self.canary = canary;
        self.bounds = bounds;
        self.looks += 1;
        self.decide(latency_changed);
        Ok(())
    }

    /// The verdicts for the counts so far: what a look acts on. The same
    /// as [`Judge::assess`]'s, without computing the bounds.
    pub fn verdicts(&self) -> Verdicts {
        self.verdicts
    }

    /// The verdict and everything it rests on, for the counts so far.
    pub fn assess(&self) -> Assessment {
        let errors = self.error_question().compare();
        let latency = LatencyAssessment::from_bounds(
            self.latency_questions()
                .map(|(bound_micros, question)| BoundComparison {
                    bound_micros,
                    comparison: question.compare(),
                })
                .collect(),
        );
        Assessment {
            verdict: combine([errors.verdict, latency.verdict]),
            looks: self.looks,
            errors,
            latency,
        }
    }

    fn decide(&mut self, latency_changed: bool) {
        let errors = self.error_question().decide().verdict;
        let latency = if latency_changed {
            if self.bounds.is_empty() {
                Verdict::NotEnoughData
            } else {
                combine(self.latency_questions().map(|(_, q)| q.decide().verdict))
            }
        } else {
            self.verdicts.latency
        };
        self.verdicts = Verdicts {
            overall: combine([errors, latency]),
            errors,
            latency,
        };
    }

    fn error_question(&self) -> Question<'static> {
        let settings = &self.settings;
        Question {
            prior: Prior::rates(),
            canary: self.canary.errors(),
            stable: self.stable.errors(),
            tolerance: settings.errors,
            levels: Levels {
                fail: settings.error_alpha(),
                succeed: settings.success_risk,
            },
        }
    }

    /// Every bound is its own comparison; the latency budget and the
    /// success risk are split evenly among them (a union bound), so that
    /// any bound failing falsely has probability at most the budget.
    fn latency_questions(&self) -> impl Iterator<Item = (f64, Question<'static>)> + '_ {
        let settings = &self.settings;
        let count = self.bounds.len().max(1) as f64;
        let levels = Levels {
            fail: settings.latency_alpha() / count,
            succeed: settings.success_risk / count,
        };
        self.bounds.iter().enumerate().map(move |(index, &bound)| {
            (
                bound,
                Question {
                    prior: Prior::shares(),
                    canary: self.canary.slower_than(index),
                    stable: self.stable.slower_than(index),
                    tolerance: settings.latency,
                    levels,
                },
            )
        })
    }
}

/// Adopts the first bounds seen; later ones must be the same.
fn check_bounds(bounds: &mut Vec<f64>, buckets: &Buckets, side: Side) -> Result<(), LookError> {
    if bounds.is_empty() {
        bounds.clone_from(&buckets.bounds);
        return Ok(());
    }
    if *bounds != buckets.bounds {
        return Err(LookError::BoundsChanged {
            side,
            seen: bounds.len(),
            now: buckets.bounds.len(),
        });
    }
    Ok(())
}

/// The serialised form, checked before it becomes a [`Judge`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JudgeRecord {
    settings: JudgeSettings,
    looks: u64,
    stable: Totals,
    canary: Totals,
    bounds: Vec<f64>,
}

/// A saved judge that cannot be taken back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StateError {
    /// Its settings are out of range.
    #[error("judge state: {0}")]
    Settings(#[from] SettingsError),
    /// Its counts do not fit its bounds or each other.
    #[error("judge state: {0}")]
    Counts(#[from] LookError),
}

impl TryFrom<JudgeRecord> for Judge {
    type Error = StateError;

    fn try_from(record: JudgeRecord) -> Result<Judge, StateError> {
        let mut judge = Judge::new(record.settings)?;
        // Replay the totals as one look so they pass the same checks.
        let as_increment = |totals: &Totals| Increment {
            requests: totals.requests,
            errors: totals.errors,
            latency: (!record.bounds.is_empty()).then(|| Buckets {
                bounds: record.bounds.clone(),
                cumulative: totals.at_or_below.clone(),
                count: totals.timed,
            }),
        };
        judge.observe(&Look {
            stable: as_increment(&record.stable),
            canary: as_increment(&record.canary),
        })?;
        judge.looks = record.looks;
        Ok(judge)
    }
}
