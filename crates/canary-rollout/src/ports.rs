//! The small interfaces between a shell and the world: where measurements
//! come from, where splits go and how the proxies are read, and where the
//! position is kept. The edges implement them (Envoy, Prometheus,
//! Kubernetes, files); [`crate::fixtures`] has fakes for tests.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use canary_analysis::Timestamp;

use crate::driver::{MeasureRequest, Measured, Observation, Position, SplitPush};

/// A boxed future, as the ports return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The rollout's two version names, as the metric sources need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions<'a> {
    /// The stable version.
    pub stable: &'a str,
    /// The canary version.
    pub canary: &'a str,
}

/// Takes one measurement. Every failure is an `Error` result (counted
/// toward `consecutiveErrorLimit`, which can only lead to a rollback),
/// never a pass.
pub trait MetricSource: Send + Sync {
    /// Measures `request.metric` at `now` for `versions`, going on from
    /// `request.carry`; what it hands back to carry on goes with the result.
    fn measure<'a>(
        &'a self,
        request: &'a MeasureRequest,
        versions: Versions<'a>,
        now: Timestamp,
    ) -> BoxFuture<'a, Measured>;
}

/// Why a split was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RouterError(pub String);

/// Where splits go, and how the proxies that apply them are read.
pub trait TrafficRouter: Send + Sync {
    /// Where splits go, for people.
    fn describe(&self) -> String;

    /// Delivers `split` on the rollout's `routes`; the target's version for
    /// it, when it has one.
    fn set<'a>(
        &'a self,
        split: &'a SplitPush,
        routes: &'a [String],
    ) -> BoxFuture<'a, Result<Option<String>, RouterError>>;

    /// The latest reading of every proxy the rollout targets; `None` when
    /// nothing observes them (a dry run).
    fn observe(&self) -> BoxFuture<'_, Option<Observation>>;

    /// How long the proxies may reasonably take to show a split through
    /// this router and its observer (the verify deadline's default).
    fn verify_deadline(&self) -> Duration;
}

/// Why a position could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading failed.
    #[error("cannot read the saved position from {place}: {reason}")]
    Read {
        /// Where.
        place: String,
        /// Why.
        reason: String,
    },
    /// Writing failed.
    #[error("cannot save the position to {place}: {reason}")]
    Write {
        /// Where.
        place: String,
        /// Why.
        reason: String,
    },
}

/// Where the position is kept between runs.
pub trait PositionStore: Send + Sync {
    /// The saved position, if any.
    fn load(&self) -> Result<Option<Position>, StoreError>;
    /// Saves `position` (atomically: a reader sees the old or the new one).
    fn save(&self, position: &Position) -> Result<(), StoreError>;
}

/// Tells the time; passed in so a shell can be driven by a test's clock.
pub trait Clock: Send + Sync {
    /// Now, in unix milliseconds.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        Timestamp::from_millis(millis)
    }
}
