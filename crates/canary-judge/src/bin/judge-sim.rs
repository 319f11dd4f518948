//! The judge's simulation sweep: false rollbacks of identical versions and
//! detection times of real regressions, over more runs and scenarios than
//! the tests, as Markdown tables. `make judge-sim` (or
//! `cargo run --release -p canary-judge --features simulation --bin
//! judge-sim -- --runs N`).

use canary_judge::simulation::{
    clopper_pearson, run_many, Behaviour, Gate, Latency, Scenario, Summary, Timing,
};
use canary_judge::{JudgeSettings, Tolerance};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = match args.iter().position(|a| a == "--runs") {
        Some(i) => match args.get(i + 1).and_then(|n| n.parse::<u64>().ok()) {
            Some(n) if n > 0 => n,
            _ => {
                eprintln!("usage: judge-sim [--runs N]   (N > 0, default 2000)");
                std::process::exit(2);
            }
        },
        None => 2_000,
    };
    let started = std::time::Instant::now();
    println!("# Judge simulation: {runs} rollouts per row, default settings\n");
    println!("Rollout: 10 → 25 → 50 → 75 %, 30 s per step; looks every 1 s; counters visible every 250 ms; histograms at each 5 s stats flush (Envoy's default); Poisson arrivals; lognormal latency p50 20 ms, p99 100 ms.\n");
    identical_versions(runs);
    regressions(runs, JudgeSettings::default(), "default settings");
    regressions(runs.min(500), wide(), "wide tolerances");
    gated(runs.min(500));
    println!("\n_{:.0} s_", started.elapsed().as_secs_f64());
}

fn percent((low, high): (f64, f64)) -> String {
    format!("{:.2}–{:.2}%", low * 100.0, high * 100.0)
}

fn secs(ms: Option<u64>) -> String {
    ms.map_or("—".into(), |ms| format!("{:.0} s", ms as f64 / 1000.0))
}

fn identical_versions(runs: u64) {
    println!("## No worse than tolerated: false rollbacks over the whole rollout\n");
    println!("Identical versions (A/A), and a canary failing exactly 0.1 point more than stable (the error tolerance: the hardest case the guarantee covers).\n");
    println!("| requests/s | stable errors | canary errors | rolled back | rate | 95% CI | first Successful p50 / p95 (errors) | (latency) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (rate, error_rate, extra) in [
        (200.0, 0.001, 0.0),
        (200.0, 0.01, 0.0),
        (200.0, 0.05, 0.0),
        (50.0, 0.01, 0.0),
        (1000.0, 0.01, 0.0),
        (200.0, 0.01, 0.001),
        (1000.0, 0.01, 0.001),
    ] {
        let both = Behaviour::failing(error_rate);
        let canary = Behaviour::failing(error_rate + extra);
        let mut scenario = Scenario::standard(both, canary);
        scenario.rate_per_second = rate;
        let outcomes = run_many(&scenario, 0..runs);
        let summary = Summary::of(&outcomes);
        let (observed, ci) = summary.rollback_rate();
        let first = |pick: fn(&canary_judge::simulation::Outcome) -> Option<u64>| {
            let mut times: Vec<u64> = outcomes.iter().filter_map(pick).collect();
            times.sort_unstable();
            let at = |q: f64| {
                let needed = (q * runs as f64).ceil() as usize;
                times.get(needed.max(1) - 1).copied()
            };
            format!("{} / {}", secs(at(0.5)), secs(at(0.95)))
        };
        println!(
            "| {rate:.0} | {:.1}% | {:.1}% | {} / {} | {:.2}% | {} | {} | {} |",
            error_rate * 100.0,
            (error_rate + extra) * 100.0,
            summary.rolled_back,
            summary.runs,
            observed * 100.0,
            percent(ci),
            first(|o| o.errors_success_ms),
            first(|o| o.latency_success_ms),
        );
    }
    println!("\n(— : not reached within the 120 s rollout by that share of runs.)\n");
}

struct Regression {
    name: &'static str,
    stable: Behaviour,
    canary: Behaviour,
    target_s: u64,
    timing: Timing,
}

fn regressions(runs: u64, settings: JudgeSettings, label: &str) {
    let slower = |ms: f64| Behaviour {
        error_rate: 0.01,
        latency: Latency::BASELINE.shifted(ms),
    };
    let tail = Behaviour {
        error_rate: 0.01,
        latency: Latency {
            p99_ms: 300.0,
            ..Latency::BASELINE
        },
    };
    let fast_flush = Timing {
        stats_flush_ms: 500,
        ..Timing::SHIPPED
    };
    let cases = [
        Regression {
            name: "100% 5xx (stable 1%)",
            stable: Behaviour::failing(0.01),
            canary: Behaviour::failing(1.0),
            target_s: 3,
            timing: Timing::SHIPPED,
        },
        Regression {
            name: "100% 5xx (stable 0%)",
            stable: Behaviour::failing(0.0),
            canary: Behaviour::failing(1.0),
            target_s: 3,
            timing: Timing::SHIPPED,
        },
        Regression {
            name: "errors 1% → 10%",
            stable: Behaviour::failing(0.01),
            canary: Behaviour::failing(0.10),
            target_s: 10,
            timing: Timing::SHIPPED,
        },
        Regression {
            name: "errors 1% → 3%",
            stable: Behaviour::failing(0.01),
            canary: Behaviour::failing(0.03),
            target_s: 75,
            timing: Timing::SHIPPED,
        },
        Regression {
            name: "errors 0.1% → 1%",
            stable: Behaviour::failing(0.001),
            canary: Behaviour::failing(0.01),
            target_s: 75,
            timing: Timing::SHIPPED,
        },
        Regression {
            name: "errors 5% → 10%",
            stable: Behaviour::failing(0.05),
            canary: Behaviour::failing(0.10),
            target_s: 75,
            timing: Timing::SHIPPED,
        },
        Regression {
            name: "errors 1% → 1.5%",
            stable: Behaviour::failing(0.01),
            canary: Behaviour::failing(0.015),
            target_s: 120,
            timing: Timing::SHIPPED,
        },
        Regression {
            name: "latency +50 ms",
            stable: Behaviour::failing(0.01),
            canary: slower(50.0),
            target_s: 30,
            timing: Timing::SHIPPED,
        },
        Regression {
            name: "latency +50 ms, 0.5 s flush",
            stable: Behaviour::failing(0.01),
            canary: slower(50.0),
            target_s: 30,
            timing: fast_flush,
        },
        Regression {
            name: "latency +10 ms",
            stable: Behaviour::failing(0.01),
            canary: slower(10.0),
            target_s: 30,
            timing: Timing::SHIPPED,
        },
        Regression {
            name: "latency p99 100 → 300 ms",
            stable: Behaviour::failing(0.01),
            canary: tail,
            target_s: 120,
            timing: Timing::SHIPPED,
        },
    ];
    println!(
        "## Regressions from the start, 200 requests/s, {label}: time to rollback ({runs} runs)\n"
    );
    println!("| canary | caught | within target | 95% CI | p50 | p95 | p99 |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for case in cases {
        let mut scenario = Scenario::standard(case.stable, case.canary);
        scenario.timing = case.timing;
        scenario.settings = settings;
        let summary = Summary::of(&run_many(&scenario, 0..runs));
        let within = summary.rolled_back_within(case.target_s * 1000);
        let caught = (within * runs as f64).round() as u64;
        println!(
            "| {} | {:.1}% | {:.1}% ≤ {} s | {} | {} | {} | {} |",
            case.name,
            summary.rolled_back as f64 * 100.0 / runs as f64,
            within * 100.0,
            case.target_s,
            percent(clopper_pearson(caught, runs, 0.95)),
            secs(summary.rollback_quantile(0.5)),
            secs(summary.rollback_quantile(0.95)),
            secs(summary.rollback_quantile(0.99)),
        );
    }
    println!();
}

/// Tolerances wide enough for Successful to come within minutes at
/// 200 requests/s: half a point or a quarter of stable's error rate; five
/// points or a quarter of stable's share at each latency bound.
fn wide() -> JudgeSettings {
    JudgeSettings {
        errors: Tolerance {
            absolute: 0.005,
            relative: 0.25,
        },
        latency: Tolerance {
            absolute: 0.05,
            relative: 0.25,
        },
        ..JudgeSettings::default()
    }
}

fn gated(runs: u64) {
    println!("## The judge as each step's gate (a step moves on only once it says Successful; 10 min per step at most)\n");
    println!("Wide tolerances: errors 0.5 points or 25% of stable's rate; latency 5 points or 25% of stable's share.\n");
    println!("| tolerances | stable | canary | promoted | stalled | rolled back | promoted p50 / p95 | rolled back p50 / p95 |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let defaults = JudgeSettings::default();
    for (settings, name, stable, canary) in [
        (defaults, "default", 0.01, 0.01),
        (wide(), "wide", 0.001, 0.001),
        (wide(), "wide", 0.01, 0.01),
        (wide(), "wide", 0.05, 0.05),
        (wide(), "wide", 0.01, 0.03),
        (wide(), "wide", 0.01, 0.10),
    ] {
        let mut scenario =
            Scenario::standard(Behaviour::failing(stable), Behaviour::failing(canary));
        scenario.gate = Gate::Successful;
        scenario.settings = settings;
        let outcomes = run_many(&scenario, 0..runs);
        let summary = Summary::of(&outcomes);
        let mut promoted: Vec<u64> = outcomes
            .iter()
            .filter(|o| o.ending == canary_judge::simulation::Ending::Promoted)
            .map(|o| o.at_ms)
            .collect();
        promoted.sort_unstable();
        let at = |q: f64| {
            promoted
                .get(((q * runs as f64).ceil() as usize).max(1) - 1)
                .copied()
        };
        println!(
            "| {name} | {:.1}% | {:.1}% | {} | {} | {} | {} / {} | {} / {} |",
            stable * 100.0,
            canary * 100.0,
            summary.promoted,
            summary.stalled,
            summary.rolled_back,
            secs(at(0.5)),
            secs(at(0.95)),
            secs(summary.rollback_quantile(0.5)),
            secs(summary.rollback_quantile(0.95)),
        );
    }
}
