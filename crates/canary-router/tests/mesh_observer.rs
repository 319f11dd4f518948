//! The mesh observer against a fake Prometheus HTTP API (instant queries
//! answered from series the test sets) and the test API server (the
//! shipped WasmPlugin and the pods it selects): each pod that should carry
//! the filter is shown, a silent one is unconfirmed and named, one not
//! scraped yet is waiting, a terminating pod's last series and pods the
//! plugin does not select are left out, and no request goes to a proxy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_kube::{PluginObject, PodReader};
use canary_rollout::driver::{compare, Comparison, Observation, Shows};
use canary_rollout::ports::SystemClock;
use canary_rollout::ports::TrafficRouter;
use canary_rollout::TrafficState;
use canary_router::mesh::{MeshObserver, MeshSettings};
use canary_router::{Observer, Router, Target};
use canary_sources::http::HttpClient;
use canary_sources::mesh::MeshGauges;
use canary_test_apiserver::{crds, TestApiServer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One series in the fake Prometheus.
#[derive(Clone)]
struct Series {
    name: &'static str,
    pod: &'static str,
    version: &'static str,
    value: u64,
}

#[derive(Default)]
struct FakeState {
    series: Vec<Series>,
    /// Pods Prometheus scrapes, and their `up`.
    up: Vec<(&'static str, u8)>,
    /// Every query asked.
    queries: Vec<String>,
}

/// Sample times the fake reports (seconds).
const SAMPLE_TIME: f64 = 1_700_000_000.5;

fn answer(state: &mut FakeState, query: &str) -> Value {
    state.queries.push(query.to_owned());
    let labels = |s: &Series| json!({"namespace": "istio-system", "pod": s.pod, "route": "web", "version": s.version});
    let result: Vec<Value> = if query.starts_with("timestamp(") {
        state
            .series
            .iter()
            .filter(|s| s.name == "canary_weight_bp")
            .map(|s| json!({"metric": labels(s), "value": [SAMPLE_TIME + 1.0, SAMPLE_TIME.to_string()]}))
            .collect()
    } else if query.starts_with("max by") {
        state
            .up
            .iter()
            .map(|(pod, up)| json!({"metric": {"namespace": "istio-system", "pod": pod}, "value": [SAMPLE_TIME, up.to_string()]}))
            .collect()
    } else {
        state
            .series
            .iter()
            .map(|s| {
                let mut metric = labels(s);
                metric["__name__"] = json!(s.name);
                json!({"metric": metric, "value": [SAMPLE_TIME, s.value.to_string()]})
            })
            .collect()
    };
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

/// A Prometheus HTTP API on loopback answering `/api/v1/query`.
async fn fake_prometheus(state: Arc<Mutex<FakeState>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let target = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                let body = if path == "/api/v1/query" {
                    let promql = form_urlencoded::parse(query.as_bytes())
                        .find(|(k, _)| k == "query")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    answer(&mut state.lock().unwrap(), &promql).to_string()
                } else {
                    json!({"status": "error", "error": format!("no {path}")}).to_string()
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    address
}

fn pod(name: &str, labels: Value, phase: &str, terminating: bool) -> Value {
    let mut metadata = json!({"name": name, "namespace": "istio-system", "labels": labels});
    if terminating {
        metadata["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        metadata["finalizers"] = json!(["test/keep"]);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2"}]},
        "status": {"phase": phase}
    })
}

fn gateway() -> Value {
    json!({"istio": "ingressgateway", "app": "istio-ingressgateway"})
}

async fn cluster() -> TestApiServer {
    let server = TestApiServer::start().await.unwrap();
    server.load_yaml(crds::ISTIO_EXTENSIONS).unwrap();
    server
        .seed(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
        )
        .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    server
        .load_files(&[root.join("manifests/istio/wasm-plugin.yaml")])
        .unwrap();
    for object in [
        pod("gw-a", gateway(), "Running", false),
        pod("gw-b", gateway(), "Running", false),
        pod("gw-new", gateway(), "Running", false),
        pod("gw-old", gateway(), "Running", true),
        pod("gw-starting", gateway(), "Pending", false),
        pod("other", json!({"app": "other"}), "Running", false),
    ] {
        server.seed(object).unwrap();
    }
    server
}

fn series(pod: &'static str, canary_bp: u64, generation: u64) -> Vec<Series> {
    vec![
        Series {
            name: "canary_weight_bp",
            pod,
            version: "web-v1",
            value: 10_000 - canary_bp,
        },
        Series {
            name: "canary_weight_bp",
            pod,
            version: "web-v2",
            value: canary_bp,
        },
        Series {
            name: "canary_generation",
            pod,
            version: "web-v1",
            value: generation,
        },
        Series {
            name: "canary_generation",
            pod,
            version: "web-v2",
            value: generation,
        },
    ]
}

fn observer(server: &TestApiServer, prometheus: SocketAddr) -> MeshObserver {
    MeshObserver::new(
        MeshSettings {
            plugin: PluginObject::wasm_plugin("istio-system", "canary"),
            routes: vec!["web".into()],
            root_namespace: "istio-system".into(),
            proxy_namespaces: Vec::new(),
            scrape_interval: Duration::from_secs(1),
        },
        PodReader::new(server.admin_client().unwrap()),
        MeshGauges::new(HttpClient::new().unwrap(), &format!("http://{prometheus}")),
        Arc::new(SystemClock),
    )
}

fn by_proxy(observation: &Observation) -> BTreeMap<String, Shows> {
    observation
        .proxies
        .iter()
        .map(|p| (p.proxy.clone(), p.shows.clone()))
        .collect()
}

fn intended(percent: f64) -> TrafficState {
    TrafficState {
        canary_weight: canary_config::Weight::from_percent(percent).unwrap(),
        ..TrafficState::initial("web-v1", "web-v2")
    }
}

#[tokio::test]
async fn the_mesh_is_read_from_prometheus_against_the_plugins_pods() {
    let server = cluster().await;
    let state = Arc::new(Mutex::new(FakeState::default()));
    let prometheus = fake_prometheus(state.clone()).await;
    {
        let mut fake = state.lock().unwrap();
        fake.series.extend(series("gw-a", 1000, 4));
        // The terminating pod still shows the old split; the pod the
        // plugin does not select shows something else entirely.
        fake.series.extend(series("gw-old", 0, 3));
        fake.series.extend(series("other", 9000, 1));
        fake.up = vec![("gw-a", 1), ("gw-b", 1), ("gw-old", 1), ("other", 1)];
    }
    let observer = observer(&server, prometheus);

    let observed = observer.read().await;
    let shown = by_proxy(&observed);
    assert_eq!(
        shown.keys().collect::<Vec<_>>(),
        [
            "istio-system/gw-a",
            "istio-system/gw-b",
            "istio-system/gw-new"
        ],
        "terminating, starting and unselected pods are not proxies to wait for"
    );
    let Shows::Routes(routes) = &shown["istio-system/gw-a"] else {
        panic!("{shown:?}")
    };
    assert_eq!(routes["web"].weights["web-v2"], 1000);
    assert_eq!(routes["web"].generation, Some(4));
    assert!(
        matches!(&shown["istio-system/gw-b"], Shows::Nothing(why) if why.starts_with("unconfirmed: Prometheus scrapes istio-system/gw-b")),
        "{shown:?}"
    );
    assert!(
        matches!(&shown["istio-system/gw-new"], Shows::Nothing(why) if why.starts_with("waiting: Prometheus has not scraped istio-system/gw-new")),
        "{shown:?}"
    );
    assert_eq!(observed.at.millis(), (SAMPLE_TIME * 1000.0) as u64);
    let routes = vec!["web".to_owned()];
    assert!(matches!(
        compare(&observed, &routes, &intended(10.0), 4, "web-v2"),
        Comparison::Unknown(_)
    ));

    // Once every pod reports the split, it is in force.
    {
        let mut fake = state.lock().unwrap();
        fake.series.extend(series("gw-b", 1000, 4));
        fake.series.extend(series("gw-new", 1000, 4));
        fake.up.push(("gw-new", 1));
    }
    let observed = observer.read().await;
    assert_eq!(observed.proxies.len(), 3);
    assert_eq!(
        compare(&observed, &routes, &intended(10.0), 4, "web-v2"),
        Comparison::InForce
    );

    // Only Prometheus was asked: three instant queries per reading, on
    // the rollout's route and the pods' namespace.
    let queries = state.lock().unwrap().queries.clone();
    assert_eq!(queries.len(), 6);
    assert!(
        queries
            .iter()
            .all(|q| q.contains("namespace=~\"istio-system\"")),
        "{queries:?}"
    );
}

#[tokio::test]
async fn the_router_observes_in_the_background_and_scales_its_deadline() {
    let server = cluster().await;
    let state = Arc::new(Mutex::new(FakeState::default()));
    let prometheus = fake_prometheus(state.clone()).await;
    let observer = observer(&server, prometheus);
    let router = Router {
        target: Target::DryRun(
            canary_router::dry_run::DryRun::default(),
            canary_config::parse_document(
                br#"{"routes":[{"name":"web","match":{"hosts":["*"]},"stable":"web-v1"}]}"#,
            )
            .unwrap(),
        ),
        observer: Observer::Mesh(observer),
    };
    assert!(router.observed());
    assert_eq!(router.verify_deadline(), Duration::from_secs(60));
    // The first call starts a reading and answers at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let observed = loop {
        if let Some(observed) = router.observe().await {
            break observed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reading within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(observed.proxies.len(), 3);
    assert!(observed
        .proxies
        .iter()
        .all(|p| matches!(&p.shows, Shows::Nothing(why) if why.starts_with("waiting:"))));

    let slow = MeshObserver::new(
        MeshSettings {
            scrape_interval: Duration::from_secs(30),
            ..observer_settings()
        },
        PodReader::new(server.admin_client().unwrap()),
        MeshGauges::new(HttpClient::new().unwrap(), "http://127.0.0.1:1"),
        Arc::new(SystemClock),
    );
    assert_eq!(slow.verify_deadline(), Duration::from_secs(300));
}

fn observer_settings() -> MeshSettings {
    MeshSettings {
        plugin: PluginObject::wasm_plugin("istio-system", "canary"),
        routes: vec!["web".into()],
        root_namespace: "istio-system".into(),
        proxy_namespaces: Vec::new(),
        scrape_interval: Duration::from_secs(1),
    }
}
