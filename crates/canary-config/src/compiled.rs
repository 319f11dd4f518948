//! The validated configuration in the form the request path reads: host
//! patterns parsed, disabled rules dropped, defaults resolved. Built once per
//! configuration by [`crate::validate::compile`]; never built per request.

use crate::guard::GuardRule;
use crate::host_match::{host_of, HostPattern};
use crate::weight::Weight;

/// A configuration that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledConfig {
    /// Header set to the chosen version's name.
    pub routing_header: String,
    /// Response header naming the version that served, when enabled.
    pub response_header: Option<String>,
    /// Route entries in configuration order.
    pub routes: Vec<CompiledRoute>,
    /// Whether any entry has a path prefix (if none does, the filter never
    /// reads `:path`).
    pub needs_path: bool,
}

impl CompiledConfig {
    /// The first entry that matches, with its index.
    pub fn find_route(&self, authority: &str, path: &str) -> Option<(usize, &CompiledRoute)> {
        let host = host_of(authority);
        self.routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.matches(host, path))
    }
}

/// One route entry, ready for the request path.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledRoute {
    /// Stats-safe name.
    pub name: String,
    /// Host patterns (any may match).
    pub hosts: Vec<HostPattern>,
    /// Path prefix, if any.
    pub path_prefix: Option<String>,
    /// Stable version name (of the split in force: `splits.<name>` when
    /// present, else the entry's own).
    pub stable: String,
    /// Canary version name, if a canary exists.
    pub canary: Option<String>,
    /// Canary weight.
    pub weight: Weight,
    /// The split's generation (0 without a split in `splits`).
    pub generation: u64,
    /// Version served by the proxy's default route; requests chosen for it
    /// are not marked.
    pub default_version: Option<String>,
    /// Override rule, only when present and enabled.
    pub override_rule: Option<CompiledOverride>,
    /// The header carrying the override secret, whenever a secret is
    /// configured (even with the override switched off): the filter
    /// removes it from every request of this entry.
    pub secret_header: Option<String>,
    /// Sticky key, when configured.
    pub sticky: Option<CompiledSticky>,
    /// The guard, when configured and the entry has a canary.
    pub guard: Option<GuardRule>,
}

impl CompiledRoute {
    /// Whether this entry covers a request for `host` (port already
    /// removed) and `path`.
    pub fn matches(&self, host: &str, path: &str) -> bool {
        self.hosts.iter().any(|pattern| pattern.matches(host))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
    }

    /// Whether a request chosen for `version` must carry the routing
    /// header (every version but [`CompiledRoute::default_version`]).
    pub fn needs_mark(&self, version: crate::select::Version) -> bool {
        self.default_version.as_deref() != Some(self.version_name(version))
    }

    /// The name of a version of this entry.
    pub fn version_name(&self, version: crate::select::Version) -> &str {
        match version {
            crate::select::Version::Stable => &self.stable,
            crate::select::Version::Canary => self.canary.as_deref().unwrap_or(&self.stable),
        }
    }
}

/// An enabled override rule.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledOverride {
    /// Header carrying `always`, `never` or a version name.
    pub header: String,
    /// Required secret: header name and value.
    pub secret: Option<(String, String)>,
}

/// Where a sticky key is read from.
#[derive(Debug, Clone, PartialEq)]
pub enum StickySource {
    /// A request header.
    Header(String),
    /// A cookie in the `cookie` header.
    Cookie(String),
}

/// A sticky key rule.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledSticky {
    /// Where the key comes from.
    pub source: StickySource,
    /// Salt mixed into the hash.
    pub salt: String,
}
