//! `canary status`, `promote [--full]`, `abort`, `pause`, `resume`,
//! `retry`: talk to a running controller's API. A readable summary by
//! default, `--json` for scripts.

use std::process::ExitCode;

use canary_api::auth::{TokenSources, TOKEN_FLAG_WARNING};
use canary_api::client::{ApiClient, DEFAULT_SERVER};
use canary_rollout::driver::{remaining, Report};
use canary_rollout::Command;

/// Where the controller is.
#[derive(Debug, Clone, clap::Args)]
pub struct Server {
    /// The controller's API.
    #[arg(long, env = "CANARY_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// The API's token (visible to every local user in /proc: prefer
    /// --token-file or CANARY_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// File holding the API's token [default: .canary/api-token, when it
    /// exists].
    #[arg(long, env = "CANARY_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Also trust the PEM certificates in this file for an https://
    /// server (e.g. the API's own --tls-cert).
    #[arg(long, env = "CANARY_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `canary promote` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Promote {
    /// Skip every remaining step: the canary becomes stable now.
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub server: Server,
}

impl Server {
    /// Runs `command` (or only reads the status when `None`) and prints
    /// the status.
    pub fn run(&self, command: Option<Command>) -> ExitCode {
        let Some(runtime) = super::runtime("canary", super::Runtime::CurrentThread) else {
            return ExitCode::FAILURE;
        };
        if self.token.is_some() {
            eprintln!("canary: warning: {}", TOKEN_FLAG_WARNING);
        }
        let sources = TokenSources::from_env(self.token.clone(), self.token_file.clone());
        let token = match sources.for_client() {
            Ok(token) => token,
            Err(err) => {
                eprintln!("canary: {err}");
                return ExitCode::FAILURE;
            }
        };
        let roots = match &self.ca_file {
            Some(path) => match std::fs::read(path) {
                Ok(pem) => Some(pem),
                Err(err) => {
                    eprintln!("canary: cannot read {}: {err}", path.display());
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        let result = runtime.block_on(async {
            let client = ApiClient::trusting(&self.server, token, roots.as_deref())?;
            match command {
                Some(command) => client.command(command).await,
                None => client.status().await,
            }
        });
        match result {
            Ok(status) => {
                let text = if self.json {
                    serde_json::to_string_pretty(&status).unwrap_or_default() + "\n"
                } else {
                    render(&status)
                };
                crate::cli::out(&text);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("canary: {err}");
                ExitCode::FAILURE
            }
        }
    }
}

/// A status for people.
pub fn render(status: &Report) -> String {
    let mut out = String::new();
    let now = status.updated_at;
    let step = match &status.current_step {
        Some(step) => {
            let left = status
                .paused_until
                .and_then(|until| remaining(until, now))
                .map(|left| format!(", {left} left"))
                .unwrap_or_default();
            format!("step {}/{} ({step}{left})", status.step + 1, status.steps)
        }
        None => format!("all {} steps done", status.steps),
    };
    out.push_str(&format!(
        "rollout {}   {}   {}\n",
        status.rollout, status.phase, step
    ));
    if let Some(message) = &status.message {
        out.push_str(&format!("  {message}\n"));
    }
    for condition in &status.conditions {
        out.push_str(&format!("  ! {}: {}\n", condition.kind, condition.message));
    }
    let t = &status.traffic;
    let canary = t.canary.as_deref().unwrap_or("-");
    out.push_str(&format!(
        "traffic  {} {:>6.2}% {}  {} {:>6.2}%{}\n",
        t.stable,
        t.stable_weight,
        bar(t.canary_weight),
        canary,
        t.canary_weight,
        if t.header_route {
            "   (override header on)"
        } else {
            ""
        }
    ));
    for analysis in &status.analyses {
        out.push_str(&format!("analysis {}: {}", analysis.slot, analysis.phase));
        if let Some(message) = &analysis.message {
            out.push_str(&format!(" ({message})"));
        }
        out.push('\n');
        out.push_str(&format!(
            "  {:<24} {:<13} {:>5} {:>4} {:>4} {:>4} {:>4} {:>6}  last\n",
            "metric", "phase", "count", "ok", "fail", "inc", "err", "nodata"
        ));
        for metric in &analysis.metrics {
            let last = metric
                .measurements
                .last()
                .map(|m| {
                    let value = m.value.as_deref().unwrap_or("-");
                    match &m.message {
                        Some(message) => format!("{value} {} ({message})", m.phase),
                        None => format!("{value} {}", m.phase),
                    }
                })
                .unwrap_or_else(|| "-".into());
            out.push_str(&format!(
                "  {:<24} {:<13} {:>5} {:>4} {:>4} {:>4} {:>4} {:>6}  {last}\n",
                metric.name,
                metric.phase,
                metric.count,
                metric.successful,
                metric.failed,
                metric.inconclusive,
                metric.errors,
                metric.not_enough_data
            ));
        }
    }
    let push = &status.push;
    out.push_str(&format!(
        "push     {}: {} ok, {} failed{}{}\n",
        push.target,
        push.pushes,
        push.failures,
        push.last_version
            .as_deref()
            .map(|v| format!(", last version {v}"))
            .unwrap_or_default(),
        if push.pending { ", PENDING" } else { "" }
    ));
    if let Some(err) = &push.last_error {
        out.push_str(&format!("  last error: {err}\n"));
    }
    if let Some(applied) = &push.applied {
        out.push_str(&format!("  {}\n", applied.describe()));
    }
    let recent = status.events.len().saturating_sub(8);
    if status.events.len() > recent {
        out.push_str("events\n");
        for event in &status.events[recent..] {
            out.push_str(&format!("  {:<20} {}\n", event.kind, event.reason));
        }
    }
    out
}

/// A 20-character bar of the canary's share.
fn bar(canary_percent: f64) -> String {
    let filled = ((canary_percent / 5.0).round() as usize).min(20);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(20 - filled))
}
