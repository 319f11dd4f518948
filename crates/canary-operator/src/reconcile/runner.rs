//! The rollouts the operator drives, kept between reconciles: each one's
//! driver, router and metric source, and the measurements that finished
//! since its last reconcile.
//!
//! A runner is taken out for a reconcile and put back only when the
//! reconcile succeeded; after a failure the next reconcile opens the
//! driver again from the position saved in the status, which is what is
//! durable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use canary_rollout::driver::{Driver, Finished, PushOutcome};
use canary_rollout::ports::MetricSource;

use super::edges::Gate;

/// One rollout being driven.
pub(super) struct Runner {
    pub(super) driver: Driver,
    pub(super) router: Arc<Gate>,
    pub(super) metrics: Arc<dyn MetricSource>,
    /// The canary revision the driver runs for.
    pub(super) revision: String,
    /// The position last written to the status, as written: anything else
    /// found there was written by someone else.
    pub(super) saved: Option<serde_json::Value>,
    /// Measurements finished since the last step.
    pub(super) inbox: Arc<Mutex<Vec<Finished>>>,
    /// The outcome of a push not yet handed to the driver.
    pub(super) pushed: Option<PushOutcome>,
}

impl Runner {
    pub(super) fn take_finished(&self) -> Vec<Finished> {
        std::mem::take(
            &mut *self
                .inbox
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

/// The runners, by `namespace/name`.
#[derive(Default)]
pub struct Runners {
    runners: Mutex<HashMap<String, Runner>>,
}

impl Runners {
    pub(super) fn take(&self, key: &str) -> Option<Runner> {
        self.lock().remove(key)
    }

    pub(super) fn put(&self, key: &str, runner: Runner) {
        self.lock().insert(key.to_owned(), runner);
    }

    /// How many rollouts are being driven.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no rollout is being driven.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Runner>> {
        self.runners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
