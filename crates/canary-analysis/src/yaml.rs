//! YAML documents as trees that remember where each value was written, so
//! every problem can name its line.
//!
//! Scalars are resolved with the YAML 1.2 core schema: `null`/`~`/empty,
//! `true`/`false`, integers (decimal, `0x`, `0o`), floats (including
//! `.inf` and `.nan`); quoted scalars and anything else are strings.
//! Aliases are expanded; duplicate keys are problems.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::problem::Problem;

/// A value and the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// 1-based line where the value starts.
    pub line: usize,
}

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string (quoted, block, or a plain scalar that is nothing else).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with string keys, in document order.
    Map(Vec<Entry>),
}

/// One key of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// 1-based line of the key.
    pub line: usize,
    /// The value.
    pub value: Node,
}

impl Node {
    /// A short description of the value's kind for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The entries if this is a mapping.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| &entry.value)
    }

    /// The string if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Calls `f` on every string scalar (values only, not keys), mutably.
    pub fn for_each_string_mut(&mut self, f: &mut impl FnMut(&mut String, usize)) {
        let line = self.line;
        match &mut self.value {
            Value::Str(s) => f(s, line),
            Value::Seq(items) => items.iter_mut().for_each(|n| n.for_each_string_mut(f)),
            Value::Map(entries) => entries
                .iter_mut()
                .for_each(|e| e.value.for_each_string_mut(f)),
            _ => {}
        }
    }

    /// Calls `f` on every string scalar (values only, not keys) with the
    /// path of the value below `path`.
    pub fn for_each_string(&self, path: &str, f: &mut impl FnMut(&str, &str, usize)) {
        match &self.value {
            Value::Str(s) => f(path, s, self.line),
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, n)| n.for_each_string(&format!("{path}[{i}]"), f)),
            Value::Map(entries) => entries.iter().for_each(|e| {
                e.value
                    .for_each_string(&crate::problem::join(path, &e.key), f)
            }),
            _ => {}
        }
    }
}

/// Parses every document of a YAML stream. A syntax error ends parsing
/// with one problem; duplicate or non-scalar keys are reported together.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, Vec<Problem>> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        match event {
            Ok((event, span)) => builder.push(event, span),
            Err(err) => {
                let line = err.marker().line();
                let reason = format!(
                    "not valid YAML: {} (column {})",
                    err.info(),
                    err.marker().col() + 1
                );
                return Err(vec![Problem::new(Some(line), "", reason)]);
            }
        }
    }
    if builder.problems.is_empty() {
        Ok(builder.documents)
    } else {
        Err(builder.problems)
    }
}

/// A collection being built.
enum Open {
    Seq(Vec<Node>, usize, usize),
    /// Entries, line, anchor id, pending key.
    Map(Vec<Entry>, usize, usize, Option<(String, usize)>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    documents: Vec<Node>,
    problems: Vec<Problem>,
}

impl Builder {
    fn push(&mut self, event: Event<'_>, span: Span) {
        let line = span.start.line();
        match event {
            Event::DocumentStart(_) => self.anchors.clear(),
            Event::Scalar(text, style, anchor, tag) => {
                let is_str_tag = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if style == ScalarStyle::Plain && !is_str_tag {
                    resolve_plain(&text)
                } else {
                    Value::Str(text.into_owned())
                };
                self.finish(Node { value, line }, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Seq(Vec::new(), line, anchor)),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Open::Map(Vec::new(), line, anchor, None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq(items, line, anchor)) => (
                        Node {
                            value: Value::Seq(items),
                            line,
                        },
                        anchor,
                    ),
                    Some(Open::Map(entries, line, anchor, _)) => (
                        Node {
                            value: Value::Map(entries),
                            line,
                        },
                        anchor,
                    ),
                    None => return,
                };
                self.finish(node, anchor);
            }
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some(node) => node.clone(),
                    None => Node {
                        value: Value::Null,
                        line,
                    },
                };
                self.finish(node, 0);
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }

    /// Places a completed node into its parent (or as a document).
    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Open::Seq(items, ..)) => items.push(node),
            Some(Open::Map(entries, _, _, pending)) => match pending.take() {
                None => {
                    let key = match node.value {
                        Value::Str(s) => s,
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Null => "null".to_owned(),
                        Value::Seq(_) | Value::Map(_) => {
                            self.problems.push(Problem::new(
                                Some(node.line),
                                "",
                                "a mapping key must be a plain value, not a list or mapping",
                            ));
                            String::new()
                        }
                    };
                    if entries.iter().any(|e| e.key == key) {
                        self.problems.push(Problem::new(
                            Some(node.line),
                            "",
                            format!("key {key:?} appears twice in the same mapping"),
                        ));
                    }
                    *pending = Some((key, node.line));
                }
                Some((key, line)) => entries.push(Entry {
                    key,
                    line,
                    value: node,
                }),
            },
        }
    }
}

/// Core-schema resolution of a plain scalar.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Value::Int(i);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Value::Int(i);
        }
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Int(i);
        }
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Str(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut docs = parse_documents(text).expect("valid YAML");
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn records_lines_of_keys_and_values() {
        let doc = one("a: 1\nb:\n  c: x\n  d: [1, 2]\n");
        let entries = doc.entries().expect("mapping");
        assert_eq!(entries[0].line, 1);
        assert_eq!(entries[1].line, 2);
        let b = doc.get("b").expect("b");
        assert_eq!(b.get("c").map(|n| n.line), Some(3));
        assert_eq!(b.get("d").map(|n| n.line), Some(4));
    }

    #[test]
    fn resolves_scalars_with_the_core_schema() {
        let doc = one("a: 1\nb: 1.5\nc: true\nd: ~\ne: '1'\nf: 30s\ng: .nan\nh: -2\ni: 1e3\n");
        assert_eq!(doc.get("a").map(|n| &n.value), Some(&Value::Int(1)));
        assert_eq!(doc.get("b").map(|n| &n.value), Some(&Value::Float(1.5)));
        assert_eq!(doc.get("c").map(|n| &n.value), Some(&Value::Bool(true)));
        assert_eq!(doc.get("d").map(|n| &n.value), Some(&Value::Null));
        assert_eq!(doc.get("e").and_then(Node::as_str), Some("1"));
        assert_eq!(doc.get("f").and_then(Node::as_str), Some("30s"));
        assert!(matches!(doc.get("g").map(|n| &n.value), Some(Value::Float(f)) if f.is_nan()));
        assert_eq!(doc.get("h").map(|n| &n.value), Some(&Value::Int(-2)));
        assert_eq!(doc.get("i").map(|n| &n.value), Some(&Value::Float(1000.0)));
    }

    #[test]
    fn splits_documents_and_expands_aliases() {
        let docs = parse_documents("a: &x {k: 1}\nb: *x\n---\nc: 2\n").expect("valid");
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0].get("b").and_then(|b| b.get("k")).map(|n| &n.value),
            Some(&Value::Int(1))
        );
    }

    #[test]
    fn reports_syntax_errors_with_their_line() {
        let problems = parse_documents("a: 1\nb: [1, 2\nc: 3\n").expect_err("invalid");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].line.is_some_and(|l| l >= 2), "{problems:?}");
        assert!(problems[0].reason.starts_with("not valid YAML"));
    }

    #[test]
    fn reports_duplicate_keys() {
        let problems = parse_documents("a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(problems[0].line, Some(3));
        assert!(problems[0].reason.contains("\"a\" appears twice"));
    }
}
