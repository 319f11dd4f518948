//! What happened, for people: each decision carries events with a kind a
//! program can match and a reason a person can read.

use std::fmt;

use canary_analysis::Timestamp;
use serde::{Deserialize, Serialize};

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When.
    pub at: Timestamp,
    /// What kind of thing.
    pub kind: EventKind,
    /// What happened and why, in words.
    pub reason: String,
}

/// Kinds of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// The rollout began.
    Started,
    /// The canary's weight changed.
    WeightChanged,
    /// The override header was switched on or off.
    HeaderRouteChanged,
    /// A pause step began.
    PauseStarted,
    /// A pause step ended.
    PauseEnded,
    /// An analysis run began.
    AnalysisStarted,
    /// A measurement was recorded.
    Measured,
    /// An analysis run passed.
    AnalysisSucceeded,
    /// An analysis run was inconclusive: a person decides.
    AnalysisInconclusive,
    /// An analysis run failed or errored.
    AnalysisFailed,
    /// A person paused the rollout.
    Paused,
    /// A person resumed the rollout.
    Resumed,
    /// A person skipped a pause or an analysis.
    StepSkipped,
    /// The canary became the stable version.
    Promoted,
    /// The rollout was rolled back: canary at 0%.
    Aborted,
    /// The rollout was started again after an abort.
    Retried,
    /// Every proxy shows the split decided last.
    SplitInForce,
    /// A push of the split failed (it is retried).
    PushFailed,
    /// A proxy showed the canary more traffic than intended: the intended
    /// split was pushed again at once.
    DriftUp,
    /// The proxies showed the canary less traffic than intended: paused
    /// until a person resumes or aborts.
    DriftDown,
    /// The in-proxy guard of a proxy stopped the canary's traffic.
    GuardTripped,
    /// A split was not seen in force within the rollout's deadline.
    SplitNotSeen,
    /// The saved position does not fit the rollout as it is now.
    SpecMismatch,
    /// The controller cannot go on and fails toward stable.
    Fatal,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {:?}: {}", self.at, self.kind, self.reason)
    }
}
