//! `canary`: the controller's command line. Wiring only; each subcommand
//! lives in its own module under `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match args.command {
        cli::Command::Validate(validate) => validate.run(),
    }
}
