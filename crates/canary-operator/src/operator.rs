//! The running operator: kube's runtime `Controller` over `CanaryRollout`
//! objects, started only while this instance holds the leader lease.
//!
//! The runtime watches the rollouts, runs at most one reconcile per object
//! at a time, and requeues each when its reconcile says (the state
//! machine's next wake-up, sooner while waiting for workloads). A failed
//! reconcile is retried after the waiting period.
//!
//! With leader election, an instance that does not hold the lease makes no
//! call but reading the lease. The leader renews it every retry period;
//! when it loses the lease, or cannot renew it within the renew deadline,
//! [`run`] stops the controller and returns an error, and the process
//! exits so that its restart starts clean as a follower.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use canary_kube::ApiError;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;

use crate::leader::{LeaderElector, Leadership, LeaseSettings};
use crate::reconcile::{reconcile_rollout, rollout_key, Context, Error};
use crate::resource::CanaryRollout;

/// Shortest requeue: a rollout whose next measurement is already due is
/// looked at again almost at once, but never in a busy loop.
const MIN_REQUEUE: Duration = Duration::from_millis(200);

/// Longest wait after failed reconciles.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Which rollouts the operator reconciles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchScope {
    /// Every namespace (needs the ClusterRole bound cluster-wide).
    AllNamespaces,
    /// One namespace.
    Namespace(String),
}

/// How the operator runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSettings {
    /// Which rollouts.
    pub scope: WatchScope,
    /// The leader lease; `None` runs without leader election (one replica
    /// only).
    pub lease: Option<LeaseSettings>,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// Another instance holds the lease now.
    #[error("lost the leader lease to {holder:?}; stopping so that only the leader acts")]
    LostLeadership {
        /// The new holder, when known.
        holder: String,
    },
    /// The lease could not be renewed in time.
    #[error("could not renew the leader lease within {deadline:?}; stopping so that only the leader acts: {error}")]
    RenewFailed {
        /// The renew deadline.
        deadline: Duration,
        /// The last error.
        error: ApiError,
    },
    /// The controller's watch ended, which it never does by itself.
    #[error("the rollout controller stopped unexpectedly")]
    ControllerEnded,
}

/// Runs until `shutdown` resolves (then `Ok`) or leadership is lost.
pub async fn run(
    ctx: Arc<Context>,
    settings: OperatorSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), OperatorError> {
    let controller = run_controller(Arc::clone(&ctx), settings.scope.clone());
    match settings.lease {
        None => {
            tokio::select! {
                () = controller => Err(OperatorError::ControllerEnded),
                () = shutdown => Ok(()),
            }
        }
        Some(lease) => {
            let elector = LeaderElector::new(ctx.client.clone(), lease, Arc::clone(&ctx.clock));
            lead(elector, ctx, controller, shutdown).await
        }
    }
}

/// Follows until this instance holds the lease, then runs `controller`
/// while renewing it.
async fn lead(
    mut elector: LeaderElector,
    ctx: Arc<Context>,
    controller: impl Future<Output = ()> + Send + 'static,
    shutdown: impl Future<Output = ()>,
) -> Result<(), OperatorError> {
    tokio::pin!(shutdown);
    let retry = elector.settings().retry_period;
    let deadline = elector.settings().renew_deadline;
    let mut followed: Option<String> = None;
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(Leadership::Leading) => break,
            Ok(Leadership::Following { holder }) => {
                if followed.as_deref() != Some(holder.as_str()) {
                    tracing::info!(%holder, "another instance holds the leader lease; waiting");
                    followed = Some(holder);
                }
            }
            Err(error) => tracing::warn!("leader lease: {error}"),
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
    let mut controller = tokio::spawn(controller);
    let mut renewed = ctx.clock.now();
    let stop = |controller: &tokio::task::JoinHandle<()>| controller.abort();
    loop {
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            _ = &mut controller => return Err(OperatorError::ControllerEnded),
            () = &mut shutdown => {
                stop(&controller);
                if let Err(error) = elector.release().await {
                    tracing::warn!("could not release the leader lease: {error}");
                }
                return Ok(());
            }
        }
        match elector.try_acquire_or_renew().await {
            Ok(Leadership::Leading) => renewed = ctx.clock.now(),
            Ok(Leadership::Following { holder }) => {
                stop(&controller);
                return Err(OperatorError::LostLeadership { holder });
            }
            Err(error) => {
                if ctx.clock.now().since(renewed) >= deadline {
                    stop(&controller);
                    return Err(OperatorError::RenewFailed { deadline, error });
                }
                tracing::warn!("could not renew the leader lease, retrying: {error}");
            }
        }
    }
}

/// Runs kube's controller over the rollouts in `scope`; returns only if
/// its watch ends.
pub async fn run_controller(ctx: Arc<Context>, scope: WatchScope) {
    let api: Api<CanaryRollout> = match &scope {
        WatchScope::AllNamespaces => Api::all(ctx.client.clone()),
        WatchScope::Namespace(namespace) => Api::namespaced(ctx.client.clone(), namespace),
    };
    tracing::info!(?scope, "reconciling CanaryRollouts");
    let controller = Controller::new(api, watcher::Config::default());
    let controller = match ctx.take_wakes() {
        Some(wakes) => controller.reconcile_on(wakes),
        None => controller,
    };
    let forget = Arc::clone(&ctx);
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            match result {
                Ok((object, action)) => {
                    tracing::debug!(rollout = %object.name, ?action, "reconciled")
                }
                // A rollout deleted since its last reconcile: its driver,
                // report and counters go.
                Err(controller::Error::ObjectNotFound(object)) => {
                    let key = format!(
                        "{}/{}",
                        object.namespace.as_deref().unwrap_or_default(),
                        object.name
                    );
                    tracing::info!(rollout = %key, "the rollout is gone");
                    forget.forget(&key);
                }
                Err(error) => tracing::debug!("reconcile: {error}"),
            }
            std::future::ready(())
        })
        .await;
}

/// The reconcile: one step of the rollout's driver and what it asks for.
async fn reconcile(object: Arc<CanaryRollout>, ctx: Arc<Context>) -> Result<Action, Error> {
    let requeue = reconcile_rollout(&object, &ctx).await?;
    Ok(Action::requeue(requeue.max(MIN_REQUEUE)))
}

/// A failed reconcile: counted by error kind, retried with exponential
/// backoff from the waiting period up to [`MAX_BACKOFF`].
fn error_policy(object: Arc<CanaryRollout>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = rollout_key(&object);
    let failures = ctx.failed(&key, error);
    let backoff = ctx
        .timing
        .waiting
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(MAX_BACKOFF);
    let _span = tracing::info_span!("reconcile", rollout = %key).entered();
    tracing::warn!(
        kind = error.kind(),
        failures,
        "reconcile failed, retrying in {backoff:?}: {error}"
    );
    Action::requeue(backoff)
}
