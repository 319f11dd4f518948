//! What to do with the Deployments next, given where the rollout is (as
//! the driver reports it) and what the API reports about them. Pure: the
//! reconciler reads, calls [`plan`], and carries the actions out in order,
//! stopping at the first that fails; the next reconcile plans again from
//! what the API then reports, so every step is idempotent. Splits are the
//! driver's; the only split planned here is the return of all traffic to
//! the stable name once a `copyTemplate` promotion has given it the
//! canary's pod template.

use canary_config::Weight;
use canary_rollout::TrafficState;
use serde_json::{json, Map, Value};

use crate::resource::Promotion;
use crate::workload::view::WorkloadView;

/// Where the rollout is, as far as the workloads are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No rollout runs for the current canary version yet: the canary
    /// must be scaled up and ready first.
    Pending,
    /// Working through the steps, paused, held, or on the way to an end
    /// the proxies do not show yet.
    Running,
    /// Promoted, and the proxies show it.
    Promoted,
    /// Rolled back, and the proxies show weight 0.
    Aborted,
}

impl Stage {
    /// The stage of a rollout whose report says `phase`.
    pub fn of(phase: &str) -> Stage {
        match phase {
            "Promoted" => Stage::Promoted,
            "Aborted" => Stage::Aborted,
            _ => Stage::Running,
        }
    }
}

/// One thing to do, in plan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadAction {
    /// Scale the canary Deployment to zero, remembering `from` replicas.
    ScaleCanaryDown {
        /// Its replica count now.
        from: i64,
    },
    /// Scale the canary Deployment back to `to` replicas.
    ScaleCanaryUp {
        /// The replica count to restore.
        to: i64,
    },
    /// Replace the stable Deployment's pod template by the canary's
    /// (stable's own labels kept).
    CopyTemplateToStable,
    /// Send every request to the stable name again ([`all_to_stable`]).
    ReturnToStable,
}

/// What to do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Actions, in order.
    pub actions: Vec<WorkloadAction>,
    /// What the rollout waits for, in words; `None` when nothing.
    pub waiting: Option<String>,
}

impl Plan {
    /// Whether nothing is left to do or wait for.
    pub fn settled(&self) -> bool {
        self.actions.is_empty() && self.waiting.is_none()
    }
}

/// What the plan is made from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// Where the rollout is.
    pub stage: Stage,
    /// How a promotion ends.
    pub promotion: Promotion,
    /// The stable Deployment.
    pub stable: &'a WorkloadView,
    /// The canary Deployment.
    pub canary: &'a WorkloadView,
}

/// The next actions.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let canary = input.canary;
    let mut plan = Plan::default();
    match input.stage {
        Stage::Pending | Stage::Running => {
            if canary.replicas == 0 {
                let to = canary.scaled_down_from.filter(|n| *n > 0).unwrap_or(1);
                plan.actions.push(WorkloadAction::ScaleCanaryUp { to });
                plan.waiting = Some(format!(
                    "scaling canary Deployment {} up to {to} replicas",
                    canary.name
                ));
            } else if input.stage == Stage::Pending && !canary.fully_ready() {
                plan.waiting = Some(format!(
                    "waiting for canary Deployment {} before the first step: {}",
                    canary.name,
                    canary.readiness()
                ));
            }
        }
        Stage::Aborted => scale_canary_down(canary, &mut plan),
        Stage::Promoted => {
            if input.promotion == Promotion::CopyTemplate {
                let stable = input.stable;
                if stable.template_body_fingerprint() != canary.template_body_fingerprint() {
                    plan.actions.push(WorkloadAction::CopyTemplateToStable);
                    plan.waiting = Some(format!(
                        "copying canary Deployment {}'s pod template to stable Deployment {}",
                        canary.name, stable.name
                    ));
                    return plan;
                }
                if !stable.fully_ready() {
                    plan.waiting = Some(format!(
                        "waiting for stable Deployment {} to run the promoted pod template: {}",
                        stable.name,
                        stable.readiness()
                    ));
                    return plan;
                }
                plan.actions.push(WorkloadAction::ReturnToStable);
                scale_canary_down(canary, &mut plan);
            }
        }
    }
    plan
}

fn scale_canary_down(canary: &WorkloadView, plan: &mut Plan) {
    if canary.replicas > 0 {
        plan.actions.push(WorkloadAction::ScaleCanaryDown {
            from: canary.replicas,
        });
    }
}

/// The split after a `copyTemplate` promotion: every request to the stable
/// name, which now runs the canary's template.
pub fn all_to_stable(stable_version: &str) -> TrafficState {
    TrafficState {
        stable: stable_version.to_owned(),
        canary: None,
        canary_weight: Weight::ZERO,
        header_route: false,
    }
}

/// Whether `split` can send requests to `canary_version` (a share above 0,
/// or the override header).
pub fn reaches(split: &TrafficState, canary_version: &str) -> bool {
    let share = split.effective_weight() > Weight::ZERO || split.header_route;
    (split.canary.as_deref() == Some(canary_version) && share)
        || (split.stable == canary_version && split.canary.is_none())
}

/// The merge patch that scales the canary to zero and remembers `from`.
pub fn scale_down_patch(from: i64) -> Value {
    json!({
        "metadata": { "annotations": { super::view::SCALED_DOWN_FROM: from.to_string() } },
        "spec": { "replicas": 0 }
    })
}

/// The merge patch that scales the canary back to `to` and forgets the
/// remembered count.
pub fn scale_up_patch(to: i64) -> Value {
    json!({
        "metadata": { "annotations": { super::view::SCALED_DOWN_FROM: Value::Null } },
        "spec": { "replicas": to }
    })
}

/// The merge patch (RFC 7386) that gives the stable Deployment the
/// canary's pod template with stable's own labels (its selector must keep
/// matching), guarded by stable's `resourceVersion` so a concurrent change
/// of stable (a GitOps sync) makes it fail instead of being overwritten.
pub fn copy_template_patch(stable: &WorkloadView, canary: &WorkloadView) -> Value {
    let mut wanted = canary.template.clone();
    let labels = stable
        .template
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .cloned();
    if let Some(metadata) = wanted
        .as_object_mut()
        .map(|t| t.entry("metadata").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    {
        match labels {
            Some(labels) => {
                metadata.insert("labels".to_owned(), labels);
            }
            None => {
                metadata.remove("labels");
            }
        }
    }
    let mut metadata = Map::new();
    if let Some(version) = &stable.resource_version {
        metadata.insert("resourceVersion".to_owned(), json!(version));
    }
    json!({
        "metadata": metadata,
        "spec": { "template": merge_patch_between(&stable.template, &wanted) }
    })
}

/// The JSON merge patch that turns `from` into `to`: changed and new keys
/// with their values, removed keys as `null`, objects patched key by key,
/// everything else (lists included) replaced.
pub fn merge_patch_between(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, new_value) in new {
                match old.get(key) {
                    Some(old_value) if old_value == new_value => {}
                    Some(old_value) => {
                        patch.insert(key.clone(), merge_patch_between(old_value, new_value));
                    }
                    None => {
                        patch.insert(key.clone(), new_value.clone());
                    }
                }
            }
            for key in old.keys() {
                if !new.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workload(name: &str, replicas: i64, ready: i64, image: &str, version: &str) -> WorkloadView {
        WorkloadView::from_object(&json!({
            "metadata": {"name": name, "generation": 4, "resourceVersion": "900"},
            "spec": {"replicas": replicas, "template": {
                "metadata": {"labels": {"app": "web", "version": version}},
                "spec": {"containers": [{"name": "web", "image": image}]}}},
            "status": {"observedGeneration": 4, "replicas": replicas, "updatedReplicas": ready,
                       "readyReplicas": ready, "availableReplicas": ready}
        }))
        .unwrap()
    }

    struct Case {
        stage: Stage,
        promotion: Promotion,
        stable: WorkloadView,
        canary: WorkloadView,
    }

    impl Case {
        fn new(stage: Stage) -> Case {
            Case {
                stage,
                promotion: Promotion::CopyTemplate,
                stable: workload("web-v1", 3, 3, "web:1", "web-v1"),
                canary: workload("web-v2", 2, 2, "web:2", "web-v2"),
            }
        }

        fn plan(&self) -> Plan {
            plan(&PlanInput {
                stage: self.stage,
                promotion: self.promotion,
                stable: &self.stable,
                canary: &self.canary,
            })
        }
    }

    #[test]
    fn a_running_rollout_with_a_ready_canary_needs_nothing() {
        assert!(Case::new(Stage::Running).plan().settled());
    }

    #[test]
    fn the_canary_is_scaled_down_once_the_rollback_is_seen() {
        let mut case = Case::new(Stage::Aborted);
        assert_eq!(
            case.plan().actions,
            [WorkloadAction::ScaleCanaryDown { from: 2 }]
        );
        case.canary = workload("web-v2", 0, 0, "web:2", "web-v2");
        assert!(case.plan().settled());
    }

    #[test]
    fn promotion_copies_then_waits_for_stable_then_returns_traffic() {
        let mut case = Case::new(Stage::Promoted);
        let copy = case.plan();
        assert_eq!(copy.actions, [WorkloadAction::CopyTemplateToStable]);
        assert!(copy.waiting.is_some());

        case.stable = workload("web-v1", 3, 1, "web:2", "web-v1");
        let wait = case.plan();
        assert!(wait.actions.is_empty(), "{wait:?}");
        assert!(wait.waiting.unwrap().contains("1/3 ready"));

        case.stable = workload("web-v1", 3, 3, "web:2", "web-v1");
        assert_eq!(
            case.plan().actions,
            [
                WorkloadAction::ReturnToStable,
                WorkloadAction::ScaleCanaryDown { from: 2 }
            ]
        );
    }

    #[test]
    fn promotion_by_swapping_names_leaves_the_deployments_alone() {
        let mut case = Case::new(Stage::Promoted);
        case.promotion = Promotion::SwapNames;
        assert!(case.plan().settled());
    }

    #[test]
    fn pending_scales_the_canary_up_and_waits_for_it() {
        let mut case = Case::new(Stage::Pending);
        case.canary = WorkloadView {
            scaled_down_from: Some(2),
            ..workload("web-v2", 0, 0, "web:3", "web-v2")
        };
        let plan = case.plan();
        assert_eq!(plan.actions, [WorkloadAction::ScaleCanaryUp { to: 2 }]);
        assert!(plan.waiting.is_some());
        case.canary = workload("web-v2", 2, 1, "web:3", "web-v2");
        let plan = case.plan();
        assert!(plan.actions.is_empty());
        assert!(plan.waiting.unwrap().contains("1/2 ready"));
    }

    #[test]
    fn a_split_reaches_the_canary_by_weight_header_or_name() {
        let initial = TrafficState::initial("web-v1", "web-v2");
        assert!(!reaches(&initial, "web-v2"));
        let header = TrafficState {
            header_route: true,
            ..initial.clone()
        };
        assert!(reaches(&header, "web-v2"));
        assert!(reaches(&all_to_stable("web-v2"), "web-v2"));
        assert!(!reaches(&all_to_stable("web-v1"), "web-v2"));
    }

    #[test]
    fn the_copied_template_keeps_stable_labels_and_removes_what_canary_lacks() {
        let stable = WorkloadView::from_object(&json!({
            "metadata": {"name": "web-v1", "resourceVersion": "41"},
            "spec": {"template": {
                "metadata": {"labels": {"app": "web", "version": "web-v1"}, "annotations": {"old": "x"}},
                "spec": {"nodeSelector": {"pool": "a"}, "containers": [{"name": "web", "image": "web:1"}]}}}
        }))
        .unwrap();
        let canary = workload("web-v2", 1, 1, "web:2", "web-v2");
        let patch = copy_template_patch(&stable, &canary);
        assert_eq!(
            patch,
            json!({
                "metadata": {"resourceVersion": "41"},
                "spec": {"template": {
                    "metadata": {"annotations": null},
                    "spec": {"nodeSelector": null, "containers": [{"name": "web", "image": "web:2"}]}
                }}
            })
        );
        let mut merged = stable.template.clone();
        apply_merge_patch(&mut merged, &patch["spec"]["template"]);
        assert_eq!(merged["spec"], canary.template["spec"]);
        assert_eq!(merged["metadata"]["labels"]["version"], "web-v1");
    }

    /// RFC 7386, to check patches against.
    fn apply_merge_patch(target: &mut Value, patch: &Value) {
        let Value::Object(patch) = patch else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = json!({});
        }
        let Value::Object(map) = target else { return };
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                apply_merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}
