//! Template arguments: declarations (`spec.args` of a template, `args` of
//! a rollout's analysis), and `{{args.name}}` substitution, which happens
//! on the document tree before it is read into typed metrics, as Argo
//! Rollouts substitutes on the metric's JSON.

use std::collections::BTreeMap;

use crate::fields::{Object, Reader, Unsupported};
use crate::yaml::Node;

/// One argument as declared or supplied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The argument's name (`service-name`).
    pub name: String,
    /// Its value; `None` for a template argument the rollout must supply.
    pub value: Option<ArgValue>,
    /// Line of the declaration.
    pub line: usize,
}

/// Where an argument's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgValue {
    /// Written out.
    Literal(String),
    /// A key of a Kubernetes Secret, read by the controller at run time.
    Secret(SecretKeyRef),
}

/// `valueFrom.secretKeyRef`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key inside the secret.
    pub key: String,
}

/// Reads a list of argument declarations from field `key` of `object`.
pub fn read_args(r: &mut Reader, object: &Object<'_>, key: &str) -> Vec<Arg> {
    let Some(items) = object.list(r, key) else {
        return Vec::new();
    };
    let mut out: Vec<Arg> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", object.at(key));
        let Some(arg) = Object::open(r, path, item, &["name", "value", "valueFrom"], &[]) else {
            continue;
        };
        let Some(name) = arg.required_string(r, "name") else {
            continue;
        };
        if out.iter().any(|a| a.name == name) {
            arg.fail(r, "name", format!("argument {name:?} is declared twice"));
        }
        let value = read_value(r, &arg);
        out.push(Arg {
            name,
            value,
            line: item.line,
        });
    }
    out
}

const UNSUPPORTED_VALUE_FROM: &[Unsupported] = &[
    (
        "fieldRef",
        "canary reads no Kubernetes object fields; write the value with `value`",
    ),
    (
        "podTemplateHashValue",
        "canary does not manage ReplicaSets; pass the version name with `value`",
    ),
];

fn read_value(r: &mut Reader, arg: &Object<'_>) -> Option<ArgValue> {
    let literal = arg
        .get("value")
        .and_then(|node| match crate::fields::scalar_text(node) {
            Some(s) => Some(s),
            None => {
                arg.fail(
                    r,
                    "value",
                    format!("expected a string, found {}", node.kind()),
                );
                None
            }
        });
    let from = arg.get("valueFrom");
    if literal.is_some() && from.is_some() {
        arg.fail(
            r,
            "valueFrom",
            "set either `value` or `valueFrom`, not both",
        );
        return None;
    }
    if let Some(literal) = literal {
        return Some(ArgValue::Literal(literal));
    }
    let from = Object::open(
        r,
        arg.at("valueFrom"),
        from?,
        &["secretKeyRef"],
        UNSUPPORTED_VALUE_FROM,
    )?;
    let node = from.require(r, "secretKeyRef")?;
    let secret = Object::open(r, from.at("secretKeyRef"), node, &["name", "key"], &[])?;
    let name = secret.required_string(r, "name");
    let key = secret.required_string(r, "key");
    Some(ArgValue::Secret(SecretKeyRef {
        name: name?,
        key: key?,
    }))
}

/// Whether a string holds a `{{…}}` template tag.
pub fn has_arg_reference(text: &str) -> bool {
    text.contains("{{")
}

/// The tags in a string: the trimmed text between each `{{` and `}}`.
pub fn tags(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    out
}

/// The argument name a tag refers to (`args.name` → `name`).
pub fn arg_name(tag: &str) -> Option<&str> {
    tag.strip_prefix("args.").map(str::trim)
}

/// Replaces every `{{args.name}}` in the string values of `node` with the
/// argument's value. Returns the tags that could not be resolved, with the
/// line they were on.
pub fn substitute(node: &mut Node, values: &BTreeMap<String, String>) -> Vec<(String, usize)> {
    let mut unresolved = Vec::new();
    node.for_each_string_mut(&mut |text, line| {
        if !has_arg_reference(text) {
            return;
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else { break };
            let tag = after[..end].trim();
            out.push_str(&rest[..start]);
            match arg_name(tag).and_then(|name| values.get(name)) {
                Some(value) => out.push_str(value),
                None => {
                    unresolved.push((tag.to_owned(), line));
                    out.push_str(&rest[start..start + 2 + end + 2]);
                }
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        *text = out;
    });
    unresolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;

    #[test]
    fn finds_tags_with_and_without_spaces() {
        assert_eq!(
            tags("a {{args.x}} b {{ args.y }}"),
            vec!["args.x", "args.y"]
        );
        assert_eq!(arg_name("args.service-name"), Some("service-name"));
        assert_eq!(arg_name("inputs.x"), None);
    }

    #[test]
    fn substitutes_every_string_and_reports_the_rest() {
        let mut docs = parse_documents(
            "q: 'up{job=\"{{args.job}}\"}'\nlist: ['{{ args.job }}', '{{args.nope}}']\n",
        )
        .expect("valid");
        let values = BTreeMap::from([("job".to_owned(), "web".to_owned())]);
        let unresolved = substitute(&mut docs[0], &values);
        assert_eq!(
            docs[0].get("q").and_then(Node::as_str),
            Some("up{job=\"web\"}")
        );
        assert_eq!(unresolved, vec![("args.nope".to_owned(), 2)]);
    }
}
