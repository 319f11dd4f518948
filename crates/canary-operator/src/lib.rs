//! The canary controller inside Kubernetes: the `CanaryRollout` custom
//! resource and the operator that reconciles it, delivering each traffic
//! split through Istio's `WasmPlugin` or `TrafficExtension` and acting on
//! the stable and canary Deployments on rollback and promotion.
//!
//! - [`resource`]: the CRD types (the CRD YAML is generated from them).
//! - [`convert`], [`spec_source`]: the resource and the template objects
//!   it names, into the engine's rollout (the rollout file's own reader
//!   does the checking).
//! - [`reconcile`]: one reconcile: the shell around the rollout driver
//!   (`canary_rollout::driver`), its position saved in `status`, its
//!   report shown there, measurements as tasks.
//! - [`workload`]: the Deployments: what the API reports, the pure plan
//!   of what to do next, the calls that do it.
//! - [`status`], [`events`], [`commands`]: what people see and say.
//! - [`leader`], [`operator`]: Lease-based leader election and kube's
//!   runtime controller.
//! - [`permissions`]: every API call as the RBAC permission it needs.
//! - [`fingerprint`], [`time`]: small shared pieces.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod commands;
pub mod convert;
pub mod events;
pub mod fingerprint;
pub mod leader;
pub mod operator;
pub mod permissions;
pub mod reconcile;
pub mod resource;
pub mod spec_source;
pub mod status;
pub mod time;
pub mod workload;
