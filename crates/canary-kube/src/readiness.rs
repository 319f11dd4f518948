//! The ready-pod ratio: pods whose `Ready` condition is `True` among the
//! live pods (not terminating, not Succeeded or Failed).
//!
//! A terminating pod is on its way out whatever its condition says, and a
//! finished pod (a completed Job-like pod, or one evicted to `Failed`) will
//! never serve again: counting either would let old pods mask a canary that
//! never became ready, or drag the ratio down for pods already replaced.
//! A pod without conditions (just scheduled) is live and not ready.

use k8s_openapi::api::core::v1::Pod;

use crate::reading::{NoData, Ratio, RatioReading};

/// How the selected pods stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodReadiness {
    /// Live pods whose `Ready` condition is `True`.
    pub ready: u64,
    /// Pods neither terminating nor finished: the ratio's denominator.
    pub live: u64,
    /// Pods left out because they are terminating, Succeeded or Failed.
    pub excluded: u64,
}

impl PodReadiness {
    /// `ready ÷ live` over `live` samples; no data when no pod is live.
    pub fn reading(&self) -> RatioReading {
        if self.live == 0 {
            return RatioReading::NoData(NoData::without_live_pods(self.excluded));
        }
        // Pod counts are far below 2^53, so the conversion is exact.
        RatioReading::Measured(Ratio {
            value: self.ready as f64 / self.live as f64,
            samples: self.live,
        })
    }
}

/// Counts ready, live and excluded pods.
pub fn pod_readiness(pods: &[Pod]) -> PodReadiness {
    pods.iter()
        .fold(PodReadiness::default(), |mut counts, pod| {
            if !is_live(pod) {
                counts.excluded += 1;
            } else {
                counts.live += 1;
                if is_ready(pod) {
                    counts.ready += 1;
                }
            }
            counts
        })
}

/// Whether the pod counts at all: not terminating (`deletionTimestamp`
/// unset) and not in phase `Succeeded` or `Failed`.
pub fn is_live(pod: &Pod) -> bool {
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let finished = pod
        .status
        .as_ref()
        .and_then(|status| status.phase.as_deref())
        .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
    !terminating && !finished
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::{pod, PodShape};

    fn reading(pods: &[Pod]) -> RatioReading {
        pod_readiness(pods).reading()
    }

    fn measured(value: f64, samples: u64) -> RatioReading {
        RatioReading::Measured(Ratio { value, samples })
    }

    #[test]
    fn ready_among_live_pods() {
        let pods = [
            pod("a", PodShape::ready()),
            pod("b", PodShape::ready()),
            pod("c", PodShape::not_ready()),
            pod("d", PodShape::ready()),
        ];
        assert_eq!(reading(&pods), measured(0.75, 4));
    }

    #[test]
    fn terminating_pods_are_left_out_even_when_ready() {
        let pods = [
            pod("old", PodShape::ready().terminating()),
            pod("new", PodShape::not_ready()),
        ];
        assert_eq!(
            pod_readiness(&pods),
            PodReadiness {
                ready: 0,
                live: 1,
                excluded: 1
            }
        );
        assert_eq!(reading(&pods), measured(0.0, 1));
    }

    #[test]
    fn finished_pods_are_left_out() {
        let pods = [
            pod("done", PodShape::ready().phase("Succeeded")),
            pod("evicted", PodShape::not_ready().phase("Failed")),
            pod("serving", PodShape::ready().phase("Running")),
            pod("starting", PodShape::no_conditions().phase("Pending")),
        ];
        assert_eq!(reading(&pods), measured(0.5, 2));
    }

    #[test]
    fn pods_without_conditions_or_status_are_live_and_not_ready() {
        let pods = [
            pod("scheduled", PodShape::no_conditions()),
            pod("bare", PodShape::no_status()),
            pod("ok", PodShape::ready()),
        ];
        assert_eq!(
            pod_readiness(&pods),
            PodReadiness {
                ready: 1,
                live: 3,
                excluded: 0
            }
        );
    }

    #[test]
    fn only_a_true_ready_condition_counts() {
        let pods = [
            pod("unknown", PodShape::condition("Ready", "Unknown")),
            pod("scheduled", PodShape::condition("PodScheduled", "True")),
            pod("containers", PodShape::condition("ContainersReady", "True")),
        ];
        assert_eq!(reading(&pods), measured(0.0, 3));
    }

    #[test]
    fn no_pods_is_no_data() {
        assert_eq!(reading(&[]), RatioReading::NoData(NoData::NoPods));
    }

    #[test]
    fn only_excluded_pods_is_no_data() {
        let pods = [
            pod("old", PodShape::ready().terminating()),
            pod("done", PodShape::ready().phase("Succeeded")),
        ];
        assert_eq!(
            reading(&pods),
            RatioReading::NoData(NoData::NoLivePods { excluded: 2 })
        );
    }
}
