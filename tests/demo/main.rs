//! `canary demo` as a user runs it: every scenario at high speed, judged
//! from the `--json` summary, and an interrupted demo leaves no process or
//! temporary file behind.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn canary() -> std::path::PathBuf {
    canary_lab::paths::canary_binary().unwrap_or_else(|err| panic!("{err}"))
}

fn run_demo(scenario: &str, tmp: &Path) -> Value {
    let output = Command::new(canary())
        .args(["demo", "--scenario", scenario, "--speed", "6", "--json"])
        .env("TMPDIR", tmp)
        .env_remove("RUST_LOG")
        .output()
        .expect("canary demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "canary demo --json printed no JSON summary ({err}):\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        output.status.success(),
        "exit {:?}: {summary}",
        output.status.code()
    );
    summary
}

fn leftovers(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_success_scenario_promotes_and_answers_every_request() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = run_demo("success", tmp.path());
    assert_eq!(summary["outcome"], "promoted", "{summary}");
    assert_eq!(summary["as_expected"], true);
    assert_eq!(
        summary["verdict"],
        "[ok] DEPLOYMENT SUCCESSFUL - NEW VERSION IS LIVE"
    );
    assert_eq!(summary["failed_requests"], 0, "{summary}");
    assert_eq!(summary["guard_trip"], Value::Null, "{summary}");
    assert!(summary["requests_by_version"]["v1"].as_u64().unwrap() > 0);
    assert!(summary["requests_by_version"]["v2"].as_u64().unwrap() > 0);
    assert_eq!(summary["final_traffic"]["stable"], "v2");
    assert!(
        leftovers(tmp.path()).is_empty(),
        "left behind: {:?}",
        leftovers(tmp.path())
    );
}

#[test]
fn the_failure_scenario_rolls_back_and_fails_nothing_afterwards() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = run_demo("failure", tmp.path());
    assert_eq!(summary["outcome"], "rolled_back", "{summary}");
    assert_eq!(
        summary["verdict"],
        "✅ ROLLBACK COMPLETE - PRODUCTION PROTECTED"
    );
    assert_eq!(summary["final_traffic"]["stable"], "v1");
    assert_eq!(summary["final_traffic"]["canary_weight"], 0.0);
    assert_eq!(summary["failed_after_rollback"], 0, "{summary}");
    assert!(
        summary["fault_to_rollback_ms"].as_u64().is_some(),
        "{summary}"
    );
    // The in-proxy guard cut the canary off: the failed requests are the
    // ones before its trip, and it names its evidence.
    let trip = &summary["guard_trip"];
    assert_eq!(trip["failed_after"], 0, "{summary}");
    let before = trip["failed_before"].as_u64().expect("counted");
    assert!(before >= 1, "{summary}");
    assert_eq!(
        summary["failed_requests"].as_u64(),
        Some(before),
        "{summary}"
    );
    let evidence = trip["evidence"].as_str().expect("the trip's log line");
    assert!(
        evidence.starts_with("guard tripped on route \"app\": canary \"v2\""),
        "{evidence}"
    );
    assert_eq!(summary["canary_scaled_down"], true);
    assert!(
        leftovers(tmp.path()).is_empty(),
        "left behind: {:?}",
        leftovers(tmp.path())
    );
}

/// The canary's and stable's request counts in the judge's errors
/// comparison (`errors …: canary x/n (…), stable y/m (…)`).
fn judged_requests(evidence: &str) -> Option<(u64, u64)> {
    let errors = &evidence[evidence.find("errors ")?..];
    let count = |who: &str| -> Option<u64> {
        let rest = &errors[errors.find(who)? + who.len()..];
        let fraction = rest.split_whitespace().next()?;
        fraction.split('/').nth(1)?.parse().ok()
    };
    Some((count("canary ")?, count("stable ")?))
}

#[test]
fn the_aa_scenario_shows_the_judges_evidence_and_promotes() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = run_demo("aa", tmp.path());
    // Structure only: the verdict of a random A/A run is not asserted
    // (the judge's false-rollback rate is at most 1%, not 0).
    assert_eq!(summary["scenario"], "aa");
    assert!(
        ["promoted", "rolled_back"].contains(&summary["outcome"].as_str().unwrap_or("")),
        "{summary}"
    );
    let evidence = summary["judge"]
        .as_str()
        .unwrap_or_else(|| panic!("no judge evidence: {summary}"));
    for part in [
        "verdict: ",
        "failure evidence",
        "success evidence",
        "difference",
    ] {
        assert!(evidence.contains(part), "{part:?} missing: {evidence}");
    }
    let (canary, stable) =
        judged_requests(evidence).unwrap_or_else(|| panic!("no counts: {evidence}"));
    assert!(canary > 0 && stable > 0, "{evidence}");
    assert!(
        leftovers(tmp.path()).is_empty(),
        "left behind: {:?}",
        leftovers(tmp.path())
    );
}

/// Process ids whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The parent pid is the 2nd field after the command's closing paren.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let parent = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(pid) {
            children.push(child);
        }
    }
    children
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.trim_start())
                .unwrap_or_default();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn ctrl_c_stops_everything_the_demo_started() {
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = Command::new(canary())
        .args(["demo", "--plain"])
        .env("TMPDIR", tmp.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("canary demo starts");
    let pid = demo.id();
    // Wait until the rollout runs, which means Envoy is up.
    let stdout = demo.stdout.take().unwrap();
    // Read everything the demo prints (so it never writes to a closed
    // pipe), and say when the rollout runs.
    let (started, running) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut told = false;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !told && line.contains("WeightChanged") {
                let _ = started.send(());
                told = true;
            }
        }
    });
    running
        .recv_timeout(Duration::from_secs(60))
        .expect("the demo never started its rollout");
    let children = children_of(pid);
    assert!(
        !children.is_empty(),
        "the demo started no child process (Envoy)"
    );
    assert!(
        !leftovers(tmp.path()).is_empty(),
        "the demo wrote no temporary files"
    );

    let kill = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop within 20 s of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let survivors: Vec<u32> = children.into_iter().filter(|c| alive(*c)).collect();
    assert!(
        survivors.is_empty(),
        "processes left running: {survivors:?}"
    );
    assert!(
        leftovers(tmp.path()).is_empty(),
        "left behind: {:?}",
        leftovers(tmp.path())
    );
}
