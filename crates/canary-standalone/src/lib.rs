//! `canary run`: one rollout, driven by the rollout driver as a standalone
//! process. It reads a rollout file, keeps its position in a locked state
//! file, pushes splits to Envoy's file-based ECDS (or an Istio object),
//! reads the proxies back, and serves the HTTP API.
//!
//! - [`shell`]: the loop around the driver.
//! - [`store`]: the state file and its lock.
//! - [`rollout_file`]: the rollout file and its secrets.

pub mod rollout_file;
pub mod shell;
pub mod store;

pub use shell::{RunConfig, RunOutcome, Shell, ShellError};
pub use store::{LockError, StateFile};
