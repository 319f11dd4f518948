//! A secret (`secretKeyRef`, read from `CANARY_SECRET_*`) used in web
//! metrics' URLs and headers never shows: not in `/status`, not in the
//! state file (which only its owner can read), not in the log, not even
//! when the metrics server echoes the request back in its error.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stage::Stage;

const SECRET: &str = "s3cr3t-api-key-5e1f";

/// Answers every request 500, echoing the request line and headers.
async fn echoing_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let echo = String::from_utf8_lossy(&buf[..n]).into_owned();
                let answer = format!(
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{echo}",
                    echo.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_a_web_metric_appears_nowhere() {
    let (echo, server) = echoing_server().await;
    // A port nobody listens on: the connection error names the URL.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let stage = Stage::start(false).await;
    let analysis = "analysis: {templates: [{templateName: checks}], args: [{name: api-key, valueFrom: {secretKeyRef: {name: metrics, key: api-key}}}]}";
    let steps = crate::stage::rollout("v2", "", &["setWeight: 10", analysis, "setWeight: 100"]);
    let template = crate::stage::analysis_template(
        "checks",
        &format!(
            r#"  args:
  - name: api-key
  metrics:
  - name: echoed
    interval: 1s
    consecutiveErrorLimit: 100
    successCondition: result == true
    provider:
      web:
        url: http://{echo}/hooks/{{{{args.api-key}}}}/check?key={{{{args.api-key}}}}
        headers:
        - key: X-Api-Key
          value: "{{{{args.api-key}}}}"
  - name: unreachable
    interval: 1s
    consecutiveErrorLimit: 100
    successCondition: result == true
    provider:
      web:
        url: http://user:{{{{args.api-key}}}}@{closed}/check?key={{{{args.api-key}}}}
"#
        ),
    );
    let rollout = stage.write_rollout(&format!("{steps}---\n{template}"));
    let args = stage.run_args(&rollout, &stage.admin_url());
    let controller = stage
        .controller_with_env(&args, &[("CANARY_SECRET_METRICS_API_KEY", SECRET)])
        .await;
    let status = controller
        .wait_for(
            "both metrics to have failed to measure twice",
            Duration::from_secs(60),
            |s| {
                s.analyses
                    .iter()
                    .flat_map(|a| &a.metrics)
                    .filter(|m| m.errors >= 2)
                    .count()
                    == 2
            },
        )
        .await;
    let status_text = serde_json::to_string(&status).unwrap();
    // The errors are there, and say where, without the secret.
    assert!(
        status_text.contains(&format!("http://{echo}/hooks/REDACTED/check?key=REDACTED")),
        "{status_text}"
    );
    assert!(
        status_text.contains("500"),
        "the echoed error is reported: {status_text}"
    );
    let raw_status = {
        let client = controller.client();
        serde_json::to_string(&client.status().await.unwrap()).unwrap()
    };
    let state = stage.state_text();
    let log = controller.log();
    for (place, text) in [
        ("/status", &raw_status),
        ("the state file", &state),
        ("the log", &log),
    ] {
        assert!(!text.contains(SECRET), "the secret is in {place}:\n{text}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(stage.dir.path().join("state.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    server.abort();
}
