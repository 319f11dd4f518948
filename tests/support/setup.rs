//! A stable (`v1`) and a canary (`v2`) backend behind one Envoy running
//! the built filter, and ways to send traffic through it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use canary_lab::backend::Backend;
use canary_lab::envoy::{Delivery, Envoy, EnvoySpec};
use canary_lab::load::{Client, LoadError, Reply};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

/// Host every test request is sent to.
pub const HOST: &str = "app.example.com";

/// A filter configuration with one route entry `app` for every host:
/// stable `v1`, canary `v2` at `weight`, plus `extra` fields merged into
/// the route entry.
pub fn filter_config(weight: f64, extra: Value) -> Value {
    let mut route = json!({
        "name": "app",
        "match": { "hosts": ["*"] },
        "stable": "v1",
        "canary": "v2",
        "canary_weight": weight
    });
    if let (Some(route), Value::Object(extra)) = (route.as_object_mut(), extra) {
        route.extend(extra);
    }
    json!({ "routes": [route] })
}

/// Two backends and an Envoy in front of them.
pub struct Rig {
    pub stable: Backend,
    pub canary: Backend,
    pub envoy: Envoy,
    pub client: Client,
}

impl Rig {
    /// Starts everything with `config` delivered as `delivery`.
    pub async fn start(delivery: Delivery, config: &Value) -> Rig {
        Rig::start_with(delivery, config, |_| {}).await
    }

    /// As [`Rig::start`], letting the caller adjust the Envoy spec.
    pub async fn start_with(
        delivery: Delivery,
        config: &Value,
        adjust: impl FnOnce(&mut EnvoySpec),
    ) -> Rig {
        let stable = Backend::start("v1").await.expect("stable backend starts");
        let canary = Backend::start("v2").await.expect("canary backend starts");
        let mut spec = EnvoySpec::new(delivery, config.to_string(), stable.addr(), canary.addr());
        adjust(&mut spec);
        let envoy = match Envoy::start(&spec).await {
            Ok(envoy) => envoy,
            Err(err) => panic!("Envoy did not start: {err}"),
        };
        let client = Client::new(envoy.listener(), HOST);
        Rig {
            stable,
            canary,
            envoy,
            client,
        }
    }

    /// Sends `n` requests, at most 32 at a time, each with the headers
    /// `headers(i)` gives, and returns every reply in order.
    pub async fn send<F>(&self, n: usize, headers: F) -> Vec<Reply>
    where
        F: Fn(usize) -> Vec<(String, String)>,
    {
        let limit = Arc::new(Semaphore::new(32));
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let permit = limit.clone().acquire_owned().await.expect("semaphore open");
            let client = self.client.clone();
            let headers = headers(i);
            tasks.push(tokio::spawn(async move {
                let refs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let reply = client.get("/", &refs).await;
                drop(permit);
                reply
            }));
        }
        let mut replies = Vec::with_capacity(n);
        for task in tasks {
            match task.await.expect("request task") {
                Ok(reply) => replies.push(reply),
                Err(err) => panic!("request failed: {err}"),
            }
        }
        replies
    }

    /// Sends `n` plain requests.
    pub async fn send_plain(&self, n: usize) -> Vec<Reply> {
        self.send(n, |_| Vec::new()).await
    }

    /// One request with headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Reply, LoadError> {
        self.client.get(path, headers).await
    }

    /// Waits until every counter in `expected` has exactly its value (the
    /// filter hands counts to Envoy every 250 ms), failing after 5 s with
    /// the values seen.
    pub async fn wait_counters(&self, expected: &[(String, u64)]) -> BTreeMap<String, u64> {
        let envoy = &self.envoy;
        let matched = canary_lab::wait::until(
            Duration::from_secs(5),
            Duration::from_millis(50),
            || async move {
                let counters = envoy.counters().await.ok()?;
                expected
                    .iter()
                    .all(|(name, value)| counters.get(name).copied().unwrap_or(0) == *value)
                    .then_some(counters)
            },
        )
        .await;
        match matched {
            Some(counters) => counters,
            None => {
                let counters = self.envoy.counters().await.unwrap_or_default();
                let seen: Vec<(String, u64, u64)> = expected
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.clone(),
                            *value,
                            counters.get(name).copied().unwrap_or(0),
                        )
                    })
                    .collect();
                panic!("counters never matched (name, expected, seen): {seen:?}");
            }
        }
    }

    /// Waits until Envoy's `name` counter or gauge has exactly `value`, up
    /// to `timeout`; returns how long it took.
    pub async fn wait_value(&self, name: &str, value: u64, timeout: Duration) -> Duration {
        let envoy = &self.envoy;
        let started = std::time::Instant::now();
        let reached = canary_lab::wait::until(timeout, Duration::from_millis(10), || async move {
            (envoy.counters().await.ok()?.get(name).copied().unwrap_or(0) == value).then_some(())
        })
        .await;
        match reached {
            Some(()) => started.elapsed(),
            None => panic!(
                "{name} did not become {value} within {timeout:?} (now {:?})",
                self.envoy.counter(name).await
            ),
        }
    }

    /// One request written on the wire by hand (for bytes an HTTP library
    /// refuses to send); returns the whole answer as text (lossy).
    pub async fn raw(&self, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.envoy.listener())
            .await
            .expect("Envoy's listener accepts");
        stream.write_all(request).await.expect("request written");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("answer read");
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// Clients (each with its own connection) until Envoy's every worker
    /// holds at least one of their connections, so load sent through all
    /// of them reaches every worker. Fails after 32 clients.
    pub async fn clients_on_every_worker(&self, workers: u32) -> Vec<Client> {
        self.envoy
            .clients_on_every_worker(HOST, workers)
            .await
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// Waits until Envoy's `name` counter reaches `at_least`, up to `timeout`.
    pub async fn wait_counter(&self, name: &str, at_least: u64, timeout: Duration) -> u64 {
        let envoy = &self.envoy;
        let reached = canary_lab::wait::until(timeout, Duration::from_millis(50), || async move {
            let value = envoy.counter(name).await.ok()?;
            (value >= at_least).then_some(value)
        })
        .await;
        match reached {
            Some(value) => value,
            None => panic!(
                "counter {name} did not reach {at_least} within {timeout:?} (now {:?})",
                self.envoy.counter(name).await
            ),
        }
    }
}

/// Answers per version that served them.
pub fn count_versions(replies: &[Reply]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for reply in replies {
        assert_eq!(reply.status, 200, "unexpected answer: {reply:?}");
        let version = reply.served_by.clone().unwrap_or_else(|| "<none>".into());
        *counts.entry(version).or_insert(0) += 1;
    }
    counts
}

/// How many replies came from `version`.
pub fn served_by(replies: &[Reply], version: &str) -> usize {
    replies
        .iter()
        .filter(|r| r.served_by.as_deref() == Some(version))
        .count()
}
