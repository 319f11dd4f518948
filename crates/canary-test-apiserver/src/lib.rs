//! A Kubernetes API server for tests, scoped to what the canary operator
//! relies on, and stateful like the real one.
//!
//! It serves HTTPS on `127.0.0.1` with a certificate authority made at
//! start, authenticates bearer tokens it hands out per [`Identity`],
//! authorizes every request with the RBAC objects it stores (403 for what
//! they do not grant), and keeps objects as etcd and the API server do:
//! a global revision counter as `resourceVersion`, conflicts on stale
//! writes, `generation`, the status subresource, server-side apply with
//! field managers and conflicts, merge and JSON patches, list and watch
//! with bookmarks and 410 Gone. Every request is logged with its identity
//! and RBAC's decision.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use canary_test_apiserver::{Identity, TestApiServer};
//!
//! let server = TestApiServer::start().await?;
//! server.load_files(&["manifests/kubernetes/crd/crd.yaml", "manifests/kubernetes/cluster-wide/cluster-role.yaml"])?;
//! let controller = Identity::service_account("canary-system", "canary-controller");
//! let client = server.client(&controller)?;
//! // … run the code under test with `client` …
//! assert!(server.requests_by(&controller).iter().all(|r| r.allowed()));
//! # Ok(()) }
//! ```
//!
//! What it implements and what it leaves out, with the Kubernetes
//! documentation each behaviour follows: `docs/testing-kubernetes.md`.

mod discovery;
pub mod field_set;
mod handler;
pub mod managed_fields;
pub mod patch;
pub mod rbac;
mod request_log;
pub mod resources;
pub mod schema;
pub mod selectors;
mod server;
pub mod status;
pub mod store;
mod tls;
mod watch;

pub mod crds;

pub use rbac::{Decision, Identity};
pub use request_log::RecordedRequest;
pub use server::{
    kustomize, ClientError, LoadError, Loaded, RequestMatch, Settings, StartError, TestApiServer,
    SETUP_MANAGER,
};
pub use status::ApiStatus;
pub use tls::TlsError;
