//! Leader election against a fake API server: a second instance does
//! nothing while another holds the lease, takes it over only once the
//! holder stopped renewing it (by its own clock), and wins or loses races
//! by the lease's resourceVersion.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canary_analysis::Timestamp;
use canary_kube::client_for_url;
use canary_kube::fake_apiserver::{CannedResponse, Exchange, FakeApiServer, RecordedRequest};
use canary_operator::events::EventRecorder;
use canary_operator::leader::{LeaderElector, Leadership, LeaseSettings};
use canary_operator::operator::{run, OperatorSettings, WatchScope};
use canary_operator::reconcile::{Context, PushLocks, Timing};
use canary_rollout::ports::Clock;
use canary_sources::http::HttpClient;
use canary_sources::Sources;
use serde_json::{json, Value};

const LEASE_PATH: &str =
    "/apis/coordination.k8s.io/v1/namespaces/canary-system/leases/canary-controller";
const LEASES_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/canary-system/leases";
/// 2026-01-01T10:00:00Z.
const T0: u64 = 1_767_261_600_000;

struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock(AtomicU64::new(T0)))
}

fn settings(identity: &str, retry: Duration) -> LeaseSettings {
    LeaseSettings {
        retry_period: retry,
        ..LeaseSettings::new("canary-system", "canary-controller", identity)
    }
}

/// The lease as the API server returns it.
fn lease(holder: &str, renew_time: &str, transitions: i32, resource_version: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "canary-controller", "namespace": "canary-system",
                     "resourceVersion": resource_version},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                 "acquireTime": "2026-01-01T09:00:00.000000Z", "renewTime": renew_time,
                 "leaseTransitions": transitions}
    })
}

fn get_lease(body: &Value) -> Exchange {
    Exchange::new("GET", LEASE_PATH, CannedResponse::json(200, body))
}

async fn start_elector(
    script: Vec<Exchange>,
    clock: Arc<ManualClock>,
) -> (FakeApiServer, LeaderElector) {
    canary_kube::install_crypto_provider();
    let fake = FakeApiServer::start(script).await.unwrap();
    let client = client_for_url(fake.url()).unwrap();
    let elector = LeaderElector::new(
        client,
        settings("canary-controller-a", Duration::from_secs(2)),
        clock,
    );
    (fake, elector)
}

fn calls(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Waits until the fake has received `count` requests, failing after a
/// deadline.
async fn received(fake: &FakeApiServer, count: usize) -> Vec<RecordedRequest> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let requests = fake.requests();
        if requests.len() >= count {
            return requests;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} requests arrived: {:#?}",
            requests.len(),
            calls(&requests)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_lease_held_by_another_instance_is_taken_over_only_once_it_went_stale() {
    let held = lease("canary-controller-b", "2026-01-01T09:59:59.000000Z", 2, "9");
    let taken = lease(
        "canary-controller-a",
        "2026-01-01T10:00:15.000000Z",
        3,
        "10",
    );
    let clock = clock();
    let (fake, mut elector) = start_elector(
        vec![
            get_lease(&held),
            get_lease(&held),
            get_lease(&held),
            Exchange::new("PUT", LEASE_PATH, CannedResponse::json(200, &taken)),
        ],
        clock.clone(),
    )
    .await;

    let following = Leadership::Following {
        holder: "canary-controller-b".into(),
    };
    assert_eq!(elector.try_acquire_or_renew().await.unwrap(), following);
    clock.0.store(T0 + 14_999, Ordering::SeqCst);
    assert_eq!(elector.try_acquire_or_renew().await.unwrap(), following);
    clock.0.store(T0 + 15_000, Ordering::SeqCst);
    assert_eq!(
        elector.try_acquire_or_renew().await.unwrap(),
        Leadership::Leading
    );

    let requests = fake.requests();
    assert!(fake.unused_exchanges().is_empty());
    assert_eq!(
        calls(&requests),
        [
            format!("GET {LEASE_PATH}"),
            format!("GET {LEASE_PATH}"),
            format!("GET {LEASE_PATH}"),
            format!("PUT {LEASE_PATH}"),
        ]
    );
    let put = requests[3].body_json().unwrap();
    assert_eq!(
        put["metadata"]["resourceVersion"], "9",
        "guarded by the version read"
    );
    assert_eq!(
        put["spec"],
        json!({"holderIdentity": "canary-controller-a", "leaseDurationSeconds": 15,
               "acquireTime": "2026-01-01T10:00:15.000000Z",
               "renewTime": "2026-01-01T10:00:15.000000Z", "leaseTransitions": 3})
    );
}

#[tokio::test]
async fn a_holder_that_keeps_renewing_keeps_the_lease() {
    let clock = clock();
    let (fake, mut elector) = start_elector(
        vec![
            get_lease(&lease(
                "canary-controller-b",
                "2026-01-01T10:00:00.000000Z",
                2,
                "9",
            )),
            get_lease(&lease(
                "canary-controller-b",
                "2026-01-01T10:00:10.000000Z",
                2,
                "11",
            )),
            get_lease(&lease(
                "canary-controller-b",
                "2026-01-01T10:00:10.000000Z",
                2,
                "11",
            )),
        ],
        clock.clone(),
    )
    .await;
    for at in [0, 10_000, 20_000] {
        clock.0.store(T0 + at, Ordering::SeqCst);
        assert!(matches!(
            elector.try_acquire_or_renew().await.unwrap(),
            Leadership::Following { .. }
        ));
    }
    assert!(
        calls(&fake.requests()).iter().all(|c| c.starts_with("GET")),
        "a renewed lease is never written"
    );
}

#[tokio::test]
async fn the_first_instance_creates_the_lease_and_a_racing_one_follows() {
    let clock = clock();
    let created = lease("canary-controller-a", "2026-01-01T10:00:00.000000Z", 0, "1");
    let (fake, mut elector) = start_elector(
        vec![
            Exchange::new(
                "GET",
                LEASE_PATH,
                CannedResponse::status(404, "NotFound", "not found"),
            ),
            Exchange::new("POST", LEASES_PATH, CannedResponse::json(201, &created)),
        ],
        clock.clone(),
    )
    .await;
    assert_eq!(
        elector.try_acquire_or_renew().await.unwrap(),
        Leadership::Leading
    );
    let post = fake.requests()[1].body_json().unwrap();
    assert_eq!(post["metadata"]["name"], "canary-controller");
    assert_eq!(post["spec"]["holderIdentity"], "canary-controller-a");
    assert_eq!(post["spec"]["leaseTransitions"], 0);

    let (_racing, mut second) = start_elector(
        vec![
            Exchange::new(
                "GET",
                LEASE_PATH,
                CannedResponse::status(404, "NotFound", "not found"),
            ),
            Exchange::new(
                "POST",
                LEASES_PATH,
                CannedResponse::status(
                    409,
                    "AlreadyExists",
                    "leases \"canary-controller\" already exists",
                ),
            ),
        ],
        clock,
    )
    .await;
    assert!(matches!(
        second.try_acquire_or_renew().await.unwrap(),
        Leadership::Following { .. }
    ));
}

/// The operator's context against the fake.
fn context(client: kube::Client) -> Arc<Context> {
    Arc::new(Context {
        events: EventRecorder::new(client.clone(), "canary-controller-a"),
        providers: Sources {
            http: HttpClient::new().unwrap(),
            envoy: None,
            prometheus_url: None,
            kubernetes: None,
        },
        clock: clock(),
        push_locks: PushLocks::default(),
        timing: Timing::default(),
        client,
    })
}

#[tokio::test]
async fn a_second_instance_does_nothing_while_the_lease_is_held() {
    canary_kube::install_crypto_provider();
    let held = lease("canary-controller-b", "2026-01-01T09:59:59.000000Z", 2, "9");
    let script = (0..5).map(|_| get_lease(&held)).collect();
    let fake = FakeApiServer::start(script).await.unwrap();
    let client = client_for_url(fake.url()).unwrap();
    let settings = OperatorSettings {
        scope: WatchScope::AllNamespaces,
        lease: Some(settings("canary-controller-a", Duration::from_millis(20))),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(run(context(client), settings, async {
        let _ = stopped.await;
    }));

    let requests = received(&fake, 4).await;
    let _ = stop.send(());
    operator.await.unwrap().unwrap();

    assert!(
        calls(&requests)
            .iter()
            .all(|c| *c == format!("GET {LEASE_PATH}")),
        "only the lease is read: {:#?}",
        calls(&requests)
    );
    assert!(
        !calls(&fake.requests())
            .iter()
            .any(|c| c.contains("canaryrollouts")),
        "no rollout was listed, watched or written"
    );
}

#[tokio::test]
async fn the_instance_that_wins_the_lease_starts_watching_rollouts() {
    canary_kube::install_crypto_provider();
    let created = lease("canary-controller-a", "2026-01-01T10:00:00.000000Z", 0, "1");
    let fake = FakeApiServer::start(vec![
        Exchange::new(
            "GET",
            LEASE_PATH,
            CannedResponse::status(404, "NotFound", "not found"),
        ),
        Exchange::new("POST", LEASES_PATH, CannedResponse::json(201, &created)),
    ])
    .await
    .unwrap();
    let client = client_for_url(fake.url()).unwrap();
    let settings = OperatorSettings {
        scope: WatchScope::Namespace("shop".into()),
        lease: Some(settings("canary-controller-a", Duration::from_secs(60))),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(run(context(client), settings, async {
        let _ = stopped.await;
    }));

    let requests = received(&fake, 3).await;
    let _ = stop.send(());
    operator.await.unwrap().unwrap();

    assert_eq!(
        calls(&requests[..3]),
        [
            format!("GET {LEASE_PATH}"),
            format!("POST {LEASES_PATH}"),
            "GET /apis/canary.dev/v1alpha1/namespaces/shop/canaryrollouts".to_owned(),
        ]
    );
}
