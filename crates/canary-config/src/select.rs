//! Choosing a version for one request: override header, then sticky key,
//! then random by weight. Pure: headers and randomness are passed in, so the
//! same code runs in the filter and in native tests.

use crate::compiled::{CompiledOverride, CompiledRoute, StickySource};
use crate::sticky::{bucket_of, cookie_value};

/// The two versions a route entry splits between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The version that serves by default.
    Stable,
    /// The version under test.
    Canary,
}

impl Version {
    /// Index for per-version tables: stable 0, canary 1.
    pub const fn index(self) -> usize {
        match self {
            Version::Stable => 0,
            Version::Canary => 1,
        }
    }
}

/// Why a version was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The route entry has no canary.
    NoCanary,
    /// The override header chose it.
    Override,
    /// The sticky key's bucket chose it.
    Sticky,
    /// A random bucket chose it.
    Random,
}

/// The outcome of [`choose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The chosen version.
    pub version: Version,
    /// Why.
    pub reason: Reason,
}

/// Chooses a version for a request on `route`.
///
/// `header(name)` returns a request header's value as bytes (header values
/// need not be UTF-8: a sticky key is hashed as the bytes it is); it is
/// called only for the headers the route's rules need. `random_bucket()` returns a uniform
/// number in `0..10_000`; it is called only when the weight is strictly
/// between 0% and 100% and neither override nor sticky key decided.
pub fn choose<H, S>(
    route: &CompiledRoute,
    mut header: H,
    random_bucket: impl FnOnce() -> u16,
) -> Decision
where
    H: FnMut(&str) -> Option<S>,
    S: AsRef<[u8]>,
{
    let Some(canary) = route.canary.as_deref() else {
        return Decision {
            version: Version::Stable,
            reason: Reason::NoCanary,
        };
    };
    if let Some(rule) = &route.override_rule {
        if let Some(version) = override_choice(rule, &route.stable, canary, &mut header) {
            return Decision {
                version,
                reason: Reason::Override,
            };
        }
    }
    if let Some(sticky) = &route.sticky {
        let key_header = match &sticky.source {
            StickySource::Header(name) => header(name),
            StickySource::Cookie(_) => header("cookie"),
        };
        if let Some(value) = key_header {
            let value = value.as_ref();
            let key = match &sticky.source {
                StickySource::Header(_) => Some(value).filter(|v| !v.is_empty()),
                StickySource::Cookie(name) => cookie_value(value, name),
            };
            if let Some(key) = key {
                let bucket = bucket_of(sticky.salt.as_bytes(), key);
                return Decision {
                    version: version_for(route.weight.admits(bucket)),
                    reason: Reason::Sticky,
                };
            }
        }
    }
    let version = match route.weight.basis_points() {
        0 => Version::Stable,
        crate::weight::BUCKETS => Version::Canary,
        _ => version_for(route.weight.admits(random_bucket())),
    };
    Decision {
        version,
        reason: Reason::Random,
    }
}

fn version_for(canary: bool) -> Version {
    if canary {
        Version::Canary
    } else {
        Version::Stable
    }
}

/// What the override header asks for, if it asks for anything valid and
/// carries the secret when one is required.
fn override_choice<H, S>(
    rule: &CompiledOverride,
    stable: &str,
    canary: &str,
    header: &mut H,
) -> Option<Version>
where
    H: FnMut(&str) -> Option<S>,
    S: AsRef<[u8]>,
{
    let value = header(&rule.header)?;
    let value = value.as_ref().trim_ascii();
    let wanted = if value.eq_ignore_ascii_case(b"always") || value == canary.as_bytes() {
        Version::Canary
    } else if value.eq_ignore_ascii_case(b"never") || value == stable.as_bytes() {
        Version::Stable
    } else {
        return None;
    };
    if let Some((secret_header, secret)) = &rule.secret {
        let given = header(secret_header)?;
        if !constant_time_eq(given.as_ref(), secret.as_bytes()) {
            return None;
        }
    }
    Some(wanted)
}

/// Compares two byte strings in time that depends only on their lengths,
/// so the secret cannot be guessed byte by byte from response times.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiled::CompiledSticky;
    use crate::weight::Weight;
    use std::collections::HashMap;

    fn route(weight: f64) -> CompiledRoute {
        CompiledRoute {
            name: "r".into(),
            hosts: vec![crate::host_match::HostPattern::Any],
            path_prefix: None,
            stable: "v1".into(),
            canary: Some("v2".into()),
            weight: Weight::from_percent(weight).unwrap(),
            generation: 0,
            default_version: None,
            override_rule: None,
            secret_header: None,
            sticky: None,
            guard: None,
        }
    }

    fn decide(route: &CompiledRoute, headers: &[(&str, &str)], bucket: u16) -> Decision {
        let map: HashMap<&str, &str> = headers.iter().copied().collect();
        choose(route, |name| map.get(name).copied(), || bucket)
    }

    fn decide_bytes(route: &CompiledRoute, headers: &[(&str, &[u8])], bucket: u16) -> Decision {
        let map: HashMap<&str, &[u8]> = headers.iter().copied().collect();
        choose(route, |name| map.get(name).copied(), || bucket)
    }

    #[test]
    fn random_uses_the_bucket_against_the_weight() {
        let r = route(10.0);
        assert_eq!(decide(&r, &[], 999).version, Version::Canary);
        assert_eq!(decide(&r, &[], 1000).version, Version::Stable);
        assert_eq!(decide(&r, &[], 0).reason, Reason::Random);
    }

    #[test]
    fn zero_and_full_weights_do_not_draw() {
        let mut drew = false;
        let zero = route(0.0);
        let full = route(100.0);
        let d = choose(
            &zero,
            |_| None::<&str>,
            || {
                drew = true;
                0
            },
        );
        assert_eq!(d.version, Version::Stable);
        let d = choose(
            &full,
            |_| None::<&str>,
            || {
                drew = true;
                9_999
            },
        );
        assert_eq!(d.version, Version::Canary);
        assert!(!drew);
    }

    #[test]
    fn no_canary_means_stable_whatever_the_headers() {
        let mut r = route(0.0);
        r.canary = None;
        r.override_rule = Some(CompiledOverride {
            header: "x-canary".into(),
            secret: None,
        });
        let d = decide(&r, &[("x-canary", "always")], 0);
        assert_eq!(
            d,
            Decision {
                version: Version::Stable,
                reason: Reason::NoCanary
            }
        );
    }

    #[test]
    fn override_forces_either_version() {
        let mut r = route(50.0);
        r.override_rule = Some(CompiledOverride {
            header: "x-canary".into(),
            secret: None,
        });
        for (value, want) in [
            ("always", Version::Canary),
            ("ALWAYS", Version::Canary),
            ("v2", Version::Canary),
            ("never", Version::Stable),
            ("v1", Version::Stable),
        ] {
            let d = decide(&r, &[("x-canary", value)], 0);
            assert_eq!(d.version, want, "{value}");
            assert_eq!(d.reason, Reason::Override);
            let d = decide(&r, &[("x-canary", value)], 9_999);
            assert_eq!(d.version, want, "{value}");
        }
        // Unknown values fall through to the weight.
        assert_eq!(
            decide(&r, &[("x-canary", "maybe")], 0).reason,
            Reason::Random
        );
    }

    #[test]
    fn override_with_secret_needs_the_exact_secret() {
        let mut r = route(0.0);
        r.override_rule = Some(CompiledOverride {
            header: "x-canary".into(),
            secret: Some(("x-canary-secret".into(), "s3cret".into())),
        });
        assert_eq!(
            decide(&r, &[("x-canary", "always")], 0).version,
            Version::Stable
        );
        assert_eq!(
            decide(
                &r,
                &[("x-canary", "always"), ("x-canary-secret", "s3cre")],
                0
            )
            .version,
            Version::Stable
        );
        assert_eq!(
            decide(
                &r,
                &[("x-canary", "always"), ("x-canary-secret", "s3cret")],
                0
            )
            .version,
            Version::Canary
        );
    }

    #[test]
    fn sticky_header_and_cookie() {
        let mut r = route(10.0);
        r.sticky = Some(CompiledSticky {
            source: StickySource::Header("x-user".into()),
            salt: "r".into(),
        });
        let d = decide(&r, &[("x-user", "alice")], 0);
        assert_eq!(d.reason, Reason::Sticky);
        let expected = r.weight.admits(bucket_of(b"r", b"alice"));
        // A key that is not UTF-8 is hashed as its bytes, whatever the
        // random bucket says.
        let odd: &[u8] = b"\xff\xfe-key";
        let first = decide_bytes(&r, &[("x-user", odd)], 0);
        assert_eq!(first.reason, Reason::Sticky);
        assert_eq!(decide_bytes(&r, &[("x-user", odd)], 9_999), first);
        assert_eq!(
            first.version == Version::Canary,
            r.weight.admits(bucket_of(b"r", odd))
        );
        assert_eq!(d.version == Version::Canary, expected);
        // Empty key: falls back to random.
        assert_eq!(decide(&r, &[("x-user", "")], 0).reason, Reason::Random);

        r.sticky = Some(CompiledSticky {
            source: StickySource::Cookie("session".into()),
            salt: "r".into(),
        });
        let d = decide(&r, &[("cookie", "a=b; session=alice")], 0);
        assert_eq!(d.reason, Reason::Sticky);
        assert_eq!(d.version == Version::Canary, expected);
        let d = decide_bytes(&r, &[("cookie", b"a=b; session=\xff\xfe-key")], 9_999);
        assert_eq!(d.reason, Reason::Sticky);
        assert_eq!(
            d,
            decide_bytes(
                &r,
                &[("x-user", b"ignored"), ("cookie", b"session=\xff\xfe-key")],
                0
            )
        );
        assert_eq!(decide(&r, &[("cookie", "a=b")], 0).reason, Reason::Random);
    }

    #[test]
    fn override_wins_over_sticky() {
        let mut r = route(0.0);
        r.sticky = Some(CompiledSticky {
            source: StickySource::Header("x-user".into()),
            salt: "r".into(),
        });
        r.override_rule = Some(CompiledOverride {
            header: "x-canary".into(),
            secret: None,
        });
        let d = decide(&r, &[("x-user", "alice"), ("x-canary", "always")], 0);
        assert_eq!(
            d,
            Decision {
                version: Version::Canary,
                reason: Reason::Override
            }
        );
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
