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
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                eprintln!("canary upstream: cannot start the runtime: {err}");
                return ExitCode::FAILURE;
            }
        };
        runtime.block_on(async {
            let backend = match Backend::start_on(&self.version, self.listen).await {
                Ok(backend) => backend,
                Err(err) => {
                    eprintln!("canary upstream: cannot listen on {}: {err}", self.listen);
                    return ExitCode::FAILURE;
                }
            };
            println!("listening on {}", backend.addr());
            crate::cli::run::shutdown_signal().await;
            backend.stop().await;
            ExitCode::SUCCESS
        })
    }
}
