//! RBAC from the shipped manifests: what they grant the controller's
//! ServiceAccount is allowed, anything else is a 403 Status; every request
//! is logged with its identity and the decision.
//! https://kubernetes.io/docs/reference/access-authn-authz/rbac/

use canary_test_apiserver::{kustomize, Decision, Identity, TestApiServer};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::support::{deployment, repo_path, server, status_of};

fn controller() -> Identity {
    Identity::service_account("canary-system", "canary-controller")
}

/// The server with the controller variant's RBAC as shipped.
async fn with_shipped_rbac() -> TestApiServer {
    let server = server().await;
    server
        .load_files(&[
            repo_path("manifests/kubernetes/cluster-wide/cluster-role.yaml"),
            repo_path("manifests/kubernetes/controller/service-account.yaml"),
            repo_path("manifests/kubernetes/controller/rbac.yaml"),
        ])
        .expect("the shipped RBAC loads");
    server.seed(deployment("web-v1", 2)).unwrap();
    server
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prometheus", "namespace": "shop"}}))
        .unwrap();
    server
}

// "A ClusterRoleBinding grants the ClusterRole's permissions cluster-wide";
// "a RoleBinding grants permissions within a specific namespace";
// resourceNames limit get and update but can never allow a create by name.
#[tokio::test]
async fn the_shipped_rbac_allows_what_it_grants_and_nothing_else() {
    let server = with_shipped_rbac().await;
    let client = server.client(&controller()).unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    pods.list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(
        status_of(pods.get("web-1").await).code,
        403,
        "pods: list only"
    );

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "shop");
    secrets.get("prometheus").await.unwrap();
    assert_eq!(
        status_of(secrets.list(&ListParams::default()).await).code,
        403
    );

    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "shop");
    deployments.get("web-v1").await.unwrap();
    assert_eq!(
        status_of(deployments.delete("web-v1", &DeleteParams::default()).await).code,
        403
    );

    let leases: Api<Lease> = Api::namespaced(client.clone(), "canary-system");
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "canary-controller"}})).unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    leases.get("canary-controller").await.unwrap();
    assert_eq!(
        status_of(leases.get("someone-else").await).code,
        403,
        "resourceNames"
    );
    let elsewhere: Api<Lease> = Api::namespaced(client, "shop");
    assert_eq!(
        status_of(elsewhere.create(&PostParams::default(), &lease).await).code,
        403,
        "Role is namespaced"
    );
}

// https://kubernetes.io/docs/reference/access-authn-authz/authorization/#request-attributes
// and the Forbidden Status the API server sends.
#[tokio::test]
async fn a_refusal_is_a_403_status_naming_user_verb_resource_and_namespace() {
    let server = with_shipped_rbac().await;
    let secrets: Api<Secret> =
        Api::namespaced(server.client(&controller()).unwrap(), "kube-system");
    let status = status_of(secrets.delete("token", &DeleteParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "secrets \"token\" is forbidden: User \"system:serviceaccount:canary-system:canary-controller\" \
         cannot delete resource \"secrets\" in API group \"\" in the namespace \"kube-system\""
    );
}

#[tokio::test]
async fn every_request_is_logged_with_its_identity_and_decision() {
    let server = with_shipped_rbac().await;
    let pods: Api<Pod> = Api::namespaced(server.client(&controller()).unwrap(), "shop");
    pods.list(&ListParams::default()).await.unwrap();
    let _ = pods.get("web-1").await;

    let log = server.requests_by(&controller());
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].describe(), "list pods in namespace \"shop\"");
    assert_eq!(
        log[0].decision,
        Some(Decision::Allowed(
            "ClusterRoleBinding canary-controller-cluster-wide (ClusterRole canary-controller-cluster-wide)".into()
        ))
    );
    assert!(log[0].allowed());
    assert_eq!(
        log[1].describe(),
        "get pods \"web-1\" in namespace \"shop\""
    );
    assert_eq!(
        (log[1].decision.clone(), log[1].code),
        (Some(Decision::Denied), 403)
    );
    let refused: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| !r.allowed())
        .map(|r| r.describe())
        .collect();
    assert_eq!(refused, ["get pods \"web-1\" in namespace \"shop\""]);
}

// https://kubernetes.io/docs/reference/access-authn-authz/authentication/:
// a request whose bearer token is not known is 401 Unauthorized.
#[tokio::test]
async fn an_unknown_token_is_401() {
    let server = server().await;
    server.admin_client().unwrap(); // installs the crypto provider
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.root_cert = Some(vec![pem_to_der(server.ca_pem())]);
    config.headers.push((
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("Bearer forged"),
    ));
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "shop");
    let status = status_of(pods.list(&ListParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
    assert_eq!(server.requests().last().unwrap().user, "");
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

// RBAC loaded from a rendered kustomization (`kubectl kustomize`), as an
// install applies it.
#[tokio::test]
async fn rbac_from_a_rendered_kustomization_takes_effect() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: shop\nresources: [role.yaml]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("role.yaml"),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: reader}\n\
         rules: [{apiGroups: [\"\"], resources: [pods], verbs: [list]}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: reader}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}\n\
         subjects: [{kind: ServiceAccount, name: reader, namespace: shop}]\n",
    )
    .unwrap();
    let rendered = kustomize(dir.path()).unwrap_or_else(|error| panic!("{error}"));
    let server = server().await;
    let loaded = server.load_yaml(&rendered).unwrap();
    assert!(loaded.iter().all(|l| l.namespace == "shop"), "{loaded:?}");
    let reader = Identity::service_account("shop", "reader");
    let pods: Api<Pod> = Api::namespaced(server.client(&reader).unwrap(), "shop");
    pods.list(&ListParams::default()).await.unwrap();
    let other: Api<Pod> = Api::namespaced(server.client(&reader).unwrap(), "default");
    assert_eq!(
        status_of(other.list(&ListParams::default()).await).code,
        403
    );
}

// Every kind the shipped manifests use is served: the rendered
// kustomizations and the controller's plain files load, namespaces first.
#[tokio::test]
async fn the_shipped_manifests_load() {
    let server = server().await;
    server
        .load_yaml(canary_test_apiserver::crds::ISTIO_NETWORKING)
        .unwrap();
    server
        .load_yaml(canary_test_apiserver::crds::GATEWAY_API)
        .unwrap();
    for dir in [
        "manifests/kubernetes",
        "manifests/kubernetes/example",
        "manifests/istio",
    ] {
        let rendered = kustomize(&repo_path(dir)).unwrap_or_else(|error| panic!("{error}"));
        server
            .load_yaml(&rendered)
            .unwrap_or_else(|error| panic!("{dir}: {error}"));
    }
    for dir in [
        "manifests/kubernetes/controller",
        "manifests/istio/placements/gateway-api",
    ] {
        let mut files: Vec<_> = std::fs::read_dir(repo_path(dir))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.file_name().is_some_and(|n| n != "kustomization.yaml"))
            .collect();
        // Namespaces before what lives in them.
        files.sort_by_key(|path| !path.ends_with("namespace.yaml"));
        server
            .load_files(&files)
            .unwrap_or_else(|error| panic!("{dir}: {error}"));
    }
    assert!(server
        .object(
            "extensions.istio.io/v1alpha1",
            "WasmPlugin",
            "istio-system",
            "canary"
        )
        .is_some());
    assert!(server
        .object("canary.dev/v1alpha1", "CanaryRollout", "shop", "web")
        .is_some());
}
