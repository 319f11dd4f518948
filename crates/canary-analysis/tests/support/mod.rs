//! Helpers shared by the analysis tests: metrics from YAML, a clock in
//! seconds, and results.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use canary_analysis::yaml::parse_documents;
use canary_analysis::{
    AnalysisPhase, AnalysisRun, AnalysisSpec, AnalysisTemplate, MeasurementResult, MetricValue,
    Timestamp,
};

/// A template document around `metrics` (YAML list items, indented by 2).
pub fn template_yaml(metrics: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: test\nspec:\n  metrics:\n{metrics}"
    )
}

/// Reads a template; panics with its problems if it has any.
pub fn template(yaml: &str) -> AnalysisTemplate {
    let docs = parse_documents(yaml).unwrap_or_else(|p| panic!("invalid YAML: {p:?}"));
    AnalysisTemplate::from_document(&docs[0]).unwrap_or_else(|p| panic!("problems: {p:?}"))
}

/// The problems a template document has, as `line: path: reason`.
pub fn template_problems(yaml: &str) -> Vec<String> {
    match parse_documents(yaml) {
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
        Ok(docs) => match AnalysisTemplate::from_document(&docs[0]) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        },
    }
}

/// An analysis of the given metrics (YAML list items indented by 2).
pub fn spec(metrics: &str) -> Arc<AnalysisSpec> {
    let template = template(&template_yaml(metrics));
    let metrics = template
        .instantiate(&BTreeMap::new())
        .unwrap_or_else(|p| panic!("problems: {p:?}"));
    Arc::new(AnalysisSpec::new(metrics))
}

/// A run of one metric described by `fields` (indented by 4), with a
/// kubernetes provider, started at t=0.
pub fn one_metric_run(fields: &str) -> AnalysisRun {
    let metrics = format!(
        "  - name: m\n{fields}    provider:\n      kubernetes: {{selector: app=web, quantity: ready-ratio}}\n"
    );
    AnalysisRun::start(spec(&metrics), at(0))
}

/// `secs` seconds after the epoch.
pub fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

/// A plain numeric value.
pub fn value(x: f64) -> MeasurementResult {
    MeasurementResult::value(x)
}

/// An empty vector (what Prometheus returns with no series).
pub fn empty() -> MeasurementResult {
    MeasurementResult::value(MetricValue::List(vec![]))
}

/// Records `result` for metric `m` at `secs`, panicking if refused.
pub fn record(run: &mut AnalysisRun, secs: u64, result: MeasurementResult) {
    run.record(at(secs), "m", &result)
        .unwrap_or_else(|err| panic!("record at {secs}s: {err}"));
}

/// The metric `m`'s phase.
pub fn metric_phase(run: &AnalysisRun) -> AnalysisPhase {
    run.state().metrics[0].phase
}
