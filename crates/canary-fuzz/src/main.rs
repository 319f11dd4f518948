//! `canary-fuzz`: mutated inputs for every parser that reads outside
//! input, a check that none panics and memory stays bounded, and how
//! parsing time grows with input size. `make fuzz` runs it and writes the
//! figures into `RELIABILITY.md` (between its `fuzz` markers).

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canary_fuzz::mutate::Mutator;
use canary_fuzz::Target;
use clap::Parser;

/// Fuzz canary's parsers.
#[derive(Debug, Parser)]
#[command(name = "canary-fuzz")]
struct Args {
    /// Targets to run (default: all): filter-config, rollout, condition,
    /// envoy-stats, prometheus, web.
    #[arg(long = "target")]
    targets: Vec<String>,
    /// Mutated inputs per target.
    #[arg(long, default_value_t = 1_000_000)]
    inputs: u64,
    /// Seed of the mutations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Longest input, in bytes.
    #[arg(long, default_value_t = 65_536)]
    max_len: usize,
    /// Where inputs that panicked are written.
    #[arg(long, default_value = "target/fuzz-crashes")]
    crashes: PathBuf,
    /// An input running longer than this many seconds is a hang: it is
    /// written next to the crashes and the run stops.
    #[arg(long, default_value_t = 10)]
    hang_secs: u64,
    /// Run these files through the target(s) once each, printing what
    /// happened and how long it took, instead of fuzzing.
    #[arg(long)]
    replay: Vec<PathBuf>,
    /// Write the figures into this Markdown file, between its fuzz
    /// markers (the rest of the file is kept).
    #[arg(long)]
    report: Option<PathBuf>,
}

/// One target's run.
struct TargetRun {
    target: Target,
    inputs: u64,
    accepted: u64,
    panics: Vec<String>,
    elapsed: Duration,
    rss_before_kib: u64,
    rss_after_kib: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let targets: Vec<Target> = if args.targets.is_empty() {
        Target::ALL.to_vec()
    } else {
        let mut chosen = Vec::new();
        for name in &args.targets {
            match Target::from_name(name) {
                Some(target) => chosen.push(target),
                None => {
                    let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
                    eprintln!(
                        "canary-fuzz: no target {name:?}; targets: {}",
                        names.join(", ")
                    );
                    return ExitCode::from(2);
                }
            }
        }
        chosen
    };

    // Panics are what is looked for: keep their messages, print none.
    let last_panic: Arc<Mutex<Option<String>>> = Arc::default();
    let slot = Arc::clone(&last_panic);
    panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut slot) = slot.lock() {
            *slot = Some(format!("{info} at {location}"));
        }
    }));

    if !args.replay.is_empty() {
        return replay(&targets, &args.replay, &last_panic);
    }
    let mut runs = Vec::new();
    for target in targets {
        match run_target(target, &args, &last_panic) {
            Ok(run) => {
                eprintln!(
                    "canary-fuzz: {:<13} {:>9} inputs, {:>9} accepted, {} panics, {:.1} s, RSS {} -> {} KiB",
                    target.name(),
                    run.inputs,
                    run.accepted,
                    run.panics.len(),
                    run.elapsed.as_secs_f64(),
                    run.rss_before_kib,
                    run.rss_after_kib
                );
                for message in run.panics.iter().take(5) {
                    eprintln!("  panic: {message}");
                }
                runs.push(run);
            }
            Err(err) => {
                eprintln!("canary-fuzz: {}: {err}", target.name());
                return ExitCode::FAILURE;
            }
        }
    }
    let scaling = scaling();
    for row in &scaling {
        eprintln!(
            "canary-fuzz: {} with {} entries ({} bytes): {:.1} ms",
            row.what,
            row.entries,
            row.bytes,
            row.elapsed.as_secs_f64() * 1000.0
        );
    }
    let peak = proc_status_kib("VmHWM:").unwrap_or(0);
    if let Some(path) = &args.report {
        let section = report(&runs, &scaling, peak, &args);
        if let Err(err) = write_section(path, &section) {
            eprintln!("canary-fuzz: writing {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("canary-fuzz: wrote {}", path.display());
    }
    if runs.iter().any(|r| !r.panics.is_empty()) {
        eprintln!(
            "canary-fuzz: inputs that panicked are in {}",
            args.crashes.display()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn replay(targets: &[Target], files: &[PathBuf], last_panic: &Mutex<Option<String>>) -> ExitCode {
    let mut failed = false;
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(err) => {
                eprintln!("canary-fuzz: {}: {err}", file.display());
                return ExitCode::FAILURE;
            }
        };
        for target in targets {
            let started = Instant::now();
            let outcome = match panic::catch_unwind(|| target.run(&bytes)) {
                Ok(true) => "accepted".to_owned(),
                Ok(false) => "refused".to_owned(),
                Err(_) => {
                    failed = true;
                    let message = last_panic.lock().ok().and_then(|mut s| s.take());
                    format!("PANIC: {}", message.unwrap_or_default())
                }
            };
            eprintln!(
                "canary-fuzz: {} {}: {outcome} in {:.3} ms",
                target.name(),
                file.display(),
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn run_target(
    target: Target,
    args: &Args,
    last_panic: &Mutex<Option<String>>,
) -> Result<TargetRun, String> {
    let corpus: Vec<Vec<u8>> = target
        .corpus()
        .map_err(|err| format!("reading {}: {err}", target.corpus_dir().display()))?
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect();
    if corpus.is_empty() {
        return Err(format!(
            "the corpus {} is empty",
            target.corpus_dir().display()
        ));
    }
    // Warm up on the corpus itself, so the RSS compared is the steady one.
    for input in &corpus {
        let _ = panic::catch_unwind(|| target.run(input));
    }
    let rss_before_kib = proc_status_kib("VmRSS:").unwrap_or(0);
    let watchdog = Watchdog::start(target, args);
    let mut mutator = Mutator::new(args.seed ^ target.name().len() as u64, args.max_len);
    let mut accepted = 0;
    let mut panics = Vec::new();
    let started = Instant::now();
    for n in 0..args.inputs {
        let input = mutator.next(&corpus);
        watchdog.running(&input);
        match panic::catch_unwind(AssertUnwindSafe(|| target.run(&input))) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => {
                let message = last_panic
                    .lock()
                    .ok()
                    .and_then(|mut slot| slot.take())
                    .unwrap_or_else(|| "panic".to_owned());
                let file = args.crashes.join(format!("{}-{n}.bin", target.name()));
                let _ = std::fs::create_dir_all(&args.crashes);
                let _ = std::fs::write(&file, &input);
                panics.push(format!("{message} (input {})", file.display()));
            }
        }
    }
    watchdog.stop();
    Ok(TargetRun {
        target,
        inputs: args.inputs,
        accepted,
        panics,
        elapsed: started.elapsed(),
        rss_before_kib,
        rss_after_kib: proc_status_kib("VmRSS:").unwrap_or(0),
    })
}

/// Watches for an input that never finishes (a panic can be caught, a
/// hang cannot): it writes the input out and ends the process.
struct Watchdog {
    input: Arc<Mutex<Vec<u8>>>,
    /// Milliseconds since `epoch` when the current input started; 0 when
    /// stopped.
    started_ms: Arc<AtomicU64>,
    epoch: Instant,
}

impl Watchdog {
    fn start(target: Target, args: &Args) -> Watchdog {
        let watchdog = Watchdog {
            input: Arc::default(),
            started_ms: Arc::new(AtomicU64::new(u64::MAX)),
            epoch: Instant::now(),
        };
        let input = Arc::clone(&watchdog.input);
        let started_ms = Arc::clone(&watchdog.started_ms);
        let epoch = watchdog.epoch;
        let limit = args.hang_secs.saturating_mul(1000);
        let crashes = args.crashes.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let started = started_ms.load(Ordering::Relaxed);
            if started == 0 {
                return;
            }
            let now = epoch.elapsed().as_millis() as u64;
            if started != u64::MAX && now.saturating_sub(started) > limit {
                let file = crashes.join(format!("{}-hang.bin", target.name()));
                let _ = std::fs::create_dir_all(&crashes);
                if let Ok(bytes) = input.lock() {
                    let _ = std::fs::write(&file, &*bytes);
                }
                eprintln!(
                    "canary-fuzz: {}: an input ran longer than {} s; it is in {}",
                    target.name(),
                    limit / 1000,
                    file.display()
                );
                std::process::exit(3);
            }
        });
        watchdog
    }

    fn running(&self, input: &[u8]) {
        if let Ok(mut slot) = self.input.lock() {
            slot.clear();
            slot.extend_from_slice(input);
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        self.started_ms.store(now.max(1), Ordering::Relaxed);
    }

    fn stop(&self) {
        self.started_ms.store(0, Ordering::Relaxed);
    }
}

/// Parsing time against input size.
struct ScalingRow {
    what: &'static str,
    entries: usize,
    bytes: usize,
    elapsed: Duration,
}

/// Times the YAML reader on mappings of growing size, and the filter
/// configuration on growing route lists: time per entry should stay flat.
fn scaling() -> Vec<ScalingRow> {
    let mut rows = Vec::new();
    for entries in [5_000, 10_000, 20_000, 40_000] {
        let text: String = (0..entries).map(|i| format!("key{i}: {i}\n")).collect();
        let elapsed = best_of(3, || {
            let _ = canary_analysis::yaml::parse_documents(&text);
        });
        rows.push(ScalingRow {
            what: "YAML mapping",
            entries,
            bytes: text.len(),
            elapsed,
        });
    }
    for entries in [250, 500, 1_000, 2_000] {
        let routes: Vec<String> = (0..entries)
            .map(|i| {
                format!(
                    r#"{{"name":"r{i}","match":{{"hosts":["h{i}.example.com"]}},"stable":"v1","canary":"v2","canary_weight":10}}"#
                )
            })
            .collect();
        let json = format!(r#"{{"routes":[{}]}}"#, routes.join(","));
        let elapsed = best_of(3, || {
            let _ = canary_config::parse(json.as_bytes());
        });
        rows.push(ScalingRow {
            what: "filter configuration routes",
            entries,
            bytes: json.len(),
            elapsed,
        });
    }
    rows
}

fn best_of(n: usize, mut f: impl FnMut()) -> Duration {
    (0..n)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

const BEGIN: &str = "<!-- fuzz: written by `make fuzz` -->";
const END: &str = "<!-- /fuzz -->";

fn report(runs: &[TargetRun], scaling: &[ScalingRow], peak_kib: u64, args: &Args) -> String {
    let mut out = String::new();
    out.push_str("## Fuzzing\n\n");
    out.push_str(&format!(
        "`make fuzz` (`canary-fuzz --inputs {} --seed {} --max-len {}`, release build with \
         overflow checks and debug assertions): each target is fed its committed corpus \
         (`crates/canary-fuzz/corpus/<target>/`) and {} mutated inputs (bit flips, \
         insertions, deletions, repeats, splices, format tokens). A panic fails the run and \
         its input is kept; CI replays the corpus (`cargo test -p canary-fuzz`).\n\n",
        args.inputs, args.seed, args.max_len, args.inputs
    ));
    out.push_str(
        "| target | what it reads | inputs | accepted | panics | time | RSS before → after |\n",
    );
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for run in runs {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {:.0} s | {} → {} KiB |\n",
            run.target.name(),
            describe(run.target),
            run.inputs,
            run.accepted,
            run.panics.len(),
            run.elapsed.as_secs_f64(),
            run.rss_before_kib,
            run.rss_after_kib
        ));
    }
    out.push_str(&format!(
        "\nPeak resident memory of the whole run: {} KiB.\n\n",
        peak_kib
    ));
    out.push_str("### Parsing time against size\n\n");
    out.push_str(
        "Best of three, release build. Time per entry staying flat as the input doubles is \
         what linear means; YAML texts are refused past 1 MiB and 100 000 values, so a \
         hostile file costs at most the last rows.\n\n",
    );
    out.push_str("| input | entries | bytes | time | µs per entry |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: |\n");
    for row in scaling {
        let micros = row.elapsed.as_secs_f64() * 1e6;
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} ms | {:.2} |\n",
            row.what,
            row.entries,
            row.bytes,
            micros / 1000.0,
            micros / row.entries as f64
        ));
    }
    out
}

fn describe(target: Target) -> &'static str {
    match target {
        Target::FilterConfig => "filter configuration (JSON), validated and split-applied",
        Target::Rollout => "rollout file with templates (YAML)",
        Target::Condition => "condition, evaluated on a JSON measurement",
        Target::EnvoyStats => "Envoy `/stats?format=json`, windows and quantiles",
        Target::Prometheus => "Prometheus query answer",
        Target::Web => "web metric answer and JSONPath",
    }
}

/// Replaces the fuzz section of `path` (or appends one), keeping the rest.
fn write_section(path: &Path, section: &str) -> std::io::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Reliability\n\nWhat canary was put through beyond its tests, and what it did.\n\n"
            .to_owned()
    });
    let block = format!("{BEGIN}\n{section}{END}\n");
    let text = match (existing.find(BEGIN), existing.find(END)) {
        (Some(start), Some(end)) if end > start => format!(
            "{}{block}{}",
            &existing[..start],
            existing[end + END.len()..].trim_start_matches('\n')
        ),
        _ => format!("{}\n{block}", existing.trim_end()),
    };
    std::fs::write(path, text)
}
