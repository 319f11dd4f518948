//! Keeping secrets out of what the controller says. A `secretKeyRef`
//! argument's value ends up in a metric's URL, header or body; whatever a
//! provider reports (an error naming the URL, an answer's excerpt) goes
//! into the status, the state file, the logs and the events. So:
//!
//! - URLs are shown with their query values and user info replaced
//!   ([`url`]), and header values are never shown;
//! - every secret value read is remembered ([`remember_secret`]) and
//!   replaced wherever it still appears in a provider's message
//!   ([`scrub`], applied to every measurement by [`crate::Sources`]).

use std::collections::BTreeSet;
use std::sync::RwLock;

use canary_analysis::MeasurementResult;

/// What a hidden value is shown as.
pub const REDACTED: &str = "REDACTED";

/// Secret values shorter than this are not scrubbed from text (they
/// would match ordinary words); URLs and headers still hide them.
const SHORTEST_SCRUBBED: usize = 4;

static SECRETS: RwLock<BTreeSet<String>> = RwLock::new(BTreeSet::new());

/// Remembers a secret value read for a rollout, so no message shows it.
pub fn remember_secret(value: &str) {
    let value = value.trim();
    if value.len() < SHORTEST_SCRUBBED {
        return;
    }
    if let Ok(mut secrets) = SECRETS.write() {
        secrets.insert(value.to_owned());
    }
}

/// `text` with every remembered secret value replaced.
pub fn scrub(text: &str) -> String {
    let Ok(secrets) = SECRETS.read() else {
        return text.to_owned();
    };
    // Longest first, so a secret containing another is replaced whole.
    let mut ordered: Vec<&String> = secrets.iter().collect();
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut text = text.to_owned();
    for secret in ordered {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), REDACTED);
        }
    }
    text
}

/// A measurement with every remembered secret value scrubbed from its
/// message.
pub fn scrub_result(result: MeasurementResult) -> MeasurementResult {
    match result {
        MeasurementResult::Error(message) => MeasurementResult::Error(scrub(&message)),
        MeasurementResult::NotEnoughData(message) => {
            MeasurementResult::NotEnoughData(scrub(&message))
        }
        value @ MeasurementResult::Value { .. } => value,
    }
}

/// `url` for people: user info and query values replaced, the fragment
/// dropped; scheme, host, port and path kept (and scrubbed).
pub fn url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(at) => before_query.split_at(at),
        None => (before_query, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{REDACTED}@{host}"),
        None => authority.to_owned(),
    };
    let mut shown = String::new();
    if let Some(scheme) = scheme {
        shown.push_str(scheme);
        shown.push_str("://");
    }
    shown.push_str(&authority);
    shown.push_str(path);
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}={REDACTED}"),
                None => pair.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    scrub(&shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_user_info_query_values_or_remembered_secrets() {
        assert_eq!(
            url("https://user:pw@metrics.example:8443/v1/check?key=abc&region=eu#top"),
            "https://REDACTED@metrics.example:8443/v1/check?key=REDACTED&region=REDACTED"
        );
        assert_eq!(url("http://127.0.0.1:9/ok"), "http://127.0.0.1:9/ok");
        remember_secret("path-secret-7f3a");
        assert_eq!(
            url("http://h/hooks/path-secret-7f3a/check"),
            "http://h/hooks/REDACTED/check"
        );
        assert_eq!(
            scrub("failed: echo path-secret-7f3a!"),
            "failed: echo REDACTED!"
        );
        remember_secret("ab");
        assert_eq!(scrub("ab cab"), "ab cab", "too short to scrub");
    }
}
