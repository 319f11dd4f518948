//! A seeded traffic simulator and rollout driver that validate the judge:
//! what the filter's counters and Envoy's histograms would show for given
//! traffic, fed to the real [`crate::Judge`] look by look through a whole
//! rollout. Deterministic for a seed.
//!
//! - [`traffic`]: versions' error rates and latency, requests into counts
//!   and histogram buckets.
//! - [`rollout`]: the weight schedule, the timing of counters, histogram
//!   flushes and looks, and one rollout's outcome.
//! - [`summary`]: many rollouts into rates with confidence intervals and
//!   detection-time percentiles.

pub mod rollout;
pub mod summary;
pub mod traffic;

pub use rollout::{run, run_many, Ending, Gate, Outcome, Scenario, Step, Timing};
pub use summary::{clopper_pearson, Summary};
pub use traffic::{Behaviour, Latency, SHIPPED_BOUNDS_MICROS};
