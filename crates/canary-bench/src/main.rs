//! `canary-bench` (run by `make bench`): measures, in one run, what the
//! filter costs per request, how fast a bad canary is stopped, how fast a
//! push takes effect, and what the controller uses; writes BENCHMARKS.md.

mod dataplane;
mod decisions;
mod detection;
mod guard;
mod procfs;
mod push_latency;
mod report;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use crate::detection::{Fault, Timing};
use crate::report::Results;

/// Benchmarks of the canary filter and controller.
#[derive(Debug, Parser)]
#[command(name = "canary-bench")]
struct Args {
    /// Rounds of the data-plane comparison.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds per data-plane run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Pushes for the push-latency measurement.
    #[arg(long, default_value_t = 50)]
    pushes: usize,
    /// Skip the runs with the seed's (slow) analysis timing.
    #[arg(long)]
    skip_seed_timing: bool,
    /// Only the data-plane comparison.
    #[arg(long)]
    data_plane_only: bool,
    /// The filter as built before the per-request optimisation, measured
    /// side by side as `canary-before` (skipped when the file is missing).
    #[arg(long, default_value = "bench/canary-filter-before.wasm")]
    before_module: PathBuf,
    /// Only rewrite the markdown from an earlier run's raw results (no
    /// measuring).
    #[arg(long)]
    render_from: Option<PathBuf>,
    /// Only the in-proxy guard's measurements (`make bench-guard`): the
    /// other sections of the raw results are kept as they are.
    #[arg(long)]
    guard_only: bool,
    /// Skip the in-proxy guard's measurements.
    #[arg(long)]
    skip_guard: bool,
    /// Hard-failure onsets for the guard's cut-off.
    #[arg(long, default_value_t = 20)]
    guard_onsets: usize,
    /// Rounds of the guard's cost comparison.
    #[arg(long, default_value_t = 7)]
    guard_rounds: usize,
    /// Simulated rollouts per error rate for the guard's false trips.
    #[arg(long, default_value_t = 10_000)]
    guard_rollouts: u64,
    /// Canary requests per simulated rollout.
    #[arg(long, default_value_t = 20_000)]
    guard_canary_requests: u64,
    /// Simulated rollouts per lower threshold (checks of the bound).
    #[arg(long, default_value_t = 5_000)]
    guard_bound_rollouts: u64,
    /// Only the judge beside fixed thresholds (section 2.1), added to the
    /// raw results of the last full run (`--json`), and the markdown
    /// rewritten.
    #[arg(long)]
    decisions_only: bool,
    /// A/A runs per analysis.
    #[arg(long, default_value_t = 10)]
    aa_runs: usize,
    /// Runs of each regression per analysis.
    #[arg(long, default_value_t = 3)]
    regression_runs: usize,
    /// How the decision runs were taken (machine load, build), printed
    /// with them.
    #[arg(long, default_value = "")]
    decisions_note: String,
    /// Where the markdown goes.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Where the raw results go.
    #[arg(long, default_value = "bench/results.json")]
    json: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("canary-bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("canary-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    if let Some(path) = &args.render_from {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let results: Results =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::write(&args.out, report::markdown(&results))
            .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
        eprintln!(
            "canary-bench: wrote {} from {}",
            args.out.display(),
            path.display()
        );
        return Ok(());
    }
    if args.decisions_only {
        return decisions_only(args).await;
    }
    let started = Instant::now();
    let guard_plan = guard::Plan {
        onsets: args.guard_onsets,
        rounds: args.guard_rounds,
        seconds: args.seconds,
        connections: args.connections,
        rollouts: args.guard_rollouts,
        canary_requests: args.guard_canary_requests,
        bound_rollouts: args.guard_bound_rollouts,
    };
    if args.guard_only {
        // The rest of the raw results stays as the last full run left it.
        let mut results: Results = std::fs::read_to_string(&args.json)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let mut bench = guard::measure(guard_plan).await?;
        bench.date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
        results.guard = Some(bench);
        return write_results(args, &results);
    }
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let module = canary_lab::paths::filter_module()?;
    let mut results = Results {
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        machine: machine(),
        module_bytes: std::fs::metadata(&module).map(|m| m.len()).unwrap_or(0),
        ..Results::default()
    };
    eprintln!(
        "canary-bench: data-plane cost ({} rounds × {} s per configuration)",
        args.rounds, args.seconds
    );
    // Envoy runs in its own folder: give it an absolute path.
    let before = args.before_module.is_file().then(|| {
        args.before_module
            .canonicalize()
            .unwrap_or_else(|_| args.before_module.clone())
    });
    let before = before.as_deref();
    results.data_plane = dataplane::measure(
        args.rounds,
        args.seconds,
        args.connections,
        work.path(),
        before,
    )
    .await?;
    if !args.data_plane_only {
        let mut usage = Vec::new();
        let mut timings = vec![Timing::Fast];
        if !args.skip_seed_timing {
            timings.push(Timing::Seed);
        }
        for timing in timings {
            for fault in Fault::ALL {
                eprintln!(
                    "canary-bench: {} with {}",
                    fault.describe(),
                    timing.describe()
                );
                let detection = detection::detect(fault, timing, &mut usage).await?;
                eprintln!("  → {detection:?}");
                results.detections.push(detection);
            }
        }
        results.controller = detection::footprint(&usage);
        results.decisions = decisions::measure(args.aa_runs, args.regression_runs).await?;
        eprintln!("canary-bench: config push latency ({} pushes)", args.pushes);
        results.push_latency = push_latency::measure(args.pushes).await?;
    }
    if !args.skip_guard && !args.data_plane_only {
        let mut bench = guard::measure(guard_plan).await?;
        bench.date = results.date.clone();
        results.guard = Some(bench);
    }
    results.seconds = started.elapsed().as_secs_f64();
    write_results(args, &results)
}

fn write_results(args: &Args, results: &Results) -> Result<(), String> {
    if let Some(parent) = args.json.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(
        &args.json,
        serde_json::to_string_pretty(results).unwrap_or_default(),
    )
    .map_err(|e| format!("writing {}: {e}", args.json.display()))?;
    std::fs::write(&args.out, report::markdown(results))
        .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    eprintln!(
        "canary-bench: wrote {} and {}",
        args.out.display(),
        args.json.display()
    );
    Ok(())
}

/// The decision runs alone, into the last full run's results.
async fn decisions_only(args: &Args) -> Result<(), String> {
    let mut results: Results = match std::fs::read_to_string(&args.json) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", args.json.display()))?
        }
        Err(_) => Results::default(),
    };
    results.decisions = decisions::measure(args.aa_runs, args.regression_runs).await?;
    results.decisions_date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    results.decisions_note.clone_from(&args.decisions_note);
    std::fs::write(
        &args.json,
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    )
    .map_err(|e| format!("writing {}: {e}", args.json.display()))?;
    std::fs::write(&args.out, report::markdown(&results))
        .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    eprintln!(
        "canary-bench: wrote {} and {}",
        args.out.display(),
        args.json.display()
    );
    Ok(())
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|kb| kb.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = command_output("uname", &["-r"]);
    let envoy = canary_lab::paths::envoy_binary()
        .ok()
        .map(|envoy| command_output(&envoy.to_string_lossy(), &["--version"]))
        .and_then(|v| {
            let after = v.split_once("version:")?.1;
            after.trim().split('/').nth(1).map(|v| format!("Envoy {v}"))
        })
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {memory}, Linux {kernel}, {envoy}")
}
