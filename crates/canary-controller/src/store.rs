//! The controller's persisted position: written atomically (temporary
//! file, flush, rename) after every decision, read back on start so a
//! restarted controller resumes where it was — it never repeats a
//! promotion and never forgets an abort.

use std::path::{Path, PathBuf};

use canary_analysis::Timestamp;
use canary_config::FilterConfig;
use canary_rollout::{Event, RolloutState};
use serde::{Deserialize, Serialize};

use crate::atomic_file::{self, AtomicWriteError};

/// Version of the file's layout.
pub const FORMAT: u32 = 1;

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read the state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the state file {path} is not a canary state (format {FORMAT}): {reason}; \
         it is left untouched: move it away to start the rollout over"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
}

/// The last configuration pushed, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushRecord {
    /// What was pushed.
    pub config: FilterConfig,
    /// The push target's version for it (ECDS `version_info`, resource
    /// version), if it has one.
    pub version: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// Everything written to the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// The rollout's name.
    pub rollout: String,
    /// The canary version this state is about; a different canary version
    /// in the rollout file means a new rollout.
    pub canary_version: String,
    /// The state machine's state.
    pub state: RolloutState,
    /// Recent events, oldest first.
    #[serde(default)]
    pub events: Vec<Event>,
    /// The last successful push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<PushRecord>,
    /// When this was written.
    pub saved_at: Timestamp,
}

/// The state file.
#[derive(Debug, Clone)]
pub struct StateStore {
    path: PathBuf,
}

impl StateStore {
    /// The file at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> StateStore {
        StateStore { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, `None` if there is no file yet.
    pub fn load(&self) -> Result<Option<Saved>, StoreError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let saved: Saved = serde_json::from_str(&text).map_err(|err| StoreError::Corrupt {
            path: self.path.clone(),
            reason: err.to_string(),
        })?;
        if saved.format != FORMAT {
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                reason: format!("format {} is not {FORMAT}", saved.format),
            });
        }
        Ok(Some(saved))
    }

    /// Writes `saved` atomically.
    pub fn save(&self, saved: &Saved) -> Result<(), StoreError> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::Read {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
        }
        let text = serde_json::to_string_pretty(saved).unwrap_or_default();
        atomic_file::replace(&self.path, text.as_bytes())?;
        Ok(())
    }
}
