//! What the caller feeds the judge at each look: for each version, what the
//! filter's counters and latency histogram gained since the previous look.

use serde::{Deserialize, Serialize};

/// Which version a count belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Side {
    /// The version serving by default.
    Stable,
    /// The version under test.
    Canary,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Stable => "stable",
            Side::Canary => "canary",
        })
    }
}

/// One look: both versions' increments over an interval in which the split
/// was in force. Intervals without the split in force are not fed at all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Look {
    /// Stable's increments.
    pub stable: Increment,
    /// The canary's increments.
    pub canary: Increment,
}

/// One version's increments since the previous look.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Increment {
    /// Requests the filter routed to the version (`rq_total`).
    pub requests: u64,
    /// Failed requests (`rq_error`: 5xx plus streams without a response).
    pub errors: u64,
    /// The latency histogram's increment, `None` when Envoy has not flushed
    /// its histograms since the previous look (they appear only at the
    /// stats flush, while counters appear every 250 ms).
    pub latency: Option<Buckets>,
}

/// A Prometheus-style cumulative histogram increment, as Envoy shows
/// `rq_latency_us`: for each upper bound (microseconds, strictly
/// increasing), how many requests took at most that long, and how many
/// requests there were in all (the `+Inf` bucket).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Buckets {
    /// Upper bounds in microseconds.
    pub bounds: Vec<f64>,
    /// Requests at or below each bound; never decreasing.
    pub cumulative: Vec<u64>,
    /// All requests, however slow.
    pub count: u64,
}

impl Buckets {
    /// Whether the increment holds no request.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Input the judge refuses; the look is then not counted at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LookError {
    /// A histogram without bounds.
    #[error("{side} latency histogram: no bucket bounds")]
    NoBounds {
        /// Which version.
        side: Side,
    },
    /// A bound that is not a positive finite number, or not above the one
    /// before it.
    #[error("{side} latency histogram: bound {index} ({value}) must be finite, positive and above the bound before it")]
    BadBound {
        /// Which version.
        side: Side,
        /// Position of the bound.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// As many cumulative counts as bounds are needed.
    #[error("{side} latency histogram: {bounds} bounds but {counts} cumulative counts")]
    CountMismatch {
        /// Which version.
        side: Side,
        /// Number of bounds.
        bounds: usize,
        /// Number of counts.
        counts: usize,
    },
    /// Cumulative counts went down from one bound to the next, or above
    /// the total.
    #[error("{side} latency histogram: the count at or below {bound} µs ({below}) is more than the count at the next bound or in all ({above})")]
    NotCumulative {
        /// Which version.
        side: Side,
        /// The bound at which the count falls.
        bound: f64,
        /// Its count.
        below: u64,
        /// The smaller count after it.
        above: u64,
    },
    /// The histogram's bounds differ from those the judge has seen before
    /// (or from the other version's): counts per bound cannot be added up.
    #[error("{side} latency histogram: bounds differ from the ones seen before ({seen} bounds, now {now})")]
    BoundsChanged {
        /// Which version.
        side: Side,
        /// Number of bounds seen before.
        seen: usize,
        /// Number of bounds now.
        now: usize,
    },
    /// A total beyond `u64`.
    #[error("{side}: counts overflow")]
    Overflow {
        /// Which version.
        side: Side,
    },
}

impl Buckets {
    /// Checks the histogram's own shape.
    pub(crate) fn validate(&self, side: Side) -> Result<(), LookError> {
        if self.bounds.is_empty() {
            return Err(LookError::NoBounds { side });
        }
        if self.bounds.len() != self.cumulative.len() {
            return Err(LookError::CountMismatch {
                side,
                bounds: self.bounds.len(),
                counts: self.cumulative.len(),
            });
        }
        let mut previous = 0.0;
        for (index, &value) in self.bounds.iter().enumerate() {
            if !(value.is_finite() && value > previous) {
                return Err(LookError::BadBound { side, index, value });
            }
            previous = value;
        }
        let nexts = self
            .cumulative
            .iter()
            .skip(1)
            .chain(std::iter::once(&self.count));
        for ((&bound, &below), &above) in self.bounds.iter().zip(&self.cumulative).zip(nexts) {
            if below > above {
                return Err(LookError::NotCumulative {
                    side,
                    bound,
                    below,
                    above,
                });
            }
        }
        Ok(())
    }
}
