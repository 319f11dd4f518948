//! The controller's HTTP API, the same for `canary run` (one rollout) and
//! the operator (every rollout it reconciles): reports, commands, metrics
//! and probes; and the client the CLI uses.
//!
//! - [`server`]: the routes, served from a [`Board`] the shell keeps up
//!   to date, with commands sent to the shell.
//! - [`metrics`]: `/metrics` in Prometheus' text format.
//! - [`client`]: calls from the CLI.
//! - [`auth`]: who may read and steer (`docs/api-auth.md`).
//! - [`limits`]: what one client may hold of the controller.
//! - [`tls`]: serving over TLS from certificate files.

pub mod auth;
pub mod client;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::RwLock;

use canary_rollout::driver::Report;
use canary_rollout::{Command, CommandError};
use tokio::sync::oneshot;
use tokio::time::Instant;

pub use auth::{Actor, Token};
pub use limits::Limits;
pub use metrics::ControllerMetrics;
pub use server::{serve, ApiState, Listening};

/// The answer to a command: the report after it, or why it was refused.
pub type Answer = Result<Report, Refusal>;

/// A command for one rollout, and where to send the answer.
#[derive(Debug)]
pub struct CommandRequest {
    /// Which rollout (`None`: the only one).
    pub rollout: Option<String>,
    /// The command.
    pub command: Command,
    /// Who sent it.
    pub by: Actor,
    /// Not carried out after this time.
    pub deadline: Instant,
    /// The report after the command, or why it was refused.
    pub reply: oneshot::Sender<Answer>,
}

impl CommandRequest {
    /// A command from `by`, to be carried out before `deadline` or not at
    /// all, and where its answer arrives.
    pub fn new(
        rollout: Option<String>,
        command: Command,
        by: Actor,
        deadline: Instant,
    ) -> (CommandRequest, oneshot::Receiver<Answer>) {
        let (reply, answer) = oneshot::channel();
        let request = CommandRequest {
            rollout,
            command,
            by,
            deadline,
            reply,
        };
        (request, answer)
    }

    /// Why the command must not be carried out at `now`, if so: its
    /// client has gone (nobody would learn the outcome), or it waited past
    /// its deadline (a person who gave up may have moved on).
    pub fn stale(&self, now: Instant) -> Option<String> {
        if self.reply.is_closed() {
            Some(format!(
                "{} from {}: its client has gone",
                self.command, self.by
            ))
        } else if now > self.deadline {
            Some(format!(
                "{} from {}: it waited past its deadline",
                self.command, self.by
            ))
        } else {
            None
        }
    }
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The rollout refused it.
    #[error(transparent)]
    Refused(#[from] CommandError),
    /// No rollout of that name.
    #[error("no rollout named {0:?}")]
    NoSuchRollout(String),
    /// The shell cannot take commands now.
    #[error("{0}")]
    Unavailable(String),
}

/// When the API reports ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Once a rollout is loaded and its split pushed (`canary run`).
    SplitPushed,
    /// While the process serves (the operator: followers too).
    Serving,
}

/// What the API serves: each rollout's latest report and the metrics.
#[derive(Debug, Default)]
pub struct Board {
    reports: RwLock<BTreeMap<String, Report>>,
    /// Counters for `/metrics`.
    pub metrics: ControllerMetrics,
}

impl Board {
    /// Publishes `report` under `id` (replacing the previous one).
    pub fn publish(&self, id: &str, report: Report) {
        self.metrics.observe(id, &report);
        if let Ok(mut reports) = self.reports.write() {
            reports.insert(id.to_owned(), report);
        }
    }

    /// Forgets the rollout `id` (it was deleted).
    pub fn forget(&self, id: &str) {
        self.metrics.forget(id);
        if let Ok(mut reports) = self.reports.write() {
            reports.remove(id);
        }
    }

    /// The report of `id`, or of the only rollout when `id` is `None`.
    pub fn report(&self, id: Option<&str>) -> Option<Report> {
        let reports = self.reports.read().ok()?;
        match id {
            Some(id) => reports.get(id).cloned(),
            None => reports.values().next().cloned(),
        }
    }

    /// Every report, by id.
    pub fn reports(&self) -> BTreeMap<String, Report> {
        self.reports.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// `Ok` when ready by `readiness`, else why not.
    pub fn ready(&self, readiness: Readiness) -> Result<(), String> {
        if readiness == Readiness::Serving {
            return Ok(());
        }
        let Some(report) = self.report(None) else {
            return Err("no rollout loaded yet".into());
        };
        if report.push.pending {
            return Err(format!(
                "the split in force is not pushed yet: {}",
                report
                    .push
                    .last_error
                    .as_deref()
                    .unwrap_or("push in progress")
            ));
        }
        Ok(())
    }
}
