//! Helpers shared by the rollout tests: loading files from memory, and a
//! simulated controller that feeds measurements in simulated time.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use canary_analysis::metric::Metric;
use canary_analysis::{MeasurementResult, Timestamp};
use canary_rollout::{
    load_rollout_with, Decision, EventKind, LoadError, LoadedRollout, MeasurementKey, Rollout,
    RolloutSpec,
};

/// Loads `files[0]` as the rollout file, the others as files it may name.
pub fn load(files: &[(&str, &str)]) -> Result<LoadedRollout, LoadError> {
    let map: BTreeMap<PathBuf, String> = files
        .iter()
        .map(|(name, text)| (PathBuf::from(name), (*text).to_owned()))
        .collect();
    let read = move |path: &Path| {
        map.get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    };
    load_rollout_with(Path::new(files[0].0), &read, &|_| Some("secret".into()))
}

/// Problems of a set of files, each as `file:line: path: reason`.
pub fn problems(files: &[(&str, &str)]) -> Vec<String> {
    match load(files) {
        Ok(_) => Vec::new(),
        Err(err) => err.0.iter().map(ToString::to_string).collect(),
    }
}

/// Loads a rollout that must be valid.
pub fn spec(files: &[(&str, &str)]) -> Arc<RolloutSpec> {
    match load(files) {
        Ok(loaded) => Arc::new(loaded.spec),
        Err(err) => panic!("invalid rollout:\n{err}"),
    }
}

/// `secs` seconds after the epoch.
pub fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

/// A controller in simulated time: at each moment it lets the rollout
/// tick, takes every due measurement from `measure`, and jumps to the
/// rollout's next wake-up.
pub struct Sim {
    pub rollout: Rollout,
    pub now: Timestamp,
    pub decisions: Vec<Decision>,
}

impl Sim {
    /// Starts `spec` at t=0.
    pub fn start(spec: Arc<RolloutSpec>) -> Sim {
        let (rollout, decision) = Rollout::start(spec, at(0));
        Sim {
            rollout,
            now: at(0),
            decisions: vec![decision],
        }
    }

    /// Runs until nothing happens by itself any more or `limit` passes.
    pub fn run(&mut self, limit: u64, measure: &dyn Fn(&Metric, Timestamp) -> MeasurementResult) {
        loop {
            self.settle(measure);
            match self.rollout.next_wake() {
                Some(next) if next <= at(limit) => {
                    self.now = next.max(self.now);
                    let decision = self.rollout.tick(self.now);
                    self.decisions.push(decision);
                }
                _ => return,
            }
        }
    }

    /// Takes every measurement due now, until none is.
    pub fn settle(&mut self, measure: &dyn Fn(&Metric, Timestamp) -> MeasurementResult) {
        loop {
            let due: Vec<(MeasurementKey, MeasurementResult)> = self
                .rollout
                .due_measurements(self.now)
                .into_iter()
                .map(|d| (d.key, measure(d.metric, self.now)))
                .collect();
            if due.is_empty() {
                return;
            }
            for (key, result) in due {
                // A result for a run that just ended (another metric
                // aborted the rollout) is refused as stale: that is fine.
                if let Ok(decision) = self.rollout.record(self.now, &key, &result) {
                    self.decisions.push(decision);
                }
            }
        }
    }

    /// `(time in seconds, percent of traffic on the canary version)` after
    /// each decision that changed the split. Once promoted, the canary
    /// version is the stable one and has 100%.
    pub fn weight_changes(&self) -> Vec<(u64, f64)> {
        let canary = &self.rollout.spec().canary_version;
        self.decisions
            .iter()
            .filter(|d| d.traffic_changed)
            .map(|d| {
                let share = match &d.traffic.canary {
                    Some(_) => d.traffic.canary_weight.percent(),
                    None if d.traffic.stable == *canary => 100.0,
                    None => 0.0,
                };
                (d.events[0].at.millis() / 1000, share)
            })
            .collect()
    }

    /// Time (seconds) of the first event of `kind`.
    pub fn first(&self, kind: EventKind) -> Option<u64> {
        self.decisions
            .iter()
            .flat_map(|d| &d.events)
            .find(|e| e.kind == kind)
            .map(|e| e.at.millis() / 1000)
    }

    /// Every event, in order.
    pub fn kinds(&self) -> Vec<EventKind> {
        self.decisions
            .iter()
            .flat_map(|d| &d.events)
            .map(|e| e.kind)
            .collect()
    }
}

/// The seed's pod-health measurements: readiness and CPU by metric name.
pub fn pod_health(ready: f64, cpu: f64) -> impl Fn(&Metric, Timestamp) -> MeasurementResult {
    move |metric, _| match metric.name.as_str() {
        "pod-readiness" => MeasurementResult::sampled(ready, 3),
        "cpu-usage" => MeasurementResult::sampled(cpu, 3),
        other => panic!("unexpected metric {other}"),
    }
}

/// The example files shipped in `examples/`.
pub fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}
