//! What is not served gets a real Status: 404 for unknown paths and
//! kinds, 405 for verbs a path does not take.
//! https://kubernetes.io/docs/reference/using-api/api-concepts/#responses

use canary_test_apiserver::Identity;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};

use crate::support::{server, status_of};

#[tokio::test]
async fn an_unserved_kind_is_a_404_status() {
    let server = server().await;
    let client = server.admin_client().unwrap();
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("batch", "v1", "Job"), "jobs");
    let jobs: Api<DynamicObject> = Api::namespaced_with(client, "shop", &resource);
    let status = status_of(jobs.list(&ListParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert!(
        status
            .message
            .contains("/apis/batch/v1/namespaces/shop/jobs"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn discovery_lists_the_served_groups_and_kinds() {
    let server = server().await;
    let client = server.admin_client().unwrap();
    let groups = client.list_api_groups().await.unwrap();
    let names: Vec<&str> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    for expected in [
        "apps",
        "canary.dev",
        "coordination.k8s.io",
        "events.k8s.io",
        "extensions.istio.io",
        "metrics.k8s.io",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let canary = client
        .list_api_group_resources("canary.dev/v1alpha1")
        .await
        .unwrap();
    let resources: Vec<&str> = canary.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(resources, ["canaryrollouts", "canaryrollouts/status"]);
    assert!(server
        .requests_by(&Identity::admin())
        .iter()
        .all(|r| r.code == 200));
}
