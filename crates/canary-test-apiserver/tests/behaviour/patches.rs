//! PATCH in its non-apply formats: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902), strategic merge patch for built-in kinds.
//! https://kubernetes.io/docs/reference/using-api/api-concepts/#patch-and-apply
//! and https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::support::{create, deployment, rollout, rollouts, server, status_of};

async fn deployments() -> (canary_test_apiserver::TestApiServer, Api<Deployment>) {
    let server = server().await;
    let deployments: Api<Deployment> = Api::namespaced(server.admin_client().unwrap(), "shop");
    for (name, replicas) in [("web-v1", 3), ("web-v2", 2)] {
        create(&deployments, deployment(name, replicas)).await;
    }
    (server, deployments)
}

fn as_controller() -> PatchParams {
    PatchParams {
        field_manager: Some("canary-controller".into()),
        ..PatchParams::default()
    }
}

// RFC 7386: `null` removes a key; the operator's scale-down remembers the
// replica count in an annotation and scale-up removes it.
#[tokio::test]
async fn a_merge_patch_scales_and_removes_annotations() {
    let (server, deployments) = deployments().await;
    let down = json!({"metadata": {"annotations": {"canary.dev/scaled-down-from": "2"}}, "spec": {"replicas": 0}});
    let scaled = deployments
        .patch("web-v2", &as_controller(), &Patch::Merge(&down))
        .await
        .unwrap();
    assert_eq!(scaled.spec.as_ref().unwrap().replicas, Some(0));
    let up = json!({"metadata": {"annotations": {"canary.dev/scaled-down-from": null}}, "spec": {"replicas": 2}});
    let restored = deployments
        .patch("web-v2", &as_controller(), &Patch::Merge(&up))
        .await
        .unwrap();
    assert_eq!(restored.spec.as_ref().unwrap().replicas, Some(2));
    assert!(restored.metadata.annotations.unwrap_or_default().is_empty());
    let managers: Vec<_> = restored
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| (m.manager.unwrap(), m.operation.unwrap()))
        .collect();
    assert!(
        managers.contains(&("canary-controller".to_owned(), "Update".to_owned())),
        "{managers:?}"
    );
    assert_eq!(
        server.requests().last().unwrap().field_manager,
        "canary-controller"
    );
}

// api-concepts#conflicts: a resourceVersion inside a patch is a
// precondition, as the operator's template copy relies on.
#[tokio::test]
async fn a_merge_patch_carrying_a_resource_version_is_guarded_by_it() {
    let (_server, deployments) = deployments().await;
    let stable = deployments.get("web-v1").await.unwrap();
    let seen = stable.metadata.resource_version.clone().unwrap();
    deployments
        .patch(
            "web-v1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"synced": "git"}}})),
        )
        .await
        .unwrap();
    let copy = json!({"metadata": {"resourceVersion": seen},
                      "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}});
    let status = status_of(
        deployments
            .patch("web-v1", &as_controller(), &Patch::Merge(&copy))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
}

// RFC 7386 replaces arrays whole; a custom resource has no other list
// semantics for merge patches.
#[tokio::test]
async fn a_merge_patch_replaces_a_list_whole() {
    let server = server().await;
    let rollouts = rollouts(&server.admin_client().unwrap(), "shop");
    let mut body = rollout("web");
    body["spec"]["routes"] = json!(["web", "api"]);
    create(&rollouts, body).await;
    let patched = rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"routes": ["api"]}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["routes"], json!(["api"]));
}

// RFC 6902 operations, `test` included.
#[tokio::test]
async fn a_json_patch_applies_its_operations_or_none() {
    let (_server, deployments) = deployments().await;
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/replicas", "value": 3},
        {"op": "replace", "path": "/spec/replicas", "value": 4}
    ]))
    .unwrap();
    let patched = deployments
        .patch(
            "web-v1",
            &PatchParams::default(),
            &Patch::<()>::Json(patch.clone()),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(4));
    let status = status_of(
        deployments
            .patch("web-v1", &PatchParams::default(), &Patch::<()>::Json(patch))
            .await,
    );
    assert_eq!(status.code, 422);
    assert_eq!(
        deployments
            .get("web-v1")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(4)
    );
}

// update-api-object-kubectl-patch: a strategic merge patch merges
// containers by name; "strategic merge patch is not supported for custom
// resources" (415).
#[tokio::test]
async fn a_strategic_merge_patch_merges_containers_by_name_on_built_in_kinds_only() {
    let (server, deployments) = deployments().await;
    let sidecar = json!({"spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy:1"}]}}}});
    let patched = deployments
        .patch(
            "web-v1",
            &PatchParams::default(),
            &Patch::Strategic(&sidecar),
        )
        .await
        .unwrap();
    let names: Vec<String> = patched
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["app", "proxy"]);

    let rollouts = rollouts(&server.admin_client().unwrap(), "shop");
    create(&rollouts, rollout("web")).await;
    let status = status_of(
        rollouts
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {}})),
            )
            .await,
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
}
