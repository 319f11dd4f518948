//! Writing the driver's report into a rollout's `status`: the report
//! itself, the phase and message people see, and conditions (the
//! operator's `SpecValid` and `Progressing`, then each of the report's
//! conditions while it holds). Pure, so the same inputs give the same
//! status and an unchanged rollout writes nothing.

use canary_analysis::Timestamp;
use canary_rollout::driver::Report;

use crate::resource::{CanaryRolloutStatus, Condition};
use crate::time::rfc3339;

/// Condition: the spec, its templates and workloads make a runnable
/// rollout.
pub const SPEC_VALID: &str = "SpecValid";
/// Condition: the rollout is under way (False once promoted or aborted).
pub const PROGRESSING: &str = "Progressing";

/// A condition's wanted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionValue {
    /// Its type.
    pub type_: String,
    /// True or False.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
}

impl ConditionValue {
    /// A condition of `type_`.
    pub fn new(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        ConditionValue {
            type_: type_.to_owned(),
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
    [SPEC_VALID, PROGRESSING]
        .iter()
        .position(|t| *t == type_)
        .unwrap_or(usize::MAX)
}

/// The condition `type_`'s reason and message, when set.
pub fn condition<'a>(status: &'a CanaryRolloutStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// `status` showing `report`, in phase `phase` with `message`: the
/// operator's conditions set, the report's conditions set to True and any
/// condition the report no longer has removed.
pub fn show_report(
    status: &mut CanaryRolloutStatus,
    report: Report,
    phase: &str,
    message: Option<String>,
    now: Timestamp,
    generation: Option<i64>,
) {
    let mut conditions: Vec<Condition> = status
        .conditions
        .iter()
        .filter(|c| {
            [SPEC_VALID, PROGRESSING].contains(&c.type_.as_str())
                || report.conditions.iter().any(|r| r.kind == c.type_)
        })
        .cloned()
        .collect();
    conditions = with_condition(
        &conditions,
        ConditionValue::new(SPEC_VALID, true, "Valid", ""),
        now,
        generation,
    );
    let progressing = match phase {
        "Promoted" => ConditionValue::new(
            PROGRESSING,
            false,
            "Promoted",
            "the canary is the stable version",
        ),
        "Aborted" => ConditionValue::new(
            PROGRESSING,
            false,
            "Aborted",
            "rolled back: the canary gets no traffic",
        ),
        other => ConditionValue::new(PROGRESSING, true, other, ""),
    };
    conditions = with_condition(&conditions, progressing, now, generation);
    for shown in &report.conditions {
        conditions = with_condition(
            &conditions,
            ConditionValue {
                type_: shown.kind.clone(),
                status: true,
                reason: shown.kind.clone(),
                message: shown.message.clone(),
            },
            now,
            generation,
        );
    }
    status.conditions = conditions;
    status.phase = Some(phase.to_owned());
    status.message = message;
    status.report = Some(report);
    status.observed_generation = generation;
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_rollout::driver::ConditionReport;

    #[test]
    fn transition_times_change_only_with_the_status() {
        let t0 = Timestamp::from_secs(1_000);
        let t1 = Timestamp::from_secs(2_000);
        let first = with_condition(
            &[],
            ConditionValue::new(PROGRESSING, true, "Progressing", "a"),
            t0,
            Some(1),
        );
        let same = with_condition(
            &first,
            ConditionValue::new(PROGRESSING, true, "Paused", "b"),
            t1,
            Some(2),
        );
        assert_eq!(same[0].last_transition_time, rfc3339(t0));
        assert_eq!(same[0].message, "b");
        let flipped = with_condition(
            &same,
            ConditionValue::new(PROGRESSING, false, "Aborted", "c"),
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
        for type_ in ["Drift", PROGRESSING, SPEC_VALID] {
            conditions = with_condition(
                &conditions,
                ConditionValue::new(type_, true, "R", ""),
                now,
                None,
            );
        }
        let order: Vec<&str> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(order, [SPEC_VALID, PROGRESSING, "Drift"]);
    }

    #[test]
    fn the_reports_conditions_come_and_go_with_it() {
        let now = Timestamp::from_secs(1);
        let mut status = CanaryRolloutStatus::default();
        let drift = Report {
            conditions: vec![ConditionReport {
                kind: "Drift".into(),
                message: "proxy-0 shows 0%".into(),
            }],
            ..Report::default()
        };
        show_report(&mut status, drift, "Paused", None, now, Some(1));
        let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [SPEC_VALID, PROGRESSING, "Drift"]);
        show_report(
            &mut status,
            Report::default(),
            "Progressing",
            None,
            now,
            Some(1),
        );
        let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [SPEC_VALID, PROGRESSING]);
        show_report(
            &mut status,
            Report::default(),
            "Aborted",
            None,
            now,
            Some(1),
        );
        assert_eq!(status.conditions[1].status, "False");
    }
}
