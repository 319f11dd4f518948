//! Time as the engine sees it: a caller-supplied clock in unix
//! milliseconds, and Go-style duration strings (`30s`, `1m30s`, `500ms`)
//! as Argo Rollouts writes them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in time in milliseconds since the unix epoch. The engine never
/// reads a clock: every call that depends on time takes one of these.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From milliseconds since the unix epoch.
    pub const fn from_millis(ms: u64) -> Timestamp {
        Timestamp(ms)
    }

    /// From seconds since the unix epoch.
    pub const fn from_secs(secs: u64) -> Timestamp {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the unix epoch.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// This time plus `duration` (saturating; sub-millisecond parts dropped).
    pub fn plus(self, duration: Duration) -> Timestamp {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// Time elapsed from `earlier` to this time (zero if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// Parses a Go duration string as `time.ParseDuration` reads it: a
/// sequence of decimal numbers with units `ns`, `us`, `µs`, `ms`, `s`, `m`,
/// `h` (`1h30m`, `2.5s`, `0`). Negative durations are refused: no duration
/// in a rollout or template can be negative.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!("{text:?} is not a duration; write a number with a unit, e.g. `30s`, `5m`, `1h30m`")
    };
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(invalid());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut nanos: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(invalid()),
        };
        nanos = nanos
            .checked_add(scaled(number, scale).ok_or_else(invalid)?)
            .ok_or_else(invalid)?;
        rest = tail;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| invalid())?;
    // The remainder of a division by 10^9 fits in u32.
    let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| invalid())?;
    Ok(Duration::new(secs, sub))
}

/// `number` (decimal digits with at most one `.`) times `scale` nanoseconds.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, frac) = match number.split_once('.') {
        Some((whole, frac)) => (whole, frac),
        None => (number, ""),
    };
    if whole.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let mut total: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse::<u128>().ok()?.checked_mul(scale)?
    };
    let mut unit = scale;
    for digit in frac.bytes() {
        unit /= 10;
        total = total.checked_add(u128::from(digit - b'0') * unit)?;
    }
    Some(total)
}

/// Formats a duration the way people write them: `30s`, `1m30s`, `250ms`.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let (h, m, s, rest) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if rest > 0 && h == 0 && m == 0 && s == 0 {
        out.push_str(&format!("{rest}ms"));
    } else if rest > 0 {
        out.push_str(&format!("{s}.{rest:03}s"));
    } else if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(".5m"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_what_go_refuses() {
        for bad in ["", "30", "-5s", "5 s", "5x", "s", "1..5s", "."] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formats_like_people_write() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn timestamps_add_and_subtract() {
        let t = Timestamp::from_secs(10);
        assert_eq!(t.plus(Duration::from_secs(5)), Timestamp::from_secs(15));
        assert_eq!(Timestamp::from_secs(15).since(t), Duration::from_secs(5));
        assert_eq!(t.since(Timestamp::from_secs(15)), Duration::ZERO);
    }
}
