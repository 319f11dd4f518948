//! Reading a `CanaryRollout` document, with every problem's line and path.

use std::time::Duration;

use canary_analysis::args::read_args;
use canary_analysis::fields::{Object, Reader, Unsupported};
use canary_analysis::template::{open_document, read_retention, read_selectors};
use canary_analysis::yaml::{Node, Value};
use canary_config::validate::MAX_NAME_LEN;
use canary_config::Weight;

use crate::spec::{
    AnalysisRef, BackgroundAnalysis, RolloutSpec, Step, TemplateRef, API_VERSION,
    DEFAULT_PROGRESS_DEADLINE, KIND,
};

/// A rollout as read from its document, analyses not yet resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutDocument {
    /// The rollout.
    pub spec: RolloutSpec<AnalysisRef>,
    /// `spec.templateFiles`: files holding templates, relative to the
    /// rollout file, with the line each was named on.
    pub template_files: Vec<(String, usize)>,
}

const SPEC_FIELDS: &[&str] = &[
    "routes",
    "stableVersion",
    "canaryVersion",
    "steps",
    "analysis",
    "progressDeadline",
    "verifyDeadline",
    "templateFiles",
];

const UNSUPPORTED_SPEC: &[Unsupported] = &[
    (
        "strategy",
        "steps and analysis sit directly under spec (spec.steps, spec.analysis)",
    ),
    (
        "template",
        "canary routes traffic between versions you deploy; it does not create pods",
    ),
    (
        "selector",
        "canary routes traffic between versions you deploy; it does not select pods",
    ),
    (
        "replicas",
        "canary routes traffic between versions you deploy; it does not scale them",
    ),
    (
        "workloadRef",
        "canary routes traffic between versions you deploy; it references no workload",
    ),
    (
        "progressDeadlineSeconds",
        "write `progressDeadline` as a duration, e.g. 10m",
    ),
];

const STEP_KINDS: &[&str] = &["setWeight", "pause", "analysis", "setHeaderRoute"];

const UNSUPPORTED_STEPS: &[Unsupported] = &[
    ("setCanaryScale", "canary does not scale workloads"),
    ("experiment", "canary runs no experiments"),
    ("setMirrorRoute", "the filter does not mirror traffic"),
    ("plugin", "canary loads no step plugins"),
];

/// Reads one `CanaryRollout` document. Problems go to `r`; the document
/// is returned even with problems (parts in error left out or empty) so
/// that its analyses can still be checked, but only a document read
/// without problems may run.
pub fn read_rollout(r: &mut Reader, node: &Node) -> Option<RolloutDocument> {
    let head = open_document(r, node, API_VERSION, &[KIND])?;
    let (top, name) = (head.top, head.name);
    let spec_node = top.require(r, "spec")?;
    let spec = Object::open(r, "spec", spec_node, SPEC_FIELDS, UNSUPPORTED_SPEC)?;

    let routes = read_routes(r, &spec);
    let stable_version = read_version(r, &spec, "stableVersion");
    let canary_version = read_version(r, &spec, "canaryVersion");
    if let (Some(stable), Some(canary)) = (&stable_version, &canary_version) {
        if stable == canary {
            spec.fail(
                r,
                "canaryVersion",
                format!("is {canary:?}, the same as stableVersion"),
            );
        }
    }
    let (steps, step_count) = read_steps(r, &spec);
    let background = spec
        .get("analysis")
        .and_then(|node| read_background(r, spec.at("analysis"), node, step_count));
    let progress_deadline = spec
        .duration(r, "progressDeadline")
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE);
    if progress_deadline.is_zero() {
        spec.fail(r, "progressDeadline", "must be longer than 0s");
    }
    let verify_deadline = spec.duration(r, "verifyDeadline");
    if verify_deadline.is_some_and(|d| d.is_zero()) {
        spec.fail(r, "verifyDeadline", "must be longer than 0s");
    }
    let template_files = read_template_files(r, &spec);

    Some(RolloutDocument {
        spec: RolloutSpec {
            name: name.unwrap_or_default(),
            routes,
            stable_version: stable_version.unwrap_or_default(),
            canary_version: canary_version.unwrap_or_default(),
            steps,
            background,
            progress_deadline,
            verify_deadline,
        },
        template_files,
    })
}

/// Whether `name` can be a route or version name in the filter's
/// configuration (it becomes a stats label).
fn check_name(r: &mut Reader, path: String, line: usize, name: &str) {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_chars {
        r.fail(
            line,
            path,
            format!("{name:?} must be 1 to {MAX_NAME_LEN} letters, digits, `_` or `-` (it is a stats label)"),
        );
    }
}

fn read_routes(r: &mut Reader, spec: &Object<'_>) -> Vec<String> {
    if spec.require(r, "routes").is_none() {
        return Vec::new();
    }
    let routes = spec.strings(r, "routes").unwrap_or_default();
    let items = spec.get("routes").and_then(|n| match &n.value {
        Value::Seq(items) => Some(items.as_slice()),
        _ => None,
    });
    if items.is_some_and(<[Node]>::is_empty) {
        spec.fail(
            r,
            "routes",
            "is empty; name the filter route entries this rollout drives",
        );
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, item) in items.unwrap_or_default().iter().enumerate() {
        let Some(name) = item.as_str() else { continue };
        let path = format!("{}[{i}]", spec.at("routes"));
        check_name(r, path.clone(), item.line, name);
        if seen.contains(&name) {
            r.fail(item.line, path, format!("route {name:?} is listed twice"));
        }
        seen.push(name);
    }
    routes
}

fn read_version(r: &mut Reader, spec: &Object<'_>, key: &str) -> Option<String> {
    let name = spec.required_string(r, key)?;
    let line = spec.get(key).map_or(spec.line(), |n| n.line);
    let before = r.problems.len();
    check_name(r, spec.at(key), line, &name);
    (r.problems.len() == before).then_some(name)
}

/// The steps read without problems, and how many were written.
fn read_steps(r: &mut Reader, spec: &Object<'_>) -> (Vec<Step<AnalysisRef>>, usize) {
    spec.require(r, "steps");
    let items = spec.list(r, "steps").unwrap_or_default();
    if spec.get("steps").is_some() && items.is_empty() {
        spec.fail(r, "steps", "is empty; a rollout needs at least one step");
    }
    let mut steps = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("spec.steps[{i}]");
        if let Some(step) = read_step(r, path, item) {
            steps.push(step);
        }
    }
    (steps, items.len())
}

fn read_step(r: &mut Reader, path: String, node: &Node) -> Option<Step<AnalysisRef>> {
    let object = Object::open(r, path, node, STEP_KINDS, UNSUPPORTED_STEPS)?;
    let kinds: Vec<&str> = STEP_KINDS
        .iter()
        .copied()
        .filter(|k| object.has(k))
        .collect();
    let kind = match kinds.as_slice() {
        [kind] => *kind,
        [] => {
            if node.entries().is_some_and(<[_]>::is_empty) {
                r.fail(
                    node.line,
                    object.path.clone(),
                    format!("empty step; write one of: {}", STEP_KINDS.join(", ")),
                );
            }
            return None;
        }
        many => {
            let reason = format!(
                "a step does one thing; this one has {}: split it into steps",
                many.join(" and ")
            );
            r.fail(node.line, object.path.clone(), reason);
            return None;
        }
    };
    let value = object.get(kind);
    match kind {
        "setWeight" => read_weight(r, &object),
        "pause" => read_pause(r, &object, value),
        "analysis" => {
            let node = object.require(r, "analysis")?;
            read_analysis_ref(r, object.at("analysis"), node, &[]).map(|(a, _)| Step::Analysis(a))
        }
        _ => {
            let node = object.require(r, "setHeaderRoute")?;
            let unsupported: &[Unsupported] = &[
                ("name", "the override header is set in the filter configuration (`override`); write {enabled: true} or {enabled: false}"),
                ("match", "the override header is set in the filter configuration (`override`); write {enabled: true} or {enabled: false}"),
            ];
            let header = Object::open(
                r,
                object.at("setHeaderRoute"),
                node,
                &["enabled"],
                unsupported,
            )?;
            header.require(r, "enabled");
            header.bool(r, "enabled").map(Step::SetHeaderRoute)
        }
    }
}

fn read_weight(r: &mut Reader, step: &Object<'_>) -> Option<Step<AnalysisRef>> {
    let node = step.require(r, "setWeight")?;
    let percent = match node.value {
        Value::Int(i) => i as f64,
        Value::Float(f) => f,
        _ => {
            step.fail(
                r,
                "setWeight",
                format!("expected a percentage from 0 to 100, found {}", node.kind()),
            );
            return None;
        }
    };
    match Weight::from_percent(percent) {
        Ok(weight) => Some(Step::SetWeight(weight)),
        Err(err) => {
            step.fail(r, "setWeight", format!("{err}, got {percent}"));
            None
        }
    }
}

fn read_pause(
    r: &mut Reader,
    step: &Object<'_>,
    value: Option<&Node>,
) -> Option<Step<AnalysisRef>> {
    let Some(node) = value else {
        // `pause:` with nothing after it, like `pause: {}`.
        return Some(Step::Pause(None));
    };
    let pause = Object::open(r, step.at("pause"), node, &["duration"], &[])?;
    let Some(duration) = pause.get("duration") else {
        return Some(Step::Pause(None));
    };
    let seconds = match &duration.value {
        Value::Int(i) => Some(*i),
        Value::Str(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match seconds {
        Some(s) if s >= 0 => Some(Step::Pause(Some(Duration::from_secs(s.unsigned_abs())))),
        Some(s) => {
            pause.fail(r, "duration", format!("must not be negative, got {s}"));
            None
        }
        None => pause.duration(r, "duration").map(|d| Step::Pause(Some(d))),
    }
}

/// Reads an analysis reference; `extra` adds allowed keys (`startingStep`
/// for background analysis) whose node is returned.
fn read_analysis_ref<'n>(
    r: &mut Reader,
    path: String,
    node: &'n Node,
    extra: &[&str],
) -> Option<(AnalysisRef, Object<'n>)> {
    let mut known = vec!["templates", "args", "dryRun", "measurementRetention"];
    known.extend_from_slice(extra);
    let unsupported: &[Unsupported] = &[(
        "analysisRunMetadata",
        "canary creates no AnalysisRun objects to label",
    )];
    let before = r.problems.len();
    let object = Object::open(r, path, node, &known, unsupported)?;
    object.require(r, "templates");
    let items = object.list(r, "templates").unwrap_or_default();
    if object.get("templates").is_some() && items.is_empty() {
        object.fail(r, "templates", "is empty; name at least one template");
    }
    let mut templates = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", object.at("templates"));
        let Some(entry) = Object::open(
            r,
            path.clone(),
            item,
            &["templateName", "clusterScope"],
            &[],
        ) else {
            continue;
        };
        let name = entry.required_string(r, "templateName");
        let cluster_scope = entry.bool(r, "clusterScope").unwrap_or(false);
        if let Some(name) = name {
            let line = entry.get("templateName").map_or(item.line, |n| n.line);
            templates.push(TemplateRef {
                name,
                cluster_scope,
                line,
                path,
            });
        }
    }
    let args = read_args(r, &object, "args");
    let dry_run = read_selectors(r, &object, "dryRun", &[]);
    let retention = read_retention(r, &object, &[]);
    if r.problems.len() > before {
        return None;
    }
    let reference = AnalysisRef {
        path: object.path.clone(),
        line: node.line,
        templates,
        args,
        dry_run,
        retention,
    };
    Some((reference, object))
}

fn read_background(
    r: &mut Reader,
    path: String,
    node: &Node,
    step_count: usize,
) -> Option<BackgroundAnalysis<AnalysisRef>> {
    let (analysis, object) = read_analysis_ref(r, path, node, &["startingStep"])?;
    let starting_step = object.int(r, "startingStep", 0).unwrap_or(0);
    let starting_step = usize::try_from(starting_step).unwrap_or(usize::MAX);
    if step_count > 0 && starting_step >= step_count {
        object.fail(
            r,
            "startingStep",
            format!(
                "is {starting_step}, but there are only {step_count} steps (0 to {})",
                step_count - 1
            ),
        );
        return None;
    }
    Some(BackgroundAnalysis {
        starting_step,
        analysis,
    })
}

fn read_template_files(r: &mut Reader, spec: &Object<'_>) -> Vec<(String, usize)> {
    let Some(items) = spec.list(r, "templateFiles") else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(path) if !path.trim().is_empty() => out.push((path.to_owned(), item.line)),
            _ => r.fail(
                item.line,
                format!("{}[{i}]", spec.at("templateFiles")),
                format!("expected a file path, found {}", item.kind()),
            ),
        }
    }
    out
}
