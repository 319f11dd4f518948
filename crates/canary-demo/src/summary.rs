//! The end of a demo: the seed's verdict line and the numbers behind it.

use std::collections::BTreeMap;

use serde::Serialize;

/// The seed's line for a canary that went live.
pub const PROMOTED_VERDICT: &str = "[ok] DEPLOYMENT SUCCESSFUL - NEW VERSION IS LIVE";
/// The seed's line for a canary that was rolled back.
pub const ROLLED_BACK_VERDICT: &str = "✅ ROLLBACK COMPLETE - PRODUCTION PROTECTED";

/// The split at the end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinalTraffic {
    /// Stable version.
    pub stable: String,
    /// Canary version, if any.
    pub canary: Option<String>,
    /// Canary weight in percent.
    pub canary_weight: f64,
}

/// The in-proxy guard's trip, when it tripped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardTrip {
    /// The filter's log line for the trip, with the evidence.
    pub evidence: Option<String>,
    /// Requests that failed from the fault's onset until the trip (the
    /// last request the canary served).
    pub failed_before: u64,
    /// Requests that failed after the trip.
    pub failed_after: u64,
}

/// What `--json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// `success`, `failure` or `aa`.
    pub scenario: String,
    /// `promoted` or `rolled_back` (or `stopped`).
    pub outcome: String,
    /// Whether the outcome is the one the scenario tells.
    pub as_expected: bool,
    /// The seed's verdict line.
    pub verdict: String,
    /// Wall-clock length of the run.
    pub duration_seconds: f64,
    /// Requests answered by each version.
    pub requests_by_version: BTreeMap<String, u64>,
    /// Requests sent.
    pub requests_total: u64,
    /// Requests that failed (5xx or no answer).
    pub failed_requests: u64,
    /// Failed requests sent after the rollback was in effect (failure
    /// scenario).
    pub failed_after_rollback: Option<u64>,
    /// From the fault's onset to the last request the canary answered
    /// (failure scenario).
    pub fault_to_rollback_ms: Option<u64>,
    /// The split at the end.
    pub final_traffic: FinalTraffic,
    /// Whether the canary upstream was stopped after the rollback.
    pub canary_scaled_down: bool,
    /// Steps of the rollout.
    pub steps: usize,
    /// The in-proxy guard's trip, if it tripped.
    pub guard_trip: Option<GuardTrip>,
    /// The judge's last measurement: its verdict, and for errors and
    /// latency the counts, the difference with its bounds and the evidence.
    pub judge: Option<String>,
}

impl Summary {
    /// The closing text for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("\n{}\n\n", self.verdict));
        out.push_str(&format!("  scenario     {}\n", self.scenario));
        out.push_str(&format!("  duration     {:.1} s\n", self.duration_seconds));
        let by_version: Vec<String> = self
            .requests_by_version
            .iter()
            .map(|(version, n)| format!("{version} {n}"))
            .collect();
        out.push_str(&format!(
            "  requests     {} ({})\n",
            self.requests_total,
            by_version.join(", ")
        ));
        out.push_str(&format!("  failed       {}\n", self.failed_requests));
        if let Some(trip) = &self.guard_trip {
            out.push_str(&format!(
                "  guard        tripped in Envoy: {} failed before the trip, {} after\n",
                trip.failed_before, trip.failed_after
            ));
            if let Some(evidence) = &trip.evidence {
                out.push_str(&format!("               {evidence}\n"));
            }
        }
        if let Some(ms) = self.fault_to_rollback_ms {
            out.push_str(&format!(
                "  fault → rollback in effect  {:.2} s\n",
                ms as f64 / 1000.0
            ));
        }
        if let Some(n) = self.failed_after_rollback {
            out.push_str(&format!("  failed after the rollback   {n}\n"));
        }
        let t = &self.final_traffic;
        match &t.canary {
            Some(canary) if t.canary_weight > 0.0 || self.outcome == "rolled_back" => {
                out.push_str(&format!(
                    "  final split  {} {:.0}%, {canary} {:.0}%\n",
                    t.stable,
                    100.0 - t.canary_weight,
                    t.canary_weight
                ))
            }
            _ => out.push_str(&format!("  final split  {} 100%\n", t.stable)),
        }
        if self.canary_scaled_down {
            out.push_str("  canary       scaled down; stable keeps serving\n");
        }
        if let Some(judge) = &self.judge {
            out.push_str(&format!("  judge        {judge}\n"));
        }
        out
    }
}
