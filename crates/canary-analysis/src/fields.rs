//! Reading typed fields out of a [`Node`] tree, collecting every problem
//! with its line and path instead of stopping at the first.
//!
//! Unknown fields are problems (naming the fields allowed), and fields that
//! Argo Rollouts has but canary does not support get their own reason, so
//! nothing in a file is silently ignored.

use std::time::Duration;

use crate::args::has_arg_reference;
use crate::problem::{join, Problem};
use crate::time::parse_duration;
use crate::yaml::{Entry, Node, Value};

/// Where problems go while a document is read.
#[derive(Debug, Default)]
pub struct Reader {
    /// Problems found so far.
    pub problems: Vec<Problem>,
    /// When set, a string that still holds `{{args.…}}` is accepted in a
    /// number or duration field without a problem (its value is only
    /// known once the args are supplied).
    pub defer_args: bool,
}

impl Reader {
    /// A reader that checks every field now.
    pub fn new() -> Reader {
        Reader::default()
    }

    /// A reader that leaves fields holding arg references for later.
    pub fn deferring_args() -> Reader {
        Reader {
            problems: Vec::new(),
            defer_args: true,
        }
    }

    /// Records a problem.
    pub fn fail(&mut self, line: usize, path: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem::new(Some(line), path, reason));
    }

    /// Whether `node` is a string whose value waits for args.
    fn deferred(&self, node: &Node) -> bool {
        self.defer_args && node.as_str().is_some_and(has_arg_reference)
    }
}

/// A field Argo Rollouts defines that canary refuses, and why.
pub type Unsupported = (&'static str, &'static str);

/// The fields of one mapping.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'n> {
    node: &'n Node,
    entries: &'n [Entry],
}

/// A path plus the mapping it names, so problems carry both.
#[derive(Debug, Clone)]
pub struct Object<'n> {
    /// Path of the mapping (`spec.metrics[0]`).
    pub path: String,
    fields: Fields<'n>,
}

impl<'n> Object<'n> {
    /// Opens `node` as a mapping whose keys must be in `known`; keys in
    /// `unsupported` are refused with their reason, other keys as unknown.
    pub fn open(
        r: &mut Reader,
        path: impl Into<String>,
        node: &'n Node,
        known: &[&str],
        unsupported: &[Unsupported],
    ) -> Option<Object<'n>> {
        let path = path.into();
        let Value::Map(entries) = &node.value else {
            let reason = format!("expected a mapping, found {}", node.kind());
            r.fail(node.line, path, reason);
            return None;
        };
        for entry in entries {
            if known.contains(&entry.key.as_str()) {
                continue;
            }
            let at = join(&path, &entry.key);
            match unsupported.iter().find(|(name, _)| *name == entry.key) {
                Some((_, why)) => r.fail(entry.line, at, format!("not supported: {why}")),
                None => r.fail(
                    entry.line,
                    at,
                    format!("unknown field; expected one of: {}", known.join(", ")),
                ),
            }
        }
        Some(Object {
            path,
            fields: Fields { node, entries },
        })
    }

    /// The mapping's own node.
    pub fn node(&self) -> &'n Node {
        self.fields.node
    }

    /// Line of the mapping.
    pub fn line(&self) -> usize {
        self.fields.node.line
    }

    /// Path of a field.
    pub fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// A present, non-null field.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.fields
            .entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
            .filter(|n| n.value != Value::Null)
    }

    /// Whether the field is present (even if null).
    pub fn has(&self, key: &str) -> bool {
        self.fields.entries.iter().any(|e| e.key == key)
    }

    /// Records a problem on a field (at its value's line, or the
    /// mapping's line when the field is absent).
    pub fn fail(&self, r: &mut Reader, key: &str, reason: impl Into<String>) {
        let line = self.get(key).map_or(self.line(), |n| n.line);
        r.fail(line, self.at(key), reason);
    }

    /// A required field.
    pub fn require(&self, r: &mut Reader, key: &str) -> Option<&'n Node> {
        let node = self.get(key);
        if node.is_none() {
            self.fail(r, key, "missing; this field is required");
        }
        node
    }

    /// An optional string.
    pub fn string(&self, r: &mut Reader, key: &str) -> Option<String> {
        let node = self.get(key)?;
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                let reason = format!("expected a string, found {}", node.kind());
                r.fail(node.line, self.at(key), reason);
                None
            }
        }
    }

    /// A required, non-empty string.
    pub fn required_string(&self, r: &mut Reader, key: &str) -> Option<String> {
        self.require(r, key)?;
        let s = self.string(r, key)?;
        if s.trim().is_empty() {
            self.fail(r, key, "is empty; this field is required");
            return None;
        }
        Some(s)
    }

    /// An optional boolean.
    pub fn bool(&self, r: &mut Reader, key: &str) -> Option<bool> {
        let node = self.get(key)?;
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                let reason = format!("expected true or false, found {}", node.kind());
                r.fail(node.line, self.at(key), reason);
                None
            }
        }
    }

    /// An optional integer of at least `min`. Like Argo's `IntOrString`,
    /// a string holding a whole number is accepted.
    pub fn int(&self, r: &mut Reader, key: &str, min: i64) -> Option<i64> {
        let node = self.get(key)?;
        if r.deferred(node) {
            return None;
        }
        let value = match &node.value {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match value {
            Some(i) if i >= min => Some(i),
            Some(i) => {
                self.fail(r, key, format!("must be at least {min}, got {i}"));
                None
            }
            None => {
                let reason = format!("expected a whole number, found {}", describe(node));
                r.fail(node.line, self.at(key), reason);
                None
            }
        }
    }

    /// An optional number.
    pub fn float(&self, r: &mut Reader, key: &str) -> Option<f64> {
        let node = self.get(key)?;
        if r.deferred(node) {
            return None;
        }
        match &node.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) if s.trim().parse::<f64>().is_ok() => s.trim().parse().ok(),
            _ => {
                let reason = format!("expected a number, found {}", describe(node));
                r.fail(node.line, self.at(key), reason);
                None
            }
        }
    }

    /// An optional Go duration string (`30s`, `5m`).
    pub fn duration(&self, r: &mut Reader, key: &str) -> Option<Duration> {
        let node = self.get(key)?;
        if r.deferred(node) {
            return None;
        }
        match &node.value {
            Value::Str(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(reason) => {
                    r.fail(node.line, self.at(key), reason);
                    None
                }
            },
            _ => {
                let reason = format!(
                    "expected a duration string such as \"30s\", found {}",
                    describe(node)
                );
                r.fail(node.line, self.at(key), reason);
                None
            }
        }
    }

    /// An optional list.
    pub fn list(&self, r: &mut Reader, key: &str) -> Option<&'n [Node]> {
        let node = self.get(key)?;
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                let reason = format!("expected a list, found {}", node.kind());
                r.fail(node.line, self.at(key), reason);
                None
            }
        }
    }

    /// An optional list of strings.
    pub fn strings(&self, r: &mut Reader, key: &str) -> Option<Vec<String>> {
        let items = self.list(r, key)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_owned()),
                None => {
                    let reason = format!("expected a string, found {}", item.kind());
                    r.fail(item.line, format!("{}[{i}]", self.at(key)), reason);
                }
            }
        }
        Some(out)
    }

    /// An optional mapping of strings to strings.
    pub fn string_map(&self, r: &mut Reader, key: &str) -> Option<Vec<(String, String)>> {
        let node = self.get(key)?;
        let Value::Map(entries) = &node.value else {
            let reason = format!("expected a mapping of strings, found {}", node.kind());
            r.fail(node.line, self.at(key), reason);
            return None;
        };
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            match scalar_text(&entry.value) {
                Some(s) => out.push((entry.key.clone(), s)),
                None => {
                    let reason = format!("expected a string, found {}", entry.value.kind());
                    r.fail(entry.value.line, join(&self.at(key), &entry.key), reason);
                }
            }
        }
        Some(out)
    }
}

/// The text of a scalar (strings as they are, numbers and booleans as
/// written), as Kubernetes string maps read them.
pub fn scalar_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Describes a value for an error: its kind, and strings quoted.
fn describe(node: &Node) -> String {
    match &node.value {
        Value::Str(s) => format!("{s:?}"),
        _ => node.kind().to_owned(),
    }
}
