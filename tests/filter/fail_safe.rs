//! When the filter cannot run, traffic still reaches stable.

use std::time::Duration;

use canary_e2e::setup::{filter_config, served_by, Rig};
use canary_lab::envoy::{Delivery, PushOutcome};
use canary_lab::stub_module::{self, OnRequest};
use serde_json::json;

/// A module that does not load: random bytes.
fn garbage_module(dir: &tempfile_dir::Dir) -> std::path::PathBuf {
    let path = dir.path().join("garbage.wasm");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A proxy-wasm module that traps on every request.
fn trapping_module(dir: &tempfile_dir::Dir) -> std::path::PathBuf {
    let wasm = wat::parse_str(stub_module::wat(OnRequest::Trap)).unwrap();
    let path = dir.path().join("trap.wasm");
    std::fs::write(&path, wasm).unwrap();
    path
}

mod tempfile_dir {
    /// A temporary folder removed on drop.
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let path = std::env::temp_dir().join(format!(
                "canary-{tag}-{}-{}",
                std::process::id(),
                fastrand_suffix()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fastrand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_does_not_load_leaves_traffic_on_stable() {
    let dir = tempfile_dir::Dir::new("garbage");
    let module = garbage_module(&dir);
    let rig = Rig::start_with(Delivery::Ecds, &filter_config(100.0, json!({})), |spec| {
        spec.module = Some(module);
    })
    .await;
    let replies = rig.send_plain(100).await;
    assert_eq!(served_by(&replies, "v1"), 100);
    assert!(
        rig.envoy
            .counter("extension_config_discovery.http_filter.canary.update_rejected")
            .await
            .unwrap()
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_module_in_an_update_is_rejected_and_the_filter_keeps_running() {
    let dir = tempfile_dir::Dir::new("swap");
    let garbage = garbage_module(&dir);
    let mut rig = Rig::start(Delivery::Ecds, &filter_config(100.0, json!({}))).await;
    assert_eq!(served_by(&rig.send_plain(20).await, "v2"), 20);
    // Same configuration, but the module is now garbage.
    let mut plugin = rig.envoy.plugin().clone();
    plugin.module = canary_config::ecds::ModuleSource::Local {
        filename: garbage.to_string_lossy().into_owned(),
    };
    let good = rig.envoy.plugin().clone();
    let document = plugin.ecds_document_raw(&filter_config(0.0, json!({})).to_string(), "99");
    let path = rig.envoy.ecds_path().unwrap().to_path_buf();
    let rejected = "extension_config_discovery.http_filter.canary.update_rejected";
    let before = rig.envoy.counter(rejected).await.unwrap();
    let temp = path.with_extension("tmp-garbage");
    std::fs::write(&temp, document.to_string()).unwrap();
    std::fs::rename(&temp, &path).unwrap();
    rig.wait_counter(rejected, before + 1, Duration::from_secs(5))
        .await;
    // The running filter (100% canary) still serves.
    assert_eq!(served_by(&rig.send_plain(50).await, "v2"), 50);
    assert_eq!(good, *rig.envoy.plugin());
    let outcome = rig
        .envoy
        .push_and_wait(
            &filter_config(0.0, json!({})).to_string(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Applied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_that_traps_fails_open_to_stable() {
    let dir = tempfile_dir::Dir::new("trap");
    let module = trapping_module(&dir);
    for delivery in [Delivery::Inline, Delivery::Ecds] {
        let rig = Rig::start_with(delivery, &filter_config(100.0, json!({})), |spec| {
            spec.module = Some(module.clone());
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let reply = rig.get("/", &[]).await.expect("answered");
            statuses.push((reply.status, reply.served_by));
        }
        // Every request after the VM failed reaches stable.
        let tail: Vec<_> = statuses.iter().skip(1).collect();
        assert!(
            tail.iter()
                .all(|(status, served)| *status == 200 && served.as_deref() == Some("v1")),
            "{delivery:?}: {statuses:?}\n{}",
            rig.envoy.log()
        );
        println!(
            "{delivery:?}: first request after the trap: {:?}",
            statuses[0]
        );
    }
}
