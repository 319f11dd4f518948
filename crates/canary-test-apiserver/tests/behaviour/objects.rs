//! Objects and their metadata: uid, resourceVersion from one counter,
//! generation, creationTimestamp; create, replace, delete, and the
//! conflicts on each.

use canary_test_apiserver::Identity;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{create, deployment, revision_of, rollout, rollouts, server, status_of};

// https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/
// (uid, resourceVersion, generation, creationTimestamp are set by the
// system) and https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
// (one revision counter across the whole store, as etcd's).
#[tokio::test]
async fn created_objects_get_uid_revision_generation_and_creation_time() {
    let server = server().await;
    let client = server.admin_client().unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let secrets: Api<Secret> = Api::namespaced(client, "shop");
    let created = create(&deployments, deployment("web-v1", 2)).await;
    let secret = create(&secrets, json!({"metadata": {"name": "token"}})).await;

    let meta = &created.metadata;
    assert!(
        meta.uid.as_deref().is_some_and(|uid| uid.len() == 36),
        "{meta:?}"
    );
    assert_eq!(meta.generation, Some(1));
    assert!(meta.creation_timestamp.is_some());
    let first: u64 = meta.resource_version.as_deref().unwrap().parse().unwrap();
    let second: u64 = secret
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        second > first,
        "one counter across kinds: {first} then {second}"
    );
    assert_ne!(secret.metadata.uid, meta.uid);
    assert_eq!(server.revision(), second);
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris
// and the Status reasons of https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/
#[tokio::test]
async fn creating_a_taken_name_is_409_already_exists() {
    let server = server().await;
    let leases: Api<Lease> = Api::namespaced(server.admin_client().unwrap(), "canary-system");
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "canary-controller"}})).unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let status = status_of(leases.create(&PostParams::default(), &lease).await);
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "AlreadyExists");
    assert_eq!(
        status.message,
        "leases.coordination.k8s.io \"canary-controller\" already exists"
    );
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#conflicts
// (an update carrying a resourceVersion that is no longer current fails
// with 409 Conflict): the leader lease's take-over race.
#[tokio::test]
async fn a_replace_with_a_stale_resource_version_is_409_conflict() {
    let server = server().await;
    let leases: Api<Lease> = Api::namespaced(server.admin_client().unwrap(), "canary-system");
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "canary-controller"}, "spec": {"holderIdentity": "a"}}),
    )
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let read_by_a = leases.get("canary-controller").await.unwrap();
    let read_by_b = read_by_a.clone();

    let mut renewed = read_by_a.clone();
    renewed.spec.as_mut().unwrap().holder_identity = Some("a".into());
    renewed.spec.as_mut().unwrap().lease_duration_seconds = Some(15);
    let stored = leases
        .replace("canary-controller", &PostParams::default(), &renewed)
        .await
        .unwrap();
    assert_ne!(
        stored.metadata.resource_version,
        read_by_a.metadata.resource_version
    );

    let mut taken = read_by_b;
    taken.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let status = status_of(
        leases
            .replace("canary-controller", &PostParams::default(), &taken)
            .await,
    );
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert!(
        status.message.contains("the object has been modified"),
        "{}",
        status.message
    );
    let holder = leases
        .get("canary-controller")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(
        holder.as_deref(),
        Some("a"),
        "the stale write changed nothing"
    );
}

// https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/
// (generation: "a sequence number representing a specific generation of
// the desired state") and https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource
// (status changes do not increment it).
#[tokio::test]
async fn generation_counts_changes_of_the_desired_state_only() {
    let server = server().await;
    let client = server.admin_client().unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client, "shop");
    create(&deployments, deployment("web-v2", 2)).await;
    let merge = |patch| Patch::Merge(patch);
    let labelled = deployments
        .patch(
            "web-v2",
            &PatchParams::default(),
            &merge(json!({"metadata": {"labels": {"team": "shop"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata is not desired state"
    );
    let with_status = deployments
        .patch_status(
            "web-v2",
            &PatchParams::default(),
            &merge(json!({"status": {"readyReplicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "status is not desired state"
    );
    let scaled = deployments
        .patch(
            "web-v2",
            &PatchParams::default(),
            &merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
}

// https://kubernetes.io/docs/reference/using-api/server-side-apply/ ("if
// the object does not change, the request is a no-op") and
// api-concepts#resource-versions: resourceVersion changes when the object
// is written, and only then.
#[tokio::test]
async fn a_write_that_changes_nothing_keeps_the_resource_version() {
    let server = server().await;
    let client = server.admin_client().unwrap();
    let rollouts = rollouts(&client, "shop");
    let created = create(&rollouts, rollout("web")).await;
    let again = rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"routes": ["web"]}})),
        )
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        created.metadata.resource_version
    );
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/ (DELETE)
// and the NotFound Status of a read afterwards.
#[tokio::test]
async fn deleted_objects_are_gone_and_a_read_is_404_not_found() {
    let server = server().await;
    let secrets: Api<Secret> = Api::namespaced(server.admin_client().unwrap(), "shop");
    create(&secrets, json!({"metadata": {"name": "token"}})).await;
    secrets
        .delete("token", &DeleteParams::default())
        .await
        .unwrap();
    let status = status_of(secrets.get("token").await);
    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");
    assert_eq!(status.message, "secrets \"token\" not found");
    let details = status.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("token", "secrets")
    );
    assert_eq!(
        status_of(secrets.delete("token", &DeleteParams::default()).await).code,
        404
    );
}

// https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#namespacelifecycle
// (objects cannot be created in a namespace that does not exist).
#[tokio::test]
async fn objects_cannot_be_created_in_a_missing_namespace() {
    let server = server().await;
    let secrets: Api<Secret> = Api::namespaced(server.admin_client().unwrap(), "nowhere");
    let status = status_of(
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
            )
            .await,
    );
    assert_eq!(
        (status.code, status.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );
}

// https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#field-pruning
// (unknown fields of a custom resource are dropped silently) and the
// custom resource update rule: metadata.resourceVersion is required.
#[tokio::test]
async fn custom_resources_are_pruned_and_their_updates_need_a_resource_version() {
    let server = server().await;
    let rollouts = rollouts(&server.admin_client().unwrap(), "shop");
    let mut body = rollout("web");
    body["spec"]["typo"] = json!(1);
    body["spec"]["target"]["extra"] = json!("x");
    let created = create(&rollouts, body).await;
    assert!(created.data["spec"].get("typo").is_none());
    assert!(created.data["spec"]["target"].get("extra").is_none());
    assert_eq!(created.data["spec"]["target"]["name"], "canary");

    let mut unguarded: DynamicObject = created.clone();
    unguarded.metadata.resource_version = None;
    let status = status_of(
        rollouts
            .replace("web", &PostParams::default(), &unguarded)
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(revision_of(&created) > 0);
}

// Identities other than the administrator see only what RBAC grants; an
// administrator is a member of system:masters.
// https://kubernetes.io/docs/reference/access-authn-authz/rbac/#user-facing-roles
#[tokio::test]
async fn the_administrator_may_do_anything() {
    let server = server().await;
    let admin = server.admin_client().unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin);
    let names: Vec<String> = namespaces
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for expected in ["default", "kube-system", "shop", "canary-system"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(server
        .requests_by(&Identity::admin())
        .iter()
        .all(|r| r.allowed()));
}

// A failure injected for one request answers it and only it: the way a
// test forces the lease race the leader election must survive.
#[tokio::test]
async fn an_injected_failure_answers_the_next_matching_request_once() {
    use canary_test_apiserver::status::About;
    use canary_test_apiserver::{ApiStatus, RequestMatch};

    let server = server().await;
    let leases: Api<Lease> = Api::namespaced(server.admin_client().unwrap(), "canary-system");
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "canary-controller"}})).unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let about = About {
        group: "coordination.k8s.io",
        plural: "leases",
        name: "canary-controller",
    };
    server.fail_next(
        RequestMatch::new("update", "leases").named("canary-controller"),
        ApiStatus::conflict(about),
    );

    let status = status_of(
        leases
            .replace("canary-controller", &PostParams::default(), &created)
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    leases
        .replace("canary-controller", &PostParams::default(), &created)
        .await
        .unwrap();
}
