//! The subcommands.

pub mod api_options;
pub mod control;
pub mod demo;
pub mod operator;
pub mod run;
pub mod upstream;
pub mod validate;

use clap::{Parser, Subcommand};

/// Progressive delivery inside the proxy.
#[derive(Debug, Parser)]
#[command(name = "canary", version, about)]
pub struct Cli {
    /// Log format of long-running commands: text or json.
    #[arg(long, global = true, default_value = "text", env = "CANARY_LOG_FORMAT")]
    pub log_format: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a rollout file and its analysis templates.
    Validate(validate::Validate),
    /// Run a rollout: measure, decide, push, and serve the HTTP API.
    Run(Box<run::Run>),
    /// Show a running rollout's status.
    Status(control::Server),
    /// Skip the current pause or analysis (--full: straight to 100%).
    Promote(control::Promote),
    /// Roll back now: canary 0%, stable 100%.
    Abort(control::Server),
    /// Hold the rollout where it is.
    Pause(control::Server),
    /// Lift a hold, or end an indefinite pause step.
    Resume(control::Server),
    /// Start again from the first step after an abort.
    Retry(control::Server),
    /// The whole canary flow on this machine, with a live view.
    Demo(demo::Demo),
    /// Reconcile CanaryRollout objects in a Kubernetes cluster (Istio WasmPlugin/TrafficExtension).
    Operator(Box<operator::Operator>),
    /// Print the CanaryRollout CustomResourceDefinition as YAML.
    Crd(operator::Crd),
    /// Write the filter module as an OCI image layout and print its digest.
    Oci(operator::Oci),
    /// Serve a test upstream that answers as one version.
    Upstream(upstream::Upstream),
}

/// Which tokio runtime a command runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// One thread: short API calls.
    CurrentThread,
    /// A worker per core: services.
    MultiThread,
}

/// Writes `text` to standard output. A closed stdout (`| head`) is not
/// worth a panic, so write errors are ignored.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Builds the runtime, or says why not (as `who: ...`) and returns `None`.
pub fn runtime(who: &str, flavour: Runtime) -> Option<tokio::runtime::Runtime> {
    let mut builder = match flavour {
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    };
    match builder.enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(err) => {
            eprintln!("{who}: cannot start the runtime: {err}");
            None
        }
    }
}
