//! Shared pieces of the end-to-end tests: a standard two-version setup
//! (stable `v1`, canary `v2`, one Envoy in front), batch sending, and the
//! statistics used to judge a measured split.

pub mod controller;
pub mod setup;
pub mod split;
