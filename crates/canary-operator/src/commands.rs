//! A person's command to a rollout, given as the annotation
//! `canary.dev/command` (`kubectl annotate canaryrollout web
//! canary.dev/command=promote`): `promote`, `promote-full`, `abort`,
//! `retry`, `pause`, `resume`, as the `canary` CLI names them
//! (`canary_rollout::Command` reads and prints them).
//!
//! A command is carried out at most once: the controller removes the
//! annotation (guarded by the object's `resourceVersion`) before acting,
//! so a crash in between loses the command (run it again) and never
//! repeats it (a second `promote` would skip a second step).

use serde_json::{json, Value};

/// The annotation holding a command.
pub const COMMAND_ANNOTATION: &str = "canary.dev/command";

/// The merge patch that removes the annotation, only from the object
/// version the command was read from.
pub fn removal_patch(resource_version: Option<&str>) -> Value {
    let mut patch = json!({ "metadata": { "annotations": { COMMAND_ANNOTATION: Value::Null } } });
    if let Some(version) = resource_version {
        patch["metadata"]["resourceVersion"] = json!(version);
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_is_guarded_by_the_version_read() {
        assert_eq!(
            removal_patch(Some("12")),
            json!({"metadata": {"annotations": {"canary.dev/command": null}, "resourceVersion": "12"}})
        );
    }
}
