//! One analysis from the templates a rollout names and the args it
//! supplies, as Argo Rollouts builds an AnalysisRun from templates:
//! metrics are merged (names must be unique), template args are filled
//! from the rollout's args, and every `{{args.name}}` must get a value.

use std::collections::{BTreeMap, BTreeSet};

use crate::args::{Arg, ArgValue, SecretKeyRef};
use crate::metric::Metric;
use crate::problem::Problem;
use crate::template::{AnalysisTemplate, MetricSelector, Retention};

/// Measurements Argo keeps per metric unless told otherwise.
pub const DEFAULT_MEASUREMENT_RETENTION: usize = 10;

/// Everything one analysis run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisSpec {
    /// The metrics, in template order.
    pub metrics: Vec<Metric>,
    /// Metrics whose verdict never affects the run (`dryRun`).
    pub dry_run: BTreeSet<String>,
    /// Measurements kept per metric, when not the default of 10.
    pub retention: BTreeMap<String, usize>,
    /// Names of the templates it came from.
    pub templates: Vec<String>,
}

impl AnalysisSpec {
    /// An analysis of `metrics` with no dry-run metrics and default retention.
    pub fn new(metrics: Vec<Metric>) -> AnalysisSpec {
        AnalysisSpec {
            metrics,
            dry_run: BTreeSet::new(),
            retention: BTreeMap::new(),
            templates: Vec::new(),
        }
    }

    /// The metric named `name`.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// Whether the metric runs in dry-run mode.
    pub fn is_dry_run(&self, name: &str) -> bool {
        self.dry_run.contains(name)
    }

    /// Measurements kept for the metric.
    pub fn retention_of(&self, name: &str) -> usize {
        self.retention
            .get(name)
            .copied()
            .unwrap_or(DEFAULT_MEASUREMENT_RETENTION)
    }
}

/// Which document a composition problem belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemSource {
    /// The reference (the rollout's `analysis` block).
    Reference,
    /// The named template.
    Template(String),
}

/// A problem and the document it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedProblem {
    /// Where.
    pub source: ProblemSource,
    /// What.
    pub problem: Problem,
}

/// What the reference adds to the templates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reference<'a> {
    /// Path of the reference in its document (`spec.steps[2].analysis`).
    pub path: &'a str,
    /// Line of the reference.
    pub line: usize,
    /// Args supplied by the reference.
    pub args: &'a [Arg],
    /// Extra `dryRun` entries.
    pub dry_run: &'a [MetricSelector],
    /// Extra `measurementRetention` entries.
    pub retention: &'a [Retention],
}

/// Builds the analysis. `secret` reads a `secretKeyRef` argument (the
/// controller reads Kubernetes; validation passes a stand-in).
pub fn compose(
    templates: &[&AnalysisTemplate],
    reference: Reference<'_>,
    secret: &dyn Fn(&SecretKeyRef) -> Option<String>,
) -> Result<AnalysisSpec, Vec<SourcedProblem>> {
    let mut problems = Vec::new();
    let args_path = format!("{}.args", reference.path);

    for (i, supplied) in reference.args.iter().enumerate() {
        let declared = templates
            .iter()
            .any(|t| t.args.iter().any(|a| a.name == supplied.name));
        if !declared {
            let names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
            problems.push(at_reference(
                supplied.line,
                format!("{args_path}[{i}].name"),
                format!(
                    "no template ({}) declares an argument {:?}",
                    names.join(", "),
                    supplied.name
                ),
            ));
        }
        if supplied.value.is_none() {
            problems.push(at_reference(
                supplied.line,
                format!("{args_path}[{i}]"),
                format!("argument {:?} has no `value`", supplied.name),
            ));
        }
    }

    let mut metrics: Vec<Metric> = Vec::new();
    let mut dry_run = BTreeSet::new();
    let mut retention = BTreeMap::new();
    for template in templates {
        let mut values = BTreeMap::new();
        for declared in &template.args {
            let supplied = reference.args.iter().find(|a| a.name == declared.name);
            let value = supplied
                .and_then(|a| a.value.as_ref())
                .or(declared.value.as_ref());
            let resolved = match value {
                Some(ArgValue::Literal(text)) => Some(text.clone()),
                Some(ArgValue::Secret(secret_ref)) => secret(secret_ref),
                None => None,
            };
            match resolved {
                Some(text) => {
                    values.insert(declared.name.clone(), text);
                }
                None if value.is_none() => problems.push(at_reference(
                    reference.line,
                    args_path.clone(),
                    format!(
                        "template {:?} needs argument {:?}; add {{name: {}, value: …}}",
                        template.name, declared.name, declared.name
                    ),
                )),
                None => problems.push(at_reference(
                    reference.line,
                    args_path.clone(),
                    format!("argument {:?}: its secret could not be read", declared.name),
                )),
            }
        }
        if values.len() < template.args.len() {
            continue;
        }
        match template.instantiate(&values) {
            Ok(instantiated) => {
                for metric in instantiated {
                    if metrics.iter().any(|m| m.name == metric.name) {
                        problems.push(at_reference(
                            reference.line,
                            format!("{}.templates", reference.path),
                            format!(
                                "two templates define a metric named {:?}; metric names must be unique in one analysis",
                                metric.name
                            ),
                        ));
                        continue;
                    }
                    metrics.push(metric);
                }
            }
            Err(found) => problems.extend(found.into_iter().map(|problem| SourcedProblem {
                source: ProblemSource::Template(template.name.clone()),
                problem,
            })),
        }
        select(&template.dry_run, &template.metric_names, &mut dry_run);
        for entry in &template.measurement_retention {
            let mut names = BTreeSet::new();
            select(
                std::slice::from_ref(&entry.metrics),
                &template.metric_names,
                &mut names,
            );
            retention.extend(names.into_iter().map(|n| (n, entry.limit)));
        }
    }

    let all_names: Vec<String> = metrics.iter().map(|m| m.name.clone()).collect();
    for (i, selector) in reference.dry_run.iter().enumerate() {
        let path = format!("{}.dryRun[{i}]", reference.path);
        check_selector(selector, &all_names, &mut problems, &path);
    }
    for (i, entry) in reference.retention.iter().enumerate() {
        let path = format!("{}.measurementRetention[{i}]", reference.path);
        check_selector(&entry.metrics, &all_names, &mut problems, &path);
    }
    select(reference.dry_run, &all_names, &mut dry_run);
    for entry in reference.retention {
        let mut names = BTreeSet::new();
        select(std::slice::from_ref(&entry.metrics), &all_names, &mut names);
        retention.extend(names.into_iter().map(|n| (n, entry.limit)));
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(AnalysisSpec {
        metrics,
        dry_run,
        retention,
        templates: templates.iter().map(|t| t.name.clone()).collect(),
    })
}

fn select(selectors: &[MetricSelector], names: &[String], into: &mut BTreeSet<String>) {
    for selector in selectors {
        if selector.metric_name == "*" {
            into.extend(names.iter().cloned());
        } else if names.contains(&selector.metric_name) {
            into.insert(selector.metric_name.clone());
        }
    }
}

fn check_selector(
    selector: &MetricSelector,
    names: &[String],
    problems: &mut Vec<SourcedProblem>,
    path: &str,
) {
    if selector.metric_name != "*" && !names.contains(&selector.metric_name) {
        problems.push(SourcedProblem {
            source: ProblemSource::Reference,
            problem: Problem::new(
                Some(selector.line),
                format!("{path}.metricName"),
                format!(
                    "no metric of the referenced templates is named {:?}; metrics: {}",
                    selector.metric_name,
                    names.join(", ")
                ),
            ),
        });
    }
}

fn at_reference(line: usize, path: String, reason: String) -> SourcedProblem {
    SourcedProblem {
        source: ProblemSource::Reference,
        problem: Problem::new(Some(line), path, reason),
    }
}
