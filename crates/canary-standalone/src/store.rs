//! The state file: the rollout's position, written atomically (temporary
//! file, flush, rename; mode 0600) after every decision and read back on
//! start, so a restarted `canary run` resumes where it was — it never
//! repeats a promotion and never forgets an abort.
//!
//! One writer: the file is guarded by a lock file next to it
//! (`STATE.lock`), held for the life of the process. A second `canary run`
//! on the same state file is refused and told who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use canary_rollout::driver::{Position, PositionError};
use canary_rollout::ports::{PositionStore, StoreError};
use canary_router::atomic_file;

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "the state file {path} is in use by another canary run ({holder}); \
         stop it first, or give this one its own --state"
    )]
    Held {
        /// The state file.
        path: PathBuf,
        /// Who holds it, as it wrote itself into the lock file.
        holder: String,
    },
    /// The lock file could not be opened.
    #[error("cannot lock the state file {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The state file, locked by this process.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// Held open for the lock's lifetime.
    _lock: File,
}

impl StateFile {
    /// Locks the state file at `path` for this process, recording
    /// `holder` (e.g. `pid 123 on host, API 127.0.0.1:7070`) for anyone
    /// refused.
    pub fn lock(path: impl Into<PathBuf>, holder: &str) -> Result<StateFile, LockError> {
        let path = path.into();
        let lock_path = lock_path(&path);
        if let Some(parent) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| LockError::Io {
                path: lock_path.clone(),
                source,
            })?;
        }
        let io = |source| LockError::Io {
            path: lock_path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(LockError::Held {
                    path,
                    holder: if holder.trim().is_empty() {
                        "unknown process".into()
                    } else {
                        holder.trim().to_owned()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(holder.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(StateFile { path, _lock: file })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl PositionStore for StateFile {
    fn load(&self) -> Result<Option<Position>, StoreError> {
        let place = self.path.display().to_string();
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(StoreError::Read {
                    place,
                    reason: err.to_string(),
                })
            }
        };
        let refuse = |reason: String| StoreError::Read {
            place: place.clone(),
            reason: format!(
                "{reason}; the file is left untouched: move it away to start the rollout over"
            ),
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| refuse(format!("not JSON: {e}")))?;
        Position::from_json(&value)
            .map(Some)
            .map_err(|e: PositionError| refuse(e.to_string()))
    }

    fn save(&self, position: &Position) -> Result<(), StoreError> {
        let fail = |reason: String| StoreError::Write {
            place: self.path.display().to_string(),
            reason,
        };
        let text = serde_json::to_vec_pretty(position).map_err(|e| fail(e.to_string()))?;
        atomic_file::replace_private(&self.path, &text).map_err(|e| fail(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_and_told_who_holds_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        let first = StateFile::lock(&path, "pid 1 on here").expect("first");
        let err = StateFile::lock(&path, "pid 2").expect_err("second refused");
        assert!(err.to_string().contains("pid 1 on here"), "{err}");
        drop(first);
        StateFile::lock(&path, "pid 3").expect("free again");
    }

    #[test]
    fn garbage_is_refused_with_the_place_and_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{not json").expect("write");
        let store = StateFile::lock(&path, "test").expect("lock");
        let err = store.load().expect_err("refused").to_string();
        assert!(
            err.contains("state.json") && err.contains("move it away"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("kept"), "{not json");
    }

    #[cfg(unix)]
    #[test]
    fn the_state_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state.json");
        let store = StateFile::lock(&path, "test").expect("lock");
        let position = Position::from_json(&serde_json::json!({
            "format": 2, "rollout": "web", "canaryVersion": "v2"
        }))
        .expect("position");
        store.save(&position).expect("save");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(store.load().expect("load"), Some(position));
    }
}
