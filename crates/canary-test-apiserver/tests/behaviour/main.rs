//! The test API server's behaviours, one file per topic, each test written
//! from the Kubernetes API documentation page cited above it.

mod errors;
mod gitops;
mod kubectl;
mod list_watch;
mod missing_kinds;
mod objects;
mod operator_calls;
mod patches;
mod rbac;
mod server_side_apply;
mod status_subresource;
mod support;
mod tls;
