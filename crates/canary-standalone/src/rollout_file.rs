//! Reading the rollout file (and the template files it names), with
//! `secretKeyRef` arguments read from the environment.

use std::path::{Path, PathBuf};

use canary_rollout::{load_rollout, LoadError, LoadedRollout};

/// Why the rollout file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    /// It cannot be read.
    #[error("cannot read the rollout file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It (or a template it names) is not a valid rollout.
    #[error(transparent)]
    Invalid(#[from] LoadError),
}

/// Reads secrets for `valueFrom.secretKeyRef` args from the environment:
/// `CANARY_SECRET_<NAME>_<KEY>`, upper case, other characters as `_`.
/// Each value read is remembered, so no report or log shows it.
pub fn secret_from_env(reference: &canary_analysis::SecretKeyRef) -> Option<String> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    let value = std::env::var(format!(
        "CANARY_SECRET_{}_{}",
        clean(&reference.name),
        clean(&reference.key)
    ))
    .ok()?;
    canary_sources::redact::remember_secret(&value);
    Some(value)
}

/// The rollout in `path`, and the file's text.
pub fn load(path: &Path) -> Result<(LoadedRollout, String), LoadFailure> {
    let text = canary_analysis::yaml::read_file(path).map_err(|source| LoadFailure::Read {
        path: path.to_owned(),
        source,
    })?;
    let loaded = load_rollout(path, &secret_from_env)?;
    Ok((loaded, text))
}
