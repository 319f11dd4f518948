//! What the filter costs per request. One Envoy per configuration, each
//! with one worker, the same two upstreams, and the same load generator
//! (`wrk`, closed loop, fixed connections); configurations are alternated
//! round by round so machine noise hits all of them alike:
//!
//! - `native`: no wasm, Envoy's own `weighted_clusters` 90/10;
//! - `floor`: a pass-through wasm module that exports the proxy-wasm
//!   callbacks and does nothing in them (the least any wasm filter costs);
//! - `canary`: this project's filter at 10% canary, stats on.
//!
//! Cost = Envoy's own CPU time (user + system, from /proc) ÷ requests served.

use canary_lab::backend::Backend;
use canary_lab::envoy::{Delivery, Envoy, EnvoySpec};
use canary_lab::stub_module::{self, OnRequest};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::procfs;
use crate::stats::Spread;

/// The three configurations, in the order they are run each round.
pub const CONFIGURATIONS: [&str; 3] = ["native", "floor", "canary"];

/// A fourth configuration, when the earlier build of the filter is given:
/// the same measurement before the per-request optimisation.
pub const BEFORE: &str = "canary-before";

/// One load run against one configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Envoy CPU microseconds per request.
    pub cpu_us_per_request: f64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Envoy's resident memory after the run, MiB.
    pub rss_mib: f64,
    /// Requests in the run.
    pub requests: u64,
    /// Answers that were not 2xx/3xx.
    pub non_2xx: u64,
}

/// Every run of one configuration, and their spreads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Configuration {
    /// `native`, `floor` or `canary`.
    pub name: String,
    /// The runs, in round order.
    pub runs: Vec<Run>,
    /// CPU µs per request.
    pub cpu_us_per_request: Spread,
    /// Requests per second.
    pub requests_per_second: Spread,
    /// p50 latency, ms.
    pub p50_ms: Spread,
    /// p99 latency, ms.
    pub p99_ms: Spread,
    /// RSS, MiB.
    pub rss_mib: Spread,
}

/// The data-plane result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataPlane {
    /// Rounds run.
    pub rounds: usize,
    /// Seconds per run.
    pub seconds_per_run: f64,
    /// wrk connections.
    pub connections: u32,
    /// Per configuration.
    pub configurations: Vec<Configuration>,
    /// canary ÷ native, CPU per request (medians).
    pub ours_over_native: f64,
    /// (canary − native) ÷ (floor − native), CPU per request (medians).
    pub extra_over_floor_extra: f64,
    /// canary-before ÷ native, when measured.
    #[serde(default)]
    pub before_over_native: Option<f64>,
    /// (canary-before − native) ÷ (floor − native), when measured.
    #[serde(default)]
    pub before_extra_over_floor_extra: Option<f64>,
}

/// Runs the comparison.
pub async fn measure(
    rounds: usize,
    seconds: u64,
    connections: u32,
    work: &Path,
    before: Option<&Path>,
) -> Result<DataPlane, String> {
    let stable = Backend::start("v1").await.map_err(|e| e.to_string())?;
    let canary = Backend::start("v2").await.map_err(|e| e.to_string())?;
    let passthrough = work.join("passthrough.wasm");
    let module =
        wat::parse_str(stub_module::wat(OnRequest::Continue)).map_err(|e| e.to_string())?;
    std::fs::write(&passthrough, module).map_err(|e| e.to_string())?;
    let config = serde_json::json!({
        "routes": [{ "name": "app", "match": { "hosts": ["*"] }, "stable": "v1", "canary": "v2", "canary_weight": 10, "default_version": "v1" }]
    })
    .to_string();
    // The earlier filter knows no `default_version`: it marks every request.
    let before_config = serde_json::json!({
        "routes": [{ "name": "app", "match": { "hosts": ["*"] }, "stable": "v1", "canary": "v2", "canary_weight": 10 }]
    })
    .to_string();
    let names = CONFIGURATIONS
        .iter()
        .map(|n| ((*n).to_owned(), None))
        .chain(before.map(|m| (BEFORE.to_owned(), Some(m.to_path_buf()))));
    let mut variants = Vec::new();
    for (name, module) in names {
        let filter_config = if name == BEFORE {
            &before_config
        } else {
            &config
        };
        let mut spec = EnvoySpec::new(
            Delivery::Inline,
            filter_config.clone(),
            stable.addr(),
            canary.addr(),
        );
        spec.concurrency = 1;
        match name.as_str() {
            "native" => {
                spec.without_filter = true;
                spec.native_canary_percent = Some(10);
            }
            "floor" => spec.module = Some(passthrough.clone()),
            _ => spec.module = module,
        }
        variants.push((name, spec));
    }
    let configurations = measure_variants(&variants, rounds, seconds, connections).await?;
    let cpu = |name: &str| {
        configurations
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.cpu_us_per_request.median)
            .unwrap_or(f64::NAN)
    };
    let (native, floor, ours) = (cpu("native"), cpu("floor"), cpu("canary"));
    let before = cpu(BEFORE);
    Ok(DataPlane {
        before_over_native: before.is_finite().then(|| before / native),
        before_extra_over_floor_extra: before
            .is_finite()
            .then(|| (before - native) / (floor - native)),
        rounds,
        seconds_per_run: seconds as f64,
        connections,
        ours_over_native: ours / native,
        extra_over_floor_extra: (ours - native) / (floor - native),
        configurations,
    })
}

/// Starts one Envoy per named spec and runs the same load against each in
/// turn, `rounds` times, alternating, so machine noise hits all alike.
pub async fn measure_variants(
    variants: &[(String, EnvoySpec)],
    rounds: usize,
    seconds: u64,
    connections: u32,
) -> Result<Vec<Configuration>, String> {
    let wrk =
        which("wrk").ok_or("wrk not found: run `make setup` (installs the Debian package wrk)")?;
    let mut envoys = Vec::new();
    for (name, spec) in variants {
        let envoy = Envoy::start(spec)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        envoys.push((name.clone(), envoy));
    }
    // Warm up every configuration (connections, VM, caches).
    for (_, envoy) in &envoys {
        run_wrk(&wrk, envoy, 1, connections)?;
    }
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); envoys.len()];
    for round in 0..rounds {
        for (i, (name, envoy)) in envoys.iter().enumerate() {
            let before = procfs::cpu_time(envoy.pid()).ok_or("cannot read Envoy's CPU time")?;
            let mut run = run_wrk(&wrk, envoy, seconds, connections)?;
            let after = procfs::cpu_time(envoy.pid()).ok_or("cannot read Envoy's CPU time")?;
            let cpu = after.saturating_sub(before);
            run.cpu_us_per_request = cpu.as_secs_f64() * 1e6 / run.requests.max(1) as f64;
            run.rss_mib = procfs::rss_kib(envoy.pid()).unwrap_or(0) as f64 / 1024.0;
            eprintln!(
                "  data plane round {}/{rounds} {name:<12} {:>8.1} rps  {:>6.1} µs CPU/request  p99 {:.2} ms",
                round + 1,
                run.requests_per_second,
                run.cpu_us_per_request,
                run.p99_ms
            );
            runs[i].push(run);
        }
    }
    Ok(envoys
        .iter()
        .zip(runs)
        .map(|((name, _), runs)| {
            let pick = |f: fn(&Run) -> f64| Spread::of(&runs.iter().map(f).collect::<Vec<_>>());
            Configuration {
                name: name.clone(),
                cpu_us_per_request: pick(|r| r.cpu_us_per_request),
                requests_per_second: pick(|r| r.requests_per_second),
                p50_ms: pick(|r| r.p50_ms),
                p99_ms: pick(|r| r.p99_ms),
                rss_mib: pick(|r| r.rss_mib),
                runs,
            }
        })
        .collect())
}

fn which(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn run_wrk(wrk: &Path, envoy: &Envoy, seconds: u64, connections: u32) -> Result<Run, String> {
    let output = Command::new(wrk)
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .arg(format!("http://{}/", envoy.listener()))
        .output()
        .map_err(|e| format!("running wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_wrk(&text).ok_or_else(|| format!("unexpected wrk output:\n{text}"))
}

/// Reads wrk's report.
pub fn parse_wrk(text: &str) -> Option<Run> {
    let mut run = Run::default();
    let mut saw_requests = false;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            run.requests_per_second = rest.trim().parse().ok()?;
        } else if let Some(rest) = line.strip_prefix("50%") {
            run.p50_ms = duration_ms(rest.trim())?;
        } else if let Some(rest) = line.strip_prefix("99%") {
            run.p99_ms = duration_ms(rest.trim())?;
        } else if line.contains(" requests in ") {
            run.requests = line.split_whitespace().next()?.parse().ok()?;
            saw_requests = true;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.non_2xx = rest.trim().parse().ok()?;
        }
    }
    (saw_requests && run.requests_per_second > 0.0).then_some(run)
}

fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 5s test @ http://127.0.0.1:1/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  300.00us   9.00ms   90.00%
    Req/Sec    14.5k     1.0k   15.0k    80.00%
  Latency Distribution
     50%  521.00us
     75%    1.00ms
     90%    1.50ms
     99%    2.25ms
  72500 requests in 5.00s, 9.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  14500.12
Transfer/sec:      1.80MB
";

    #[test]
    fn reads_wrk_reports() {
        let run = parse_wrk(WRK).unwrap();
        assert_eq!(run.requests, 72_500);
        assert_eq!(run.non_2xx, 3);
        assert_eq!(run.requests_per_second, 14_500.12);
        assert!((run.p50_ms - 0.521).abs() < 1e-9);
        assert_eq!(run.p99_ms, 2.25);
        assert_eq!(parse_wrk("garbage"), None);
    }
}
