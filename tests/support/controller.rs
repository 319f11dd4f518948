//! The controller as a real process (`canary run`), its API, and the
//! rollout files the end-to-end tests give it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use canary_api::client::ApiClient;
use canary_rollout::driver::Report as StatusView;

/// A running `canary run`. Dropping it kills the process.
pub struct ControllerProcess {
    child: Child,
    api: String,
    log: PathBuf,
    client: ApiClient,
    token: Option<String>,
    token_file: PathBuf,
}

impl ControllerProcess {
    /// Starts `canary run` with `args` (plus the API on a free port and
    /// its token in `dir/api-token` unless `args` give one), and waits
    /// until its API answers.
    pub async fn start(dir: &Path, args: &[String]) -> ControllerProcess {
        ControllerProcess::start_with_env(dir, args, &[]).await
    }

    /// [`ControllerProcess::start`] with extra environment variables.
    pub async fn start_with_env(
        dir: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> ControllerProcess {
        ControllerProcess::start_under(dir, args, env, &[]).await
    }

    /// [`ControllerProcess::start_with_env`], started through `launcher`
    /// (a command that runs the rest of its arguments, e.g. `prlimit
    /// --nofile=256:256`).
    pub async fn start_under(
        dir: &Path,
        args: &[String],
        env: &[(&str, &str)],
        launcher: &[&str],
    ) -> ControllerProcess {
        let binary = canary_lab::paths::canary_binary().unwrap_or_else(|err| panic!("{err}"));
        let address_file = dir.join(format!("api-address-{}", unique()));
        let log = dir.join(format!("controller-{}.log", unique()));
        let log_file = std::fs::File::create(&log).expect("log file");
        let token_file = dir.join("api-token");
        let mut command = match launcher.split_first() {
            Some((program, launcher_args)) => {
                let mut command = Command::new(program);
                command.args(launcher_args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let child = command
            .arg("run")
            .args(args)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--address-file")
            .arg(&address_file)
            .arg("--token-file")
            .arg(&token_file)
            .env_remove("CANARY_TOKEN")
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("canary run starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut child = child;
        let api = loop {
            if let Ok(text) = std::fs::read_to_string(&address_file) {
                if !text.trim().is_empty() {
                    break format!("http://{}", text.trim());
                }
            }
            // Refused before it listened (e.g. its state file is locked).
            if matches!(child.try_wait(), Ok(Some(_))) {
                break "http://127.0.0.1:1".to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "canary run never listened:\n{}",
                read(&log)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let given = args
            .iter()
            .position(|a| a == "--token")
            .and_then(|i| args.get(i + 1))
            .cloned();
        let token = given.or_else(|| {
            std::fs::read_to_string(&token_file)
                .ok()
                .map(|t| t.trim().to_owned())
        });
        let client = ApiClient::new(&api, token.clone()).expect("client");
        let mut process = ControllerProcess {
            child,
            api,
            log,
            client,
            token,
            token_file,
        };
        // The API listens before the rollout is loaded (or restored): wait
        // until it reports one, or until the process has already finished
        // (a rollout that was over before it started).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if matches!(process.child.try_wait(), Ok(Some(_))) {
                break;
            }
            if let Ok(status) = process.client.status().await {
                if !status.rollout.is_empty() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "canary run never loaded its rollout:\n{}",
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        process
    }

    /// The API's base URL.
    pub fn api(&self) -> &str {
        &self.api
    }

    /// The API's token.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The file `canary run` keeps its token in.
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    /// The API client.
    pub fn client(&self) -> &ApiClient {
        &self.client
    }

    /// What the process logged.
    pub fn log(&self) -> String {
        read(&self.log)
    }

    /// `GET /status`, once it answers.
    pub async fn status(&self) -> StatusView {
        match self.client.status().await {
            Ok(status) => status,
            Err(err) => panic!("status failed: {err}\n{}", self.log()),
        }
    }

    /// Waits until the status satisfies `done`, failing after `timeout`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&StatusView) -> bool,
    ) -> StatusView {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(status) = self.client.status().await {
                if done(&status) {
                    return status;
                }
                if Instant::now() >= deadline {
                    panic!(
                        "timed out after {timeout:?} waiting for {what}; status: {}\nlog:\n{}",
                        serde_json::to_string_pretty(&status).unwrap_or_default(),
                        self.log()
                    );
                }
            } else if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; no status\nlog:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "canary run did not exit within {timeout:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM: asks the process to stop.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
