//! The mesh reading against a real Prometheus (the Debian package's
//! `prometheus`): it scrapes three stand-in proxies on loopback, each
//! labelled with its namespace and pod as the shipped scrape job does, and
//! the three queries read the filter's gauges, their sample times and
//! `up` back. This checks the queries' syntax and labels against
//! Prometheus itself, which the fake in canary-router cannot.

use std::process::Stdio;
use std::time::Duration;

use canary_analysis::Timestamp;
use canary_kube::ProxyPod;
use canary_rollout::driver::Shows;
use canary_sources::http::HttpClient;
use canary_sources::mesh::{observation, MeshGauges};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `body` as Prometheus' text format on a loopback port.
async fn exporter(body: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

const SPLIT_10: &str = "# TYPE canary_weight_bp gauge
canary_weight_bp{route=\"web\",version=\"web-v1\"} 9000
canary_weight_bp{route=\"web\",version=\"web-v2\"} 1000
canary_weight_bp{route=\"other\",version=\"x\"} 10000
# TYPE canary_generation gauge
canary_generation{route=\"web\",version=\"web-v1\"} 4
canary_generation{route=\"web\",version=\"web-v2\"} 4
# TYPE canary_guard_tripped gauge
canary_guard_tripped{route=\"web\",version=\"web-v2\"} 0
";

const OLD_SPLIT: &str = "# TYPE canary_weight_bp gauge
canary_weight_bp{route=\"web\",version=\"web-v1\"} 10000
canary_weight_bp{route=\"web\",version=\"web-v2\"} 0
";

const NO_FILTER: &str = "# TYPE envoy_server_live gauge
envoy_server_live 1
";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pod(name: &str, terminating: bool) -> ProxyPod {
    ProxyPod {
        namespace: "istio-system".into(),
        name: name.into(),
        terminating,
    }
}

#[tokio::test]
async fn the_queries_read_a_real_prometheus() {
    let binary = std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let targets = [
        ("gw-a", exporter(SPLIT_10).await),
        ("gw-b", exporter(NO_FILTER).await),
        ("gw-old", exporter(OLD_SPLIT).await),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::from(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: canary-proxies\n    metric_relabel_configs:\n      - source_labels: [__name__]\n        action: keep\n        regex: canary_.*\n    static_configs:\n",
    );
    for (pod, port) in targets {
        config.push_str(&format!(
            "      - targets: ['127.0.0.1:{port}']\n        labels: {{namespace: istio-system, pod: {pod}}}\n"
        ));
    }
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = free_port();
    let mut prometheus = tokio::process::Command::new(&binary)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot start {binary} ({error}); install it with `apt-get install prometheus` (make setup does) or set PROMETHEUS")
        });

    let gauges = MeshGauges::new(
        HttpClient::new().unwrap(),
        &format!("http://127.0.0.1:{port}"),
    );
    let routes = vec!["web".to_owned()];
    let namespaces = vec!["istio-system".to_owned()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last: String;
    let reading = loop {
        match gauges.read(&routes, &namespaces).await {
            Ok(reading) if reading.up.len() == 3 && reading.gauges.len() == 2 => break reading,
            Ok(reading) => last = format!("{reading:?}"),
            Err(error) => last = error,
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus did not scrape the three targets within 60 s; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = prometheus.kill().await;

    let a = ("istio-system".to_owned(), "gw-a".to_owned());
    let web = &reading.gauges[&a]["web"];
    assert_eq!(web.weights["web-v1"], 9000);
    assert_eq!(web.weights["web-v2"], 1000);
    assert_eq!(web.generation, Some(4));
    assert!(!web.guard_tripped);
    assert!(
        !reading.gauges[&a].contains_key("other"),
        "only the rollout's routes"
    );
    assert!(reading.up.values().all(|up| *up));
    let now = Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    let sampled = reading.sampled_at[&a];
    assert!(
        sampled <= now && now.since(sampled) < Duration::from_secs(60),
        "{sampled:?} {now:?}"
    );

    let observed = observation(
        &[
            pod("gw-a", false),
            pod("gw-b", false),
            pod("gw-old", true),
            pod("gw-new", false),
        ],
        &reading,
        now,
    );
    let shown: Vec<(&str, bool)> = observed
        .proxies
        .iter()
        .map(|p| (p.proxy.as_str(), matches!(p.shows, Shows::Routes(_))))
        .collect();
    assert_eq!(
        shown,
        [
            ("istio-system/gw-a", true),
            ("istio-system/gw-b", false),
            ("istio-system/gw-new", false)
        ]
    );
    assert!(
        matches!(&observed.proxies[1].shows, Shows::Nothing(why) if why.starts_with("unconfirmed:"))
    );
    assert!(
        matches!(&observed.proxies[2].shows, Shows::Nothing(why) if why.starts_with("waiting:"))
    );
}
