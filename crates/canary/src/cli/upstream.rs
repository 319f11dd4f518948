//! `canary upstream --version v2`: a test upstream that answers as one
//! version, with faults switchable over HTTP (`PUT /_sim/faults`). The demo,
//! the end-to-end tests and the benchmarks run it as its own process.

use std::net::SocketAddr;
use std::process::ExitCode;

use canary_lab::backend::Backend;

/// Arguments of `canary upstream`.
#[derive(Debug, clap::Args)]
pub struct Upstream {
    /// The version it answers as.
    #[arg(long)]
    pub version: String,
    /// Where to listen (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

impl Upstream {
    /// Serves until SIGINT or SIGTERM.
    pub fn run(self) -> ExitCode {
        let Some(runtime) = super::runtime("canary upstream", super::Runtime::MultiThread) else {
            return ExitCode::FAILURE;
        };
        runtime.block_on(async {
            let backend = match Backend::start_on(&self.version, self.listen).await {
                Ok(backend) => backend,
                Err(err) => {
                    eprintln!("canary upstream: cannot listen on {}: {err}", self.listen);
                    return ExitCode::FAILURE;
                }
            };
            crate::cli::out(&format!("listening on {}\n", backend.addr()));
            crate::cli::run::shutdown_signal().await;
            backend.stop().await;
            ExitCode::SUCCESS
        })
    }
}
