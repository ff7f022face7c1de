//! The live stack the CLI tests drive: a database of their own in the `DATABASE_URL`
//! cluster, the real `cacheplane-api`, and real `cacheplane-node-agent`s running
//! `redis-server`, all started from the binaries next to `cachectl`
//! (`cargo build --workspace --bins`, which scripts/test.sh runs first).
//!
//! The pieces come from the workspace's test kit (`cacheplane-testkit`), which the API's
//! tests share: every test gets its own 127.X.0.0/16 for instance addresses, so that the
//! suites never put engines on the same address when they run in parallel.

#![allow(dead_code)] // each test uses a different part of the harness

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cacheplane_testkit::agent::{Agent, AgentOptions};
use cacheplane_testkit::stack::{start_api, wait_hosts_up};
use cacheplane_testkit::{Api, TestDb, GIB};
use serde_json::Value;

/// A built binary of the workspace, next to `cachectl`.
pub fn sibling_binary(name: &str) -> PathBuf {
    cacheplane_testkit::process::workspace_bin(name)
}

/// The end of a log file.
pub fn tail(path: &Path) -> String {
    cacheplane_testkit::process::log_tail(path, 6000)
}

/// The API, optionally with three agents in local-a/b/c, and how to run `cachectl`
/// against it.
pub struct Stack {
    /// The API's base URL.
    pub api_url: String,
    /// Its admin token.
    pub admin_token: String,
    /// The project the tests use.
    pub project: String,
    // Dropped in this order: agents (and their engines) before the API, so nothing
    // restarts an engine; the database after the API.
    agents: Vec<Agent>,
    api: Api,
    dir: PathBuf,
    _supernet: TcpListener,
    _db: TestDb,
    rt: tokio::runtime::Runtime,
}

impl Stack {
    /// The API alone: enough for everything but instances that become READY.
    pub fn api_only() -> Stack {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building a runtime");
        let db = rt.block_on(TestDb::new());
        let (api, guard) = rt.block_on(start_api(&db, &[]));
        let dir =
            std::env::temp_dir().join(format!("cachectl-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("creating the test directory");
        Stack {
            api_url: api.base.clone(),
            admin_token: api.admin_token.clone(),
            project: "cli-test".into(),
            agents: Vec::new(),
            api,
            dir,
            _supernet: guard,
            _db: db,
            rt,
        }
    }

    /// The API and three agents (host-a/b/c in local-a/b/c, 8 GiB each), once all three
    /// are UP.
    pub fn with_agents() -> Stack {
        let mut stack = Stack::api_only();
        for z in ["a", "b", "c"] {
            let (host, zone) = (format!("host-{z}"), format!("local-{z}"));
            let options =
                AgentOptions::for_tests(&stack.api_url, &stack.admin_token, &host, &zone, 8 * GIB);
            let agent = Agent::spawn(options).unwrap_or_else(|e| panic!("starting {host}: {e}"));
            stack.agents.push(agent);
        }
        let caller = stack.api.caller();
        stack
            .rt
            .block_on(wait_hosts_up(&caller, &mut stack.agents, 3))
            .unwrap_or_else(|e| panic!("{e}"));
        stack
    }

    /// A `cachectl` command for this stack: API URL, admin token, project and region
    /// `local` from the environment, and a configuration file of its own (none yet), so
    /// nothing from the developer's settings leaks in.
    pub fn cachectl(&self) -> assert_cmd::Command {
        let mut cmd = self.bare_cachectl();
        cmd.env("CACHECTL_API_URL", &self.api_url)
            .env("CACHECTL_TOKEN", &self.admin_token)
            .env("CACHECTL_PROJECT", &self.project)
            .env("CACHECTL_REGION", "local");
        cmd
    }

    /// `cachectl` with no settings but the configuration file path (this test's own).
    pub fn bare_cachectl(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_cachectl"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CACHECTL_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("CACHECTL_CONFIG", self.config_path())
            .env("XDG_CONFIG_HOME", self.dir.join("xdg"))
            .timeout(Duration::from_secs(300));
        cmd
    }

    /// This test's configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("cachectl.toml")
    }

    /// A scratch path inside the test's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `cachectl ARGS --format json`, which must succeed, and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        run_json(self.cachectl(), args)
    }
}

/// Runs `cmd ARGS --format json` (a `cachectl` command), which must succeed, and parses
/// its output.
pub fn run_json(mut cmd: assert_cmd::Command, args: &[&str]) -> Value {
    let out = cmd
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap_or_else(|e| panic!("running cachectl {args:?}: {e}"));
    assert!(
        out.status.success(),
        "cachectl {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cachectl {args:?}: not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.agents.clear();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
