//! Fingerprints of pod templates: the identity of a canary version (a new
//! one starts a new rollout) and the check that the stable Deployment runs
//! the canary's template after a promotion.
//!
//! A fingerprint is the SHA-256 of the template's JSON with object keys
//! sorted, so it depends on the content only, not on the order the API
//! server (or a serialiser) wrote the keys in.

use ring::digest::{digest, SHA256};
use serde_json::Value;

/// Hex digits kept in a fingerprint: 64 bits, plenty to tell the versions
/// of one Deployment apart, short enough to read in a status.
const FINGERPRINT_HEX_DIGITS: usize = 16;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    digest(&SHA256, bytes)
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `value` as JSON text with every object's keys sorted.
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| {
                    let name = Value::String(key.clone()).to_string();
                    format!("{name}:{}", canonical_json(&map[key]))
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// The fingerprint of a whole pod template: a canary version's identity.
pub fn template_fingerprint(template: &Value) -> String {
    let mut hex = sha256_hex(canonical_json(template).as_bytes());
    hex.truncate(FINGERPRINT_HEX_DIGITS);
    hex
}

/// The fingerprint of a pod template without its labels: equal for the
/// stable and the canary Deployment once the canary's template was copied
/// to stable (which keeps its own labels, as its selector requires).
pub fn template_body_fingerprint(template: &Value) -> String {
    let mut body = template.clone();
    if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("labels");
    }
    template_fingerprint(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_fingerprint() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"q":2,"p":3}],"x":"s"}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[1,{"p":3,"q":2}]},"b":1}"#).unwrap();
        assert_eq!(template_fingerprint(&a), template_fingerprint(&b));
        assert_eq!(template_fingerprint(&a).len(), 16);
        let c = json!({"a": {"x": "s", "y": [{"p": 3, "q": 2}, 1]}, "b": 1});
        assert_ne!(template_fingerprint(&a), template_fingerprint(&c));
    }

    #[test]
    fn body_fingerprint_ignores_labels_only() {
        let stable = json!({"metadata": {"labels": {"version": "v1"}}, "spec": {"containers": [{"image": "web:2"}]}});
        let canary = json!({"metadata": {"labels": {"version": "v2"}}, "spec": {"containers": [{"image": "web:2"}]}});
        assert_ne!(template_fingerprint(&stable), template_fingerprint(&canary));
        assert_eq!(
            template_body_fingerprint(&stable),
            template_body_fingerprint(&canary)
        );
        let older = json!({"metadata": {"labels": {"version": "v1"}}, "spec": {"containers": [{"image": "web:1"}]}});
        assert_ne!(
            template_body_fingerprint(&older),
            template_body_fingerprint(&canary)
        );
    }

    #[test]
    fn sha256_is_the_standard_one() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
