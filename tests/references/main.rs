//! Every reference to a file of this repository — in the README and
//! `docs/`, in code comments, in manifests and the Makefile — points at a
//! file or folder that exists, so a reader following one never lands
//! nowhere.

use std::path::{Path, PathBuf};

/// Folders whose paths are checked when code or prose names them.
const ROOTS: &[&str] = &[
    "docs/",
    "manifests/",
    "crates/",
    "tests/",
    "examples/",
    "scripts/",
    "bench/",
    "wasm/",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// Every file worth reading for references.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                // Upstream documents (test data, upstream CRDs) name their
                // own repositories' paths.
                let upstream = ["target", "data", "corpus", "crds"].contains(&name.as_str());
                if !name.starts_with('.') && !upstream {
                    stack.push(path);
                }
                continue;
            }
            let checked = name == "Makefile"
                || [".md", ".rs", ".yaml", ".yml", ".toml", ".sh"]
                    .iter()
                    .any(|ext| name.ends_with(ext));
            if checked {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Paths starting with one of [`ROOTS`] in `text`.
fn repo_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    for root in ROOTS {
        let mut from = 0;
        while let Some(at) = text[from..].find(root) {
            let start = from + at;
            from = start + root.len();
            // Only where a path starts: not inside a longer word or path.
            if start > 0 {
                let before = bytes[start - 1];
                if before.is_ascii_alphanumeric() || b"/._-".contains(&before) {
                    continue;
                }
            }
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
                .map_or(text.len(), |n| start + n);
            let path = text[start..end].trim_end_matches(['.', '/']);
            // A placeholder (`crates/<name>`) or a pattern is not a path.
            let next = text[end..].chars().next();
            if matches!(next, Some('<' | '*' | '{' | '$')) || path.len() <= root.len() {
                continue;
            }
            found.push(path.to_owned());
        }
    }
    found
}

/// Relative links of a Markdown file: `](target)`.
fn markdown_links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap_or_default().trim();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            found.push(target.to_owned());
        }
    }
    found
}

#[test]
fn every_reference_points_at_a_file_that_exists() {
    let root = repo();
    let mut missing = Vec::new();
    let this = Path::new(file!())
        .file_name()
        .unwrap_or_default()
        .to_owned();
    for file in files(&root) {
        if file.ends_with(Path::new("references").join(&this)) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for path in repo_paths(&text) {
            if !root.join(&path).exists() {
                missing.push(format!("{shown}: {path}"));
            }
        }
        if shown.ends_with(".md") {
            let folder = file.parent().unwrap_or(&root);
            for link in markdown_links(&text) {
                if !folder.join(&link).exists() {
                    missing.push(format!("{shown}: link {link}"));
                }
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "references to files that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_scanner_finds_paths_and_links() {
    assert_eq!(
        repo_paths("see docs/filter.md, and crates/canary-rollout/src/ for more; not foodocs/x"),
        vec![
            "docs/filter.md".to_owned(),
            "crates/canary-rollout/src".to_owned()
        ]
    );
    assert!(repo_paths("crates/<name>/src").is_empty());
    assert_eq!(
        markdown_links("[a](docs/filter.md#x) [b](https://x.y) [c](../README.md)"),
        vec!["docs/filter.md".to_owned(), "../README.md".to_owned()]
    );
}
