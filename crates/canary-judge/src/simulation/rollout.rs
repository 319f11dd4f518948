//! One simulated rollout: traffic, the filter's counters (shown every
//! 250 ms), Envoy's histograms (shown at each stats flush), looks at a fixed
//! interval, and a driver that steps the weight, promotes, or rolls back on
//! the judge's verdict.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

use super::traffic::{Behaviour, Pending, Traffic, SHIPPED_BOUNDS_MICROS};
use crate::comparison::Verdict;
use crate::judge::Judge;
use crate::look::{Buckets, Increment, Look};
use crate::settings::JudgeSettings;

/// One step of the rollout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The canary's share of requests, percent.
    pub weight_percent: f64,
    /// How long the step lasts at least, ms.
    pub pause_ms: u64,
}

/// When a step whose pause is over moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// At once: the judge runs in the background and only stops the
    /// rollout (a background analysis with timed pauses).
    AfterPause,
    /// Once the judge says Successful (the judge is also the step's
    /// analysis); a failing or undecided canary stays at its weight.
    Successful,
}

/// When counts become visible and when the judge looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Interval between looks, ms.
    pub look_ms: u64,
    /// The filter hands its counters to Envoy this often, ms.
    pub counter_flush_ms: u64,
    /// Envoy merges histograms this often (`stats_flush_interval`), ms.
    pub stats_flush_ms: u64,
}

impl Timing {
    /// As shipped: a look a second, the filter's 250 ms counter flush, and
    /// Envoy's default 5 s stats flush (the shipped bootstraps in
    /// `manifests/envoy/` do not set `stats_flush_interval`).
    pub const SHIPPED: Timing = Timing {
        look_ms: 1_000,
        counter_flush_ms: 250,
        stats_flush_ms: 5_000,
    };
}

/// Everything one simulated rollout needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Requests per second through the proxy (Poisson arrivals).
    pub rate_per_second: f64,
    /// How stable behaves.
    pub stable: Behaviour,
    /// How the canary behaves, from the start of the rollout.
    pub canary: Behaviour,
    /// The weight schedule.
    pub steps: Vec<Step>,
    /// When steps move on.
    pub gate: Gate,
    /// A step that has not moved on after this long stalls the rollout, ms.
    pub step_deadline_ms: u64,
    /// Visibility and looks.
    pub timing: Timing,
    /// The judge's settings.
    pub settings: JudgeSettings,
    /// Histogram bounds, µs.
    pub bounds: Vec<f64>,
}

impl Scenario {
    /// 10 → 25 → 50 → 75 %, 30 s each (the seed's pause), background judge,
    /// 200 requests/s, shipped timing and bounds, default settings, both
    /// versions as given.
    pub fn standard(stable: Behaviour, canary: Behaviour) -> Scenario {
        Scenario {
            rate_per_second: 200.0,
            stable,
            canary,
            steps: [10.0, 25.0, 50.0, 75.0]
                .into_iter()
                .map(|weight_percent| Step {
                    weight_percent,
                    pause_ms: 30_000,
                })
                .collect(),
            gate: Gate::AfterPause,
            step_deadline_ms: 600_000,
            timing: Timing::SHIPPED,
            settings: JudgeSettings::default(),
            bounds: SHIPPED_BOUNDS_MICROS.to_vec(),
        }
    }
}

/// How a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The judge said Failed.
    RolledBack,
    /// Every step passed.
    Promoted,
    /// A step neither passed nor failed before its deadline.
    Stalled,
}

/// One rollout's outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// When, ms after the canary first got traffic.
    pub at_ms: u64,
    /// When the errors comparison said Failed, if it did.
    pub errors_failed: bool,
    /// When the latency comparison said Failed, if it did.
    pub latency_failed: bool,
    /// The first look at which the judge said Successful.
    pub first_success_ms: Option<u64>,
    /// The first look at which the errors comparison said Successful.
    pub errors_success_ms: Option<u64>,
    /// The first look at which the latency comparison said Successful.
    pub latency_success_ms: Option<u64>,
    /// Requests the canary served (visible to the judge).
    pub canary_requests: u64,
    /// Of which failed.
    pub canary_errors: u64,
}

/// Runs one rollout with the given seed.
pub fn run(scenario: &Scenario, seed: u64) -> Outcome {
    let mut rng = Pcg64::seed_from_u64(seed);
    let timing = scenario.timing;
    let traffic = Traffic::new(scenario.stable, scenario.canary, &scenario.bounds);
    let mut judge = match Judge::new(scenario.settings) {
        Ok(judge) => judge,
        Err(error) => panic!("scenario settings: {error}"),
    };
    // Flush timers run on their own phase relative to the looks.
    let mut next_counter = 1 + rng.random_range(0..timing.counter_flush_ms);
    let mut next_stats = 1 + rng.random_range(0..timing.stats_flush_ms);
    let mut next_look = timing.look_ms;

    let mut now = 0;
    let mut step = 0;
    let mut step_started = 0;
    let mut first_success_ms = None;
    let mut errors_success_ms = None;
    let mut latency_success_ms = None;
    let mut unflushed = [Pending::default(); 2];
    let mut untimed = [0u64; 2];
    let mut visible = [Pending::default(); 2];
    let mut histograms: [Option<Buckets>; 2] = [None, None];

    loop {
        let next = next_counter.min(next_stats).min(next_look);
        let weight = scenario
            .steps
            .get(step)
            .map_or(0.0, |s| s.weight_percent / 100.0);
        let seconds = (next - now) as f64 / 1000.0;
        let (stable, canary) =
            traffic.arrivals(&mut rng, scenario.rate_per_second, seconds, weight);
        for (side, arrived) in [stable, canary].into_iter().enumerate() {
            unflushed[side].requests += arrived.requests;
            unflushed[side].errors += arrived.errors;
            untimed[side] += arrived.requests;
        }
        now = next;
        if now == next_counter {
            for side in 0..2 {
                visible[side].requests += unflushed[side].requests;
                visible[side].errors += unflushed[side].errors;
                unflushed[side] = Pending::default();
            }
            next_counter += timing.counter_flush_ms;
        }
        if now == next_stats {
            for side in 0..2 {
                let drawn = traffic.histogram(&mut rng, untimed[side], side == 1);
                histograms[side] = Some(match histograms[side].take() {
                    Some(earlier) => add(earlier, &drawn),
                    None => drawn,
                });
                untimed[side] = 0;
            }
            next_stats += timing.stats_flush_ms;
        }
        if now != next_look {
            continue;
        }
        next_look += timing.look_ms;
        let increment = |side: usize, latency| Increment {
            requests: visible[side].requests,
            errors: visible[side].errors,
            latency,
        };
        let look = Look {
            stable: increment(0, histograms[0].take()),
            canary: increment(1, histograms[1].take()),
        };
        visible = [Pending::default(); 2];
        if let Err(error) = judge.observe(&look) {
            panic!("the simulator fed a refused look: {error}");
        }
        let verdicts = judge.verdicts();
        for (verdict, first) in [
            (verdicts.overall, &mut first_success_ms),
            (verdicts.errors, &mut errors_success_ms),
            (verdicts.latency, &mut latency_success_ms),
        ] {
            if verdict == Verdict::Successful && first.is_none() {
                *first = Some(now);
            }
        }
        let outcome = |ending| Outcome {
            ending,
            at_ms: now,
            errors_failed: verdicts.errors == Verdict::Failed,
            latency_failed: verdicts.latency == Verdict::Failed,
            first_success_ms,
            errors_success_ms,
            latency_success_ms,
            canary_requests: judge.canary().requests,
            canary_errors: judge.canary().errors,
        };
        if verdicts.overall == Verdict::Failed {
            return outcome(Ending::RolledBack);
        }
        let Some(current) = scenario.steps.get(step) else {
            return outcome(Ending::Promoted);
        };
        let elapsed = now - step_started;
        let passes = match scenario.gate {
            Gate::AfterPause => true,
            Gate::Successful => verdicts.overall == Verdict::Successful,
        };
        if elapsed >= current.pause_ms && passes {
            step += 1;
            step_started = now;
            if step == scenario.steps.len() {
                return outcome(Ending::Promoted);
            }
        } else if elapsed >= scenario.step_deadline_ms {
            return outcome(Ending::Stalled);
        }
    }
}

/// Runs one rollout per seed, on every core, in seed order.
pub fn run_many(scenario: &Scenario, seeds: std::ops::Range<u64>) -> Vec<Outcome> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let seeds: Vec<u64> = seeds.collect();
    let chunk = seeds.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = seeds
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&seed| run(scenario, seed))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| match handle.join() {
                Ok(outcomes) => outcomes,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

fn add(mut total: Buckets, more: &Buckets) -> Buckets {
    for (sum, &added) in total.cumulative.iter_mut().zip(&more.cumulative) {
        *sum += added;
    }
    total.count += more.count;
    total
}
