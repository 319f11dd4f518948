//! The controller's clock, passed in so the loop can be driven in tests.

use std::time::{SystemTime, UNIX_EPOCH};

use canary_analysis::Timestamp;

/// Tells the time.
pub trait Clock: Send + Sync {
    /// Now, in unix milliseconds.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        Timestamp::from_millis(millis)
    }
}
