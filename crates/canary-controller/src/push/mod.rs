//! Delivering a filter configuration to the proxies: Envoy's file-based
//! ECDS, an Istio WasmPlugin or TrafficExtension (server-side apply), or a
//! dry run. Every push is
//! validated against the shared schema first (the same code the filter
//! runs in `on_configure`), so the controller never sends something the
//! filter would reject.

pub mod dry_run;
pub mod ecds_file;

use canary_config::FilterConfig;

use crate::push::dry_run::DryRun;
use crate::push::ecds_file::{EcdsFile, EcdsFileError};

/// Why a push did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("refusing to push an invalid filter configuration: {0}")]
    Invalid(#[from] canary_config::ConfigErrors),
    #[error(transparent)]
    EcdsFile(#[from] EcdsFileError),
    #[error(transparent)]
    Plugin(#[from] canary_kube::PushError),
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReceipt {
    /// Where it went, for people.
    pub target: String,
    /// The target's version for it, when it has one.
    pub version: Option<String>,
}

/// Where configurations go.
#[derive(Debug)]
pub enum Pusher {
    /// Envoy's file-based ECDS.
    EcdsFile(EcdsFile),
    /// Print only.
    DryRun(DryRun),
    /// Server-side apply of an Istio WasmPlugin's (or TrafficExtension's)
    /// configuration.
    Plugin(canary_kube::PluginPusher),
}

impl Pusher {
    /// Validates and delivers `config`.
    pub async fn push(&self, config: &FilterConfig) -> Result<PushReceipt, PushError> {
        canary_config::compile(config)?;
        match self {
            Pusher::EcdsFile(file) => {
                let receipt = file.push(config)?;
                Ok(PushReceipt {
                    target: self.describe(),
                    version: Some(receipt.version_info),
                })
            }
            Pusher::DryRun(dry_run) => {
                dry_run.push(config);
                Ok(PushReceipt {
                    target: self.describe(),
                    version: None,
                })
            }
            Pusher::Plugin(plugin) => {
                let applied = plugin.push(config).await?;
                Ok(PushReceipt {
                    target: self.describe(),
                    version: applied.resource_version,
                })
            }
        }
    }

    /// The configuration the target holds now, when it can tell (the base
    /// the rollout's weights are applied to).
    pub async fn current(&self) -> Result<Option<FilterConfig>, PushError> {
        match self {
            Pusher::EcdsFile(file) => Ok(Some(file.current()?)),
            Pusher::DryRun(_) => Ok(None),
            Pusher::Plugin(plugin) => Ok(plugin.current().await?),
        }
    }

    /// Where pushes go, for people.
    pub fn describe(&self) -> String {
        match self {
            Pusher::EcdsFile(file) => format!("ECDS file {}", file.path().display()),
            Pusher::DryRun(_) => "dry run (stdout)".to_owned(),
            Pusher::Plugin(plugin) => plugin.object().to_string(),
        }
    }

    /// The ECDS resource name Envoy reports the pushed version under, for
    /// confirming a push took effect.
    pub fn ecds_resource(&self) -> Option<&str> {
        match self {
            Pusher::EcdsFile(file) => Some(file.resource()),
            Pusher::DryRun(_) | Pusher::Plugin(_) => None,
        }
    }
}
