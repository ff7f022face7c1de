//! The live stack the CLI tests drive: a database of their own in the `DATABASE_URL`
//! cluster, the real `cacheplane-api`, and real `cacheplane-node-agent`s running
//! `redis-server`, all started from the binaries next to `cachectl`
//! (`cargo build --workspace --bins`, which scripts/test.sh runs first).
//!
//! Every test gets its own 127.X.0.0/16 for instance addresses, held by binding port
//! 41000+X, the convention the API's end-to-end tests use, so that the two suites never
//! put engines on the same address when they run in parallel.

#![allow(dead_code)] // each test uses a different part of the harness

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A built binary of the workspace, next to `cachectl`.
pub fn sibling_binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_cachectl")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: the CLI tests run the real API and agents; build them first with \
         `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

fn cluster_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "DATABASE_URL is not set: the CLI tests need a PostgreSQL cluster. Run them with \
             `bash scripts/test.sh`, or start one with `eval \"$(bash scripts/lib/pg.sh start)\"`"
        ),
    }
}

/// `psql`: on PATH, or in `PG_BINDIR` (scripts/lib/pg.sh sets it).
fn psql() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        let p = PathBuf::from(dir).join("psql");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("psql")
}

fn run_sql(url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new(psql())
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql (install postgresql-client): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A database of this test's own, dropped at the end unless the test failed.
pub struct TestDb {
    /// Its connection URL.
    pub url: String,
    name: String,
    cluster: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let cluster = cluster_url();
        let name = format!("cp_cli_test_{}", uuid::Uuid::new_v4().simple());
        run_sql(&cluster, &format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} in {cluster}: {e}"));
        let url = match cluster.rsplit_once('/') {
            Some((base, rest)) => match rest.split_once('?') {
                Some((_, params)) => format!("{base}/{name}?{params}"),
                None => format!("{base}/{name}"),
            },
            None => panic!("DATABASE_URL {cluster} has no database part"),
        };
        TestDb { url, name, cluster }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping test database {}", self.name);
            return;
        }
        let _ = run_sql(
            &self.cluster,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// A 127.X.0.0/16 no other test process holds, and the listener holding it. From the top
/// down: the API's tests take them from 128 up, and tools started by hand tend to pick
/// round numbers near 200.
pub fn private_supernet() -> (String, TcpListener) {
    for x in (200..=250u16).rev() {
        if let Ok(guard) = TcpListener::bind(("127.0.0.1", 41000 + x)) {
            return (format!("127.{x}.0.0/16"), guard);
        }
    }
    panic!("no free 127.X.0.0/16 for this test (ports 41200-41250 all taken)");
}

/// A TCP port on 127.0.0.1 nobody listens on (best effort).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free port")
}

/// A process with its log file; killed when dropped, its log shown if the test failed.
struct Proc {
    what: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(what: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("creating a log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("cloning the log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        Proc {
            what: what.to_string(),
            child,
            log,
        }
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{} exited ({status}):\n{}",
                self.what,
                tail(&self.log)
            )),
            _ => None,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- {} log {} ---\n{}",
                self.what,
                self.log.display(),
                tail(&self.log)
            );
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The end of a log file.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(6000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// One node agent and the engines it started.
struct Agent {
    proc: Proc,
    data_dir: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Stop the agent first so that it restarts nothing, then its engines, which
        // outlive their agent by design.
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
        if let Ok(entries) = std::fs::read_dir(self.data_dir.join("nodes")) {
            for e in entries.flatten() {
                if let Ok(pid) = std::fs::read_to_string(e.path().join("redis.pid")) {
                    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
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
    agents: Vec<Agent>,
    api: Proc,
    dir: PathBuf,
    _supernet: TcpListener,
    _db: TestDb,
}

impl Stack {
    /// The API alone: enough for everything but instances that become READY.
    pub fn api_only() -> Stack {
        let db = TestDb::new();
        let (supernet, guard) = private_supernet();
        let dir =
            std::env::temp_dir().join(format!("cachectl-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("creating the test directory");
        let admin_token = format!("cachectl-test-{}", uuid::Uuid::new_v4().simple());
        let port = free_port();
        let mut cmd = Command::new(sibling_binary("cacheplane-api"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CACHEPLANE_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env_remove("DATABASE_URL")
            .env("RUST_LOG", "info")
            .args(["--database-url", &db.url])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-token", &admin_token])
            .args(["--default-network-supernet", &supernet]);
        let mut api = Proc::spawn("cacheplane-api", cmd, dir.join("api.log"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(port) {
            if let Some(msg) = api.exited() {
                panic!("{msg}");
            }
            assert!(
                Instant::now() < deadline,
                "cacheplane-api not ready after 60 s:\n{}",
                tail(&api.log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Stack {
            api_url: format!("http://127.0.0.1:{port}"),
            admin_token,
            project: "cli-test".into(),
            agents: Vec::new(),
            api,
            dir,
            _supernet: guard,
            _db: db,
        }
    }

    /// The API and three agents (host-a/b/c in local-a/b/c, 8 GiB each), once
    /// `cachectl hosts list` shows all three UP.
    pub fn with_agents() -> Stack {
        let mut stack = Stack::api_only();
        for z in ["a", "b", "c"] {
            let data_dir = stack.dir.join(format!("agent-{z}"));
            std::fs::create_dir_all(&data_dir).expect("creating an agent data dir");
            let mut cmd = Command::new(sibling_binary("cacheplane-node-agent"));
            cmd.env("CACHEPLANE_AGENT_TOKEN", &stack.admin_token)
                .env("RUST_LOG", "info")
                .args(["--api-url", &stack.api_url])
                .args(["--host-id", &format!("host-{z}")])
                .args(["--zone", &format!("local-{z}")])
                .args(["--address", "127.0.0.1"])
                .arg("--data-dir")
                .arg(&data_dir)
                .args(["--memory-bytes", "8589934592"])
                .args(["--heartbeat-interval", "250ms"]);
            let log = stack.dir.join(format!("agent-{z}.log"));
            let proc = Proc::spawn(&format!("agent host-{z}"), cmd, log);
            stack.agents.push(Agent { proc, data_dir });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let hosts = stack.json(&["hosts", "list"]);
            let up = hosts
                .as_array()
                .map(|a| a.iter().filter(|h| h["state"] == "UP").count())
                .unwrap_or(0);
            if up == 3 {
                return stack;
            }
            for a in &mut stack.agents {
                if let Some(msg) = a.proc.exited() {
                    panic!("{msg}");
                }
            }
            assert!(
                Instant::now() < deadline,
                "3 hosts not UP after 60 s: {hosts}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
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
        let out = self
            .cachectl()
            .args(args)
            .args(["--format", "json"])
            .output();
        let out = out.unwrap_or_else(|e| panic!("running cachectl {args:?}: {e}"));
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
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Agents (and their engines) before the API, so nothing restarts an engine.
        self.agents.clear();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether `GET /readyz` answers 200.
fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req =
        format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}
