use canary_kube::{NoData, Ratio, RatioReading};

use crate::support::{label_selector, pod, pods_answer, read_ready_ratio};

#[tokio::test]
async fn lists_the_selected_pods_once_and_counts_ready_among_live() {
    let mut terminating = pod("web-old", true, "1");
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
    let mut finished = pod("web-done", true, "1");
    finished["status"]["phase"] = "Succeeded".into();
    let mut unscheduled = pod("web-new", false, "1");
    unscheduled["status"] = serde_json::json!({ "phase": "Pending" });

    let (fake, reading) = read_ready_ratio(vec![pods_answer(vec![
        pod("web-1", true, "1"),
        pod("web-2", true, "1"),
        pod("web-3", false, "1"),
        unscheduled,
        terminating,
        finished,
    ])])
    .await;

    assert_eq!(
        reading.unwrap(),
        RatioReading::Measured(Ratio {
            value: 0.5,
            samples: 4
        })
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/api/v1/namespaces/shop/pods");
    assert_eq!(requests[0].query_params(), [label_selector()]);
    assert!(requests[0].body.is_empty());
    assert!(fake.unused_exchanges().is_empty());
}

#[tokio::test]
async fn no_pods_is_no_data() {
    let (fake, reading) = read_ready_ratio(vec![pods_answer(vec![])]).await;

    assert_eq!(reading.unwrap(), RatioReading::NoData(NoData::NoPods));
    assert_eq!(fake.requests().len(), 1);
}
