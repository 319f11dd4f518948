//! What one read of the cluster yields: a ratio standing on a number of
//! pods, or "no data", which the analysis treats as "not enough data yet"
//! (wait), never as a pass or a failure.

use std::fmt;

/// A ratio measured over the selected pods, or the reason there is none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RatioReading {
    /// A ratio over `samples` pods.
    Measured(Ratio),
    /// Nothing to measure yet.
    NoData(NoData),
}

/// A measured ratio and the number of pods it stands on (for `minSamples`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// The ratio; finite and non-negative. Readiness is within 0..=1; CPU
    /// usage may exceed 1 when pods burst above their requests.
    pub value: f64,
    /// How many pods the ratio stands on; at least 1.
    pub samples: u64,
}

/// Why a read found nothing to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoData {
    /// No pod matches the selector.
    NoPods,
    /// Pods match, but every one is terminating or has finished.
    NoLivePods {
        /// Matching pods left out (terminating, Succeeded or Failed).
        excluded: u64,
    },
    /// Pods are live, but the metrics API has no usage for any of them yet
    /// (metrics-server reports a pod after its first scrape).
    NoPodMetrics {
        /// Live pods without metrics.
        pods: u64,
    },
}

impl NoData {
    /// No live pod: none matched at all, or `excluded` matched but are
    /// terminating or finished.
    pub(crate) fn without_live_pods(excluded: u64) -> NoData {
        if excluded == 0 {
            NoData::NoPods
        } else {
            NoData::NoLivePods { excluded }
        }
    }
}

impl fmt::Display for NoData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoData::NoPods => f.write_str("no pod matches the selector"),
            NoData::NoLivePods { excluded } => write!(
                f,
                "all {excluded} matching pods are terminating or finished"
            ),
            NoData::NoPodMetrics { pods } => write!(
                f,
                "the metrics API has no CPU usage yet for any of the {pods} live pods"
            ),
        }
    }
}
