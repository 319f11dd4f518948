//! The fake itself: it answers only the request it expects next.

use canary_kube::fake_apiserver::{CannedResponse, Exchange, FakeApiServer};
use canary_kube::{ApiError, PodReader};

use crate::support::{canary_pods, fake_with_client, pod_list, pods_answer, read_ready_ratio};

#[tokio::test]
async fn an_unexpected_request_is_answered_500_and_recorded() {
    let (fake, reading) = read_ready_ratio(vec![Exchange::new(
        "GET",
        "/api/v1/namespaces/other/pods?labelSelector=app%3Dweb",
        CannedResponse::json(200, &pod_list(vec![])),
    )])
    .await;

    let error = reading.unwrap_err();

    assert!(
        matches!(&error, ApiError::ServerError { code: 500, message, .. }
            if message.contains("unexpected request GET /api/v1/namespaces/shop/pods")),
        "{error:?}"
    );
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(fake.unused_exchanges().len(), 1);
}

#[tokio::test]
async fn requests_beyond_the_script_are_answered_500() {
    let (fake, client) = fake_with_client(vec![pods_answer(vec![])]).await;
    let reader = PodReader::new(client);

    reader.ready_ratio(&canary_pods()).await.unwrap();
    let error = reader.ready_ratio(&canary_pods()).await.unwrap_err();

    assert!(error.to_string().contains("no more requests"), "{error}");
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn the_url_is_loopback() {
    let fake = FakeApiServer::start(vec![]).await.unwrap();
    assert!(fake.url().starts_with("http://127.0.0.1:"));
}
