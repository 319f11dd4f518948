//! Test doubles for the ports, and the simulator: the third shell, which
//! runs the driver in simulated time against a fake fleet of proxies, so a
//! whole rollout (pushes, delays, drift, failures, restarts) is tested
//! deterministically and without processes. Built with the `fixtures`
//! feature (and for this crate's own tests).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use canary_analysis::metric::Metric;
use canary_analysis::{MeasurementResult, Timestamp};

use crate::command::{Command, CommandError};
use crate::driver::{
    expected_weights, Driver, Effects, Finished, Input, MeasureRequest, Measured, Observation,
    Outcome, Position, ProxyState, PushOutcome, Report, RouteShows, Settings, Shows, SplitPush,
};
use crate::event::{Event, EventKind};
use crate::ports::{
    BoxFuture, Clock, MetricSource, PositionStore, RouterError, StoreError, TrafficRouter, Versions,
};
use crate::spec::RolloutSpec;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fleet of fake proxies behind a fake router: a pushed split reaches
/// every proxy `apply_delay` later; pushes can be made to fail, proxies
/// tampered with, guards tripped.
#[derive(Clone)]
pub struct FakeFleet {
    inner: Arc<Mutex<Fleet>>,
    clock: Option<Arc<dyn Clock>>,
}

impl std::fmt::Debug for FakeFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFleet").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Fleet {
    routes: Vec<String>,
    proxies: Vec<(String, BTreeMap<String, RouteShows>)>,
    silent: Vec<bool>,
    in_flight: Vec<(Timestamp, SplitPush)>,
    apply_delay: Duration,
    failing: Option<String>,
    pushes: Vec<(Timestamp, SplitPush)>,
    now: Timestamp,
    observed: bool,
}

impl FakeFleet {
    /// `proxies` proxies carrying `routes`, each showing everything on
    /// `stable`.
    pub fn new(routes: &[String], stable: &str, proxies: usize) -> FakeFleet {
        let shows: BTreeMap<String, RouteShows> = routes
            .iter()
            .map(|route| {
                (
                    route.clone(),
                    RouteShows {
                        weights: [(stable.to_owned(), 10_000)].into(),
                        generation: None,
                        guard_tripped: false,
                    },
                )
            })
            .collect();
        FakeFleet {
            inner: Arc::new(Mutex::new(Fleet {
                routes: routes.to_vec(),
                proxies: (0..proxies)
                    .map(|n| (format!("proxy-{n}"), shows.clone()))
                    .collect(),
                silent: vec![false; proxies],
                in_flight: Vec::new(),
                apply_delay: Duration::ZERO,
                failing: None,
                pushes: Vec::new(),
                now: Timestamp::default(),
                observed: true,
            })),
            clock: None,
        }
    }

    /// The fleet reads the time from `clock` when used through the
    /// [`TrafficRouter`] port (a shell under test).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> FakeFleet {
        self.clock = Some(clock);
        self
    }

    fn port_now(&self) -> Timestamp {
        match &self.clock {
            Some(clock) => clock.now(),
            None => lock(&self.inner).now,
        }
    }

    /// Pushed splits reach the proxies this long after the push.
    pub fn set_apply_delay(&self, delay: Duration) {
        lock(&self.inner).apply_delay = delay;
    }

    /// Every push fails with `error` (or succeeds again with `None`).
    pub fn fail_pushes(&self, error: Option<&str>) {
        lock(&self.inner).failing = error.map(str::to_owned);
    }

    /// Nothing observes the proxies (a dry run).
    pub fn unobserved(&self) {
        lock(&self.inner).observed = false;
    }

    /// The fake clock.
    pub fn set_now(&self, now: Timestamp) {
        lock(&self.inner).now = now;
    }

    /// Every split pushed, with when.
    pub fn pushes(&self) -> Vec<(Timestamp, SplitPush)> {
        lock(&self.inner).pushes.clone()
    }

    /// Changes what proxy `index` shows on every route, behind the
    /// rollout's back: `weights` by version.
    pub fn tamper(&self, index: usize, weights: &[(&str, u64)]) {
        let mut fleet = lock(&self.inner);
        if let Some((_, routes)) = fleet.proxies.get_mut(index) {
            for shows in routes.values_mut() {
                shows.weights = weights.iter().map(|(v, w)| ((*v).to_owned(), *w)).collect();
            }
        }
    }

    /// Proxy `index`'s guard stops the canary on every route.
    pub fn trip_guard(&self, index: usize) {
        let mut fleet = lock(&self.inner);
        if let Some((_, routes)) = fleet.proxies.get_mut(index) {
            for shows in routes.values_mut() {
                shows.guard_tripped = true;
            }
        }
    }

    /// Proxy `index` stops answering (or answers again).
    pub fn silence(&self, index: usize, silent: bool) {
        if let Some(flag) = lock(&self.inner).silent.get_mut(index) {
            *flag = silent;
        }
    }

    /// Delivers `split` at `now` (the synchronous form of
    /// [`TrafficRouter::set`]).
    pub fn push(&self, split: &SplitPush, now: Timestamp) -> Result<(), RouterError> {
        let mut fleet = lock(&self.inner);
        if let Some(error) = &fleet.failing {
            return Err(RouterError(error.clone()));
        }
        let at = now.plus(fleet.apply_delay);
        fleet.in_flight.push((at, split.clone()));
        fleet.pushes.push((now, split.clone()));
        Ok(())
    }

    /// What the proxies show at `now` (the synchronous form of
    /// [`TrafficRouter::observe`]).
    pub fn observe_at(&self, now: Timestamp) -> Option<Observation> {
        let mut fleet = lock(&self.inner);
        if !fleet.observed {
            return None;
        }
        let (due, later): (Vec<_>, Vec<_>) =
            fleet.in_flight.drain(..).partition(|(at, _)| *at <= now);
        fleet.in_flight = later;
        let routes = fleet.routes.clone();
        for (_, split) in due {
            let weights = expected_weights(&split.traffic);
            for (_, shown) in &mut fleet.proxies {
                for route in &routes {
                    let entry = shown.entry(route.clone()).or_default();
                    entry.weights = weights.clone();
                    if entry.generation != Some(split.generation) {
                        entry.guard_tripped = false;
                    }
                    entry.generation = Some(split.generation);
                }
            }
        }
        Some(Observation {
            at: now,
            proxies: fleet
                .proxies
                .iter()
                .zip(&fleet.silent)
                .map(|((name, routes), silent)| ProxyState {
                    proxy: name.clone(),
                    shows: if *silent {
                        Shows::Nothing("connection refused".into())
                    } else {
                        Shows::Routes(routes.clone())
                    },
                })
                .collect(),
        })
    }
}

impl TrafficRouter for FakeFleet {
    fn describe(&self) -> String {
        "fake fleet".into()
    }

    fn set<'a>(
        &'a self,
        split: &'a SplitPush,
        _routes: &'a [String],
    ) -> BoxFuture<'a, Result<Option<String>, RouterError>> {
        let now = self.port_now();
        let result = self.push(split, now).map(|()| None);
        Box::pin(async move { result })
    }

    fn observe(&self) -> BoxFuture<'_, Option<Observation>> {
        let now = self.port_now();
        let observation = self.observe_at(now);
        Box::pin(async move { observation })
    }

    fn verify_deadline(&self) -> Duration {
        Duration::from_secs(30)
    }
}

/// A clock driven by tokio's time, so a shell under test with paused
/// time runs through long waits at once: `start` plus the time passed
/// since it was made.
#[derive(Debug, Clone, Copy)]
pub struct TestClock {
    start: Timestamp,
    origin: std::time::Instant,
}

impl TestClock {
    /// A clock reading `start` now.
    pub fn new(start: Timestamp) -> TestClock {
        TestClock {
            start,
            origin: tokio_instant_now(),
        }
    }
}

fn tokio_instant_now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        let passed = tokio_instant_now().saturating_duration_since(self.origin);
        self.start.plus(passed)
    }
}

/// How a fake metric source answers: by metric, at a time, since when the
/// split was in force.
pub type Answer = dyn Fn(&Metric, Timestamp, Option<Timestamp>) -> MeasurementResult + Send + Sync;

/// How a fake metric source that carries state answers: by request (with
/// what the metric carried) and time.
pub type CarryingAnswer = dyn Fn(&MeasureRequest, Timestamp) -> Measured + Send + Sync;

/// A metric source answering from a function; a metric named in `hang`
/// never answers.
#[derive(Clone)]
pub struct FakeMetrics {
    answer: Arc<CarryingAnswer>,
    hang: Arc<Mutex<Vec<String>>>,
}

impl FakeMetrics {
    /// Answers with `answer`.
    pub fn new(
        answer: impl Fn(&Metric, Timestamp, Option<Timestamp>) -> MeasurementResult
            + Send
            + Sync
            + 'static,
    ) -> FakeMetrics {
        FakeMetrics::carrying(move |request, now| {
            Measured::from(answer(&request.metric, now, request.in_force_since))
        })
    }

    /// Answers with `answer`, which sees what the metric carried and hands
    /// back what to carry on.
    pub fn carrying(
        answer: impl Fn(&MeasureRequest, Timestamp) -> Measured + Send + Sync + 'static,
    ) -> FakeMetrics {
        FakeMetrics {
            answer: Arc::new(answer),
            hang: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Every measurement of `metric` hangs from now on.
    pub fn hang(&self, metric: &str) {
        lock(&self.hang).push(metric.to_owned());
    }

    /// The answer to `request` at `now`, or `None` if it hangs.
    pub fn answer(&self, request: &MeasureRequest, now: Timestamp) -> Option<Measured> {
        if lock(&self.hang).contains(&request.metric.name) {
            return None;
        }
        Some((self.answer)(request, now))
    }
}

impl MetricSource for FakeMetrics {
    fn measure<'a>(
        &'a self,
        request: &'a MeasureRequest,
        _versions: Versions<'a>,
        now: Timestamp,
    ) -> BoxFuture<'a, Measured> {
        match self.answer(request, now) {
            Some(result) => Box::pin(async move { result }),
            None => Box::pin(std::future::pending()),
        }
    }
}

/// What a [`MemoryStore`] holds: the position, the error saves fail
/// with, and how many saves there were.
type Stored = (Option<Position>, Option<String>, usize);

/// A position store in memory; saves can be made to fail.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Stored>>,
}

impl MemoryStore {
    /// Every save fails with `error` (or works again with `None`).
    pub fn fail_saves(&self, error: Option<&str>) {
        lock(&self.inner).1 = error.map(str::to_owned);
    }

    /// Saves so far.
    pub fn saves(&self) -> usize {
        lock(&self.inner).2
    }

    /// A separate store holding what this one holds now.
    pub fn snapshot(&self) -> MemoryStore {
        let inner = lock(&self.inner).clone();
        MemoryStore {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    /// The position saved last.
    pub fn saved(&self) -> Option<Position> {
        lock(&self.inner).0.clone()
    }
}

impl PositionStore for MemoryStore {
    fn load(&self) -> Result<Option<Position>, StoreError> {
        Ok(lock(&self.inner).0.clone())
    }

    fn save(&self, position: &Position) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        if let Some(reason) = &inner.1 {
            return Err(StoreError::Write {
                place: "memory".into(),
                reason: reason.clone(),
            });
        }
        inner.0 = Some(position.clone());
        inner.2 += 1;
        Ok(())
    }
}

/// The simulator: the driver in simulated time, a fake fleet read every
/// `scrape` and measurements that finish `measure_takes` after they start.
pub struct Sim {
    /// The driver.
    pub driver: Driver,
    /// The fleet.
    pub fleet: FakeFleet,
    /// The metrics.
    pub metrics: FakeMetrics,
    /// The store.
    pub store: MemoryStore,
    /// Simulated time.
    pub now: Timestamp,
    /// How often the fleet is read.
    pub scrape: Duration,
    /// How long a measurement takes.
    pub measure_takes: Duration,
    /// Every effect, in order, with its time.
    pub log: Vec<(Timestamp, Effects)>,
    /// Crash at the next step that decides anything (has events other
    /// than seeing a split in force, which every restart does first):
    /// after saving, and after pushing too when `true`.
    pub crash_on_decision: Option<bool>,
    /// Set once crashed: the sim does nothing more.
    pub crashed: bool,
    next_scrape: Timestamp,
    running: Vec<(Timestamp, MeasureRequest)>,
    pushed: Option<PushOutcome>,
    finished: Option<Outcome>,
}

impl Sim {
    /// A new rollout of `spec` at t=0 on a fleet of `proxies` proxies.
    pub fn start(spec: Arc<RolloutSpec>, proxies: usize, metrics: FakeMetrics) -> Sim {
        let fleet = FakeFleet::new(&spec.routes, &spec.stable_version, proxies);
        let store = MemoryStore::default();
        Sim::open(spec, fleet, metrics, store, Timestamp::default())
    }

    /// The rollout of `spec` from what `store` holds, at `now`.
    pub fn open(
        spec: Arc<RolloutSpec>,
        fleet: FakeFleet,
        metrics: FakeMetrics,
        store: MemoryStore,
        now: Timestamp,
    ) -> Sim {
        let observed = fleet.observe_at(now).is_some();
        let settings = Settings {
            observed,
            target: fleet.describe(),
            ..Settings::default()
        };
        let saved = store.load().ok().flatten();
        let driver = Driver::open(spec, settings, saved, now);
        Sim {
            driver,
            fleet,
            metrics,
            store,
            now,
            scrape: Duration::from_millis(250),
            measure_takes: Duration::ZERO,
            log: Vec::new(),
            crash_on_decision: None,
            crashed: false,
            next_scrape: now,
            running: Vec::new(),
            pushed: None,
            finished: None,
        }
    }

    /// One step at the current time with `command`; carries the effects out.
    pub fn step(&mut self, command: Option<Command>) -> Option<Result<(), CommandError>> {
        self.fleet.set_now(self.now);
        let observation = if self.now >= self.next_scrape {
            self.next_scrape = self.now.plus(self.scrape);
            self.fleet.observe_at(self.now)
        } else {
            None
        };
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|(at, _)| *at <= self.now);
        self.running = running;
        let finished = done
            .into_iter()
            .filter_map(|(_, request)| {
                self.metrics
                    .answer(&request, self.now)
                    .map(|measured| Finished {
                        key: request.key,
                        result: measured.result,
                        carry: measured.carry,
                    })
            })
            .collect();
        let effects = self.driver.step(Input {
            now: self.now,
            observation: observation.as_ref(),
            finished,
            command,
            command_by: None,
            pushed: self.pushed.take(),
        });
        match self.crash_on_decision {
            Some(after_push)
                if effects
                    .events
                    .iter()
                    .any(|e| e.kind != EventKind::SplitInForce) =>
            {
                let mut partial = effects.clone();
                partial.measure.clear();
                if !after_push {
                    partial.push = None;
                }
                self.carry_out(&partial);
                self.crashed = true;
            }
            _ => self.carry_out(&effects),
        }
        let answer = effects.answer.clone();
        self.log.push((self.now, effects));
        answer
    }

    fn carry_out(&mut self, effects: &Effects) {
        if let Some(position) = &effects.save {
            if let Err(error) = self.store.save(position) {
                self.pushed = None;
                let _ = error;
                return;
            }
        }
        if let Some(split) = &effects.push {
            self.pushed = Some(match self.fleet.push(split, self.now) {
                Ok(()) => PushOutcome::Done(None),
                Err(error) => PushOutcome::Failed(error.0),
            });
        }
        for request in &effects.measure {
            let at = self.now.plus(self.measure_takes);
            if self.metrics.answer(request, at).is_some() {
                self.running.push((at, request.clone()));
            }
        }
        self.finished = effects.finished;
    }

    /// Steps until `until`, or until the rollout ended and the proxies
    /// show it.
    pub fn run_until(&mut self, until: Timestamp) -> Option<Outcome> {
        loop {
            if self.crashed {
                return None;
            }
            self.step(None);
            if self.finished.is_some() {
                return self.finished;
            }
            let mut next = vec![self.next_scrape];
            next.extend(self.log.last().and_then(|(_, e)| e.wake_at));
            next.extend(self.running.iter().map(|(at, _)| *at));
            if self.pushed.is_some() {
                next.push(self.now);
            }
            let next = next.into_iter().min().unwrap_or(until).max(self.now);
            if next > until {
                self.now = until;
                return None;
            }
            self.now = next;
        }
    }

    /// How the rollout ended, once seen.
    pub fn outcome(&self) -> Option<Outcome> {
        self.finished
    }

    /// The report now.
    pub fn report(&self) -> Report {
        self.driver.report(self.now)
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.log
            .iter()
            .flat_map(|(_, effects)| effects.events.clone())
            .collect()
    }

    /// Time (ms) of the first event of `kind`.
    pub fn first(&self, kind: EventKind) -> Option<u64> {
        self.events()
            .iter()
            .find(|e| e.kind == kind)
            .map(|e| e.at.millis())
    }

    /// Requests the driver made to measure, with when.
    pub fn measure_requests(&self) -> Vec<(Timestamp, MeasureRequest)> {
        self.log
            .iter()
            .flat_map(|(at, effects)| effects.measure.iter().map(move |m| (*at, m.clone())))
            .collect()
    }
}
