//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas of
//! the controller never both act on a rollout.
//!
//! The rules are client-go's:
//!
//! - A lease is taken over only when its record (holder, renew time,
//!   transitions) has not changed for its `leaseDurationSeconds`, timed
//!   by *this* instance's clock from when it first saw that record. The
//!   holder's `renewTime` is never compared with the local clock, so
//!   clock skew between nodes cannot make two leaders.
//! - Every write carries the `resourceVersion` read, so of two instances
//!   racing for the lease exactly one wins; the other gets a conflict and
//!   follows.
//! - The leader renews every retry period; if it cannot renew for its
//!   renew deadline (shorter than the lease duration) it stops acting
//!   before any other instance may take over.
//!
//! [`decide`] is the pure rule; [`LeaderElector`] the calls.

use std::sync::Arc;
use std::time::Duration;

use canary_analysis::Timestamp;
use canary_kube::ApiError;
use canary_rollout::ports::Clock;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::Client;

use crate::permissions::{CREATE_LEASES, GET_LEASES, UPDATE_LEASES};
use crate::time::{from_micro_time, micro_time};

/// Where the lease is and how it is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// The lease's namespace (the controller's own).
    pub namespace: String,
    /// The lease's name.
    pub name: String,
    /// This instance's identity (its pod name).
    pub identity: String,
    /// How long a lease not renewed stays with its holder.
    pub lease_duration: Duration,
    /// How long the leader tries to renew before it stops acting; shorter
    /// than `lease_duration`.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(namespace: &str, name: &str, identity: &str) -> LeaseSettings {
        LeaseSettings {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a lease says, as far as the decision goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Who holds it; `None` or empty when released.
    pub holder: Option<String>,
    /// How long it stays with its holder without renewal.
    pub lease_duration: Option<Duration>,
    /// When the holder last renewed it (by the holder's clock).
    pub renew_time: Option<Timestamp>,
    /// How often it changed hands.
    pub transitions: i32,
}

impl LeaseRecord {
    /// The record of `lease`.
    pub fn of(lease: &Lease) -> LeaseRecord {
        let spec = lease.spec.clone().unwrap_or_default();
        LeaseRecord {
            holder: spec.holder_identity.filter(|holder| !holder.is_empty()),
            lease_duration: spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
            renew_time: spec.renew_time.as_ref().map(from_micro_time),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

/// What to do with the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// There is none: create it, held by us.
    Create,
    /// We hold it: renew it.
    Renew,
    /// It is free or expired: take it over.
    TakeOver,
    /// Another instance holds it until at least `until` (our clock).
    Follow {
        /// The holder.
        holder: String,
        /// When it expires unless renewed.
        until: Timestamp,
    },
}

/// The rule: `record` (if any) was first seen unchanged at
/// `observed_since`; `default_duration` applies when the lease names none.
pub fn decide(
    record: Option<&LeaseRecord>,
    observed_since: Timestamp,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> LeaseDecision {
    let Some(record) = record else {
        return LeaseDecision::Create;
    };
    match record.holder.as_deref() {
        Some(holder) if holder == identity => LeaseDecision::Renew,
        None => LeaseDecision::TakeOver,
        Some(holder) => {
            let until = observed_since.plus(record.lease_duration.unwrap_or(default_duration));
            if now >= until {
                LeaseDecision::TakeOver
            } else {
                LeaseDecision::Follow {
                    holder: holder.to_owned(),
                    until,
                }
            }
        }
    }
}

/// Where this instance stands after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// This instance holds the lease.
    Leading,
    /// Another instance does.
    Following {
        /// Its identity, when known.
        holder: String,
    },
}

/// Acquires and renews the lease for one instance.
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    clock: Arc<dyn Clock>,
    /// The record last seen and when it was first seen unchanged.
    observed: Option<(LeaseRecord, Timestamp)>,
}

impl LeaderElector {
    /// An elector for `settings`.
    pub fn new(client: Client, settings: LeaseSettings, clock: Arc<dyn Clock>) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            clock,
            observed: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    /// One attempt: read the lease, then create, renew or take it over if
    /// the rule says so.
    pub async fn try_acquire_or_renew(&mut self) -> Result<Leadership, ApiError> {
        let settings = &self.settings;
        let now = self.clock.now();
        let current = match self.api.get(&settings.name).await {
            Ok(lease) => Some(lease),
            Err(error) => {
                match GET_LEASES.error(&settings.namespace, Some(&settings.name), error) {
                    ApiError::NotFound { .. } => None,
                    other => return Err(other),
                }
            }
        };
        let record = current.as_ref().map(LeaseRecord::of);
        let since = match (&self.observed, &record) {
            (Some((seen, since)), Some(record)) if seen == record => *since,
            (_, Some(record)) => {
                self.observed = Some((record.clone(), now));
                now
            }
            (_, None) => {
                self.observed = None;
                now
            }
        };
        let decision = decide(
            record.as_ref(),
            since,
            &settings.identity,
            now,
            settings.lease_duration,
        );
        match (decision, current) {
            (LeaseDecision::Follow { holder, .. }, _) => Ok(Leadership::Following { holder }),
            (LeaseDecision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(settings.name.clone()),
                        namespace: Some(settings.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.held_spec(now, now, 0)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => self.won("created"),
                    Err(error) => self.lost_race(CREATE_LEASES.error(
                        &settings.namespace,
                        Some(&settings.name),
                        error,
                    )),
                }
            }
            (decision, Some(mut lease)) => {
                let previous = lease.spec.clone().unwrap_or_default();
                let transitions = previous.lease_transitions.unwrap_or(0);
                let spec = if decision == LeaseDecision::Renew {
                    let acquired = previous.acquire_time.as_ref().map_or(now, from_micro_time);
                    self.held_spec(acquired, now, transitions)
                } else {
                    self.held_spec(now, now, transitions.saturating_add(1))
                };
                lease.spec = Some(spec);
                lease.metadata.managed_fields = None;
                match self
                    .api
                    .replace(&settings.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) if decision == LeaseDecision::Renew => Ok(Leadership::Leading),
                    Ok(_) => self.won("taken over"),
                    Err(error) => self.lost_race(UPDATE_LEASES.error(
                        &settings.namespace,
                        Some(&settings.name),
                        error,
                    )),
                }
            }
            (_, None) => Ok(Leadership::Following {
                holder: String::new(),
            }),
        }
    }

    /// Gives the lease up (on shutdown), so another instance takes over at
    /// once instead of after the lease duration. Only a lease this instance
    /// holds is touched.
    pub async fn release(&mut self) -> Result<(), ApiError> {
        let settings = &self.settings;
        let mut lease =
            self.api.get(&settings.name).await.map_err(|error| {
                GET_LEASES.error(&settings.namespace, Some(&settings.name), error)
            })?;
        if LeaseRecord::of(&lease).holder.as_deref() != Some(settings.identity.as_str()) {
            return Ok(());
        }
        let now = self.clock.now();
        let mut spec = lease.spec.clone().unwrap_or_default();
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(micro_time(now));
        lease.spec = Some(spec);
        lease.metadata.managed_fields = None;
        self.api
            .replace(&settings.name, &PostParams::default(), &lease)
            .await
            .map_err(|error| {
                UPDATE_LEASES.error(&settings.namespace, Some(&settings.name), error)
            })?;
        tracing::info!(identity = %settings.identity, "lease released");
        Ok(())
    }

    fn held_spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: i32::try_from(self.settings.lease_duration.as_secs()).ok(),
            acquire_time: Some(micro_time(acquired)),
            renew_time: Some(micro_time(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn won(&self, how: &str) -> Result<Leadership, ApiError> {
        tracing::info!(
            identity = %self.settings.identity,
            lease = %self.settings.name,
            "lease {how}: this instance leads"
        );
        Ok(Leadership::Leading)
    }

    /// A conflict means another instance wrote first: follow it.
    fn lost_race(&self, error: ApiError) -> Result<Leadership, ApiError> {
        match error {
            ApiError::Conflict { .. } => Ok(Leadership::Following {
                holder: String::new(),
            }),
            other => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn held_by(holder: &str) -> LeaseRecord {
        LeaseRecord {
            holder: Some(holder.to_owned()),
            lease_duration: Some(LEASE),
            renew_time: Some(Timestamp::from_secs(5)),
            transitions: 3,
        }
    }

    #[test]
    fn no_lease_is_created_and_ours_is_renewed() {
        let now = Timestamp::from_secs(100);
        assert_eq!(decide(None, now, "a", now, LEASE), LeaseDecision::Create);
        assert_eq!(
            decide(Some(&held_by("a")), now, "a", now, LEASE),
            LeaseDecision::Renew
        );
    }

    #[test]
    fn another_holder_is_followed_until_its_record_is_stale_by_our_clock() {
        let seen = Timestamp::from_secs(100);
        let record = held_by("b");
        assert_eq!(
            decide(Some(&record), seen, "a", Timestamp::from_secs(114), LEASE),
            LeaseDecision::Follow {
                holder: "b".into(),
                until: Timestamp::from_secs(115)
            }
        );
        assert_eq!(
            decide(Some(&record), seen, "a", Timestamp::from_secs(115), LEASE),
            LeaseDecision::TakeOver
        );
    }

    #[test]
    fn the_holders_own_clock_is_never_compared_with_ours() {
        // renewTime says 5 s, our clock says 10 000 s: a skewed clock, not
        // an expired lease, since we first saw this record just now.
        let now = Timestamp::from_secs(10_000);
        assert!(matches!(
            decide(Some(&held_by("b")), now, "a", now, LEASE),
            LeaseDecision::Follow { .. }
        ));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let released = LeaseRecord {
            holder: None,
            ..held_by("b")
        };
        let now = Timestamp::from_secs(1);
        assert_eq!(
            decide(Some(&released), now, "a", now, LEASE),
            LeaseDecision::TakeOver
        );
    }
}
