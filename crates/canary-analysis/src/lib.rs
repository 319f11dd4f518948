//! Analysis compatible with Argo Rollouts, as pure logic.
//!
//! Templates are Argo's own `AnalysisTemplate` / `ClusterAnalysisTemplate`
//! YAML. A run measures their metrics on the caller's clock: it says which
//! measurements are due, the caller takes them (Prometheus, a web call,
//! Envoy's stats, Kubernetes) and records each result, and the run decides
//! each metric's and its own verdict exactly as Argo Rollouts would, plus
//! one addition: "not enough data" neither passes nor fails.
//!
//! - [`yaml`], [`fields`], [`problem`]: documents with line numbers, and
//!   problems as `line: field.path: reason`.
//! - [`template`], [`metric`], [`provider`], [`args`]: the template format.
//! - [`condition`]: `successCondition` / `failureCondition`.
//! - [`compose`]: one analysis from templates plus args.
//! - [`metric_run`], [`run`]: measurement timing and verdicts.
//! - [`value`], [`phase`], [`time`]: what flows in and out.

pub mod args;
pub mod compose;
pub mod condition;
pub mod fields;
pub mod metric;
pub mod metric_run;
pub mod phase;
pub mod problem;
pub mod provider;
pub mod run;
pub mod template;
pub mod time;
pub mod value;
pub mod yaml;

pub use args::{Arg, ArgValue, SecretKeyRef};
pub use compose::{compose, AnalysisSpec, ProblemSource, Reference, SourcedProblem};
pub use condition::Condition;
pub use metric::Metric;
pub use metric_run::{Measurement, MetricState, ERROR_RETRY_INTERVAL};
pub use phase::{AnalysisPhase, MeasurementPhase};
pub use problem::{Problem, Problems};
pub use provider::Provider;
pub use run::{AnalysisRun, RecordError, RunState, StateMismatch};
pub use template::{AnalysisTemplate, TemplateScope};
pub use time::{format_duration, parse_duration, Timestamp};
pub use value::{MeasurementResult, MetricValue};
