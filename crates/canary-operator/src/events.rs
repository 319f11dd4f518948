//! Kubernetes Events (`events.k8s.io/v1`) about a rollout: one per
//! decision of the state machine and per action on the cluster, so
//! `kubectl describe canaryrollout` and `kubectl events` tell the story.
//!
//! Events are best-effort, as everywhere in Kubernetes: a failed create is
//! logged and never fails or repeats the reconcile that made the decision.
//! Names are derived from the event time, so they are unique without
//! randomness and a test can predict them.

use canary_analysis::Timestamp;
use canary_rollout::{Event as Decided, EventKind};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::Client;

use crate::permissions::CREATE_EVENTS;
use crate::resource::{GROUP, VERSION};
use crate::time::micro_time;

/// `reportingController` of every event.
pub const REPORTING_CONTROLLER: &str = "canary.dev/canary-controller";

/// Longest `note` the API server accepts is 1 kB; longer notes are cut.
const MAX_NOTE_BYTES: usize = 1000;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something needs a person's attention.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `Normal` or `Warning`.
    pub type_: EventType,
    /// CamelCase reason (`WeightChanged`, `ScaledDown`).
    pub reason: String,
    /// What the controller did: `Rollout` (a decision), `Push`, `Scale`,
    /// `CopyTemplate`, `Command`, `Validate`.
    pub action: &'static str,
    /// For people.
    pub note: String,
}

impl Note {
    /// A `Normal` event.
    pub fn normal(reason: &str, action: &'static str, note: impl Into<String>) -> Note {
        Note {
            type_: EventType::Normal,
            reason: reason.to_owned(),
            action,
            note: note.into(),
        }
    }

    /// A `Warning` event.
    pub fn warning(reason: &str, action: &'static str, note: impl Into<String>) -> Note {
        Note {
            type_: EventType::Warning,
            ..Note::normal(reason, action, note)
        }
    }

    /// The event for a decision of the state machine; `None` for a
    /// measurement (those are in the status, one per metric, and would
    /// flood the namespace's events).
    pub fn from_decision(event: &Decided) -> Option<Note> {
        let reason = format!("{:?}", event.kind);
        match event.kind {
            EventKind::Measured => None,
            EventKind::AnalysisFailed | EventKind::AnalysisInconclusive | EventKind::Aborted => {
                Some(Note::warning(&reason, "Rollout", event.reason.clone()))
            }
            _ => Some(Note::normal(&reason, "Rollout", event.reason.clone())),
        }
    }
}

/// The object events are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regarding {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: Option<String>,
}

/// Publishes events as one controller instance.
#[derive(Clone)]
pub struct EventRecorder {
    client: Client,
    instance: String,
}

impl EventRecorder {
    /// A recorder reporting as `instance` (the pod's name).
    pub fn new(client: Client, instance: &str) -> EventRecorder {
        EventRecorder {
            client,
            instance: instance.to_owned(),
        }
    }

    /// Publishes `notes` about `regarding`, in order, at `at`.
    pub async fn publish(&self, regarding: &Regarding, notes: &[Note], at: Timestamp) {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &regarding.namespace);
        for (sequence, note) in notes.iter().enumerate() {
            let event = event_object(regarding, note, &self.instance, at, sequence);
            match api.create(&PostParams::default(), &event).await {
                Ok(_) => {
                    tracing::debug!(reason = %note.reason, "event published")
                }
                Err(error) => {
                    let error = CREATE_EVENTS.error(&regarding.namespace, None, error);
                    tracing::warn!(reason = %note.reason, "event not published: {error}");
                }
            }
        }
    }
}

/// The event object for `note`, the `sequence`-th published at `at`.
pub fn event_object(
    regarding: &Regarding,
    note: &Note,
    instance: &str,
    at: Timestamp,
    sequence: usize,
) -> Event {
    let nanos = u128::from(at.millis()) * 1_000_000 + sequence as u128;
    let mut text = note.note.clone();
    if text.len() > MAX_NOTE_BYTES {
        let mut cut = MAX_NOTE_BYTES - 3;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{nanos:x}", regarding.name)),
            namespace: Some(regarding.namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(micro_time(at)),
        reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        action: Some(note.action.to_owned()),
        reason: Some(note.reason.clone()),
        note: Some(text),
        type_: Some(note.type_.as_str().to_owned()),
        regarding: Some(ObjectReference {
            api_version: Some(format!("{GROUP}/{VERSION}")),
            kind: Some("CanaryRollout".to_owned()),
            name: Some(regarding.name.clone()),
            namespace: Some(regarding.namespace.clone()),
            uid: regarding.uid.clone(),
            ..ObjectReference::default()
        }),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn web() -> Regarding {
        Regarding {
            namespace: "shop".into(),
            name: "web".into(),
            uid: Some("u-1".into()),
        }
    }

    #[test]
    fn an_event_names_the_rollout_and_the_decision() {
        let note = Note::normal("WeightChanged", "Rollout", "canary 10%");
        let event = event_object(&web(), &note, "canary-0", Timestamp::from_millis(1_000), 2);
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({
                "apiVersion": "events.k8s.io/v1",
                "kind": "Event",
                "metadata": {"name": "web.3b9aca02", "namespace": "shop"},
                "eventTime": "1970-01-01T00:00:01.000000Z",
                "reportingController": "canary.dev/canary-controller",
                "reportingInstance": "canary-0",
                "action": "Rollout",
                "reason": "WeightChanged",
                "note": "canary 10%",
                "type": "Normal",
                "regarding": {"apiVersion": "canary.dev/v1alpha1", "kind": "CanaryRollout",
                              "name": "web", "namespace": "shop", "uid": "u-1"}
            })
        );
    }

    #[test]
    fn long_notes_are_cut_to_what_the_api_server_accepts() {
        let note = Note::warning("InvalidSpec", "Validate", "é".repeat(800));
        let event = event_object(&web(), &note, "i", Timestamp::from_millis(0), 0);
        let text = event.note.unwrap();
        assert!(text.len() <= MAX_NOTE_BYTES);
        assert!(text.ends_with("..."));
    }

    #[test]
    fn measurements_make_no_event_and_failures_warn() {
        let decided = |kind| Decided {
            at: Timestamp::from_millis(0),
            kind,
            reason: "why".into(),
        };
        assert_eq!(Note::from_decision(&decided(EventKind::Measured)), None);
        assert_eq!(
            Note::from_decision(&decided(EventKind::Aborted)).map(|n| n.type_),
            Some(EventType::Warning)
        );
        assert_eq!(
            Note::from_decision(&decided(EventKind::WeightChanged)).map(|n| n.reason),
            Some("WeightChanged".to_owned())
        );
    }
}
