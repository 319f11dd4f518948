//! Building a rollout's `status`: from the state machine (step, analyses
//! with each metric's latest measurement), the split in force, and the
//! conditions. Pure, so the same inputs give the same status and an
//! unchanged rollout writes nothing.

use canary_analysis::Timestamp;
use canary_rollout::driver::{analyses_of, describe_step};
use canary_rollout::{Phase, Rollout, TrafficState};

use crate::resource::{
    AnalysisStatus, CanaryRolloutStatus, Condition, MeasurementStatus, MetricStatus, TrafficStatus,
};
use crate::time::rfc3339;
use crate::workload::Stage;

/// Condition: the spec, its templates and workloads make a runnable
/// rollout.
pub const SPEC_VALID: &str = "SpecValid";
/// Condition: the rollout is under way (False once promoted or aborted).
pub const PROGRESSING: &str = "Progressing";
/// Condition: the filter configuration holds the split the rollout wants.
pub const TRAFFIC_PUSHED: &str = "TrafficPushed";

/// A condition's wanted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionValue {
    /// Its type.
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
}

impl ConditionValue {
    /// A condition of `type_`.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        ConditionValue {
            type_,
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// `conditions` with `value` set: its transition time kept when its status
/// did not change, `now` otherwise.
pub fn with_condition(
    conditions: &[Condition],
    value: ConditionValue,
    now: Timestamp,
    generation: Option<i64>,
) -> Vec<Condition> {
    let status = if value.status { "True" } else { "False" };
    let previous = conditions.iter().find(|c| c.type_ == value.type_);
    let last_transition_time = match previous {
        Some(previous) if previous.status == status => previous.last_transition_time.clone(),
        _ => rfc3339(now),
    };
    let condition = Condition {
        type_: value.type_.to_owned(),
        status: status.to_owned(),
        reason: value.reason,
        message: value.message,
        last_transition_time,
        observed_generation: generation,
    };
    let mut out: Vec<Condition> = conditions
        .iter()
        .filter(|c| c.type_ != condition.type_)
        .cloned()
        .collect();
    out.push(condition);
    out.sort_by_key(|c| condition_rank(&c.type_));
    out
}

/// Conditions in a fixed order, so a status written twice is equal.
fn condition_rank(type_: &str) -> usize {
    [SPEC_VALID, PROGRESSING, TRAFFIC_PUSHED]
        .iter()
        .position(|t| *t == type_)
        .unwrap_or(usize::MAX)
}

/// Whether `status` has condition `type_` set to False.
pub fn is_false(status: &CanaryRolloutStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "False")
}

/// The condition `type_`'s reason and message, when set.
pub fn condition<'a>(status: &'a CanaryRolloutStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// The phase people see.
pub fn phase_name(stage: Stage, machine: Option<Phase>, settled: bool) -> &'static str {
    match (stage, machine) {
        (Stage::Pending, _) => "Pending",
        (Stage::Promoted, _) if settled => "Promoted",
        (Stage::Promoted, _) => "Promoting",
        (Stage::Aborted, _) if settled => "Aborted",
        (Stage::Aborted, _) => "Aborting",
        (Stage::Running, Some(Phase::Paused { .. })) => "Paused",
        (Stage::Running, Some(Phase::PausedInconclusive { .. })) => "PausedInconclusive",
        (Stage::Running, _) => "Progressing",
    }
}

/// The split as the status shows it.
pub fn traffic_status(split: &TrafficState) -> TrafficStatus {
    let canary = split.effective_weight().percent();
    TrafficStatus {
        stable: split.stable.clone(),
        canary: split.canary.clone(),
        canary_weight: canary,
        stable_weight: 100.0 - canary,
        header_route: split.header_route,
    }
}

/// The machine's part of the status: step, pause, analyses, its saved
/// state. Fields it does not know are left as they are in `status`.
pub fn with_machine(status: &mut CanaryRolloutStatus, rollout: &Rollout, now: Timestamp) {
    let _ = now;
    status.step = u32::try_from(rollout.step()).ok();
    status.steps = u32::try_from(rollout.spec().steps.len()).ok();
    status.current_step = rollout.spec().steps.get(rollout.step()).map(describe_step);
    status.paused_until = match rollout.phase() {
        Phase::Paused { until, .. } => until.map(rfc3339),
        _ => None,
    };
    status.analyses = analyses_of(rollout)
        .into_iter()
        .map(|analysis| AnalysisStatus {
            slot: analysis.slot,
            phase: analysis.phase,
            message: analysis.message,
            metrics: analysis
                .metrics
                .into_iter()
                .map(|metric| MetricStatus {
                    latest: metric.measurements.last().map(|m| MeasurementStatus {
                        phase: m.phase.clone(),
                        finished_at: rfc3339(Timestamp::from_millis(m.finished_at)),
                        value: m.value.clone(),
                        message: m.message.clone(),
                    }),
                    name: metric.name,
                    phase: metric.phase,
                    count: metric.count,
                    failed: metric.failed,
                    inconclusive: metric.inconclusive,
                    errors: metric.errors,
                    not_enough_data: metric.not_enough_data,
                })
                .collect(),
        })
        .collect();
    status.state = serde_json::to_value(rollout.state()).ok();
}

/// A status without a running machine (pending or invalid): no step, no
/// analyses, no saved state.
pub fn without_machine(status: &mut CanaryRolloutStatus) {
    status.step = None;
    status.steps = None;
    status.current_step = None;
    status.paused_until = None;
    status.analyses.clear();
    status.state = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_times_change_only_with_the_status() {
        let t0 = Timestamp::from_secs(1_000);
        let t1 = Timestamp::from_secs(2_000);
        let first = with_condition(
            &[],
            ConditionValue::new(TRAFFIC_PUSHED, true, "InForce", "a"),
            t0,
            Some(1),
        );
        let same = with_condition(
            &first,
            ConditionValue::new(TRAFFIC_PUSHED, true, "InForce", "b"),
            t1,
            Some(2),
        );
        assert_eq!(same[0].last_transition_time, rfc3339(t0));
        assert_eq!(same[0].message, "b");
        let flipped = with_condition(
            &same,
            ConditionValue::new(TRAFFIC_PUSHED, false, "PushFailed", "c"),
            t1,
            Some(2),
        );
        assert_eq!(flipped[0].last_transition_time, rfc3339(t1));
        assert_eq!(flipped[0].status, "False");
    }

    #[test]
    fn conditions_keep_one_order() {
        let now = Timestamp::from_secs(1);
        let mut conditions = Vec::new();
        for type_ in [TRAFFIC_PUSHED, SPEC_VALID, PROGRESSING] {
            conditions = with_condition(
                &conditions,
                ConditionValue::new(type_, true, "R", ""),
                now,
                None,
            );
        }
        let order: Vec<&str> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(order, [SPEC_VALID, PROGRESSING, TRAFFIC_PUSHED]);
    }

    #[test]
    fn phases_say_when_workload_actions_are_still_under_way() {
        assert_eq!(
            phase_name(Stage::Promoted, Some(Phase::Promoted), false),
            "Promoting"
        );
        assert_eq!(
            phase_name(Stage::Promoted, Some(Phase::Promoted), true),
            "Promoted"
        );
        assert_eq!(
            phase_name(Stage::Aborted, Some(Phase::Aborted), false),
            "Aborting"
        );
        assert_eq!(phase_name(Stage::Pending, None, false), "Pending");
        assert_eq!(
            phase_name(Stage::Running, Some(Phase::Progressing), true),
            "Progressing"
        );
    }
}
