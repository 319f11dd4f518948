//! `canary validate FILE` on the shipped examples and on a broken file.

use std::path::PathBuf;
use std::process::Command;

fn canary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_canary"))
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn the_shipped_examples_pass() {
    for name in ["rollout.yaml", "rollout-prometheus.yaml"] {
        let output = canary()
            .arg("validate")
            .arg(examples().join(name))
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(": ok: rollout"), "{stdout}");
    }
}

#[test]
fn each_problem_is_printed_as_file_line_path_reason_and_the_exit_code_is_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: canary.dev/v1alpha1\nkind: CanaryRollout\nmetadata: {name: web}\nspec:\n  routes: [web]\n  stableVersion: v1\n  canaryVersion: v2\n  steps:\n  - setWeight: 150\n  - pause: {duration: soon}\n",
    )
    .expect("write");
    let output = canary().arg("validate").arg(&file).output().expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = file.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("{shown}:9: spec.steps[0].setWeight: weight must be between 0 and 100 (percent), got 150"),
            format!("{shown}:10: spec.steps[1].pause.duration: \"soon\" is not a duration; write a number with a unit, e.g. `30s`, `5m`, `1h30m`"),
            "2 problems found".to_owned(),
        ]
    );
}

#[test]
fn a_missing_file_is_a_problem_too() {
    let output = canary()
        .args(["validate", "/nonexistent/rollout.yaml"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("/nonexistent/rollout.yaml: cannot read"),
        "{stderr}"
    );
}

/// `canary validate … | head -0` and friends: a reader that has gone away
/// is not a crash. The pipe's read end is closed before the child starts,
/// so every write the child makes fails with EPIPE.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let example = examples().join("rollout.yaml");
    let runs: [(&str, Vec<std::ffi::OsString>); 2] = [
        (
            "validate",
            vec!["validate".into(), example.into_os_string()],
        ),
        ("crd", vec!["crd".into()]),
    ];
    for (name, args) in runs {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let output = canary()
            .args(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(output.status.success(), "{name}: {stderr}");
    }
}
