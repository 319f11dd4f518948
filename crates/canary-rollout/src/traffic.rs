//! The traffic split a rollout wants, and the filter configuration that
//! carries it: the rollout's route entries get its versions, weight and
//! override switch; every other entry is left as it was. The result is
//! checked with [`canary_config::compile`], so nothing the filter would
//! refuse is ever produced.

use std::fmt;

use canary_config::{compile, ConfigErrors, FilterConfig, Weight};
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

    /// The filter configuration `base` with this split on `routes`.
    pub fn apply(
        &self,
        base: &FilterConfig,
        routes: &[String],
    ) -> Result<FilterConfig, ApplyError> {
        let mut config = base.clone();
        for name in routes {
            let entry = config
                .routes
                .iter_mut()
                .find(|entry| entry.name == *name)
                .ok_or_else(|| ApplyError::MissingRoute(name.clone()))?;
            entry.stable = self.stable.clone();
            entry.canary = self.canary.clone();
            entry.canary_weight = self.effective_weight();
            match (&mut entry.r#override, self.header_route) {
                (Some(rule), on) => rule.enabled = on,
                (None, true) => return Err(ApplyError::NoOverrideRule(name.clone())),
                (None, false) => {}
            }
        }
        compile(&config).map_err(ApplyError::Invalid)?;
        Ok(config)
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
        let config = traffic.apply(&base(), &["web".into()]).expect("applies");
        let web = &config.routes[1];
        assert_eq!(web.canary.as_deref(), Some("v2"));
        assert_eq!(web.canary_weight, weight(25.0));
        assert_eq!(web.r#override.as_ref().map(|o| o.enabled), Some(true));
        assert_eq!(config.routes[0], base().routes[0]);
    }

    #[test]
    fn promotion_leaves_one_version_and_no_canary() {
        let promoted = TrafficState {
            stable: "v2".into(),
            canary: None,
            canary_weight: Weight::ZERO,
            header_route: false,
        };
        let config = promoted.apply(&base(), &["web".into()]).expect("applies");
        assert_eq!(config.routes[1].stable, "v2");
        assert_eq!(config.routes[1].canary, None);
        assert_eq!(
            config.routes[1].r#override.as_ref().map(|o| o.enabled),
            Some(false)
        );
    }

    #[test]
    fn refuses_what_the_filter_would_refuse() {
        let missing = TrafficState::initial("v1", "v2").apply(&base(), &["nope".into()]);
        assert_eq!(missing, Err(ApplyError::MissingRoute("nope".into())));
        let header = TrafficState {
            header_route: true,
            ..TrafficState::initial("a1", "a2")
        };
        assert_eq!(
            header.apply(&base(), &["api".into()]),
            Err(ApplyError::NoOverrideRule("api".into()))
        );
        let same = TrafficState::initial("v1", "v1").apply(&base(), &["web".into()]);
        assert!(matches!(same, Err(ApplyError::Invalid(_))));
    }
}
