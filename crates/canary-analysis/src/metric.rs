//! One metric of an AnalysisTemplate (`spec.metrics[]`), with Argo
//! Rollouts' defaults and validation rules.

use std::time::Duration;

use crate::condition::Condition;
use crate::fields::{Object, Reader, Unsupported};
use crate::provider::{read_provider, JudgeQuery, Provider, JUDGE_FAILURE_CONDITION};
use crate::yaml::Node;

/// Argo's default `consecutiveErrorLimit`.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: u32 = 4;

/// A metric, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Unique name within the analysis.
    pub name: String,
    /// Time between the end of one measurement and the start of the next.
    pub interval: Option<Duration>,
    /// Wait after the analysis starts before the first measurement.
    pub initial_delay: Option<Duration>,
    /// Measurements to take (`None` or 0: see [`Metric::effective_count`]).
    pub count: Option<u32>,
    /// When a measurement passes.
    pub success_condition: Option<Condition>,
    /// When a measurement fails.
    pub failure_condition: Option<Condition>,
    /// Failed measurements tolerated (default 0); -1 turns the limit off.
    pub failure_limit: i64,
    /// Inconclusive measurements tolerated (default 0).
    pub inconclusive_limit: u32,
    /// Errors in a row tolerated (default 4).
    pub consecutive_error_limit: u32,
    /// Successes in a row that pass the metric early; 0 is off.
    pub consecutive_success_limit: u32,
    /// Fewest samples a value must stand on to be judged (canary's
    /// addition); fewer is "not enough data".
    pub min_samples: Option<u64>,
    /// Where measurements come from.
    pub provider: Provider,
}

impl Metric {
    /// Argo's `EffectiveCount`: the count if set; 1 when neither count nor
    /// interval is set; unbounded (`None`) with an interval but no count.
    pub fn effective_count(&self) -> Option<u32> {
        match self.count {
            Some(n) if n > 0 => Some(n),
            _ if self.interval.is_none() => Some(1),
            _ => None,
        }
    }
}

const KNOWN: &[&str] = &[
    "name",
    "interval",
    "initialDelay",
    "count",
    "successCondition",
    "failureCondition",
    "failureLimit",
    "inconclusiveLimit",
    "consecutiveErrorLimit",
    "consecutiveSuccessLimit",
    "minSamples",
    "provider",
];

/// Reads one metric. `None` when it has problems (all recorded in `r`).
pub fn read_metric(r: &mut Reader, path: String, node: &Node) -> Option<Metric> {
    let unsupported: &[Unsupported] = &[];
    let before = r.problems.len();
    let object = Object::open(r, path, node, KNOWN, unsupported)?;
    let name = object.required_string(r, "name");
    let interval = object.duration(r, "interval");
    let initial_delay = object.duration(r, "initialDelay");
    let count = object.int(r, "count", 0).map(clamp_u32);
    let success_condition = read_condition(r, &object, "successCondition");
    let failure_condition = read_condition(r, &object, "failureCondition");
    let failure_limit = object.int(r, "failureLimit", -1).unwrap_or(0);
    let inconclusive_limit = object.int(r, "inconclusiveLimit", 0).map_or(0, clamp_u32);
    let consecutive_error_limit = object
        .int(r, "consecutiveErrorLimit", 0)
        .map_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT, clamp_u32);
    let consecutive_success_limit = object
        .int(r, "consecutiveSuccessLimit", 0)
        .map_or(0, clamp_u32);
    let min_samples = object.int(r, "minSamples", 1).map(i64::unsigned_abs);
    let provider = match object.get("provider") {
        Some(node) => read_provider(r, object.at("provider"), node),
        None => {
            object.fail(
                r,
                "provider",
                "missing; set one of: prometheus, web, envoy, judge, kubernetes",
            );
            None
        }
    };

    if let Some(n) = count.filter(|n| *n > 0) {
        if n > 1 && interval.is_none() && !object.has("interval") {
            object.fail(
                r,
                "interval",
                format!("missing; count is {n}, so measurements need an interval between them"),
            );
        }
        if failure_limit >= 0 && i64::from(n) < failure_limit {
            object.fail(
                r,
                "count",
                format!(
                    "is {n}, less than failureLimit ({failure_limit}): the metric could never fail"
                ),
            );
        }
        if n < inconclusive_limit {
            object.fail(
                r,
                "count",
                format!("is {n}, less than inconclusiveLimit ({inconclusive_limit})"),
            );
        }
        if n < consecutive_success_limit {
            object.fail(
                r,
                "count",
                format!("is {n}, less than consecutiveSuccessLimit ({consecutive_success_limit})"),
            );
        }
    }
    if failure_limit < 0 && consecutive_success_limit == 0 {
        object.fail(
            r,
            "failureLimit",
            "is -1 (off) and there is no consecutiveSuccessLimit: the metric has no way to fail; set one of them",
        );
    }
    if let (Some(_), Some(provider)) = (min_samples, &provider) {
        if !provider.reports_samples() && !matches!(provider, Provider::Judge(_)) {
            object.fail(
                r,
                "minSamples",
                format!(
                    "the {} provider reports no sample count; minSamples works with the envoy and kubernetes providers",
                    provider.name()
                ),
            );
        }
    }
    let failure_condition = match &provider {
        Some(Provider::Judge(query)) => judge_rules(
            r,
            &object,
            query,
            consecutive_success_limit,
            failure_condition,
        ),
        _ => failure_condition,
    };
    if r.problems.len() > before {
        return None;
    }
    Some(Metric {
        name: name?,
        interval,
        initial_delay,
        count,
        success_condition,
        failure_condition,
        failure_limit,
        inconclusive_limit,
        consecutive_error_limit,
        consecutive_success_limit,
        min_samples,
        provider: provider?,
    })
}

/// A judge metric's own rules: the judge decides each measurement (its
/// failure condition is implied), it needs no minimum sample count, and a
/// guard (not `gate`) passes every look that shows no failure, so a
/// `consecutiveSuccessLimit` would stop it after that many looks.
fn judge_rules(
    r: &mut Reader,
    object: &Object<'_>,
    query: &JudgeQuery,
    consecutive_success_limit: u32,
    written: Option<Condition>,
) -> Option<Condition> {
    for key in ["successCondition", "failureCondition"] {
        if object.has(key) {
            object.fail(
                r,
                key,
                "the judge decides each measurement (it fails when the judge says Failed); remove the condition",
            );
        }
    }
    if object.has("minSamples") {
        object.fail(
            r,
            "minSamples",
            "the judge needs no minimum: its bounds hold from the first request, and few requests give wide bounds",
        );
    }
    if !query.gate && consecutive_success_limit > 0 {
        object.fail(
            r,
            "consecutiveSuccessLimit",
            "a judge without `gate: true` passes every look that shows no failure, so this would stop it after that many looks; set `gate: true` to wait until the judge says Successful",
        );
    }
    if written.is_some() {
        return written;
    }
    match Condition::parse(JUDGE_FAILURE_CONDITION) {
        Ok(condition) => Some(condition),
        Err(reason) => {
            object.fail(r, "provider", reason);
            None
        }
    }
}

fn read_condition(r: &mut Reader, object: &Object<'_>, key: &str) -> Option<Condition> {
    let source = object.string(r, key)?;
    if r.defer_args && crate::args::has_arg_reference(&source) {
        return None;
    }
    match Condition::parse(&source) {
        Ok(condition) => Some(condition),
        Err(reason) => {
            object.fail(r, key, reason);
            None
        }
    }
}

fn clamp_u32(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}
