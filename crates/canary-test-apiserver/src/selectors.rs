//! Label and field selectors of list and watch requests.
//!
//! Labels: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`,
//! `!k`, comma-separated (all must hold). Fields: `metadata.name` and
//! `metadata.namespace` with `=`, `==`, `!=`; any other field is refused
//! with 400, as for kinds that declare no extra selectable fields.
//!
//! References: <https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors>,
//! <https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/>.

use serde_json::Value;

/// One requirement on labels.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn value_list(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised list of values, found {text:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parses `text`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let requirement = if let Some((key, values)) = part.split_once(" notin ") {
                LabelRequirement::NotIn(key.trim().to_owned(), value_list(values)?)
            } else if let Some((key, values)) = part.split_once(" in ") {
                LabelRequirement::In(key.trim().to_owned(), value_list(values)?)
            } else if let Some((key, value)) = part.split_once("!=") {
                LabelRequirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = part.split_once("==") {
                LabelRequirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = part.split_once('=') {
                LabelRequirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some(key) = part.strip_prefix('!') {
                LabelRequirement::DoesNotExist(key.trim().to_owned())
            } else if part.contains(char::is_whitespace) {
                return Err(format!("unable to parse requirement: {part:?}"));
            } else {
                LabelRequirement::Exists(part.to_owned())
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether `object`'s labels satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                LabelRequirement::Equals(key, value) => label(key) == Some(value.as_str()),
                LabelRequirement::NotEquals(key, value) => label(key) != Some(value.as_str()),
                LabelRequirement::In(key, values) => {
                    label(key).is_some_and(|v| values.iter().any(|x| x == v))
                }
                LabelRequirement::NotIn(key, values) => {
                    label(key).is_none_or(|v| values.iter().all(|x| x != v))
                }
                LabelRequirement::Exists(key) => label(key).is_some(),
                LabelRequirement::DoesNotExist(key) => label(key).is_none(),
            })
    }
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses `text`; only `metadata.name` and `metadata.namespace` are
    /// selectable.
    pub fn parse(text: &str) -> Result<FieldSelector, String> {
        let mut requirements = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: {part:?}; can't understand {part:?}"
                ));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("field label not supported: {field}"));
            }
            requirements.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether `object` satisfies every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(field, equal, value)| {
            let pointer = if field == "metadata.name" {
                "/metadata/name"
            } else {
                "/metadata/namespace"
            };
            let actual = object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("");
            (actual == value) == *equal
        })
    }

    /// The one name an equality on `metadata.name` selects, if any.
    pub fn name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|(field, equal, _)| field == "metadata.name" && *equal)
            .map(|(_, _, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "shop", "labels": labels}})
    }

    #[test]
    fn label_selectors_follow_the_documented_grammar() {
        let web_canary = pod(json!({"app": "web", "version": "canary"}));
        let cases = [
            ("app=web", true),
            ("app==web,version=canary", true),
            ("app=web,version=stable", false),
            ("version!=stable", true),
            ("version in (stable, canary)", true),
            ("version notin (canary)", false),
            ("app", true),
            ("!app", false),
            ("!tier", true),
            ("", true),
        ];
        for (selector, expected) in cases {
            let parsed = LabelSelector::parse(selector).unwrap();
            assert_eq!(parsed.matches(&web_canary), expected, "{selector}");
        }
        assert!(LabelSelector::parse("app web").is_err());
    }

    #[test]
    fn field_selectors_know_name_and_namespace_only() {
        let object = pod(json!({}));
        assert!(FieldSelector::parse("metadata.name=web-1")
            .unwrap()
            .matches(&object));
        assert!(!FieldSelector::parse("metadata.namespace!=shop")
            .unwrap()
            .matches(&object));
        assert_eq!(
            FieldSelector::parse("status.phase=Running").unwrap_err(),
            "field label not supported: status.phase"
        );
    }
}
