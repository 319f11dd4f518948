//! The status subresource: writes to /status change only status; writes
//! to the main resource leave status alone.
//! https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{create, json_of, rollout, rollouts, server, status_of};

async fn created() -> (
    canary_test_apiserver::TestApiServer,
    Api<DynamicObject>,
    DynamicObject,
) {
    let server = server().await;
    let rollouts = rollouts(&server.admin_client().unwrap(), "shop");
    let mut body = rollout("web");
    body["status"] = json!({"phase": "Promoted"});
    let created = create(&rollouts, body).await;
    (server, rollouts, created)
}

// "PUT requests to the /status subresource take a custom resource object
// and ignore changes to anything except the status stanza"; the status
// in a create is dropped.
#[tokio::test]
async fn a_status_write_changes_only_status() {
    let (_server, rollouts, created) = created().await;
    assert!(
        json_of(&created).get("status").is_none(),
        "create drops status"
    );

    let mut body = created.clone();
    body.data["status"] = json!({"phase": "Progressing", "message": "step 1"});
    body.data["spec"]["routes"] = json!(["other"]);
    body.metadata.labels = Some([("x".to_owned(), "y".to_owned())].into());
    let written = rollouts
        .replace_status("web", &PostParams::default(), &body)
        .await
        .unwrap();
    let written = json_of(&written);
    assert_eq!(
        written["status"],
        json!({"phase": "Progressing", "message": "step 1"})
    );
    assert_eq!(written["spec"]["routes"], json!(["web"]));
    assert!(written["metadata"].get("labels").is_none());
    assert_eq!(written["metadata"]["generation"], 1);
}

// "PUT/POST/PATCH requests to the custom resource ignore changes to the
// status stanza".
#[tokio::test]
async fn a_main_resource_write_leaves_status_alone() {
    let (_server, rollouts, created) = created().await;
    let mut body = created.clone();
    body.data["status"] = json!({"phase": "Progressing"});
    rollouts
        .replace_status("web", &PostParams::default(), &body)
        .await
        .unwrap();

    let patched = rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"routes": ["web", "api"]}, "status": {"phase": "Aborted"}}),
            ),
        )
        .await
        .unwrap();
    let patched = json_of(&patched);
    assert_eq!(patched["status"]["phase"], "Progressing");
    assert_eq!(patched["spec"]["routes"], json!(["web", "api"]));
    assert_eq!(patched["metadata"]["generation"], 2);
}

// api-concepts#conflicts on the subresource: the operator writes status
// whole, guarded by the resourceVersion it read.
#[tokio::test]
async fn a_status_write_with_a_stale_resource_version_conflicts() {
    let (_server, rollouts, created) = created().await;
    rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"canary.dev/command": "promote"}}})),
        )
        .await
        .unwrap();
    let mut stale = created.clone();
    stale.data["status"] = json!({"phase": "Progressing"});
    let status = status_of(
        rollouts
            .replace_status("web", &PostParams::default(), &stale)
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
}

// Server-side apply to /status: the manager owns status fields only.
// https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management
#[tokio::test]
async fn an_apply_to_status_owns_status_fields_only() {
    let (_server, rollouts, _created) = created().await;
    let body = json!({"apiVersion": "canary.dev/v1alpha1", "kind": "CanaryRollout",
                      "metadata": {"name": "web"}, "spec": {"routes": ["x"]}, "status": {"phase": "Paused"}});
    let applied = rollouts
        .patch_status(
            "web",
            &PatchParams::apply("canary-controller"),
            &Patch::Apply(&body),
        )
        .await
        .unwrap();
    assert_eq!(json_of(&applied)["spec"]["routes"], json!(["web"]));
    assert_eq!(json_of(&applied)["status"]["phase"], "Paused");
    let entry = applied
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("canary-controller"))
        .unwrap();
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    assert_eq!(
        serde_json::to_value(entry.fields_v1).unwrap(),
        json!({"f:status": {"f:phase": {}}})
    );
}
