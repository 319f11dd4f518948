//! The demo's scenarios and the rollout they run.
//!
//! The rollout is the seed's: 10% → 25% → 50% → 75% → 100%, each weight
//! followed by a wait and the seed's pod-health analysis (readiness ≥ 0.5,
//! CPU ≤ 0.9, count 3, failureLimit 2), plus the judge in the background:
//! canary against stable on the filter's own error counters and latency
//! histograms, with a bounded chance of a false rollback (`docs/judge.md`)
//! instead of fixed thresholds. The seed's
//! 15-second interval and 30-second waits are scaled down (interval 3 s,
//! waits 6 s at `--speed 1`) so a run takes about a minute; `--speed N`
//! divides every duration by N.

use std::net::SocketAddr;
use std::time::Duration;

/// Which story the demo tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The canary is healthy: it is promoted step by step.
    Success,
    /// The canary turns bad at 25% (every request fails): the in-proxy
    /// guard cuts it off within a few requests and the controller rolls it
    /// back.
    Failure,
    /// Both versions are the same and fail alike (1% 5xx): the judge's
    /// evidence builds, never shows the canary worse, and it is promoted.
    Aa,
}

impl Scenario {
    /// Parses `success`, `failure` or `aa`.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        match text {
            "success" => Ok(Scenario::Success),
            "failure" => Ok(Scenario::Failure),
            "aa" => Ok(Scenario::Aa),
            other => Err(format!(
                "unknown scenario {other:?}: use success, failure or aa"
            )),
        }
    }

    /// `success`, `failure` or `aa`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Success => "success",
            Scenario::Failure => "failure",
            Scenario::Aa => "aa",
        }
    }

    /// Whether the canary should end promoted.
    pub fn promotes(self) -> bool {
        self != Scenario::Failure
    }

    /// Share of requests both versions fail from the start.
    pub fn baseline_errors(self) -> f64 {
        match self {
            Scenario::Aa => 0.01,
            Scenario::Success | Scenario::Failure => 0.0,
        }
    }
}

/// Durations of one run, after `--speed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    /// Wait after each weight change.
    pub pause: Duration,
    /// Interval of the pod-health metrics.
    pub interval: Duration,
    /// Interval of the judge's looks.
    pub background_interval: Duration,
    /// When, after the canary reaches 25%, the failure scenario breaks it.
    pub fault_delay: Duration,
    /// Envoy's health check interval (readiness).
    pub health_check: Duration,
}

impl Timings {
    /// Timings at `speed` (1 = about a minute; larger is faster).
    pub fn at_speed(speed: f64) -> Timings {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        let scaled = |seconds: f64, floor_ms: u64| {
            Duration::from_millis(((seconds * 1000.0 / speed) as u64).max(floor_ms))
        };
        Timings {
            pause: scaled(6.0, 200),
            interval: scaled(3.0, 200),
            background_interval: scaled(1.0, 200),
            fault_delay: scaled(2.0, 100),
            health_check: scaled(1.0, 100),
        }
    }
}

/// Durations as the rollout format writes them (`1500ms`).
fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// The rollout file (with its templates) the demo runs.
pub fn rollout_yaml(timings: &Timings, canary_backend: SocketAddr) -> String {
    let pause = millis(timings.pause);
    let interval = millis(timings.interval);
    let background = millis(timings.background_interval);
    let mut steps = String::new();
    for weight in [10, 25, 50, 75] {
        steps.push_str(&format!(
            "  - setWeight: {weight}\n  - pause: {{duration: {pause}}}\n  - analysis: {{templates: [{{templateName: pod-health}}]}}\n"
        ));
    }
    steps.push_str("  - setWeight: 100\n");
    format!(
        r#"# The seed's rollout, as `canary demo` runs it.
apiVersion: canary.dev/v1alpha1
kind: CanaryRollout
metadata:
  name: demo
spec:
  routes: [app]
  stableVersion: v1
  canaryVersion: v2
  progressDeadline: 2m
  analysis:
    templates: [{{templateName: judge}}]
  steps:
{steps}---
# The seed's analysis: readiness at least 50% and CPU at most 90%, three
# measurements, failing only when all three fail.
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: pod-health
spec:
  metrics:
  - name: readiness
    interval: {interval}
    count: 3
    failureLimit: 2
    successCondition: result >= 0.5
    provider:
      envoy:
        quantity: ready-ratio
        cluster: canary
  - name: cpu
    interval: {interval}
    count: 3
    failureLimit: 2
    successCondition: result <= 0.9
    provider:
      web:
        url: http://{canary_backend}/_sim/state
        jsonPath: "{{$.cpu}}"
---
# The judge, all along the rollout: canary against stable on the
# filter's own counters and latency histograms, over every interval the
# split was in force. It rolls back once the canary is shown worse than
# stable by more than the tolerance (0.1 point of errors; 2 points or a
# fifth more of requests slower than each latency bound), with at most a
# 1% chance of ever doing so falsely over the whole rollout.
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: judge
spec:
  metrics:
  - name: judge
    interval: {background}
    provider:
      judge:
        route: app
        alpha: 0.01
"#
    )
}

/// The filter configuration Envoy starts with.
pub fn filter_config() -> serde_json::Value {
    serde_json::json!({
        "routes": [{
            "name": "app",
            "match": { "hosts": ["*"] },
            "stable": "v1",
            "canary": "v2",
            "canary_weight": 0,
            "default_version": "v1",
            "override": { "enabled": false },
            "guard": {}
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_divides_every_duration() {
        let normal = Timings::at_speed(1.0);
        let fast = Timings::at_speed(3.0);
        assert_eq!(normal.pause, Duration::from_secs(6));
        assert_eq!(fast.pause, Duration::from_secs(2));
        assert_eq!(fast.interval, Duration::from_secs(1));
        // Floors keep intervals meaningful.
        assert_eq!(
            Timings::at_speed(1000.0).background_interval,
            Duration::from_millis(200)
        );
        assert_eq!(Timings::at_speed(-1.0), normal);
    }

    #[test]
    fn the_rollout_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollout.yaml");
        let text = rollout_yaml(
            &Timings::at_speed(1.0),
            SocketAddr::from(([127, 0, 0, 1], 9)),
        );
        std::fs::write(&path, text).unwrap();
        let loaded = canary_rollout::validate_rollout(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.spec.steps.len(), 13);
        assert!(loaded.spec.background.is_some());
        let config: canary_config::FilterConfig = serde_json::from_value(filter_config()).unwrap();
        canary_config::compile(&config).unwrap();
    }
}
