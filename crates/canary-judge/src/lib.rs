//! The judge: canary against stable, from the filter's per-version
//! counters and latency histograms, with an anytime-valid guarantee.
//!
//! Feed it, at every look, what each version's `rq_total`, `rq_error` and
//! `rq_latency_us` gained since the previous look ([`Look`]), only for
//! intervals in which the split was in force. It answers with an
//! [`Assessment`]: Failed, Successful or NotEnoughData, and the estimates,
//! bounds, evidence and counts behind it.
//!
//! The chance that it ever says Failed while the canary is within both
//! tolerances is at most `alpha` over the judge's whole life, however often
//! it is asked and whatever the weights were: each verdict rests on
//! confidence sequences from mixture martingales (Ville's inequality), and
//! the budget is split between errors and latency's bounds by a union
//! bound. `docs/judge.md` gives the math, its assumptions and the
//! simulation that checks it.
//!
//! - [`settings`]: α, the success risk, the tolerances and their defaults.
//! - [`look`]: the input and what makes it refused.
//! - [`rate`], [`comparison`]: one version's rate; canary against stable.
//! - [`judge`]: the accumulated evidence, which is its own saved state.
//! - [`assessment`]: the answer.
//! - `simulation` (feature `simulation`): seeded traffic and rollouts that
//!   measure false rollbacks and detection times.

pub mod assessment;
pub mod comparison;
pub mod judge;
pub mod look;
mod prior;
pub mod rate;
pub mod settings;
#[cfg(feature = "simulation")]
pub mod simulation;

pub use assessment::{Assessment, BoundComparison, LatencyAssessment, Verdicts};
pub use comparison::{Bounds, Comparison, Evidence, Verdict};
pub use judge::{Judge, StateError, Totals};
pub use look::{Buckets, Increment, Look, LookError, Side};
pub use rate::Tally;
pub use settings::{JudgeSettings, SettingsError, Tolerance};
