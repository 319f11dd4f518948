//! Argo Rollouts' `AnalysisTemplate` and `ClusterAnalysisTemplate`
//! (`apiVersion: argoproj.io/v1alpha1`), accepted as users already write
//! them. Fields canary does not support are refused, never ignored.
//!
//! A template is read twice: once on its own, where fields still holding
//! `{{args.…}}` are checked only for shape, and once per use, after the
//! args are substituted, into the [`Metric`]s an analysis runs.

use std::collections::BTreeMap;

use crate::args::{arg_name, read_args, substitute, tags, Arg};
use crate::fields::{Object, Reader, Unsupported};
use crate::metric::{read_metric, Metric};
use crate::problem::Problem;
use crate::yaml::Node;

/// Argo Rollouts' API version for templates.
pub const ARGO_API_VERSION: &str = "argoproj.io/v1alpha1";

/// Which kind of template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateScope {
    /// `AnalysisTemplate`: found in the rollout's namespace.
    Namespaced,
    /// `ClusterAnalysisTemplate`: found cluster-wide (`clusterScope: true`).
    Cluster,
}

impl TemplateScope {
    /// The `kind` as written.
    pub fn kind(self) -> &'static str {
        match self {
            TemplateScope::Namespaced => "AnalysisTemplate",
            TemplateScope::Cluster => "ClusterAnalysisTemplate",
        }
    }
}

/// `spec.measurementRetention[]` / `spec.dryRun[]` entries name metrics;
/// `*` names them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSelector {
    /// Metric name or `*`.
    pub metric_name: String,
    /// Line it was written on.
    pub line: usize,
}

/// `spec.measurementRetention[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Which metrics.
    pub metrics: MetricSelector,
    /// Measurements to keep.
    pub limit: usize,
}

/// A template, read and checked on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisTemplate {
    /// `metadata.name`.
    pub name: String,
    /// Namespaced or cluster-wide.
    pub scope: TemplateScope,
    /// `spec.args`.
    pub args: Vec<Arg>,
    /// `spec.dryRun`.
    pub dry_run: Vec<MetricSelector>,
    /// `spec.measurementRetention`.
    pub measurement_retention: Vec<Retention>,
    /// Metric names in order.
    pub metric_names: Vec<String>,
    /// Line of the document.
    pub line: usize,
    /// `spec.metrics` as written, substituted per use.
    metrics: Node,
}

/// The `apiVersion` and `kind` of a document, when it has them.
pub fn document_kind(node: &Node) -> (Option<&str>, Option<&str>) {
    (
        node.get("apiVersion").and_then(Node::as_str),
        node.get("kind").and_then(Node::as_str),
    )
}

/// The top of a Kubernetes-style document.
#[derive(Debug)]
pub struct DocumentHead<'n> {
    /// The document's top-level mapping.
    pub top: Object<'n>,
    /// Its `kind`, when it is one of those expected.
    pub kind: Option<&'static str>,
    /// `metadata.name`.
    pub name: Option<String>,
}

/// Opens a document whose `apiVersion` must be `api_version` and whose
/// `kind` must be one of `kinds`, and reads `metadata.name`.
pub fn open_document<'n>(
    r: &mut Reader,
    node: &'n Node,
    api_version: &str,
    kinds: &[&'static str],
) -> Option<DocumentHead<'n>> {
    let top = Object::open(
        r,
        "",
        node,
        &["apiVersion", "kind", "metadata", "spec"],
        &[],
    )?;
    match top.string(r, "apiVersion") {
        Some(found) if found == api_version => {}
        Some(other) => top.fail(r, "apiVersion", format!("{other:?} is not {api_version}")),
        None => top.fail(r, "apiVersion", format!("missing; write {api_version}")),
    }
    let expected = kinds.join(" or ");
    let kind = match top.string(r, "kind") {
        Some(found) => {
            let kind = kinds.iter().copied().find(|k| *k == found);
            if kind.is_none() {
                top.fail(r, "kind", format!("{found:?} is not {expected}"));
            }
            kind
        }
        None => {
            top.fail(r, "kind", format!("missing; write {expected}"));
            None
        }
    };
    let name = read_metadata_name(r, &top);
    Some(DocumentHead { top, kind, name })
}

const UNSUPPORTED_SPEC: &[Unsupported] = &[];

impl AnalysisTemplate {
    /// Reads one `AnalysisTemplate` or `ClusterAnalysisTemplate` document.
    pub fn from_document(node: &Node) -> Result<AnalysisTemplate, Vec<Problem>> {
        let mut r = Reader::deferring_args();
        let template = read(&mut r, node);
        match template {
            Some(template) if r.problems.is_empty() => Ok(template),
            _ => Err(r.problems),
        }
    }

    /// The metrics with `values` substituted for `{{args.name}}`.
    pub fn instantiate(
        &self,
        values: &BTreeMap<String, String>,
    ) -> Result<Vec<Metric>, Vec<Problem>> {
        let mut metrics = self.metrics.clone();
        let mut r = Reader::new();
        for (tag, line) in substitute(&mut metrics, values) {
            let reason = match arg_name(&tag) {
                Some(name) => format!(
                    "template {:?} uses {{{{args.{name}}}}}, which has no value",
                    self.name
                ),
                None => {
                    format!("cannot resolve {{{{{tag}}}}}; only {{{{args.NAME}}}} is substituted")
                }
            };
            r.fail(line, "spec.metrics", reason);
        }
        let out = read_metrics(&mut r, &metrics);
        if r.problems.is_empty() {
            Ok(out)
        } else {
            Err(r.problems)
        }
    }
}

fn read(r: &mut Reader, node: &Node) -> Option<AnalysisTemplate> {
    let head = open_document(
        r,
        node,
        ARGO_API_VERSION,
        &["AnalysisTemplate", "ClusterAnalysisTemplate"],
    )?;
    let scope = match head.kind {
        Some("ClusterAnalysisTemplate") => Some(TemplateScope::Cluster),
        Some(_) => Some(TemplateScope::Namespaced),
        None => None,
    };
    let (top, name) = (head.top, head.name);
    let spec_node = top.require(r, "spec")?;
    let spec = Object::open(
        r,
        "spec",
        spec_node,
        &["metrics", "args", "dryRun", "measurementRetention"],
        UNSUPPORTED_SPEC,
    )?;
    let args = read_args(r, &spec, "args");
    let metrics = spec.require(r, "metrics")?.clone();
    check_arg_references(r, &metrics, &args);
    let metric_list = read_metrics(r, &metrics);
    let metric_names: Vec<String> = metric_list.iter().map(|m| m.name.clone()).collect();
    let dry_run = read_selectors(r, &spec, "dryRun", &metric_names);
    let measurement_retention = read_retention(r, &spec, &metric_names);
    Some(AnalysisTemplate {
        name: name?,
        scope: scope?,
        args,
        dry_run,
        measurement_retention,
        metric_names,
        line: node.line,
        metrics,
    })
}

/// `metadata.name`; other Kubernetes metadata (labels, annotations,
/// namespace, fields of exported objects) is accepted and not used.
pub fn read_metadata_name(r: &mut Reader, top: &Object<'_>) -> Option<String> {
    let node = top.require(r, "metadata")?;
    let Some(entries) = node.entries() else {
        top.fail(
            r,
            "metadata",
            format!("expected a mapping, found {}", node.kind()),
        );
        return None;
    };
    let metadata = Object::open(r, "metadata", node, &entry_keys(entries), &[])?;
    metadata.required_string(r, "name")
}

fn entry_keys(entries: &[crate::yaml::Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

/// Every `{{…}}` in the metrics must name a declared argument.
fn check_arg_references(r: &mut Reader, metrics: &Node, args: &[Arg]) {
    metrics.for_each_string("spec.metrics", &mut |path, text, line| {
        for tag in tags(text) {
            match arg_name(tag) {
                Some(name) if args.iter().any(|a| a.name == name) => {}
                Some(name) => r.fail(
                    line,
                    path,
                    format!("uses {{{{args.{name}}}}} but spec.args declares no argument {name:?}"),
                ),
                None => r.fail(
                    line,
                    path,
                    format!("cannot resolve {{{{{tag}}}}}; only {{{{args.NAME}}}} is substituted"),
                ),
            }
        }
    });
}

fn read_metrics(r: &mut Reader, node: &Node) -> Vec<Metric> {
    let crate::yaml::Value::Seq(items) = &node.value else {
        r.fail(
            node.line,
            "spec.metrics",
            format!("expected a list, found {}", node.kind()),
        );
        return Vec::new();
    };
    if items.is_empty() {
        r.fail(
            node.line,
            "spec.metrics",
            "is empty; a template needs at least one metric",
        );
    }
    let mut out: Vec<Metric> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("spec.metrics[{i}]");
        if let Some(metric) = read_metric(r, path.clone(), item) {
            if out.iter().any(|m| m.name == metric.name) {
                let line = item.get("name").map_or(item.line, |n| n.line);
                r.fail(
                    line,
                    format!("{path}.name"),
                    format!("metric {:?} is defined twice", metric.name),
                );
            }
            out.push(metric);
        }
    }
    out
}

/// Reads `dryRun`-style entries (`[{metricName: …}]`), checking names.
pub fn read_selectors(
    r: &mut Reader,
    object: &Object<'_>,
    key: &str,
    metric_names: &[String],
) -> Vec<MetricSelector> {
    let Some(items) = object.list(r, key) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", object.at(key));
        if let Some(selector) = Object::open(r, path, item, &["metricName"], &[]) {
            if let Some(selector) = read_selector(r, &selector, metric_names) {
                out.push(selector);
            }
        }
    }
    out
}

fn read_selector(
    r: &mut Reader,
    object: &Object<'_>,
    metric_names: &[String],
) -> Option<MetricSelector> {
    let metric_name = object.required_string(r, "metricName")?;
    if !metric_names.is_empty() && metric_name != "*" && !metric_names.contains(&metric_name) {
        object.fail(
            r,
            "metricName",
            format!(
                "no metric is named {metric_name:?}; metrics: {}",
                metric_names.join(", ")
            ),
        );
        return None;
    }
    let line = object.get("metricName").map_or(object.line(), |n| n.line);
    Some(MetricSelector { metric_name, line })
}

/// Reads `measurementRetention` entries (`[{metricName: …, limit: N}]`).
pub fn read_retention(
    r: &mut Reader,
    object: &Object<'_>,
    metric_names: &[String],
) -> Vec<Retention> {
    let Some(items) = object.list(r, "measurementRetention") else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", object.at("measurementRetention"));
        let Some(entry) = Object::open(r, path, item, &["metricName", "limit"], &[]) else {
            continue;
        };
        let selector = read_selector(r, &entry, metric_names);
        entry.require(r, "limit");
        let limit = entry.int(r, "limit", 1);
        if let (Some(metrics), Some(limit)) = (selector, limit) {
            out.push(Retention {
                metrics,
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            });
        }
    }
    out
}
