//! Reading the JSON document into [`FilterConfig`], with the exact path of
//! every problem (`routes[1].sticky.cookie`).
//!
//! This is written out instead of derived because the filter ships as a
//! wasm module with a 200 KB budget: serde's derived visitors plus a
//! path-tracking wrapper cost more than the whole rest of the filter. The
//! walk goes over a `serde_json::Value`, checks every field's type, refuses
//! unknown fields (naming the ones allowed), applies defaults, and collects
//! all problems instead of stopping at the first.

use serde_json::{Map, Value};

use crate::schema::{
    default_override_header, default_routing_header, default_secret_header, default_true,
    FilterConfig, OverrideRule, RouteEntry, RouteMatch, StickyKey,
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
        match self.get(field) {
            None => Weight::ZERO,
            Some(Value::Number(n)) => match n.as_f64().map(Weight::from_percent) {
                Some(Ok(weight)) => weight,
                Some(Err(err)) => {
                    self.fail(field, format!("{err}, got {n}"));
                    Weight::ZERO
                }
                None => {
                    self.fail(field, "expected a number from 0 to 100".into());
                    Weight::ZERO
                }
            },
            Some(other) => {
                let reason = format!("expected a number from 0 to 100, found {}", kind(other));
                self.fail(field, reason);
                Weight::ZERO
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
        &["routing_header", "response_header", "routes"],
        errors,
    )?;
    let routing_header = f
        .string("routing_header")
        .unwrap_or_else(default_routing_header);
    let response_header = f.string("response_header");
    let items = f.array("routes");
    let mut routes = Vec::new();
    let mut ok = items.is_some();
    for (i, item) in items.into_iter().flatten().enumerate() {
        match read_route(format!("routes[{i}]"), item, errors) {
            Some(route) => routes.push(route),
            None => ok = false,
        }
    }
    ok.then_some(FilterConfig {
        routing_header,
        response_header,
        routes,
    })
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
        ],
        errors,
    )?;
    let name = f.required_string("name");
    let stable = f.required_string("stable");
    let canary = f.string("canary");
    let canary_weight = f.weight("canary_weight");
    let default_version = f.string("default_version");
    let (match_path, override_path, sticky_path) =
        (f.at("match"), f.at("override"), f.at("sticky"));
    let match_value = f.get("match");
    let override_value = f.get("override");
    let sticky_value = f.get("sticky");
    if match_value.is_none() {
        f.fail(
            "match",
            "missing; this field is required (e.g. {\"hosts\": [\"*\"]})".into(),
        );
    }
    let matcher = match_value.and_then(|v| read_match(match_path, v, errors));
    let r#override = override_value.and_then(|v| read_override(override_path, v, errors));
    let sticky = sticky_value.and_then(|v| read_sticky(sticky_path, v, errors));
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
