//! The rollout's position as it is saved (a state file, a custom
//! resource's status) and the rules for taking one back: a position is
//! bound to the rollout it was made for by the spec's fingerprint and its
//! versions, so a changed rollout file or an edited state is never obeyed
//! as if nothing had happened.

use std::collections::BTreeMap;

use canary_analysis::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::machine::RolloutState;
use crate::spec::RolloutSpec;
use crate::traffic::TrafficState;

/// Layout version of [`Position`].
pub const FORMAT: u32 = 2;

/// Everything a shell saves, and gives back to resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// The rollout's name.
    pub rollout: String,
    /// The stable version it was made for.
    #[serde(default)]
    pub stable_version: String,
    /// The canary version it was made for; another canary version is
    /// another rollout.
    pub canary_version: String,
    /// [`RolloutSpec::fingerprint`] of the rollout it was made for.
    #[serde(default)]
    pub fingerprint: String,
    /// The state machine's state; absent while held (the saved state did
    /// not fit the rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<RolloutState>,
    /// Set while held: the split kept and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
    /// What the proxies were last seen to apply of the split in force.
    #[serde(default)]
    pub split: SplitRecord,
    /// Recent events, oldest first.
    #[serde(default)]
    pub events: Vec<Event>,
    /// What each metric's measurements hand on, by metric name (the
    /// judge's evidence); absent in positions saved before it existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub carry: BTreeMap<String, serde_json::Value>,
}

/// A rollout that cannot go on as saved: the saved position does not fit
/// the rollout as it is now. The canary's share is never raised while
/// held; `retry` starts again from the first step with the rollout as it
/// is now, `abort` rolls back, and restoring the rollout as it was
/// resumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    /// The split kept while held.
    pub traffic: TrafficState,
    /// The attempt it belongs to.
    pub generation: u64,
    /// What does not fit, and how to get out.
    pub reason: String,
    /// Whether a person aborted while held (or the saved rollout was
    /// already aborted): only `retry` gives the canary traffic again.
    pub aborted: bool,
    /// The saved machine state, kept so restoring the rollout resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved: Option<RolloutState>,
    /// The fingerprint the saved state was made for.
    #[serde(default)]
    pub saved_fingerprint: String,
}

/// What is known about the split in force reaching the proxies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitRecord {
    /// The split last pushed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<TrafficState>,
    /// Its attempt.
    #[serde(default)]
    pub generation: u64,
    /// When it was pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<Timestamp>,
    /// The push target's version for it, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When every proxy was first seen applying it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<Timestamp>,
}

/// Why a saved position cannot be taken back at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    /// The layout is one this version does not read.
    #[error("saved position has layout {found}, this controller reads layouts 1 and {FORMAT}")]
    Format {
        /// The layout found.
        found: u32,
    },
    /// Not a position at all.
    #[error("saved position is not readable: {0}")]
    Unreadable(String),
}

/// A saved position of layout 1 (before positions were bound to their
/// rollout): its machine state, events and last push.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PositionV1 {
    rollout: String,
    canary_version: String,
    state: RolloutState,
    #[serde(default)]
    events: Vec<Event>,
}

impl Position {
    /// Reads a saved position of any known layout. Layout 1 had no
    /// fingerprint: it is taken as made for the rollout it names, and
    /// checked against the spec when resumed like any other.
    pub fn from_json(value: &serde_json::Value) -> Result<Position, PositionError> {
        let format = value
            .get("format")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(1);
        match format {
            1 => {
                let old: PositionV1 = serde_json::from_value(value.clone())
                    .map_err(|e| PositionError::Unreadable(e.to_string()))?;
                Ok(Position {
                    format: FORMAT,
                    rollout: old.rollout,
                    stable_version: String::new(),
                    canary_version: old.canary_version,
                    fingerprint: String::new(),
                    state: Some(old.state),
                    held: None,
                    split: SplitRecord::default(),
                    events: old.events,
                    carry: BTreeMap::new(),
                })
            }
            f if f == u64::from(FORMAT) => serde_json::from_value(value.clone())
                .map_err(|e| PositionError::Unreadable(e.to_string())),
            found => Err(PositionError::Format {
                found: u32::try_from(found).unwrap_or(u32::MAX),
            }),
        }
    }

    /// Whether this position belongs to a rollout of the same canary
    /// version under the same name (otherwise the spec starts a new
    /// rollout).
    pub fn same_rollout(&self, spec: &RolloutSpec) -> bool {
        self.rollout == spec.name && self.canary_version == spec.canary_version
    }
}

/// Whether `traffic` only names versions of `spec` the way a rollout of it
/// can: stable (or the canary once promoted) as stable, the canary as
/// canary. A saved split naming anything else was not written by this
/// rollout.
pub fn fits_versions(traffic: &TrafficState, spec: &RolloutSpec) -> Result<(), String> {
    let stable_ok = traffic.stable == spec.stable_version
        || (traffic.stable == spec.canary_version && traffic.canary.is_none());
    let canary_ok = traffic
        .canary
        .as_ref()
        .is_none_or(|c| *c == spec.canary_version);
    if stable_ok && canary_ok {
        Ok(())
    } else {
        Err(format!(
            "the saved split ({traffic}) names versions the rollout does not (stable {}, canary {})",
            spec.stable_version, spec.canary_version
        ))
    }
}
