//! The guard of one route entry in this VM: the shared evidence it adds
//! to, and what it already knows.
//!
//! The evidence ([`Evidence`]) lives in Envoy's shared data under a key
//! naming the route entry, the split's generation and the canary version,
//! so every worker of the Envoy adds to one statistic and sees one trip,
//! and a new generation or canary starts from nothing. Each canary outcome
//! is one read and one compare-and-swap write (retried on a conflict);
//! stable outcomes are only counted in the VM and travel with this
//! worker's next canary outcome. A canary-bound request reads the shared
//! value once to learn of a trip another worker made; once a trip is known
//! here, nothing more is read or written for this key.

use std::cell::Cell;

use canary_config::guard::{shared_key, Evidence, GuardRule, StableBatch};
use canary_config::{CompiledRoute, Version};

use crate::host::{self, Shared, Written};

/// Attempts at a compare-and-swap before an outcome is given up (another
/// worker wrote in between every time: the outcome is lost, which neither
/// trips the guard nor hides a trip already made).
const ATTEMPTS: usize = 8;

/// The guard of one route entry, for one configuration in this VM.
#[derive(Debug)]
pub struct RouteGuard {
    /// Shared-data key: route, generation, canary version.
    key: String,
    /// Whether this VM knows the guard has tripped (it never un-trips for
    /// a key).
    tripped: Cell<bool>,
    /// Stable outcomes not yet added to the shared evidence.
    stable: Cell<StableBatch>,
}

/// What recording an outcome led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Nothing new about the trip.
    Nothing,
    /// This VM learned of a trip made elsewhere.
    Learned,
    /// This outcome tripped the guard, with this evidence.
    Tripped(Evidence),
}

impl RouteGuard {
    /// The guard of `route`, when it has one (and a canary to watch).
    pub fn for_route(route: &CompiledRoute) -> Option<RouteGuard> {
        route.guard.as_ref()?;
        let canary = route.canary.as_deref()?;
        Some(RouteGuard {
            key: shared_key(&route.name, route.generation, canary),
            tripped: Cell::new(false),
            stable: Cell::new(StableBatch::default()),
        })
    }

    /// Creates the shared evidence when it does not exist yet, and learns
    /// whether it has tripped. Returns whether it has.
    pub fn start(&self) -> bool {
        match host::shared_data(&self.key) {
            Shared::Found(bytes, _) => {
                self.learn(&bytes);
            }
            Shared::Missing => {
                host::set_shared_data(&self.key, &Evidence::default().encode(), 0);
            }
            Shared::Failed => {}
        }
        self.tripped.get()
    }

    /// Whether the guard has tripped, reading the shared evidence unless
    /// this VM already knows. Returns (tripped, learned just now).
    pub fn check(&self) -> (bool, bool) {
        if self.tripped.get() {
            return (true, false);
        }
        if let Shared::Found(bytes, _) = host::shared_data(&self.key) {
            if self.learn(&bytes) {
                return (true, true);
            }
        }
        (false, false)
    }

    /// Adds the outcome of a request that `version` served.
    pub fn record(&self, rule: &GuardRule, version: Version, failed: bool) -> Recorded {
        if self.tripped.get() {
            return Recorded::Nothing;
        }
        if version == Version::Stable {
            let mut batch = self.stable.get();
            batch.push(failed);
            self.stable.set(batch);
            return Recorded::Nothing;
        }
        for _ in 0..ATTEMPTS {
            let (mut evidence, cas) = match host::shared_data(&self.key) {
                Shared::Found(bytes, cas) => (Evidence::decode(&bytes).unwrap_or_default(), cas),
                Shared::Missing => (Evidence::default(), 0),
                Shared::Failed => return Recorded::Nothing,
            };
            if evidence.tripped {
                self.tripped.set(true);
                return Recorded::Learned;
            }
            evidence.add_stable(self.stable.get());
            let tripped_now = evidence.add_canary(rule, failed);
            match host::set_shared_data(&self.key, &evidence.encode(), cas) {
                Written::Ok => {
                    self.stable.set(StableBatch::default());
                    if tripped_now {
                        self.tripped.set(true);
                        return Recorded::Tripped(evidence);
                    }
                    return Recorded::Nothing;
                }
                Written::Conflict => continue,
                Written::Failed => return Recorded::Nothing,
            }
        }
        Recorded::Nothing
    }

    /// Reads `bytes` as evidence; remembers and returns whether it says
    /// tripped.
    fn learn(&self, bytes: &[u8]) -> bool {
        let tripped = Evidence::decode(bytes).is_some_and(|evidence| evidence.tripped);
        if tripped {
            self.tripped.set(true);
        }
        tripped
    }
}
