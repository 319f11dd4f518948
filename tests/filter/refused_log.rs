//! What Envoy 1.40 logs when the filter refuses a configuration, with the
//! shipped `failure_policy: FAIL_OPEN` and with the deprecated boolean
//! `fail_open: true` instead, and how each fails open when the VM traps
//! (docs/filter.md, "The critical log line on a refused configuration").

use std::time::Duration;

use canary_e2e::setup::{filter_config, served_by, Rig};
use canary_lab::envoy::Delivery;
use canary_lab::stub_module::{self, OnRequest};
use serde_json::{json, Value};

const REJECTED: &str = "extension_config_discovery.http_filter.canary.update_rejected";
const FAIL_CLOSED_LINE: &str = "Plugin configured to fail closed failed to load";
const FAILED_TO_LOAD_LINE: &str = "Plugin canary failed to load";
const DEPRECATED_LINE: &str =
    "Using deprecated option 'envoy.extensions.wasm.v3.PluginConfig.fail_open'";

/// The failure setting of a plugin configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    /// `failure_policy: FAIL_OPEN`, as shipped.
    FailurePolicy,
    /// The deprecated `fail_open: true`, without `failure_policy`.
    DeprecatedBoolean,
    /// Both fields.
    Both,
}

/// The ECDS document for `config_text` with the rig's module (or
/// `module`) and `setting`.
fn document(rig: &Rig, config_text: &str, module: Option<&str>, setting: Setting) -> Value {
    let mut plugin = rig.envoy.plugin().clone();
    if let Some(module) = module {
        plugin.module = canary_config::ecds::ModuleSource::Local {
            filename: module.to_owned(),
        };
    }
    let mut document = plugin.ecds_document_raw(config_text, "refused-log");
    let config = document
        .pointer_mut("/resources/0/typed_config/config")
        .and_then(Value::as_object_mut)
        .expect("a plugin configuration");
    match setting {
        Setting::FailurePolicy => {}
        Setting::DeprecatedBoolean => {
            config.remove("failure_policy");
            config.insert("fail_open".into(), json!(true));
        }
        Setting::Both => {
            config.insert("fail_open".into(), json!(true));
        }
    }
    document
}

/// Renames `document` over the rig's ECDS file and waits until Envoy
/// counted one more rejected update.
async fn push_rejected(rig: &Rig, document: &Value) {
    let path = rig.envoy.ecds_path().expect("ECDS").to_path_buf();
    let before = rig.envoy.counter(REJECTED).await.unwrap();
    let temp = path.with_extension("tmp-refused");
    std::fs::write(&temp, document.to_string()).unwrap();
    std::fs::rename(&temp, &path).unwrap();
    rig.wait_counter(REJECTED, before + 1, Duration::from_secs(5))
        .await;
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_configuration_logs_critical_lines_and_keeps_serving() {
    let refused = filter_config(150.0, json!({})).to_string();
    let rig = Rig::start_with(Delivery::Ecds, &filter_config(100.0, json!({})), |spec| {
        spec.concurrency = 2;
    })
    .await;
    assert_eq!(served_by(&rig.send_plain(20).await, "v2"), 20);

    // As shipped: the filter names the field, and Envoy prints both
    // critical lines although the policy is FAIL_OPEN.
    push_rejected(
        &rig,
        &document(&rig, &refused, None, Setting::FailurePolicy),
    )
    .await;
    let log = rig.envoy.log();
    assert!(
        log.lines()
            .any(|l| l.contains("configuration rejected") && l.contains("routes[0].canary_weight")),
        "{log}"
    );
    assert!(count(&log, FAILED_TO_LOAD_LINE) >= 1, "{log}");
    let fail_closed = count(&log, FAIL_CLOSED_LINE);
    assert!(fail_closed >= 1, "{log}");
    assert_eq!(served_by(&rig.send_plain(20).await, "v2"), 20);

    // The deprecated boolean instead: no "fail closed" line, but "failed to
    // load" is still critical, and Envoy warns of the deprecated field.
    let failed_to_load = count(&log, FAILED_TO_LOAD_LINE);
    push_rejected(
        &rig,
        &document(&rig, &refused, None, Setting::DeprecatedBoolean),
    )
    .await;
    let log = rig.envoy.log();
    assert_eq!(count(&log, FAIL_CLOSED_LINE), fail_closed, "{log}");
    assert!(count(&log, FAILED_TO_LOAD_LINE) > failed_to_load, "{log}");
    assert!(count(&log, DEPRECATED_LINE) >= 1, "{log}");
    assert_eq!(served_by(&rig.send_plain(20).await, "v2"), 20);

    // Both fields together: Envoy refuses the plugin configuration itself.
    let valid = filter_config(0.0, json!({})).to_string();
    push_rejected(&rig, &document(&rig, &valid, None, Setting::Both)).await;
    let log = rig.envoy.log();
    assert!(
        log.contains("only one of fail_open or failure_policy can be set"),
        "{log}"
    );
    assert_eq!(served_by(&rig.send_plain(20).await, "v2"), 20);
}

/// Statuses of `n` requests on new connections, so both workers see some.
async fn statuses(rig: &Rig, n: usize) -> Vec<(u16, Option<String>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let reply = rig.get("/", &[]).await.expect("answered");
        out.push((reply.status, reply.served_by));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_settings_fail_open_when_the_vm_traps() {
    let dir = tempfile::tempdir().unwrap();
    let trap = dir.path().join("trap.wasm");
    std::fs::write(
        &trap,
        wat::parse_str(stub_module::wat(OnRequest::Trap)).unwrap(),
    )
    .unwrap();
    let trap = trap.to_string_lossy().into_owned();
    for policy in [Setting::FailurePolicy, Setting::DeprecatedBoolean] {
        let rig = Rig::start_with(Delivery::Ecds, &filter_config(0.0, json!({})), |spec| {
            spec.concurrency = 2;
        })
        .await;
        let config = filter_config(100.0, json!({})).to_string();
        let document = document(&rig, &config, Some(&trap), policy);
        let path = rig.envoy.ecds_path().expect("ECDS").to_path_buf();
        let temp = path.with_extension("tmp-trap");
        std::fs::write(&temp, document.to_string()).unwrap();
        std::fs::rename(&temp, &path).unwrap();
        rig.wait_counter(
            "extension_config_discovery.http_filter.canary.update_success",
            2,
            Duration::from_secs(5),
        )
        .await;
        let seen = statuses(&rig, 20).await;
        let failed = seen.iter().filter(|(status, _)| *status != 200).count();
        // Every request that passed reached stable (the trap marks nothing).
        assert!(
            seen.iter()
                .all(|(status, served)| *status != 200 || served.as_deref() == Some("v1")),
            "{policy:?}: {seen:?}"
        );
        match policy {
            // The request during which a worker's VM traps fails (at most
            // one per worker); later ones pass.
            Setting::FailurePolicy => assert!((1..=2).contains(&failed), "{seen:?}"),
            // The trapping request passes too.
            _ => assert_eq!(failed, 0, "{seen:?}\n{}", rig.envoy.log()),
        }
        println!("{policy:?}: {failed} of 20 requests failed after the VM trapped");
    }
}
