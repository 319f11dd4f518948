//! A real Prometheus server on loopback with its own configuration and
//! data folder, scraping the given targets every second.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::load::Client;
use crate::paths;

/// One scrape job.
#[derive(Debug, Clone)]
pub struct ScrapeJob {
    /// Job name (becomes the `job` label).
    pub name: String,
    /// Metrics path (`/metrics`, `/stats/prometheus`).
    pub path: String,
    /// Targets.
    pub targets: Vec<SocketAddr>,
}

/// A running Prometheus. Dropping it kills the process.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    dir: TempDir,
    addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus scraping `jobs` every second and waits until it
    /// has scraped every target at least once (at most 60 s).
    pub async fn start(jobs: &[ScrapeJob]) -> Result<Prometheus, String> {
        let binary = paths::prometheus_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("canary-prometheus-")
            .tempdir()
            .map_err(|err| format!("temporary folder: {err}"))?;
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for job in jobs {
            let targets: Vec<String> = job.targets.iter().map(|t| format!("'{t}'")).collect();
            config.push_str(&format!(
                "  - job_name: '{}'\n    metrics_path: '{}'\n    static_configs:\n      - targets: [{}]\n",
                job.name,
                job.path,
                targets.join(", ")
            ));
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)
            .map_err(|err| format!("writing the configuration: {err}"))?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.path().join("prometheus.log"))
            .map_err(|err| err.to_string())?;
        let log_err = log.try_clone().map_err(|err| err.to_string())?;
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.retention.time=1h")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|err| format!("starting {}: {err}", binary.display()))?;
        let mut prometheus = Prometheus { child, dir, addr };
        let expected: usize = jobs.iter().map(|j| j.targets.len()).sum();
        prometheus
            .wait_scraped(expected, Duration::from_secs(60))
            .await?;
        Ok(prometheus)
    }

    async fn wait_scraped(&mut self, targets: usize, timeout: Duration) -> Result<(), String> {
        let client = Client::new(self.addr, "prometheus").with_timeout(Duration::from_secs(5));
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("Prometheus exited with {status}:\n{}", self.log()));
            }
            if let Ok(reply) = client.get("/api/v1/query?query=up%3D%3D1", &[]).await {
                last = reply.body.clone();
                let up = serde_json::from_str::<serde_json::Value>(&reply.body)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/data/result")
                            .and_then(|r| r.as_array())
                            .map(Vec::len)
                    })
                    .unwrap_or(0);
                if up >= targets {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!(
            "Prometheus did not scrape all {targets} targets within {timeout:?}; last answer: {last}\n{}",
            self.log()
        ))
    }

    /// Its HTTP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|err| format!("no free port: {err}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|err| format!("no free port: {err}"))
}
