//! The rollout engine's clock (unix milliseconds) in the forms the API
//! server writes: RFC 3339 with seconds (`metav1.Time`) or microseconds
//! (`metav1.MicroTime`).

use canary_analysis::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff;

fn instant(at: Timestamp) -> jiff::Timestamp {
    let millis = i64::try_from(at.millis()).unwrap_or(i64::MAX);
    jiff::Timestamp::from_millisecond(millis).unwrap_or(jiff::Timestamp::MAX)
}

/// `2026-01-01T10:00:00Z`: the form of `metav1.Time`, seconds only.
pub fn rfc3339(at: Timestamp) -> String {
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", instant(at))
        .unwrap_or_else(|_| instant(at).to_string())
}

/// A `MicroTime` (events, leases).
pub fn micro_time(at: Timestamp) -> MicroTime {
    MicroTime(instant(at))
}

/// Back from a `MicroTime` to unix milliseconds (0 before the epoch).
pub fn from_micro_time(time: &MicroTime) -> Timestamp {
    Timestamp::from_millis(u64::try_from(time.0.as_millisecond()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_the_api_server_writes_them() {
        let at = Timestamp::from_millis(1_767_261_600_250);
        assert_eq!(rfc3339(at), "2026-01-01T10:00:00Z");
        assert_eq!(
            serde_json::to_value(micro_time(at)).unwrap(),
            "2026-01-01T10:00:00.250000Z"
        );
        assert_eq!(from_micro_time(&micro_time(at)), at);
    }
}
