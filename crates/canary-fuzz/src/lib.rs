//! Fuzzing on the stable toolchain.
//!
//! Every parser that reads input from outside the process is a
//! [`Target`]: it takes bytes and must return (an answer or a refusal),
//! never panic, and never hold memory out of proportion to the input.
//! Inputs are the committed corpus (`corpus/<target>/`) and mutations of
//! it ([`mutate::Mutator`]). `crates/canary-fuzz/tests/replay.rs` replays the corpus in CI;
//! `make fuzz` runs a million mutated inputs per target and writes
//! `RELIABILITY.md`.

pub mod mutate;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use canary_analysis::value::MetricValue;
use canary_analysis::Condition;
use canary_sources::envoy::stats::{Snapshot, VersionWindow};

/// A parser under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The filter's configuration (JSON), parsed and validated as the
    /// filter does in `on_configure`, then split updates applied.
    FilterConfig,
    /// A rollout file with its templates (YAML), read and validated as
    /// `canary validate` does.
    Rollout,
    /// The condition language: the first line is a condition, parsed and
    /// evaluated against the rest read as a JSON measurement.
    Condition,
    /// Envoy's `/stats?format=json` answer, parsed, then windows and
    /// quantiles computed between it and itself.
    EnvoyStats,
    /// A Prometheus query answer (JSON) turned into a measurement.
    Prometheus,
    /// A web metric answer: the first line is a JSONPath, the rest the
    /// JSON document it selects from.
    Web,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 6] = [
        Target::FilterConfig,
        Target::Rollout,
        Target::Condition,
        Target::EnvoyStats,
        Target::Prometheus,
        Target::Web,
    ];

    /// The target's name (its corpus folder).
    pub fn name(self) -> &'static str {
        match self {
            Target::FilterConfig => "filter-config",
            Target::Rollout => "rollout",
            Target::Condition => "condition",
            Target::EnvoyStats => "envoy-stats",
            Target::Prometheus => "prometheus",
            Target::Web => "web",
        }
    }

    /// The target named `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs one input. Returns whether the input was accepted (for the
    /// report); a panic is the failure the fuzzer looks for.
    pub fn run(self, input: &[u8]) -> bool {
        match self {
            Target::FilterConfig => filter_config(input),
            Target::Rollout => rollout(input),
            Target::Condition => condition(input),
            Target::EnvoyStats => envoy_stats(input),
            Target::Prometheus => prometheus(input),
            Target::Web => web(input),
        }
    }

    /// The committed corpus folder of this target.
    pub fn corpus_dir(self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(self.name())
    }

    /// The corpus files, sorted by name.
    pub fn corpus(self) -> io::Result<Vec<(PathBuf, Vec<u8>)>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(self.corpus_dir())? {
            let path = entry?.path();
            if path.is_file() {
                let bytes = std::fs::read(&path)?;
                files.push((path, bytes));
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }
}

fn filter_config(input: &[u8]) -> bool {
    let Ok(config) = canary_config::parse_document(input) else {
        return false;
    };
    let compiled = canary_config::compile(&config).is_ok();
    // Reading the splits back and writing one exercises the controller's
    // side of the same document.
    for route in &config.routes {
        if let Some(split) = canary_config::Split::of(&config, &route.name) {
            let _ = split.apply_to(&config, std::slice::from_ref(&route.name));
        }
    }
    compiled
}

fn rollout(input: &[u8]) -> bool {
    let text = String::from_utf8_lossy(input).into_owned();
    let file = Path::new("rollout.yaml");
    let read = |path: &Path| {
        if path == file {
            Ok(text.clone())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "not in the fuzz input",
            ))
        }
    };
    canary_rollout::load::load_rollout_with(file, &read, &|_| Some("secret".to_owned())).is_ok()
}

/// Splits an input into its first line and the rest.
fn first_line(input: &[u8]) -> (String, &[u8]) {
    let end = input
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(input.len());
    let line = String::from_utf8_lossy(&input[..end]).into_owned();
    let rest = input.get(end + 1..).unwrap_or_default();
    (line, rest)
}

fn condition(input: &[u8]) -> bool {
    let (source, rest) = first_line(input);
    let Ok(condition) = Condition::parse(&source) else {
        return false;
    };
    let value = serde_json::from_slice::<serde_json::Value>(rest)
        .map(|json| MetricValue::from_json(&json))
        .unwrap_or(MetricValue::from(0.5));
    let _ = condition.evaluate(&value);
    let _ = condition.evaluate(&MetricValue::from(f64::NAN));
    true
}

fn envoy_stats(input: &[u8]) -> bool {
    let text = String::from_utf8_lossy(input);
    let Ok(snapshot) = Snapshot::parse_admin_json(&text) else {
        return false;
    };
    let empty = Snapshot::default();
    let mut merged = snapshot.clone();
    merged.merge(&snapshot);
    let keys = snapshot
        .latency
        .keys()
        .chain(snapshot.counters.keys().map(|(key, _)| key));
    for (route, version) in keys {
        for (earlier, later) in [(&empty, &snapshot), (&snapshot, &merged), (&merged, &empty)] {
            let window =
                VersionWindow::between(earlier, later, route, version, Duration::from_secs(5));
            let _ = (
                window.success_rate(),
                window.error_rate(),
                window.request_rate(),
            );
            let _ = (
                window.latency_ms(0.5),
                window.latency_ms(0.99),
                window.latency_ms(1.0),
            );
        }
    }
    true
}

fn prometheus(input: &[u8]) -> bool {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(input) else {
        return false;
    };
    let _ = canary_sources::prometheus::interpret(&body, 200);
    let _ = canary_sources::prometheus::interpret(&body, 503);
    true
}

fn web(input: &[u8]) -> bool {
    let (path, rest) = first_line(input);
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return false;
    };
    canary_sources::web::select(&document, &path).is_ok()
}
