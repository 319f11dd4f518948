//! The in-proxy guard (`make bench-guard`, and part of `make bench`):
//!
//! - **cut-off**: a canary that starts failing every request, at 10% of
//!   200 requests per second through an Envoy with two workers: canary
//!   requests served after the onset, over repeated onsets (each in a new
//!   generation of the split, so each starts from fresh evidence);
//! - **cost**: Envoy CPU per request with the guard on and off, the same
//!   module and load, alternated round by round; the ratio per round;
//! - **false trips**: simulated rollouts through the guard's own rule
//!   (`canary_config::guard_sim`), fixed seeds, at error rates up to the 5%
//!   baseline, and the bound `n·e^-h` checked where trips are countable.

use std::time::{Duration, Instant};

use canary_config::guard::{false_trip_bound_at, GuardRule, ASSUMED_MAX_CANARY_REQUESTS};
use canary_config::guard_sim::{false_trips, upper_95};
use canary_config::schema::DEFAULT_BASELINE_ERROR;
use canary_config::stats_names::Metric;
use canary_lab::backend::Backend;
use canary_lab::envoy::{Delivery, Envoy, EnvoySpec, PushOutcome};
use canary_lab::load::{LoadGenerator, LoadPlan};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::dataplane::{self, Configuration};
use crate::stats::Spread;

/// Requests per second through Envoy in the cut-off runs.
pub const RATE: f64 = 200.0;
/// The canary's share in the cut-off and cost runs, percent.
pub const CANARY_PERCENT: f64 = 10.0;
/// Envoy workers in the cut-off and cost runs.
pub const WORKERS: u32 = 2;
/// The target: canary requests past the onset of a hard failure.
pub const CUT_OFF_TARGET: u64 = 10;
/// Error rates of the false-trip simulation (both versions), percent.
pub const ERROR_PERCENTS: [f64; 4] = [0.5, 1.0, 2.0, 5.0];

/// Everything the guard's benchmark measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuardBench {
    /// When (UTC, from `date`).
    pub date: String,
    /// Hard failure → cut-off, in a real Envoy.
    pub cut_off: CutOff,
    /// CPU per request, guard on and off.
    pub cost: Cost,
    /// Simulated false trips.
    pub false_trips: FalseTrips,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Canary requests served after the onset of a hard failure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CutOff {
    /// Requests per second.
    pub rate: f64,
    /// Canary share, percent.
    pub canary_percent: f64,
    /// Envoy workers.
    pub workers: u32,
    /// Per onset: canary requests served after it (every one failed).
    pub runs: Vec<u64>,
    /// Per onset: from the onset to the `guard_tripped` gauge showing 1, ms
    /// (the gauge is handed to Envoy every 250 ms and polled every 20 ms).
    pub gauge_ms: Vec<u64>,
    /// Median and range of `runs`.
    pub spread: Spread,
    /// Onsets with at most [`CUT_OFF_TARGET`] canary requests after them.
    pub within_target: usize,
}

/// CPU per request with the guard on and off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Rounds.
    pub rounds: usize,
    /// Seconds per run.
    pub seconds_per_run: f64,
    /// wrk connections.
    pub connections: u32,
    /// Envoy workers.
    pub workers: u32,
    /// `guard-off` and `guard-on`.
    pub configurations: Vec<Configuration>,
    /// Per round: guard-on ÷ guard-off, CPU per request.
    pub ratios: Vec<f64>,
    /// Median and range of `ratios`.
    pub ratio: Spread,
}

/// Simulated rollouts at the shipped threshold, and checks of the bound.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FalseTrips {
    /// The rule's baseline, percent.
    pub baseline_percent: f64,
    /// The shipped threshold, nats.
    pub threshold_nats: f64,
    /// Canary requests per simulated rollout.
    pub canary_requests: u64,
    /// Rollouts per error rate.
    pub rollouts: u64,
    /// One row per error rate.
    pub rows: Vec<FalseTripRow>,
    /// Lower thresholds, where trips are frequent enough to count.
    pub bound_checks: Vec<BoundCheck>,
    /// Canary requests per proxy and generation the shipped bound assumes.
    pub assumed_canary_requests: u64,
    /// The bound at that many requests.
    pub assumed_bound: f64,
}

/// False trips at one error rate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FalseTripRow {
    /// Both versions' error rate, percent.
    pub error_percent: f64,
    /// Rollouts that tripped.
    pub trips: u64,
    /// One-sided 95% upper bound of the trip rate.
    pub upper_95: f64,
}

/// The measured trip rate against `n·e^-h` at a lower threshold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BoundCheck {
    /// Threshold, nats.
    pub threshold_nats: f64,
    /// Canary requests per rollout.
    pub canary_requests: u64,
    /// Rollouts.
    pub rollouts: u64,
    /// Rollouts that tripped (canary at the 5% baseline).
    pub trips: u64,
    /// One-sided 95% upper bound of the trip rate.
    pub upper_95: f64,
    /// `n·e^-h`.
    pub bound: f64,
}

/// How much to run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Hard-failure onsets.
    pub onsets: usize,
    /// Rounds of the cost comparison.
    pub rounds: usize,
    /// Seconds per cost run.
    pub seconds: u64,
    /// wrk connections.
    pub connections: u32,
    /// Simulated rollouts per error rate.
    pub rollouts: u64,
    /// Canary requests per simulated rollout.
    pub canary_requests: u64,
    /// Simulated rollouts per lower threshold (the bound checks).
    pub bound_rollouts: u64,
}

/// Runs all three.
pub async fn measure(plan: Plan) -> Result<GuardBench, String> {
    let started = Instant::now();
    eprintln!(
        "canary-bench: guard cut-off ({} onsets at {CANARY_PERCENT}% of {RATE} rps, {WORKERS} workers)",
        plan.onsets
    );
    let cut_off = cut_off(plan.onsets).await?;
    eprintln!(
        "canary-bench: guard cost ({} rounds × {} s, guard on and off)",
        plan.rounds, plan.seconds
    );
    let cost = cost(plan.rounds, plan.seconds, plan.connections).await?;
    eprintln!(
        "canary-bench: guard false trips ({} rollouts × {} canary requests per error rate)",
        plan.rollouts, plan.canary_requests
    );
    let false_trips = simulate(plan.rollouts, plan.canary_requests, plan.bound_rollouts);
    Ok(GuardBench {
        date: String::new(),
        cut_off,
        cost,
        false_trips,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Entry `app` with a guard and the controller's split at `weight` percent
/// in `generation`.
fn guarded(weight: f64, generation: u64) -> Value {
    json!({
        "routes": [{ "name": "app", "match": { "hosts": ["*"] }, "stable": "v1", "canary": "v2",
                     "canary_weight": 0, "default_version": "v1", "guard": {} }],
        "splits": { "app": { "stable": "v1", "canary": "v2", "canary_weight": weight, "generation": generation } }
    })
}

async fn gauge(envoy: &Envoy, metric: Metric) -> Option<u64> {
    envoy
        .counters()
        .await
        .ok()?
        .get(&metric.envoy_name("app", "v2"))
        .copied()
}

/// Polls until `metric` of the canary shows `value`; the time it took.
async fn wait_gauge(
    envoy: &Envoy,
    metric: Metric,
    value: u64,
    timeout: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        if gauge(envoy, metric).await == Some(value) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "{} did not reach {value} within {timeout:?}",
                metric.envoy_name("app", "v2")
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn cut_off(onsets: usize) -> Result<CutOff, String> {
    let stable = Backend::start("v1").await.map_err(|e| e.to_string())?;
    let canary = Backend::start("v2").await.map_err(|e| e.to_string())?;
    let mut spec = EnvoySpec::new(
        Delivery::Ecds,
        guarded(CANARY_PERCENT, 1).to_string(),
        stable.addr(),
        canary.addr(),
    );
    spec.concurrency = WORKERS;
    let mut envoy = Envoy::start(&spec).await.map_err(|e| e.to_string())?;
    let clients = envoy
        .clients_on_every_worker("app", WORKERS)
        .await
        .map_err(|e| e.to_string())?;
    let rate = RATE / clients.len() as f64;
    let load: Vec<LoadGenerator> = clients
        .into_iter()
        .map(|client| LoadGenerator::start(client, LoadPlan::at_rate(rate)))
        .collect();
    let mut runs = Vec::new();
    let mut gauge_ms = Vec::new();
    for onset in 0..onsets {
        let generation = onset as u64 + 1;
        canary.set_error_rate(0.0);
        if generation > 1 {
            let outcome = envoy
                .push_and_wait(
                    &guarded(CANARY_PERCENT, generation).to_string(),
                    Duration::from_secs(5),
                )
                .await
                .map_err(|e| e.to_string())?;
            if outcome != PushOutcome::Applied {
                return Err(format!("generation {generation} was not applied"));
            }
        }
        wait_gauge(
            &envoy,
            Metric::Generation,
            generation,
            Duration::from_secs(5),
        )
        .await?;
        wait_gauge(&envoy, Metric::GuardTripped, 0, Duration::from_secs(5)).await?;
        // A healthy canary first, so the onset finds evidence as it is in
        // a rollout (worn down to zero by successes).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let served_at_onset = canary.served();
        canary.set_error_rate(1.0);
        let took = wait_gauge(&envoy, Metric::GuardTripped, 1, Duration::from_secs(20)).await?;
        // Let the load run on: a request the guard let through after the
        // gauge showed the trip is counted too.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let past_onset = canary.served() - served_at_onset;
        eprintln!(
            "  onset {}/{onsets}: {past_onset} canary requests after it; gauge after {} ms",
            onset + 1,
            took.as_millis()
        );
        runs.push(past_onset);
        gauge_ms.push(took.as_millis() as u64);
    }
    for generator in load {
        generator.stop().await;
    }
    drop(envoy);
    let values: Vec<f64> = runs.iter().map(|&r| r as f64).collect();
    Ok(CutOff {
        rate: RATE,
        canary_percent: CANARY_PERCENT,
        workers: WORKERS,
        spread: Spread::of(&values),
        within_target: runs.iter().filter(|&&r| r <= CUT_OFF_TARGET).count(),
        runs,
        gauge_ms,
    })
}

async fn cost(rounds: usize, seconds: u64, connections: u32) -> Result<Cost, String> {
    let stable = Backend::start("v1").await.map_err(|e| e.to_string())?;
    let canary = Backend::start("v2").await.map_err(|e| e.to_string())?;
    let entry = |guard: Option<Value>| {
        let mut route = json!({ "name": "app", "match": { "hosts": ["*"] }, "stable": "v1", "canary": "v2",
                                "canary_weight": CANARY_PERCENT, "default_version": "v1" });
        if let Some(guard) = guard {
            route["guard"] = guard;
        }
        json!({ "routes": [route] }).to_string()
    };
    let variants: Vec<(String, EnvoySpec)> = [
        ("guard-off", entry(None)),
        ("guard-on", entry(Some(json!({})))),
    ]
    .into_iter()
    .map(|(name, config)| {
        let mut spec = EnvoySpec::new(Delivery::Inline, config, stable.addr(), canary.addr());
        spec.concurrency = WORKERS;
        (name.to_owned(), spec)
    })
    .collect();
    let configurations =
        dataplane::measure_variants(&variants, rounds, seconds, connections).await?;
    let (off, on) = match configurations.as_slice() {
        [off, on] => (off, on),
        _ => return Err("expected two configurations".into()),
    };
    let ratios: Vec<f64> = off
        .runs
        .iter()
        .zip(&on.runs)
        .map(|(off, on)| on.cpu_us_per_request / off.cpu_us_per_request)
        .collect();
    Ok(Cost {
        rounds,
        seconds_per_run: seconds as f64,
        connections,
        workers: WORKERS,
        ratio: Spread::of(&ratios),
        ratios,
        configurations,
    })
}

/// The false-trip simulation (pure: fixed seeds give the same numbers).
/// `bound_rollouts` rollouts per lower threshold.
pub fn simulate(rollouts: u64, canary_requests: u64, bound_rollouts: u64) -> FalseTrips {
    let rule = GuardRule::new(DEFAULT_BASELINE_ERROR);
    let rows = ERROR_PERCENTS
        .iter()
        .enumerate()
        .map(|(i, &percent)| {
            let trips = false_trips(
                &rule,
                percent / 100.0,
                canary_requests,
                rollouts,
                1_000 + i as u64,
            );
            eprintln!("  {percent}% errors: {trips} of {rollouts} rollouts tripped");
            FalseTripRow {
                error_percent: percent,
                trips,
                upper_95: upper_95(trips, rollouts),
            }
        })
        .collect();
    let bound_checks = [(6u32, 120u64), (8, 900), (10, 6_600), (12, 48_000)]
        .into_iter()
        .map(|(nats, n)| {
            let threshold = nats * 1_000;
            let rule = GuardRule::with_threshold(DEFAULT_BASELINE_ERROR, threshold);
            let trips = false_trips(&rule, 0.05, n, bound_rollouts, u64::from(nats));
            BoundCheck {
                threshold_nats: f64::from(nats),
                canary_requests: n,
                rollouts: bound_rollouts,
                trips,
                upper_95: upper_95(trips, bound_rollouts),
                bound: false_trip_bound_at(threshold, n),
            }
        })
        .collect();
    FalseTrips {
        baseline_percent: f64::from(DEFAULT_BASELINE_ERROR.basis_points()) / 100.0,
        threshold_nats: f64::from(rule.threshold()) / 1000.0,
        canary_requests,
        rollouts,
        rows,
        bound_checks,
        assumed_canary_requests: ASSUMED_MAX_CANARY_REQUESTS,
        assumed_bound: canary_config::guard::false_trip_bound(ASSUMED_MAX_CANARY_REQUESTS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_simulation_trips_nothing_at_the_shipped_threshold() {
        let result = simulate(20, 2_000, 200);
        assert_eq!(result.rows.len(), ERROR_PERCENTS.len());
        assert!(result.rows.iter().all(|row| row.trips == 0));
        assert!(result.assumed_bound <= 0.001);
        for check in &result.bound_checks {
            assert!(check.upper_95 <= check.bound, "{check:?}");
        }
    }
}
