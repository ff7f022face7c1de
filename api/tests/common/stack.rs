//! The real stack for end-to-end tests: the API, real `cacheplane-node-agent`
//! processes and the `redis-server`s they run, with `redis-cli` to check them as a user
//! would.
//!
//! Each test gets its own 127.X.0.0/16 for instance addresses (the project's default
//! network), so tests running in parallel never bind the same address. The /16 is held
//! by binding a marker port for the life of the test process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::client::{instance, op_name, wait_op, PARENT};
use super::{Api, TestDb};

/// Bytes in a GiB.
pub const GIB: i64 = 1 << 30;

/// The agent binary: built next to the API binary (`cargo build --workspace --bins`,
/// which the test command runs first).
pub fn agent_binary() -> PathBuf {
    let api = PathBuf::from(env!("CARGO_BIN_EXE_cacheplane-api"));
    let agent = api.with_file_name("cacheplane-node-agent");
    assert!(
        agent.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        agent.display()
    );
    agent
}

/// A /16 of 127.0.0.0/8 that no other test process holds, and the guard that holds it.
pub fn private_supernet() -> (String, TcpListener) {
    for x in 128..=250u16 {
        if let Ok(guard) = TcpListener::bind(("127.0.0.1", 41000 + x)) {
            return (format!("127.{x}.0.0/16"), guard);
        }
    }
    panic!("no free 127.X.0.0/16 for this test (ports 41128-41250 all taken)");
}

/// An API whose projects' default networks come from this test's own /16.
pub async fn start_api(db: &TestDb, extra: &[&str]) -> (Api, TcpListener) {
    let (supernet, guard) = private_supernet();
    let mut args = vec!["--default-network-supernet", &supernet];
    args.extend_from_slice(extra);
    (Api::start_with_args(db, &args).await, guard)
}

/// A real node agent process.
pub struct Agent {
    /// Host id.
    pub host: String,
    /// Zone.
    pub zone: String,
    /// Its data directory (engine data dirs, pid files, saved config).
    pub data_dir: PathBuf,
    memory_bytes: i64,
    api_url: String,
    token: String,
    log_path: PathBuf,
    child: Option<Child>,
}

impl Agent {
    /// Starts an agent for `host` in `zone` offering `memory_bytes`, with the admin token.
    pub fn start(api: &Api, host: &str, zone: &str, memory_bytes: i64) -> Agent {
        let data_dir = std::env::temp_dir().join(format!(
            "cacheplane-agent-{host}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&data_dir).expect("creating the agent data dir");
        let mut agent = Agent {
            host: host.to_string(),
            zone: zone.to_string(),
            log_path: data_dir.with_extension("log"),
            data_dir,
            memory_bytes,
            api_url: api.base.clone(),
            token: api.admin_token.clone(),
            child: None,
        };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("opening the agent log");
        let child = Command::new(agent_binary())
            .args(["--api-url", &self.api_url])
            .args(["--host-id", &self.host])
            .args(["--zone", &self.zone])
            .args(["--address", "127.0.0.1"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--memory-bytes", &self.memory_bytes.to_string()])
            .args(["--heartbeat-interval", "250ms"])
            .env("CACHEPLANE_AGENT_TOKEN", &self.token)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("starting cacheplane-node-agent");
        self.child = Some(child);
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
        for (_, pid) in engine_pids(&self.data_dir) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }

    /// Starts the agent again with the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The pids of the engines it runs, from their pid files, by node id.
    pub fn engine_pids(&self) -> Vec<(String, u32)> {
        engine_pids(&self.data_dir)
    }
}

/// `(node id, pid)` for every `nodes/<id>/redis.pid` under `data_dir`.
pub fn engine_pids(data_dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(data_dir.join("nodes")) else {
        return out;
    };
    for e in entries.flatten() {
        let pid = std::fs::read_to_string(e.path().join("redis.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if let Some(pid) = pid {
            out.push((e.file_name().to_string_lossy().into_owned(), pid));
        }
    }
    out.sort();
    out
}

/// Whether a process with this pid runs (a zombie waiting to be reaped does not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        // Engines outlive their agent by design; a test leaves none behind.
        for (_, pid) in engine_pids(&self.data_dir) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let tail: String = log
                .chars()
                .rev()
                .take(6000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            eprintln!("--- agent {} log (tail) ---\n{tail}", self.host);
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Three agents, in local-a, local-b and local-c, once all three are registered and UP.
pub async fn three_agents(api: &Api, memory_bytes: i64) -> Vec<Agent> {
    let agents: Vec<Agent> = ["a", "b", "c"]
        .iter()
        .map(|z| {
            Agent::start(
                api,
                &format!("host-{z}"),
                &format!("local-{z}"),
                memory_bytes,
            )
        })
        .collect();
    wait_hosts_up(api, 3).await;
    agents
}

/// Waits until `n` hosts are registered and UP.
pub async fn wait_hosts_up(api: &Api, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = api.get("/v1/hosts").await;
        let up = body["hosts"]
            .as_array()
            .map(|h| h.iter().filter(|h| h["state"] == "UP").count())
            .unwrap_or(0);
        if status == 200 && up >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{up} of {n} hosts UP after 30 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `redis-cli -h host -p port [-a auth] ARGS…` and returns its trimmed output
/// (errors included, as a user sees them).
pub fn redis_cli(host: &str, port: u16, auth: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", host, "-p", &port.to_string(), "--no-auth-warning"]);
    if let Some(a) = auth {
        cmd.env("REDISCLI_AUTH", a);
    }
    let out = cmd
        .args(args)
        .output()
        .expect("running redis-cli (install redis-tools)");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s.trim().to_string()
}

/// Polls `check` every 100 ms until it returns true, for at most `limit`.
pub async fn eventually<F: FnMut() -> bool>(what: &str, limit: Duration, mut check: F) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not true after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates an instance in the test project, waits (up to 60 s) until its create
/// operation is done without error, and returns the instance and its auth string.
pub async fn create_ready(api: &Api, name: &str, body: Value) -> (Value, String) {
    let (status, op) = api
        .post(&format!("{PARENT}/instances?instanceId={name}"), body)
        .await;
    assert_eq!(status, 200, "create {name}: {op}");
    let done = wait_op(api, &op_name(&op), "60s").await;
    assert!(
        done["done"] == true && done["error"].is_null(),
        "create {name}: {done}"
    );
    let (_, auth) = api
        .get(&format!("{PARENT}/instances/{name}/authString"))
        .await;
    (
        instance(api, name).await,
        auth["authString"].as_str().unwrap_or_default().to_string(),
    )
}
