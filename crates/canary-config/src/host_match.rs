//! Matching a request's `:authority` against a route entry's host patterns,
//! without allocating: ports are ignored, case is ignored, one trailing dot
//! is ignored.

use crate::quote::quoted;

/// A validated host pattern, stored in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: every host.
    Any,
    /// `api.example.com`: that host only.
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: any host ending with it,
    /// with at least one character before the dot.
    Suffix(String),
}

/// Why a host pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPatternError {
    #[error("host pattern is empty")]
    Empty,
    #[error("host pattern {} has a port; ports are ignored when matching, leave it out", quoted(.0))]
    HasPort(String),
    #[error("host pattern {}: `*` is allowed only alone or as a leading `*.`", quoted(.0))]
    MisplacedWildcard(String),
    #[error("host pattern {} has a character that cannot appear in a host name", quoted(.0))]
    BadCharacter(String),
    #[error("host pattern {} has an empty label (`..`, or a leading or trailing dot)", quoted(.0))]
    EmptyLabel(String),
}

impl HostPattern {
    /// Parses and validates one pattern as written in the configuration.
    pub fn parse(pattern: &str) -> Result<HostPattern, HostPatternError> {
        if pattern.is_empty() {
            return Err(HostPatternError::Empty);
        }
        if pattern == "*" {
            return Ok(HostPattern::Any);
        }
        let (is_suffix, name) = match pattern.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        if name.contains('*') {
            return Err(HostPatternError::MisplacedWildcard(pattern.to_owned()));
        }
        // Bracketed IPv6 literal, exact only.
        if !is_suffix && name.starts_with('[') {
            let ok = name.ends_with(']')
                && name.len() > 2
                && name[1..name.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            if !ok {
                return Err(HostPatternError::BadCharacter(pattern.to_owned()));
            }
            return Ok(HostPattern::Exact(name.to_ascii_lowercase()));
        }
        if name.contains(':') {
            return Err(HostPatternError::HasPort(pattern.to_owned()));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(HostPatternError::BadCharacter(pattern.to_owned()));
        }
        if name.split('.').any(str::is_empty) {
            return Err(HostPatternError::EmptyLabel(pattern.to_owned()));
        }
        let lower = name.to_ascii_lowercase();
        Ok(if is_suffix {
            HostPattern::Suffix(format!(".{lower}"))
        } else {
            HostPattern::Exact(lower)
        })
    }

    /// Whether `host` (already stripped of its port by [`host_of`]) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(exact) => host.eq_ignore_ascii_case(exact),
            HostPattern::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

/// The host part of an `:authority` value: the port and one trailing dot
/// removed. `[::1]:8080` gives `[::1]`; `Example.com.:80` gives
/// `Example.com` (matching ignores case).
pub fn host_of(authority: &str) -> &str {
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => authority.get(..=end).unwrap_or(authority),
            None => authority,
        }
    } else {
        match authority.rfind(':') {
            Some(colon)
                if authority
                    .get(colon + 1..)
                    .is_some_and(|port| port.bytes().all(|b| b.is_ascii_digit())) =>
            {
                authority.get(..colon).unwrap_or(authority)
            }
            _ => authority,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, authority: &str) -> bool {
        HostPattern::parse(pattern)
            .unwrap()
            .matches(host_of(authority))
    }

    #[test]
    fn exact_ignores_case_port_and_trailing_dot() {
        assert!(m("api.example.com", "api.example.com"));
        assert!(m("api.example.com", "API.Example.com:8443"));
        assert!(m("API.example.com", "api.example.com."));
        assert!(!m("api.example.com", "api.example.com.evil"));
        assert!(!m("api.example.com", "xapi.example.com"));
    }

    #[test]
    fn suffix_needs_a_label_before_it() {
        assert!(m("*.example.com", "a.example.com"));
        assert!(m("*.example.com", "a.b.example.com:80"));
        assert!(!m("*.example.com", "example.com"));
        assert!(!m("*.example.com", ".example.com"));
        assert!(!m("*.example.com", "aexample.com"));
    }

    #[test]
    fn any_matches_everything() {
        assert!(m("*", ""));
        assert!(m("*", "whatever:1"));
    }

    #[test]
    fn ipv6_literals() {
        assert_eq!(host_of("[::1]:8080"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
        assert!(m("[::1]", "[::1]:10000"));
        assert_eq!(host_of("127.0.0.1:80"), "127.0.0.1");
    }

    #[test]
    fn refuses_malformed_patterns() {
        assert_eq!(HostPattern::parse(""), Err(HostPatternError::Empty));
        assert!(matches!(
            HostPattern::parse("a.*.com"),
            Err(HostPatternError::MisplacedWildcard(_))
        ));
        assert!(matches!(
            HostPattern::parse("*example.com"),
            Err(HostPatternError::MisplacedWildcard(_))
        ));
        assert!(matches!(
            HostPattern::parse("example.com:80"),
            Err(HostPatternError::HasPort(_))
        ));
        assert!(matches!(
            HostPattern::parse("exa mple.com"),
            Err(HostPatternError::BadCharacter(_))
        ));
        assert!(matches!(
            HostPattern::parse("a..b"),
            Err(HostPatternError::EmptyLabel(_))
        ));
        assert!(matches!(
            HostPattern::parse("*."),
            Err(HostPatternError::EmptyLabel(_))
        ));
    }
}
