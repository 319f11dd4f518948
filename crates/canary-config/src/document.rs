//! Reading the JSON document into [`FilterConfig`], with the exact path of
//! every problem (`routes[1].sticky.cookie`).
//!
//! This is written out instead of derived because the filter ships as a
//! wasm module with a 200 KB budget: serde's derived visitors plus a
//! path-tracking wrapper cost more than the whole rest of the filter. The
//! walk goes over a `serde_json::Value`, checks every field's type, refuses
//! unknown fields (naming the ones allowed), applies defaults, and collects
//! all problems instead of stopping at the first.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::schema::{
    default_baseline_error_percent, default_override_header, default_routing_header,
    default_secret_header, default_true, FilterConfig, Guard, OverrideRule, RouteEntry, RouteMatch,
    Split, StickyKey, MAX_GENERATION,
};
use crate::validate::ConfigError;
use crate::weight::Weight;

/// Builds a [`FilterConfig`] from a parsed JSON value, or lists every
/// problem with its path.
pub fn from_value(value: &Value) -> Result<FilterConfig, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let config = read_config(value, &mut errors);
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(errors),
    }
}

/// Builds one [`Split`] (a value of `splits`) from a parsed JSON value, or
/// lists every problem with its path.
pub fn split_from_value(value: &Value) -> Result<Split, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let split = read_split(String::new(), value, &mut errors);
    match split {
        Some(split) if errors.is_empty() => Ok(split),
        _ => Err(errors),
    }
}

/// Reads the fields of one JSON object, remembering which were read so the
/// rest can be reported as unknown.
struct Fields<'a, 'e> {
    path: String,
    map: &'a Map<String, Value>,
    known: &'static [&'static str],
    errors: &'e mut Vec<ConfigError>,
}

impl<'a, 'e> Fields<'a, 'e> {
    fn open(
        path: String,
        value: &'a Value,
        known: &'static [&'static str],
        errors: &'e mut Vec<ConfigError>,
    ) -> Option<Fields<'a, 'e>> {
        match value {
            Value::Object(map) => {
                for key in map.keys() {
                    if !known.contains(&key.as_str()) {
                        errors.push(ConfigError {
                            path: join(&path, key),
                            reason: format!("unknown field; expected one of: {}", known.join(", ")),
                        });
                    }
                }
                Some(Fields {
                    path,
                    map,
                    known,
                    errors,
                })
            }
            other => {
                errors.push(ConfigError {
                    path,
                    reason: format!("expected an object, found {}", kind(other)),
                });
                None
            }
        }
    }

    fn at(&self, field: &str) -> String {
        debug_assert!(self.known.contains(&field));
        join(&self.path, field)
    }

    fn fail(&mut self, field: &str, reason: String) {
        let path = self.at(field);
        self.errors.push(ConfigError { path, reason });
    }

    /// A present, non-null field.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn string(&mut self, field: &str) -> Option<String> {
        match self.get(field)? {
            Value::String(s) => Some(s.clone()),
            other => {
                let reason = format!("expected a string, found {}", kind(other));
                self.fail(field, reason);
                None
            }
        }
    }

    fn required_string(&mut self, field: &str) -> Option<String> {
        if self.get(field).is_none() {
            self.fail(field, "missing; this field is required".into());
            return None;
        }
        self.string(field)
    }

    fn bool_or(&mut self, field: &str, default: bool) -> bool {
        match self.get(field) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                let reason = format!("expected true or false, found {}", kind(other));
                self.fail(field, reason);
                default
            }
        }
    }

    fn weight(&mut self, field: &str) -> Weight {
        self.weight_or(field, Weight::ZERO)
    }

    fn weight_or(&mut self, field: &str, default: Weight) -> Weight {
        match self.get(field) {
            None => default,
            Some(Value::Number(n)) => match n.as_f64().map(Weight::from_percent) {
                Some(Ok(weight)) => weight,
                Some(Err(err)) => {
                    self.fail(field, format!("{err}, got {n}"));
                    default
                }
                None => {
                    self.fail(field, "expected a number from 0 to 100".into());
                    default
                }
            },
            Some(other) => {
                let reason = format!("expected a number from 0 to 100, found {}", kind(other));
                self.fail(field, reason);
                default
            }
        }
    }

    /// A whole number from 0 to [`MAX_GENERATION`]; 0 when absent. A
    /// number written as a double (`1.7e12`, as a protobuf `Struct` may
    /// carry it) counts when it is whole.
    fn generation(&mut self, field: &str) -> u64 {
        let reason = match self.get(field) {
            None => return 0,
            Some(Value::Number(n)) => {
                let whole = n.as_u64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && (0.0..=MAX_GENERATION as f64).contains(f))
                        .map(|f| f as u64)
                });
                match whole {
                    Some(g) if g <= MAX_GENERATION => return g,
                    _ => format!("expected a whole number from 0 to {MAX_GENERATION}, got {n}"),
                }
            }
            Some(other) => format!(
                "expected a whole number from 0 to {MAX_GENERATION}, found {}",
                kind(other)
            ),
        };
        self.fail(field, reason);
        0
    }

    /// An object field as its entries, for maps keyed by name.
    fn map(&mut self, field: &str) -> Option<&'a Map<String, Value>> {
        match self.get(field)? {
            Value::Object(map) => Some(map),
            other => {
                let reason = format!("expected an object, found {}", kind(other));
                self.fail(field, reason);
                None
            }
        }
    }

    fn array(&mut self, field: &str) -> Option<&'a Vec<Value>> {
        match self.get(field) {
            None => {
                self.fail(field, "missing; this field is required".into());
                None
            }
            Some(Value::Array(items)) => Some(items),
            Some(other) => {
                let reason = format!("expected a list, found {}", kind(other));
                self.fail(field, reason);
                None
            }
        }
    }

    fn strings(&mut self, field: &str) -> Option<Vec<String>> {
        let items = self.array(field)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                other => {
                    let reason = format!("expected a string, found {}", kind(other));
                    let path = format!("{}[{i}]", self.at(field));
                    self.errors.push(ConfigError { path, reason });
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}

fn read_config(value: &Value, errors: &mut Vec<ConfigError>) -> Option<FilterConfig> {
    let mut f = Fields::open(
        String::new(),
        value,
        &["routing_header", "response_header", "routes", "splits"],
        errors,
    )?;
    let routing_header = f
        .string("routing_header")
        .unwrap_or_else(default_routing_header);
    let response_header = f.string("response_header");
    let items = f.array("routes");
    let split_items = f.map("splits");
    let mut routes = Vec::new();
    let mut ok = items.is_some();
    for (i, item) in items.into_iter().flatten().enumerate() {
        match read_route(format!("routes[{i}]"), item, errors) {
            Some(route) => routes.push(route),
            None => ok = false,
        }
    }
    let mut splits = BTreeMap::new();
    for (name, item) in split_items.into_iter().flatten() {
        match read_split(split_path(name), item, errors) {
            Some(split) => {
                splits.insert(name.clone(), split);
            }
            None => ok = false,
        }
    }
    ok.then_some(FilterConfig {
        routing_header,
        response_header,
        routes,
        splits,
    })
}

/// The path of `splits.<name>`; a name that is not a plain stats name is
/// quoted so the path stays one readable token.
pub(crate) fn split_path(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        format!("splits.{name}")
    } else {
        format!("splits[{}]", crate::quote::quoted(name))
    }
}

fn read_split(path: String, value: &Value, errors: &mut Vec<ConfigError>) -> Option<Split> {
    let before = errors.len();
    let mut f = Fields::open(
        path,
        value,
        &[
            "stable",
            "canary",
            "canary_weight",
            "override_enabled",
            "generation",
        ],
        errors,
    )?;
    let stable = f.required_string("stable");
    let split = Split {
        stable: stable.unwrap_or_default(),
        canary: f.string("canary"),
        canary_weight: f.weight("canary_weight"),
        override_enabled: f.bool_or("override_enabled", false),
        generation: f.generation("generation"),
    };
    (errors.len() == before).then_some(split)
}

fn read_route(path: String, value: &Value, errors: &mut Vec<ConfigError>) -> Option<RouteEntry> {
    let before = errors.len();
    let mut f = Fields::open(
        path,
        value,
        &[
            "name",
            "match",
            "stable",
            "canary",
            "canary_weight",
            "default_version",
            "override",
            "sticky",
            "guard",
        ],
        errors,
    )?;
    let name = f.required_string("name");
    let stable = f.required_string("stable");
    let canary = f.string("canary");
    let canary_weight = f.weight("canary_weight");
    let default_version = f.string("default_version");
    let (match_path, override_path, sticky_path, guard_path) = (
        f.at("match"),
        f.at("override"),
        f.at("sticky"),
        f.at("guard"),
    );
    let match_value = f.get("match");
    let override_value = f.get("override");
    let sticky_value = f.get("sticky");
    let guard_value = f.get("guard");
    if match_value.is_none() {
        f.fail(
            "match",
            "missing; this field is required (e.g. {\"hosts\": [\"*\"]})".into(),
        );
    }
    let matcher = match_value.and_then(|v| read_match(match_path, v, errors));
    let r#override = override_value.and_then(|v| read_override(override_path, v, errors));
    let sticky = sticky_value.and_then(|v| read_sticky(sticky_path, v, errors));
    let guard = guard_value.and_then(|v| read_guard(guard_path, v, errors));
    if errors.len() > before {
        return None;
    }
    Some(RouteEntry {
        name: name?,
        matcher: matcher?,
        stable: stable?,
        canary,
        canary_weight,
        default_version,
        r#override,
        sticky,
        guard,
    })
}

fn read_guard(path: String, value: &Value, errors: &mut Vec<ConfigError>) -> Option<Guard> {
    let mut f = Fields::open(path, value, &["baseline_error_percent"], errors)?;
    Some(Guard {
        baseline_error_percent: f
            .weight_or("baseline_error_percent", default_baseline_error_percent()),
    })
}

fn read_match(path: String, value: &Value, errors: &mut Vec<ConfigError>) -> Option<RouteMatch> {
    let mut f = Fields::open(path, value, &["hosts", "path_prefix"], errors)?;
    let hosts = f.strings("hosts");
    let path_prefix = f.string("path_prefix");
    Some(RouteMatch {
        hosts: hosts?,
        path_prefix,
    })
}

fn read_override(
    path: String,
    value: &Value,
    errors: &mut Vec<ConfigError>,
) -> Option<OverrideRule> {
    let mut f = Fields::open(
        path,
        value,
        &["enabled", "header", "secret", "secret_header"],
        errors,
    )?;
    Some(OverrideRule {
        enabled: f.bool_or("enabled", default_true()),
        header: f.string("header").unwrap_or_else(default_override_header),
        secret: f.string("secret"),
        secret_header: f
            .string("secret_header")
            .unwrap_or_else(default_secret_header),
    })
}

fn read_sticky(path: String, value: &Value, errors: &mut Vec<ConfigError>) -> Option<StickyKey> {
    let mut f = Fields::open(path, value, &["header", "cookie", "salt"], errors)?;
    Some(StickyKey {
        header: f.string("header"),
        cookie: f.string("cookie"),
        salt: f.string("salt"),
    })
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
