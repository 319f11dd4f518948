//! The canary controller: reads metrics, runs the rollout, and pushes each
//! decision to the filter.
//!
//! - [`envoy_stats`]: the filter's stats from Envoy's admin endpoint, and
//!   window values from the difference between two scrapes.
//! - [`providers`]: Envoy stats, Prometheus, web (and Kubernetes).
//! - [`push`]: delivering a filter configuration (ECDS file, dry run).
//! - [`atomic_file`]: replacing a file atomically (ECDS, persisted state).

pub mod atomic_file;
pub mod envoy_stats;
pub mod providers;
pub mod push;
