//! The real API server, run as a child process against a benchmark database.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use cacheplane_testkit::process::log_tail;
use cacheplane_testkit::wait::{try_wait_until, Poll};
use tokio::process::{Child, Command};

/// A running `cacheplane-api`.
pub struct ApiServer {
    child: Child,
    base_url: String,
    log_path: PathBuf,
}

impl ApiServer {
    /// Starts `bin` on a free port of 127.0.0.1 with `RUST_LOG=warn` (or `$CACHEPLANE_BENCH_API_LOG`) and waits until
    /// `/readyz` answers 200. Its stderr goes to a log file in the temp directory.
    pub async fn start(bin: &Path, database_url: &str, admin_token: &str) -> anyhow::Result<Self> {
        Self::start_with_args(bin, database_url, admin_token, &[]).await
    }

    /// [`ApiServer::start`] with `extra` flags after the usual ones.
    pub async fn start_with_args(
        bin: &Path,
        database_url: &str,
        admin_token: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        if !bin.is_file() {
            bail!(
                "API binary {} not found (cargo build --release -p cacheplane-api)",
                bin.display()
            );
        }
        let mut last_err = None;
        for _ in 0..3 {
            match Self::try_start(bin, database_url, admin_token, extra).await {
                Ok(server) => return Ok(server),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("API server did not start")))
    }

    async fn try_start(
        bin: &Path,
        database_url: &str,
        admin_token: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        // A port nobody listens on now; the retry above covers losing it to a race.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log_path = std::env::temp_dir().join(format!("cacheplane-bench-api-{port}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Command::new(bin)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            // Secrets through the environment, as the server takes them.
            .env("DATABASE_URL", database_url)
            .env("CACHEPLANE_ADMIN_TOKEN", admin_token)
            // CACHEPLANE_BENCH_API_LOG overrides the filter to look into a run.
            .env(
                "RUST_LOG",
                std::env::var("CACHEPLANE_BENCH_API_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let base_url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let ready = try_wait_until(
            "the API server is ready",
            Duration::from_secs(60),
            Duration::from_millis(50),
            || {
                let exited = child.try_wait();
                let probe = client.get(format!("{base_url}/readyz")).send();
                async move {
                    match exited {
                        Ok(Some(status)) => {
                            return Err(Poll::Permanent(format!("exited with {status}")))
                        }
                        Err(e) => return Err(Poll::Permanent(e.to_string())),
                        Ok(None) => {}
                    }
                    match probe.await {
                        Ok(resp) if resp.status().is_success() => Ok(()),
                        Ok(resp) => {
                            Err(Poll::NotYet(format!("/readyz answered {}", resp.status())))
                        }
                        Err(e) => Err(Poll::NotYet(format!("/readyz: {e}"))),
                    }
                }
            },
        )
        .await;
        if let Err(e) = ready {
            let _ = child.kill().await;
            bail!("{e}:\n{}", log_tail(&log_path, 4096));
        }
        Ok(ApiServer {
            child,
            base_url,
            log_path,
        })
    }

    /// CPU time (user + system) the server has used so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(&format!("/proc/{}/stat", self.child.id()?))
    }

    /// The server's process id (`None` once it exited).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Stops the server with SIGTERM (SIGKILL after 10 s) and removes its log unless it
    /// logged something.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                eprintln!("[bench] API server ignored SIGTERM for 10 s; killing it");
                self.child.kill().await?;
            }
        }
        let logged = std::fs::metadata(&self.log_path).map_or(0, |m| m.len());
        if logged == 0 {
            let _ = std::fs::remove_file(&self.log_path);
        } else {
            eprintln!(
                "[bench] the API server logged warnings: {}",
                self.log_path.display()
            );
        }
        Ok(())
    }
}

/// User + system CPU time from a `/proc/PID/stat` file (`/proc/self/stat` for this
/// process); `None` where it is unreadable.
pub fn cpu_time(stat_path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

/// The unit of `/proc/PID/stat` CPU times (1 / `CLK_TCK`).
pub fn clock_tick() -> Duration {
    Duration::from_secs_f64(1.0 / clock_ticks())
}

/// `getconf CLK_TCK`, 100 when that fails.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}
