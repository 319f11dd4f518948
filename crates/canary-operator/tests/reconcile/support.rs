//! Objects as the API server sends them, the scripted exchanges of a
//! reconcile, and a context pointed at the fake.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canary_analysis::{SecretKeyRef, Timestamp};
use canary_kube::client_for_url;
use canary_kube::fake_apiserver::{CannedResponse, Exchange, FakeApiServer, RecordedRequest};
use canary_operator::convert::{rollout_spec, TemplateKey, TemplateObject};
use canary_operator::events::EventRecorder;
use canary_operator::reconcile::{reconcile_rollout, rollout_revision, Context, PushLocks, Timing};
use canary_operator::resource::{CanaryRollout, CanaryRolloutStatus};
use canary_operator::workload::WorkloadView;
use canary_rollout::ports::Clock;
use canary_rollout::{Rollout, RolloutSpec};
use canary_sources::http::HttpClient;
use canary_sources::Sources;
use serde_json::{json, Value};

/// When the scenarios start: 2026-01-01T10:00:00Z.
pub const T0: u64 = 1_767_261_600_000;

pub const STABLE_PATH: &str = "/apis/apps/v1/namespaces/shop/deployments/web-v1";
pub const CANARY_PATH: &str = "/apis/apps/v1/namespaces/shop/deployments/web-v2";
pub const TEMPLATE_PATH: &str =
    "/apis/argoproj.io/v1alpha1/namespaces/shop/analysistemplates/pod-health";
pub const PLUGIN_PATH: &str =
    "/apis/extensions.istio.io/v1alpha1/namespaces/shop/wasmplugins/canary";
pub const STATUS_PATH: &str = "/apis/canary.dev/v1alpha1/namespaces/shop/canaryrollouts/web/status";
pub const ROLLOUT_PATH: &str = "/apis/canary.dev/v1alpha1/namespaces/shop/canaryrollouts/web";
pub const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";
pub const PODS_TARGET: &str =
    "/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb%2Cversion%3Dweb-v2";

/// A clock the test moves.
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn at(millis: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(millis)))
    }

    pub fn set(&self, millis: u64) {
        self.0.store(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// The rollout `shop/web`: web-v1 → web-v2 through the WasmPlugin
/// `shop/canary`, with `steps`.
pub fn rollout_spec_json(steps: Value) -> Value {
    json!({
        "target": {"kind": "WasmPlugin", "name": "canary"},
        "stableWorkload": "web-v1",
        "canaryWorkload": "web-v2",
        "routes": ["web"],
        "stableVersion": "web-v1",
        "canaryVersion": "web-v2",
        "steps": steps
    })
}

/// The rollout object as the watch delivers it.
pub fn rollout_object(spec: &Value, status: Option<&CanaryRolloutStatus>) -> CanaryRollout {
    let mut object = json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": "web", "namespace": "shop", "uid": "uid-web",
                     "generation": 1, "resourceVersion": "100"},
        "spec": spec,
    });
    if let Some(status) = status {
        object["status"] = serde_json::to_value(status).unwrap();
    }
    serde_json::from_value(object).unwrap()
}

/// The template `pod-health`: one readiness measurement, which fails below
/// half the canary's pods ready.
pub fn template_json() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "pod-health", "namespace": "shop", "uid": "uid-t", "resourceVersion": "7"},
        "spec": {
            "metrics": [{
                "name": "pod-readiness",
                "successCondition": "result >= 0.5",
                "provider": {"kubernetes": {"selector": "app=web,version=web-v2", "quantity": "ready-ratio"}}
            }]
        }
    })
}

/// A Deployment of the `web` app: `replicas` wanted, `ready` of them
/// updated and ready, spec `generation` seen up to `observed`.
pub fn deployment(
    name: &str,
    image: &str,
    replicas: i64,
    ready: i64,
    generation: i64,
    observed: i64,
) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "generation": generation,
                     "resourceVersion": format!("rv-{name}-{generation}")},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web", "version": name}},
            "template": {
                "metadata": {"labels": {"app": "web", "version": name}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            }
        },
        "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": ready,
                   "readyReplicas": ready, "availableReplicas": ready}
    })
}

/// The filter configuration with the canary at `weight` percent (`None`:
/// no canary, everything to `stable`).
pub fn plugin_config(stable: &str, canary: Option<(&str, u32)>) -> Value {
    let mut route = json!({
        "name": "web",
        "match": {"hosts": ["web.shop.svc.cluster.local"]},
        "stable": stable,
    });
    match canary {
        Some((canary, weight)) => {
            route["canary"] = json!(canary);
            route["canary_weight"] = json!(weight);
        }
        None => route["canary_weight"] = json!(0),
    }
    json!({"routing_header": "x-canary-version", "routes": [route]})
}

/// The WasmPlugin `shop/canary` holding `config`.
pub fn wasm_plugin(config: &Value) -> Value {
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": "canary", "namespace": "shop", "resourceVersion": "500", "generation": 3},
        "spec": {
            "url": "oci://registry.example/canary-filter:0.1.0",
            "sha256": "ab".repeat(32),
            "failStrategy": "FAIL_OPEN",
            "pluginConfig": config
        }
    })
}

pub fn get(path: &str, body: &Value) -> Exchange {
    Exchange::new("GET", path, CannedResponse::json(200, body))
}

pub fn get_plugin(config: &Value) -> Exchange {
    get(PLUGIN_PATH, &wasm_plugin(config))
}

/// The apply of `config`, answered with the object holding it.
pub fn apply_plugin(config: &Value) -> Exchange {
    Exchange::new(
        "PATCH",
        &format!("{PLUGIN_PATH}?fieldManager=canary-controller.split.web&force=true"),
        CannedResponse::json(200, &wasm_plugin(config)),
    )
}

/// A status write, answered with `resource_version`.
pub fn put_status(resource_version: &str) -> Exchange {
    Exchange::new(
        "PUT",
        STATUS_PATH,
        CannedResponse::json(
            200,
            &json!({
                "apiVersion": "canary.dev/v1alpha1",
                "kind": "CanaryRollout",
                "metadata": {"name": "web", "namespace": "shop", "resourceVersion": resource_version},
            }),
        ),
    )
}

/// `count` event creations.
pub fn post_events(count: usize) -> Vec<Exchange> {
    (0..count)
        .map(|_| {
            Exchange::new(
                "POST",
                EVENTS_PATH,
                CannedResponse::json(
                    201,
                    &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}}),
                ),
            )
        })
        .collect()
}

/// A merge patch of the Deployment at `path`.
pub fn patch_deployment(path: &str, answer: &Value) -> Exchange {
    Exchange::new(
        "PATCH",
        &format!("{path}?fieldManager=canary-controller"),
        CannedResponse::json(200, answer),
    )
}

/// The canary's pods: `ready` of `total` ready.
pub fn pods(ready: usize, total: usize) -> Exchange {
    let items: Vec<Value> = (0..total)
        .map(|i| {
            json!({
                "metadata": {"name": format!("web-v2-{i}"), "namespace": "shop",
                             "labels": {"app": "web", "version": "web-v2"}},
                "spec": {"containers": [{"name": "web", "image": "web:2"}]},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": if i < ready { "True" } else { "False" }}]}
            })
        })
        .collect();
    Exchange::new(
        "GET",
        PODS_TARGET,
        CannedResponse::json(
            200,
            &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}),
        ),
    )
}

/// The engine's spec for `spec` (with `pod-health`), as the reconciler
/// makes it.
pub fn engine_spec(spec: &Value) -> Arc<RolloutSpec> {
    let object = rollout_object(spec, None);
    let template = TemplateObject {
        key: TemplateKey {
            name: "pod-health".into(),
            cluster_scope: false,
        },
        object: template_json(),
    };
    let none = |_: &SecretKeyRef| None;
    Arc::new(rollout_spec("web", "shop", &object.spec, &[template], &none).unwrap())
}

/// The status of a rollout the controller saved while running `rollout`
/// for the canary Deployment `canary`.
pub fn saved_status(spec: &Value, rollout: &Rollout, canary: &Value) -> CanaryRolloutStatus {
    let object = rollout_object(spec, None);
    let view = WorkloadView::from_object(canary).unwrap();
    CanaryRolloutStatus {
        canary_revision: Some(rollout_revision(&object.spec, &view)),
        state: Some(serde_json::to_value(rollout.state()).unwrap()),
        ..CanaryRolloutStatus::default()
    }
}

/// A fake playing `script`, and a reconcile context pointed at it.
pub async fn fake_and_context(
    script: Vec<Exchange>,
    clock: Arc<ManualClock>,
) -> (FakeApiServer, Context) {
    canary_kube::install_crypto_provider();
    let fake = FakeApiServer::start(script).await.unwrap();
    let client = client_for_url(fake.url()).unwrap();
    let context = Context {
        events: EventRecorder::new(client.clone(), "canary-controller-0"),
        providers: Sources {
            http: HttpClient::new().unwrap(),
            envoy: None,
            prometheus_url: None,
            kubernetes: None,
        },
        clock,
        push_locks: PushLocks::default(),
        timing: Timing::default(),
        client,
    };
    (fake, context)
}

/// Runs one reconcile of `object` against `script`.
pub async fn reconcile(
    object: &CanaryRollout,
    script: Vec<Exchange>,
    clock: Arc<ManualClock>,
) -> (FakeApiServer, Duration) {
    let (fake, context) = fake_and_context(script, clock).await;
    let requeue = reconcile_rollout(object, &context)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "reconcile failed: {error}\nrequests: {:#?}",
                summary(&fake.requests())
            )
        });
    (fake, requeue)
}

/// `METHOD path?query` of each request, for comparing sequences.
pub fn summary(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| match &r.query {
            Some(query) => format!("{} {}?{}", r.method, r.path, query.trim_start_matches('&')),
            None => format!("{} {}", r.method, r.path),
        })
        .collect()
}

/// The requests as `METHOD path`, query left out.
pub fn calls(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// The `reason` of each event created, in order.
pub fn event_reasons(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == EVENTS_PATH)
        .map(|r| {
            r.body_json().unwrap()["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// The statuses written, in order.
pub fn statuses(requests: &[RecordedRequest]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path == STATUS_PATH)
        .map(|r| r.body_json().unwrap())
        .collect()
}

/// The last status written, as the next reconcile reads it.
pub fn last_status(requests: &[RecordedRequest]) -> CanaryRolloutStatus {
    let written = statuses(requests);
    let last = written.last().expect("a status was written");
    serde_json::from_value(last["status"].clone()).unwrap()
}

/// The condition `type_` of a written status body: (status, reason).
pub fn condition(body: &Value, type_: &str) -> (String, String) {
    let found = body["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no condition {type_} in {body}"));
    (
        found["status"].as_str().unwrap().to_owned(),
        found["reason"].as_str().unwrap().to_owned(),
    )
}

/// Asserts that nothing scripted was left unasked.
pub fn assert_script_played(fake: &FakeApiServer) {
    assert!(
        fake.unused_exchanges().is_empty(),
        "expected but not sent: {:#?}\nsent: {:#?}",
        fake.unused_exchanges(),
        summary(&fake.requests())
    );
}
