use canary_kube::cpu::CpuAccountingError;
use canary_kube::fake_apiserver::{CannedResponse, Exchange};
use canary_kube::{ApiError, CpuReadError, NoData, Ratio, RatioReading};
use serde_json::json;

use crate::support::{
    label_selector, pod, pod_metrics, pod_metrics_answer, pods_answer, read_cpu_ratio,
    POD_METRICS_TARGET,
};

#[tokio::test]
async fn lists_pods_then_their_metrics_and_divides_usage_by_requests() {
    let mut sidecar_pod = pod("web-2", true, "500m");
    sidecar_pod["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "name": "istio-proxy",
            "resources": { "limits": { "cpu": "500m" } }
        }));

    let (fake, reading) = read_cpu_ratio(vec![
        pods_answer(vec![
            pod("web-1", true, "250m"),
            sidecar_pod,
            pod("web-3", false, "1"),
        ]),
        pod_metrics_answer(vec![
            pod_metrics("web-1", &[("app", "125000000n")]),
            pod_metrics("web-2", &[("app", "0.25"), ("istio-proxy", "250000u")]),
            pod_metrics("web-gone", &[("app", "4")]),
        ]),
    ])
    .await;

    // (125m + 250m + 250m) ÷ (250m + 500m + 500m); web-3 has no metrics yet.
    assert_eq!(
        reading.unwrap(),
        RatioReading::Measured(Ratio {
            value: 0.5,
            samples: 2
        })
    );
    let sent: Vec<_> = fake
        .requests()
        .iter()
        .map(|r| {
            let path = r.path.clone();
            (r.method.clone(), path, r.query_params(), r.body.len())
        })
        .collect();
    let get = |path: &str| ("GET".to_owned(), path.to_owned(), vec![label_selector()], 0);
    assert_eq!(
        sent,
        [
            get("/api/v1/namespaces/shop/pods"),
            get("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods"),
        ]
    );
    assert!(fake.unused_exchanges().is_empty());
}

#[tokio::test]
async fn no_pods_is_no_data_without_asking_for_metrics() {
    let (fake, reading) = read_cpu_ratio(vec![pods_answer(vec![])]).await;

    assert_eq!(reading.unwrap(), RatioReading::NoData(NoData::NoPods));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn no_metrics_for_the_pods_is_no_data() {
    let (fake, reading) = read_cpu_ratio(vec![
        pods_answer(vec![pod("web-1", true, "1")]),
        pod_metrics_answer(vec![]),
    ])
    .await;

    assert_eq!(
        reading.unwrap(),
        RatioReading::NoData(NoData::NoPodMetrics { pods: 1 })
    );
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_pod_without_request_or_limit_is_reported_by_name() {
    let mut unbounded = pod("web-1", true, "1");
    unbounded["spec"]["containers"][0]["resources"] = json!({});

    let (_fake, reading) = read_cpu_ratio(vec![
        pods_answer(vec![unbounded]),
        pod_metrics_answer(vec![pod_metrics("web-1", &[("app", "1")])]),
    ])
    .await;

    assert!(matches!(
        &reading.unwrap_err(),
        CpuReadError::Accounting(CpuAccountingError::NoCpuRequest { pod, container })
            if pod == "web-1" && container == "app"
    ));
}

#[tokio::test]
async fn a_missing_metrics_api_is_a_not_found_naming_it() {
    let (_fake, reading) = read_cpu_ratio(vec![
        pods_answer(vec![pod("web-1", true, "1")]),
        Exchange::new(
            "GET",
            POD_METRICS_TARGET,
            CannedResponse::status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        ),
    ])
    .await;

    let error = reading.unwrap_err();
    assert!(matches!(
        &error,
        CpuReadError::Api(ApiError::NotFound { .. })
    ));
    assert_eq!(
        error.to_string(),
        "pods.metrics.k8s.io not found in namespace \"shop\""
    );
}

#[tokio::test]
async fn metrics_that_are_not_pod_metrics_are_an_unexpected_answer() {
    let (_fake, reading) = read_cpu_ratio(vec![
        pods_answer(vec![pod("web-1", true, "1")]),
        pod_metrics_answer(vec![json!({
            "metadata": { "name": "web-1" },
            "containers": "not a list"
        })]),
    ])
    .await;

    let error = reading.unwrap_err();
    assert!(
        matches!(&error, CpuReadError::Api(ApiError::UnexpectedAnswer { .. })),
        "{error}"
    );
}
