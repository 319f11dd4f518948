//! The traffic split a rollout wants, and how it maps onto the filter
//! configuration's [`Split`]: written into the configuration's `splits`
//! map for the rollout's route entries (every other entry, and everything
//! Git owns, is left as it was) and read back from it. Writing checks the
//! result with the filter's own validation, so nothing the filter would
//! refuse is ever produced.

use std::fmt;

use canary_config::{ConfigErrors, FilterConfig, Split, SplitError, Weight};
use serde::{Deserialize, Serialize};

/// Who gets the traffic of the rollout's route entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficState {
    /// The version serving everything not sent to the canary.
    pub stable: String,
    /// The canary version; `None` once promoted (the canary is stable).
    pub canary: Option<String>,
    /// Share of requests sent to the canary.
    pub canary_weight: Weight,
    /// Whether the override header may pick the canary (header-route steps).
    pub header_route: bool,
}

impl TrafficState {
    /// Everything to `stable`, `canary` deployed but at 0%.
    pub fn initial(stable: &str, canary: &str) -> TrafficState {
        TrafficState {
            stable: stable.to_owned(),
            canary: Some(canary.to_owned()),
            canary_weight: Weight::ZERO,
            header_route: false,
        }
    }

    /// The canary's share in basis points; 0 when there is no canary.
    pub fn effective_weight(&self) -> Weight {
        if self.canary.is_some() {
            self.canary_weight
        } else {
            Weight::ZERO
        }
    }

    /// The filter configuration's split for this rollout split in attempt
    /// `generation`.
    pub fn split(&self, generation: u64) -> Split {
        Split {
            stable: self.stable.clone(),
            canary: self.canary.clone(),
            canary_weight: self.effective_weight(),
            override_enabled: self.header_route,
            generation,
        }
    }

    /// The rollout split a configuration's [`Split`] carries (the inverse
    /// of [`TrafficState::split`], attempt aside).
    pub fn of_split(split: &Split) -> TrafficState {
        TrafficState {
            stable: split.stable.clone(),
            canary: split.canary.clone(),
            canary_weight: split.canary_weight,
            header_route: split.override_enabled,
        }
    }

    /// The split `config` applies to the route entry `route`, with its
    /// attempt; `None` without such an entry. The inverse of
    /// [`TrafficState::apply`].
    pub fn from_config(config: &FilterConfig, route: &str) -> Option<(TrafficState, u64)> {
        Split::of(config, route).map(|split| (TrafficState::of_split(&split), split.generation))
    }

    /// `base` with this split, attempt `generation`, on `routes`.
    pub fn apply(
        &self,
        generation: u64,
        base: &FilterConfig,
        routes: &[String],
    ) -> Result<FilterConfig, ApplyError> {
        self.split(generation)
            .apply_to(base, routes)
            .map_err(ApplyError::from)
    }
}

impl fmt::Display for TrafficState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.canary {
            Some(canary) => write!(
                f,
                "{canary} {}, {} {}",
                self.canary_weight,
                self.stable,
                Weight::from_basis_points(10_000 - self.canary_weight.basis_points())
                    .unwrap_or(Weight::ZERO)
            )?,
            None => write!(f, "{} 100%", self.stable)?,
        }
        if self.header_route {
            f.write_str(" (override header on)")?;
        }
        Ok(())
    }
}

impl From<SplitError> for ApplyError {
    fn from(error: SplitError) -> ApplyError {
        match error {
            SplitError::MissingRoute(name) => ApplyError::MissingRoute(name),
            SplitError::NoOverrideRule(name) => ApplyError::NoOverrideRule(name),
            SplitError::Invalid(errors) => ApplyError::Invalid(errors),
        }
    }
}

/// Why a split could not be applied to a filter configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The base configuration has no entry of that name.
    #[error("the filter configuration has no route entry named {0:?}; the rollout's `routes` must name entries of `routes[].name`")]
    MissingRoute(String),
    /// A header-route step needs an override rule to switch on.
    #[error("route entry {0:?} has no `override` rule for the header-route step to enable; add one to the filter configuration")]
    NoOverrideRule(String),
    /// The result would not pass the filter's validation.
    #[error("the resulting filter configuration is invalid: {0}")]
    Invalid(ConfigErrors),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> FilterConfig {
        canary_config::parse_document(
            br#"{"routes": [
                {"name": "api", "match": {"hosts": ["api.example.com"]}, "stable": "a1"},
                {"name": "web", "match": {"hosts": ["*"]}, "stable": "v1",
                 "override": {"enabled": false}}
            ]}"#,
        )
        .expect("valid base")
    }

    fn weight(percent: f64) -> Weight {
        Weight::from_percent(percent).expect("valid weight")
    }

    #[test]
    fn sets_versions_weight_and_override_on_the_named_routes_only() {
        let traffic = TrafficState {
            canary_weight: weight(25.0),
            header_route: true,
            ..TrafficState::initial("v1", "v2")
        };
        let config = traffic.apply(7, &base(), &["web".into()]).expect("applies");
        let web = &config.splits["web"];
        assert_eq!(web.canary.as_deref(), Some("v2"));
        assert_eq!(web.canary_weight, weight(25.0));
        assert!(web.override_enabled);
        assert_eq!(web.generation, 7);
        assert_eq!(config.routes, base().routes, "Git's entries are left alone");
        assert_eq!(
            TrafficState::from_config(&config, "web"),
            Some((traffic.clone(), 7))
        );
        assert!(!config.splits.contains_key("api"));
    }

    #[test]
    fn promotion_leaves_one_version_and_no_canary() {
        let promoted = TrafficState {
            stable: "v2".into(),
            canary: None,
            canary_weight: Weight::ZERO,
            header_route: false,
        };
        let config = promoted
            .apply(1, &base(), &["web".into()])
            .expect("applies");
        assert_eq!(config.splits["web"].stable, "v2");
        assert_eq!(config.splits["web"].canary, None);
        assert!(!config.splits["web"].override_enabled);
    }

    #[test]
    fn refuses_what_the_filter_would_refuse() {
        let missing = TrafficState::initial("v1", "v2").apply(1, &base(), &["nope".into()]);
        assert_eq!(missing, Err(ApplyError::MissingRoute("nope".into())));
        let header = TrafficState {
            header_route: true,
            ..TrafficState::initial("a1", "a2")
        };
        assert_eq!(
            header.apply(1, &base(), &["api".into()]),
            Err(ApplyError::NoOverrideRule("api".into()))
        );
        let same = TrafficState::initial("v1", "v1").apply(1, &base(), &["web".into()]);
        assert!(matches!(same, Err(ApplyError::Invalid(_))));
    }
}
