//! Real processes on loopback for the demo, the end-to-end tests and the
//! benchmarks:
//!
//! - [`envoy`]: Envoy started from the shipped bootstraps with ephemeral
//!   ports, its admin endpoint, and ECDS pushes.
//! - [`backend`]: an upstream that answers as one version (`v1`, `v2`), with
//!   faults that can be switched on while it runs: a share of 5xx answers,
//!   added latency, a failing health check, a CPU figure.
//! - [`load`]: a client and a constant-rate load generator that record, per
//!   request, which version answered, the status and the latency.
//! - [`prometheus`]: a real Prometheus server scraping given targets.
//! - [`upstream_process`]: a backend as its own process, driven over HTTP.
//! - [`paths`]: where Envoy and the filter module are, or how to get them.
//! - [`stub_module`]: stand-in proxy-wasm modules (pass-through, trapping).
//! - [`wait`]: waiting for a condition with a deadline.

pub mod backend;
pub mod envoy;
pub mod load;
pub mod paths;
pub mod prometheus;
pub mod stub_module;
pub mod upstream_process;
pub mod wait;
