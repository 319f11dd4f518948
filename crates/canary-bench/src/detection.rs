//! How fast a bad canary is stopped. A steady load through Envoy, the
//! canary at 10%, `canary run` as its own process pushing over ECDS; at a
//! known instant the canary goes bad, and the time until the proxy stops
//! sending it traffic is measured at the clients: from the fault's onset
//! to the last request the canary served. The controller's memory and CPU
//! are sampled meanwhile.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use canary_lab::backend::Backend;
use canary_lab::envoy::{Delivery, Envoy, EnvoySpec};
use canary_lab::load::{Client, LoadGenerator, LoadPlan};
use serde::{Deserialize, Serialize};

use crate::procfs;

/// Requests per second during detection runs.
pub const RATE: f64 = 200.0;

/// The faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// The canary answers every request with 503.
    Hard,
    /// The canary fails 5% of requests while stable fails 0.5%.
    Soft,
    /// The canary answers 50 ms slower.
    Latency,
}

impl Fault {
    /// All of them.
    pub const ALL: [Fault; 3] = [Fault::Hard, Fault::Soft, Fault::Latency];

    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            Fault::Hard => "hard failure: canary 100% 5xx",
            Fault::Soft => "soft failure: canary 5% 5xx, stable 0.5%",
            Fault::Latency => "latency regression: canary +50 ms",
        }
    }
}

/// Analysis timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timing {
    /// The seed's: a step analysis, interval 15 s, count 3, failureLimit 2.
    Seed,
    /// The project's recommendation: background analysis from the first
    /// step, interval 1 s, window 5 s, failureLimit 2, minSamples 20.
    Fast,
}

impl Timing {
    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            Timing::Seed => "seed timing (step analysis, interval 15s, count 3, failureLimit 2)",
            Timing::Fast => {
                "recommended (background, interval 1s, window 5s, failureLimit 2, minSamples 20)"
            }
        }
    }
}

/// One detection run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The fault.
    pub fault: Fault,
    /// The timing.
    pub timing: Timing,
    /// Whether the controller rolled back.
    pub rolled_back: bool,
    /// Fault onset to rollback in effect at the proxy (ms).
    pub time_to_rollback_ms: Option<u64>,
    /// User requests that failed before the rollback was in effect.
    pub failed_before: u64,
    /// Requests the bad canary served after the fault.
    pub canary_served_after_fault: u64,
    /// Requests that failed after the rollback was in effect.
    pub failed_after: u64,
}

/// The controller's footprint over all runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Footprint {
    /// Largest resident memory seen, MiB.
    pub max_rss_mib: f64,
    /// CPU time ÷ wall time while running, percent of one core.
    pub cpu_percent: f64,
    /// Wall time observed, seconds.
    pub seconds: f64,
}

pub(crate) fn rollout(timing: Timing) -> String {
    let metrics = |interval: &str, window: &str, extra: &str| {
        format!(
            r#"  - name: error-rate-vs-stable
    interval: {interval}
{extra}    failureLimit: 2
    successCondition: result.canary - result.stable <= 0.02
    provider:
      envoy: {{route: app, quantity: error-rate, version: both, window: {window}}}
  - name: p99-vs-stable
    interval: {interval}
{extra}    failureLimit: 2
    successCondition: result.canary - result.stable <= 25
    provider:
      envoy: {{route: app, quantity: latency, quantile: 0.99, version: both, window: {window}}}
"#
        )
    };
    let header = "apiVersion: canary.dev/v1alpha1\nkind: CanaryRollout\nmetadata:\n  name: bench\nspec:\n  routes: [app]\n  stableVersion: v1\n  canaryVersion: v2\n  progressDeadline: 5m\n";
    match timing {
        Timing::Seed => format!(
            "{header}  steps:\n  - setWeight: 10\n  - analysis: {{templates: [{{templateName: guard}}]}}\n  - setWeight: 100\n---\napiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: guard\nspec:\n  metrics:\n{}",
            metrics("15s", "15s", "    count: 3\n")
        ),
        Timing::Fast => format!(
            "{header}  analysis:\n    templates: [{{templateName: guard}}]\n  steps:\n  - setWeight: 10\n  - pause: {{}}\n---\napiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: guard\nspec:\n  metrics:\n{}",
            metrics("1s", "5s", "    minSamples: 20\n")
        ),
    }
}

/// A run's world: two upstreams, Envoy with the filter, steady load at
/// [`RATE`], and `canary run` as its own process driving a rollout.
pub(crate) struct Harness {
    /// Stable upstream, `v1`.
    pub stable: Backend,
    /// Canary upstream, `v2`.
    pub canary: Backend,
    /// The load through Envoy.
    pub load: LoadGenerator,
    /// The controller.
    pub controller: ControllerProcess,
    _envoy: Envoy,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Starts everything with `rollout` and waits until the canary has
    /// traffic; `prepare` sets the upstreams up before any load.
    pub(crate) async fn start(
        rollout: &str,
        prepare: impl FnOnce(&Backend, &Backend),
    ) -> Result<Harness, String> {
        let canary_bin = canary_lab::paths::canary_binary()?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let stable = Backend::start("v1").await.map_err(|e| e.to_string())?;
        let canary = Backend::start("v2").await.map_err(|e| e.to_string())?;
        prepare(&stable, &canary);
        let base = serde_json::json!({
            "routes": [{ "name": "app", "match": { "hosts": ["*"] }, "stable": "v1", "canary": "v2", "canary_weight": 0 }]
        });
        let mut spec = EnvoySpec::new(
            Delivery::Ecds,
            base.to_string(),
            stable.addr(),
            canary.addr(),
        );
        spec.concurrency = 1;
        spec.stats_flush_interval = Some(Duration::from_millis(500));
        let envoy = Envoy::start(&spec).await.map_err(|e| e.to_string())?;
        let rollout_path = dir.path().join("rollout.yaml");
        std::fs::write(&rollout_path, rollout).map_err(|e| e.to_string())?;
        let client = Client::new(envoy.listener(), "app").with_timeout(Duration::from_secs(5));
        let load = LoadGenerator::start(client, LoadPlan::at_rate(RATE));
        let controller = ControllerProcess::start(
            &canary_bin,
            &[
                "run".into(),
                "--rollout".into(),
                rollout_path.display().to_string(),
                "--state".into(),
                dir.path().join("state.json").display().to_string(),
                "--token-file".into(),
                dir.path().join("api-token").display().to_string(),
                "--push".into(),
                format!(
                    "ecds-file:{}",
                    envoy.ecds_path().ok_or("no ECDS")?.display()
                ),
                "--envoy-admin".into(),
                format!("http://{}", envoy.admin()),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--scrape-interval".into(),
                "500ms".into(),
            ],
        )?;
        let started = Instant::now();
        while !load
            .snapshot()
            .records
            .iter()
            .any(|r| r.served_by() == Some("v2"))
        {
            if started.elapsed() > Duration::from_secs(30) {
                return Err("the canary never got traffic".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Harness {
            stable,
            canary,
            load,
            controller,
            _envoy: envoy,
            _dir: dir,
        })
    }

    /// Waits until the controller exits or `limit` passes; its exit code.
    pub(crate) async fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            self.controller.sample();
            if let Some(code) = self.controller.exited() {
                return Some(code);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `canary run`'s exit code after a rollback.
pub(crate) const EXIT_ROLLED_BACK: i32 = 3;

/// Runs one fault with one timing.
pub async fn detect(
    fault: Fault,
    timing: Timing,
    footprint: &mut Vec<(Duration, Duration, u64)>,
) -> Result<Detection, String> {
    let mut harness = Harness::start(&rollout(timing), |_, _| {}).await?;
    // Let the analysis see a healthy canary for a moment (fast timing)
    // before the fault.
    if timing == Timing::Fast {
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    let (stable, canary, load) = (&harness.stable, &harness.canary, &harness.load);
    stable.set_error_rate(if fault == Fault::Soft { 0.005 } else { 0.0 });
    match fault {
        Fault::Hard => canary.set_error_rate(1.0),
        Fault::Soft => canary.set_error_rate(0.05),
        Fault::Latency => canary.set_latency(Duration::from_millis(50)),
    }
    let fault_at = load.started().elapsed();
    let exit = harness.wait(Duration::from_secs(120)).await;
    // Let the load run on the final split.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let summary = harness.load.stop().await;
    footprint.push(harness.controller.usage());
    let rolled_back = exit == Some(EXIT_ROLLED_BACK);
    let last_canary = summary
        .records
        .iter()
        .filter(|r| r.served_by() == Some("v2"))
        .map(|r| r.sent_at)
        .max();
    let in_effect = last_canary.filter(|at| *at >= fault_at);
    let cut = in_effect.unwrap_or(Duration::MAX);
    Ok(Detection {
        fault,
        timing,
        rolled_back,
        time_to_rollback_ms: in_effect
            .filter(|_| rolled_back)
            .map(|at| (at - fault_at).as_millis() as u64),
        failed_before: summary
            .records
            .iter()
            .filter(|r| r.sent_at >= fault_at && r.sent_at <= cut && r.failed())
            .count() as u64,
        canary_served_after_fault: summary
            .records
            .iter()
            .filter(|r| r.sent_at >= fault_at && r.served_by() == Some("v2"))
            .count() as u64,
        failed_after: summary
            .records
            .iter()
            .filter(|r| r.sent_at > cut && r.failed())
            .count() as u64,
    })
}

/// Combines per-run usage samples into one footprint.
pub fn footprint(samples: &[(Duration, Duration, u64)]) -> Footprint {
    let wall: f64 = samples.iter().map(|s| s.0.as_secs_f64()).sum();
    let cpu: f64 = samples.iter().map(|s| s.1.as_secs_f64()).sum();
    let rss = samples.iter().map(|s| s.2).max().unwrap_or(0);
    Footprint {
        max_rss_mib: rss as f64 / 1024.0,
        cpu_percent: if wall > 0.0 { cpu / wall * 100.0 } else { 0.0 },
        seconds: wall,
    }
}

pub(crate) struct ControllerProcess {
    child: Child,
    started: Instant,
    max_rss_kib: u64,
    last_cpu: Duration,
}

impl ControllerProcess {
    fn start(binary: &std::path::Path, args: &[String]) -> Result<ControllerProcess, String> {
        let child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        Ok(ControllerProcess {
            child,
            started: Instant::now(),
            max_rss_kib: 0,
            last_cpu: Duration::ZERO,
        })
    }

    fn sample(&mut self) {
        let pid = self.child.id();
        if let Some(rss) = procfs::rss_kib(pid) {
            self.max_rss_kib = self.max_rss_kib.max(rss);
        }
        if let Some(cpu) = procfs::cpu_time(pid) {
            self.last_cpu = cpu;
        }
    }

    fn exited(&mut self) -> Option<i32> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.code().unwrap_or(-1)),
            _ => None,
        }
    }

    fn usage(&self) -> (Duration, Duration, u64) {
        (self.started.elapsed(), self.last_cpu, self.max_rss_kib)
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
