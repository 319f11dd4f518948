//! `canary`: the controller's command line. Wiring only; each subcommand
//! lives in its own module under `cli/`.

mod cli;

use std::process::ExitCode;

use canary_rollout::Command as RolloutCommand;
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // kube's TLS needs a process-wide rustls provider (ring); set it before
    // any client exists.
    canary_kube::install_crypto_provider();
    let args = cli::Cli::parse();
    // The demo draws on the terminal: it logs only when RUST_LOG asks.
    if !matches!(args.command, cli::Command::Demo(_)) || std::env::var_os("RUST_LOG").is_some() {
        init_logging(&args.log_format);
    }
    match args.command {
        cli::Command::Validate(validate) => validate.run(),
        cli::Command::Run(run) => run.run(),
        cli::Command::Status(server) => server.run(None),
        cli::Command::Promote(promote) => promote.server.run(Some(if promote.full {
            RolloutCommand::PromoteFull
        } else {
            RolloutCommand::Promote
        })),
        cli::Command::Abort(server) => server.run(Some(RolloutCommand::Abort)),
        cli::Command::Pause(server) => server.run(Some(RolloutCommand::Pause)),
        cli::Command::Resume(server) => server.run(Some(RolloutCommand::Resume)),
        cli::Command::Retry(server) => server.run(Some(RolloutCommand::Retry)),
        cli::Command::Demo(demo) => demo.run(),
        cli::Command::Operator(operator) => operator.run(),
        cli::Command::Crd(crd) => crd.run(),
        cli::Command::Oci(oci) => oci.run(),
        cli::Command::Upstream(upstream) => upstream.run(),
    }
}

/// Logs go to standard error; `RUST_LOG` picks the level (default info).
fn init_logging(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
