//! What the server knows of an object's shape: enough to merge and track
//! ownership the way server-side apply does, and to prune unknown fields
//! of custom resources. It validates nothing else (types, formats, CEL).
//!
//! - Objects are granular maps (each key owned and merged on its own)
//!   unless declared `x-kubernetes-map-type: atomic`.
//! - Lists are atomic (replaced whole, owned as one field) unless declared
//!   `x-kubernetes-list-type: map` (items merged by their
//!   `x-kubernetes-list-map-keys`) or `set` (items owned one by one).
//! - Below `x-kubernetes-preserve-unknown-fields`, nothing is declared, so
//!   the same defaults apply: maps granular, lists atomic. This is what the
//!   API server deduces for schemaless fields.
//!
//! References: <https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy>,
//! <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#field-pruning>.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// How a list merges and is owned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ListType {
    /// Replaced whole; one owner for the whole list (the default).
    #[default]
    Atomic,
    /// Scalars, each owned on its own.
    Set,
    /// Objects identified by the values of these keys.
    Map(Vec<String>),
}

/// The shape of one node of an object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    /// Declared fields of an object.
    pub properties: BTreeMap<String, Schema>,
    /// The schema of every value of a map (`additionalProperties`).
    pub additional: Option<Box<Schema>>,
    /// The schema of a list's items.
    pub items: Option<Box<Schema>>,
    /// How a list merges.
    pub list_type: ListType,
    /// `x-kubernetes-map-type: atomic` (or a struct declared atomic).
    pub atomic_map: bool,
    /// Unknown fields are kept (`x-kubernetes-preserve-unknown-fields`),
    /// or the node was never declared, so nothing can be pruned.
    pub preserve_unknown: bool,
}

impl Schema {
    /// A node nothing is known about: maps granular, lists atomic, nothing
    /// pruned.
    pub fn unknown() -> Schema {
        Schema {
            preserve_unknown: true,
            ..Schema::default()
        }
    }

    /// An object with these declared fields; other fields are kept (the
    /// built-in kinds are not pruned here).
    pub fn object<const N: usize>(fields: [(&str, Schema); N]) -> Schema {
        Schema {
            properties: fields
                .into_iter()
                .map(|(name, schema)| (name.to_owned(), schema))
                .collect(),
            preserve_unknown: true,
            ..Schema::default()
        }
    }

    /// A list of objects merged by `keys`.
    pub fn list_map(keys: &[&str], items: Schema) -> Schema {
        Schema {
            items: Some(Box::new(items)),
            list_type: ListType::Map(keys.iter().map(|k| (*k).to_owned()).collect()),
            preserve_unknown: true,
            ..Schema::default()
        }
    }

    /// A map replaced whole.
    pub fn atomic_map() -> Schema {
        Schema {
            atomic_map: true,
            preserve_unknown: true,
            ..Schema::default()
        }
    }

    /// The schema of field `name` of an object.
    pub fn field(&self, name: &str) -> Schema {
        if let Some(schema) = self.properties.get(name) {
            return schema.clone();
        }
        if let Some(schema) = &self.additional {
            return (**schema).clone();
        }
        Schema::unknown()
    }

    /// The schema of a list's items.
    pub fn item(&self) -> Schema {
        self.items
            .as_deref()
            .cloned()
            .unwrap_or_else(Schema::unknown)
    }

    /// The schema declared by a CRD version's `openAPIV3Schema`.
    pub fn from_openapi(node: &Value) -> Schema {
        let text = |key: &str| node.get(key).and_then(Value::as_str);
        let flag = |key: &str| node.get(key).and_then(Value::as_bool).unwrap_or(false);
        let mut schema = Schema {
            preserve_unknown: flag("x-kubernetes-preserve-unknown-fields")
                || flag("x-kubernetes-int-or-string")
                || flag("x-kubernetes-embedded-resource"),
            atomic_map: text("x-kubernetes-map-type") == Some("atomic"),
            ..Schema::default()
        };
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            schema.properties = properties
                .iter()
                .map(|(name, child)| (name.clone(), Schema::from_openapi(child)))
                .collect();
        }
        match node.get("additionalProperties") {
            Some(Value::Bool(true)) => schema.preserve_unknown = true,
            Some(child @ Value::Object(_)) => {
                schema.additional = Some(Box::new(Schema::from_openapi(child)))
            }
            _ => {}
        }
        if let Some(items) = node.get("items") {
            schema.items = Some(Box::new(Schema::from_openapi(items)));
        }
        schema.list_type = match text("x-kubernetes-list-type") {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                node.get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        };
        // A node with no declared shape at all keeps what it is given.
        if node.get("type").is_none()
            && node.get("properties").is_none()
            && node.get("items").is_none()
        {
            schema.preserve_unknown = true;
        }
        schema
    }

    /// Drops the fields this schema does not declare, as the API server
    /// prunes custom resources: unknown fields are removed silently unless
    /// a node preserves them.
    pub fn prune(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                if !self.preserve_unknown && self.additional.is_none() {
                    map.retain(|key, _| self.properties.contains_key(key));
                }
                for (key, child) in map.iter_mut() {
                    if let Some(schema) = self.properties.get(key) {
                        schema.prune(child);
                    } else if let Some(schema) = &self.additional {
                        schema.prune(child);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(schema) = &self.items {
                    for item in items {
                        schema.prune(item);
                    }
                }
            }
            _ => {}
        }
    }

    /// The fields of `value` pruning would drop, as dotted paths
    /// (`spec.typo`), for strict field validation.
    pub fn unknown_fields(&self, value: &Value, path: &str) -> Vec<String> {
        let mut unknown = Vec::new();
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    match (self.properties.get(key), &self.additional) {
                        (Some(schema), _) => {
                            unknown.extend(schema.unknown_fields(child, &child_path))
                        }
                        (None, Some(schema)) => {
                            unknown.extend(schema.unknown_fields(child, &child_path))
                        }
                        (None, None) if !self.preserve_unknown => unknown.push(child_path),
                        (None, None) => {}
                    }
                }
            }
            Value::Array(items) => {
                if let Some(schema) = &self.items {
                    for (index, item) in items.iter().enumerate() {
                        unknown.extend(schema.unknown_fields(item, &format!("{path}[{index}]")));
                    }
                }
            }
            _ => {}
        }
        unknown
    }

    /// The identity of a list-map item: the values of its keys, as a JSON
    /// object (keys absent from the item are left out).
    pub fn item_key(keys: &[String], item: &Value) -> Value {
        let mut key = Map::new();
        for name in keys {
            if let Some(value) = item.get(name) {
                key.insert(name.clone(), value.clone());
            }
        }
        Value::Object(key)
    }
}

/// The pod spec fields merged by key, as the built-in API declares them
/// (`patchMergeKey` / `listMapKeys` in Kubernetes' OpenAPI). Lists not named
/// here are atomic.
pub fn pod_spec() -> Schema {
    let container = Schema::object([
        (
            "ports",
            Schema::list_map(&["containerPort", "protocol"], Schema::unknown()),
        ),
        ("env", Schema::list_map(&["name"], Schema::unknown())),
        (
            "volumeMounts",
            Schema::list_map(&["mountPath"], Schema::unknown()),
        ),
    ]);
    Schema::object([
        ("containers", Schema::list_map(&["name"], container.clone())),
        ("initContainers", Schema::list_map(&["name"], container)),
        ("volumes", Schema::list_map(&["name"], Schema::unknown())),
        (
            "imagePullSecrets",
            Schema::list_map(&["name"], Schema::unknown()),
        ),
    ])
}

/// The parts of a Deployment whose merge differs from the defaults.
pub fn deployment() -> Schema {
    Schema::object([(
        "spec",
        Schema::object([
            // LabelSelector is `structType: atomic`.
            ("selector", Schema::atomic_map()),
            ("template", Schema::object([("spec", pod_spec())])),
        ]),
    )])
}

/// A Pod.
pub fn pod() -> Schema {
    Schema::object([("spec", pod_spec())])
}

/// A Service: ports merged by port and protocol.
pub fn service() -> Schema {
    Schema::object([(
        "spec",
        Schema::object([(
            "ports",
            Schema::list_map(&["port", "protocol"], Schema::unknown()),
        )]),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_crd_schema_declares_list_maps_sets_and_preserved_fields() {
        let schema = Schema::from_openapi(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "ports": {"type": "array", "x-kubernetes-list-type": "map",
                              "x-kubernetes-list-map-keys": ["name"],
                              "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "selector": {"type": "object", "x-kubernetes-map-type": "atomic"}
                }}
            }
        }));
        let spec = schema.field("spec");
        assert_eq!(
            spec.field("ports").list_type,
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(spec.field("tags").list_type, ListType::Set);
        assert!(spec.field("config").preserve_unknown);
        assert!(spec.field("selector").atomic_map);
        assert!(!spec.preserve_unknown);
    }

    #[test]
    fn pruning_drops_undeclared_fields_and_keeps_preserved_ones() {
        let schema = Schema::from_openapi(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "provider": {"type": "object", "properties": {"prometheus": {"type": "object"}}},
                    "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}
            }
        }));
        let mut object = json!({"spec": {
            "provider": {"kubernetes": {"x": 1}},
            "config": {"anything": [1, {"deep": true}]},
            "typo": 1
        }});
        assert_eq!(
            schema.field("spec").unknown_fields(&object["spec"], "spec"),
            ["spec.provider.kubernetes", "spec.typo"]
        );
        schema.field("spec").prune(&mut object["spec"]);
        assert_eq!(
            object,
            json!({"spec": {"provider": {}, "config": {"anything": [1, {"deep": true}]}}})
        );
    }
}
