//! The filter's configuration as the operator writes it: one JSON document,
//! delivered to Envoy as a `google.protobuf.StringValue` (and to Istio as a
//! WasmPlugin `pluginConfig`).
//!
//! These types only describe the shape. [`crate::validate`] checks every
//! rule the shape cannot express, and [`crate::compiled`] turns a valid
//! document into the form the request path reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::weight::Weight;

/// Default name of the request header the filter sets to the chosen version.
pub const DEFAULT_ROUTING_HEADER: &str = "x-canary-version";
/// Default name of the override header.
pub const DEFAULT_OVERRIDE_HEADER: &str = "x-canary";
/// Default name of the header that carries the override secret.
pub const DEFAULT_SECRET_HEADER: &str = "x-canary-secret";

/// The whole filter configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Request header the filter sets to the chosen version's name. Envoy's
    /// route (or Istio's VirtualService) sends requests marked with the
    /// canary's name to the canary; everything else goes to stable. The
    /// Envoy configuration must remove this header from client requests
    /// before any filter runs.
    #[serde(default = "default_routing_header")]
    pub routing_header: String,

    /// When set, the filter adds this response header naming the version
    /// that served the request. Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header: Option<String>,

    /// Route entries, tried in order; the first whose matcher accepts the
    /// request decides. A request no entry matches passes untouched (and
    /// therefore reaches stable).
    pub routes: Vec<RouteEntry>,

    /// The traffic split of route entries, keyed by entry name, written by
    /// the controller only. An entry named here takes its versions, weight
    /// and override switch from its split instead of its own fields.
    ///
    /// Kept apart from `routes` so that Git and the controller never write
    /// the same field: `pluginConfig` is schemaless in Istio, so a
    /// server-side apply replaces a list (`routes`) whole but merges a map
    /// key by key. Git owns `routes`; the controller owns `splits.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub splits: BTreeMap<String, Split>,
}

pub(crate) fn default_routing_header() -> String {
    DEFAULT_ROUTING_HEADER.to_owned()
}

/// One service (or part of one) under canary control.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// Short name used in stats (`route` label): letters, digits, `_` and
    /// `-`, at most 64 characters, unique within the configuration.
    pub name: String,

    /// Which requests this entry covers.
    #[serde(rename = "match")]
    pub matcher: RouteMatch,

    /// Name of the stable version (stats `version` label and routing header
    /// value). Same character rules as `name`.
    pub stable: String,

    /// Name of the canary version. Absent means no canary: every request
    /// goes to stable and `canary_weight` must be 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,

    /// Share of requests sent to the canary, in percent from 0 to 100 with
    /// a resolution of 0.01 (so 0.5 means one request in two hundred).
    #[serde(default)]
    pub canary_weight: Weight,

    /// The version Envoy's route serves for requests the filter does not
    /// mark (its default route: stable in the shipped configurations).
    /// Requests chosen for this version are left unmarked, which saves a
    /// header write and a route re-evaluation per request. Set it only
    /// when Envoy removes the routing header from client requests before
    /// any filter runs (the shipped configurations do); absent means every
    /// request is marked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_version: Option<String>,

    /// Per-request override by header. Absent means no override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#override: Option<OverrideRule>,

    /// Keeps each client on one version while the weight stays the same,
    /// and on the canary once it got there while the weight rises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<StickyKey>,

    /// Watches the canary's outcomes against stable's in the proxy and,
    /// when the canary fails far more often, sends all of this entry's
    /// traffic to stable at once (the filter's documentation, "The
    /// guard", gives the rule). Absent means no guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
}

/// The split of one route entry's traffic: what the controller changes
/// during a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// The stable version's name.
    pub stable: String,

    /// The canary version's name; absent means no canary (weight 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,

    /// Share of requests sent to the canary, in percent (0 to 100, 0.01
    /// resolution).
    #[serde(default)]
    pub canary_weight: Weight,

    /// Whether the entry's `override` rule is switched on (the rule itself,
    /// header and secret, stays in the entry).
    #[serde(default)]
    pub override_enabled: bool,

    /// Which attempt of a rollout this split belongs to. It changes when a
    /// new rollout or a retry starts, not on every weight step; a guard
    /// trip lasts until it (or the canary version) changes. At most
    /// 2^53 - 1, so that it survives the doubles of a protobuf `Struct`.
    #[serde(default)]
    #[cfg_attr(
        feature = "json-schema",
        schemars(range(max = 9_007_199_254_740_991u64))
    )]
    pub generation: u64,
}

/// The largest `generation` (2^53 - 1): every whole number up to it is
/// exact as a double, which is how Istio carries `pluginConfig` numbers.
pub const MAX_GENERATION: u64 = (1 << 53) - 1;

/// The in-proxy guard of one route entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// The highest share of requests (percent) either version fails when
    /// healthy. The guard never treats a canary failure rate up to this as
    /// evidence, so its false-trip bound holds for versions that fail at
    /// most this often; raising it makes the guard slower to trip. Default
    /// 5, from 0.1 to 50.
    #[serde(default = "default_baseline_error_percent")]
    pub baseline_error_percent: Weight,
}

/// The default [`Guard::baseline_error_percent`]: 5%.
pub const DEFAULT_BASELINE_ERROR: Weight = match Weight::from_basis_points(500) {
    Some(weight) => weight,
    None => Weight::ZERO,
};

pub(crate) fn default_baseline_error_percent() -> Weight {
    DEFAULT_BASELINE_ERROR
}

/// Which requests a route entry covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Host patterns matched against `:authority` (port ignored, case
    /// ignored): an exact host `api.example.com`, a wildcard suffix
    /// `*.example.com` (matches `a.example.com`, not `example.com`), or `*`
    /// for every host.
    pub hosts: Vec<String>,

    /// Optional path prefix, matched against `:path` (case-sensitive). Must
    /// start with `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
}

/// Lets a request choose its version with a header.
///
/// The header's value `always` selects the canary, `never` selects stable,
/// and a value equal to the stable or canary version name selects that
/// version. Any other value is ignored (the request is routed as if it had
/// no override header).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OverrideRule {
    /// Switches the override on or off without removing its settings (the
    /// controller turns it on for header-route steps).
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// The override header's name.
    #[serde(default = "default_override_header")]
    pub header: String,

    /// When set, an override only counts if the request also carries
    /// `secret_header` with exactly this value, so outside clients cannot
    /// force themselves onto the canary. The filter removes the secret
    /// header before the request goes upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,

    /// Header that carries the secret.
    #[serde(default = "default_secret_header")]
    pub secret_header: String,
}

pub(crate) fn default_true() -> bool {
    true
}

pub(crate) fn default_override_header() -> String {
    DEFAULT_OVERRIDE_HEADER.to_owned()
}

pub(crate) fn default_secret_header() -> String {
    DEFAULT_SECRET_HEADER.to_owned()
}

/// Where the sticky key comes from: exactly one of `header` or `cookie`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StickyKey {
    /// A request header whose value is the key (e.g. `x-user-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,

    /// A cookie whose value is the key (e.g. `session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,

    /// Mixed into the hash so different rollouts put different clients
    /// first. Defaults to the route entry's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

/// Reading goes through [`crate::document::from_value`], which names the
/// path of every problem; the problems become the serde error.
impl<'de> Deserialize<'de> for FilterConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        crate::document::from_value(&value)
            .map_err(|errors| serde::de::Error::custom(crate::validate::ConfigErrors(errors)))
    }
}

/// As for [`FilterConfig`]: one reader, [`crate::document::split_from_value`].
impl<'de> Deserialize<'de> for Split {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        crate::document::split_from_value(&value)
            .map_err(|errors| serde::de::Error::custom(crate::validate::ConfigErrors(errors)))
    }
}
