//! The subcommands.

pub mod validate;

use clap::{Parser, Subcommand};

/// Progressive delivery inside the proxy.
#[derive(Debug, Parser)]
#[command(name = "canary", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a rollout file and its analysis templates.
    Validate(validate::Validate),
}
