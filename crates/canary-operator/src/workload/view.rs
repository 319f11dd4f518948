//! A Deployment as the rollout sees it: how many replicas it wants, how
//! many run its current template and are ready, and its pod template.
//!
//! Deployments are read as plain JSON, not through typed bindings, so a
//! pod template copied from canary to stable keeps every field, including
//! fields newer than the bindings.

use serde_json::Value;

use crate::fingerprint::{template_body_fingerprint, template_fingerprint};

/// Annotation on the canary Deployment holding the replica count it had
/// before the controller scaled it to zero, so the next rollout restores
/// it.
pub const SCALED_DOWN_FROM: &str = "canary.dev/replicas-before-scale-down";

/// Why a Deployment could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deployment {name:?} has no {field}")]
pub struct MalformedDeployment {
    /// The Deployment.
    pub name: String,
    /// The field missing.
    pub field: &'static str,
}

/// One Deployment's spec and status, as far as the rollout needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadView {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.resourceVersion`: the precondition of a template copy.
    pub resource_version: Option<String>,
    /// `spec.replicas` (1 when unset, as the API server defaults it).
    pub replicas: i64,
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`: the controller has seen the spec
    /// when it is at least `generation`.
    pub observed_generation: i64,
    /// `status.replicas`: pods of every ReplicaSet, old ones included.
    pub current: i64,
    /// `status.updatedReplicas`: pods running the current template.
    pub updated: i64,
    /// `status.readyReplicas`.
    pub ready: i64,
    /// `status.availableReplicas`.
    pub available: i64,
    /// `spec.template`.
    pub template: Value,
    /// The [`SCALED_DOWN_FROM`] annotation, when set.
    pub scaled_down_from: Option<i64>,
}

impl WorkloadView {
    /// Reads a Deployment object.
    pub fn from_object(object: &Value) -> Result<WorkloadView, MalformedDeployment> {
        let metadata = object.get("metadata");
        let name = metadata
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let missing = |field| MalformedDeployment {
            name: name.clone(),
            field,
        };
        let spec = object.get("spec").ok_or_else(|| missing("spec"))?;
        let template = spec
            .get("template")
            .cloned()
            .ok_or_else(|| missing("spec.template"))?;
        let status = object.get("status");
        let count = |field: &str| {
            status
                .and_then(|s| s.get(field))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        let scaled_down_from = metadata
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(SCALED_DOWN_FROM))
            .and_then(Value::as_str)
            .and_then(|text| text.parse().ok());
        Ok(WorkloadView {
            resource_version: metadata
                .and_then(|m| m.get("resourceVersion"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            replicas: spec.get("replicas").and_then(Value::as_i64).unwrap_or(1),
            generation: metadata
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0),
            observed_generation: count("observedGeneration"),
            current: count("replicas"),
            updated: count("updatedReplicas"),
            ready: count("readyReplicas"),
            available: count("availableReplicas"),
            template,
            scaled_down_from,
            name,
        })
    }

    /// Whether every wanted replica runs the current template and is ready
    /// and available, no pod of an older template is left, and the
    /// Deployment controller has seen the latest spec (so a status written
    /// before a template change is never taken for the new template's).
    pub fn fully_ready(&self) -> bool {
        self.replicas > 0
            && self.observed_generation >= self.generation
            && self.updated >= self.replicas
            && self.ready >= self.replicas
            && self.available >= self.replicas
            && self.current <= self.replicas
    }

    /// The replicas in words, for messages: `2/3 ready, 3/3 updated`.
    pub fn readiness(&self) -> String {
        let mut text = format!(
            "{}/{} ready, {}/{} updated",
            self.ready, self.replicas, self.updated, self.replicas
        );
        if self.current > self.replicas {
            text.push_str(&format!(", {} old pods left", self.current - self.replicas));
        }
        if self.observed_generation < self.generation {
            text.push_str(", change not yet seen by the Deployment controller");
        }
        text
    }

    /// The fingerprint of its pod template.
    pub fn template_fingerprint(&self) -> String {
        template_fingerprint(&self.template)
    }

    /// The fingerprint of its pod template without labels.
    pub fn template_body_fingerprint(&self) -> String {
        template_body_fingerprint(&self.template)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i64, generation: i64, status: Value) -> Value {
        json!({
            "metadata": {"name": "web-v1", "generation": generation, "resourceVersion": "77",
                         "annotations": {SCALED_DOWN_FROM: "3"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}},
            "status": status
        })
    }

    #[test]
    fn fully_ready_needs_every_replica_updated_ready_and_seen() {
        let ready = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                           "readyReplicas": 3, "availableReplicas": 3});
        let view = WorkloadView::from_object(&deployment(3, 2, ready.clone())).unwrap();
        assert!(view.fully_ready());
        assert_eq!(view.scaled_down_from, Some(3));
        assert_eq!(view.resource_version.as_deref(), Some("77"));

        let unseen = WorkloadView::from_object(&deployment(3, 3, ready.clone())).unwrap();
        assert!(!unseen.fully_ready(), "a status of the previous generation");
        assert!(unseen.readiness().contains("not yet seen"));

        let mut rolling = ready.clone();
        rolling["replicas"] = json!(4);
        let rolling = WorkloadView::from_object(&deployment(3, 2, rolling)).unwrap();
        assert!(!rolling.fully_ready(), "an old pod is left");

        let mut half = ready;
        half["readyReplicas"] = json!(2);
        let half = WorkloadView::from_object(&deployment(3, 2, half)).unwrap();
        assert!(!half.fully_ready());
        assert_eq!(half.readiness(), "2/3 ready, 3/3 updated");

        let zero =
            WorkloadView::from_object(&deployment(0, 2, json!({"observedGeneration": 2}))).unwrap();
        assert!(!zero.fully_ready(), "no replica serves nothing");
    }

    #[test]
    fn a_deployment_without_a_template_is_refused() {
        let error =
            WorkloadView::from_object(&json!({"metadata": {"name": "x"}, "spec": {}})).unwrap_err();
        assert_eq!(error.to_string(), "deployment \"x\" has no spec.template");
    }
}
