//! The guard in a real Envoy with two workers: a canary that fails every
//! request is cut off within a few canary requests, across both workers;
//! the gauges show it; stable keeps serving; a trip outlives weight changes
//! of its generation and ends with a new one; healthy versions do not trip
//! it; and without a guard nothing changes.

use std::time::{Duration, Instant};

use canary_config::stats_names::Metric;
use canary_e2e::setup::{filter_config, served_by, Rig};
use canary_lab::envoy::{Delivery, PushOutcome};
use canary_lab::load::{LoadGenerator, LoadPlan, Summary};
use serde_json::{json, Value};

const WORKERS: u32 = 2;
/// Requests per second through Envoy, and the canary's share: the target
/// the guard was designed for (10% of 200 requests per second).
const RATE: f64 = 200.0;

/// Entry `app` with a guard, and the controller's split at `weight` percent
/// in `generation`.
fn guarded(weight: f64, generation: u64) -> Value {
    let mut config = filter_config(0.0, json!({ "guard": {} }));
    config["splits"] = json!({
        "app": { "stable": "v1", "canary": "v2", "canary_weight": weight, "generation": generation }
    });
    config
}

fn gauge(metric: Metric, version: &str) -> String {
    metric.envoy_name("app", version)
}

async fn two_worker_rig(config: &Value) -> Rig {
    Rig::start_with(Delivery::Ecds, config, |spec| {
        spec.concurrency = WORKERS;
    })
    .await
}

/// Load at [`RATE`] spread over connections held by every worker.
struct Load(Vec<LoadGenerator>);

impl Load {
    async fn start(rig: &Rig) -> Load {
        let clients = rig.clients_on_every_worker(WORKERS).await;
        let rate = RATE / clients.len() as f64;
        Load(
            clients
                .into_iter()
                .map(|client| LoadGenerator::start(client, LoadPlan::at_rate(rate)))
                .collect(),
        )
    }

    async fn stop(self) -> Summary {
        let mut records = Vec::new();
        for generator in self.0 {
            records.extend(generator.stop().await.records);
        }
        Summary { records }
    }
}

/// Connections each worker accepted on the ingress listener.
async fn connections_by_worker(rig: &Rig) -> Vec<u64> {
    let counters = rig.envoy.counters().await.unwrap_or_default();
    (0..WORKERS)
        .map(|w| {
            let suffix = format!(".worker_{w}.downstream_cx_total");
            counters
                .iter()
                .filter(|(name, _)| {
                    name.starts_with("listener.127.0.0.1_") && name.ends_with(&suffix)
                })
                .map(|(_, value)| *value)
                .sum()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_failing_every_request_is_cut_off_within_a_few_requests() {
    let mut rig = two_worker_rig(&guarded(10.0, 1)).await;
    let load = Load::start(&rig).await;
    // Healthy first: both versions serve, nothing trips.
    let canary_warm = rig.canary.served();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        rig.canary.served() > canary_warm,
        "the canary got no traffic"
    );
    rig.wait_counters(&[
        (gauge(Metric::GuardTripped, "v2"), 0),
        (gauge(Metric::EffectiveWeight, "v2"), 1_000),
    ])
    .await;

    // Onset: from now on the canary answers 503 to everything.
    rig.canary.set_error_rate(1.0);
    let onset = Instant::now();
    let served_at_onset = rig.canary.served();
    let took = rig
        .wait_value(
            &gauge(Metric::GuardTripped, "v2"),
            1,
            Duration::from_secs(20),
        )
        .await;
    let at_trip = rig.canary.served() - served_at_onset;
    // Keep the load running: no canary request after the trip.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let past_onset = rig.canary.served() - served_at_onset;
    let summary = load.stop().await;

    println!(
        "guard: {past_onset} canary requests past onset ({at_trip} when the gauge showed the trip, \
         {took:?} after onset, {:?} in all); connections by worker: {:?}",
        onset.elapsed(),
        connections_by_worker(&rig).await,
    );
    assert!(
        past_onset <= 20,
        "{past_onset} canary requests past onset (the design bound is 10)"
    );
    assert_eq!(past_onset, rig.canary.served_errors(), "only failures");
    assert_eq!(
        summary.failed() as u64,
        past_onset,
        "stable failed requests too"
    );
    assert!(summary.by_version().get("v1").copied().unwrap_or(0) > 200);

    // What the proxy shows: the configured split, the split in force, the
    // trip (counted once for the Envoy), the generation.
    rig.wait_counters(&[
        (gauge(Metric::Weight, "v2"), 1_000),
        (gauge(Metric::Weight, "v1"), 9_000),
        (gauge(Metric::EffectiveWeight, "v2"), 0),
        (gauge(Metric::EffectiveWeight, "v1"), 10_000),
        (gauge(Metric::GuardTripped, "v2"), 1),
        (gauge(Metric::GuardTripped, "v1"), 0),
        (gauge(Metric::GuardTrips, "v2"), 1),
        (gauge(Metric::Generation, "v2"), 1),
    ])
    .await;
    let log = rig.envoy.log();
    let trips: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("guard tripped on route \"app\""))
        .collect();
    assert_eq!(trips.len(), 1, "one log line per trip:\n{log}");
    println!("{}", trips[0]);

    // A weight step in the same generation does not undo the trip.
    rig.canary.set_error_rate(0.0);
    let outcome = rig
        .envoy
        .push_and_wait(&guarded(25.0, 1).to_string(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Applied);
    assert_eq!(served_by(&rig.send_plain(200).await, "v1"), 200);
    rig.wait_counters(&[
        (gauge(Metric::Weight, "v2"), 2_500),
        (gauge(Metric::EffectiveWeight, "v2"), 0),
        (gauge(Metric::GuardTripped, "v2"), 1),
    ])
    .await;

    // A new generation (a retry) starts clean.
    let outcome = rig
        .envoy
        .push_and_wait(&guarded(25.0, 2).to_string(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Applied);
    rig.wait_counters(&[
        (gauge(Metric::GuardTripped, "v2"), 0),
        (gauge(Metric::EffectiveWeight, "v2"), 2_500),
        (gauge(Metric::Generation, "v2"), 2),
    ])
    .await;
    let replies = rig.send_plain(400).await;
    assert!(
        served_by(&replies, "v2") > 40,
        "the canary gets traffic again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_versions_do_not_trip_it() {
    let rig = two_worker_rig(&guarded(50.0, 1)).await;
    // Both fail 5% of requests: the baseline the guard is built for.
    rig.stable.set_error_rate(0.05);
    rig.canary.set_error_rate(0.05);
    let load = Load::start(&rig).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let summary = load.stop().await;
    let by_version = summary.by_version();
    assert!(
        by_version.get("v2").copied().unwrap_or(0) > 300,
        "{by_version:?}"
    );
    rig.wait_counters(&[
        (gauge(Metric::GuardTripped, "v2"), 0),
        (gauge(Metric::GuardTrips, "v2"), 0),
        (gauge(Metric::EffectiveWeight, "v2"), 5_000),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_guard_nothing_changes() {
    let rig = Rig::start_with(Delivery::Inline, &filter_config(100.0, json!({})), |spec| {
        spec.concurrency = WORKERS;
    })
    .await;
    rig.canary.set_error_rate(1.0);
    let replies = rig.send_plain(200).await;
    assert_eq!(replies.iter().filter(|r| r.status == 503).count(), 200);
    assert_eq!(rig.canary.served_errors(), 200);
    let counters = rig
        .wait_counters(&[
            (gauge(Metric::EffectiveWeight, "v2"), 10_000),
            (gauge(Metric::Generation, "v2"), 0),
        ])
        .await;
    assert!(
        !counters.contains_key(&gauge(Metric::GuardTripped, "v2")),
        "guard metrics without a guard"
    );
}
