//! What the analysis decides, measured from outside with real Envoy: the
//! judge side by side with fixed thresholds (the recommended settings of
//! the detection runs). 200 requests per second, the canary at 10%, both
//! versions failing 1% of requests at first; then either nothing changes
//! (A/A: any rollback is a false one) or, after 6 s, the canary turns bad.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::detection::{rollout, Harness, Timing, EXIT_ROLLED_BACK};

/// Both versions' error rate before anything changes.
pub const BASELINE_ERRORS: f64 = 0.01;

/// How long an A/A run watches.
pub const AA_SECONDS: u64 = 40;

/// How long a regression run waits for the rollback.
pub const REGRESSION_LIMIT: Duration = Duration::from_secs(120);

/// Healthy time before a regression starts.
pub const HEALTHY_FIRST: Duration = Duration::from_secs(6);

/// The analysis deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Analysis {
    /// The recommended fixed thresholds: background, canary vs stable,
    /// error rate at most 2 points above stable's, p99 at most 25 ms
    /// above, interval 1 s, window 5 s, failureLimit 2, minSamples 20.
    Thresholds,
    /// The judge in the background with its defaults, a look every second.
    Judge,
}

impl Analysis {
    /// Both.
    pub const ALL: [Analysis; 2] = [Analysis::Thresholds, Analysis::Judge];

    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            Analysis::Thresholds => "thresholds (recommended settings)",
            Analysis::Judge => "judge (defaults, α = 1%)",
        }
    }

    fn rollout(self) -> String {
        match self {
            Analysis::Thresholds => rollout(Timing::Fast),
            Analysis::Judge => "apiVersion: canary.dev/v1alpha1\nkind: CanaryRollout\nmetadata:\n  name: bench\nspec:\n  routes: [app]\n  stableVersion: v1\n  canaryVersion: v2\n  progressDeadline: 5m\n  analysis:\n    templates: [{templateName: judge}]\n  steps:\n  - setWeight: 10\n  - pause: {}\n---\napiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: judge\nspec:\n  metrics:\n  - name: judge\n    interval: 1s\n    provider:\n      judge: {route: app}\n".to_owned(),
        }
    }
}

/// What happens to the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Case {
    /// Nothing: both versions stay identical.
    AA,
    /// The canary answers every request with 503.
    Hard,
    /// The canary's errors go from 1% to 3%.
    Errors1To3,
    /// The canary answers 50 ms slower.
    Latency50,
}

impl Case {
    /// The regressions.
    pub const REGRESSIONS: [Case; 3] = [Case::Hard, Case::Errors1To3, Case::Latency50];

    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            Case::AA => "A/A, both 1% 5xx",
            Case::Hard => "hard failure: canary 100% 5xx",
            Case::Errors1To3 => "errors 1% → 3%",
            Case::Latency50 => "latency +50 ms",
        }
    }
}

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRun {
    /// The analysis.
    pub analysis: Analysis,
    /// The case.
    pub case: Case,
    /// Whether the controller rolled back.
    pub rolled_back: bool,
    /// Whether it rolled back before the canary turned bad (a false
    /// rollback; every rollback of an A/A run is one).
    pub before_fault: bool,
    /// Fault onset to the last request the canary served (ms), when it
    /// rolled back after the fault.
    pub time_to_rollback_ms: Option<u64>,
    /// Canary requests that failed after the fault.
    pub failed_requests: u64,
}

impl DecisionRun {
    /// Whether it rolled back a canary that had not turned bad: before the
    /// fault, or so that no canary request came after it (runs recorded
    /// before `before_fault` covered that case are read the same way).
    pub fn false_rollback(&self) -> bool {
        self.before_fault || (self.rolled_back && self.time_to_rollback_ms.is_none())
    }
}

/// Runs one case with one analysis.
pub async fn run(analysis: Analysis, case: Case) -> Result<DecisionRun, String> {
    let mut harness = Harness::start(&analysis.rollout(), |stable, canary| {
        stable.set_error_rate(BASELINE_ERRORS);
        canary.set_error_rate(BASELINE_ERRORS);
    })
    .await?;
    let healthy = if case == Case::AA {
        Duration::from_secs(AA_SECONDS)
    } else {
        HEALTHY_FIRST
    };
    let early = harness.wait(healthy).await;
    let fault_at = harness.load.started().elapsed();
    let exit = match (early, case) {
        (Some(code), _) => Some(code),
        (None, Case::AA) => None,
        (None, regression) => {
            match regression {
                Case::Hard => harness.canary.set_error_rate(1.0),
                Case::Errors1To3 => harness.canary.set_error_rate(0.03),
                Case::Latency50 => harness.canary.set_latency(Duration::from_millis(50)),
                Case::AA => {}
            }
            harness.wait(REGRESSION_LIMIT).await
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let summary = harness.load.stop().await;
    let rolled_back = exit == Some(EXIT_ROLLED_BACK);
    let canary_after = || {
        summary
            .records
            .iter()
            .filter(|r| r.sent_at >= fault_at && r.served_by() == Some("v2"))
    };
    let last_canary = canary_after().map(|r| r.sent_at).max();
    // A rollback already in effect when the canary turned bad was decided
    // on the healthy canary.
    let before_fault =
        rolled_back && (case == Case::AA || early.is_some() || last_canary.is_none());
    Ok(DecisionRun {
        analysis,
        case,
        rolled_back,
        before_fault,
        time_to_rollback_ms: last_canary
            .filter(|_| rolled_back && !before_fault)
            .map(|at| (at - fault_at).as_millis() as u64),
        failed_requests: if case == Case::AA || before_fault {
            0
        } else {
            canary_after().filter(|r| r.failed()).count() as u64
        },
    })
}

/// Runs `aa_runs` A/A runs and `regression_runs` of each regression with
/// both analyses, alternating them so machine noise hits both alike.
pub async fn measure(aa_runs: usize, regression_runs: usize) -> Result<Vec<DecisionRun>, String> {
    let mut runs = Vec::new();
    let mut plan: Vec<Case> = Vec::new();
    for i in 0..aa_runs.max(regression_runs) {
        if i < regression_runs {
            plan.extend(Case::REGRESSIONS);
        }
        if i < aa_runs {
            plan.push(Case::AA);
        }
    }
    let total = plan.len() * Analysis::ALL.len();
    for case in plan {
        for analysis in Analysis::ALL {
            eprintln!(
                "canary-bench: decisions {}/{total}: {} with {}",
                runs.len() + 1,
                case.describe(),
                analysis.describe()
            );
            let run = run(analysis, case).await?;
            eprintln!("  → {run:?}");
            runs.push(run);
        }
    }
    Ok(runs)
}

/// How the runs of one case and analysis came out.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Runs.
    pub runs: usize,
    /// Rolled back before any fault (false rollbacks).
    pub false_rollbacks: usize,
    /// Its 95% Clopper-Pearson interval.
    pub false_interval: (f64, f64),
    /// Caught after the fault.
    pub caught: usize,
    /// Fault → rollback in effect, seconds, of the caught runs.
    pub seconds: Vec<f64>,
    /// Failed canary requests after the fault, of the runs not rolled back
    /// falsely (until the rollback, or over the whole wait).
    pub failed: Vec<f64>,
}

/// The runs of `case` with `analysis`, summed up.
pub fn row(runs: &[DecisionRun], analysis: Analysis, case: Case) -> Row {
    let of: Vec<&DecisionRun> = runs
        .iter()
        .filter(|r| r.analysis == analysis && r.case == case)
        .collect();
    let false_rollbacks = of.iter().filter(|r| r.false_rollback()).count();
    let caught: Vec<&&DecisionRun> = of
        .iter()
        .filter(|r| r.time_to_rollback_ms.is_some())
        .collect();
    let judged: Vec<&&DecisionRun> = of.iter().filter(|r| !r.false_rollback()).collect();
    Row {
        runs: of.len(),
        false_rollbacks,
        false_interval: canary_judge::simulation::summary::clopper_pearson(
            false_rollbacks as u64,
            of.len() as u64,
            0.95,
        ),
        caught: caught.len(),
        seconds: caught
            .iter()
            .filter_map(|r| r.time_to_rollback_ms)
            .map(|ms| ms as f64 / 1000.0)
            .collect(),
        failed: judged.iter().map(|r| r.failed_requests as f64).collect(),
    }
}
