//! The patch formats a `PATCH` can carry, chosen by its `Content-Type`.
//!
//! - `application/merge-patch+json`: RFC 7386. Maps merge, `null` removes
//!   a key, a list is replaced whole.
//! - `application/json-patch+json`: RFC 6902 operations.
//! - `application/strategic-merge-patch+json`: for built-in kinds only (a
//!   custom resource answers 415, as the API server does). Like a merge
//!   patch, except that lists the kind merges by key (containers by name…)
//!   merge item by item, and the `$patch`, `$setElementOrder`,
//!   `$deleteFromPrimitiveList` and `$retainKeys` directives are read.
//! - `application/apply-patch+yaml`: server-side apply, see
//!   [`crate::managed_fields`].
//!
//! Reference: <https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/>
//! and <https://kubernetes.io/docs/reference/using-api/api-concepts/#patch-and-apply>.

use serde_json::{Map, Value};

use crate::schema::{ListType, Schema};

/// A patch format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// RFC 7386.
    Merge,
    /// RFC 6902.
    Json,
    /// Kubernetes' strategic merge patch.
    Strategic,
    /// Server-side apply.
    Apply,
}

impl PatchKind {
    /// The format a `Content-Type` names; `None` for any other.
    pub fn from_content_type(content_type: &str) -> Option<PatchKind> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// Applies an RFC 7386 merge patch to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Applies an RFC 6902 JSON patch to `target`.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let operations: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|error| error.to_string())?;
    json_patch::patch(target, &operations).map_err(|error| error.to_string())
}

/// Applies a strategic merge patch to `target`, with list keys from
/// `schema`.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value, schema: &Schema) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            *target = Value::Object(replaced);
            return;
        }
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        map.retain(|key, _| retain.iter().any(|k| k.as_str() == Some(key)));
    }
    for (key, value) in patch {
        if key.starts_with("$setElementOrder/") || key == "$retainKeys" || key == "$patch" {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(gone)) = (map.get_mut(field), value) {
                items.retain(|item| !gone.contains(item));
            }
            continue;
        }
        if value.is_null() {
            map.remove(key);
            continue;
        }
        let field_schema = schema.field(key);
        match (&field_schema.list_type, value) {
            (ListType::Map(keys), Value::Array(items)) => {
                let current = map.entry(key.clone()).or_insert(Value::Array(Vec::new()));
                if !current.is_array() {
                    *current = Value::Array(Vec::new());
                }
                merge_keyed_list(current, items, keys, &field_schema.item());
            }
            _ => {
                let slot = map.entry(key.clone()).or_insert(Value::Null);
                if value.is_object() {
                    strategic_merge_patch(slot, value, &field_schema);
                    if slot.is_null() {
                        map.remove(key);
                    }
                } else {
                    *slot = value.clone();
                }
            }
        }
    }
}

fn merge_keyed_list(
    current: &mut Value,
    patch_items: &[Value],
    keys: &[String],
    item_schema: &Schema,
) {
    let Value::Array(items) = current else { return };
    for patch_item in patch_items {
        if patch_item.get("$patch").and_then(Value::as_str) == Some("replace") {
            *items = patch_items
                .iter()
                .filter(|item| item.get("$patch").is_none())
                .cloned()
                .collect();
            return;
        }
    }
    for patch_item in patch_items {
        let key = Schema::item_key(keys, patch_item);
        let position = items
            .iter()
            .position(|item| Schema::item_key(keys, item) == key);
        let deleting = patch_item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, deleting) {
            (Some(index), true) => {
                items.remove(index);
            }
            (None, true) => {}
            (Some(index), false) => {
                if let Some(item) = items.get_mut(index) {
                    strategic_merge_patch(item, patch_item, item_schema);
                }
            }
            (None, false) => {
                let mut item = Value::Object(Map::new());
                strategic_merge_patch(&mut item, patch_item, item_schema);
                items.push(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // RFC 7386 appendix A, a selection.
    #[test]
    fn merge_patch_follows_rfc_7386() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            let mut value = target.clone();
            merge_patch(&mut value, &patch);
            assert_eq!(value, expected, "{target} + {patch}");
        }
    }

    #[test]
    fn json_patch_follows_rfc_6902() {
        let mut value = json!({"spec": {"replicas": 1}});
        json_patch(
            &mut value,
            &json!([{"op": "test", "path": "/spec/replicas", "value": 1},
                    {"op": "replace", "path": "/spec/replicas", "value": 3}]),
        )
        .unwrap();
        assert_eq!(value, json!({"spec": {"replicas": 3}}));
        assert!(json_patch(
            &mut value,
            &json!([{"op": "test", "path": "/spec/replicas", "value": 1}])
        )
        .is_err());
    }

    #[test]
    fn strategic_merge_patch_merges_containers_by_name() {
        let schema = crate::schema::deployment();
        let mut deployment = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "web:1"}, {"name": "sidecar", "image": "proxy:1"}
        ]}}}});
        strategic_merge_patch(
            &mut deployment,
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [{"name": "app", "image": "web:2"}, {"name": "sidecar", "$patch": "delete"}]
            }}}}),
            &schema,
        );
        assert_eq!(
            deployment,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}})
        );
    }
}
