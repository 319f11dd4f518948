//! What to do next, given where the rollout is and what the API reports
//! about the Deployments and the split in force. Pure: the reconciler
//! reads, calls [`plan`], and carries the actions out in order, stopping
//! at the first that fails; the next reconcile plans again from what the
//! API then reports, so every step is idempotent.

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
    /// Working through the steps (paused or not).
    Running,
    /// The state machine promoted the canary.
    Promoted,
    /// The state machine rolled back.
    Aborted,
}

/// One thing to do, in plan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadAction {
    /// Write this split to the filter configuration.
    Push(TrafficState),
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
}

/// What to do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Actions, in order.
    pub actions: Vec<WorkloadAction>,
    /// What the rollout waits for, in words; `None` when nothing.
    pub waiting: Option<String>,
    /// Whether a split the rollout wants is held back because the version
    /// it would send more traffic to is not ready.
    pub held: bool,
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
    /// The split the state machine wants.
    pub wanted: &'a TrafficState,
    /// The split the filter configuration holds now.
    pub in_force: &'a TrafficState,
    /// `spec.stableVersion`.
    pub stable_version: &'a str,
    /// `spec.canaryVersion`.
    pub canary_version: &'a str,
    /// The stable Deployment.
    pub stable: &'a WorkloadView,
    /// The canary Deployment.
    pub canary: &'a WorkloadView,
}

/// The next actions.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    match input.stage {
        Stage::Pending => pending(input),
        Stage::Running => running(input),
        Stage::Aborted => aborted(input),
        Stage::Promoted => match input.promotion {
            Promotion::CopyTemplate => promoted_by_copy(input),
            Promotion::SwapNames => promoted_by_swap(input),
        },
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

/// Whether two splits send the same requests to the same versions.
pub fn same_split(a: &TrafficState, b: &TrafficState) -> bool {
    a.stable == b.stable
        && a.canary == b.canary
        && a.effective_weight() == b.effective_weight()
        && a.header_route == b.header_route
}

/// The canary version's share of requests in `split`, in basis points.
fn canary_share(split: &TrafficState, canary_version: &str) -> u32 {
    let canary = u32::from(split.effective_weight().basis_points());
    if split.canary.as_deref() == Some(canary_version) {
        canary
    } else if split.stable == canary_version {
        10_000 - canary
    } else {
        0
    }
}

/// Whether going from `from` to `to` sends the canary more requests, or
/// lets the override header pick it where it could not.
fn raises_canary(from: &TrafficState, to: &TrafficState, canary_version: &str) -> bool {
    canary_share(to, canary_version) > canary_share(from, canary_version)
        || (to.header_route && !from.header_route && to.canary.is_some())
}

fn pending(input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    let safe = TrafficState::initial(input.stable_version, input.canary_version);
    if canary_share(input.in_force, input.canary_version) > 0 || input.in_force.header_route {
        plan.actions.push(WorkloadAction::Push(safe));
    }
    let canary = input.canary;
    if canary.replicas == 0 {
        let to = canary.scaled_down_from.filter(|n| *n > 0).unwrap_or(1);
        plan.actions.push(WorkloadAction::ScaleCanaryUp { to });
        plan.waiting = Some(format!(
            "scaling canary Deployment {} up to {to} replicas before the first step",
            canary.name
        ));
    } else if !canary.fully_ready() {
        plan.waiting = Some(format!(
            "waiting for canary Deployment {} before the first step: {}",
            canary.name,
            canary.readiness()
        ));
    }
    plan
}

fn running(input: &PlanInput<'_>) -> Plan {
    push_when_ready(input, || {
        format!(
            "holding {} (wanted: {}) until canary Deployment {} is ready: {}",
            input.in_force,
            input.wanted,
            input.canary.name,
            input.canary.readiness()
        )
    })
}

/// Pushes the wanted split, unless it raises the canary's share while the
/// canary is not fully ready: then the split in force stays and `waiting`
/// says why.
fn push_when_ready(input: &PlanInput<'_>, waiting: impl FnOnce() -> String) -> Plan {
    let mut plan = Plan::default();
    if same_split(input.wanted, input.in_force) {
        return plan;
    }
    if raises_canary(input.in_force, input.wanted, input.canary_version)
        && !input.canary.fully_ready()
    {
        plan.held = true;
        plan.waiting = Some(waiting());
        return plan;
    }
    plan.actions
        .push(WorkloadAction::Push(input.wanted.clone()));
    plan
}

fn aborted(input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    if !same_split(input.wanted, input.in_force) {
        plan.actions
            .push(WorkloadAction::Push(input.wanted.clone()));
    }
    if input.canary.replicas > 0 {
        plan.actions.push(WorkloadAction::ScaleCanaryDown {
            from: input.canary.replicas,
        });
    }
    plan
}

fn promoted_by_copy(input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    let (stable, canary) = (input.stable, input.canary);
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
    let target = all_to_stable(input.stable_version);
    if !same_split(&target, input.in_force) {
        plan.actions.push(WorkloadAction::Push(target));
    }
    if canary.replicas > 0 {
        plan.actions.push(WorkloadAction::ScaleCanaryDown {
            from: canary.replicas,
        });
    }
    plan
}

fn promoted_by_swap(input: &PlanInput<'_>) -> Plan {
    push_when_ready(input, || {
        format!(
            "waiting for canary Deployment {} to be ready before it becomes the stable version: {}",
            input.canary.name,
            input.canary.readiness()
        )
    })
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

    fn weight(percent: f64) -> Weight {
        Weight::from_percent(percent).unwrap()
    }

    fn split(canary_percent: f64) -> TrafficState {
        TrafficState {
            canary_weight: weight(canary_percent),
            ..TrafficState::initial("web-v1", "web-v2")
        }
    }

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
        wanted: TrafficState,
        in_force: TrafficState,
        stable: WorkloadView,
        canary: WorkloadView,
    }

    impl Case {
        fn new(stage: Stage) -> Case {
            Case {
                stage,
                promotion: Promotion::CopyTemplate,
                wanted: split(10.0),
                in_force: split(0.0),
                stable: workload("web-v1", 3, 3, "web:1", "web-v1"),
                canary: workload("web-v2", 2, 2, "web:2", "web-v2"),
            }
        }

        fn plan(&self) -> Plan {
            plan(&PlanInput {
                stage: self.stage,
                promotion: self.promotion,
                wanted: &self.wanted,
                in_force: &self.in_force,
                stable_version: "web-v1",
                canary_version: "web-v2",
                stable: &self.stable,
                canary: &self.canary,
            })
        }
    }

    #[test]
    fn a_weight_step_is_pushed_when_the_canary_is_ready() {
        let plan = Case::new(Stage::Running).plan();
        assert_eq!(plan.actions, [WorkloadAction::Push(split(10.0))]);
        assert!(!plan.held);
    }

    #[test]
    fn more_canary_traffic_waits_for_a_ready_canary() {
        let mut case = Case::new(Stage::Running);
        case.canary = workload("web-v2", 2, 1, "web:2", "web-v2");
        let plan = case.plan();
        assert!(plan.actions.is_empty());
        assert!(plan.held);
        assert!(plan.waiting.unwrap().contains("1/2 ready"));

        let mut header = Case::new(Stage::Running);
        header.canary = workload("web-v2", 2, 1, "web:2", "web-v2");
        header.wanted = TrafficState {
            header_route: true,
            ..split(0.0)
        };
        assert!(header.plan().held, "the override header would reach it");
    }

    #[test]
    fn less_canary_traffic_is_never_held() {
        let mut case = Case::new(Stage::Running);
        case.canary = workload("web-v2", 2, 0, "web:2", "web-v2");
        case.wanted = split(10.0);
        case.in_force = split(25.0);
        assert_eq!(case.plan().actions, [WorkloadAction::Push(split(10.0))]);
    }

    #[test]
    fn rollback_pushes_weight_zero_before_scaling_the_canary_down() {
        let mut case = Case::new(Stage::Aborted);
        case.wanted = split(0.0);
        case.in_force = split(25.0);
        case.canary = workload("web-v2", 2, 0, "web:2", "web-v2");
        assert_eq!(
            case.plan().actions,
            [
                WorkloadAction::Push(split(0.0)),
                WorkloadAction::ScaleCanaryDown { from: 2 }
            ]
        );
        case.in_force = split(0.0);
        assert_eq!(
            case.plan().actions,
            [WorkloadAction::ScaleCanaryDown { from: 2 }]
        );
        case.canary = workload("web-v2", 0, 0, "web:2", "web-v2");
        let done = case.plan();
        assert!(done.settled(), "{done:?}");
    }

    #[test]
    fn promotion_copies_then_waits_for_stable_then_returns_traffic() {
        let mut case = Case::new(Stage::Promoted);
        case.wanted = all_to_stable("web-v2");
        case.in_force = split(100.0);
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
                WorkloadAction::Push(all_to_stable("web-v1")),
                WorkloadAction::ScaleCanaryDown { from: 2 }
            ]
        );
        case.in_force = all_to_stable("web-v1");
        case.canary = workload("web-v2", 0, 0, "web:2", "web-v2");
        assert!(case.plan().settled());
    }

    #[test]
    fn promotion_by_swapping_names_leaves_the_deployments_alone() {
        let mut case = Case::new(Stage::Promoted);
        case.promotion = Promotion::SwapNames;
        case.wanted = all_to_stable("web-v2");
        case.in_force = split(100.0);
        assert_eq!(
            case.plan().actions,
            [WorkloadAction::Push(all_to_stable("web-v2"))]
        );
        // Already at 100%: the new name sends it no more requests.
        case.canary = workload("web-v2", 2, 1, "web:2", "web-v2");
        assert!(!case.plan().held);
        // Promoted early from 10%: all requests would go to a canary that
        // is not ready.
        case.in_force = split(10.0);
        assert!(case.plan().held);
    }

    #[test]
    fn pending_scales_the_canary_up_and_keeps_it_at_zero() {
        let mut case = Case::new(Stage::Pending);
        case.in_force = split(25.0);
        case.canary = WorkloadView {
            scaled_down_from: Some(2),
            ..workload("web-v2", 0, 0, "web:3", "web-v2")
        };
        let plan = case.plan();
        assert_eq!(
            plan.actions,
            [
                WorkloadAction::Push(split(0.0)),
                WorkloadAction::ScaleCanaryUp { to: 2 }
            ]
        );
        assert!(plan.waiting.is_some());
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
