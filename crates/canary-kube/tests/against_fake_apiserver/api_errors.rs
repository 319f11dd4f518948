//! API failures come back typed and worded for an operator.

use canary_kube::fake_apiserver::{CannedResponse, Exchange};
use canary_kube::{client_for_url, ApiError, PluginObject, PodReader, PushError};

use crate::support::{
    canary_pods, filter_config, push_through_fake, read_ready_ratio, PODS_TARGET,
    WASM_PLUGIN_TARGET,
};

async fn push_answered_with(response: CannedResponse) -> (ApiError, usize) {
    let (fake, pushed) = push_through_fake(
        PluginObject::wasm_plugin("shop", "canary"),
        vec![Exchange::new("PATCH", WASM_PLUGIN_TARGET, response)],
        &filter_config(10),
    )
    .await;
    match pushed {
        Err(PushError::Api(error)) => (error, fake.requests().len()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn ready_ratio_answered_with(response: CannedResponse) -> (ApiError, usize) {
    let (fake, reading) = read_ready_ratio(vec![Exchange::new("GET", PODS_TARGET, response)]).await;
    (reading.unwrap_err(), fake.requests().len())
}

#[tokio::test]
async fn not_found_names_the_object_and_namespace() {
    let (error, requests) = push_answered_with(CannedResponse::status(
        404,
        "NotFound",
        "wasmplugins.extensions.istio.io \"canary\" not found",
    ))
    .await;

    assert!(matches!(error, ApiError::NotFound { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "wasmplugins.extensions.istio.io \"canary\" not found in namespace \"shop\""
    );
    // The apply, then the discovery request that tells a missing object
    // from a kind the API server does not serve.
    assert_eq!(requests, 2);
}

#[tokio::test]
async fn forbidden_points_at_rbac_and_keeps_the_servers_words() {
    let message = "pods is forbidden: User \"system:serviceaccount:shop:canary\" cannot list resource \"pods\" in API group \"\" in the namespace \"shop\"";
    let (error, _) =
        ready_ratio_answered_with(CannedResponse::status(403, "Forbidden", message)).await;

    assert!(matches!(error, ApiError::Forbidden { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "the controller may not list pods in namespace \"shop\" (check its RBAC): {message}"
        )
    );
    assert!(!error.is_transient());
}

#[tokio::test]
async fn conflict_on_apply_is_typed() {
    let (error, _) = push_answered_with(CannedResponse::status(
        409,
        "Conflict",
        "Apply failed with 1 conflict: conflict with \"argocd-controller\": .spec.pluginConfig",
    ))
    .await;

    assert!(matches!(error, ApiError::Conflict { .. }), "{error:?}");
    assert!(error.to_string().starts_with(
        "conflict on apply wasmplugins.extensions.istio.io \"canary\" in namespace \"shop\": Apply failed"
    ));
}

#[tokio::test]
async fn server_errors_carry_code_and_message() {
    let (error, requests) = ready_ratio_answered_with(CannedResponse::status(
        500,
        "InternalError",
        "Internal error occurred: etcdserver: request timed out",
    ))
    .await;

    assert!(
        matches!(&error, ApiError::ServerError { code: 500, message, .. } if message.contains("etcdserver")),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the API server failed to list pods in namespace \"shop\" (500): Internal error occurred: etcdserver: request timed out"
    );
    assert!(error.is_transient());
    assert_eq!(requests, 1);
}

#[tokio::test]
async fn unavailable_is_not_retried_behind_the_callers_back() {
    let (error, requests) = push_answered_with(CannedResponse::status(
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
    ))
    .await;

    assert!(
        matches!(error, ApiError::ServerError { code: 503, .. }),
        "{error:?}"
    );
    assert_eq!(requests, 1);
}

#[tokio::test]
async fn a_body_that_is_not_a_status_is_reported_as_such() {
    let (error, _) = push_answered_with(CannedResponse::text(
        502,
        "<html><body>502 Bad Gateway</body></html>",
    ))
    .await;

    assert!(
        matches!(&error, ApiError::UnreadableError { code: 502, body, .. } if body.contains("Bad Gateway")),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the API server answered 502 to apply wasmplugins.extensions.istio.io \"canary\" in namespace \"shop\" \
         with a body that is not a Kubernetes Status: \"<html><body>502 Bad Gateway</body></html>\""
    );
}

#[tokio::test]
async fn a_success_that_is_not_a_pod_list_is_an_unexpected_answer() {
    let (error, _) = ready_ratio_answered_with(CannedResponse::text(200, "ok")).await;

    assert!(
        matches!(error, ApiError::UnexpectedAnswer { .. }),
        "{error:?}"
    );
    assert!(error
        .to_string()
        .starts_with("unexpected answer to list pods in namespace \"shop\": "));
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = client_for_url(&url).unwrap();

    let error = PodReader::new(client)
        .ready_ratio(&canary_pods())
        .await
        .unwrap_err();

    assert!(matches!(error, ApiError::Unreachable { .. }), "{error:?}");
    assert!(error.is_transient());
    assert!(error
        .to_string()
        .starts_with("cannot reach the API server to list pods in namespace \"shop\": "));
}

#[tokio::test]
async fn an_empty_object_name_is_refused_without_a_request() {
    let (fake, pushed) = push_through_fake(
        PluginObject::wasm_plugin("shop", ""),
        vec![],
        &filter_config(10),
    )
    .await;

    let error = pushed.unwrap_err();
    assert!(
        matches!(error, PushError::Api(ApiError::InvalidRequest { .. })),
        "{error:?}"
    );
    assert!(fake.requests().is_empty());
}
