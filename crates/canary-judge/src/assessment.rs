//! What the judge reports at each look.

use serde::{Deserialize, Serialize};

use crate::comparison::{Comparison, Verdict};

/// The judge's answer at one look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    /// Failed if errors or latency failed; Successful if both succeeded;
    /// otherwise NotEnoughData.
    pub verdict: Verdict,
    /// Looks that brought data, over the judge's whole life.
    pub looks: u64,
    /// Error rates: canary against stable.
    pub errors: Comparison,
    /// Latency: canary against stable at every histogram bound.
    pub latency: LatencyAssessment,
}

/// The verdicts of one look, without what they rest on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdicts {
    /// The judge's verdict: as [`Assessment::verdict`].
    pub overall: Verdict,
    /// The errors comparison's.
    pub errors: Verdict,
    /// The latency comparison's.
    pub latency: Verdict,
}

impl Default for Verdicts {
    fn default() -> Self {
        Verdicts {
            overall: Verdict::NotEnoughData,
            errors: Verdict::NotEnoughData,
            latency: Verdict::NotEnoughData,
        }
    }
}

/// The latency side of an assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyAssessment {
    /// Failed if any bound failed; Successful if every bound succeeded;
    /// otherwise NotEnoughData (always, before the first histogram).
    pub verdict: Verdict,
    /// The bound that decides: when Failed, the one with the most evidence
    /// of failure; otherwise the one with the least evidence of success.
    pub deciding: Option<BoundComparison>,
    /// Every bound, in the histogram's order.
    pub bounds: Vec<BoundComparison>,
}

/// The share of requests slower than one bound, canary against stable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoundComparison {
    /// The bound, in microseconds.
    pub bound_micros: f64,
    /// The comparison of the shares slower than it.
    pub comparison: Comparison,
}

/// Failed wins, then NotEnoughData; Successful only when all are.
pub(crate) fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let mut all_successful = true;
    for verdict in verdicts {
        match verdict {
            Verdict::Failed => return Verdict::Failed,
            Verdict::NotEnoughData => all_successful = false,
            Verdict::Successful => {}
        }
    }
    if all_successful {
        Verdict::Successful
    } else {
        Verdict::NotEnoughData
    }
}

impl LatencyAssessment {
    pub(crate) fn from_bounds(bounds: Vec<BoundComparison>) -> LatencyAssessment {
        if bounds.is_empty() {
            return LatencyAssessment {
                verdict: Verdict::NotEnoughData,
                deciding: None,
                bounds,
            };
        }
        let verdict = combine(bounds.iter().map(|b| b.comparison.verdict));
        let deciding = if verdict == Verdict::Failed {
            bounds.iter().max_by(|a, b| {
                let key = |x: &BoundComparison| x.comparison.failure_evidence.value;
                key(a).total_cmp(&key(b))
            })
        } else {
            bounds.iter().min_by(|a, b| {
                let key = |x: &BoundComparison| x.comparison.success_evidence.value;
                key(a).total_cmp(&key(b))
            })
        };
        LatencyAssessment {
            verdict,
            deciding: deciding.cloned(),
            bounds,
        }
    }
}
