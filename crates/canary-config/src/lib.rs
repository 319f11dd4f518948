//! The canary filter's configuration, shared by the filter (compiled to
//! wasm) and the controller (native), so the controller can never push a
//! configuration the filter cannot read.
//!
//! - [`schema`]: the JSON document operators write.
//! - [`document`]: reading the JSON with field paths.
//! - [`validate`]: complete validation with field paths, and compilation.
//! - [`compiled`]: the validated form the request path reads.
//! - [`split`]: a route entry's traffic split (`splits`), read and written.
//! - [`select`]: choosing a version for a request.
//! - [`guard`]: the in-proxy guard's sequential test.
//! - `guard_sim` (feature `simulation`): simulated rollouts through it.
//! - [`sticky`]: the sticky-key hash and cookie lookup.
//! - [`host_match`]: `:authority` matching.
//! - [`weight`]: weights in basis points.
//! - [`ecds`]: the Envoy objects that carry a configuration (ECDS, typed_config).
//! - [`stats_names`]: metric names and the Envoy tag regexes.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod compiled;
pub mod document;
pub mod ecds;
pub mod guard;
#[cfg(feature = "simulation")]
pub mod guard_sim;
pub mod host_match;
pub mod quote;
pub mod schema;
pub mod select;
pub mod split;
pub mod stats_names;
pub mod sticky;
pub mod validate;
pub mod weight;

pub use compiled::{CompiledConfig, CompiledRoute};
pub use schema::{FilterConfig, Guard, OverrideRule, RouteEntry, RouteMatch, Split, StickyKey};
pub use select::{choose, Decision, Reason, Version};
pub use split::SplitError;
pub use validate::{compile, parse, parse_document, ConfigError, ConfigErrors};
pub use weight::Weight;

/// The JSON Schema of [`FilterConfig`], generated from the Rust types.
#[cfg(feature = "json-schema")]
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(FilterConfig);
    serde_json::to_value(schema).unwrap_or_default()
}
