//! `canary demo [--scenario success|failure|aa] [--speed N] [--json]`: the
//! whole canary flow on this machine, on loopback: real Envoy with the
//! filter, two upstream versions, steady load and the controller.

use std::process::ExitCode;

use canary_demo::{DemoError, DemoOptions, Scenario};

/// Arguments of `canary demo`.
#[derive(Debug, clap::Args)]
pub struct Demo {
    /// `success` (the canary is promoted), `failure` (it turns bad at
    /// 25% and is rolled back) or `aa` (both versions the same, failing
    /// 1% alike: the judge's evidence builds and the canary is promoted).
    #[arg(long, default_value = "success", value_parser = Scenario::parse)]
    pub scenario: Scenario,
    /// Divides every wait: 1 takes about a minute, 5 about fifteen seconds.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Print only the summary, as JSON.
    #[arg(long)]
    pub json: bool,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub plain: bool,
}

impl Demo {
    /// Runs the demo; exit 0 when it ends as the scenario tells, 1 when
    /// not, 130 when interrupted.
    pub fn run(self) -> ExitCode {
        let Some(runtime) = super::runtime("canary demo", super::Runtime::MultiThread) else {
            return ExitCode::FAILURE;
        };
        let options = DemoOptions {
            scenario: self.scenario,
            speed: self.speed,
            json: self.json,
            live: self.plain.then_some(false),
        };
        let result = runtime.block_on(canary_demo::run(
            options,
            crate::cli::run::shutdown_signal(),
        ));
        // Nothing may outlive the demo: stop the runtime's remaining tasks.
        runtime.shutdown_timeout(std::time::Duration::from_secs(2));
        match result {
            Ok(summary) => {
                let text = if self.json {
                    serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n"
                } else {
                    summary.render()
                };
                // A closed stdout (`| head`) is not worth a panic.
                let mut out = std::io::stdout().lock();
                let _ = std::io::Write::write_all(&mut out, text.as_bytes());
                if summary.as_expected {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(DemoError::Interrupted) => {
                eprintln!("\ncanary demo: {}", DemoError::Interrupted);
                ExitCode::from(130)
            }
            Err(err) => {
                eprintln!("canary demo: {err}");
                ExitCode::FAILURE
            }
        }
    }
}
