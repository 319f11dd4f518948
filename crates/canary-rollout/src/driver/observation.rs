//! What the proxies show, and how it compares with the split the rollout
//! intends. The filter publishes each route entry's split in force in its
//! `weight_bp` gauges (and the attempt it belongs to, and whether its
//! in-proxy guard tripped); an observer (Envoy's admin endpoint, or
//! Prometheus in a mesh) turns them into an [`Observation`], one entry per
//! proxy the rollout targets.
//!
//! The comparison is the rule the driver gates on: a split is in force
//! only when every targeted proxy shows it exactly.

use std::collections::BTreeMap;
use std::fmt;

use canary_analysis::Timestamp;
use canary_config::stats_names::weight_gauges;
use canary_config::Version;
use serde::{Deserialize, Serialize};

use crate::traffic::TrafficState;

/// Every targeted proxy and what it shows, read at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// When the proxies were read (every value is at least this fresh).
    pub at: Timestamp,
    /// One entry per proxy that should carry the filter.
    pub proxies: Vec<ProxyState>,
}

/// One proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyState {
    /// Which proxy: an admin address, or a pod's namespace/name.
    pub proxy: String,
    /// What it shows.
    pub shows: Shows,
}

/// What one proxy shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Shows {
    /// It could not be read, or exports no canary stats at all (the filter
    /// is not loaded, a selector misses it, its series are missing).
    Nothing(String),
    /// The split it applies, by route entry name.
    Routes(BTreeMap<String, RouteShows>),
}

/// The split a proxy applies to one route entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteShows {
    /// Share of the route's requests per version, in hundredths of a
    /// percent (the `weight_bp` gauges; a version the configuration no
    /// longer names shows 0).
    pub weights: BTreeMap<String, u64>,
    /// The attempt (generation) of the configuration, when the filter
    /// reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Whether the in-proxy guard stopped this route's canary traffic.
    #[serde(default)]
    pub guard_tripped: bool,
}

/// How the fleet compares with the intended split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Every proxy shows exactly the intended split.
    InForce,
    /// Some proxy gives the canary more than intended (or lets the override
    /// header pick it, or applies another attempt's configuration).
    Above(String),
    /// No proxy gives the canary more, and some gives it less.
    Below(String),
    /// Some proxy shows nothing for a route (unreadable, not loaded).
    Unknown(String),
}

/// One difference between a proxy and the intention, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Difference {
    proxy: String,
    route: String,
    direction: Direction,
    what: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    Below,
    Unknown,
    Above,
}

/// The gauge values `traffic` puts on a route entry, by version name.
pub fn expected_weights(traffic: &TrafficState) -> BTreeMap<String, u64> {
    weight_gauges(traffic.effective_weight(), traffic.canary.is_some())
        .map(|(version, value)| {
            let name = match (version, &traffic.canary) {
                (Version::Canary, Some(canary)) => canary.clone(),
                _ => traffic.stable.clone(),
            };
            (name, value)
        })
        .collect()
}

/// The canary version's share in `weights`, in basis points.
fn share(weights: &BTreeMap<String, u64>, canary: &str) -> u64 {
    weights.get(canary).copied().unwrap_or(0)
}

/// Compares what every proxy shows on `routes` with `intended` (attempt
/// `generation`); `canary` is the rollout's canary version, whose share
/// decides the direction of a difference.
pub fn compare(
    observation: &Observation,
    routes: &[String],
    intended: &TrafficState,
    generation: u64,
    canary: &str,
) -> Comparison {
    let want = expected_weights(intended);
    let want_share = share(&want, canary);
    let mut differences = Vec::new();
    if observation.proxies.is_empty() {
        return Comparison::Unknown("no proxy is known to carry the filter".into());
    }
    for proxy in &observation.proxies {
        let shown = match &proxy.shows {
            Shows::Nothing(why) => {
                differences.push(Difference {
                    proxy: proxy.proxy.clone(),
                    route: String::new(),
                    direction: Direction::Unknown,
                    what: why.clone(),
                });
                continue;
            }
            Shows::Routes(shown) => shown,
        };
        for route in routes {
            let Some(shows) = shown
                .get(route)
                .filter(|s| s.weights.values().any(|v| *v > 0))
            else {
                differences.push(Difference {
                    proxy: proxy.proxy.clone(),
                    route: route.clone(),
                    direction: Direction::Unknown,
                    what: "no split for this route".into(),
                });
                continue;
            };
            let got_share = share(&shows.weights, canary);
            let same_weights = want.iter().all(|(v, w)| shows.weights.get(v) == Some(w))
                && shows
                    .weights
                    .iter()
                    .all(|(v, w)| *w == 0 || want.contains_key(v));
            let same_generation = shows.generation.is_none_or(|g| g == generation);
            if same_weights && same_generation {
                continue;
            }
            let direction = if got_share < want_share {
                Direction::Below
            } else {
                Direction::Above
            };
            let what = if same_weights {
                format!(
                    "applies attempt {} instead of {generation}",
                    shows.generation.unwrap_or_default()
                )
            } else {
                format!("shows {}", describe(&shows.weights))
            };
            differences.push(Difference {
                proxy: proxy.proxy.clone(),
                route: route.clone(),
                direction,
                what,
            });
        }
    }
    let Some(worst) = differences.iter().map(|d| d.direction).max() else {
        return Comparison::InForce;
    };
    let total = observation.proxies.len();
    let words = summary(&differences, worst, total);
    match worst {
        Direction::Above => Comparison::Above(words),
        Direction::Unknown => Comparison::Unknown(words),
        Direction::Below => Comparison::Below(words),
    }
}

/// Proxies whose guard tripped on one of `routes` while applying attempt
/// `generation`: `(proxy, route)`.
pub fn guard_trips(
    observation: &Observation,
    routes: &[String],
    generation: u64,
) -> Vec<(String, String)> {
    let mut trips = Vec::new();
    for proxy in &observation.proxies {
        let Shows::Routes(shown) = &proxy.shows else {
            continue;
        };
        for route in routes {
            if let Some(shows) = shown.get(route) {
                if shows.guard_tripped && shows.generation.is_none_or(|g| g == generation) {
                    trips.push((proxy.proxy.clone(), route.clone()));
                }
            }
        }
    }
    trips
}

fn summary(differences: &[Difference], worst: Direction, total: usize) -> String {
    let of_kind: Vec<&Difference> = differences
        .iter()
        .filter(|d| d.direction == worst)
        .collect();
    let first = of_kind[0];
    let place = if first.route.is_empty() {
        first.proxy.clone()
    } else {
        format!("{} route {}", first.proxy, first.route)
    };
    let mut proxies: Vec<&str> = of_kind.iter().map(|d| d.proxy.as_str()).collect();
    proxies.dedup();
    if proxies.len() > 1 {
        format!(
            "{} of {total} proxies differ, e.g. {place} {}",
            proxies.len(),
            first.what
        )
    } else {
        format!("{place} {} ({} of {total} proxies)", first.what, 1)
    }
}

/// `v2 25%, v1 75%`.
fn describe(weights: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = weights
        .iter()
        .filter(|(_, w)| **w > 0)
        .map(|(v, w)| format!("{v} {}", Percent(*w)))
        .collect();
    if parts.is_empty() {
        "no traffic on any version".into()
    } else {
        parts.join(", ")
    }
}

struct Percent(u64);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 100;
        match self.0 % 100 {
            0 => write!(f, "{whole}%"),
            frac if frac % 10 == 0 => write!(f, "{whole}.{}%", frac / 10),
            frac => write!(f, "{whole}.{frac:02}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_config::Weight;

    fn traffic(weight: f64) -> TrafficState {
        TrafficState {
            canary_weight: Weight::from_percent(weight).expect("weight"),
            ..TrafficState::initial("v1", "v2")
        }
    }

    fn proxy(name: &str, v1: u64, v2: u64, generation: Option<u64>) -> ProxyState {
        let mut weights = BTreeMap::new();
        weights.insert("v1".to_owned(), v1);
        weights.insert("v2".to_owned(), v2);
        let mut routes = BTreeMap::new();
        routes.insert(
            "web".to_owned(),
            RouteShows {
                weights,
                generation,
                guard_tripped: false,
            },
        );
        ProxyState {
            proxy: name.into(),
            shows: Shows::Routes(routes),
        }
    }

    fn observe(proxies: Vec<ProxyState>) -> Observation {
        Observation {
            at: Timestamp::from_secs(1),
            proxies,
        }
    }

    fn check(obs: &Observation, weight: f64) -> Comparison {
        compare(obs, &["web".to_owned()], &traffic(weight), 7, "v2")
    }

    #[test]
    fn in_force_only_when_every_proxy_shows_the_split() {
        let both = observe(vec![
            proxy("a", 7500, 2500, Some(7)),
            proxy("b", 7500, 2500, None),
        ]);
        assert_eq!(check(&both, 25.0), Comparison::InForce);
        let one_behind = observe(vec![
            proxy("a", 7500, 2500, Some(7)),
            proxy("b", 9000, 1000, Some(7)),
        ]);
        assert!(
            matches!(check(&one_behind, 25.0), Comparison::Below(w) if w.contains("b route web shows v1 90%, v2 10%"))
        );
    }

    #[test]
    fn more_canary_anywhere_is_above_even_if_another_is_below() {
        let mixed = observe(vec![
            proxy("a", 10_000, 0, Some(7)),
            proxy("b", 5000, 5000, Some(7)),
        ]);
        assert!(matches!(check(&mixed, 25.0), Comparison::Above(_)));
    }

    #[test]
    fn another_attempt_is_a_difference_to_correct() {
        let old = observe(vec![proxy("a", 7500, 2500, Some(6))]);
        assert!(matches!(check(&old, 25.0), Comparison::Above(w) if w.contains("attempt 6")));
    }

    #[test]
    fn a_silent_proxy_or_a_missing_route_is_unknown() {
        let silent = observe(vec![
            proxy("a", 7500, 2500, Some(7)),
            ProxyState {
                proxy: "b".into(),
                shows: Shows::Nothing("connection refused".into()),
            },
        ]);
        assert!(
            matches!(check(&silent, 25.0), Comparison::Unknown(w) if w.contains("connection refused"))
        );
        // A stale route whose gauges were zeroed shows no split.
        let zeroed = observe(vec![proxy("a", 0, 0, Some(7))]);
        assert!(matches!(check(&zeroed, 25.0), Comparison::Unknown(_)));
        assert!(matches!(
            check(&observe(vec![]), 25.0),
            Comparison::Unknown(_)
        ));
    }

    #[test]
    fn promotion_expects_everything_on_the_new_stable() {
        let promoted = TrafficState {
            stable: "v2".into(),
            canary: None,
            canary_weight: Weight::ZERO,
            header_route: false,
        };
        let mut weights = BTreeMap::new();
        weights.insert("v2".to_owned(), 10_000);
        weights.insert("v1".to_owned(), 0);
        assert_eq!(expected_weights(&promoted).get("v2"), Some(&10_000));
        let obs = observe(vec![ProxyState {
            proxy: "a".into(),
            shows: Shows::Routes(
                [(
                    "web".to_owned(),
                    RouteShows {
                        weights,
                        generation: None,
                        guard_tripped: false,
                    },
                )]
                .into(),
            ),
        }]);
        assert_eq!(
            compare(&obs, &["web".to_owned()], &promoted, 7, "v2"),
            Comparison::InForce
        );
    }
}
