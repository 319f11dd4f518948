//! Whether the proxies apply what was pushed. The filter publishes each
//! route entry's split in its `weight_bp` gauges whenever it accepts a
//! configuration; comparing them with the pushed configuration tells a
//! push that took effect from one Envoy never loaded (a wrong ECDS path,
//! a WasmPlugin not selecting the workload, a refused configuration).

use std::collections::BTreeMap;

use canary_config::stats_names::weight_gauges;
use canary_config::{FilterConfig, Version};

use crate::envoy_stats::VersionKey;

/// `weight_bp` gauge values by (route, version), one per Envoy that
/// reported the gauge.
pub type Weights = BTreeMap<VersionKey, Vec<u64>>;

/// The `weight_bp` values `config` sets on the route entries `routes`.
pub fn expected(config: &FilterConfig, routes: &[String]) -> Vec<(VersionKey, u64)> {
    let mut expected = Vec::new();
    for entry in config.routes.iter().filter(|e| routes.contains(&e.name)) {
        for (version, value) in weight_gauges(entry.canary_weight, entry.canary.is_some()) {
            let name = match (version, &entry.canary) {
                (Version::Canary, Some(canary)) => canary,
                _ => &entry.stable,
            };
            expected.push(((entry.name.clone(), name.clone()), value));
        }
    }
    expected
}

/// `Ok` when each of the `endpoints` Envoys shows every expected value;
/// otherwise what differs, in words.
pub fn check(
    expected: &[(VersionKey, u64)],
    seen: &Weights,
    endpoints: usize,
) -> Result<(), String> {
    let mut problems = Vec::new();
    for ((route, version), want) in expected {
        let values = seen
            .get(&(route.clone(), version.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let missing = endpoints.saturating_sub(values.len());
        if missing > 0 {
            problems.push(format!(
                "route {route}: {missing} of {endpoints} Envoys report no weight for {version}"
            ));
        }
        let wrong: Vec<u64> = values.iter().copied().filter(|v| v != want).collect();
        if let Some(first) = wrong.first() {
            problems.push(format!(
                "route {route}: {} of {endpoints} Envoys send {} to {version}, pushed {}",
                wrong.len(),
                percent(*first),
                percent(*want)
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn percent(basis_points: u64) -> String {
    format!("{}%", basis_points as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(weight: f64) -> FilterConfig {
        canary_config::parse_document(
            format!(
                r#"{{"routes":[
                {{"name":"web","match":{{"hosts":["web"]}},"stable":"v1","canary":"v2","canary_weight":{weight}}},
                {{"name":"api","match":{{"hosts":["api"]}},"stable":"a1"}}
            ]}}"#
            )
            .as_bytes(),
        )
        .expect("valid")
    }

    fn key(route: &str, version: &str) -> VersionKey {
        (route.to_owned(), version.to_owned())
    }

    #[test]
    fn expected_values_cover_both_versions_of_the_rollout_routes_only() {
        let want = expected(&config(12.5), &["web".to_owned()]);
        assert_eq!(
            want,
            vec![(key("web", "v1"), 8750), (key("web", "v2"), 1250)]
        );
        let all = expected(&config(0.0), &["web".to_owned(), "api".to_owned()]);
        assert!(all.contains(&(key("api", "a1"), 10_000)));
    }

    #[test]
    fn every_envoy_must_show_every_value() {
        let want = expected(&config(25.0), &["web".to_owned()]);
        let mut seen = Weights::new();
        seen.insert(key("web", "v1"), vec![7500, 7500]);
        seen.insert(key("web", "v2"), vec![2500, 2500]);
        assert_eq!(check(&want, &seen, 2), Ok(()));

        // One Envoy still on the old split.
        seen.insert(key("web", "v2"), vec![2500, 1000]);
        let err = check(&want, &seen, 2).unwrap_err();
        assert!(
            err.contains("1 of 2 Envoys send 10% to v2, pushed 25%"),
            "{err}"
        );

        // One Envoy without the gauge at all.
        seen.insert(key("web", "v2"), vec![2500]);
        let err = check(&want, &seen, 2).unwrap_err();
        assert!(
            err.contains("1 of 2 Envoys report no weight for v2"),
            "{err}"
        );

        assert!(check(&want, &Weights::new(), 1).is_err());
    }
}
