//! Rollouts: the `CanaryRollout` format and the state machine that runs
//! one, as pure logic on the caller's clock.
//!
//! - [`spec`], [`read`], [`load`]: the rollout file and its templates,
//!   checked with `file:line: field.path: reason` problems.
//! - [`machine`]: phases, commands, decisions and events.
//! - [`driver`]: the one driver every shell runs: the machine gated on
//!   what the proxies show, pushes, drift, positions and the report.
//! - [`traffic`]: the split, and the filter configuration that carries it.
//! - [`event`], [`command`]: what the machine says and hears.

pub mod command;
pub mod driver;
pub mod event;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod load;
pub mod machine;
pub mod ports;
pub mod read;
pub mod spec;
pub mod traffic;

pub use command::{Command, CommandError, UnknownCommand};
pub use event::{Event, EventKind};
pub use load::{
    load_rollout, load_rollout_with, validate_rollout, FileProblem, LoadError, LoadedRollout,
};
pub use machine::{
    AnalysisSlot, Decision, DueMeasurement, MeasurementKey, PauseReason, Phase, RecordError,
    RestoreError, Rollout, RolloutState, SavedRun, Status,
};
pub use spec::{BackgroundAnalysis, RolloutSpec, Step};
pub use traffic::{ApplyError, TrafficState};
