//! HTTPS: clients trust the server's authority, through a kube Config or
//! a kubeconfig file.
//! https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/

use canary_test_apiserver::Identity;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

use crate::support::server;

#[tokio::test]
async fn a_client_that_does_not_trust_the_authority_cannot_connect() {
    let server = server().await;
    server.admin_client().unwrap(); // installs the crypto provider
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.default_retry = false;
    if let Ok(client) = kube::Client::try_from(config) {
        let namespaces: Api<Namespace> = Api::all(client);
        let error = namespaces.list(&ListParams::default()).await.unwrap_err();
        assert!(
            !matches!(error, kube::Error::Api(_)),
            "a TLS failure, not an answer: {error:?}"
        );
    }
    assert!(server.requests().is_empty(), "nothing reached the server");
}

#[tokio::test]
async fn a_written_kubeconfig_gives_a_working_client() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&Identity::admin(), &path).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        server.url()
    );
    let namespaces: Api<Namespace> = Api::all(kube::Client::try_from(config).unwrap());
    assert!(!namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}
