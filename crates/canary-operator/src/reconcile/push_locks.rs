//! Serialising writes to one Istio object across rollouts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use canary_kube::PluginObject;

/// One mutex per Istio object: rollouts sharing a `WasmPlugin` (different
/// routes of one configuration) read, change and write it one at a time.
#[derive(Debug, Default)]
pub struct PushLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PushLocks {
    pub(super) async fn lock(&self, object: &PluginObject) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(locks.entry(object.to_string()).or_default())
        };
        lock.lock_owned().await
    }
}
