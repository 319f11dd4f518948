//! Replacing a file so that readers see the old content or the new, never
//! a mix, and a crash never leaves a half-written file: write a temporary
//! file in the same folder, flush it to disk, rename it over the target,
//! then flush the folder so the rename itself survives a power cut.
//!
//! Envoy's file-based ECDS depends on this too: it notices a new
//! configuration only when a file is *moved into place*.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a file could not be replaced.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}")]
pub struct AtomicWriteError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

/// Replaces `path` with `contents` atomically.
pub fn replace(path: &Path, contents: &[u8]) -> Result<(), AtomicWriteError> {
    write(path, contents, false)
}

/// Replaces `path` with `contents` atomically; the file is readable and
/// writable by its owner only (mode 0600 on Unix).
pub fn replace_private(path: &Path, contents: &[u8]) -> Result<(), AtomicWriteError> {
    write(path, contents, true)
}

fn write(path: &Path, contents: &[u8], private: bool) -> Result<(), AtomicWriteError> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = folder.join(format!(".{name}.tmp-{}-{}", std::process::id(), unique()));
    let fail = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| AtomicWriteError {
            action,
            path,
            source,
        }
    };
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut file = options.open(&temp).map_err(fail("create", &temp))?;
        file.write_all(contents).map_err(fail("write", &temp))?;
        file.sync_all().map_err(fail("flush", &temp))?;
        drop(file);
        fs::rename(&temp, path).map_err(fail("rename into place", path))?;
        // Make the rename durable. Some filesystems refuse to sync a
        // folder; the rename has happened either way.
        if let Ok(dir) = File::open(&folder) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        replace(&path, b"one").unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn a_missing_folder_is_a_clear_error() {
        let err = replace(Path::new("/nonexistent-folder-for-canary/x.json"), b"x").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cannot create") && text.contains("nonexistent-folder-for-canary"),
            "{text}"
        );
    }
}
