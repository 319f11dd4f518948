//! What a person can tell a rollout to do.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A command from a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// Skip the current pause or analysis (or decide for an inconclusive
    /// analysis: go on).
    Promote,
    /// Skip every remaining step: the canary becomes stable now.
    PromoteFull,
    /// Roll back: canary to 0% at once.
    Abort,
    /// Start again from the first step after an abort.
    Retry,
    /// Hold the rollout where it is (analysis keeps running, and a
    /// failure still rolls back).
    Pause,
    /// Lift a hold, or end a `pause: {}` step.
    Resume,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Command::Promote => "promote",
            Command::PromoteFull => "promote --full",
            Command::Abort => "abort",
            Command::Retry => "retry",
            Command::Pause => "pause",
            Command::Resume => "resume",
        })
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {command}: {reason}")]
pub struct CommandError {
    /// The command.
    pub command: Command,
    /// Why not, and what would work.
    pub reason: String,
}
