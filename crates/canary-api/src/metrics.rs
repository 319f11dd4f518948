//! The controller's own metrics, served on `/metrics` in Prometheus' text
//! format, per rollout: its phase, step and weights, whether the proxies
//! show its split, its conditions (drift, a held position, failing
//! pushes, a split not seen, the in-proxy guard), measurements by metric
//! and outcome, the last value of each metric, decisions by kind, and
//! pushes. Nothing in it is secret: names, numbers and verdicts only.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use canary_analysis::{MeasurementResult, MetricValue};
use canary_rollout::driver::{Report, Verification};
use canary_rollout::EventKind;

/// Every phase a report can be in.
const PHASES: [&str; 8] = [
    "Progressing",
    "Paused",
    "PausedInconclusive",
    "Held",
    "Promoting",
    "Promoted",
    "RollingBack",
    "Aborted",
];

/// Every condition a report can carry.
const CONDITIONS: [&str; 6] = [
    "Drift",
    "Held",
    "PushFailing",
    "SplitNotSeen",
    "GuardTripped",
    "Unverified",
];

#[derive(Debug, Default)]
struct Counts {
    measurements: BTreeMap<(String, &'static str), u64>,
    last_value: BTreeMap<String, f64>,
    decisions: BTreeMap<String, u64>,
    pushes_ok: u64,
    pushes_failed: u64,
    report: Report,
}

/// Counters the shells update and `/metrics` renders.
#[derive(Debug, Default)]
pub struct ControllerMetrics {
    rollouts: Mutex<BTreeMap<String, Counts>>,
    /// Failed reconciles (the operator), by rollout and error kind.
    failures: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl ControllerMetrics {
    fn with(&self, id: &str, f: impl FnOnce(&mut Counts)) {
        if let Ok(mut rollouts) = self.rollouts.lock() {
            f(rollouts.entry(id.to_owned()).or_default());
        }
    }

    /// A measurement of rollout `id` was taken.
    pub fn measured(&self, id: &str, metric: &str, result: &MeasurementResult) {
        self.with(id, |counts| {
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
        });
    }

    /// Rollout `id` decided something.
    pub fn decided(&self, id: &str, kind: EventKind) {
        self.with(id, |counts| {
            *counts.decisions.entry(format!("{kind:?}")).or_insert(0) += 1;
        });
    }

    /// A push of rollout `id` succeeded or failed.
    pub fn pushed(&self, id: &str, ok: bool) {
        self.with(id, |counts| {
            if ok {
                counts.pushes_ok += 1;
            } else {
                counts.pushes_failed += 1;
            }
        });
    }

    /// Rollout `id`'s latest report.
    pub fn observe(&self, id: &str, report: &Report) {
        self.with(id, |counts| counts.report = report.clone());
    }

    /// A reconcile of rollout `id` failed with an error of `kind`.
    pub fn failed(&self, id: &str, kind: &'static str) {
        if let Ok(mut failures) = self.failures.lock() {
            *failures.entry((id.to_owned(), kind)).or_insert(0) += 1;
        }
    }

    /// Rollout `id` is gone.
    pub fn forget(&self, id: &str) {
        if let Ok(mut rollouts) = self.rollouts.lock() {
            rollouts.remove(id);
        }
        if let Ok(mut failures) = self.failures.lock() {
            failures.retain(|(rollout, _), _| rollout != id);
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let Ok(rollouts) = self.rollouts.lock() else {
            return String::new();
        };
        let mut out = String::new();
        family(
            &mut out,
            "canary_rollout_phase",
            "gauge",
            "The rollout's phase (1 for the current one).",
        );
        for (id, counts) in rollouts.iter() {
            for phase in PHASES {
                let value = u8::from(counts.report.phase == phase);
                line(
                    &mut out,
                    "canary_rollout_phase",
                    id,
                    &[("phase", phase)],
                    value,
                );
            }
        }
        family(
            &mut out,
            "canary_rollout_step",
            "gauge",
            "Index of the current step.",
        );
        for (id, counts) in rollouts.iter() {
            line(&mut out, "canary_rollout_step", id, &[], counts.report.step);
        }
        family(
            &mut out,
            "canary_rollout_canary_weight_percent",
            "gauge",
            "Share of requests the rollout intends for the canary.",
        );
        for (id, counts) in rollouts.iter() {
            let weight = counts.report.traffic.canary_weight;
            line(
                &mut out,
                "canary_rollout_canary_weight_percent",
                id,
                &[],
                weight,
            );
        }
        family(
            &mut out,
            "canary_push_applied",
            "gauge",
            "Whether every proxy shows the intended split (1) or not (0).",
        );
        for (id, counts) in rollouts.iter() {
            if let Some(applied) = &counts.report.push.applied {
                let value = u8::from(applied.verification == Verification::InForce);
                line(&mut out, "canary_push_applied", id, &[], value);
            }
        }
        family(
            &mut out,
            "canary_rollout_condition",
            "gauge",
            "Conditions a person should know about (1 while present).",
        );
        for (id, counts) in rollouts.iter() {
            for kind in CONDITIONS {
                let value = u8::from(counts.report.conditions.iter().any(|c| c.kind == kind));
                line(
                    &mut out,
                    "canary_rollout_condition",
                    id,
                    &[("type", kind)],
                    value,
                );
            }
        }
        family(
            &mut out,
            "canary_measurements_total",
            "counter",
            "Measurements taken, by metric and outcome.",
        );
        for (id, counts) in rollouts.iter() {
            for ((metric, outcome), n) in &counts.measurements {
                let labels = [("metric", metric.as_str()), ("outcome", *outcome)];
                line(&mut out, "canary_measurements_total", id, &labels, n);
            }
        }
        family(
            &mut out,
            "canary_measurement_value",
            "gauge",
            "The last numeric value of each metric.",
        );
        for (id, counts) in rollouts.iter() {
            for (metric, value) in &counts.last_value {
                let labels = [("metric", metric.as_str())];
                line(
                    &mut out,
                    "canary_measurement_value",
                    id,
                    &labels,
                    float(*value),
                );
            }
        }
        family(
            &mut out,
            "canary_decisions_total",
            "counter",
            "Decisions, by kind (drift, guard trips and splits not seen among them).",
        );
        for (id, counts) in rollouts.iter() {
            for (kind, n) in &counts.decisions {
                line(&mut out, "canary_decisions_total", id, &[("kind", kind)], n);
            }
        }
        family(
            &mut out,
            "canary_pushes_total",
            "counter",
            "Configuration pushes, by result.",
        );
        for (id, counts) in rollouts.iter() {
            line(
                &mut out,
                "canary_pushes_total",
                id,
                &[("result", "ok")],
                counts.pushes_ok,
            );
            let failed = counts.pushes_failed;
            line(
                &mut out,
                "canary_pushes_total",
                id,
                &[("result", "failed")],
                failed,
            );
        }
        if let Ok(failures) = self.failures.lock() {
            if !failures.is_empty() {
                family(
                    &mut out,
                    "canary_reconcile_errors_total",
                    "counter",
                    "Failed reconciles of the operator, by error kind.",
                );
            }
            for ((id, kind), n) in failures.iter() {
                line(
                    &mut out,
                    "canary_reconcile_errors_total",
                    id,
                    &[("kind", kind)],
                    n,
                );
            }
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn line(
    out: &mut String,
    name: &str,
    rollout: &str,
    labels: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    let _ = write!(out, "{name}{{rollout=\"{}\"", escape(rollout));
    for (label, text) in labels {
        let _ = write!(out, ",{label}=\"{}\"", escape(text));
    }
    let _ = writeln!(out, "}} {value}");
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn float(value: f64) -> String {
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
    use canary_rollout::driver::{ConditionReport, ProxiesReport};

    #[test]
    fn renders_each_rollout_with_its_phase_conditions_and_counters() {
        let metrics = ControllerMetrics::default();
        metrics.measured("web", "error-rate", &MeasurementResult::sampled(0.25, 40));
        metrics.measured("web", "error-rate", &MeasurementResult::error("down"));
        metrics.decided("web", EventKind::DriftDown);
        metrics.pushed("web", true);
        metrics.failed("web", "api");
        let mut report = Report {
            rollout: "web".into(),
            phase: "Aborted".into(),
            ..Report::default()
        };
        report.push.applied = Some(ProxiesReport::default());
        report.conditions.push(ConditionReport {
            kind: "Drift".into(),
            message: String::new(),
        });
        metrics.observe("web", &report);
        let text = metrics.render();
        for expected in [
            "canary_rollout_phase{rollout=\"web\",phase=\"Aborted\"} 1",
            "canary_rollout_phase{rollout=\"web\",phase=\"Promoted\"} 0",
            "canary_measurements_total{rollout=\"web\",metric=\"error-rate\",outcome=\"error\"} 1",
            "canary_measurement_value{rollout=\"web\",metric=\"error-rate\"} 0.25",
            "canary_decisions_total{rollout=\"web\",kind=\"DriftDown\"} 1",
            "canary_rollout_condition{rollout=\"web\",type=\"Drift\"} 1",
            "canary_pushes_total{rollout=\"web\",result=\"ok\"} 1",
            "canary_push_applied{rollout=\"web\"} 0",
            "canary_reconcile_errors_total{rollout=\"web\",kind=\"api\"} 1",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
        metrics.forget("web");
        assert!(!metrics.render().contains("rollout=\"web\""));
    }

    /// `/metrics` is served without a token (docs/api-auth.md): it must
    /// never carry a provider's or a person's text.
    #[test]
    fn no_message_reaches_the_open_metrics() {
        let metrics = ControllerMetrics::default();
        let text = "http://user:hunter22@metrics.example/?key=hunter22";
        metrics.measured("web", "check", &MeasurementResult::error(text));
        metrics.measured(
            "web",
            "check",
            &MeasurementResult::NotEnoughData(text.into()),
        );
        let mut report = Report {
            rollout: "web".into(),
            phase: "Paused".into(),
            message: Some(text.into()),
            ..Report::default()
        };
        report.conditions.push(ConditionReport {
            kind: "Drift".into(),
            message: text.into(),
        });
        report.push.last_error = Some(text.into());
        metrics.observe("web", &report);
        let rendered = metrics.render();
        assert!(!rendered.contains("hunter22"), "{rendered}");
    }
}
