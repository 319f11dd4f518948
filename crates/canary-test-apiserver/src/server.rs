//! The running server and what a test does with it: start it, load
//! CRDs, RBAC and objects, get a client (or a kubeconfig) for an identity,
//! read the request log, and inject the faults a controller must survive.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::handler;
use crate::rbac::{Attributes, Identity, Policy};
use crate::request_log::RecordedRequest;
use crate::status::ApiStatus;
use crate::store::{ListQuery, Store};
use crate::tls::{self, TlsError};

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How many changes watches can be resumed from; a watch from an
    /// older revision gets 410 Gone.
    pub history_limit: usize,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

/// An order to every open watch.
#[derive(Debug, Clone, Copy)]
pub enum WatchControl {
    /// Reset the connection.
    Drop,
    /// Send 410 Gone and end.
    Expire {
        /// The oldest revision still available.
        oldest: u64,
    },
}

/// Which requests an injected failure answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMatch {
    /// RBAC verb (`update`, `patch`…).
    pub verb: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource, or empty for the main resource.
    pub subresource: String,
    /// Object name; `None` matches any.
    pub name: Option<String>,
}

impl RequestMatch {
    /// `verb` on `resource` (any name).
    pub fn new(verb: &str, resource: &str) -> RequestMatch {
        RequestMatch {
            verb: verb.to_owned(),
            resource: resource.to_owned(),
            subresource: String::new(),
            name: None,
        }
    }

    /// Only the object `name`.
    pub fn named(mut self, name: &str) -> RequestMatch {
        self.name = Some(name.to_owned());
        self
    }

    /// On a subresource (`status`).
    pub fn subresource(mut self, subresource: &str) -> RequestMatch {
        self.subresource = subresource.to_owned();
        self
    }

    fn matches(&self, attributes: &Attributes) -> bool {
        self.verb == attributes.verb
            && self.resource == attributes.resource
            && self.subresource == attributes.subresource
            && self.name.as_ref().is_none_or(|n| *n == attributes.name)
    }
}

struct Fault {
    matches: RequestMatch,
    answer: ApiStatus,
}

/// Everything behind the lock.
pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) tokens: HashMap<String, Identity>,
    pub(crate) log: Vec<RecordedRequest>,
    faults: Vec<Fault>,
}

impl State {
    /// The RBAC objects stored now.
    pub(crate) fn policy(&self) -> Policy {
        let objects = |group: &str, version: &str, plural: &str| -> Vec<Value> {
            self.store
                .registry()
                .find(group, version, plural)
                .and_then(|resource| self.store.list(&resource, &ListQuery::default()).ok())
                .map(|listed| listed.items)
                .unwrap_or_default()
        };
        let rbac = "rbac.authorization.k8s.io";
        Policy {
            roles: objects(rbac, "v1", "roles"),
            cluster_roles: objects(rbac, "v1", "clusterroles"),
            role_bindings: objects(rbac, "v1", "rolebindings"),
            cluster_role_bindings: objects(rbac, "v1", "clusterrolebindings"),
        }
    }

    /// The first injected failure for this request, consumed.
    pub(crate) fn take_fault(&mut self, attributes: &Attributes) -> Option<ApiStatus> {
        let index = self
            .faults
            .iter()
            .position(|f| f.matches.matches(attributes))?;
        Some(self.faults.remove(index).answer)
    }
}

/// State shared by the accept loop, connections and watches.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) control: broadcast::Sender<WatchControl>,
    pub(crate) settings: Settings,
    /// `127.0.0.1:<port>`.
    pub(crate) address: String,
    pub(crate) open_watches: AtomicUsize,
}

impl Shared {
    /// The state, even if a test panicked while holding it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No port.
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(#[from] std::io::Error),
    /// No certificates.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// kube refused the configuration.
    #[error("cannot build a kube client for the test API server: {0}")]
    Build(#[from] kube::Error),
    /// The token is not a valid header value.
    #[error("invalid token")]
    Token,
}

/// Why manifests could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A document is not YAML.
    #[error("document {index} is not valid YAML: {source}")]
    Yaml {
        /// Its position, from 0.
        index: usize,
        /// Why.
        source: serde_yaml::Error,
    },
    /// A document has no apiVersion/kind the server serves.
    #[error(
        "document {index}: the server does not serve {api_version} {kind} (load its CRD first)"
    )]
    UnknownKind {
        /// Its position, from 0.
        index: usize,
        /// Its apiVersion.
        api_version: String,
        /// Its kind.
        kind: String,
    },
    /// The server refused an object.
    #[error("{kind} {name:?}: {}", status.message)]
    Refused {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// The answer.
        status: ApiStatus,
    },
    /// `kubectl kustomize` failed or is missing.
    #[error("kubectl kustomize {dir} failed: {reason}")]
    Kustomize {
        /// The directory.
        dir: String,
        /// What kubectl said, or how to install it.
        reason: String,
    },
}

/// One object a load stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace, or empty.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// A running test API server on `127.0.0.1`, over HTTPS. Stops, with every
/// connection, when dropped.
pub struct TestApiServer {
    shared: Arc<Shared>,
    url: String,
    ca_pem: String,
    ca_der: Vec<u8>,
    accept_loop: JoinHandle<()>,
}

/// The field manager objects loaded or seeded by the test are written as.
pub const SETUP_MANAGER: &str = "test-setup";

impl TestApiServer {
    /// Starts a server with the default [`Settings`]. Must be called inside
    /// a Tokio runtime.
    pub async fn start() -> Result<TestApiServer, StartError> {
        TestApiServer::start_with(Settings::default()).await
    }

    /// Starts a server.
    pub async fn start_with(settings: Settings) -> Result<TestApiServer, StartError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?.to_string();
        let tls = tls::make()?;
        let (control, _) = broadcast::channel(16);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                store: Store::new(settings.history_limit),
                tokens: HashMap::new(),
                log: Vec::new(),
                faults: Vec::new(),
            }),
            control,
            settings,
            address: address.clone(),
            open_watches: AtomicUsize::new(0),
        });
        let acceptor = TlsAcceptor::from(Arc::clone(&tls.config));
        let accept_loop = tokio::spawn(accept(listener, acceptor, Arc::clone(&shared)));
        Ok(TestApiServer {
            shared,
            url: format!("https://{address}"),
            ca_pem: tls.ca_pem,
            ca_der: tls.ca_der,
            accept_loop,
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The certificate authority clients must trust, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A bearer token for `identity` (the same one each time).
    pub fn token(&self, identity: &Identity) -> String {
        let mut state = self.shared.lock();
        if let Some((token, _)) = state.tokens.iter().find(|(_, known)| *known == identity) {
            return token.clone();
        }
        let token = format!("test-token-{}", state.tokens.len() + 1);
        state.tokens.insert(token.clone(), identity.clone());
        token
    }

    /// A client that authenticates as `identity` and trusts the server's
    /// authority. Like the controller's own client: no retries.
    pub fn client(&self, identity: &Identity) -> Result<kube::Client, ClientError> {
        if rustls::crypto::ring::default_provider()
            .install_default()
            .is_err()
        {
            tracing::debug!("a rustls crypto provider was already installed; keeping it");
        }
        let uri: http::Uri = self.url.parse().map_err(|_| ClientError::Token)?;
        let mut config = kube::Config::new(uri);
        config.root_cert = Some(vec![self.ca_der.clone()]);
        config.default_retry = false;
        let value = http::HeaderValue::from_str(&format!("Bearer {}", self.token(identity)))
            .map_err(|_| ClientError::Token)?;
        config.headers.push((http::header::AUTHORIZATION, value));
        Ok(kube::Client::try_from(config)?)
    }

    /// A client as the administrator.
    pub fn admin_client(&self) -> Result<kube::Client, ClientError> {
        self.client(&Identity::admin())
    }

    /// Writes a kubeconfig for `kubectl --kubeconfig <path>` that
    /// authenticates as `identity`.
    pub fn write_kubeconfig(&self, identity: &Identity, path: &Path) -> std::io::Result<()> {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
             users:\n- name: test\n  user:\n    token: {}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\n\
             current-context: test\n",
            self.url,
            self.token(identity)
        );
        std::fs::write(path, text)
    }

    /// Stores every object of a multi-document YAML text, in order, as the
    /// administrator: CRDs start serving their kinds at once, RBAC objects
    /// take effect at once. An object that exists is replaced.
    pub fn load_yaml(&self, text: &str) -> Result<Vec<Loaded>, LoadError> {
        let mut loaded = Vec::new();
        for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let value =
                Value::deserialize(document).map_err(|source| LoadError::Yaml { index, source })?;
            if value.is_null() {
                continue;
            }
            loaded.push(self.store_object(index, value)?);
        }
        Ok(loaded)
    }

    /// [`TestApiServer::load_yaml`] for each file, in order.
    pub fn load_files<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Vec<Loaded>, LoadError> {
        let mut loaded = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
                path: path.display().to_string(),
                source,
            })?;
            loaded.extend(self.load_yaml(&text)?);
        }
        Ok(loaded)
    }

    fn store_object(&self, index: usize, object: Value) -> Result<Loaded, LoadError> {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let loaded = Loaded {
            api_version: text("/apiVersion"),
            kind: text("/kind"),
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name"),
        };
        let mut state = self.shared.lock();
        let Some(resource) = state
            .store
            .registry()
            .find_kind(&loaded.api_version, &loaded.kind)
        else {
            return Err(LoadError::UnknownKind {
                index,
                api_version: loaded.api_version,
                kind: loaded.kind,
            });
        };
        let namespace = if resource.namespaced && loaded.namespace.is_empty() {
            "default".to_owned()
        } else {
            loaded.namespace.clone()
        };
        let refused = |status| LoadError::Refused {
            kind: loaded.kind.clone(),
            name: loaded.name.clone(),
            status,
        };
        let result = match state.store.get(&resource, &namespace, &loaded.name) {
            Ok(live) => {
                let mut object = object.clone();
                if let (Some(version), Some(metadata)) = (
                    live.pointer("/metadata/resourceVersion").cloned(),
                    object.get_mut("metadata").and_then(Value::as_object_mut),
                ) {
                    metadata.insert("resourceVersion".into(), version);
                }
                state.store.replace(
                    &resource,
                    &namespace,
                    &loaded.name,
                    object,
                    SETUP_MANAGER,
                    false,
                )
            }
            Err(_) => state
                .store
                .create(&resource, &namespace, object.clone(), SETUP_MANAGER),
        };
        if resource.status_subresource {
            if let (Ok(_), Some(status)) = (&result, object.get("status")) {
                let body = serde_json::json!({"status": status});
                state
                    .store
                    .patch(
                        &resource,
                        &namespace,
                        &loaded.name,
                        crate::patch::PatchKind::Merge,
                        body,
                        SETUP_MANAGER,
                        false,
                        true,
                    )
                    .map_err(refused)?;
            }
        }
        result.map_err(refused)?;
        Ok(Loaded {
            namespace,
            ..loaded
        })
    }

    /// Stores one object as the administrator (its `status` too); returns
    /// it as stored.
    pub fn seed(&self, object: Value) -> Result<Value, LoadError> {
        let loaded = self.store_object(0, object)?;
        self.object(
            &loaded.api_version,
            &loaded.kind,
            &loaded.namespace,
            &loaded.name,
        )
        .ok_or(LoadError::Refused {
            kind: loaded.kind,
            name: loaded.name,
            status: ApiStatus::internal("the seeded object vanished"),
        })
    }

    /// The stored object, read directly (no request, nothing logged).
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let state = self.shared.lock();
        let resource = state.store.registry().find_kind(api_version, kind)?;
        state.store.get(&resource, namespace, name).ok()
    }

    /// The current revision (the latest `resourceVersion` handed out).
    pub fn revision(&self) -> u64 {
        self.shared.lock().store.revision()
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().log.clone()
    }

    /// The requests `identity` sent.
    pub fn requests_by(&self, identity: &Identity) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.user == identity.username)
            .collect()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.lock().log.clear();
    }

    /// Answers the next request matching `matches` with `answer` instead
    /// of carrying it out (after authentication and RBAC). Several
    /// injections queue up in order.
    pub fn fail_next(&self, matches: RequestMatch, answer: ApiStatus) {
        self.shared.lock().faults.push(Fault { matches, answer });
    }

    /// Forgets the change history, as an etcd compaction does: open
    /// watches get a 410 Gone event and end, and resuming a watch from any
    /// revision handed out so far gets 410 Gone, so the client must list
    /// again.
    pub fn expire_watch_history(&self) {
        let oldest = {
            let mut state = self.shared.lock();
            state.store.expire_history();
            state.store.revision() + 1
        };
        // No open watch is not an error.
        let _ = self.shared.control.send(WatchControl::Expire { oldest });
    }

    /// Resets the connection of every open watch, as a network failure or
    /// an API server restart does.
    pub fn drop_watch_connections(&self) {
        // No open watch is not an error.
        let _ = self.shared.control.send(WatchControl::Drop);
    }

    /// How many watches are open now.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// Renders a kustomization with `kubectl kustomize`, for
/// [`TestApiServer::load_yaml`].
pub fn kustomize(dir: &Path) -> Result<String, LoadError> {
    let failed = |reason: String| LoadError::Kustomize {
        dir: dir.display().to_string(),
        reason,
    };
    let output = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(|error| {
            failed(format!(
                "cannot run kubectl ({error}); install kubectl 1.32 or later (it includes kustomize)"
            ))
        })?;
    if !output.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    String::from_utf8(output.stdout).map_err(|error| failed(error.to_string()))
}

async fn accept(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "test API server: accept failed");
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let acceptor = acceptor.clone();
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%error, "test API server: TLS handshake failed");
                    return;
                }
            };
            let service = service_fn(move |request| handler::handle(Arc::clone(&shared), request));
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "test API server: connection ended");
            }
        });
    }
}
