//! `canary run`'s API settings, checked before anything starts: an
//! address other machines can reach is refused without TLS unless
//! `--insecure`.

use std::path::Path;
use std::process::{Command, Output};

/// `canary run` in `dir` with `args`, without a token from the environment.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canary"))
        .current_dir(dir)
        .arg("run")
        .args(args)
        .env_remove("CANARY_TOKEN")
        .env_remove("CANARY_TOKEN_FILE")
        .output()
        .expect("runs")
}

#[test]
fn a_reachable_address_without_tls_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let output = run(
        dir.path(),
        &["--rollout", "missing.yaml", "--listen", "0.0.0.0:0"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--listen 0.0.0.0:0") && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert!(
        !dir.path().join(".canary").exists(),
        "nothing is written before the refusal"
    );

    // With --insecure it gets past the API (and stops further on), and
    // its token went to a private file.
    let output = run(
        dir.path(),
        &[
            "--rollout",
            "missing.yaml",
            "--listen",
            "0.0.0.0:0",
            "--insecure",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("without TLS (--insecure)"), "{stderr}");
    assert!(
        !stderr.contains("can be reached from other machines"),
        "{stderr}"
    );
    let token = dir.path().join(".canary/api-token");
    assert!(token.exists(), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn a_token_on_the_command_line_is_warned_about() {
    let output = Command::new(env!("CARGO_BIN_EXE_canary"))
        .args([
            "status",
            "--server",
            "http://127.0.0.1:1",
            "--token",
            "visible",
        ])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/proc"), "{stderr}");
}
