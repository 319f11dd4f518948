//! What the person running the demo sees: on a terminal, a live view
//! redrawn four times a second (step and timer, weights as bars, request
//! rate, error rate and p99 latency per version as the clients see them,
//! every analysis measurement with a pass or fail mark, and the decisions
//! as they happen); otherwise plain progress lines, one per decision.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use canary_lab::load::{Outcome, Record};
use canary_rollout::driver::{remaining, Report as StatusView};

/// Per-version traffic over the last few seconds, as the clients saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionTraffic {
    /// Requests per second.
    pub rate: f64,
    /// Share of requests that failed.
    pub error_rate: f64,
    /// 99th percentile latency.
    pub p99: Option<Duration>,
}

/// Traffic by version (`v1`, `v2`, and `none` for requests no version
/// answered) over the `window` before `now` (offsets from the load's start).
pub fn traffic_by_version(
    records: &[Record],
    now: Duration,
    window: Duration,
) -> BTreeMap<String, VersionTraffic> {
    let from = now.saturating_sub(window);
    let mut groups: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for record in records
        .iter()
        .filter(|r| r.sent_at >= from && r.sent_at < now)
    {
        let version = record.served_by().unwrap_or("none").to_owned();
        groups.entry(version).or_default().push(record);
    }
    let seconds = window.as_secs_f64().max(0.001);
    groups
        .into_iter()
        .map(|(version, records)| {
            let failed = records.iter().filter(|r| r.failed()).count();
            let mut latencies: Vec<Duration> = records
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Answered { .. }))
                .map(|r| r.latency)
                .collect();
            latencies.sort();
            let p99 = (!latencies.is_empty())
                .then(|| latencies[((latencies.len() - 1) as f64 * 0.99).round() as usize]);
            let traffic = VersionTraffic {
                rate: records.len() as f64 / seconds,
                error_rate: failed as f64 / records.len() as f64,
                p99,
            };
            (version, traffic)
        })
        .collect()
}

/// The in-proxy guard as the demo's Envoy shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuardView {
    /// Per Envoy (the demo runs one).
    pub proxies: Vec<ProxyGuard>,
    /// The filter's log line for the trip, with the evidence.
    pub evidence: Option<String>,
}

/// One Envoy's guard for the canary of route `app`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyGuard {
    /// Which Envoy.
    pub proxy: String,
    /// The canary version.
    pub canary: String,
    /// Whether the guard has tripped (`guard_tripped`).
    pub tripped: bool,
    /// The canary's share in force (`effective_weight_bp`), percent.
    pub effective_percent: f64,
    /// The canary's configured share (`weight_bp`), percent.
    pub configured_percent: f64,
}

impl GuardView {
    /// Whether any Envoy's guard has tripped.
    pub fn tripped(&self) -> bool {
        self.proxies.iter().any(|p| p.tripped)
    }
}

/// The guard's part of the live view.
fn guard_lines(out: &mut String, guard: &GuardView) {
    let (dim, green, red, bold, reset) = ("\x1b[2m", "\x1b[32m", "\x1b[31m", "\x1b[1m", "\x1b[0m");
    for p in &guard.proxies {
        if p.tripped {
            let _ = writeln!(
                out,
                "{dim}guard{reset}  {red}{bold}✘ TRIPPED{reset} in {}: canary {} gets {:.2}% (configured {:.2}%)",
                p.proxy, p.canary, p.effective_percent, p.configured_percent
            );
        } else {
            let _ = writeln!(
                out,
                "{dim}guard{reset}  {green}●{reset} watching in {}: canary {} gets {:.2}%",
                p.proxy, p.canary, p.effective_percent
            );
        }
    }
    if let Some(evidence) = &guard.evidence {
        for line in wrap(evidence, 64) {
            let _ = writeln!(out, "       {red}{line}{reset}");
        }
    }
}

/// `text` in lines of at most `width` characters, broken at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Something the demo itself did (the fault, the scale-down), shown among
/// the decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// When (unix ms).
    pub at: u64,
    /// What.
    pub text: String,
}

/// One frame of the live view.
pub fn frame(
    title: &str,
    elapsed: Duration,
    status: &StatusView,
    traffic: &BTreeMap<String, VersionTraffic>,
    guard: &GuardView,
    notes: &[Note],
) -> String {
    let mut out = String::new();
    let bold = "\x1b[1m";
    let dim = "\x1b[2m";
    let green = "\x1b[32m";
    let red = "\x1b[31m";
    let yellow = "\x1b[33m";
    let reset = "\x1b[0m";
    let _ = writeln!(
        out,
        "{bold}canary demo{reset} — {title}{:>width$}",
        clock(elapsed),
        width = 20
    );
    let _ = writeln!(out, "{dim}{}{reset}", "─".repeat(72));
    let step = match &status.current_step {
        Some(step) => {
            let left = status
                .paused_until
                .and_then(|until| remaining(until, status.updated_at))
                .map(|left| format!(" ({left} left)"))
                .unwrap_or_default();
            format!("step {}/{}  {step}{left}", status.step + 1, status.steps)
        }
        None if status.steps > 0 => format!("all {} steps done", status.steps),
        None => "starting".to_owned(),
    };
    let phase_color = match status.phase.as_str() {
        "Promoted" => green,
        "Aborted" => red,
        "Paused" | "PausedInconclusive" => yellow,
        _ => "",
    };
    let _ = writeln!(
        out,
        "{step:<52}phase {phase_color}{bold}{}{reset}",
        status.phase
    );
    let t = &status.traffic;
    let _ = writeln!(
        out,
        "stable {:<5} {} {:>6.2}%",
        t.stable,
        bar(t.stable_weight, green),
        t.stable_weight
    );
    let _ = writeln!(
        out,
        "canary {:<5} {} {:>6.2}%",
        t.canary.as_deref().unwrap_or("-"),
        bar(t.canary_weight, yellow),
        t.canary_weight
    );
    if let Some(applied) = &status.push.applied {
        let mark = if applied.confirmed {
            format!("{green}✔{reset}")
        } else {
            format!("{yellow}…{reset}")
        };
        let _ = writeln!(out, "{dim}envoy{reset}  {mark} {}", applied.describe());
    }
    guard_lines(&mut out, guard);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{bold}{:<10}{:>10}{:>10}{:>12}{reset}   (clients' view, last 3 s)",
        "version", "req/s", "errors", "p99"
    );
    for (version, v) in traffic {
        let errors = format!("{:.1}%", v.error_rate * 100.0);
        let colour = if v.error_rate > 0.0 { red } else { "" };
        let p99 = v
            .p99
            .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{version:<10}{:>10.1}{colour}{errors:>10}{reset}{p99:>12}",
            v.rate
        );
    }
    for analysis in &status.analyses {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{bold}analysis {}{reset}: {}",
            analysis.slot, analysis.phase
        );
        for metric in &analysis.metrics {
            let marks: String = metric
                .measurements
                .iter()
                .rev()
                .take(8)
                .rev()
                .map(|m| match m.phase.as_str() {
                    "Successful" => format!("{green}✔{reset}"),
                    "Failed" => format!("{red}✘{reset}"),
                    "Error" => format!("{red}!{reset}"),
                    "Inconclusive" => format!("{yellow}?{reset}"),
                    _ => format!("{dim}·{reset}"),
                })
                .collect::<Vec<_>>()
                .join(" ");
            let last = metric.measurements.last();
            let value = last
                .and_then(|m| m.value.clone())
                .unwrap_or_else(|| "-".into());
            // A long value (the judge's evidence) goes below, wrapped.
            let (short, long) = if value.chars().count() > 12 {
                ("", Some(value.as_str()))
            } else {
                (value.as_str(), None)
            };
            let _ = writeln!(
                out,
                "  {:<14} {:<12} {short:<12} {marks}",
                metric.name, metric.phase
            );
            for line in long.map(|text| wrap(text, 68)).unwrap_or_default() {
                let _ = writeln!(out, "    {dim}{line}{reset}");
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{bold}decisions{reset}");
    let start = status
        .events
        .first()
        .map(|e| e.at)
        .unwrap_or(status.updated_at);
    let mut lines: Vec<(u64, String, String, &str)> = status
        .events
        .iter()
        .filter(|e| e.kind != "Measured")
        .map(|e| {
            let colour = match e.kind.as_str() {
                "Aborted" | "AnalysisFailed" => red,
                "Promoted" | "AnalysisSucceeded" => green,
                _ => "",
            };
            (e.at, e.kind.clone(), e.reason.clone(), colour)
        })
        .collect();
    lines.extend(
        notes
            .iter()
            .map(|n| (n.at, "demo".to_owned(), n.text.clone(), yellow)),
    );
    lines.sort_by_key(|line| line.0);
    for (at, kind, reason, colour) in &lines[lines.len().saturating_sub(9)..] {
        let at = Duration::from_millis(at.saturating_sub(start));
        let _ = writeln!(
            out,
            "  {dim}{}{reset}  {colour}{kind:<18}{reset} {reason}",
            clock(at)
        );
    }
    out
}

fn bar(percent: f64, colour: &str) -> String {
    let width = 40usize;
    let filled = ((percent / 100.0) * width as f64)
        .round()
        .clamp(0.0, width as f64) as usize;
    format!(
        "{colour}{}\x1b[0m\x1b[2m{}\x1b[0m",
        "█".repeat(filled),
        "░".repeat(width - filled)
    )
}

/// `mm:ss.s`.
pub fn clock(elapsed: Duration) -> String {
    let total = elapsed.as_secs_f64();
    let minutes = (total / 60.0).floor();
    format!("{:02}:{:04.1}", minutes as u64, total - minutes * 60.0)
}

/// The plain lines for events not printed yet (when stdout is not a
/// terminal).
pub fn progress_lines(status: &StatusView, printed: &mut usize, elapsed: Duration) -> Vec<String> {
    let mut lines = Vec::new();
    let events = &status.events;
    if *printed > events.len() {
        *printed = 0;
    }
    for event in &events[*printed..] {
        lines.push(format!(
            "[{}] {:<18} {}",
            clock(elapsed),
            event.kind,
            event.reason
        ));
    }
    *printed = events.len();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at_ms: u64, version: &str, status: u16, latency_ms: u64) -> Record {
        Record {
            sent_at: Duration::from_millis(at_ms),
            latency: Duration::from_millis(latency_ms),
            outcome: Outcome::Answered {
                status,
                served_by: Some(version.to_owned()),
            },
        }
    }

    #[test]
    fn traffic_is_counted_per_version_in_the_window() {
        let records = vec![
            record(100, "v1", 200, 2),
            record(1_100, "v1", 200, 4),
            record(1_200, "v2", 503, 9),
            record(1_300, "v2", 200, 1),
            record(5_000, "v1", 200, 2),
        ];
        let traffic = traffic_by_version(
            &records,
            Duration::from_millis(3_000),
            Duration::from_secs(2),
        );
        assert_eq!(traffic["v1"].rate, 0.5);
        assert_eq!(traffic["v2"].error_rate, 0.5);
        assert_eq!(traffic["v2"].p99, Some(Duration::from_millis(9)));
        assert!(!traffic.contains_key("none"));
    }

    #[test]
    fn the_frame_shows_the_guard_and_its_evidence() {
        let mut guard = GuardView {
            proxies: vec![ProxyGuard {
                proxy: "envoy".into(),
                canary: "v2".into(),
                tripped: false,
                effective_percent: 25.0,
                configured_percent: 25.0,
            }],
            evidence: None,
        };
        let frame_of = |guard: &GuardView| {
            frame(
                "t",
                Duration::ZERO,
                &StatusView::default(),
                &BTreeMap::new(),
                guard,
                &[],
            )
        };
        assert!(frame_of(&guard).contains("watching in envoy: canary v2 gets 25.00%"));
        guard.proxies[0].tripped = true;
        guard.proxies[0].effective_percent = 0.0;
        guard.evidence = Some(format!(
            "guard tripped on route \"app\": {}",
            "evidence ".repeat(20)
        ));
        let frame = frame_of(&guard);
        assert!(
            frame.contains("TRIPPED\x1b[0m in envoy: canary v2 gets 0.00% (configured 25.00%)"),
            "{frame}"
        );
        assert!(frame.contains("guard tripped on route \"app\""), "{frame}");
        assert!(wrap(&"word ".repeat(40), 64)
            .iter()
            .all(|l| l.chars().count() <= 64));
    }

    #[test]
    fn clock_format() {
        assert_eq!(clock(Duration::from_millis(61_500)), "01:01.5");
        assert_eq!(clock(Duration::ZERO), "00:00.0");
    }

    #[test]
    fn the_frame_says_whether_envoy_applies_the_split() {
        use canary_rollout::driver::{ProxiesReport as AppliedView, Verification};
        let mut status = StatusView::default();
        let frame_of = |status: &StatusView| {
            frame(
                "t",
                Duration::ZERO,
                status,
                &BTreeMap::new(),
                &GuardView::default(),
                &[],
            )
        };
        assert!(!frame_of(&status).contains("applied"));
        status.push.applied = Some(AppliedView {
            differs: Some("route app: 1 of 1 Envoys send 0% to v2, pushed 10%".into()),
            ..AppliedView::default()
        });
        assert!(frame_of(&status).contains("not applied yet: route app: 1 of 1"));
        status.push.applied = Some(AppliedView {
            confirmed: true,
            verification: Verification::InForce,
            after_ms: Some(12),
            ..AppliedView::default()
        });
        assert!(frame_of(&status).contains("applied by every Envoy, 12 ms after the push"));
    }
}
