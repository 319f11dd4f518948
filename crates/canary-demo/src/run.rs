//! The whole demo run: start, watch, break the canary (failure scenario),
//! finish, summarise; or stop everything at once on Ctrl-C.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use canary_lab::load::Summary as LoadSummary;
use canary_standalone::RunOutcome as Outcome;

use crate::scenario::{Scenario, Timings};
use crate::stage::{Stage, StageError};
use crate::summary::{FinalTraffic, GuardTrip, Summary, PROMOTED_VERDICT, ROLLED_BACK_VERDICT};
use crate::view;

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Which scenario.
    pub scenario: Scenario,
    /// Divides every wait (1 = about a minute).
    pub speed: f64,
    /// Print only the summary, as JSON.
    pub json: bool,
    /// Live view or plain lines; `None` picks the live view on a terminal.
    pub live: Option<bool>,
}

/// Why the demo ended early.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("interrupted; everything the demo started has been stopped")]
    Interrupted,
    #[error("the controller failed: {0}")]
    Controller(String),
}

/// How often the view is redrawn.
const FRAME: Duration = Duration::from_millis(250);

/// Runs the demo until it ends or `interrupt` resolves.
pub async fn run(
    options: DemoOptions,
    interrupt: impl Future<Output = ()>,
) -> Result<Summary, DemoError> {
    tokio::pin!(interrupt);
    let live = options
        .live
        .unwrap_or_else(|| std::io::stdout().is_terminal())
        && !options.json;
    let plain = !live && !options.json;
    let timings = Timings::at_speed(options.speed);
    let started = Instant::now();
    let title = format!("{} scenario", options.scenario.name());
    if plain {
        say(&format!(
            "canary demo: {title}: starting Envoy with the filter, upstreams v1 (stable) and v2 (canary), \
             load at {} rps, and the controller",
            crate::stage::RATE
        ));
    }
    let mut stage = tokio::select! {
        stage = Stage::start(&timings) => stage?,
        _ = &mut interrupt => return Err(DemoError::Interrupted),
    };
    let baseline = options.scenario.baseline_errors();
    stage.stable.set_error_rate(baseline);
    stage.canary.set_error_rate(baseline);
    let _cursor = live.then(HiddenCursor::new);
    let mut judged: Option<String> = None;
    let mut printed = 0;
    let mut notes = Vec::new();
    let mut reached_25: Option<Instant> = None;
    let mut fault_at: Option<Duration> = None;
    let mut guard = view::GuardView::default();
    let load_started = stage.load.as_ref().map(|l| l.started()).unwrap_or(started);
    let mut ticks = tokio::time::interval(FRAME);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut interrupt => {
                stage.shutdown().await;
                return Err(DemoError::Interrupted);
            }
        }
        let status = stage.board.report(None).unwrap_or_default();
        if let Some(latest) = judge_evidence(&status) {
            judged = Some(latest);
        }
        if options.scenario == Scenario::Failure && fault_at.is_none() {
            if reached_25.is_none() && status.traffic.canary_weight >= 25.0 {
                reached_25 = Some(Instant::now());
            }
            if reached_25.is_some_and(|at| at.elapsed() >= timings.fault_delay) {
                stage.canary.set_error_rate(1.0);
                stage.canary.set_healthy(false);
                stage.canary.set_cpu_usage(0.97);
                fault_at = Some(load_started.elapsed());
                let note = "fault injected: v2 fails every request, fails readiness, CPU at 97%";
                if plain {
                    say(&format!("[{}] {note}", view::clock(started.elapsed())));
                }
                notes.push(view::Note {
                    at: unix_ms(),
                    text: note.to_owned(),
                });
            }
        }
        let seen = stage.guard().await;
        if seen.tripped() && !guard.tripped() {
            let text = format!(
                "Envoy: {}",
                seen.evidence
                    .as_deref()
                    .unwrap_or("guard tripped (the guard_tripped gauge shows 1)")
            );
            if plain {
                say(&format!("[{}] {text}", view::clock(started.elapsed())));
            }
        }
        if !guard.tripped() || seen.evidence.is_some() {
            guard = seen;
        }
        if live {
            let records = stage
                .load
                .as_ref()
                .map(|l| l.snapshot().records)
                .unwrap_or_default();
            let traffic =
                view::traffic_by_version(&records, load_started.elapsed(), Duration::from_secs(3));
            let frame = view::frame(&title, started.elapsed(), &status, &traffic, &guard, &notes);
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\x1b[H\x1b[2J{frame}");
            let _ = out.flush();
        } else if plain {
            for line in view::progress_lines(&status, &mut printed, started.elapsed()) {
                say(&line);
            }
        }
        if stage.controller_finished() {
            break;
        }
    }
    let outcome = stage
        .controller_outcome(false)
        .await
        .map_err(DemoError::Controller)?;
    let status = stage.board.report(None).unwrap_or_default();
    let mut scaled_down = false;
    if outcome == Outcome::Aborted {
        // The seed's last rollback action: scale the canary down; stable
        // keeps serving.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stage.canary.close();
        scaled_down = true;
        notes.push(view::Note {
            at: unix_ms(),
            text: "canary v2 scaled down; stable v1 keeps serving".to_owned(),
        });
        if plain {
            say(&format!(
                "[{}] canary v2 scaled down; stable v1 keeps serving",
                view::clock(started.elapsed())
            ));
        }
    }
    // Let the load run on the final split for a moment.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let load = stage.stop_load().await;
    if live {
        let traffic = view::traffic_by_version(
            &load.records,
            load_started.elapsed(),
            Duration::from_secs(3),
        );
        let frame = view::frame(&title, started.elapsed(), &status, &traffic, &guard, &notes);
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b[H\x1b[2J{frame}");
        let _ = out.flush();
    } else if plain {
        for line in view::progress_lines(&status, &mut printed, started.elapsed()) {
            say(&line);
        }
    }
    let mut summary = summarise(
        &options,
        outcome,
        &status,
        &load,
        FaultSeen {
            at: fault_at,
            guard: &guard,
        },
        scaled_down,
        started.elapsed(),
    );
    summary.judge = judge_evidence(&status).or(judged);
    drop(stage);
    Ok(summary)
}

/// What the run saw of the fault (failure scenario).
struct FaultSeen<'a> {
    /// The fault's onset, from the load's start.
    at: Option<Duration>,
    /// The in-proxy guard at the end.
    guard: &'a view::GuardView,
}

fn summarise(
    options: &DemoOptions,
    outcome: Outcome,
    status: &canary_rollout::driver::Report,
    load: &LoadSummary,
    fault: FaultSeen<'_>,
    scaled_down: bool,
    elapsed: Duration,
) -> Summary {
    let FaultSeen {
        at: fault_at,
        guard,
    } = fault;
    let (outcome_name, verdict, as_expected) = match outcome {
        Outcome::Promoted => (
            "promoted",
            PROMOTED_VERDICT.to_owned(),
            options.scenario.promotes(),
        ),
        Outcome::Aborted => (
            "rolled_back",
            ROLLED_BACK_VERDICT.to_owned(),
            !options.scenario.promotes(),
        ),
        Outcome::Stopped | Outcome::StoppedUnconfirmed => {
            ("stopped", "stopped before the end".to_owned(), false)
        }
    };
    let requests_by_version = load
        .by_version()
        .into_iter()
        .map(|(version, n)| (version, n as u64))
        .collect();
    // The last request the canary served: where the guard (or the
    // rollback) cut it off, as the clients saw it.
    let last_canary = fault_at.map(|fault| {
        load.records
            .iter()
            .filter(|r| r.served_by() == Some("v2"))
            .map(|r| r.sent_at)
            .max()
            .unwrap_or(fault)
    });
    let failed_between = |from: Duration, to: Duration| {
        load.records
            .iter()
            .filter(|r| r.sent_at >= from && r.sent_at <= to && r.failed())
            .count() as u64
    };
    let (fault_to_rollback_ms, failed_after_rollback) = match (outcome, fault_at, last_canary) {
        (Outcome::Aborted, Some(fault), Some(last)) => (
            Some(last.saturating_sub(fault).as_millis() as u64),
            Some(failed_between(
                last + Duration::from_nanos(1),
                Duration::MAX,
            )),
        ),
        _ => (None, None),
    };
    let trip = match (guard.tripped(), fault_at, last_canary) {
        (true, Some(fault), Some(last)) => Some(GuardTrip {
            evidence: guard.evidence.clone(),
            failed_before: failed_between(fault, last),
            failed_after: failed_between(last + Duration::from_nanos(1), Duration::MAX),
        }),
        (true, _, _) => Some(GuardTrip {
            evidence: guard.evidence.clone(),
            failed_before: 0,
            failed_after: 0,
        }),
        _ => None,
    };
    Summary {
        scenario: options.scenario.name().to_owned(),
        outcome: outcome_name.to_owned(),
        as_expected,
        verdict,
        duration_seconds: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        requests_by_version,
        requests_total: load.total() as u64,
        failed_requests: load.failed() as u64,
        failed_after_rollback,
        fault_to_rollback_ms,
        final_traffic: FinalTraffic {
            stable: status.traffic.stable.clone(),
            canary: status.traffic.canary.clone(),
            canary_weight: status.traffic.canary_weight,
        },
        canary_scaled_down: scaled_down,
        steps: status.steps,
        guard_trip: trip,
        judge: None,
    }
}

/// The judge's latest measurement in `status` (its value, or why it had
/// not enough data), if it has measured.
fn judge_evidence(status: &canary_rollout::driver::Report) -> Option<String> {
    status
        .analyses
        .iter()
        .flat_map(|analysis| &analysis.metrics)
        .filter(|metric| metric.name == "judge")
        .filter_map(|metric| metric.measurements.last())
        .find_map(|m| m.value.clone().or_else(|| m.message.clone()))
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Hides the terminal cursor while the live view runs; shows it again on
/// drop (also on Ctrl-C and errors).
struct HiddenCursor;

impl HiddenCursor {
    fn new() -> HiddenCursor {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b[?25l");
        let _ = out.flush();
        HiddenCursor
    }
}

impl Drop for HiddenCursor {
    fn drop(&mut self) {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b[?25h");
        let _ = out.flush();
    }
}

/// Prints a line; a closed stdout (`canary demo | head`) is not an error
/// worth stopping the demo for.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}
