//! A person's command to a rollout, given as the annotation
//! `canary.dev/command` (`kubectl annotate canaryrollout web
//! canary.dev/command=promote`): `promote`, `promote-full`, `abort`,
//! `retry`, `pause`, `resume`, as the `canary` CLI names them.
//!
//! A command is carried out at most once: the controller removes the
//! annotation (guarded by the object's `resourceVersion`) before acting,
//! so a crash in between loses the command (run it again) and never
//! repeats it (a second `promote` would skip a second step).

use canary_rollout::Command;
use serde_json::{json, Value};

/// The annotation holding a command.
pub const COMMAND_ANNOTATION: &str = "canary.dev/command";

/// The command an annotation value names.
pub fn parse_command(value: &str) -> Result<Command, String> {
    match value.trim() {
        "promote" => Ok(Command::Promote),
        "promote-full" => Ok(Command::PromoteFull),
        "abort" => Ok(Command::Abort),
        "retry" => Ok(Command::Retry),
        "pause" => Ok(Command::Pause),
        "resume" => Ok(Command::Resume),
        other => Err(format!(
            "{COMMAND_ANNOTATION}={other:?} is not a command; use promote, promote-full, abort, retry, pause or resume"
        )),
    }
}

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
    fn commands_are_named_as_the_cli_names_them() {
        assert_eq!(parse_command("promote"), Ok(Command::Promote));
        assert_eq!(parse_command(" promote-full "), Ok(Command::PromoteFull));
        assert_eq!(parse_command("abort"), Ok(Command::Abort));
        assert!(parse_command("rollback")
            .unwrap_err()
            .contains("not a command"));
    }

    #[test]
    fn removal_is_guarded_by_the_version_read() {
        assert_eq!(
            removal_patch(Some("12")),
            json!({"metadata": {"annotations": {"canary.dev/command": null}, "resourceVersion": "12"}})
        );
    }
}
