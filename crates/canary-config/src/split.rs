//! Reading and writing a route entry's traffic split.
//!
//! The split lives in the configuration's `splits` map, keyed by route
//! entry name, so that the controller can own it while Git owns the route
//! entries (`pluginConfig` is schemaless in Istio: server-side apply
//! replaces the `routes` list whole but merges `splits` key by key). An
//! entry without a split in `splits` uses its own `stable`, `canary`,
//! `canary_weight` and `override.enabled`, with generation 0, exactly as
//! before `splits` existed.

use crate::schema::{FilterConfig, RouteEntry, Split};
use crate::validate::{compile, ConfigErrors};

impl Split {
    /// The split in force for the route entry named `route`: its entry in
    /// `splits` when there is one, else the entry's own fields (generation
    /// 0). `None` when no route entry has that name. The inverse of
    /// [`Split::apply_to`].
    pub fn of(config: &FilterConfig, route: &str) -> Option<Split> {
        let entry = config.routes.iter().find(|entry| entry.name == route)?;
        Some(Split::in_force(entry, config.splits.get(route)))
    }

    /// `config` with this split written into `splits` for every route
    /// entry named in `routes` (replacing what was there), checked with the
    /// filter's own validation so nothing the filter would refuse is ever
    /// produced. The route entries themselves are left as they are.
    pub fn apply_to(
        &self,
        config: &FilterConfig,
        routes: &[String],
    ) -> Result<FilterConfig, SplitError> {
        let mut written = config.clone();
        for name in routes {
            let entry = config
                .routes
                .iter()
                .find(|entry| entry.name == *name)
                .ok_or_else(|| SplitError::MissingRoute(name.clone()))?;
            if self.override_enabled && entry.r#override.is_none() {
                return Err(SplitError::NoOverrideRule(name.clone()));
            }
            written.splits.insert(name.clone(), self.clone());
        }
        compile(&written).map_err(SplitError::Invalid)?;
        Ok(written)
    }

    /// The split in force for `entry`, given its value in `splits`.
    pub(crate) fn in_force(entry: &RouteEntry, split: Option<&Split>) -> Split {
        match split {
            Some(split) => split.clone(),
            None => Split {
                stable: entry.stable.clone(),
                canary: entry.canary.clone(),
                canary_weight: entry.canary_weight,
                override_enabled: entry.r#override.as_ref().is_some_and(|rule| rule.enabled),
                generation: 0,
            },
        }
    }
}

/// Why a split could not be written into a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The configuration has no route entry of that name.
    #[error(
        "the filter configuration has no route entry named {0:?}; name entries of `routes[].name`"
    )]
    MissingRoute(String),
    /// The split switches the override on, but the entry has no rule.
    #[error("route entry {0:?} has no `override` rule to switch on; add one to the filter configuration")]
    NoOverrideRule(String),
    /// The result would not pass the filter's validation.
    #[error("the resulting filter configuration is invalid: {0}")]
    Invalid(ConfigErrors),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weight::Weight;

    fn base() -> FilterConfig {
        crate::parse_document(
            br#"{"routes": [
                {"name": "api", "match": {"hosts": ["api.example.com"]}, "stable": "a1"},
                {"name": "web", "match": {"hosts": ["*"]}, "stable": "v1", "canary": "v2",
                 "canary_weight": 5, "override": {"enabled": true}}
            ]}"#,
        )
        .expect("valid base")
    }

    fn split(weight: f64) -> Split {
        Split {
            stable: "v1".into(),
            canary: Some("v3".into()),
            canary_weight: Weight::from_percent(weight).expect("weight"),
            override_enabled: false,
            generation: 1_733_100_000_000,
        }
    }

    #[test]
    fn without_splits_the_entry_is_the_split() {
        let config = base();
        assert_eq!(
            Split::of(&config, "web"),
            Some(Split {
                stable: "v1".into(),
                canary: Some("v2".into()),
                canary_weight: Weight::from_percent(5.0).expect("weight"),
                override_enabled: true,
                generation: 0,
            })
        );
        assert_eq!(Split::of(&config, "nope"), None);
    }

    #[test]
    fn apply_then_read_back() {
        let written = split(25.0)
            .apply_to(&base(), &["web".into()])
            .expect("applies");
        assert_eq!(Split::of(&written, "web"), Some(split(25.0)));
        // The entries are untouched: Git's fields stay Git's.
        assert_eq!(written.routes, base().routes);
        assert_eq!(written.splits.len(), 1);
        // Replacing keeps one split per entry.
        let again = split(50.0)
            .apply_to(&written, &["web".into()])
            .expect("applies");
        assert_eq!(Split::of(&again, "web"), Some(split(50.0)));
        assert_eq!(again.splits.len(), 1);
        // And the filter routes by it.
        let compiled = compile(&again).expect("valid");
        assert_eq!(compiled.routes[1].canary.as_deref(), Some("v3"));
        assert_eq!(
            compiled.routes[1].weight,
            Weight::from_percent(50.0).unwrap()
        );
        assert_eq!(compiled.routes[1].generation, 1_733_100_000_000);
        assert_eq!(
            compiled.routes[1].override_rule, None,
            "switched off by the split"
        );
    }

    #[test]
    fn refuses_what_the_filter_would_refuse() {
        assert_eq!(
            split(10.0).apply_to(&base(), &["nope".into()]),
            Err(SplitError::MissingRoute("nope".into()))
        );
        let header = Split {
            stable: "a1".into(),
            canary: Some("a2".into()),
            override_enabled: true,
            ..split(10.0)
        };
        assert_eq!(
            header.apply_to(&base(), &["api".into()]),
            Err(SplitError::NoOverrideRule("api".into()))
        );
        let same = Split {
            canary: Some("v1".into()),
            ..split(0.0)
        };
        assert!(matches!(
            same.apply_to(&base(), &["web".into()]),
            Err(SplitError::Invalid(_))
        ));
    }

    #[test]
    fn serialises_as_the_document_reads_it() {
        let written = split(12.5)
            .apply_to(&base(), &["web".into()])
            .expect("applies");
        let text = crate::ecds::to_json_text(&written);
        assert!(
            text.contains(r#""splits":{"web":{"stable":"v1","canary":"v3","canary_weight":12.5,"override_enabled":false,"generation":1733100000000}}"#),
            "{text}"
        );
        assert_eq!(crate::parse_document(text.as_bytes()), Ok(written));
        let one: Split = serde_json::from_str(r#"{"stable":"v1","generation":1.7331e12}"#)
            .expect("a whole double is a generation");
        assert_eq!(one.generation, 1_733_100_000_000);
        assert!(serde_json::from_str::<Split>(r#"{"stable":"v1","weight":3}"#).is_err());
    }
}
