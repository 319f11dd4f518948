//! The canary controller: reads metrics, runs the rollout, and pushes each
//! decision to the filter.
//!
//! - [`controller`]: the loop that runs one rollout (measure, decide,
//!   persist, push), and what it shares with the API.
//! - [`measure`] and [`providers`]: where measurements come from (Envoy
//!   stats, Prometheus, web, Kubernetes).
//! - [`envoy_stats`]: the filter's stats from Envoy's admin endpoint, and
//!   window values from the difference between two scrapes.
//! - [`push`]: delivering a filter configuration (ECDS file, dry run);
//!   [`applied`]: whether the proxies show it in effect.
//! - [`store`] and [`atomic_file`]: the persisted position.
//! - [`api`], [`client`], [`status`], [`metrics`]: the HTTP API, its client,
//!   what it reports.
//! - [`clock`]: the time, passed in.

pub mod api;
pub mod applied;
pub mod atomic_file;
pub mod client;
pub mod clock;
pub mod controller;
pub mod envoy_stats;
pub mod measure;
pub mod metrics;
pub mod providers;
pub mod push;
pub mod status;
pub mod store;
