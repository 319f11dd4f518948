//! Complete validation of a filter configuration. Every problem is reported
//! with the path of the field (`routes[1].match.hosts[0]`) and a reason a
//! person can act on; all problems are collected, not just the first.

use std::fmt;

use crate::compiled::{
    CompiledConfig, CompiledOverride, CompiledRoute, CompiledSticky, StickySource,
};
use crate::document::split_path;
use crate::guard::GuardRule;
use crate::host_match::HostPattern;
use crate::quote::quoted;
use crate::schema::{FilterConfig, Guard, OverrideRule, RouteEntry, Split, StickyKey};
use crate::weight::Weight;

/// Lowest and highest [`Guard::baseline_error_percent`], in basis points.
const BASELINE_ERROR_RANGE: (u16, u16) = (10, 5_000);

/// Longest route or version name (stats names and label values).
pub const MAX_NAME_LEN: usize = 64;
/// Longest header or cookie name.
pub const MAX_HEADER_NAME_LEN: usize = 128;

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Field path, e.g. `routes[0].canary_weight`; empty for the document.
    pub path: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// Every problem found in a configuration (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Parses the JSON document and validates it.
pub fn parse(json: &[u8]) -> Result<CompiledConfig, ConfigErrors> {
    let config = parse_document(json)?;
    compile(&config)
}

/// Parses the JSON document (shape only: types, unknown fields, weight
/// ranges) without the cross-field checks of [`compile`].
pub fn parse_document(json: &[u8]) -> Result<FilterConfig, ConfigErrors> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigErrors(vec![ConfigError {
            path: String::new(),
            reason: "configuration is empty; expected a JSON object with `routes`".into(),
        }]));
    }
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|err| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            reason: format!("not valid JSON: {err}"),
        }])
    })?;
    crate::document::from_value(&value).map_err(ConfigErrors)
}

/// Validates a parsed configuration and builds its request-path form.
pub fn compile(config: &FilterConfig) -> Result<CompiledConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let mut report = |path: String, reason: String| errors.push(ConfigError { path, reason });

    check_header_name("routing_header", &config.routing_header, &mut report);
    if let Some(name) = &config.response_header {
        check_header_name("response_header", name, &mut report);
    }

    for name in config.splits.keys() {
        if !config.routes.iter().any(|entry| entry.name == *name) {
            report(
                split_path(name),
                format!(
                    "no route entry is named {}; the keys of `splits` are names from `routes[].name`",
                    quoted(name)
                ),
            );
        }
    }

    let mut seen_names: Vec<&str> = Vec::with_capacity(config.routes.len());
    let mut routes = Vec::with_capacity(config.routes.len());
    for (i, entry) in config.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        if seen_names.contains(&entry.name.as_str()) {
            report(
                format!("{at}.name"),
                format!(
                    "duplicate route name {}; route names must be unique",
                    quoted(&entry.name)
                ),
            );
        }
        seen_names.push(&entry.name);
        let split = config.splits.get(&entry.name);
        if let Some(route) = compile_route(&at, entry, split, &config.routing_header, &mut report) {
            check_reachable(&at, &route, &routes, &mut report);
            routes.push(route);
        }
    }

    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let needs_path = routes.iter().any(|r| r.path_prefix.is_some());
    Ok(CompiledConfig {
        routing_header: config.routing_header.clone(),
        response_header: config.response_header.clone(),
        routes,
        needs_path,
    })
}

fn compile_route(
    at: &str,
    entry: &RouteEntry,
    split: Option<&Split>,
    routing_header: &str,
    report: &mut impl FnMut(String, String),
) -> Option<CompiledRoute> {
    let mut failed = 0usize;
    let mut fail = |path: String, reason: String| {
        failed += 1;
        report(path, reason);
    };

    check_stats_name(&format!("{at}.name"), &entry.name, &mut fail);
    check_versions(
        at,
        &entry.stable,
        entry.canary.as_deref(),
        entry.canary_weight,
        &mut fail,
    );
    if let Some(split) = split {
        let split_at = split_path(&entry.name);
        check_versions(
            &split_at,
            &split.stable,
            split.canary.as_deref(),
            split.canary_weight,
            &mut fail,
        );
        if split.override_enabled && entry.r#override.is_none() {
            fail(
                format!("{split_at}.override_enabled"),
                format!(
                    "is true but route entry {} has no `override` rule to switch on; add one to the entry",
                    quoted(&entry.name)
                ),
            );
        }
    }
    let in_force = Split::in_force(entry, split);

    if let Some(default) = &entry.default_version {
        check_stats_name(&format!("{at}.default_version"), default, &mut fail);
        if in_force.canary.as_deref() == Some(default.as_str()) {
            let (path, named) = match split {
                Some(_) => (
                    format!("{}.canary", split_path(&entry.name)),
                    format!("is the entry's `default_version` ({at}.default_version)"),
                ),
                None => (
                    format!("{at}.default_version"),
                    "is the canary version".to_owned(),
                ),
            };
            fail(
                path,
                format!(
                    "{} {named}: requests chosen for the canary would go unmarked to Envoy's default route \
                     while being counted as canary; `default_version` names the version that route serves (usually stable)",
                    quoted(default)
                ),
            );
        }
    }

    let mut hosts = Vec::with_capacity(entry.matcher.hosts.len());
    if entry.matcher.hosts.is_empty() {
        fail(
            format!("{at}.match.hosts"),
            "is empty; list at least one host pattern (`*` for every host)".into(),
        );
    }
    for (j, pattern) in entry.matcher.hosts.iter().enumerate() {
        match HostPattern::parse(pattern) {
            Ok(parsed) => {
                if hosts.contains(&parsed) {
                    fail(
                        format!("{at}.match.hosts[{j}]"),
                        format!(
                            "host pattern {q_pattern} is listed twice",
                            q_pattern = quoted(pattern)
                        ),
                    );
                }
                hosts.push(parsed);
            }
            Err(err) => fail(format!("{at}.match.hosts[{j}]"), err.to_string()),
        }
    }
    if let Some(prefix) = &entry.matcher.path_prefix {
        check_path_prefix(&format!("{at}.match.path_prefix"), prefix, &mut fail);
    }

    let override_rule = entry.r#override.as_ref().and_then(|rule| {
        compile_override(&format!("{at}.override"), rule, routing_header, &mut fail)
    });
    let guard = entry
        .guard
        .as_ref()
        .and_then(|guard| compile_guard(&format!("{at}.guard"), guard, &mut fail));
    let sticky = entry.sticky.as_ref().and_then(|sticky| {
        compile_sticky(
            &format!("{at}.sticky"),
            sticky,
            &entry.name,
            routing_header,
            &mut fail,
        )
    });
    if let (
        Some(rule),
        Some(CompiledSticky {
            source: StickySource::Header(name),
            ..
        }),
    ) = (
        override_rule.as_ref().filter(|_| in_force.override_enabled),
        &sticky,
    ) {
        if *name == rule.header {
            fail(
                format!("{at}.sticky.header"),
                format!(
                    "{q_name} is also the override header; use different headers",
                    q_name = quoted(name)
                ),
            );
        }
    }

    if failed > 0 {
        return None;
    }
    let secret_header = override_rule
        .as_ref()
        .and_then(|rule| rule.secret.as_ref())
        .map(|(header, _)| header.clone());
    Some(CompiledRoute {
        name: entry.name.clone(),
        hosts,
        path_prefix: entry.matcher.path_prefix.clone(),
        guard: guard.filter(|_| in_force.canary.is_some()),
        stable: in_force.stable,
        canary: in_force.canary,
        weight: in_force.canary_weight,
        generation: in_force.generation,
        default_version: entry.default_version.clone(),
        override_rule: override_rule.filter(|_| in_force.override_enabled),
        secret_header,
        sticky,
    })
}

/// The version rules shared by a route entry and its split: names safe for
/// stats, a canary different from stable, and no weight without a canary.
fn check_versions(
    at: &str,
    stable: &str,
    canary: Option<&str>,
    weight: Weight,
    fail: &mut impl FnMut(String, String),
) {
    check_stats_name(&format!("{at}.stable"), stable, fail);
    if let Some(canary) = canary {
        check_stats_name(&format!("{at}.canary"), canary, fail);
        if canary == stable {
            fail(
                format!("{at}.canary"),
                format!(
                    "canary version {q_canary} is the same as the stable version",
                    q_canary = quoted(canary)
                ),
            );
        }
    } else if weight != Weight::ZERO {
        fail(
            format!("{at}.canary_weight"),
            format!("is {weight} but there is no `canary` version; set `canary` or use 0"),
        );
    }
}

fn compile_guard(
    at: &str,
    guard: &Guard,
    fail: &mut impl FnMut(String, String),
) -> Option<GuardRule> {
    let (low, high) = BASELINE_ERROR_RANGE;
    let baseline = guard.baseline_error_percent;
    if !(low..=high).contains(&baseline.basis_points()) {
        fail(
            format!("{at}.baseline_error_percent"),
            format!("is {baseline}; it must be from 0.1 to 50 (percent)"),
        );
        return None;
    }
    Some(GuardRule::new(baseline))
}

fn compile_override(
    at: &str,
    rule: &OverrideRule,
    routing_header: &str,
    fail: &mut impl FnMut(String, String),
) -> Option<CompiledOverride> {
    let mut ok = check_header_name(&format!("{at}.header"), &rule.header, fail);
    ok &= check_header_name(&format!("{at}.secret_header"), &rule.secret_header, fail);
    if rule.header == routing_header {
        fail(
            format!("{at}.header"),
            format!(
                "{} is the routing header, which Envoy removes from client requests",
                quoted(&rule.header)
            ),
        );
        ok = false;
    }
    if let Some(secret) = &rule.secret {
        if secret.is_empty() {
            fail(
                format!("{at}.secret"),
                "is empty; remove it or set a value".into(),
            );
            ok = false;
        } else if !secret.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            fail(
                format!("{at}.secret"),
                "must be visible ASCII characters without spaces (it travels in a header)".into(),
            );
            ok = false;
        }
        if rule.secret_header == rule.header {
            fail(
                format!("{at}.secret_header"),
                "must differ from the override header".into(),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    Some(CompiledOverride {
        header: rule.header.clone(),
        secret: rule
            .secret
            .as_ref()
            .map(|secret| (rule.secret_header.clone(), secret.clone())),
    })
}

fn compile_sticky(
    at: &str,
    sticky: &StickyKey,
    route_name: &str,
    routing_header: &str,
    fail: &mut impl FnMut(String, String),
) -> Option<CompiledSticky> {
    let source = match (&sticky.header, &sticky.cookie) {
        (Some(header), None) => {
            if !check_header_name(&format!("{at}.header"), header, fail) {
                return None;
            }
            if header == routing_header {
                fail(
                    format!("{at}.header"),
                    format!(
                        "{q_header} is the routing header; pick a header the client sends",
                        q_header = quoted(header)
                    ),
                );
                return None;
            }
            StickySource::Header(header.clone())
        }
        (None, Some(cookie)) => {
            if cookie.is_empty()
                || cookie.len() > MAX_HEADER_NAME_LEN
                || !cookie.bytes().all(is_token_byte)
            {
                fail(
                    format!("{at}.cookie"),
                    format!("{q_cookie} is not a valid cookie name (token characters, 1 to {MAX_HEADER_NAME_LEN})", q_cookie = quoted(cookie)),
                );
                return None;
            }
            StickySource::Cookie(cookie.clone())
        }
        (Some(_), Some(_)) => {
            fail(
                at.to_owned(),
                "set either `header` or `cookie`, not both".into(),
            );
            return None;
        }
        (None, None) => {
            fail(
                at.to_owned(),
                "set `header` or `cookie` to say where the key comes from".into(),
            );
            return None;
        }
    };
    Some(CompiledSticky {
        source,
        salt: sticky.salt.clone().unwrap_or_else(|| route_name.to_owned()),
    })
}

/// Rejects host patterns that can never match because an earlier entry
/// takes every request they would cover.
fn check_reachable(
    at: &str,
    route: &CompiledRoute,
    earlier: &[CompiledRoute],
    report: &mut impl FnMut(String, String),
) {
    for (j, pattern) in route.hosts.iter().enumerate() {
        let shadow = earlier.iter().position(|prev| {
            prev.hosts.iter().any(|p| host_covers(p, pattern))
                && prefix_covers(prev.path_prefix.as_deref(), route.path_prefix.as_deref())
        });
        if let Some(k) = shadow {
            report(
                format!("{at}.match.hosts[{j}]"),
                format!(
                    "never matches: routes[{k}] ({}) comes first and takes every request it would cover; \
                     put the more specific entry first",
                    quoted(earlier.get(k).map(|r| r.name.as_str()).unwrap_or_default())
                ),
            );
        }
    }
}

fn host_covers(earlier: &HostPattern, later: &HostPattern) -> bool {
    match (earlier, later) {
        (HostPattern::Any, _) => true,
        (_, HostPattern::Any) => false,
        (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
        (HostPattern::Suffix(s), HostPattern::Exact(h)) => {
            h.len() > s.len() && h.ends_with(s.as_str())
        }
        (HostPattern::Suffix(a), HostPattern::Suffix(b)) => b.ends_with(a.as_str()),
        (HostPattern::Exact(_), HostPattern::Suffix(_)) => false,
    }
}

fn prefix_covers(earlier: Option<&str>, later: Option<&str>) -> bool {
    match (earlier, later) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => b.starts_with(a),
    }
}

/// Route and version names become part of metric names and label values:
/// letters, digits, `_` and `-` only.
fn check_stats_name(path: &str, name: &str, fail: &mut impl FnMut(String, String)) {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        fail(
            path.to_owned(),
            format!(
                "{q_name} must be 1 to {MAX_NAME_LEN} characters long",
                q_name = quoted(name)
            ),
        );
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        fail(
            path.to_owned(),
            format!(
                "{q_name} is not safe in stats names: use only letters, digits, `_` and `-` (no dots)",
                q_name = quoted(name)
            ),
        );
    }
}

/// Header names: lower case (as HTTP/2 and Envoy carry them), token
/// characters, not a pseudo-header.
fn check_header_name(path: &str, name: &str, fail: &mut impl FnMut(String, String)) -> bool {
    let reason = if name.is_empty() || name.len() > MAX_HEADER_NAME_LEN {
        Some(format!(
            "header name {q_name} must be 1 to {MAX_HEADER_NAME_LEN} characters long",
            q_name = quoted(name)
        ))
    } else if name.starts_with(':') {
        Some(format!(
            "{q_name} is a pseudo-header; use a regular header name",
            q_name = quoted(name)
        ))
    } else if !name.bytes().all(is_token_byte) {
        Some(format!(
            "{q_name} is not a valid header name (token characters only)",
            q_name = quoted(name)
        ))
    } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(format!(
            "header name {q_name} must be lower case, as Envoy carries header names",
            q_name = quoted(name)
        ))
    } else if matches!(
        name,
        "host" | "cookie" | "content-length" | "transfer-encoding" | "connection"
    ) {
        Some(format!(
            "{q_name} is a reserved header; use a header of your own",
            q_name = quoted(name)
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => {
            fail(path.to_owned(), reason);
            false
        }
        None => true,
    }
}

fn check_path_prefix(path: &str, prefix: &str, fail: &mut impl FnMut(String, String)) {
    if !prefix.starts_with('/') {
        fail(
            path.to_owned(),
            format!("{q_prefix} must start with `/`", q_prefix = quoted(prefix)),
        );
    } else if prefix
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#')
    {
        fail(
            path.to_owned(),
            format!(
                "{q_prefix} must not contain spaces, control characters, `?` or `#`",
                q_prefix = quoted(prefix)
            ),
        );
    }
}

/// RFC 9110 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
