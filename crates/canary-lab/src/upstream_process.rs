//! A backend running as its own process (`canary upstream`), driven over
//! HTTP (`PUT /_sim/faults`, `GET /_sim/state`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::backend::Faults;
use crate::load::Client;
use crate::paths;

/// A running `canary upstream`. Dropping it kills the process.
#[derive(Debug)]
pub struct UpstreamProcess {
    child: Child,
    addr: SocketAddr,
    version: String,
    client: Client,
}

impl UpstreamProcess {
    /// Starts `canary upstream --version <version>` on a free port.
    pub fn start(version: &str) -> Result<UpstreamProcess, String> {
        let binary = paths::canary_binary()?;
        let mut child = Command::new(&binary)
            .args(["upstream", "--version", version, "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("starting {}: {err}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|err| format!("reading the upstream's address: {err}"))?;
        let addr: SocketAddr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("unexpected first line from canary upstream: {line:?}"))?;
        Ok(UpstreamProcess {
            child,
            addr,
            version: version.to_owned(),
            client: Client::new(addr, "upstream").with_timeout(Duration::from_secs(5)),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Switches faults on or off.
    pub async fn set_faults(&self, faults: &Faults) -> Result<(), String> {
        let body = serde_json::to_string(faults).map_err(|err| err.to_string())?;
        let reply = self
            .client
            .put_json("/_sim/faults", &body)
            .await
            .map_err(|err| err.to_string())?;
        if reply.status == 200 {
            Ok(())
        } else {
            Err(format!(
                "upstream refused faults: {} {}",
                reply.status, reply.body
            ))
        }
    }

    /// Requests served so far (health checks and scrapes excluded).
    pub async fn served(&self) -> Result<u64, String> {
        let reply = self
            .client
            .get("/_sim/state", &[])
            .await
            .map_err(|err| err.to_string())?;
        serde_json::from_str::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("served").and_then(|s| s.as_u64()))
            .ok_or_else(|| format!("unexpected state: {}", reply.body))
    }
}

impl Drop for UpstreamProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
