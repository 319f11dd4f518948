//! Every kind of bad configuration is refused with the field's path and a
//! reason; good configurations compile to what they say.

use canary_config::host_match::HostPattern;
use canary_config::{parse, ConfigError, Weight};
use serde_json::{json, Value};

fn base() -> Value {
    json!({
        "routes": [{
            "name": "checkout",
            "match": { "hosts": ["checkout.example.com", "*.checkout.svc"] },
            "stable": "v1",
            "canary": "v2",
            "canary_weight": 10
        }]
    })
}

fn errors_of(config: &Value) -> Vec<ConfigError> {
    match parse(config.to_string().as_bytes()) {
        Ok(compiled) => panic!("accepted a bad configuration: {compiled:?}"),
        Err(errors) => errors.0,
    }
}

/// Asserts exactly one error, at `path`, whose reason mentions `needle`.
fn assert_refused(config: &Value, path: &str, needle: &str) {
    let errors = errors_of(config);
    assert!(
        errors
            .iter()
            .any(|e| e.path == path && e.reason.contains(needle)),
        "expected an error at {path} mentioning {needle:?}, got: {errors:?}"
    );
}

fn with(mut config: Value, pointer: &str, value: Value) -> Value {
    *config.pointer_mut(pointer).expect("pointer exists") = value;
    config
}

fn with_route_field(field: &str, value: Value) -> Value {
    let mut config = base();
    config["routes"][0][field] = value;
    config
}

#[test]
fn a_good_configuration_compiles_with_defaults() {
    let compiled = parse(base().to_string().as_bytes()).unwrap();
    assert_eq!(compiled.routing_header, "x-canary-version");
    assert_eq!(compiled.response_header, None);
    assert!(!compiled.needs_path);
    let route = &compiled.routes[0];
    assert_eq!(route.weight, Weight::from_percent(10.0).unwrap());
    assert_eq!(
        route.hosts,
        vec![
            HostPattern::Exact("checkout.example.com".into()),
            HostPattern::Suffix(".checkout.svc".into())
        ]
    );
    assert_eq!(route.override_rule, None);
    assert_eq!(route.sticky, None);
}

#[test]
fn override_defaults_and_disabling() {
    let config = with_route_field("override", json!({}));
    let compiled = parse(config.to_string().as_bytes()).unwrap();
    let rule = compiled.routes[0].override_rule.as_ref().unwrap();
    assert_eq!(rule.header, "x-canary");
    assert_eq!(rule.secret, None);

    let config = with_route_field("override", json!({"enabled": false, "secret": "abc"}));
    let compiled = parse(config.to_string().as_bytes()).unwrap();
    assert_eq!(compiled.routes[0].override_rule, None);

    let config = with_route_field("override", json!({"secret": "abc"}));
    let compiled = parse(config.to_string().as_bytes()).unwrap();
    assert_eq!(
        compiled.routes[0].override_rule.as_ref().unwrap().secret,
        Some(("x-canary-secret".into(), "abc".into()))
    );
}

#[test]
fn sticky_salt_defaults_to_the_route_name() {
    let config = with_route_field("sticky", json!({"cookie": "session"}));
    let compiled = parse(config.to_string().as_bytes()).unwrap();
    assert_eq!(compiled.routes[0].sticky.as_ref().unwrap().salt, "checkout");
}

#[test]
fn only_versions_other_than_the_default_need_a_mark() {
    use canary_config::Version;
    let compiled = parse(
        with_route_field("default_version", json!("v1"))
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert!(!compiled.routes[0].needs_mark(Version::Stable));
    assert!(compiled.routes[0].needs_mark(Version::Canary));
    let compiled = parse(base().to_string().as_bytes()).unwrap();
    assert!(compiled.routes[0].needs_mark(Version::Stable));
}

#[test]
fn needs_path_only_with_a_prefix() {
    let config = with(
        base(),
        "/routes/0/match",
        json!({"hosts": ["*"], "path_prefix": "/api"}),
    );
    assert!(parse(config.to_string().as_bytes()).unwrap().needs_path);
}

#[test]
fn empty_and_non_json_documents() {
    let errors = parse(b"  ").unwrap_err().0;
    assert!(errors[0].reason.contains("empty"), "{errors:?}");
    let errors = parse(b"{\"routes\": [").unwrap_err().0;
    assert!(errors[0].reason.contains("not valid JSON"), "{errors:?}");
    let errors = parse(b"[]").unwrap_err().0;
    assert!(
        errors[0].reason.contains("expected an object"),
        "{errors:?}"
    );
}

#[test]
fn unknown_fields_everywhere() {
    let mut config = base();
    config["weights"] = json!(1);
    assert_refused(&config, "weights", "unknown field");

    assert_refused(
        &with_route_field("canary_weigth", json!(5)),
        "routes[0].canary_weigth",
        "canary_weight",
    );

    let config = with(
        base(),
        "/routes/0/match",
        json!({"hosts": ["*"], "prefix": "/"}),
    );
    assert_refused(&config, "routes[0].match.prefix", "path_prefix");

    assert_refused(
        &with_route_field("override", json!({"headr": "x"})),
        "routes[0].override.headr",
        "unknown field",
    );
    assert_refused(
        &with_route_field("sticky", json!({"header": "x-user", "hash": "x"})),
        "routes[0].sticky.hash",
        "unknown field",
    );
}

#[test]
fn wrong_types_and_missing_fields() {
    assert_refused(
        &with_route_field("canary_weight", json!("10")),
        "routes[0].canary_weight",
        "expected a number",
    );
    assert_refused(
        &with_route_field("stable", json!(1)),
        "routes[0].stable",
        "expected a string",
    );
    assert_refused(
        &with_route_field("override", json!({"enabled": "yes"})),
        "routes[0].override.enabled",
        "true or false",
    );
    let mut config = base();
    config["routes"][0]
        .as_object_mut()
        .unwrap()
        .remove("stable");
    assert_refused(&config, "routes[0].stable", "required");
    let mut config = base();
    config["routes"][0].as_object_mut().unwrap().remove("match");
    assert_refused(&config, "routes[0].match", "required");
    assert_refused(&json!({}), "routes", "required");
    let config = with(base(), "/routes/0/match/hosts", json!(["a.com", 7]));
    assert_refused(&config, "routes[0].match.hosts[1]", "expected a string");
}

#[test]
fn weights_out_of_range_or_too_precise() {
    assert_refused(
        &with_route_field("canary_weight", json!(100.5)),
        "routes[0].canary_weight",
        "between 0 and 100",
    );
    assert_refused(
        &with_route_field("canary_weight", json!(-1)),
        "routes[0].canary_weight",
        "between 0 and 100",
    );
    assert_refused(
        &with_route_field("canary_weight", json!(0.001)),
        "routes[0].canary_weight",
        "0.01",
    );
    // 0.5 and 0.01 are fine.
    for ok in [0.5, 0.01, 99.99, 100.0, 0.0] {
        parse(
            with_route_field("canary_weight", json!(ok))
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    }
}

#[test]
fn a_weight_without_a_canary() {
    let mut config = base();
    config["routes"][0]
        .as_object_mut()
        .unwrap()
        .remove("canary");
    assert_refused(&config, "routes[0].canary_weight", "no `canary`");
    config["routes"][0]["canary_weight"] = json!(0);
    parse(config.to_string().as_bytes()).unwrap();
}

#[test]
fn names_unsafe_for_stats() {
    assert_refused(
        &with_route_field("name", json!("check.out")),
        "routes[0].name",
        "no dots",
    );
    assert_refused(
        &with_route_field("name", json!("")),
        "routes[0].name",
        "1 to 64",
    );
    assert_refused(
        &with_route_field("name", json!("a".repeat(65))),
        "routes[0].name",
        "1 to 64",
    );
    assert_refused(
        &with_route_field("stable", json!("v 1")),
        "routes[0].stable",
        "letters, digits",
    );
    assert_refused(
        &with_route_field("canary", json!("v2:beta")),
        "routes[0].canary",
        "letters, digits",
    );
    assert_refused(
        &with_route_field("canary", json!("v1")),
        "routes[0].canary",
        "same as the stable",
    );
}

#[test]
fn duplicate_entries() {
    let mut config = base();
    let mut second = config["routes"][0].clone();
    second["match"] = json!({"hosts": ["other.example.com"]});
    config["routes"].as_array_mut().unwrap().push(second);
    assert_refused(&config, "routes[1].name", "duplicate route name");

    let config = with(base(), "/routes/0/match/hosts", json!(["a.com", "A.com"]));
    assert_refused(&config, "routes[0].match.hosts[1]", "listed twice");
}

#[test]
fn shadowed_entries() {
    let mut config = base();
    config["routes"] = json!([
        {"name": "all", "match": {"hosts": ["*.example.com"]}, "stable": "v1"},
        {"name": "api", "match": {"hosts": ["api.example.com", "other.org"], "path_prefix": "/api"}, "stable": "v1"}
    ]);
    assert_refused(&config, "routes[1].match.hosts[0]", "routes[0]");
    // The specific entry first is fine.
    config["routes"] = json!([
        {"name": "api", "match": {"hosts": ["api.example.com"], "path_prefix": "/api"}, "stable": "v1"},
        {"name": "all", "match": {"hosts": ["*.example.com"]}, "stable": "v1"}
    ]);
    parse(config.to_string().as_bytes()).unwrap();
    // A longer prefix behind a shorter one on the same host is shadowed.
    config["routes"] = json!([
        {"name": "a", "match": {"hosts": ["x.com"], "path_prefix": "/api"}, "stable": "v1"},
        {"name": "b", "match": {"hosts": ["x.com"], "path_prefix": "/api/v2"}, "stable": "v1"}
    ]);
    assert_refused(&config, "routes[1].match.hosts[0]", "never matches");
}

#[test]
fn malformed_matchers() {
    let cases = [
        (json!({"hosts": []}), "routes[0].match.hosts", "is empty"),
        (
            json!({"hosts": ["a.*.com"]}),
            "routes[0].match.hosts[0]",
            "`*`",
        ),
        (
            json!({"hosts": ["example.com:8080"]}),
            "routes[0].match.hosts[0]",
            "port",
        ),
        (
            json!({"hosts": ["exa mple.com"]}),
            "routes[0].match.hosts[0]",
            "character",
        ),
        (
            json!({"hosts": ["a..com"]}),
            "routes[0].match.hosts[0]",
            "empty label",
        ),
        (
            json!({"hosts": ["*"], "path_prefix": "api"}),
            "routes[0].match.path_prefix",
            "start with `/`",
        ),
        (
            json!({"hosts": ["*"], "path_prefix": "/a b"}),
            "routes[0].match.path_prefix",
            "spaces",
        ),
        (
            json!({"hosts": ["*"], "path_prefix": "/a?b"}),
            "routes[0].match.path_prefix",
            "`?`",
        ),
    ];
    for (matcher, path, needle) in cases {
        assert_refused(&with(base(), "/routes/0/match", matcher), path, needle);
    }
}

#[test]
fn bad_header_names() {
    let mut config = base();
    config["routing_header"] = json!("X-Canary");
    assert_refused(&config, "routing_header", "lower case");
    config["routing_header"] = json!(":path");
    assert_refused(&config, "routing_header", "pseudo-header");
    config["routing_header"] = json!("x canary");
    assert_refused(&config, "routing_header", "token");
    config["routing_header"] = json!("");
    assert_refused(&config, "routing_header", "1 to 128");
    config["routing_header"] = json!("host");
    assert_refused(&config, "routing_header", "reserved");

    let mut config = base();
    config["response_header"] = json!("X-Served");
    assert_refused(&config, "response_header", "lower case");
}

#[test]
fn conflicting_override_and_sticky_settings() {
    assert_refused(
        &with_route_field("override", json!({"header": "x-canary-version"})),
        "routes[0].override.header",
        "routing header",
    );
    assert_refused(
        &with_route_field("override", json!({"secret": ""})),
        "routes[0].override.secret",
        "is empty",
    );
    assert_refused(
        &with_route_field("override", json!({"secret": "a b"})),
        "routes[0].override.secret",
        "visible ASCII",
    );
    assert_refused(
        &with_route_field(
            "override",
            json!({"secret": "s", "secret_header": "x-canary"}),
        ),
        "routes[0].override.secret_header",
        "differ",
    );
    assert_refused(
        &with_route_field("sticky", json!({})),
        "routes[0].sticky",
        "set `header` or `cookie`",
    );
    assert_refused(
        &with_route_field("sticky", json!({"header": "x-user", "cookie": "s"})),
        "routes[0].sticky",
        "not both",
    );
    assert_refused(
        &with_route_field("sticky", json!({"cookie": "a;b"})),
        "routes[0].sticky.cookie",
        "cookie name",
    );
    let mut config = with_route_field("sticky", json!({"header": "x-canary"}));
    config["routes"][0]["override"] = json!({});
    assert_refused(&config, "routes[0].sticky.header", "override header");
}

#[test]
fn all_problems_are_reported_at_once() {
    let config = json!({
        "routing_header": "X",
        "routes": [{
            "name": "a.b",
            "match": {"hosts": ["*:80"]},
            "stable": "v1",
            "canary": "v1",
            "canary_weight": 10
        }]
    });
    let paths: Vec<String> = errors_of(&config).into_iter().map(|e| e.path).collect();
    for expected in [
        "routing_header",
        "routes[0].name",
        "routes[0].canary",
        "routes[0].match.hosts[0]",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "missing {expected} in {paths:?}"
        );
    }
}

#[test]
fn error_lines_name_path_and_reason() {
    let errors = parse(
        with_route_field("canary_weight", json!(150))
            .to_string()
            .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(
        errors.to_string(),
        "routes[0].canary_weight: weight must be between 0 and 100 (percent), got 150"
    );
}

#[test]
fn serde_round_trip_through_filter_config() {
    let config: canary_config::FilterConfig = serde_json::from_value(base()).unwrap();
    let text = serde_json::to_string(&config).unwrap();
    let back: canary_config::FilterConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(config, back);
    let err = serde_json::from_value::<canary_config::FilterConfig>(with_route_field(
        "canary_weight",
        json!(101),
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("routes[0].canary_weight"), "{err}");
}

fn with_split(split: Value) -> Value {
    let mut config = base();
    config["splits"] = json!({ "checkout": split });
    config
}

#[test]
fn a_split_in_splits_is_the_split_in_force() {
    let config = with_split(json!({
        "stable": "v1", "canary": "v3", "canary_weight": 0.5, "generation": 1733100000000u64
    }));
    let route = &parse(config.to_string().as_bytes()).unwrap().routes[0];
    assert_eq!(route.canary.as_deref(), Some("v3"));
    assert_eq!(route.weight, Weight::from_percent(0.5).unwrap());
    assert_eq!(route.generation, 1_733_100_000_000);
    // Without `splits`, the entry is its own split, generation 0.
    let route = &parse(base().to_string().as_bytes()).unwrap().routes[0];
    assert_eq!(route.canary.as_deref(), Some("v2"));
    assert_eq!(route.generation, 0);
}

#[test]
fn splits_follow_the_entry_rules() {
    assert_refused(
        &json!({"routes": base()["routes"], "splits": {"web": {"stable": "v1"}}}),
        "splits.web",
        "no route entry is named \"web\"",
    );
    assert_refused(
        &json!({"routes": base()["routes"], "splits": {"a b": {"stable": "v1"}}}),
        "splits[\"a b\"]",
        "no route entry",
    );
    assert_refused(
        &with_split(json!({"stable": "v1", "canary": "v1"})),
        "splits.checkout.canary",
        "same as the stable version",
    );
    assert_refused(
        &with_split(json!({"stable": "v.1"})),
        "splits.checkout.stable",
        "not safe in stats names",
    );
    assert_refused(
        &with_split(json!({"stable": "v1", "canary_weight": 10})),
        "splits.checkout.canary_weight",
        "no `canary` version",
    );
    assert_refused(
        &with_split(json!({"stable": "v1", "canary": "v2", "override_enabled": true})),
        "splits.checkout.override_enabled",
        "no `override` rule",
    );
    assert_refused(
        &with_split(json!({"canary": "v2"})),
        "splits.checkout.stable",
        "required",
    );
    assert_refused(
        &with_split(json!({"stable": "v1", "weight": 3})),
        "splits.checkout.weight",
        "unknown field",
    );
    assert_refused(
        &with_split(json!({"stable": "v1", "generation": -1})),
        "splits.checkout.generation",
        "whole number",
    );
    assert_refused(
        &with_split(json!({"stable": "v1", "generation": 9007199254740992u64})),
        "splits.checkout.generation",
        "whole number",
    );
    assert_refused(
        &with_split(json!({"stable": "v1", "generation": 1.5})),
        "splits.checkout.generation",
        "whole number",
    );
    assert_refused(
        &json!({"routes": base()["routes"], "splits": []}),
        "splits",
        "expected an object",
    );
}

#[test]
fn a_split_switches_the_override_and_keeps_its_secret() {
    let mut config = with_split(json!({"stable": "v1", "canary": "v2", "override_enabled": true}));
    config["routes"][0]["override"] = json!({"enabled": false, "secret": "s3"});
    let route = &parse(config.to_string().as_bytes()).unwrap().routes[0];
    assert!(route.override_rule.is_some(), "the split switches it on");
    config["splits"]["checkout"]["override_enabled"] = json!(false);
    config["routes"][0]["override"]["enabled"] = json!(true);
    let route = &parse(config.to_string().as_bytes()).unwrap().routes[0];
    assert!(route.override_rule.is_none(), "the split switches it off");
    // Either way, the secret header is removed from the entry's requests.
    assert_eq!(route.secret_header.as_deref(), Some("x-canary-secret"));
}

#[test]
fn the_secret_header_is_stripped_even_with_the_override_off() {
    let config = with_route_field("override", json!({"enabled": false, "secret": "abc"}));
    let route = &parse(config.to_string().as_bytes()).unwrap().routes[0];
    assert_eq!(route.override_rule, None);
    assert_eq!(route.secret_header.as_deref(), Some("x-canary-secret"));
    let config = with_route_field("override", json!({"enabled": false}));
    let route = &parse(config.to_string().as_bytes()).unwrap().routes[0];
    assert_eq!(route.secret_header, None);
}

#[test]
fn the_default_version_may_not_be_the_canary() {
    assert_refused(
        &with_route_field("default_version", json!("v2")),
        "routes[0].default_version",
        "counted as canary",
    );
    // Through a split too, reported where the canary was named.
    let mut config = with_split(json!({"stable": "v2", "canary": "v1"}));
    config["routes"][0]["default_version"] = json!("v1");
    assert_refused(
        &config,
        "splits.checkout.canary",
        "routes[0].default_version",
    );
    // A default version that is neither is still allowed.
    let config = with_route_field("default_version", json!("v0"));
    assert!(parse(config.to_string().as_bytes()).is_ok());
}

#[test]
fn guards_default_and_bounds() {
    let config = with_route_field("guard", json!({}));
    let route = &parse(config.to_string().as_bytes()).unwrap().routes[0];
    let rule = route.guard.as_ref().expect("a guard");
    assert_eq!(rule.baseline(), Weight::from_percent(5.0).unwrap());
    assert_eq!(rule.hard_failure_requests(), 9);
    let config = with_route_field("guard", json!({"baseline_error_percent": 20}));
    let route = &parse(config.to_string().as_bytes()).unwrap().routes[0];
    assert!(route.guard.as_ref().unwrap().hard_failure_requests() > 9);
    for bad in [json!(0), json!(0.05), json!(51)] {
        assert_refused(
            &with_route_field("guard", json!({"baseline_error_percent": bad})),
            "routes[0].guard.baseline_error_percent",
            "from 0.1 to 50",
        );
    }
    assert_refused(
        &with_route_field("guard", json!({"enabled": true})),
        "routes[0].guard.enabled",
        "unknown field",
    );
    // No canary, nothing to guard.
    let mut config = with_route_field("guard", json!({}));
    config["routes"][0]["canary"] = Value::Null;
    config["routes"][0]["canary_weight"] = json!(0);
    let route = &parse(config.to_string().as_bytes()).unwrap().routes[0];
    assert!(route.guard.is_none());
}
