//! Building the [`kube::Client`] the controller talks to the cluster with.
//!
//! Both constructors give the client the same two settings, chosen for a
//! controller that decides rollbacks:
//!
//! - **No hidden retries.** kube's default retries 429/503/504 up to 15
//!   times with a backoff that can add up to minutes. Each caller owns its
//!   retry timing instead: an analysis measurement that errors is retried
//!   by the analysis (and counts toward `consecutiveErrorLimit`), and a
//!   push is re-sent by the rollout loop, so a failing API server shows up
//!   as an error in seconds, not as a stalled rollback.
//! - **A read timeout** ([`READ_TIMEOUT`]), so an API server that accepts
//!   a connection and never answers cannot hang a measurement.

use std::time::Duration;

use kube::{Client, Config};

/// How long the client waits for the API server to send the next bytes of
/// an answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL given for the API server is not an absolute `http(s)` URL.
    #[error("API server URL {url:?} is not an absolute http:// or https:// URL")]
    InvalidUrl { url: String },
    /// Neither a kubeconfig (`KUBECONFIG`, `~/.kube/config`) nor an
    /// in-cluster service account was found or usable.
    #[error("no Kubernetes configuration: {0}")]
    NoConfiguration(#[source] kube::config::InferConfigError),
    /// The configuration was found but the client could not be built from
    /// it (bad certificates, unsupported auth).
    #[error("cannot build a Kubernetes client: {0}")]
    Build(#[source] kube::Error),
}

/// A client configured from the environment the way `kubectl` and
/// in-cluster controllers are: the kubeconfig from `KUBECONFIG` or
/// `~/.kube/config` if there is one, else the pod's service account
/// (the inference `kube::Client::try_default` uses).
///
/// Must be called inside a Tokio runtime.
pub async fn client_from_environment() -> Result<Client, ClientError> {
    let config = Config::infer()
        .await
        .map_err(ClientError::NoConfiguration)?;
    tracing::info!(cluster_url = %config.cluster_url, "Kubernetes client from the environment");
    build(config)
}

/// A client for the API server at `url` (`http://127.0.0.1:8001` for
/// `kubectl proxy` or a test's fake API server), without credentials.
///
/// Must be called inside a Tokio runtime.
pub fn client_for_url(url: &str) -> Result<Client, ClientError> {
    let invalid = || ClientError::InvalidUrl {
        url: url.to_owned(),
    };
    let uri: http::Uri = url.parse().map_err(|_| invalid())?;
    let absolute_http =
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some();
    if !absolute_http {
        return Err(invalid());
    }
    build(Config::new(uri))
}

fn build(mut config: Config) -> Result<Client, ClientError> {
    install_crypto_provider();
    config.default_retry = false;
    config.read_timeout = Some(READ_TIMEOUT);
    Client::try_from(config).map_err(ClientError::Build)
}

/// Makes ring the process-wide rustls crypto provider (kept if one is
/// already installed). kube's TLS needs a process-wide provider, and when
/// another crate in the same program (reqwest, with aws-lc-rs) enables a
/// second one, rustls cannot choose by itself and building a client would
/// panic. Every client constructor here calls this first.
pub fn install_crypto_provider() {
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed; keeping it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_must_be_absolute_http() {
        for url in ["127.0.0.1:8080", "/api", "ftp://host", "", "http://"] {
            assert!(
                matches!(client_for_url(url), Err(ClientError::InvalidUrl { .. })),
                "{url}"
            );
        }
        assert!(client_for_url("http://127.0.0.1:8080").is_ok());
        assert!(client_for_url("https://kubernetes.default.svc").is_ok());
    }
}
