//! A problem found in a rollout or template file: the line it is on, the
//! path of the field (`spec.metrics[0].interval`) and what is wrong.

use std::fmt;

/// One problem in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the offending value, key or object; `None` when the
    /// problem has no place in the file (e.g. a reference between files).
    pub line: Option<usize>,
    /// Field path, e.g. `spec.metrics[0].interval`; empty for the document.
    pub path: String,
    /// What is wrong and what would be right.
    pub reason: String,
}

impl Problem {
    /// A problem at `line` in field `path`.
    pub fn new(line: Option<usize>, path: impl Into<String>, reason: impl Into<String>) -> Problem {
        Problem {
            line,
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "{line}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.reason)
    }
}

/// Every problem found (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_lines(f, &self.0)
    }
}

/// Writes one item per line.
pub fn write_lines<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str("\n")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// Joins a field name onto a path: `spec` + `steps` → `spec.steps`.
pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}
