//! Where splits go and how the proxies are read, behind the rollout's
//! [`TrafficRouter`] port.
//!
//! A push reads the configuration the target holds now (the ECDS file, the
//! Istio object), writes the rollout's split into it and delivers it; what
//! else the configuration says belongs to whoever wrote it (Git). Every
//! configuration is checked with the filter's own validation before it
//! leaves, so the controller never sends something the filter refuses.
//!
//! - [`ecds_file`], [`dry_run`] and `canary_kube::PluginPusher`: the
//!   targets.
//! - [`Observer`]: each Envoy's `weight_bp` gauges from its admin endpoint
//!   (standalone), the mesh's proxies through Prometheus ([`mesh`]), or
//!   nothing (a dry run).
//! - [`atomic_file`]: replacing a file so a reader sees the old or the new.

pub mod atomic_file;
pub mod dry_run;
pub mod ecds_file;
pub mod mesh;

use std::sync::Arc;
use std::time::Duration;

use canary_config::FilterConfig;
use canary_rollout::driver::{Observation, SplitPush};
use canary_rollout::ports::{BoxFuture, RouterError, TrafficRouter};
use canary_sources::envoy::EnvoySource;

use crate::dry_run::DryRun;
use crate::ecds_file::{EcdsFile, EcdsFileError};
use crate::mesh::MeshObserver;

/// Why a push did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The rollout's split does not fit the target's configuration.
    #[error("the rollout's split cannot be applied to the filter configuration: {0}")]
    Apply(#[from] canary_rollout::ApplyError),
    /// The target holds no configuration to apply the split to.
    #[error("{0} holds no filter configuration to apply the split to")]
    NoBase(String),
    /// Writing the ECDS file failed.
    #[error(transparent)]
    EcdsFile(#[from] EcdsFileError),
    /// Applying the Istio object failed.
    #[error(transparent)]
    Plugin(#[from] canary_kube::PushError),
}

/// Where configurations go.
#[derive(Debug)]
pub enum Target {
    /// Envoy's file-based ECDS.
    EcdsFile(EcdsFile),
    /// Print only, applying splits to this configuration.
    DryRun(DryRun, FilterConfig),
    /// Server-side apply of the split (`pluginConfig.splits.<route>`, nothing
    /// else) onto an Istio WasmPlugin or TrafficExtension.
    Plugin(canary_kube::PluginPusher),
}

impl Target {
    /// Where pushes go, for people.
    pub fn describe(&self) -> String {
        match self {
            Target::EcdsFile(file) => format!("ECDS file {}", file.path().display()),
            Target::DryRun(..) => "dry run (stdout)".to_owned(),
            Target::Plugin(plugin) => plugin.object().to_string(),
        }
    }

    /// The configuration the target holds now.
    pub async fn current(&self) -> Result<FilterConfig, PushError> {
        match self {
            Target::EcdsFile(file) => Ok(file.current()?),
            Target::DryRun(_, base) => Ok(base.clone()),
            Target::Plugin(plugin) => plugin
                .current()
                .await?
                .ok_or_else(|| PushError::NoBase(plugin.object().to_string())),
        }
    }

    /// Writes `split` on `routes` into the target's configuration and
    /// delivers it; the target's version for it, when it has one.
    pub async fn push(
        &self,
        split: &SplitPush,
        routes: &[String],
    ) -> Result<Option<String>, PushError> {
        let base = self.current().await?;
        // `apply` validates the result with the filter's own rules.
        let config = split.apply(&base, routes)?;
        match self {
            Target::EcdsFile(file) => Ok(Some(file.push(&config)?.version_info)),
            Target::DryRun(dry_run, _) => {
                dry_run.push(&config);
                Ok(None)
            }
            // Only the split of `routes` is sent; Git's part stays Git's.
            Target::Plugin(plugin) => Ok(plugin.push(&config, routes).await?.resource_version),
        }
    }
}

/// How the proxies are read.
#[derive(Debug, Clone)]
pub enum Observer {
    /// Nothing reads them: a pushed split is taken as in force.
    None,
    /// Each Envoy's admin endpoint, scraped every `every`.
    Envoy {
        /// The scraped endpoints.
        source: Arc<EnvoySource>,
        /// How often they are scraped.
        every: Duration,
    },
    /// A mesh's proxies, from Prometheus, against the pods that should
    /// carry the filter.
    Mesh(MeshObserver),
}

/// A target and an observer: the rollout's traffic router.
#[derive(Debug)]
pub struct Router {
    /// Where splits go.
    pub target: Target,
    /// How the proxies are read.
    pub observer: Observer,
}

impl TrafficRouter for Router {
    fn describe(&self) -> String {
        self.target.describe()
    }

    fn set<'a>(
        &'a self,
        split: &'a SplitPush,
        routes: &'a [String],
    ) -> BoxFuture<'a, Result<Option<String>, RouterError>> {
        Box::pin(async move {
            self.target
                .push(split, routes)
                .await
                .map_err(|e| RouterError(e.to_string()))
        })
    }

    fn observe(&self) -> BoxFuture<'_, Option<Observation>> {
        let observation = match &self.observer {
            Observer::None => None,
            Observer::Envoy { source, .. } => source.observation(),
            Observer::Mesh(mesh) => mesh.latest(),
        };
        Box::pin(async move { observation })
    }

    fn verify_deadline(&self) -> Duration {
        match &self.observer {
            Observer::None => Duration::from_secs(30),
            // Envoy applies an ECDS update within milliseconds; allow for
            // many missed scrapes before calling a split lost.
            Observer::Envoy { every, .. } => Duration::from_secs(30).max(*every * 40),
            // Scales with Prometheus' scrape interval.
            Observer::Mesh(mesh) => mesh.verify_deadline(),
        }
    }
}

impl Router {
    /// Whether anything observes the proxies.
    pub fn observed(&self) -> bool {
        !matches!(self.observer, Observer::None)
    }
}
