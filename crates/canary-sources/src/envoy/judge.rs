//! `provider.judge`: the judge fed from the filter's stats.
//!
//! Each measurement adds one look: what each version's `rq_total`,
//! `rq_error` and `rq_latency_us` gained since the counters the previous
//! measurement read, which it hands on in its carry together with the
//! judge's evidence. Only time under the split in force is fed: when the
//! previous reading is older than the moment the split was seen in force
//! (a new step, a split no longer seen, a controller restart), the
//! interval between is skipped and the look starts from the first scrape
//! after that moment. The evidence itself is never dropped: it goes on
//! over measurements, steps and restarts (`docs/judge.md`).

use canary_analysis::provider::JudgeQuery;
use canary_analysis::{MeasurementResult, MetricValue, Timestamp};
use canary_config::stats_names::Metric;
use canary_judge::{Assessment, Buckets, Comparison, Increment, Judge, Look, Verdict};
use canary_rollout::driver::{Carry, Measured};
use canary_rollout::ports::Versions;
use serde::{Deserialize, Serialize};

use super::stats::{delta, Histogram, Snapshot};
use super::{EnvoySource, ScrapeError};

/// What a judge metric hands from one measurement to the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JudgeCarry {
    /// The route entry and versions it judges; another is judged anew.
    route: String,
    stable: String,
    canary: String,
    /// Latency bounds below this (µs) are not fed.
    latency_floor_micros: f64,
    /// The evidence so far.
    judge: Judge,
    /// When the counters below were read.
    read_at: Timestamp,
    /// Stable's counters then (summed over every Envoy).
    stable_reading: Reading,
    /// The canary's counters then.
    canary_reading: Reading,
}

/// One version's cumulative counters at one scrape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Reading {
    requests: u64,
    errors: u64,
    /// `rq_latency_us` as (upper bound, cumulative count).
    latency: Vec<(f64, u64)>,
}

impl Reading {
    fn of(snapshot: &Snapshot, route: &str, version: &str) -> Reading {
        Reading {
            requests: snapshot.counter(route, version, Metric::Requests),
            errors: snapshot.counter(route, version, Metric::Errors),
            latency: snapshot
                .latency
                .get(&(route.to_owned(), version.to_owned()))
                .map(|h| h.buckets.clone())
                .unwrap_or_default(),
        }
    }

    /// What this reading gained since `earlier` (a counter that went down
    /// means an Envoy restarted: the later value is the whole gain), with
    /// latency bounds below `floor_micros` left out.
    fn since(&self, earlier: &Reading, floor_micros: f64) -> Increment {
        let now = Histogram {
            buckets: self.latency.clone(),
        };
        let then = Histogram {
            buckets: earlier.latency.clone(),
        };
        let mut gained = now.since(Some(&then));
        let count = gained.count();
        gained.buckets.retain(|(bound, _)| *bound >= floor_micros);
        Increment {
            requests: delta(self.requests, earlier.requests),
            errors: delta(self.errors, earlier.errors),
            latency: (count > 0 && !gained.buckets.is_empty()).then(|| Buckets {
                bounds: gained.buckets.iter().map(|b| b.0).collect(),
                cumulative: gained.buckets.iter().map(|b| b.1).collect(),
                count,
            }),
        }
    }
}

impl EnvoySource {
    /// One look of the judge for `query`, going on from `carry`.
    pub async fn judge(
        &self,
        query: &JudgeQuery,
        names: Versions<'_>,
        now: Timestamp,
        in_force_since: Option<Timestamp>,
        carry: Option<&Carry>,
    ) -> Measured {
        if self.endpoints.is_empty() {
            return MeasurementResult::error(ScrapeError::NoEndpoints.to_string()).into();
        }
        let current = match self.scrape_at(now).await.total() {
            Ok(snapshot) => snapshot,
            Err(err) => return MeasurementResult::error(err.to_string()).into(),
        };
        look(
            query,
            names,
            now,
            in_force_since,
            carry,
            &current,
            |floor| self.baseline(floor, floor, now).map(|(_, scrape)| scrape),
        )
    }
}

/// One look at `current`, going on from `carry`; `first_since(floor)` is the
/// first scrape taken at or after `floor` (and before now), if any.
fn look(
    query: &JudgeQuery,
    names: Versions<'_>,
    now: Timestamp,
    in_force_since: Option<Timestamp>,
    carry: Option<&Carry>,
    current: &Snapshot,
    first_since: impl FnOnce(Timestamp) -> Option<Result<Snapshot, ScrapeError>>,
) -> Measured {
    let carried = carry
        .and_then(|value| serde_json::from_value::<JudgeCarry>(value.clone()).ok())
        .filter(|c| {
            c.route == query.route
                && c.stable == names.stable
                && c.canary == names.canary
                && *c.judge.settings() == query.settings
                && c.latency_floor_micros == floor_micros(query)
        });
    let (mut judge, previous) = match carried {
        Some(c) => (
            c.judge,
            Some((c.read_at, c.stable_reading, c.canary_reading)),
        ),
        None => match Judge::new(query.settings) {
            Ok(judge) => (judge, None),
            Err(err) => return MeasurementResult::error(err.to_string()).into(),
        },
    };
    let route = &query.route;
    let stable_now = Reading::of(current, route, names.stable);
    let canary_now = Reading::of(current, route, names.canary);
    let Some(floor) = in_force_since else {
        let hand_on = hand_on(query, names, &judge, now, &stable_now, &canary_now);
        return Measured {
            result: MeasurementResult::not_enough_data(
                "the split is not seen in force by every proxy yet; the judge keeps its evidence",
            ),
            carry: hand_on,
        };
    };
    // Where this look starts: the previous reading if it was taken
    // under the split in force, else the first scrape since.
    let base = match previous {
        Some((at, stable, canary)) if at >= floor => Some((stable, canary)),
        _ => match first_since(floor) {
            Some(Ok(snapshot)) => Some((
                Reading::of(&snapshot, route, names.stable),
                Reading::of(&snapshot, route, names.canary),
            )),
            Some(Err(err)) => return MeasurementResult::error(err.to_string()).into(),
            None => None,
        },
    };
    if let Some((stable_then, canary_then)) = base {
        let look = Look {
            stable: stable_now.since(&stable_then, floor_micros(query)),
            canary: canary_now.since(&canary_then, floor_micros(query)),
        };
        if let Err(err) = judge.observe(&look) {
            // The carry is not advanced: the next look meets the same
            // input, and errors in a row end toward stable.
            return MeasurementResult::error(format!("the judge refused the look: {err}")).into();
        }
    }
    let result = verdict_result(query, names, &judge.assess());
    Measured {
        result,
        carry: hand_on(query, names, &judge, now, &stable_now, &canary_now),
    }
}

fn floor_micros(query: &JudgeQuery) -> f64 {
    query.latency_floor.as_secs_f64() * 1e6
}

fn hand_on(
    query: &JudgeQuery,
    names: Versions<'_>,
    judge: &Judge,
    now: Timestamp,
    stable: &Reading,
    canary: &Reading,
) -> Option<Carry> {
    serde_json::to_value(JudgeCarry {
        route: query.route.clone(),
        latency_floor_micros: floor_micros(query),
        stable: names.stable.to_owned(),
        canary: names.canary.to_owned(),
        judge: judge.clone(),
        read_at: now,
        stable_reading: stable.clone(),
        canary_reading: canary.clone(),
    })
    .ok()
}

/// The measurement for an assessment: a value the metric's implied
/// condition (`result.verdict == "Failed"`) decides, or not enough data
/// while the canary has had no request since the split was in force, or
/// while a gate's judge is undecided.
fn verdict_result(
    query: &JudgeQuery,
    names: Versions<'_>,
    assessment: &Assessment,
) -> MeasurementResult {
    let errors = describe(&assessment.errors, "errors", None);
    let latency = match &assessment.latency.deciding {
        Some(bound) => describe(
            &bound.comparison,
            "requests slower than",
            Some(bound.bound_micros),
        ),
        None => "no latency histogram yet (it reaches the admin endpoint at Envoy's stats flush)"
            .to_owned(),
    };
    if assessment.errors.canary.trials == 0 {
        return MeasurementResult::not_enough_data(format!(
            "no request for {} on route {} since the split was in force; {errors}",
            names.canary, query.route
        ));
    }
    if assessment.verdict == Verdict::NotEnoughData && query.gate {
        return MeasurementResult::not_enough_data(format!(
            "the judge is not decided yet: {errors}; latency: {latency}"
        ));
    }
    let verdict = match assessment.verdict {
        Verdict::Failed => "Failed",
        Verdict::Successful => "Successful",
        Verdict::NotEnoughData => "NotEnoughData",
    };
    let map = [
        ("verdict", MetricValue::String(verdict.to_owned())),
        ("errors", MetricValue::String(errors)),
        ("latency", MetricValue::String(latency)),
        ("looks", MetricValue::Number(assessment.looks as f64)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    MeasurementResult::sampled(MetricValue::Map(map), assessment.errors.canary.trials)
}

/// One comparison for people: counts, the difference with its bounds, and
/// both e-values with the value each needs.
fn describe(comparison: &Comparison, what: &str, bound_micros: Option<f64>) -> String {
    let share = |t: canary_judge::Tally| {
        let rate = if t.trials > 0 {
            100.0 * t.events as f64 / t.trials as f64
        } else {
            0.0
        };
        format!("{}/{} ({rate:.2}%)", t.events, t.trials)
    };
    let points = |x: f64| format!("{:+.2}", 100.0 * x);
    let subject = match bound_micros {
        Some(micros) => format!("{what} {}", format_bound(micros)),
        None => what.to_owned(),
    };
    let d = comparison.difference;
    format!(
        "{subject} {:?}: canary {}, stable {}, difference {} pt [{}, {}], failure evidence {:.3} (fails at {:.0}), success evidence {:.3} (passes at {:.0})",
        comparison.verdict,
        share(comparison.canary),
        share(comparison.stable),
        points(d.estimate),
        points(d.lower),
        points(d.upper),
        comparison.failure_evidence.value,
        comparison.failure_evidence.needed,
        comparison.success_evidence.value,
        comparison.success_evidence.needed,
    )
}

fn format_bound(micros: f64) -> String {
    if micros >= 1_000.0 {
        format!("{} ms", micros / 1_000.0)
    } else {
        format!("{micros} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: Versions<'static> = Versions {
        stable: "v1",
        canary: "v2",
    };
    const BOUNDS: [f64; 4] = [10_000.0, 25_000.0, 50_000.0, 100_000.0];

    fn query(gate: bool) -> JudgeQuery {
        JudgeQuery {
            route: "app".into(),
            gate,
            settings: canary_judge::JudgeSettings::default(),
            latency_floor: canary_analysis::provider::DEFAULT_LATENCY_FLOOR,
        }
    }

    /// Cumulative counters of both versions: (requests, errors) each, and
    /// optionally latency histograms (cumulative counts at `BOUNDS`).
    #[derive(Clone, Copy, Default)]
    struct Counts {
        stable: (u64, u64),
        canary: (u64, u64),
        stable_latency: Option<[u64; 4]>,
        canary_latency: Option<[u64; 4]>,
    }

    fn snapshot(c: Counts) -> Snapshot {
        let mut s = Snapshot::default();
        for (version, (requests, errors), latency) in [
            ("v1", c.stable, c.stable_latency),
            ("v2", c.canary, c.canary_latency),
        ] {
            let key = ("app".to_owned(), version.to_owned());
            s.counters.insert((key.clone(), Metric::Requests), requests);
            s.counters.insert((key.clone(), Metric::Errors), errors);
            if let Some(cumulative) = latency {
                s.latency.insert(
                    key,
                    Histogram {
                        buckets: BOUNDS.iter().copied().zip(cumulative).collect(),
                    },
                );
            }
        }
        s
    }

    fn counts(stable: (u64, u64), canary: (u64, u64)) -> Counts {
        Counts {
            stable,
            canary,
            ..Counts::default()
        }
    }

    /// A look at `now` seeing `current`, with `first` as the first scrape
    /// since the split was in force (at t = 0).
    fn look_at(
        now: u64,
        carry: Option<&Carry>,
        first: Counts,
        current: Counts,
        gate: bool,
    ) -> Measured {
        look(
            &query(gate),
            NAMES,
            Timestamp::from_secs(now),
            Some(Timestamp::from_secs(0)),
            carry,
            &snapshot(current),
            |_| Some(Ok(snapshot(first))),
        )
    }

    /// The first look, at t = 10, from zero.
    fn first_look(current: Counts) -> Measured {
        look_at(10, None, counts((0, 0), (0, 0)), current, false)
    }

    /// A later look at `now`, going on from `before`.
    fn next_look(now: u64, before: &Measured, current: Counts) -> Measured {
        look_at(
            now,
            before.carry.as_ref(),
            counts((0, 0), (0, 0)),
            current,
            false,
        )
    }

    fn carried(measured: &Measured) -> JudgeCarry {
        serde_json::from_value(measured.carry.clone().expect("a carry")).expect("a judge carry")
    }

    fn verdict(measured: &Measured) -> String {
        match &measured.result {
            MeasurementResult::Value {
                value: MetricValue::Map(map),
                ..
            } => map["verdict"].to_string(),
            other => panic!("not a value: {other:?}"),
        }
    }

    #[test]
    fn each_measurement_reports_the_evidence_and_its_counts() {
        let first = first_look(counts((900, 9), (100, 1)));
        let MeasurementResult::Value { value, samples } = &first.result else {
            panic!("{:?}", first.result);
        };
        assert_eq!(*samples, Some(100));
        let text = value.to_string();
        for part in [
            "verdict: NotEnoughData",
            "canary 1/100 (1.00%), stable 9/900 (1.00%)",
            "difference +0.00 pt [",
            "failure evidence",
            "(fails at 111)",
            "success evidence",
            "looks: 1",
            "no latency histogram yet",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
        let carry = carried(&first);
        assert_eq!(carry.judge.canary().requests, 100);
        assert_eq!(carry.read_at, Timestamp::from_secs(10));
    }

    #[test]
    fn evidence_goes_on_from_the_carry_without_counting_twice() {
        let one = first_look(counts((900, 9), (100, 1)));
        let two = next_look(20, &one, counts((1800, 18), (200, 2)));
        let judge = carried(&two).judge;
        assert_eq!(judge.stable().requests, 1800);
        assert_eq!(judge.canary().errors, 2);
        assert_eq!(judge.assess().looks, 2);
    }

    #[test]
    fn a_restart_from_the_saved_carry_goes_on_exactly() {
        let start = counts((0, 0), (0, 0));
        let one = first_look(counts((900, 9), (100, 1)));
        // Saved as text and read back, as a state file does.
        let saved = serde_json::to_string(&one.carry).unwrap();
        let reloaded: Option<Carry> = serde_json::from_str(&saved).unwrap();
        let next = counts((1800, 20), (200, 3));
        let went_on = look_at(20, one.carry.as_ref(), start, next, false);
        let restarted = look_at(20, reloaded.as_ref(), start, next, false);
        assert_eq!(went_on, restarted);
    }

    #[test]
    fn time_before_the_split_was_in_force_is_skipped() {
        let one = first_look(counts((900, 9), (100, 1)));
        // The split changed at t = 15 and was seen in force again at 30:
        // what happened between the previous reading (t = 10) and the
        // first scrape since (taken at 31) is not fed.
        let first_since = counts((2000, 20), (500, 400));
        let measured = look(
            &query(false),
            NAMES,
            Timestamp::from_secs(40),
            Some(Timestamp::from_secs(30)),
            one.carry.as_ref(),
            &snapshot(counts((2900, 29), (600, 401))),
            |floor| {
                assert_eq!(floor, Timestamp::from_secs(30));
                Some(Ok(snapshot(first_since)))
            },
        );
        let judge = carried(&measured).judge;
        assert_eq!(judge.stable().requests, 900 + 900);
        assert_eq!(judge.canary().requests, 100 + 100);
        assert_eq!(judge.canary().errors, 1 + 1);
    }

    #[test]
    fn a_hard_failure_fails_the_measurement() {
        let measured = look_at(
            5,
            None,
            counts((0, 0), (0, 0)),
            counts((5000, 50), (40, 40)),
            false,
        );
        assert_eq!(verdict(&measured), "Failed");
    }

    #[test]
    fn a_latency_shift_fails_on_the_histogram() {
        let first = Counts {
            stable_latency: Some([0; 4]),
            canary_latency: Some([0; 4]),
            ..counts((0, 0), (0, 0))
        };
        // Stable: 90% under 50 ms; the canary: everything over 50 ms.
        let current = Counts {
            stable_latency: Some([500, 800, 900, 1000]),
            canary_latency: Some([0, 0, 0, 100]),
            ..counts((1000, 0), (100, 0))
        };
        let measured = look_at(5, None, first, current, false);
        assert_eq!(verdict(&measured), "Failed");
        let MeasurementResult::Value { value, .. } = &measured.result else {
            unreachable!()
        };
        assert!(
            value
                .to_string()
                .contains("requests slower than 50 ms Failed"),
            "{value}"
        );
    }

    #[test]
    fn latency_bounds_below_the_floor_are_not_judged() {
        let mut floored = query(false);
        floored.latency_floor = std::time::Duration::from_millis(30);
        let current = Counts {
            stable_latency: Some([500, 800, 900, 1000]),
            canary_latency: Some([50, 80, 90, 100]),
            ..counts((1000, 0), (100, 0))
        };
        let measured = look(
            &floored,
            NAMES,
            Timestamp::from_secs(5),
            Some(Timestamp::from_secs(0)),
            None,
            &snapshot(current),
            |_| Some(Ok(snapshot(counts((0, 0), (0, 0))))),
        );
        assert_eq!(carried(&measured).judge.bounds(), &[50_000.0, 100_000.0]);
    }

    #[test]
    fn without_the_split_in_force_there_is_no_data_and_the_evidence_is_kept() {
        let one = first_look(counts((900, 9), (100, 1)));
        let measured = look(
            &query(false),
            NAMES,
            Timestamp::from_secs(20),
            None,
            one.carry.as_ref(),
            &snapshot(counts((1800, 18), (200, 2))),
            |_| panic!("no baseline is needed"),
        );
        assert!(matches!(
            measured.result,
            MeasurementResult::NotEnoughData(_)
        ));
        assert_eq!(carried(&measured).judge, carried(&one).judge);
    }

    #[test]
    fn at_very_low_traffic_the_guard_passes_and_the_gate_waits() {
        let start = counts((0, 0), (0, 0));
        let nothing = first_look(counts((50, 0), (0, 0)));
        assert!(
            matches!(&nothing.result, MeasurementResult::NotEnoughData(why) if why.contains("no request for v2")),
            "{:?}",
            nothing.result
        );
        let few = counts((50, 1), (5, 0));
        assert_eq!(
            verdict(&look_at(10, None, start, few, false)),
            "NotEnoughData"
        );
        let gate = look_at(10, None, start, few, true);
        assert!(
            matches!(&gate.result, MeasurementResult::NotEnoughData(why) if why.contains("not decided yet")),
            "{:?}",
            gate.result
        );
    }

    #[test]
    fn at_full_weight_the_canary_is_compared_with_stables_history() {
        let before = first_look(counts((5000, 50), (500, 5)));
        // 100%: stable gets nothing more; the canary stays healthy.
        let after = next_look(20, &before, counts((5000, 50), (1500, 15)));
        assert_ne!(verdict(&after), "Failed");
        let judge = carried(&after).judge;
        assert_eq!(judge.stable().requests, 5000);
        assert_eq!(judge.canary().requests, 1500);
    }

    #[test]
    fn a_carry_for_other_settings_or_versions_starts_anew() {
        let start = counts((0, 0), (0, 0));
        let one = first_look(counts((900, 9), (100, 1)));
        let mut other = query(false);
        other.settings.alpha = 0.02;
        let measured = look(
            &other,
            NAMES,
            Timestamp::from_secs(20),
            Some(Timestamp::from_secs(0)),
            one.carry.as_ref(),
            &snapshot(counts((1800, 18), (200, 2))),
            |_| Some(Ok(snapshot(start))),
        );
        assert_eq!(carried(&measured).judge.assess().looks, 1);
        assert_eq!(carried(&measured).judge.stable().requests, 1800);
    }
}
