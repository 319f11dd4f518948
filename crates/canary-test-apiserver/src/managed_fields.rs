//! Field ownership: server-side apply and the bookkeeping every other
//! write does, following the API server's structured merge.
//!
//! - An **apply** (`application/apply-patch+yaml`) by manager M merges M's
//!   configuration into the object (maps key by key, list-maps item by
//!   item, atomic lists and scalars replaced), removes what M applied last
//!   time and no longer applies unless another manager owns it, and then
//!   compares before and after: a field that changes and that another
//!   manager owns is a conflict. Without `force` any conflict fails the
//!   whole apply (409, every conflict named); with `force` the other
//!   managers lose those fields. M then owns exactly what it applied.
//! - An **update** (create, PUT, merge or JSON patch) is a forced change:
//!   the writer owns every field it added or changed, other managers lose
//!   them, and removed fields leave every set.
//!
//! Identity and server-set metadata (`apiVersion`, `kind`, `metadata.name`,
//! `namespace`, `uid`, `resourceVersion`, `generation`,
//! `creationTimestamp`, `managedFields`) are owned by no one. For kinds
//! with a status subresource, `status` is tracked only by writes to
//! `/status`, and those track nothing else.
//!
//! References: <https://kubernetes.io/docs/reference/using-api/server-side-apply/>
//! (field management, conflicts, merge strategy, "Using Server-Side Apply in
//! a controller"); the algorithm follows `sigs.k8s.io/structured-merge-diff`.

use serde_json::{json, Map, Value};

use crate::field_set::{display, paths_of, remove_at, value_at, FieldSet, PathElement};
use crate::schema::{ListType, Schema};

/// How a manager last wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource; `status` is left out when the kind has a status
    /// subresource.
    Main {
        /// The kind has a status subresource.
        status_subresource: bool,
    },
    /// `/status`: only `status`.
    Status,
}

impl Part {
    fn subresource(self) -> &'static str {
        match self {
            Part::Main { .. } => "",
            Part::Status => "status",
        }
    }
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerEntry {
    /// The field manager.
    pub manager: String,
    /// How it last wrote.
    pub operation: Operation,
    /// The API version it wrote with.
    pub api_version: String,
    /// `status` for writes to the status subresource, else empty.
    pub subresource: String,
    /// When it last changed what it owns.
    pub time: String,
    /// What it owns.
    pub fields: FieldSet,
}

impl ManagerEntry {
    fn is(&self, manager: &str, operation: Operation, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// The entry as written in `metadata.managedFields`.
    pub fn to_json(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation.as_str(),
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if !self.subresource.is_empty() {
            entry["subresource"] = json!(self.subresource);
        }
        entry
    }
}

/// Who writes, with which API version, when.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// The field manager.
    pub manager: &'a str,
    /// `group/version` of the request.
    pub api_version: &'a str,
    /// Now, as the API writes times.
    pub time: &'a str,
}

/// A field another manager owns that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owner.
    pub manager: String,
    /// The API version it owns it in.
    pub api_version: String,
    /// The field (`.spec.pluginConfig.routes`).
    pub field: String,
}

/// The part of `object` that field managers own.
pub fn tracked(object: &Value, part: Part) -> Value {
    let Some(map) = object.as_object() else {
        return Value::Object(Map::new());
    };
    let mut out = Map::new();
    for (key, value) in map {
        let keep = match (part, key.as_str()) {
            (_, "apiVersion" | "kind") => false,
            (Part::Status, field) => field == "status",
            (Part::Main { status_subresource }, "status") => !status_subresource,
            _ => true,
        };
        if keep {
            out.insert(key.clone(), value.clone());
        }
    }
    if let Some(Value::Object(metadata)) = out.get_mut("metadata") {
        for key in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            metadata.remove(key);
        }
        if metadata.is_empty() {
            out.remove("metadata");
        }
    }
    Value::Object(out)
}

/// `live` with its tracked part replaced by `tracked_part`.
fn untrack_into(live: &Value, tracked_part: Value, part: Part) -> Value {
    let mut out = match tracked_part {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let Some(live) = live.as_object() else {
        return Value::Object(out);
    };
    for (key, value) in live {
        let untracked = match (part, key.as_str()) {
            (_, "apiVersion" | "kind") => true,
            (Part::Status, field) => field != "status",
            (Part::Main { status_subresource }, "status") => status_subresource,
            _ => false,
        };
        if untracked {
            out.insert(key.clone(), value.clone());
        }
    }
    if part != Part::Status {
        let live_metadata = live.get("metadata").and_then(Value::as_object);
        let metadata = out
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let (Some(metadata), Some(live_metadata)) = (metadata.as_object_mut(), live_metadata) {
            for (key, value) in live_metadata {
                if matches!(
                    key.as_str(),
                    "name"
                        | "namespace"
                        | "uid"
                        | "resourceVersion"
                        | "generation"
                        | "creationTimestamp"
                        | "managedFields"
                        | "selfLink"
                        | "deletionTimestamp"
                        | "deletionGracePeriodSeconds"
                ) {
                    metadata.insert(key.clone(), value.clone());
                }
            }
        }
    }
    Value::Object(out)
}

/// Merges an applied configuration into `live` as server-side apply does.
pub fn merge(live: &Value, config: &Value, schema: &Schema) -> Value {
    match (live, config) {
        (Value::Object(live_map), Value::Object(config_map)) if !schema.atomic_map => {
            let mut out = live_map.clone();
            for (key, config_value) in config_map {
                let merged = match live_map.get(key) {
                    Some(live_value) => merge(live_value, config_value, &schema.field(key)),
                    None => config_value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(live_items), Value::Array(config_items)) => match &schema.list_type {
            ListType::Map(keys) => {
                let item_schema = schema.item();
                let mut out = live_items.clone();
                for config_item in config_items {
                    let key = Schema::item_key(keys, config_item);
                    match out
                        .iter_mut()
                        .find(|item| Schema::item_key(keys, item) == key)
                    {
                        Some(item) => *item = merge(item, config_item, &item_schema),
                        None => out.push(config_item.clone()),
                    }
                }
                Value::Array(out)
            }
            ListType::Set => {
                let mut out = live_items.clone();
                for item in config_items {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Atomic => config.clone(),
        },
        _ => config.clone(),
    }
}

/// What changed between two versions of the tracked part.
struct Comparison {
    added: FieldSet,
    removed: FieldSet,
    modified: FieldSet,
}

impl Comparison {
    fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

fn compare(old: &Value, new: &Value, schema: &Schema) -> Comparison {
    let old_paths = paths_of(old, schema);
    let new_paths = paths_of(new, schema);
    let mut modified = FieldSet::new();
    for path in old_paths.intersection(&new_paths).iter() {
        let is_item = matches!(path.last(), Some(PathElement::Key(_)));
        if !is_item && value_at(old, path) != value_at(new, path) {
            modified.insert(path.clone());
        }
    }
    Comparison {
        added: new_paths.difference(&old_paths),
        removed: old_paths.difference(&new_paths),
        modified,
    }
}

/// The result of a write: the object and its managers.
#[derive(Debug, Clone)]
pub struct Written {
    /// The whole object (identity, metadata and untracked parts from the
    /// live object).
    pub object: Value,
    /// The managers after the write.
    pub managers: Vec<ManagerEntry>,
}

/// A server-side apply of `config` onto `live` (an empty object when the
/// apply creates it).
pub fn apply(
    live: &Value,
    config: &Value,
    schema: &Schema,
    part: Part,
    managers: &[ManagerEntry],
    writer: Writer<'_>,
    force: bool,
) -> Result<Written, Vec<Conflict>> {
    let subresource = part.subresource();
    let live_part = tracked(live, part);
    let config_part = tracked(config, part);
    let mut merged = merge(&live_part, &config_part, schema);
    let applied = paths_of(&config_part, schema);
    let is_me = |entry: &ManagerEntry| entry.is(writer.manager, Operation::Apply, subresource);

    // What this manager stops applying goes, unless someone else owns it.
    let last = managers
        .iter()
        .find(|entry| is_me(entry))
        .map(|entry| entry.fields.clone())
        .unwrap_or_default();
    let still_owned = managers
        .iter()
        .filter(|entry| !is_me(entry))
        .fold(applied.clone(), |all, entry| all.union(&entry.fields));
    for path in last.difference(&applied).iter() {
        if !still_owned.covers(path) {
            remove_at(&mut merged, path);
        }
    }

    let comparison = compare(&live_part, &merged, schema);
    let changed = comparison.changed();
    let mut conflicts = Vec::new();
    for entry in managers.iter().filter(|entry| !is_me(entry)) {
        for path in entry.fields.intersection(&changed).iter() {
            conflicts.push(Conflict {
                manager: entry.manager.clone(),
                api_version: entry.api_version.clone(),
                field: display(path),
            });
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(conflicts);
    }

    let lost = changed.union(&comparison.removed);
    let next = reassign(
        managers,
        writer,
        Operation::Apply,
        subresource,
        applied,
        &lost,
        true,
    );
    Ok(Written {
        object: untrack_into(live, merged, part),
        managers: next,
    })
}

/// The managers after `writer` changed `live` into `new` by any write but
/// an apply (`live` is an empty object for a create).
pub fn update(
    live: &Value,
    new: &Value,
    schema: &Schema,
    part: Part,
    managers: &[ManagerEntry],
    writer: Writer<'_>,
) -> Vec<ManagerEntry> {
    let subresource = part.subresource();
    let live_part = tracked(live, part);
    let new_part = tracked(new, part);
    let comparison = compare(&live_part, &new_part, schema);
    let changed = comparison.changed();
    let mine = managers
        .iter()
        .find(|entry| entry.is(writer.manager, Operation::Update, subresource))
        .map(|entry| entry.fields.clone())
        .unwrap_or_default();
    let owned = mine.difference(&comparison.removed).union(&changed);
    let lost = changed.union(&comparison.removed);
    reassign(
        managers,
        writer,
        Operation::Update,
        subresource,
        owned,
        &lost,
        !changed.is_empty(),
    )
}

/// The managers after a write: every other manager loses `lost`; the
/// writer's entry for `operation` owns `owned` (and goes when that is
/// empty), in its place in the list, with the write's time when the write
/// `touched` anything.
fn reassign(
    managers: &[ManagerEntry],
    writer: Writer<'_>,
    operation: Operation,
    subresource: &str,
    owned: FieldSet,
    lost: &FieldSet,
    touched: bool,
) -> Vec<ManagerEntry> {
    let mut next = Vec::new();
    let mut mine: Option<(usize, &ManagerEntry)> = None;
    for entry in managers {
        if entry.is(writer.manager, operation, subresource) {
            mine = Some((next.len(), entry));
            continue;
        }
        let fields = entry.fields.difference(lost);
        if !fields.is_empty() {
            next.push(ManagerEntry {
                fields,
                ..entry.clone()
            });
        }
    }
    if owned.is_empty() {
        return next;
    }
    let time = match mine {
        Some((_, entry)) if !touched => entry.time.clone(),
        _ => writer.time.to_owned(),
    };
    let entry = ManagerEntry {
        manager: writer.manager.to_owned(),
        operation,
        api_version: writer.api_version.to_owned(),
        subresource: subresource.to_owned(),
        time,
        fields: owned,
    };
    match mine {
        Some((index, _)) => next.insert(index, entry),
        None => next.push(entry),
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Part = Part::Main {
        status_subresource: true,
    };

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "extensions.istio.io/v1alpha1",
            time: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn merge_keeps_map_keys_it_is_not_given_and_replaces_atomic_lists() {
        let live = json!({"a": {"x": 1, "y": [1, 2]}, "b": 1});
        let config = json!({"a": {"y": [3]}});
        assert_eq!(
            merge(&live, &config, &Schema::unknown()),
            json!({"a": {"x": 1, "y": [3]}, "b": 1})
        );
    }

    #[test]
    fn list_map_items_merge_by_key() {
        let schema = Schema::list_map(&["name"], Schema::unknown());
        let live = json!([{"name": "a", "image": "1", "tty": true}, {"name": "b", "image": "2"}]);
        let config = json!([{"name": "b", "image": "3"}, {"name": "c"}]);
        assert_eq!(
            merge(&live, &config, &schema),
            json!([{"name": "a", "image": "1", "tty": true}, {"name": "b", "image": "3"}, {"name": "c"}])
        );
    }

    #[test]
    fn an_update_takes_changed_fields_from_their_owner() {
        let live = json!({"metadata": {"name": "p"}, "spec": {"a": 1, "b": 1}});
        let created = update(
            &json!({}),
            &live,
            &Schema::unknown(),
            MAIN,
            &[],
            writer("git"),
        );
        assert_eq!(created.len(), 1);
        let patched = json!({"metadata": {"name": "p"}, "spec": {"a": 2, "b": 1}});
        let written = update(
            &live,
            &patched,
            &Schema::unknown(),
            MAIN,
            &created,
            writer("ops"),
        );
        let owners: Vec<(String, Vec<String>)> = written
            .iter()
            .map(|e| {
                (
                    e.manager.clone(),
                    e.fields.iter().map(|p| display(p)).collect(),
                )
            })
            .collect();
        assert_eq!(
            owners,
            [
                ("git".to_owned(), vec![".spec.b".to_owned()]),
                ("ops".to_owned(), vec![".spec.a".to_owned()])
            ]
        );
    }
}
