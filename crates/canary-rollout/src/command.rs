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

impl Command {
    /// Every command.
    pub const ALL: [Command; 6] = [
        Command::Promote,
        Command::PromoteFull,
        Command::Abort,
        Command::Retry,
        Command::Pause,
        Command::Resume,
    ];

    /// The command's name as every client spells it (the CLI's
    /// subcommands, the API's paths, the operator's annotation):
    /// `promote`, `promote-full`, `abort`, `retry`, `pause`, `resume`.
    pub const fn name(self) -> &'static str {
        match self {
            Command::Promote => "promote",
            Command::PromoteFull => "promote-full",
            Command::Abort => "abort",
            Command::Retry => "retry",
            Command::Pause => "pause",
            Command::Resume => "resume",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a command; use promote, promote-full, abort, retry, pause or resume")]
pub struct UnknownCommand(pub String);

impl std::str::FromStr for Command {
    type Err = UnknownCommand;

    fn from_str(name: &str) -> Result<Command, UnknownCommand> {
        let name = name.trim();
        Command::ALL
            .into_iter()
            .find(|command| command.name() == name)
            .ok_or_else(|| UnknownCommand(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_reads_back_its_own_name() {
        for command in Command::ALL {
            assert_eq!(command.name().parse::<Command>(), Ok(command));
        }
        assert_eq!(
            " promote-full ".parse::<Command>(),
            Ok(Command::PromoteFull)
        );
        let err = "rollback".parse::<Command>().unwrap_err().to_string();
        assert!(err.contains("not a command"), "{err}");
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
