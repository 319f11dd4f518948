//! The controller end to end: a real Envoy with the real filter, two real
//! upstream processes, a real Prometheus, load through Envoy, and
//! `canary run` as its own process pushing over ECDS.

mod api;
mod applied;
mod crash;
mod failure;
mod flood;
mod guard;
mod metrics_down;
mod observed;
mod secrets;
mod slow_metrics;
mod stage;
mod success;
mod watch;
