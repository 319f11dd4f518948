//! Watches: a stream of `{"type": …, "object": …}` lines.
//!
//! - From a `resourceVersion`: every change after it, then changes as they
//!   happen. When the history no longer reaches back that far, one
//!   `ERROR` event with a 410 `Expired` Status, and the stream ends: the
//!   client must list again.
//! - Without one (or `0`): an `ADDED` event per existing object first.
//!   With `sendInitialEvents=true`, a bookmark annotated
//!   `k8s.io/initial-events-end` follows them.
//! - `allowWatchBookmarks=true`: a `BOOKMARK` carrying the latest revision
//!   every bookmark interval.
//! - Label and field selectors filter; an object that stops matching is
//!   sent as `DELETED`, one that starts matching as `ADDED`.
//! - `timeoutSeconds` ends the stream cleanly.
//!
//! Reference: <https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes>,
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/#watch-bookmarks>,
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses>.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::{Shared, WatchControl};
use crate::status::ApiStatus;
use crate::store::{present, Change, ChangeKind};

/// What a watch asks for.
pub struct WatchRequest {
    /// The resource.
    pub resource: Arc<ResourceType>,
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
}

impl WatchRequest {
    fn selects(&self, change_key_ok: bool, object: &Value) -> bool {
        change_key_ok && self.labels.matches(object) && self.fields.matches(object)
    }

    fn covers(&self, change: &Change) -> bool {
        change.key.group == self.resource.group
            && change.key.plural == self.resource.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| !self.resource.namespaced || change.key.namespace == *ns)
    }

    /// The event a change makes for this watch, if any.
    fn event(&self, change: &Change) -> Option<Value> {
        let covered = self.covers(change);
        let now = self.selects(covered, &change.object);
        let before = change
            .previous
            .as_ref()
            .is_some_and(|previous| self.selects(covered, previous));
        let kind = match (change.kind, before, now) {
            (ChangeKind::Added, _, true) => "ADDED",
            (ChangeKind::Deleted, _, true) => "DELETED",
            (ChangeKind::Modified, true, true) => "MODIFIED",
            (ChangeKind::Modified, false, true) => "ADDED",
            (ChangeKind::Modified, true, false) => "DELETED",
            _ => return None,
        };
        Some(json!({"type": kind, "object": present(&self.resource, &change.object)}))
    }

    fn bookmark(&self, revision: u64, initial_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {
            "apiVersion": self.resource.api_version(), "kind": self.resource.kind, "metadata": metadata
        }})
    }
}

fn error_event(status: &ApiStatus) -> Value {
    json!({"type": "ERROR", "object": status.to_json()})
}

/// A response body fed from a channel; an `Err` item resets the
/// connection.
pub struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|result| result.map(Frame::data)))
    }
}

fn line(event: &Value) -> Result<Bytes, std::io::Error> {
    let mut text = event.to_string();
    text.push('\n');
    Ok(Bytes::from(text))
}

/// Counts open watches while alive.
struct OpenWatch(Arc<Shared>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts the watch; the body streams its events.
pub fn start(shared: Arc<Shared>, request: WatchRequest) -> Result<ChannelBody, ApiStatus> {
    let (initial, live, mut seen, gone) = {
        let state = shared.lock();
        let live = state.store.subscribe();
        let revision = state.store.revision();
        let from = match request.resource_version.as_deref() {
            None | Some("") | Some("0") => None,
            Some(text) => Some(text.parse::<u64>().map_err(|_| {
                ApiStatus::bad_request(format!("invalid resourceVersion {text:?}"))
            })?),
        };
        match from {
            None => {
                let mut events = Vec::new();
                let query = crate::store::ListQuery {
                    namespace: request.namespace.clone(),
                    labels: request.labels.clone(),
                    fields: request.fields.clone(),
                    ..Default::default()
                };
                for item in state.store.list(&request.resource, &query)?.items {
                    events.push(json!({"type": "ADDED", "object": item}));
                }
                if request.send_initial_events && request.bookmarks {
                    events.push(request.bookmark(revision, true));
                }
                (events, live, revision, false)
            }
            Some(from) => match state.store.history_since(from) {
                Ok(changes) => {
                    let events = changes.iter().filter_map(|c| request.event(c)).collect();
                    (events, live, revision.max(from), false)
                }
                Err(gone) => (vec![error_event(&gone)], live, revision, true),
            },
        }
    };
    let (sender, receiver) = mpsc::channel(256);
    shared.open_watches.fetch_add(1, Ordering::SeqCst);
    let guard = OpenWatch(Arc::clone(&shared));
    let mut control = shared.control.subscribe();
    let bookmark_interval = shared.settings.bookmark_interval;
    tokio::spawn(async move {
        let _guard = guard;
        let mut live: broadcast::Receiver<Arc<Change>> = live;
        for event in &initial {
            if sender.send(line(event)).await.is_err() {
                return;
            }
        }
        if gone {
            return;
        }
        let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut bookmarks = tokio::time::interval(bookmark_interval);
        bookmarks.tick().await;
        loop {
            tokio::select! {
                change = live.recv() => match change {
                    Ok(change) => {
                        if change.revision <= seen {
                            continue;
                        }
                        seen = change.revision;
                        if let Some(event) = request.event(&change) {
                            if sender.send(line(&event)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let gone = ApiStatus::expired(seen, seen + 1);
                        let _ = sender.send(line(&error_event(&gone))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                order = control.recv() => match order {
                    Ok(WatchControl::Drop) | Err(broadcast::error::RecvError::Closed) => {
                        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "watch connection dropped by the test");
                        let _ = sender.send(Err(reset)).await;
                        return;
                    }
                    Ok(WatchControl::Expire { oldest }) => {
                        let gone = ApiStatus::expired(seen, oldest);
                        let _ = sender.send(line(&error_event(&gone))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                },
                _ = bookmarks.tick(), if request.bookmarks => {
                    if sender.send(line(&request.bookmark(seen, false))).await.is_err() {
                        return;
                    }
                }
                () = sleep_until(deadline) => return,
                () = sender.closed() => return,
            }
        }
    });
    Ok(ChannelBody(receiver))
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
