//! The canary filter in a real Envoy 1.40: routing, overrides, sticky keys,
//! stats, live updates over ECDS, the controller's `splits`, the guard, and
//! what happens when the filter cannot run. Every test starts its own backends and Envoy on ephemeral ports.

mod ecds_updates;
mod fail_safe;
mod guard;
mod overrides;
mod refused_log;
mod split;
mod splits;
mod stats;
mod sticky;
