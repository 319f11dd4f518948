//! Everything a controller end-to-end test runs against.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use canary_e2e::controller::ControllerProcess;
use canary_lab::envoy::{Delivery, Envoy, EnvoySpec};
use canary_lab::load::{Client, LoadGenerator, LoadPlan, Summary};
use canary_lab::prometheus::{Prometheus, ScrapeJob};
use canary_lab::upstream_process::UpstreamProcess;
use serde_json::json;
use tempfile::TempDir;

/// Requests per second the load generator sends through Envoy.
pub const RATE: f64 = 100.0;

/// The filter configuration Envoy starts with: no canary traffic yet.
pub fn base_filter_config() -> serde_json::Value {
    json!({
        "routes": [{
            "name": "app",
            "match": { "hosts": ["*"] },
            "stable": "v1",
            "canary": "v2",
            "canary_weight": 0
        }]
    })
}

/// Upstreams, Envoy, Prometheus, load, and a folder for the controller.
pub struct Stage {
    pub dir: TempDir,
    /// Kept running for the whole test.
    #[allow(dead_code)]
    pub stable: UpstreamProcess,
    pub canary: UpstreamProcess,
    pub envoy: Envoy,
    pub prometheus: Option<Prometheus>,
    pub load: Option<LoadGenerator>,
    /// Wall-clock time of the load generator's start (unix ms).
    pub load_started_ms: u64,
}

impl Stage {
    /// Starts upstreams, Envoy (ECDS, health checks every 250 ms) and,
    /// when asked, Prometheus scraping the upstreams and Envoy.
    pub async fn start(with_prometheus: bool) -> Stage {
        Stage::start_with(with_prometheus, base_filter_config()).await
    }

    /// [`Stage::start`] with Envoy starting from `filter_config`.
    pub async fn start_with(with_prometheus: bool, filter_config: serde_json::Value) -> Stage {
        let dir = tempfile::tempdir().expect("temporary folder");
        let stable = UpstreamProcess::start("v1").unwrap_or_else(|e| panic!("{e}"));
        let canary = UpstreamProcess::start("v2").unwrap_or_else(|e| panic!("{e}"));
        let mut spec = EnvoySpec::new(
            Delivery::Ecds,
            filter_config.to_string(),
            stable.addr(),
            canary.addr(),
        );
        spec.concurrency = 2;
        spec.health_check_interval = Some(Duration::from_millis(250));
        spec.stats_flush_interval = Some(Duration::from_secs(1));
        let envoy = Envoy::start(&spec).await.unwrap_or_else(|e| panic!("{e}"));
        let prometheus = if with_prometheus {
            let jobs = [
                ScrapeJob {
                    name: "upstreams".into(),
                    path: "/metrics".into(),
                    targets: vec![stable.addr(), canary.addr()],
                },
                ScrapeJob {
                    name: "envoy".into(),
                    path: "/stats/prometheus".into(),
                    targets: vec![envoy.admin()],
                },
            ];
            Some(
                Prometheus::start(&jobs)
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
            )
        } else {
            None
        };
        Stage {
            dir,
            stable,
            canary,
            envoy,
            prometheus,
            load: None,
            load_started_ms: 0,
        }
    }

    /// Starts steady load through Envoy.
    pub fn start_load(&mut self) {
        let client = Client::new(self.envoy.listener(), "app.example.com")
            .with_timeout(Duration::from_secs(5));
        self.load_started_ms = unix_ms();
        self.load = Some(LoadGenerator::start(client, LoadPlan::at_rate(RATE)));
    }

    /// Stops the load and returns every record.
    pub async fn stop_load(&mut self) -> Summary {
        match self.load.take() {
            Some(load) => load.stop().await,
            None => Summary::default(),
        }
    }

    /// Writes a rollout file and returns its path.
    pub fn write_rollout(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join("rollout.yaml");
        std::fs::write(&path, text).expect("rollout file written");
        path
    }

    /// `canary run` arguments for `rollout`, pushing to this Envoy's ECDS
    /// file and reading `envoy_admin`.
    pub fn run_args(&self, rollout: &Path, envoy_admin: &str) -> Vec<String> {
        let mut args = vec![
            "--rollout".to_owned(),
            rollout.display().to_string(),
            "--state".to_owned(),
            self.dir.path().join("state.json").display().to_string(),
            "--push".to_owned(),
            format!(
                "ecds-file:{}",
                self.envoy.ecds_path().expect("ECDS").display()
            ),
            "--envoy-admin".to_owned(),
            envoy_admin.to_owned(),
            "--scrape-interval".to_owned(),
            "250ms".to_owned(),
        ];
        if let Some(prometheus) = &self.prometheus {
            args.push("--prometheus-url".to_owned());
            args.push(prometheus.url());
        }
        args
    }

    /// What the controller saved in its state file.
    pub fn saved(&self) -> canary_rollout::driver::Position {
        let text = std::fs::read_to_string(self.dir.path().join("state.json"))
            .expect("state file written");
        let value: serde_json::Value = serde_json::from_str(&text).expect("state file is JSON");
        canary_rollout::driver::Position::from_json(&value).expect("state file readable")
    }

    /// The split Envoy's ECDS file holds now for route `app` (its entry in
    /// `splits`, or the entry's own fields).
    pub fn pushed(&self) -> canary_config::Split {
        let config = canary_router::ecds_file::EcdsFile::new(
            self.envoy.ecds_path().expect("ECDS"),
            "canary",
        )
        .current()
        .expect("ECDS file readable");
        canary_config::Split::of(&config, "app").expect("route app")
    }

    /// Replaces the ECDS file behind the controller's back (as a
    /// configuration-management revert would) with `weight` percent for
    /// the canary `v2` on route `app`.
    pub fn overwrite_split(&self, weight: f64) {
        let file = canary_router::ecds_file::EcdsFile::new(
            self.envoy.ecds_path().expect("ECDS"),
            "canary",
        );
        let current = file.current().expect("ECDS file readable");
        let split = canary_rollout::TrafficState {
            canary_weight: canary_config::Weight::from_percent(weight).expect("weight"),
            ..canary_rollout::TrafficState::initial("v1", "v2")
        };
        // The same attempt as the controller's: only the weight differs.
        let generation = canary_config::Split::of(&current, "app").map_or(0, |s| s.generation);
        let config = split
            .apply(generation, &current, &["app".to_owned()])
            .expect("applies");
        file.push(&config).expect("ECDS file written");
    }

    /// This Envoy's admin URL.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.envoy.admin())
    }

    /// Starts the controller.
    pub async fn controller(&self, args: &[String]) -> ControllerProcess {
        ControllerProcess::start(self.dir.path(), args).await
    }

    /// Starts the controller with extra environment variables.
    pub async fn controller_with_env(
        &self,
        args: &[String],
        env: &[(&str, &str)],
    ) -> ControllerProcess {
        ControllerProcess::start_with_env(self.dir.path(), args, env).await
    }

    /// Starts the controller through `launcher` (e.g. `prlimit …`).
    pub async fn controller_under(&self, args: &[String], launcher: &[&str]) -> ControllerProcess {
        ControllerProcess::start_under(self.dir.path(), args, &[], launcher).await
    }

    /// The state file's text.
    pub fn state_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("state.json")).expect("state file written")
    }
}

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// An AnalysisTemplate document `name` whose `spec` is `spec` (indented
/// YAML lines), to follow a rollout after `---`.
pub fn analysis_template(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// A rollout `app` on route entry `app` from `v1` to `canary`, with
/// `spec_fields` (indented YAML lines, or empty) and `steps` (one list item
/// each, e.g. `setWeight: 20`).
pub fn rollout(canary: &str, spec_fields: &str, steps: &[&str]) -> String {
    let mut yaml = format!(
        "apiVersion: canary.dev/v1alpha1\nkind: CanaryRollout\nmetadata:\n  name: app\nspec:\n  routes: [app]\n  stableVersion: v1\n  canaryVersion: {canary}\n{spec_fields}  steps:\n"
    );
    for step in steps {
        yaml.push_str(&format!("  - {step}\n"));
    }
    yaml
}

/// The seed's rollout scaled to about a second per wait: 10 → 25 → 50 →
/// 75 → 100, each weight followed by a pause and the pod-health analysis
/// (readiness from Envoy's health checks ≥ 0.5, CPU from Prometheus ≤ 0.9,
/// the canary's error rate from the filter's stats ≤ 5%), every metric
/// with interval 1s, count 3, failureLimit 2.
pub fn seed_rollout(extra_metric_fields: &str, with_cpu: bool) -> String {
    let mut steps = Vec::new();
    for weight in [10, 25, 50, 75] {
        steps.push(format!("setWeight: {weight}"));
        steps.push("pause: {duration: 1s}".to_owned());
        steps.push("analysis: {templates: [{templateName: pod-health}]}".to_owned());
    }
    steps.push("setWeight: 100".to_owned());
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let rollout = rollout("v2", "  progressDeadline: 60s\n", &steps);
    let cpu = if with_cpu {
        format!(
            r#"  - name: cpu
    interval: 1s
    count: 3
    failureLimit: 2
{extra_metric_fields}    successCondition: result[0] <= 0.9
    provider:
      prometheus:
        query: max(canary_sim_cpu_usage_ratio{{version="v2"}})
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"{rollout}---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: pod-health
spec:
  metrics:
  - name: readiness
    interval: 1s
    count: 3
    failureLimit: 2
{extra_metric_fields}    successCondition: result >= 0.5
    provider:
      envoy:
        quantity: ready-ratio
        cluster: canary
  - name: error-rate
    interval: 1s
    count: 3
    failureLimit: 2
{extra_metric_fields}    successCondition: result <= 0.05
    provider:
      envoy:
        route: app
        quantity: error-rate
        window: 2s
{cpu}"#
    )
}

/// The decisions among `events`: everything but the proxies being seen to
/// apply a split (a restart sees the split in force again, and decides
/// nothing by it).
pub fn decisions(events: &[canary_rollout::Event]) -> Vec<&canary_rollout::Event> {
    events
        .iter()
        .filter(|e| e.kind != canary_rollout::EventKind::SplitInForce)
        .collect()
}
