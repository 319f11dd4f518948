//! The canary filter: a proxy-wasm HTTP filter that splits traffic between
//! a stable and a canary version.
//!
//! Per request it finds the route entry for the request's host and path,
//! chooses a version (override header, sticky key, or random by weight),
//! sets the routing header to that version's name so Envoy's route sends
//! the request to the right cluster, and records per-version stats. All
//! decisions live in `canary-config` as plain Rust; this crate is the thin
//! layer between them and the host:
//!
//! - `abi`: the ABI entry points (only the callbacks the filter uses);
//! - `vm`: per-VM state (root configurations, requests in flight);
//! - `root`: receiving and validating a configuration;
//! - `request`: the request path;
//! - `guard`: a route entry's guard, its evidence in shared data;
//! - `metrics`: metric definitions and batched counters;
//! - `host`: the hostcalls, none of which can panic.

mod abi;
mod guard;
mod host;
mod metrics;
mod request;
mod root;
mod vm;
