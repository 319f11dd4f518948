//! Field paths and sets of them: what a field manager owns.
//!
//! A path walks an object: a field of a map, an item of a list-map by its
//! key values, or a value of a set. A set holds the leaves a manager
//! owns (scalars, atomic lists and maps, empty maps) and the list-map
//! items themselves. It is written into `metadata.managedFields` as
//! `fieldsV1`: `f:<field>`, `k:<key object>`, `v:<value>`, and `.` for an
//! item that is itself owned.
//!
//! Reference: <https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management>.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::schema::{ListType, Schema};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of a map.
    Field(String),
    /// An item of a list-map: its key fields, as JSON text of an object.
    Key(String),
    /// An item of a set, as JSON text.
    Value(String),
}

/// A path from the object's root.
pub type FieldPath = Vec<PathElement>;

/// `.spec.template.spec.containers[name="app"].image`, as the API server
/// names fields in conflicts.
pub fn display(path: &[PathElement]) -> String {
    let mut text = String::new();
    for element in path {
        match element {
            PathElement::Field(name) => {
                text.push('.');
                text.push_str(name);
            }
            PathElement::Key(key) => {
                let parts: Vec<String> = match serde_json::from_str::<Map<String, Value>>(key) {
                    Ok(map) => map.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    Err(_) => vec![key.clone()],
                };
                text.push('[');
                text.push_str(&parts.join(","));
                text.push(']');
            }
            PathElement::Value(value) => {
                text.push_str("[=");
                text.push_str(value);
                text.push(']');
            }
        }
    }
    text
}

/// A set of paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    paths: BTreeSet<FieldPath>,
}

impl FieldSet {
    /// No paths.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Adds `path`.
    pub fn insert(&mut self, path: FieldPath) {
        self.paths.insert(path);
    }

    /// Whether `path` is in the set.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.paths.contains(path)
    }

    /// Whether the set holds `path` or a path below it.
    pub fn covers(&self, path: &[PathElement]) -> bool {
        self.paths
            .range(path.to_vec()..)
            .next()
            .is_some_and(|first| first.starts_with(path))
    }

    /// No paths at all.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The paths, in order.
    pub fn iter(&self) -> impl Iterator<Item = &FieldPath> {
        self.paths.iter()
    }

    /// Paths in both.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.intersection(&other.paths).cloned().collect(),
        }
    }

    /// Paths in `self` and not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.difference(&other.paths).cloned().collect(),
        }
    }

    /// Paths in either.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.union(&other.paths).cloned().collect(),
        }
    }

    /// The set as `fieldsV1`.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.paths {
            let mut node = &mut root;
            for (depth, element) in path.iter().enumerate() {
                let key = match element {
                    PathElement::Field(name) => format!("f:{name}"),
                    PathElement::Key(key) => format!("k:{key}"),
                    PathElement::Value(value) => format!("v:{value}"),
                };
                let child = node.entry(key).or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(child) = child else {
                    break;
                };
                let is_last = depth + 1 == path.len();
                if is_last
                    && self
                        .paths
                        .range(path.clone()..)
                        .nth(1)
                        .is_some_and(|next| next.starts_with(path))
                {
                    child.insert(".".to_owned(), Value::Object(Map::new()));
                }
                node = child;
            }
        }
        Value::Object(root)
    }

    /// The set written in `fieldsV1`.
    pub fn from_fields_v1(fields: &Value) -> FieldSet {
        fn walk(node: &Value, path: &mut FieldPath, set: &mut FieldSet) {
            let Some(map) = node.as_object() else { return };
            if (map.is_empty() || map.contains_key(".")) && !path.is_empty() {
                set.insert(path.clone());
            }
            for (key, child) in map {
                let element = if let Some(name) = key.strip_prefix("f:") {
                    PathElement::Field(name.to_owned())
                } else if let Some(k) = key.strip_prefix("k:") {
                    PathElement::Key(k.to_owned())
                } else if let Some(v) = key.strip_prefix("v:") {
                    PathElement::Value(v.to_owned())
                } else {
                    continue;
                };
                path.push(element);
                walk(child, path, set);
                path.pop();
            }
        }
        let mut set = FieldSet::new();
        walk(fields, &mut Vec::new(), &mut set);
        set
    }
}

/// The paths of `value`: its leaves and list-map items, following
/// `schema`.
pub fn paths_of(value: &Value, schema: &Schema) -> FieldSet {
    let mut set = FieldSet::new();
    collect(value, schema, &mut Vec::new(), &mut set);
    set
}

fn collect(value: &Value, schema: &Schema, path: &mut FieldPath, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !schema.atomic_map && !map.is_empty() => {
            for (name, child) in map {
                path.push(PathElement::Field(name.clone()));
                collect(child, &schema.field(name), path, set);
                path.pop();
            }
        }
        Value::Array(items) if schema.list_type != ListType::Atomic => {
            let item_schema = schema.item();
            for item in items {
                match &schema.list_type {
                    ListType::Map(keys) => {
                        path.push(PathElement::Key(Schema::item_key(keys, item).to_string()));
                        set.insert(path.clone());
                        if let Value::Object(fields) = item {
                            for (name, child) in fields {
                                path.push(PathElement::Field(name.clone()));
                                collect(child, &item_schema.field(name), path, set);
                                path.pop();
                            }
                        }
                    }
                    _ => {
                        path.push(PathElement::Value(item.to_string()));
                        set.insert(path.clone());
                    }
                }
                path.pop();
            }
        }
        _ => {
            if !path.is_empty() {
                set.insert(path.clone());
            }
        }
    }
}

/// Whether `item` is the list-map item `key` names.
fn item_matches(item: &Value, key: &str) -> bool {
    let Ok(key) = serde_json::from_str::<Map<String, Value>>(key) else {
        return false;
    };
    let Some(fields) = item.as_object() else {
        return false;
    };
    key.iter()
        .all(|(name, value)| fields.get(name) == Some(value))
}

/// The node at `path`, if any.
pub fn value_at<'a>(value: &'a Value, path: &[PathElement]) -> Option<&'a Value> {
    let mut node = value;
    for element in path {
        node = match element {
            PathElement::Field(name) => node.get(name)?,
            PathElement::Key(key) => node
                .as_array()?
                .iter()
                .find(|item| item_matches(item, key))?,
            PathElement::Value(text) => node
                .as_array()?
                .iter()
                .find(|item| item.to_string() == *text)?,
        };
    }
    Some(node)
}

/// Removes the node at `path`; nothing when it is not there.
pub fn remove_at(value: &mut Value, path: &[PathElement]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for element in parents {
        let next = match element {
            PathElement::Field(name) => node.get_mut(name),
            PathElement::Key(key) => node
                .as_array_mut()
                .and_then(|items| items.iter_mut().find(|item| item_matches(item, key))),
            PathElement::Value(text) => node
                .as_array_mut()
                .and_then(|items| items.iter_mut().find(|item| item.to_string() == *text)),
        };
        let Some(next) = next else { return };
        node = next;
    }
    match last {
        PathElement::Field(name) => {
            if let Some(map) = node.as_object_mut() {
                map.remove(name);
            }
        }
        PathElement::Key(key) => {
            if let Some(items) = node.as_array_mut() {
                items.retain(|item| !item_matches(item, key));
            }
        }
        PathElement::Value(text) => {
            if let Some(items) = node.as_array_mut() {
                items.retain(|item| item.to_string().as_str() != text.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_owned())
    }

    #[test]
    fn fields_v1_marks_owned_items_with_a_dot() {
        let schema = crate::schema::deployment();
        let set = paths_of(
            &json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}}),
            &schema,
        );
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()), set);
    }

    #[test]
    fn schemaless_lists_are_one_field_and_maps_are_many() {
        let set = paths_of(
            &json!({"pluginConfig": {"routes": [{"name": "web"}], "splits": {"web": {"canary_weight_bp": 1000}}}}),
            &Schema::unknown(),
        );
        let paths: Vec<String> = set.iter().map(|p| display(p)).collect();
        assert_eq!(
            paths,
            [
                ".pluginConfig.routes",
                ".pluginConfig.splits.web.canary_weight_bp"
            ]
        );
    }

    #[test]
    fn paths_find_and_remove_list_map_items() {
        let mut object =
            json!({"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]});
        let path = vec![
            field("containers"),
            PathElement::Key("{\"name\":\"b\"}".into()),
            field("image"),
        ];
        assert_eq!(value_at(&object, &path), Some(&json!("2")));
        assert_eq!(display(&path), ".containers[name=\"b\"].image");
        remove_at(&mut object, &path[..2]);
        assert_eq!(object, json!({"containers": [{"name": "a", "image": "1"}]}));
        let set: FieldSet = paths_of(&object, &Schema::unknown());
        assert!(set.covers(&[field("containers")]));
        assert!(!set.covers(&[field("spec")]));
    }
}
