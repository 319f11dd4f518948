//! The operator against the stateful test API server
//! (`crates/canary-test-apiserver`): HTTPS, the shipped CRD and RBAC, server-side
//! apply, the status subresource, watches. Each test runs the operator as
//! the controller's ServiceAccount and checks that every call it made was
//! allowed by the shipped RBAC.

mod driver;
mod flows;
mod gitops;
mod leader;
mod support;
