//! The HTTP API and the CLI that talks to it, against a running
//! `canary run`: status and commands need the token (generated into a
//! private file when none is given, where the CLI finds it), cross-origin
//! and form-encoded commands are refused even with it, every command is
//! recorded with who sent it, the CLI prints status as a table or JSON,
//! and `/metrics`, `/healthz`, `/readyz` answer without a token.

use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use canary_lab::load::Client;

use crate::stage::{rollout, Stage};

fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    cli_env(args, &[])
}

fn cli_env(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let binary = canary_lab::paths::canary_binary().unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(binary)
        .args(args)
        .env_remove("CANARY_TOKEN")
        .env_remove("CANARY_TOKEN_FILE")
        .envs(env.iter().copied())
        .current_dir(std::env::temp_dir())
        .output()
        .expect("canary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// One HTTP/1.1 request on its own connection: the status and the body.
async fn send_raw(
    api: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let host = api.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_token_guards_status_and_commands_and_cross_site_requests_are_refused() {
    let stage = Stage::start(false).await;
    let rollout = stage.write_rollout(&rollout(
        "v2",
        "",
        &["setWeight: 20", "pause: {}", "setWeight: 100"],
    ));
    let args = stage.run_args(&rollout, &stage.admin_url());
    let controller = stage.controller(&args).await;
    controller
        .wait_for("the first pause", Duration::from_secs(30), |s| {
            s.phase == "Paused"
        })
        .await;
    let api = controller.api().to_owned();
    let token_file = controller.token_file().display().to_string();
    let token = controller
        .token()
        .expect("a token was generated")
        .to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file)
            .expect("token file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the generated token file is private");
    }

    // Probes and metrics are open; status and commands are not.
    assert_eq!(send_raw(&api, "GET", "/healthz", &[], "").await.0, 200);
    assert_eq!(send_raw(&api, "GET", "/metrics", &[], "").await.0, 200);
    assert_eq!(send_raw(&api, "GET", "/status", &[], "").await.0, 401);
    let (code, _, stderr) = cli(&["status", "--server", &api]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("token"), "{stderr}");
    let (code, stdout, stderr) = cli(&["status", "--server", &api, "--token-file", &token_file]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("rollout app"), "{stdout}");

    // A form posted from another site is refused, with or without the
    // token (the outside test promoted the rollout this way).
    let bearer = format!("Bearer {token}");
    for headers in [
        vec![
            ("origin", "http://evil.example"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        vec![
            ("origin", "http://evil.example"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", bearer.as_str()),
        ],
        vec![
            ("origin", "http://evil.example"),
            ("authorization", bearer.as_str()),
        ],
        vec![
            ("content-type", "text/plain"),
            ("authorization", bearer.as_str()),
        ],
    ] {
        let (status, answer) = send_raw(&api, "POST", "/promote?full=true", &headers, "x=1").await;
        assert!(matches!(status, 401 | 403 | 415), "{headers:?}: {answer}");
    }
    assert_eq!(controller.status().await.traffic.canary_weight, 20.0);

    // A browser signs in with the token, then commands with the cookie
    // and the CSRF header it was given.
    let (status, answer) = send_raw(
        &api,
        "POST",
        "/session",
        &[("content-type", "application/json")],
        &format!("{{\"token\": \"{token}\"}}"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let cookie = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a session cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_owned();
    let body = &answer[answer.find("\r\n\r\n").expect("body") + 4..];
    let csrf = serde_json::from_str::<serde_json::Value>(body).expect("JSON")["csrf"]
        .as_str()
        .expect("csrf")
        .to_owned();
    let (status, answer) = send_raw(&api, "POST", "/pause", &[("cookie", &session)], "").await;
    assert_eq!(status, 403, "no CSRF header: {answer}");
    let (status, answer) = send_raw(
        &api,
        "POST",
        "/resume",
        &[("cookie", &session), ("x-canary-csrf", &csrf)],
        "",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let done = controller
        .wait_for("the rollout to be promoted", Duration::from_secs(30), |s| {
            s.phase == "Promoted" || s.traffic.canary_weight == 100.0
        })
        .await;
    let resumed = done
        .events
        .iter()
        .find(|e| e.reason.contains("(by browser from 127.0.0.1:"))
        .unwrap_or_else(|| panic!("the resume names its sender: {:#?}", done.events));
    assert!(!resumed.reason.contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_need_the_token_and_the_cli_drives_the_rollout() {
    let stage = Stage::start(false).await;
    let rollout = stage.write_rollout(&rollout(
        "v2",
        "",
        &[
            "setWeight: 20",
            "pause: {}",
            "setWeight: 60",
            "pause: {}",
            "setWeight: 100",
        ],
    ));
    let mut args = stage.run_args(&rollout, &stage.admin_url());
    args.extend(["--token".to_owned(), "s3cret-token".to_owned()]);
    let mut controller = stage.controller(&args).await;
    controller
        .wait_for("the first pause", Duration::from_secs(30), |s| {
            s.phase == "Paused"
        })
        .await;
    let api = controller.api().to_owned();
    let addr: std::net::SocketAddr = api.trim_start_matches("http://").parse().unwrap();
    let raw = Client::new(addr, "canary");

    // Probes are open; commands without the token are refused.
    assert_eq!(raw.get("/healthz", &[]).await.unwrap().status, 200);
    let ready = raw.get("/readyz", &[]).await.unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
    let (code, _, stderr) = cli(&["resume", "--server", &api]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("token"), "{stderr}");
    let (code, _, stderr) = cli(&["resume", "--server", &api, "--token", "wrong"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        controller.status().await.traffic.canary_weight,
        20.0,
        "a refused command changed nothing"
    );

    // With the token: resume to the next pause, shown as a table.
    let (code, stdout, stderr) = cli(&["resume", "--server", &api, "--token", "s3cret-token"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("rollout app"), "{stdout}");
    controller
        .wait_for("60% and paused", Duration::from_secs(10), |s| {
            s.phase == "Paused" && s.traffic.canary_weight == 60.0
        })
        .await;

    // Every Envoy shows the pushed 60% in its weight gauges.
    let applied = controller
        .wait_for("the Envoys to apply 60%", Duration::from_secs(10), |s| {
            s.push.applied.as_ref().is_some_and(|a| a.confirmed)
        })
        .await;
    assert_eq!(applied.traffic.canary_weight, 60.0);
    let (code, stdout, stderr) = cli(&["status", "--server", &api, "--token", "s3cret-token"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("visible"), "--token warns: {stderr}");
    assert!(stdout.contains("applied by every Envoy"), "{stdout}");

    // A command the rollout cannot take now is refused with the reason.
    let (code, _, stderr) = cli(&["retry", "--server", &api, "--token", "s3cret-token"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("refused"), "{stderr}");

    // Status as JSON for scripts.
    let (code, stdout, stderr) = cli_env(
        &["status", "--server", &api, "--json"],
        &[("CANARY_TOKEN", "s3cret-token")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("JSON status");
    assert_eq!(status["traffic"]["canaryWeight"], 60.0);
    assert_eq!(status["phase"], "Paused");
    assert_eq!(status["push"]["applied"]["confirmed"], true);

    // Prometheus text.
    let metrics = raw.get("/metrics", &[]).await.unwrap().body;
    assert!(
        metrics.contains("canary_rollout_canary_weight_percent{rollout=\"app\"} 60"),
        "{metrics}"
    );
    assert!(
        metrics.contains("canary_rollout_phase{rollout=\"app\",phase=\"Paused\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("canary_pushes_total{rollout=\"app\",result=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("canary_push_applied{rollout=\"app\"} 1"),
        "{metrics}"
    );

    // Promote fully: straight to the end.
    let (code, _, stderr) = cli(&[
        "promote",
        "--full",
        "--server",
        &api,
        "--token",
        "s3cret-token",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(controller.wait_exit(Duration::from_secs(10)).await, Some(0));
}
