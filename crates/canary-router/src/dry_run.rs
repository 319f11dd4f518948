//! A pusher that only prints what it would push: one JSON line per push on
//! standard output, for trying a rollout without touching any proxy.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use canary_config::ecds::to_json_text;
use canary_config::FilterConfig;

/// Prints each configuration instead of delivering it.
#[derive(Debug, Default)]
pub struct DryRun {
    pushes: AtomicU64,
}

impl DryRun {
    /// Prints `config` as `dry-run push N: {json}`.
    pub fn push(&self, config: &FilterConfig) {
        let n = self.pushes.fetch_add(1, Ordering::Relaxed) + 1;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "dry-run push {n}: {}", to_json_text(config));
    }

    /// Pushes printed so far.
    pub fn pushes(&self) -> u64 {
        self.pushes.load(Ordering::Relaxed)
    }
}
