//! YAML documents as trees that remember where each value was written, so
//! every problem can name its line.
//!
//! Scalars are resolved with the YAML 1.2 core schema: `null`/`~`/empty,
//! `true`/`false`, integers (decimal, `0x`, `0o`), floats (including
//! `.inf` and `.nan`); quoted scalars and anything else are strings.
//! Aliases are expanded; duplicate keys are problems.
//!
//! Hostile input is bounded: a text longer than [`MAX_BYTES`], nesting
//! deeper than [`MAX_DEPTH`], or more than [`MAX_NODES`] values once
//! aliases are expanded (an "alias bomb" of a few hundred bytes would
//! otherwise expand to gigabytes) is refused with one problem, before the
//! memory is spent. Parsing is linear in the input: duplicate keys are
//! found with a set per mapping.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::Path;

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

/// The largest text [`parse_documents`] reads: 1 MiB (rollout files and
/// templates are a few kilobytes).
pub const MAX_BYTES: usize = 1 << 20;
/// The deepest nesting of lists and mappings accepted.
pub const MAX_DEPTH: usize = 64;
/// The most values (scalars, lists and mappings, aliases expanded) a text
/// may hold.
pub const MAX_NODES: usize = 100_000;

/// Reads a file of at most [`MAX_BYTES`] as text, without reading more
/// than that from it.
pub fn read_file(path: &Path) -> io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_BYTES as u64 + 1).read_to_string(&mut text)?;
    if text.len() > MAX_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_BYTES} bytes, the most canary reads as YAML"),
        ));
    }
    Ok(text)
}

/// Parses every document of a YAML stream. A syntax error ends parsing
/// with one problem; duplicate or non-scalar keys are reported together.
/// A text past the limits above is refused with one problem.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, Vec<Problem>> {
    if text.len() > MAX_BYTES {
        return Err(vec![Problem::new(
            None,
            "",
            format!(
                "the text is {} bytes, more than the {MAX_BYTES} canary reads as YAML",
                text.len()
            ),
        )]);
    }
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        match event {
            Ok((event, span)) => {
                if let Err(problem) = builder.push(event, span) {
                    return Err(vec![problem]);
                }
            }
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

/// A collection being built, with the number of values inside it so far.
struct Open {
    kind: OpenKind,
    line: usize,
    anchor: usize,
    size: usize,
}

enum OpenKind {
    Seq(Vec<Node>),
    /// Entries, the keys seen, the pending key.
    Map(Vec<Entry>, HashSet<String>, Option<(String, usize)>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    /// Anchored nodes with their sizes (values inside, themselves included).
    anchors: HashMap<usize, (Node, usize)>,
    documents: Vec<Node>,
    problems: Vec<Problem>,
    /// Values built so far, aliases expanded.
    nodes: usize,
}

impl Builder {
    fn push(&mut self, event: Event<'_>, span: Span) -> Result<(), Problem> {
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
                self.count(1, line)?;
                self.finish(Node { value, line }, anchor, 1)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(OpenKind::Seq(Vec::new()), line, anchor)?
            }
            Event::MappingStart(anchor, _) => {
                self.open(
                    OpenKind::Map(Vec::new(), HashSet::new(), None),
                    line,
                    anchor,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = self.stack.pop() else {
                    return Ok(());
                };
                let value = match open.kind {
                    OpenKind::Seq(items) => Value::Seq(items),
                    OpenKind::Map(entries, ..) => Value::Map(entries),
                };
                let node = Node {
                    value,
                    line: open.line,
                };
                self.count(1, open.line)?;
                self.finish(node, open.anchor, open.size.saturating_add(1))?;
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((node, size)) => {
                    let (node, size) = (node.clone(), *size);
                    self.count(size, line)?;
                    self.finish(node, 0, size)?;
                }
                None => {
                    self.count(1, line)?;
                    self.finish(
                        Node {
                            value: Value::Null,
                            line,
                        },
                        0,
                        1,
                    )?;
                }
            },
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    /// Starts a list or mapping, within the nesting limit.
    fn open(&mut self, kind: OpenKind, line: usize, anchor: usize) -> Result<(), Problem> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Problem::new(
                Some(line),
                "",
                format!("lists and mappings nested more than {MAX_DEPTH} deep"),
            ));
        }
        self.stack.push(Open {
            kind,
            line,
            anchor,
            size: 0,
        });
        Ok(())
    }

    /// Counts `size` more values, within the limit, before they are built.
    fn count(&mut self, size: usize, line: usize) -> Result<(), Problem> {
        self.nodes = self.nodes.saturating_add(size);
        if self.nodes > MAX_NODES {
            return Err(Problem::new(
                Some(line),
                "",
                format!(
                    "more than {MAX_NODES} values once aliases are expanded; \
                     a rollout or template needs far fewer (is an alias repeated in itself?)"
                ),
            ));
        }
        Ok(())
    }

    /// Places a completed node of `size` values (already counted) into its
    /// parent, or as a document.
    fn finish(&mut self, node: Node, anchor: usize, size: usize) -> Result<(), Problem> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        let Some(open) = self.stack.last_mut() else {
            self.documents.push(node);
            return Ok(());
        };
        open.size = open.size.saturating_add(size);
        match &mut open.kind {
            OpenKind::Seq(items) => items.push(node),
            OpenKind::Map(entries, keys, pending) => match pending.take() {
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
                    if !keys.insert(key.clone()) {
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
        Ok(())
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
    fn an_alias_bomb_is_refused_before_it_expands() {
        // Nine levels of ten aliases each: 10^9 values if expanded.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let prev = format!("*a{}", level - 1);
            let items = [prev.as_str(); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        assert!(text.len() < 1000);
        let problems = parse_documents(&text).expect_err("refused");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].reason.contains("once aliases are expanded"),
            "{problems:?}"
        );
    }

    #[test]
    fn aliases_within_the_limit_expand() {
        let text = "a: &a [1, 2, 3]\nb: [*a, *a, *a]\n";
        let doc = one(text);
        let b = doc.get("b").expect("b");
        assert!(matches!(&b.value, Value::Seq(items) if items.len() == 3));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let problems = parse_documents(&text).expect_err("refused");
        assert!(
            problems[0].reason.contains("nested more than"),
            "{problems:?}"
        );
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_documents(&ok).is_ok());
    }

    #[test]
    fn a_text_past_the_size_limit_is_refused() {
        let text = format!("a: \"{}\"\n", "x".repeat(MAX_BYTES));
        let problems = parse_documents(&text).expect_err("refused");
        assert!(problems[0].reason.contains("bytes"), "{problems:?}");
    }

    #[test]
    fn many_keys_parse() {
        let text: String = (0..20_000).map(|i| format!("k{i}: {i}\n")).collect();
        let doc = one(&text);
        assert_eq!(doc.entries().map(<[Entry]>::len), Some(20_000));
    }

    #[test]
    fn read_file_refuses_a_large_file_without_reading_it_all() {
        let dir = std::env::temp_dir().join(format!("canary-yaml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("big.yaml");
        std::fs::write(&path, vec![b'#'; MAX_BYTES + 10]).expect("write");
        let err = read_file(&path).expect_err("too large");
        assert!(err.to_string().contains("larger than"), "{err}");
        std::fs::write(&path, "a: 1\n").expect("write");
        assert_eq!(read_file(&path).expect("small"), "a: 1\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reports_duplicate_keys() {
        let problems = parse_documents("a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(problems[0].line, Some(3));
        assert!(problems[0].reason.contains("\"a\" appears twice"));
    }
}
