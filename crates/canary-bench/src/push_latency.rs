//! Config push latency: from the controller's decision (the push through
//! the ECDS file starts) to the first request routed with the new weight,
//! over 50 pushes that alternate the canary between 0% and 100% so a
//! single probe request shows which weight is in force.

use std::time::{Duration, Instant};

use canary_lab::backend::Backend;
use canary_lab::envoy::{Delivery, Envoy, EnvoySpec};
use canary_lab::load::Client;
use canary_router::ecds_file::EcdsFile;
use serde::{Deserialize, Serialize};

use crate::stats::quantile;

/// Push latency figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushLatency {
    /// Pushes measured.
    pub pushes: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

/// Measures `pushes` pushes.
pub async fn measure(pushes: usize) -> Result<PushLatency, String> {
    let stable = Backend::start("v1").await.map_err(|e| e.to_string())?;
    let canary = Backend::start("v2").await.map_err(|e| e.to_string())?;
    let config = |weight: u32| {
        serde_json::json!({
            "routes": [{ "name": "app", "match": { "hosts": ["*"] }, "stable": "v1", "canary": "v2", "canary_weight": weight }]
        })
    };
    let spec = EnvoySpec::new(
        Delivery::Ecds,
        config(0).to_string(),
        stable.addr(),
        canary.addr(),
    );
    let envoy = Envoy::start(&spec).await.map_err(|e| e.to_string())?;
    let file = EcdsFile::new(envoy.ecds_path().ok_or("no ECDS file")?, "canary");
    let client = Client::new(envoy.listener(), "app").with_timeout(Duration::from_secs(5));
    let mut latencies = Vec::with_capacity(pushes);
    for i in 0..pushes {
        let (weight, expect) = if i % 2 == 0 { (100, "v2") } else { (0, "v1") };
        let filter: canary_config::FilterConfig =
            serde_json::from_value(config(weight)).map_err(|e| e.to_string())?;
        let decided = Instant::now();
        file.push(&filter).map_err(|e| e.to_string())?;
        loop {
            let reply = client.get("/", &[]).await.map_err(|e| e.to_string())?;
            if reply.served_by.as_deref() == Some(expect) {
                latencies.push(decided.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if decided.elapsed() > Duration::from_secs(10) {
                return Err(format!("push {i} never took effect"));
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(PushLatency {
        pushes,
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        max_ms: latencies.iter().copied().fold(0.0, f64::max),
    })
}
