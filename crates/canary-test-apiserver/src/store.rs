//! The objects, as etcd and the API server's registry keep them: one
//! global revision counter (every write takes the next value as the
//! object's `resourceVersion`), `uid`, `creationTimestamp`, `generation`,
//! managed fields, and a bounded history of changes for watches.
//!
//! Write rules, each from the API documentation:
//!
//! - create: 409 `AlreadyExists` when the name is taken; 404 when the
//!   namespace does not exist; `status` dropped for kinds with a status
//!   subresource.
//!   <https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions>
//! - update, patch, apply: a `metadata.resourceVersion` in the body is a
//!   precondition (409 `Conflict` when it is not the object's); an update
//!   of a custom resource without one is refused (422). A write that
//!   changes nothing is not stored: the `resourceVersion` stays.
//!   <https://kubernetes.io/docs/reference/using-api/api-concepts/#conflicts>
//! - `generation` starts at 1 and grows by one on every change outside
//!   `metadata` and `status`.
//!   <https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/>
//! - the status subresource: writes to `/status` change only `status`;
//!   writes to the main resource leave `status` as it was.
//!   <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource>
//! - custom resources lose fields their schema does not declare (pruning).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use crate::managed_fields::{self, ManagerEntry, Writer};
use crate::patch::{self, PatchKind};
use crate::resources::{Registry, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{About, ApiStatus};

/// Where an object is kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    /// API group.
    pub group: String,
    /// Resource plural.
    pub plural: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    fn of(resource: &ResourceType, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            group: resource.group.clone(),
            plural: resource.plural.clone(),
            namespace: if resource.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }
}

/// How an object changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Written.
    Modified,
    /// Deleted.
    Deleted,
}

/// One change, as watches replay it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The revision the change took.
    pub revision: u64,
    /// How the object changed.
    pub kind: ChangeKind,
    /// Where the object is kept.
    pub key: ObjectKey,
    /// The object after the change (as it was, for a deletion).
    pub object: Value,
    /// The object before, for a modification.
    pub previous: Option<Value>,
}

struct Stored {
    object: Value,
    managers: Vec<ManagerEntry>,
}

/// A list's result.
pub struct Listed {
    /// The items.
    pub items: Vec<Value>,
    /// The revision the list reflects.
    pub revision: u64,
    /// Where the next page starts, when `limit` cut the list.
    pub continue_token: Option<String>,
}

/// How a list is asked for.
#[derive(Default)]
pub struct ListQuery {
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// Most items per page.
    pub limit: Option<usize>,
    /// The previous page's continue token.
    pub continue_token: Option<String>,
}

/// The namespaces every cluster has.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Objects, revisions, history.
pub struct Store {
    registry: Registry,
    objects: BTreeMap<ObjectKey, Stored>,
    revision: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Changes up to this revision are no longer in the history.
    compacted: u64,
    uids: u64,
    uid_prefix: u32,
    changes: broadcast::Sender<Arc<Change>>,
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn metadata_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let Value::Object(map) = object else {
        unreachable!("made an object above")
    };
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    match metadata {
        Value::Object(metadata) => metadata,
        _ => unreachable!("made an object above"),
    }
}

/// The part of an object `generation` counts changes of.
fn generation_part(object: &Value) -> Value {
    let mut part = object.clone();
    if let Some(map) = part.as_object_mut() {
        for key in ["metadata", "status", "apiVersion", "kind"] {
            map.remove(key);
        }
    }
    part
}

/// An object without what every write changes, to tell a no-op write.
fn content(object: &Value) -> Value {
    let mut part = object.clone();
    if let Some(Value::Object(metadata)) = part.get_mut("metadata") {
        for key in ["resourceVersion", "managedFields", "generation"] {
            metadata.remove(key);
        }
    }
    part
}

fn same_owners(a: &[ManagerEntry], b: &[ManagerEntry]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.manager == y.manager
                && x.operation == y.operation
                && x.subresource == y.subresource
                && x.fields == y.fields
        })
}

/// `object` with `status` from `from` (removed when `from` has none).
fn with_status_of(mut object: Value, from: &Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        match from.get("status") {
            Some(status) => {
                map.insert("status".to_owned(), status.clone());
            }
            None => {
                map.remove("status");
            }
        }
    }
    object
}

impl Store {
    /// An empty cluster with its initial namespaces, keeping at most
    /// `history_limit` changes for watches.
    pub fn new(history_limit: usize) -> Store {
        let (changes, _) = broadcast::channel(history_limit.max(16));
        let uid_prefix = jiff::Timestamp::now().subsec_nanosecond().unsigned_abs();
        let mut store = Store {
            registry: Registry::builtin(),
            objects: BTreeMap::new(),
            revision: 0,
            history: VecDeque::new(),
            history_limit,
            compacted: 0,
            uids: 0,
            uid_prefix,
            changes,
        };
        for name in INITIAL_NAMESPACES {
            let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                                   "status": {"phase": "Active"}});
            if let Some(resource) = store.registry.find("", "v1", "namespaces") {
                // Cannot fail on an empty store.
                let _ = store.create(&resource, "", namespace, "kube-apiserver");
            }
        }
        store
    }

    /// The served kinds.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    /// The changes after `revision`, or 410 when the history no longer
    /// reaches back that far.
    pub fn history_since(&self, revision: u64) -> Result<Vec<Arc<Change>>, ApiStatus> {
        if revision < self.compacted {
            return Err(ApiStatus::expired(revision, self.compacted + 1));
        }
        Ok(self
            .history
            .iter()
            .filter(|change| change.revision > revision)
            .cloned()
            .collect())
    }

    /// Forgets every change so far: a watch from any earlier revision gets
    /// 410 Gone, as after an etcd compaction.
    pub fn expire_history(&mut self) {
        self.history.clear();
        self.compacted = self.revision;
    }

    fn next_uid(&mut self) -> String {
        self.uids += 1;
        format!("{:08x}-0000-4000-8000-{:012x}", self.uid_prefix, self.uids)
    }

    fn record(&mut self, kind: ChangeKind, key: ObjectKey, object: Value, previous: Option<Value>) {
        let change = Arc::new(Change {
            revision: self.revision,
            kind,
            key,
            object,
            previous,
        });
        self.history.push_back(Arc::clone(&change));
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.revision;
            }
        }
        // No receiver is not an error.
        let _ = self.changes.send(change);
    }

    /// The stored object `name`.
    pub fn get(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiStatus> {
        self.objects
            .get(&ObjectKey::of(resource, namespace, name))
            .map(|stored| present(resource, &stored.object))
            .ok_or_else(|| ApiStatus::not_found(resource.about(name)))
    }

    /// The objects of `resource` a list selects.
    pub fn list(&self, resource: &ResourceType, query: &ListQuery) -> Result<Listed, ApiStatus> {
        let (revision, after) = match &query.continue_token {
            Some(token) => {
                let (revision, after) = decode_continue(token)?;
                if revision < self.compacted {
                    return Err(ApiStatus::custom(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter.",
                    ));
                }
                (revision, Some(after))
            }
            None => (self.revision, None),
        };
        let mut items = Vec::new();
        let mut continue_token = None;
        for (key, stored) in &self.objects {
            if key.group != resource.group || key.plural != resource.plural {
                continue;
            }
            if let Some(namespace) = &query.namespace {
                if resource.namespaced && key.namespace != *namespace {
                    continue;
                }
            }
            if let Some((namespace, name)) = &after {
                if (&key.namespace, &key.name) <= (namespace, name) {
                    continue;
                }
            }
            if !query.labels.matches(&stored.object) || !query.fields.matches(&stored.object) {
                continue;
            }
            if query
                .limit
                .is_some_and(|limit| limit > 0 && items.len() == limit)
            {
                let last: Option<&Value> = items.last();
                let last_key = last.map(|item| {
                    (
                        metadata_str(item, "namespace").unwrap_or("").to_owned(),
                        metadata_str(item, "name").unwrap_or("").to_owned(),
                    )
                });
                if let Some(last_key) = last_key {
                    continue_token = Some(encode_continue(revision, &last_key));
                }
                break;
            }
            items.push(present(resource, &stored.object));
        }
        Ok(Listed {
            items,
            revision,
            continue_token,
        })
    }

    /// Creates `body` in `namespace` as `manager`.
    pub fn create(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        mut body: Value,
        manager: &str,
    ) -> Result<Value, ApiStatus> {
        check_type(resource, &body)?;
        let generate = metadata_str(&body, "generateName").map(str::to_owned);
        let name = match (metadata_str(&body, "name"), generate) {
            (Some(name), _) if !name.is_empty() => name.to_owned(),
            (_, Some(prefix)) => format!("{prefix}{:05x}", self.revision + 1),
            _ => {
                return Err(ApiStatus::invalid(
                    resource.about(""),
                    "metadata.name",
                    "Required value: name or generateName is required",
                ))
            }
        };
        self.check_namespace(resource, namespace, &body)?;
        let key = ObjectKey::of(resource, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiStatus::already_exists(resource.about(&name)));
        }
        if resource.status_subresource {
            if let Some(map) = body.as_object_mut() {
                map.remove("status");
            }
        }
        let metadata = metadata_mut(&mut body);
        metadata.insert("name".into(), json!(name));
        if resource.namespaced {
            metadata.insert("namespace".into(), json!(namespace));
        } else {
            metadata.remove("namespace");
        }
        metadata.remove("resourceVersion");
        metadata.remove("managedFields");
        metadata.remove("generation");
        let uid = self.next_uid();
        let metadata = metadata_mut(&mut body);
        metadata.insert("uid".into(), json!(uid));
        metadata.insert("creationTimestamp".into(), json!(now()));
        prune(resource, &mut body);
        let time = now();
        let writer = Writer {
            manager,
            api_version: &resource.api_version(),
            time: &time,
        };
        let managers = managed_fields::update(
            &json!({}),
            &body,
            &resource.schema,
            resource.part(false),
            &[],
            writer,
        );
        let stored = self.commit(resource, key, body, managers)?;
        Ok(present(resource, &stored))
    }

    /// Replaces `name` with `body` (`PUT`), of the main resource or of
    /// `/status`.
    pub fn replace(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        body: Value,
        manager: &str,
        status: bool,
    ) -> Result<Value, ApiStatus> {
        check_type(resource, &body)?;
        let key = ObjectKey::of(resource, namespace, name);
        let live = self.live(resource, &key)?;
        if let Some(body_name) = metadata_str(&body, "name") {
            if body_name != name {
                return Err(ApiStatus::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
        }
        match metadata_str(&body, "resourceVersion") {
            Some(version) => check_version(resource, name, &live.object, version)?,
            None if resource.custom => {
                return Err(ApiStatus::invalid(
                    resource.about(name),
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                ))
            }
            None => {}
        }
        let reset = reset_requested(&body);
        let new = combine(resource, status, &live.object, body);
        self.write(resource, key, new, manager, status, reset)
    }

    /// Patches `name`. A server-side apply creates the object when it does
    /// not exist.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        body: Value,
        manager: &str,
        force: bool,
        status: bool,
    ) -> Result<Value, ApiStatus> {
        let key = ObjectKey::of(resource, namespace, name);
        if kind == PatchKind::Apply {
            return self.apply(resource, key, body, manager, force, status);
        }
        let live = self.live(resource, &key)?;
        let mut patched = live.object.clone();
        match kind {
            PatchKind::Merge => {
                if let Some(version) = body
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                {
                    check_version(resource, name, &live.object, version)?;
                }
                patch::merge_patch(&mut patched, &body);
            }
            PatchKind::Strategic => {
                if resource.custom {
                    return Err(ApiStatus::unsupported_media_type(
                        "application/strategic-merge-patch+json",
                    ));
                }
                if let Some(version) = body
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                {
                    check_version(resource, name, &live.object, version)?;
                }
                patch::strategic_merge_patch(&mut patched, &body, &resource.schema);
            }
            PatchKind::Json => {
                patch::json_patch(&mut patched, &body)
                    .map_err(|error| ApiStatus::invalid(resource.about(name), "patch", error))?;
                if let Some(version) = metadata_str(&patched, "resourceVersion") {
                    check_version(resource, name, &live.object, version)?;
                }
            }
            PatchKind::Apply => unreachable!("handled above"),
        }
        let new = combine(resource, status, &live.object, patched);
        self.write(resource, key, new, manager, status, false)
    }

    fn apply(
        &mut self,
        resource: &ResourceType,
        key: ObjectKey,
        config: Value,
        manager: &str,
        force: bool,
        status: bool,
    ) -> Result<Value, ApiStatus> {
        let name = key.name.clone();
        if config.get("apiVersion").is_none() || config.get("kind").is_none() {
            return Err(ApiStatus::bad_request(
                "apiVersion and kind must be set in an applied configuration",
            ));
        }
        check_type(resource, &config)?;
        if let Some(config_name) = metadata_str(&config, "name") {
            if config_name != name {
                return Err(ApiStatus::bad_request(format!(
                    "the name of the object ({config_name}) does not match the name on the URL ({name})"
                )));
            }
        }
        let existing = self
            .objects
            .get(&key)
            .map(|stored| (stored.object.clone(), stored.managers.clone()));
        let creating = existing.is_none();
        if creating && status {
            return Err(ApiStatus::not_found(resource.about(&name)));
        }
        if let (Some((object, _)), Some(version)) =
            (&existing, metadata_str(&config, "resourceVersion"))
        {
            check_version(resource, &name, object, version)?;
        }
        let (live, managers) = match existing {
            Some(existing) => existing,
            None => {
                self.check_namespace(resource, &key.namespace, &config)?;
                let mut skeleton = json!({"apiVersion": resource.api_version(), "kind": resource.kind,
                                          "metadata": {"name": name}});
                let uid = self.next_uid();
                let metadata = metadata_mut(&mut skeleton);
                if resource.namespaced {
                    metadata.insert("namespace".into(), json!(key.namespace));
                }
                metadata.insert("uid".into(), json!(uid));
                metadata.insert("creationTimestamp".into(), json!(now()));
                (skeleton, Vec::new())
            }
        };
        let managers = if reset_requested(&config) {
            Vec::new()
        } else {
            managers
        };
        let mut config = config;
        prune(resource, &mut config);
        let time = now();
        let writer = Writer {
            manager,
            api_version: &resource.api_version(),
            time: &time,
        };
        let part = resource.part(status);
        let written = managed_fields::apply(
            &live,
            &config,
            &resource.schema,
            part,
            &managers,
            writer,
            force,
        )
        .map_err(|conflicts| {
            let conflicts: Vec<(String, String, String)> = conflicts
                .into_iter()
                .map(|c| (c.manager, c.api_version, c.field))
                .collect();
            ApiStatus::apply_conflict(resource.about(&name), &conflicts)
        })?;
        let mut object = written.object;
        if creating && resource.status_subresource && !status {
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
        }
        let stored = self.commit(resource, key, object, written.managers)?;
        Ok(present(resource, &stored))
    }

    /// Deletes `name`; returns the object as it was.
    pub fn delete(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiStatus> {
        let key = ObjectKey::of(resource, namespace, name);
        let Some(stored) = self.objects.remove(&key) else {
            return Err(ApiStatus::not_found(resource.about(name)));
        };
        self.revision += 1;
        let mut object = stored.object;
        metadata_mut(&mut object)
            .insert("resourceVersion".into(), json!(self.revision.to_string()));
        if resource.group == "apiextensions.k8s.io"
            && resource.plural == "customresourcedefinitions"
        {
            self.registry.remove_crd(name);
        }
        self.record(ChangeKind::Deleted, key, object.clone(), None);
        Ok(present(resource, &object))
    }

    fn live(&self, resource: &ResourceType, key: &ObjectKey) -> Result<&Stored, ApiStatus> {
        self.objects
            .get(key)
            .ok_or_else(|| ApiStatus::not_found(resource.about(&key.name)))
    }

    fn check_namespace(
        &self,
        resource: &ResourceType,
        namespace: &str,
        body: &Value,
    ) -> Result<(), ApiStatus> {
        if !resource.namespaced {
            return Ok(());
        }
        if let Some(declared) = metadata_str(body, "namespace") {
            if !declared.is_empty() && declared != namespace {
                return Err(ApiStatus::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let key = ObjectKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: namespace.to_owned(),
        };
        if !self.objects.contains_key(&key) {
            return Err(ApiStatus::not_found(About {
                group: "",
                plural: "namespaces",
                name: namespace,
            }));
        }
        Ok(())
    }

    /// Stores `new` over the live object, tracking its managers as an
    /// update by `manager`.
    fn write(
        &mut self,
        resource: &ResourceType,
        key: ObjectKey,
        mut new: Value,
        manager: &str,
        status: bool,
        reset: bool,
    ) -> Result<Value, ApiStatus> {
        let live = self.live(resource, &key)?;
        prune(resource, &mut new);
        let time = now();
        let writer = Writer {
            manager,
            api_version: &resource.api_version(),
            time: &time,
        };
        let base: &[ManagerEntry] = if reset { &[] } else { &live.managers };
        let managers = managed_fields::update(
            &live.object,
            &new,
            &resource.schema,
            resource.part(status),
            base,
            writer,
        );
        let stored = self.commit(resource, key, new, managers)?;
        Ok(present(resource, &stored))
    }

    /// Stores `object` with `managers` under `key`: the next revision,
    /// `generation`, `managedFields`, and a change for watches. A write
    /// that changes nothing is not stored.
    fn commit(
        &mut self,
        resource: &ResourceType,
        key: ObjectKey,
        mut object: Value,
        managers: Vec<ManagerEntry>,
    ) -> Result<Value, ApiStatus> {
        let previous = self.objects.get(&key);
        if let Some(previous) = previous {
            if content(&previous.object) == content(&object)
                && same_owners(&previous.managers, &managers)
            {
                return Ok(previous.object.clone());
            }
        }
        if resource.generation {
            let generation = match previous {
                None => 1,
                Some(previous) => {
                    let old = previous
                        .object
                        .pointer("/metadata/generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    if generation_part(&previous.object) == generation_part(&object) {
                        old
                    } else {
                        old + 1
                    }
                }
            };
            metadata_mut(&mut object).insert("generation".into(), json!(generation));
        }
        if resource.group == "apiextensions.k8s.io"
            && resource.plural == "customresourcedefinitions"
        {
            self.registry
                .register_crd(&object)
                .map_err(|reason| ApiStatus::invalid(resource.about(&key.name), "spec", reason))?;
        }
        self.revision += 1;
        let metadata = metadata_mut(&mut object);
        metadata.insert("resourceVersion".into(), json!(self.revision.to_string()));
        if managers.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert(
                "managedFields".into(),
                Value::Array(managers.iter().map(ManagerEntry::to_json).collect()),
            );
        }
        let previous_object = previous.map(|p| p.object.clone());
        let kind = if previous_object.is_some() {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        self.objects.insert(
            key.clone(),
            Stored {
                object: object.clone(),
                managers,
            },
        );
        self.record(kind, key, object.clone(), previous_object);
        Ok(object)
    }
}

/// The object as served: `apiVersion` of the version asked for.
pub fn present(resource: &ResourceType, object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(resource.api_version()));
        map.insert("kind".into(), json!(resource.kind));
    }
    object
}

/// A body of another kind is refused.
fn check_type(resource: &ResourceType, body: &Value) -> Result<(), ApiStatus> {
    if let Some(kind) = body.get("kind").and_then(Value::as_str) {
        if kind != resource.kind {
            return Err(ApiStatus::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                resource.kind
            )));
        }
    }
    if let Some(api_version) = body.get("apiVersion").and_then(Value::as_str) {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        if group != resource.group {
            return Err(ApiStatus::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                resource.api_version()
            )));
        }
    }
    Ok(())
}

/// 409 unless `version` is the live object's.
fn check_version(
    resource: &ResourceType,
    name: &str,
    live: &Value,
    version: &str,
) -> Result<(), ApiStatus> {
    if metadata_str(live, "resourceVersion") == Some(version) {
        Ok(())
    } else {
        Err(ApiStatus::conflict(resource.about(name)))
    }
}

/// An explicitly empty `managedFields` clears every owner.
fn reset_requested(body: &Value) -> bool {
    body.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
}

/// The object a write to the main resource or to `/status` leaves: the
/// written part from `new`, the rest and the server-set metadata from
/// `live`.
fn combine(resource: &ResourceType, status: bool, live: &Value, new: Value) -> Value {
    let mut object = if status {
        with_status_of(live.clone(), &new)
    } else if resource.status_subresource {
        with_status_of(new, live)
    } else {
        new
    };
    let live_metadata = live.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let metadata = metadata_mut(&mut object);
    for key in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "generation",
        "resourceVersion",
    ] {
        match live_metadata.get(key) {
            Some(value) => {
                metadata.insert(key.into(), value.clone());
            }
            None => {
                metadata.remove(key);
            }
        }
    }
    metadata.remove("managedFields");
    object
}

/// Drops fields a custom resource's schema does not declare.
fn prune(resource: &ResourceType, object: &mut Value) {
    if !resource.custom {
        return;
    }
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let kept: Vec<(String, Value)> = ["apiVersion", "kind", "metadata"]
        .iter()
        .filter_map(|key| map.remove(*key).map(|value| ((*key).to_owned(), value)))
        .collect();
    resource.schema.prune(object);
    if let Some(map) = object.as_object_mut() {
        map.extend(kept);
    }
}

fn encode_continue(revision: u64, after: &(String, String)) -> String {
    let token = json!({"rv": revision, "ns": after.0, "name": after.1});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiStatus> {
    let invalid = || ApiStatus::bad_request(format!("invalid continue token {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let revision = value
        .get("rv")
        .and_then(Value::as_u64)
        .ok_or_else(invalid)?;
    let namespace = value
        .get("ns")
        .and_then(Value::as_str)
        .ok_or_else(invalid)?;
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(invalid)?;
    Ok((revision, (namespace.to_owned(), name.to_owned())))
}
