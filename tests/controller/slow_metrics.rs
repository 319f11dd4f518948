//! A metrics source that never answers does not hold up a person's abort:
//! measurements run on their own, and the abort is applied at once.

use std::time::{Duration, Instant};

use canary_rollout::Command;

use crate::stage::Stage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_is_not_held_up_by_a_hanging_measurement() {
    // Accepts connections and never answers.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging_addr = hanging.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hanging.accept().await {
            held.push(stream);
        }
    });

    let stage = Stage::start(false).await;
    let steps = crate::stage::rollout(
        "v2",
        "",
        &[
            "setWeight: 10",
            "analysis: {templates: [{templateName: slow}]}",
            "setWeight: 100",
        ],
    );
    let rollout = stage.write_rollout(&format!(
        r#"{steps}---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: slow
spec:
  metrics:
  - name: hangs
    successCondition: result == true
    provider:
      web:
        url: http://{hanging_addr}/healthy
        timeoutSeconds: 60
"#
    ));
    let args = stage.run_args(&rollout, &stage.admin_url());
    let mut controller = stage.controller(&args).await;
    controller
        .wait_for("the analysis to run", Duration::from_secs(30), |s| {
            s.traffic.canary_weight == 10.0 && !s.analyses.is_empty()
        })
        .await;
    // Let the measurement start and hang.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let status = controller
        .client()
        .command(Command::Abort)
        .await
        .expect("abort accepted");
    let took = asked.elapsed();
    // Answered before Envoy was read again: rolling back, not yet seen.
    assert!(
        ["RollingBack", "Aborted"].contains(&status.phase.as_str()),
        "{}",
        status.phase
    );
    assert_eq!(status.traffic.canary_weight, 0.0);
    assert!(took < Duration::from_secs(3), "the abort took {took:?}");
    assert_eq!(controller.wait_exit(Duration::from_secs(10)).await, Some(3));
    assert_eq!(stage.pushed().canary_weight, canary_config::Weight::ZERO);
    holder.abort();
    println!("abort answered in {took:?} while a measurement hung");
}
