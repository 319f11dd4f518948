//! The controller's own metrics, served on `/metrics` in Prometheus' text
//! format: the rollout's phase, step and weights, measurements by metric
//! and verdict, the last value of each metric, decisions by kind, and
//! pushes.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use canary_analysis::{MeasurementResult, MetricValue};
use canary_rollout::EventKind;

use crate::status::StatusView;

#[derive(Debug, Default)]
struct Counts {
    measurements: BTreeMap<(String, &'static str), u64>,
    last_value: BTreeMap<String, f64>,
    decisions: BTreeMap<String, u64>,
    pushes_ok: u64,
    pushes_failed: u64,
    status: StatusView,
}

/// Counters the loop updates and `/metrics` renders.
#[derive(Debug, Default)]
pub struct ControllerMetrics {
    counts: Mutex<Counts>,
}

impl ControllerMetrics {
    /// A measurement was taken.
    pub fn measured(&self, metric: &str, result: &MeasurementResult) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        let outcome = match result {
            MeasurementResult::Value { .. } => "value",
            MeasurementResult::Error(_) => "error",
            MeasurementResult::NotEnoughData(_) => "not_enough_data",
        };
        *counts
            .measurements
            .entry((metric.to_owned(), outcome))
            .or_insert(0) += 1;
        if let MeasurementResult::Value {
            value: MetricValue::Number(n),
            ..
        } = result
        {
            counts.last_value.insert(metric.to_owned(), *n);
        }
    }

    /// The state machine decided something.
    pub fn decided(&self, kind: EventKind) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.decisions.entry(format!("{kind:?}")).or_insert(0) += 1;
        }
    }

    /// A push succeeded or failed.
    pub fn pushed(&self, ok: bool) {
        if let Ok(mut counts) = self.counts.lock() {
            if ok {
                counts.pushes_ok += 1;
            } else {
                counts.pushes_failed += 1;
            }
        }
    }

    /// The status changed.
    pub fn observe(&self, status: &StatusView) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.status = status.clone();
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let Ok(counts) = self.counts.lock() else {
            return String::new();
        };
        let mut out = String::new();
        let status = &counts.status;
        let rollout = escape(&status.rollout);
        let _ = writeln!(
            out,
            "# HELP canary_rollout_phase The rollout's phase (1 for the current one)."
        );
        let _ = writeln!(out, "# TYPE canary_rollout_phase gauge");
        for phase in [
            "Progressing",
            "Paused",
            "PausedInconclusive",
            "Promoted",
            "Aborted",
        ] {
            let value = u8::from(status.phase == phase);
            let _ = writeln!(
                out,
                "canary_rollout_phase{{rollout=\"{rollout}\",phase=\"{phase}\"}} {value}"
            );
        }
        let _ = writeln!(out, "# HELP canary_rollout_step Index of the current step.");
        let _ = writeln!(out, "# TYPE canary_rollout_step gauge");
        let _ = writeln!(
            out,
            "canary_rollout_step{{rollout=\"{rollout}\"}} {}",
            status.step
        );
        let _ = writeln!(
            out,
            "# HELP canary_rollout_canary_weight_percent Share of requests sent to the canary."
        );
        let _ = writeln!(out, "# TYPE canary_rollout_canary_weight_percent gauge");
        let _ = writeln!(
            out,
            "canary_rollout_canary_weight_percent{{rollout=\"{rollout}\"}} {}",
            status.traffic.canary_weight
        );
        let _ = writeln!(
            out,
            "# HELP canary_measurements_total Measurements taken, by metric and outcome."
        );
        let _ = writeln!(out, "# TYPE canary_measurements_total counter");
        for ((metric, outcome), n) in &counts.measurements {
            let _ = writeln!(
                out,
                "canary_measurements_total{{rollout=\"{rollout}\",metric=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(metric)
            );
        }
        let _ = writeln!(
            out,
            "# HELP canary_measurement_value The last numeric value of each metric."
        );
        let _ = writeln!(out, "# TYPE canary_measurement_value gauge");
        for (metric, value) in &counts.last_value {
            let _ = writeln!(
                out,
                "canary_measurement_value{{rollout=\"{rollout}\",metric=\"{}\"}} {}",
                escape(metric),
                format_float(*value)
            );
        }
        let _ = writeln!(
            out,
            "# HELP canary_decisions_total Decisions of the state machine, by kind."
        );
        let _ = writeln!(out, "# TYPE canary_decisions_total counter");
        for (kind, n) in &counts.decisions {
            let _ = writeln!(
                out,
                "canary_decisions_total{{rollout=\"{rollout}\",kind=\"{kind}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP canary_pushes_total Configuration pushes, by result."
        );
        let _ = writeln!(out, "# TYPE canary_pushes_total counter");
        let _ = writeln!(
            out,
            "canary_pushes_total{{rollout=\"{rollout}\",result=\"ok\"}} {}",
            counts.pushes_ok
        );
        let _ = writeln!(
            out,
            "canary_pushes_total{{rollout=\"{rollout}\",result=\"failed\"}} {}",
            counts.pushes_failed
        );
        if let Some(applied) = &status.push.applied {
            let _ = writeln!(
                out,
                "# HELP canary_push_applied Whether every Envoy shows the last push in effect (1) or not yet (0)."
            );
            let _ = writeln!(out, "# TYPE canary_push_applied gauge");
            let _ = writeln!(
                out,
                "canary_push_applied{{rollout=\"{rollout}\"}} {}",
                u8::from(applied.confirmed)
            );
        }
        out
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_phase() {
        let metrics = ControllerMetrics::default();
        metrics.measured("error-rate", &MeasurementResult::sampled(0.25, 40));
        metrics.measured("error-rate", &MeasurementResult::error("down"));
        metrics.decided(EventKind::Aborted);
        metrics.pushed(true);
        let mut status = StatusView {
            rollout: "web".into(),
            phase: "Aborted".into(),
            ..StatusView::default()
        };
        status.push.applied = Some(crate::status::AppliedView::default());
        metrics.observe(&status);
        let text = metrics.render();
        assert!(
            text.contains("canary_rollout_phase{rollout=\"web\",phase=\"Aborted\"} 1"),
            "{text}"
        );
        assert!(text.contains("canary_rollout_phase{rollout=\"web\",phase=\"Promoted\"} 0"));
        assert!(text.contains(
            "canary_measurements_total{rollout=\"web\",metric=\"error-rate\",outcome=\"error\"} 1"
        ));
        assert!(
            text.contains("canary_measurement_value{rollout=\"web\",metric=\"error-rate\"} 0.25")
        );
        assert!(text.contains("canary_decisions_total{rollout=\"web\",kind=\"Aborted\"} 1"));
        assert!(text.contains("canary_pushes_total{rollout=\"web\",result=\"ok\"} 1"));
        assert!(text.contains("canary_push_applied{rollout=\"web\"} 0"));
    }
}
