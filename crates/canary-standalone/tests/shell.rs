//! `canary run`'s loop without processes: the driver behind it, a fake
//! fleet of proxies, fake metrics and a store in memory, on tokio's paused
//! clock so waits pass at once.

use std::sync::Arc;
use std::time::Duration;

use canary_analysis::{MeasurementResult, Timestamp};
use canary_api::{Actor, Board, CommandRequest, Refusal};
use canary_rollout::driver::Report;
use canary_rollout::fixtures::{FakeFleet, FakeMetrics, MemoryStore, TestClock};
use canary_rollout::ports::{Clock, PositionStore};
use canary_rollout::Command;
use canary_standalone::{RunConfig, RunOutcome, Shell, ShellError};
use tokio::sync::{mpsc, oneshot};

const ROLLOUT: &str = r#"apiVersion: canary.dev/v1alpha1
kind: CanaryRollout
metadata: {name: web}
spec:
  routes: [web]
  stableVersion: v1
  canaryVersion: v2
  verifyDeadline: 5s
  steps:
  - setWeight: 20
  - pause: {duration: 10s}
  - analysis: {templates: [{templateName: check}]}
  - setWeight: 60
  - pause: {duration: 10s}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: check}
spec:
  metrics:
  - name: ready
    interval: 2s
    count: 2
    successCondition: result >= 0.5
    provider: {kubernetes: {selector: app=web, quantity: ready-ratio}}
"#;

struct Harness {
    fleet: FakeFleet,
    metrics: FakeMetrics,
    board: Arc<Board>,
    commands: mpsc::Sender<CommandRequest>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<RunOutcome, ShellError>>,
    _dir: tempfile::TempDir,
}

fn start(fleet: Option<FakeFleet>, store: MemoryStore, metrics: FakeMetrics) -> Harness {
    let dir = tempfile::tempdir().expect("dir");
    let rollout_file = dir.path().join("rollout.yaml");
    std::fs::write(&rollout_file, ROLLOUT).expect("rollout");
    let clock: Arc<dyn Clock> = Arc::new(TestClock::new(Timestamp::from_secs(1_000)));
    let fleet = fleet
        .unwrap_or_else(|| FakeFleet::new(&["web".to_owned()], "v1", 2))
        .with_clock(clock.clone());
    let board = Arc::new(Board::default());
    let shell = Shell::new(
        RunConfig {
            rollout_file,
            watch: false,
            observe_every: Duration::from_millis(250),
        },
        Arc::new(fleet.clone()),
        Arc::new(metrics.clone()),
        Box::new(store),
        board.clone(),
        clock,
        true,
    );
    let (commands, receiver) = mpsc::channel(4);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(shell.run(receiver, async move {
        let _ = stopped.await;
    }));
    Harness {
        fleet,
        metrics,
        board,
        commands,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

fn healthy() -> FakeMetrics {
    FakeMetrics::new(|_, _, _| MeasurementResult::sampled(1.0, 3))
}

impl Harness {
    fn report(&self) -> Report {
        self.board.report(None).unwrap_or_default()
    }

    /// Lets simulated time pass until `done` holds (at most `limit`).
    async fn until(&self, limit: Duration, done: impl Fn(&Report) -> bool) -> Report {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let report = self.report();
            if done(&report) {
                return report;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not reached within {limit:?}: {report:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn command(&self, command: Command) -> Result<Report, Refusal> {
        self.command_by(command, Actor::local("test")).await
    }

    async fn command_by(&self, command: Command, by: Actor) -> Result<Report, Refusal> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let (request, answer) = CommandRequest::new(None, command, by, deadline);
        self.commands.send(request).await.expect("shell listening");
        answer.await.expect("answered")
    }

    async fn stop(mut self) -> Result<RunOutcome, ShellError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.expect("shell task")
    }
}

#[tokio::test(start_paused = true)]
async fn it_promotes_once_every_proxy_shows_each_step() {
    let harness = start(None, MemoryStore::default(), healthy());
    let outcome = tokio::time::timeout(Duration::from_secs(120), harness.task)
        .await
        .expect("ends")
        .expect("task");
    assert_eq!(outcome.expect("runs"), RunOutcome::Promoted);
}

#[tokio::test(start_paused = true)]
async fn failing_pushes_never_promote() {
    let harness = start(None, MemoryStore::default(), healthy());
    harness
        .until(Duration::from_secs(5), |r| {
            r.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    harness.fleet.fail_pushes(Some("target gone"));
    let report = harness
        .until(Duration::from_secs(120), |r| {
            r.conditions.iter().any(|c| c.kind == "SplitNotSeen")
        })
        .await;
    assert_eq!(report.phase, "RollingBack");
    assert!(report.events.iter().all(|e| e.kind != "Promoted"));
    assert_eq!(
        harness.stop().await.expect("stops"),
        RunOutcome::StoppedUnconfirmed
    );
}

#[tokio::test(start_paused = true)]
async fn drift_up_is_reasserted_and_drift_down_pauses() {
    let harness = start(None, MemoryStore::default(), healthy());
    harness
        .until(Duration::from_secs(5), |r| {
            r.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    harness.fleet.tamper(0, &[("v1", 5000), ("v2", 5000)]);
    harness
        .until(Duration::from_secs(2), |r| {
            r.events.iter().any(|e| e.kind == "DriftUp")
                && r.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    let last = harness.fleet.pushes().last().expect("pushed").1.clone();
    assert_eq!(last.traffic.canary_weight.basis_points(), 2000);
    harness.fleet.tamper(1, &[("v1", 10_000), ("v2", 0)]);
    let report = harness
        .until(Duration::from_secs(2), |r| {
            r.pause_reason.as_deref() == Some("Drift")
        })
        .await;
    assert_eq!(report.traffic.canary_weight, 20.0);
    harness.stop().await.expect("stops");
}

#[tokio::test(start_paused = true)]
async fn an_abort_is_answered_while_a_measurement_hangs() {
    let metrics = healthy();
    metrics.hang("ready");
    let harness = start(None, MemoryStore::default(), metrics);
    harness
        .until(Duration::from_secs(30), |r| {
            r.analyses.iter().any(|a| a.slot.starts_with("step"))
        })
        .await;
    let report = tokio::time::timeout(Duration::from_secs(1), harness.command(Command::Abort))
        .await
        .expect("answered at once")
        .expect("accepted");
    assert_eq!(report.traffic.canary_weight, 0.0);
    let outcome = tokio::time::timeout(Duration::from_secs(10), harness.task)
        .await
        .expect("ends")
        .expect("task");
    assert_eq!(outcome.expect("runs"), RunOutcome::Aborted);
}

#[tokio::test(start_paused = true)]
async fn a_position_that_cannot_be_saved_stops_toward_stable() {
    let store = MemoryStore::default();
    let harness = start(None, store.clone(), healthy());
    harness
        .until(Duration::from_secs(5), |r| {
            r.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    store.fail_saves(Some("disk full"));
    let refused = harness.command(Command::Promote).await;
    assert!(
        matches!(refused, Err(Refusal::Unavailable(_))),
        "{refused:?}"
    );
    let fleet = harness.fleet.clone();
    let result = harness.task.await.expect("task");
    let err = result.expect_err("fatal").to_string();
    assert!(
        err.contains("disk full") && err.contains("pushed v2 0%, v1 100%"),
        "{err}"
    );
    let last = fleet.pushes().last().expect("pushed").1.clone();
    assert_eq!(last.traffic.canary_weight.basis_points(), 0);
    assert_eq!(last.traffic.canary.as_deref(), Some("v2"));
}

#[tokio::test(start_paused = true)]
async fn a_restarted_shell_resumes_where_the_last_one_stopped() {
    let store = MemoryStore::default();
    let first = start(None, store.clone(), healthy());
    first
        .until(Duration::from_secs(60), |r| r.traffic.canary_weight == 60.0)
        .await;
    let fleet = first.fleet.clone();
    let metrics = first.metrics.clone();
    first.stop().await.expect("stops");
    let saved = store.load().expect("load").expect("saved");
    assert_eq!(
        saved
            .state
            .as_ref()
            .expect("state")
            .traffic()
            .canary_weight
            .basis_points(),
        6000
    );
    let second = start(Some(fleet), store, metrics);
    let outcome = tokio::time::timeout(Duration::from_secs(60), second.task)
        .await
        .expect("ends")
        .expect("task");
    assert_eq!(outcome.expect("runs"), RunOutcome::Promoted);
}

#[tokio::test(start_paused = true)]
async fn a_command_whose_client_has_gone_is_not_carried_out() {
    let harness = start(None, MemoryStore::default(), healthy());
    harness
        .until(Duration::from_secs(5), |r| {
            r.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    // The client gave up (its answer channel is gone) before the loop
    // took the command.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (request, answer) =
        CommandRequest::new(None, Command::Abort, Actor::local("gone"), deadline);
    drop(answer);
    harness.commands.send(request).await.expect("sent");
    // One that waited past its deadline is refused, not carried out.
    let (late, answer) = CommandRequest::new(
        None,
        Command::Abort,
        Actor::local("late"),
        tokio::time::Instant::now(),
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    harness.commands.send(late).await.expect("sent");
    let refused = answer.await.expect("answered");
    assert!(
        matches!(&refused, Err(Refusal::Unavailable(why)) if why.contains("deadline")),
        "{refused:?}"
    );
    let report = harness
        .until(Duration::from_secs(60), |r| r.traffic.canary_weight == 60.0)
        .await;
    assert!(
        report.events.iter().all(|e| e.kind != "Aborted"),
        "{:#?}",
        report.events
    );
    harness.stop().await.expect("stops");
}

#[tokio::test(start_paused = true)]
async fn every_command_is_recorded_with_who_sent_it() {
    let harness = start(None, MemoryStore::default(), healthy());
    harness
        .until(Duration::from_secs(5), |r| {
            r.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    let by = Actor {
        who: "cli".into(),
        peer: Some("127.0.0.1:5555".parse().expect("addr")),
    };
    let report = harness
        .command_by(Command::Pause, by)
        .await
        .expect("accepted");
    let paused = report
        .events
        .iter()
        .find(|e| e.kind == "Paused")
        .expect("a Paused event");
    assert!(
        paused.reason.ends_with("(by cli from 127.0.0.1:5555)"),
        "{}",
        paused.reason
    );
    harness.stop().await.expect("stops");
}
