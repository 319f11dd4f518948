//! Loading a rollout file: the `CanaryRollout` document, the templates in
//! the same file (multi-document YAML) and in `spec.templateFiles`, and
//! every analysis resolved against them. Problems are collected from all
//! files and reported as `file:line: field.path: reason`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use canary_analysis::compose::{compose, ProblemSource, Reference};
use canary_analysis::fields::Reader;
use canary_analysis::template::document_kind;
use canary_analysis::yaml::{parse_documents, Node, Value};
use canary_analysis::{AnalysisSpec, AnalysisTemplate, Problem, SecretKeyRef, TemplateScope};

use crate::read::read_rollout;
use crate::spec::{AnalysisRef, RolloutSpec, KIND};

/// A problem in one of the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// The file.
    pub file: PathBuf,
    /// The problem.
    pub problem: Problem,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if let Some(line) = self.problem.line {
            write!(f, "{line}:")?;
        }
        if !self.problem.path.is_empty() {
            write!(f, " {}:", self.problem.path)?;
        }
        write!(f, " {}", self.problem.reason)
    }
}

/// Every problem found while loading (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError(pub Vec<FileProblem>);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        canary_analysis::problem::write_lines(f, &self.0)
    }
}

/// A template and the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSource {
    /// The file.
    pub file: PathBuf,
    /// The template.
    pub template: AnalysisTemplate,
}

/// A rollout ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedRollout {
    /// The rollout with its analyses resolved.
    pub spec: RolloutSpec,
    /// Every template found (used or not).
    pub templates: Vec<TemplateSource>,
}

/// Loads and checks the rollout file at `path` and the template files it
/// names. `secret` reads `secretKeyRef` arguments.
pub fn load_rollout(
    path: &Path,
    secret: &dyn Fn(&SecretKeyRef) -> Option<String>,
) -> Result<LoadedRollout, LoadError> {
    load_rollout_with(
        path,
        &|p: &Path| canary_analysis::yaml::read_file(p),
        secret,
    )
}

/// Checks a rollout file without reading secrets (a stand-in value is
/// used for each `secretKeyRef`): what `canary validate` runs.
pub fn validate_rollout(path: &Path) -> Result<LoadedRollout, LoadError> {
    load_rollout(path, &|_| Some("secret".to_owned()))
}

/// [`load_rollout`] with the file reading supplied.
pub fn load_rollout_with(
    path: &Path,
    read: &dyn Fn(&Path) -> io::Result<String>,
    secret: &dyn Fn(&SecretKeyRef) -> Option<String>,
) -> Result<LoadedRollout, LoadError> {
    let mut problems = Vec::new();
    let mut templates = Vec::new();
    let mut broken = Vec::new();
    let mut rollouts: Vec<Node> = Vec::new();

    let documents = read_documents(path, read, &mut problems);
    let unreadable = documents.is_empty() && !problems.is_empty();
    for document in documents {
        match document_kind(&document) {
            (_, Some(KIND)) => rollouts.push(document),
            (_, Some("AnalysisTemplate" | "ClusterAnalysisTemplate")) => {
                add_template(path, &document, &mut templates, &mut broken, &mut problems);
            }
            (_, kind) => problems.push(FileProblem {
                file: path.to_owned(),
                problem: Problem::new(
                    Some(document.line),
                    "kind",
                    match kind {
                        Some(kind) => format!("{kind:?} is not {KIND}, AnalysisTemplate or ClusterAnalysisTemplate"),
                        None => format!("missing; a document here is a {KIND}, AnalysisTemplate or ClusterAnalysisTemplate"),
                    },
                ),
            }),
        }
    }

    let rollout_node = match rollouts.as_slice() {
        [one] => Some(one),
        [] if unreadable => None,
        [] => {
            problems.push(FileProblem {
                file: path.to_owned(),
                problem: Problem::new(None, "", format!("no {KIND} document in this file")),
            });
            None
        }
        [_, second, ..] => {
            problems.push(FileProblem {
                file: path.to_owned(),
                problem: Problem::new(
                    Some(second.line),
                    "",
                    format!("a second {KIND}; one file holds one rollout"),
                ),
            });
            None
        }
    };

    let mut reader = Reader::new();
    let document = rollout_node.and_then(|node| read_rollout(&mut reader, node));
    problems.extend(reader.problems.into_iter().map(|problem| FileProblem {
        file: path.to_owned(),
        problem,
    }));

    let base = path.parent().unwrap_or_else(|| Path::new(""));
    for (relative, line) in document.iter().flat_map(|d| d.template_files.iter()) {
        let file = base.join(relative);
        let before = problems.len();
        for node in read_documents(&file, read, &mut problems) {
            match document_kind(&node) {
                (_, Some("AnalysisTemplate" | "ClusterAnalysisTemplate")) => {
                    add_template(&file, &node, &mut templates, &mut broken, &mut problems);
                }
                _ => problems.push(FileProblem {
                    file: file.clone(),
                    problem: Problem::new(Some(node.line), "kind", "a template file holds only AnalysisTemplate and ClusterAnalysisTemplate documents"),
                }),
            }
        }
        if problems.len() > before && problems[before].problem.reason.starts_with("cannot read") {
            let problem = &mut problems[before];
            problem.file = path.to_owned();
            problem.problem.line = Some(*line);
            problem.problem.path = "spec.templateFiles".into();
        }
    }

    let spec = document.and_then(|document| {
        document.spec.map_analyses(|reference| {
            resolve(path, &reference, &templates, &broken, secret, &mut problems)
        })
    });

    // A template used by several steps reports its problems once; each
    // file's problems are listed in line order, files in the order met.
    let mut files: Vec<PathBuf> = Vec::new();
    let mut unique: Vec<FileProblem> = Vec::with_capacity(problems.len());
    for problem in problems {
        if !files.contains(&problem.file) {
            files.push(problem.file.clone());
        }
        if !unique.contains(&problem) {
            unique.push(problem);
        }
    }
    unique.sort_by_key(|p| {
        let file = files.iter().position(|f| *f == p.file);
        (file, p.problem.line)
    });
    match spec {
        Some(spec) if unique.is_empty() => Ok(LoadedRollout { spec, templates }),
        _ => Err(LoadError(unique)),
    }
}

fn read_documents(
    file: &Path,
    read: &dyn Fn(&Path) -> io::Result<String>,
    problems: &mut Vec<FileProblem>,
) -> Vec<Node> {
    let text = match read(file) {
        Ok(text) => text,
        Err(err) => {
            problems.push(FileProblem {
                file: file.to_owned(),
                problem: Problem::new(None, "", format!("cannot read {}: {err}", file.display())),
            });
            return Vec::new();
        }
    };
    match parse_documents(&text) {
        Ok(documents) => documents
            .into_iter()
            .filter(|d| d.value != Value::Null)
            .collect(),
        Err(found) => {
            problems.extend(found.into_iter().map(|problem| FileProblem {
                file: file.to_owned(),
                problem,
            }));
            Vec::new()
        }
    }
}

/// Reads a template document; the names of templates with problems go
/// to `broken`, so references to them are not reported as missing too.
fn add_template(
    file: &Path,
    node: &Node,
    templates: &mut Vec<TemplateSource>,
    broken: &mut Vec<String>,
    problems: &mut Vec<FileProblem>,
) {
    match AnalysisTemplate::from_document(node) {
        Ok(template) => {
            let twin = templates
                .iter()
                .find(|t| t.template.name == template.name && t.template.scope == template.scope);
            if let Some(twin) = twin {
                problems.push(FileProblem {
                    file: file.to_owned(),
                    problem: Problem::new(
                        Some(node.line),
                        "metadata.name",
                        format!(
                            "a second {} named {:?} (the first is in {}:{})",
                            template.scope.kind(),
                            template.name,
                            twin.file.display(),
                            twin.template.line
                        ),
                    ),
                });
                return;
            }
            templates.push(TemplateSource {
                file: file.to_owned(),
                template,
            });
        }
        Err(found) => {
            problems.extend(found.into_iter().map(|problem| FileProblem {
                file: file.to_owned(),
                problem,
            }));
            if let Some(name) = node
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Node::as_str)
            {
                broken.push(name.to_owned());
            }
        }
    }
}

fn resolve(
    path: &Path,
    reference: &AnalysisRef,
    templates: &[TemplateSource],
    broken: &[String],
    secret: &dyn Fn(&SecretKeyRef) -> Option<String>,
    problems: &mut Vec<FileProblem>,
) -> Option<Arc<AnalysisSpec>> {
    let mut found = Vec::with_capacity(reference.templates.len());
    for wanted in &reference.templates {
        let scope = if wanted.cluster_scope {
            TemplateScope::Cluster
        } else {
            TemplateScope::Namespaced
        };
        match templates
            .iter()
            .find(|t| t.template.name == wanted.name && t.template.scope == scope)
        {
            Some(source) => found.push(source),
            None if broken.contains(&wanted.name) => {}
            None => {
                let known: Vec<String> = templates
                    .iter()
                    .filter(|t| t.template.scope == scope)
                    .map(|t| t.template.name.clone())
                    .collect();
                let known = if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                };
                problems.push(FileProblem {
                    file: path.to_owned(),
                    problem: Problem::new(
                        Some(wanted.line),
                        format!("{}.templateName", wanted.path),
                        format!(
                            "no {} named {:?} in this file or its templateFiles (found: {known})",
                            scope.kind(),
                            wanted.name
                        ),
                    ),
                });
            }
        }
    }
    if found.len() < reference.templates.len() {
        return None;
    }
    let chosen: Vec<&AnalysisTemplate> = found.iter().map(|s| &s.template).collect();
    let composed = compose(
        &chosen,
        Reference {
            path: &reference.path,
            line: reference.line,
            args: &reference.args,
            dry_run: &reference.dry_run,
            retention: &reference.retention,
        },
        secret,
    );
    match composed {
        Ok(spec) => Some(Arc::new(spec)),
        Err(found_problems) => {
            for sourced in found_problems {
                let file = match &sourced.source {
                    ProblemSource::Reference => path.to_owned(),
                    ProblemSource::Template(name) => found
                        .iter()
                        .find(|s| s.template.name == *name)
                        .map_or_else(|| path.to_owned(), |s| s.file.clone()),
                };
                problems.push(FileProblem {
                    file,
                    problem: sourced.problem,
                });
            }
            None
        }
    }
}
