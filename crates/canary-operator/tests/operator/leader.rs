//! Leader election on the Lease the shipped RBAC allows: an instance that
//! does not hold the lease does nothing; a stale lease is taken over, a
//! conflicting write loses the race; the new leader resumes every rollout
//! from its status, never from step 1.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canary_analysis::Timestamp;
use canary_operator::leader::{LeaderElector, Leadership, LeaseSettings};
use canary_operator::operator::{run, OperatorError, OperatorSettings, WatchScope};
use canary_rollout::fixtures::FakeFleet;
use canary_rollout::ports::{Clock, SystemClock};
use canary_test_apiserver::status::About;
use canary_test_apiserver::{ApiStatus, RequestMatch, TestApiServer};
use serde_json::json;

use crate::support::{context, controller, healthy, phase, rollout, server, step, weight, Cluster};

const LIMIT: Duration = Duration::from_secs(30);

/// 2026-01-01T10:00:00Z.
const T0: u64 = 1_767_261_600_000;

struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// The leader lease as stored.
fn lease(server: &TestApiServer) -> serde_json::Value {
    server
        .object(
            "coordination.k8s.io/v1",
            "Lease",
            "canary-system",
            "canary-controller",
        )
        .expect("the lease")
}

fn settings(identity: &str) -> LeaseSettings {
    LeaseSettings::new("canary-system", "canary-controller", identity)
}

#[tokio::test]
async fn a_stale_lease_is_taken_over_after_losing_a_conflicting_write() {
    let server = server().await;
    let clock = Arc::new(ManualClock(AtomicU64::new(T0)));
    let client = server.client(&controller()).unwrap();
    let mut a = LeaderElector::new(
        client.clone(),
        settings("canary-controller-a"),
        clock.clone(),
    );
    let mut b = LeaderElector::new(client, settings("canary-controller-b"), clock.clone());

    assert_eq!(a.try_acquire_or_renew().await.unwrap(), Leadership::Leading);
    let following_a = Leadership::Following {
        holder: "canary-controller-a".into(),
    };
    assert_eq!(b.try_acquire_or_renew().await.unwrap(), following_a);
    clock.0.store(T0 + 14_999, Ordering::SeqCst);
    assert_eq!(b.try_acquire_or_renew().await.unwrap(), following_a);

    // A stopped renewing: the lease is stale by B's clock, but B's
    // takeover meets a conflicting write and B keeps following.
    clock.0.store(T0 + 15_000, Ordering::SeqCst);
    server.fail_next(
        RequestMatch::new("update", "leases").named("canary-controller"),
        ApiStatus::conflict(About {
            group: "coordination.k8s.io",
            plural: "leases",
            name: "canary-controller",
        }),
    );
    assert!(matches!(
        b.try_acquire_or_renew().await.unwrap(),
        Leadership::Following { .. }
    ));
    assert_eq!(b.try_acquire_or_renew().await.unwrap(), Leadership::Leading);

    // A, back, finds B holding the lease.
    assert_eq!(
        a.try_acquire_or_renew().await.unwrap(),
        Leadership::Following {
            holder: "canary-controller-b".into()
        }
    );
    let lease = lease(&server);
    assert_eq!(lease["spec"]["holderIdentity"], "canary-controller-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    for request in server.requests_by(&controller()) {
        assert!(request.allowed(), "{} was refused", request.describe());
    }
}

/// Runs an operator instance with leader election until `stop` fires.
fn instance(
    cluster: &Cluster,
    identity: &str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), OperatorError>>,
) {
    let ctx = context(&cluster.server, &cluster.fleet, &cluster.metrics, identity);
    let settings = OperatorSettings {
        scope: WatchScope::Namespace("shop".into()),
        lease: Some(LeaseSettings {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_millis(1500),
            retry_period: Duration::from_millis(100),
            ..settings(identity)
        }),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(ctx, settings, async {
        let _ = stopped.await;
    }));
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_resumes_the_rollout_from_its_status() {
    let fleet = FakeFleet::new(&["web".to_owned()], "web-v1", 2).with_clock(Arc::new(SystemClock));
    let cluster = Cluster::prepare(
        rollout(json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}])),
        healthy(),
        fleet,
    )
    .await;
    let (stop_a, a) = instance(&cluster, "canary-controller-a");
    cluster
        .until("paused at 10%", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 10.0
        })
        .await;

    // B waits while A leads.
    let (stop_b, b) = instance(&cluster, "canary-controller-b");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b.is_finished());
    let pushes_by_a = cluster.pushes().len();

    // A stops (releasing the lease); B takes over and resumes.
    let _ = stop_a.send(());
    a.await.unwrap().unwrap();
    cluster.command("promote").await;
    let status = cluster
        .until("B moved the rollout on", LIMIT, |s| {
            phase(s) == "Paused" && weight(s) == 50.0
        })
        .await;
    assert_eq!(step(&status), 3);
    let after: Vec<f64> = cluster.pushes()[pushes_by_a..].to_vec();
    assert!(
        after.iter().all(|w| *w == 10.0 || *w == 50.0),
        "the new leader never restarted from step 1: {after:?}"
    );
    assert_eq!(
        lease(&cluster.server)["spec"]["holderIdentity"],
        "canary-controller-b"
    );
    let _ = stop_b.send(());
    b.await.unwrap().unwrap();
    cluster.assert_every_call_allowed();
}
