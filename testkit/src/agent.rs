//! A real `cacheplane-node-agent` process. Engines outlive their agent by design; when
//! an [`Agent`] is dropped, it and every engine it started are killed and its data
//! directory removed, so a test (or benchmark) leaves none behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::process::{engine_pids, kill_engines, log_tail};

/// How to start an agent.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The agent binary.
    pub bin: PathBuf,
    /// The API's base URL.
    pub api_url: String,
    /// The token it sends (`CACHEPLANE_AGENT_TOKEN`).
    pub token: String,
    /// Host id.
    pub host: String,
    /// Zone.
    pub zone: String,
    /// Memory it offers to caches.
    pub memory_bytes: i64,
    /// `--heartbeat-interval`, when not the agent's default.
    pub heartbeat_interval: Option<String>,
    /// `RUST_LOG` for the agent; `None` leaves the agent's own default.
    pub rust_log: Option<String>,
    /// More command-line arguments, e.g. `--network-mode netns --netns-prefix t1ab`.
    pub extra_args: Vec<String>,
}

impl AgentOptions {
    /// The workspace's agent binary against `api_url` with `token`, heartbeating every
    /// 250 ms with `RUST_LOG=info`: what the tests use.
    pub fn for_tests(
        api_url: &str,
        token: &str,
        host: &str,
        zone: &str,
        memory_bytes: i64,
    ) -> Self {
        AgentOptions {
            bin: crate::process::workspace_bin("cacheplane-node-agent"),
            api_url: api_url.to_string(),
            token: token.to_string(),
            host: host.to_string(),
            zone: zone.to_string(),
            memory_bytes,
            heartbeat_interval: Some("250ms".into()),
            rust_log: Some("info".into()),
            extra_args: Vec::new(),
        }
    }

    /// The same options with `args` appended to the command line.
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.extra_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// The same options with the agent's `/metrics` on a free loopback port
    /// (`--metrics-address 127.0.0.1:0`); [`Agent::metrics_url`] tells where.
    pub fn with_metrics(self) -> Self {
        self.with_args(&["--metrics-address", "127.0.0.1:0"])
    }
}

/// A real node agent process.
pub struct Agent {
    /// Host id.
    pub host: String,
    /// Zone.
    pub zone: String,
    /// Its data directory (engine data dirs, pid files, saved config).
    pub data_dir: PathBuf,
    /// Where its stdout and stderr go.
    pub log_path: PathBuf,
    options: AgentOptions,
    child: Option<Child>,
    keep_log: bool,
}

impl Agent {
    /// Starts an agent with a fresh data directory in the temp directory.
    pub fn spawn(options: AgentOptions) -> std::io::Result<Agent> {
        let data_dir = std::env::temp_dir().join(format!(
            "cacheplane-agent-{}-{}",
            options.host,
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&data_dir)?;
        let mut agent = Agent {
            host: options.host.clone(),
            zone: options.zone.clone(),
            log_path: data_dir.with_extension("log"),
            data_dir,
            options,
            child: None,
            keep_log: false,
        };
        agent.respawn()?;
        Ok(agent)
    }

    /// Starts the agent process (again) with the same data directory.
    fn respawn(&mut self) -> std::io::Result<()> {
        let o = &self.options;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let mut cmd = Command::new(&o.bin);
        cmd.args(["--api-url", &o.api_url])
            .args(["--host-id", &o.host])
            .args(["--zone", &o.zone])
            .args(["--address", "127.0.0.1"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--memory-bytes", &o.memory_bytes.to_string()])
            .env("CACHEPLANE_AGENT_TOKEN", &o.token)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(interval) = &o.heartbeat_interval {
            cmd.args(["--heartbeat-interval", interval]);
        }
        cmd.args(&o.extra_args);
        match &o.rust_log {
            Some(filter) => cmd.env("RUST_LOG", filter),
            None => cmd.env_remove("RUST_LOG"),
        };
        self.child = Some(cmd.spawn().map_err(|e| {
            std::io::Error::new(e.kind(), format!("starting {}: {e}", o.bin.display()))
        })?);
        Ok(())
    }

    /// The agent's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(message with the log's tail)` when the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        Some(format!(
            "agent {} exited ({status}); log {}:\n{}",
            self.host,
            self.log_path.display(),
            log_tail(&self.log_path, 6000)
        ))
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Loses the whole host: SIGKILL to the agent and to every engine it runs.
    pub fn kill_host(&mut self) {
        self.kill();
        kill_engines(&self.data_dir);
    }

    /// Starts the agent again with the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.respawn()
            .unwrap_or_else(|e| panic!("restarting agent {}: {e}", self.host));
    }

    /// The pids of the engines it runs, from their pid files, by node id.
    pub fn engine_pids(&self) -> Vec<(String, u32)> {
        engine_pids(&self.data_dir)
    }

    /// The pid of node `node_id`'s running `redis-server`, from its pid file.
    pub fn engine_pid(&self, node_id: &str) -> Option<u32> {
        std::fs::read_to_string(self.node_dir(node_id).join("redis.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|pid| crate::process::is_redis(*pid))
    }

    /// The directory of node `node_id` in the agent's data directory.
    pub fn node_dir(&self, node_id: &str) -> PathBuf {
        self.data_dir.join("nodes").join(node_id)
    }

    /// Keeps the agent's log file after teardown (and says where it is).
    pub fn keep_log(&mut self) {
        self.keep_log = true;
    }

    /// The URL of the agent's `/metrics` (started [`AgentOptions::with_metrics`]), once
    /// it listens: the agent writes the address it bound to its data directory.
    pub fn metrics_url(&self) -> Option<String> {
        let file = self
            .data_dir
            .join(cacheplane_node_agent::metrics::serve::ADDRESS_FILE);
        let bound = std::fs::read_to_string(file).ok()?;
        Some(format!("http://{}/metrics", bound.trim()))
    }

    /// The data directory's path.
    pub fn path(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        kill_engines(&self.data_dir);
        if std::thread::panicking() {
            eprintln!(
                "--- agent {} log (tail) ---\n{}",
                self.host,
                log_tail(&self.log_path, 6000)
            );
        } else if self.keep_log {
            eprintln!("agent {} log kept: {}", self.host, self.log_path.display());
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
