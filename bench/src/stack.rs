//! The real local stack for the provisioning figures: a fresh database, the release API
//! binary and three real `cacheplane-node-agent` processes (loopback mode) in local-a/b/c,
//! which run real `redis-server`s. Torn down completely afterwards: agents, the engines
//! they started (which outlive an agent by design), data directories and the database.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::{json, Value};

use crate::db::FreshDb;
use crate::server::ApiServer;

/// Instance addresses come from here (`--default-network-supernet`), away from anything
/// else on the machine's loopback.
pub const SUPERNET: &str = "127.200.0.0/16";

/// The e2e tests of `api/tests` mark a 127.X.0.0/16 as theirs by binding port 41000 + X;
/// holding 41200 keeps them off 127.200.0.0/16 while the stack runs.
const SUPERNET_GUARD_PORT: u16 = 41_200;

/// Where the instances are created: project `bench` (made by the first create).
pub const PARENT: &str = "/v1/projects/bench/locations/local";

/// Memory each agent offers (16 GiB).
pub const AGENT_MEMORY_BYTES: i64 = 16 << 30;

/// How long any single create or delete may take before the run is given up.
const OP_LIMIT: Duration = Duration::from_secs(120);

/// What the stack needs.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The cluster to create the database in.
    pub database_url: String,
    /// The `cacheplane-api` binary.
    pub api_bin: PathBuf,
    /// The `cacheplane-node-agent` binary.
    pub agent_bin: PathBuf,
    /// Prefix of the database name.
    pub db_prefix: &'static str,
    /// Keep the database afterwards.
    pub keep_db: bool,
}

/// The agent binary next to the API binary (`target/release/cacheplane-node-agent`).
pub fn default_agent_bin(api_bin: &Path) -> PathBuf {
    api_bin.with_file_name("cacheplane-node-agent")
}

/// A running stack.
pub struct Stack {
    db: FreshDb,
    server: ApiServer,
    agents: Vec<Agent>,
    client: reqwest::Client,
    token: String,
    _guard: TcpListener,
}

impl Stack {
    /// Starts everything and waits until the three hosts are UP.
    pub async fn start(cfg: &StackConfig) -> anyhow::Result<Stack> {
        ensure!(
            cfg.agent_bin.is_file(),
            "node agent binary {} not found (cargo build --release -p cacheplane-node-agent)",
            cfg.agent_bin.display()
        );
        let redis = Command::new("redis-server")
            .arg("--version")
            .output()
            .context("running redis-server --version: install redis-server (the agents run it)")?;
        ensure!(redis.status.success(), "redis-server --version failed");
        let guard = TcpListener::bind(("127.0.0.1", SUPERNET_GUARD_PORT)).with_context(|| {
            format!(
                "port {SUPERNET_GUARD_PORT} is taken: another process (an e2e test?) uses \
                 {SUPERNET}, which the benchmark's instances need"
            )
        })?;
        let db = FreshDb::create(&cfg.database_url, cfg.db_prefix, cfg.keep_db).await?;
        match Self::start_in(cfg, &db).await {
            Ok((server, agents, client, token)) => Ok(Stack {
                db,
                server,
                agents,
                client,
                token,
                _guard: guard,
            }),
            Err(e) => {
                db.drop_db().await.ok();
                Err(e)
            }
        }
    }

    async fn start_in(
        cfg: &StackConfig,
        db: &FreshDb,
    ) -> anyhow::Result<(ApiServer, Vec<Agent>, reqwest::Client, String)> {
        let token = cacheplane_api::auth::generate_secret();
        let server = ApiServer::start_with_args(
            &cfg.api_bin,
            db.url(),
            &token,
            &["--default-network-supernet", SUPERNET],
        )
        .await?;
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(90))
            .build()?;
        let mut agents = Vec::new();
        for z in ["a", "b", "c"] {
            agents.push(Agent::start(
                &cfg.agent_bin,
                server.base_url(),
                &token,
                &format!("host-{z}"),
                &format!("local-{z}"),
            )?);
        }
        let up = wait_hosts_up(&client, server.base_url(), &token, &mut agents, 3).await;
        if let Err(e) = up {
            for a in &mut agents {
                a.keep_log();
            }
            drop(agents);
            server.stop().await.ok();
            return Err(e);
        }
        Ok((server, agents, client, token))
    }

    /// The API server.
    pub fn server(&self) -> &ApiServer {
        &self.server
    }

    /// The agents.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// The database's name.
    pub fn db_name(&self) -> &str {
        self.db.name()
    }

    /// `METHOD path` with the admin token and a JSON body; the status and JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.server.base_url()))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, json))
    }

    /// Sends the create of instance `id`; answers the operation's name and when the
    /// POST was answered.
    pub async fn send_create(&self, id: &str, body: &Value) -> anyhow::Result<(String, Instant)> {
        let (status, op) = self
            .call(
                reqwest::Method::POST,
                &format!("{PARENT}/instances?instanceId={id}"),
                Some(body),
            )
            .await?;
        let at = Instant::now();
        ensure!(status == 200, "create {id}: {status} {op}");
        Ok((op_name(&op)?, at))
    }

    /// Waits (server side, 30 s at a time) until operation `name` is done and fails when
    /// it ended in an error; answers the done operation.
    pub async fn wait_op(&self, name: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + OP_LIMIT;
        loop {
            let (status, op) = self
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/{name}/wait?timeout=30s"),
                    Some(&json!({})),
                )
                .await?;
            ensure!(status == 200, "wait {name}: {status} {op}");
            if op["done"] == true {
                if !op["error"].is_null() {
                    bail!("operation {name} failed: {op}");
                }
                return Ok(op);
            }
            if Instant::now() > deadline {
                bail!("operation {name} not done after {OP_LIMIT:?}: {op}");
            }
        }
    }

    /// Creates instance `id` and waits until it is READY.
    pub async fn create(&self, id: &str, body: &Value) -> anyhow::Result<Value> {
        let (name, _) = self.send_create(id, body).await?;
        self.wait_op(&name).await?;
        self.instance(id).await
    }

    /// `GET …/instances/{id}`, which must answer 200.
    pub async fn instance(&self, id: &str) -> anyhow::Result<Value> {
        let (status, inst) = self
            .call(
                reqwest::Method::GET,
                &format!("{PARENT}/instances/{id}"),
                None,
            )
            .await?;
        ensure!(status == 200, "get {id}: {status} {inst}");
        Ok(inst)
    }

    /// The auth string of instance `id` (`GET …/instances/{id}/authString`).
    pub async fn auth_string(&self, id: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("{PARENT}/instances/{id}/authString"),
                None,
            )
            .await?;
        ensure!(status == 200, "auth string of {id}: {status}");
        body["authString"]
            .as_str()
            .map(str::to_string)
            .context("no authString in the answer")
    }

    /// The first page of `GET …/operations` (newest first, 100 of them).
    pub async fn operations(&self) -> anyhow::Result<Vec<Value>> {
        let (status, body) = self
            .call(reqwest::Method::GET, &format!("{PARENT}/operations"), None)
            .await?;
        ensure!(status == 200, "list operations: {status} {body}");
        Ok(body["operations"].as_array().cloned().unwrap_or_default())
    }

    /// Polls instance `id` every 50 ms until it is READY with `nodes` nodes, all READY;
    /// answers it. Fails after `limit`.
    pub async fn wait_ready(
        &self,
        id: &str,
        nodes: usize,
        limit: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let inst = self.instance(id).await?;
            if is_ready(&inst, nodes) {
                return Ok(inst);
            }
            if Instant::now() > deadline {
                bail!(
                    "{id} not READY with {nodes} READY nodes after {:.0} s: {inst}",
                    limit.as_secs_f64()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The agent that runs node `node_id` (whose data directory has the node's).
    pub fn agent_of(&self, node_id: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.node_dir(node_id).is_dir())
    }

    /// Deletes instance `id` and waits for the operation.
    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        let (status, op) = self
            .call(
                reqwest::Method::DELETE,
                &format!("{PARENT}/instances/{id}"),
                None,
            )
            .await?;
        ensure!(status == 200, "delete {id}: {status} {op}");
        self.wait_op(&op_name(&op)?).await?;
        Ok(())
    }

    /// Tears everything down: agents, their engines and data directories, the API
    /// server, the database. With `failed` the agents' logs are kept for a look.
    pub async fn stop(self, failed: bool) -> anyhow::Result<()> {
        let Stack {
            db,
            server,
            mut agents,
            ..
        } = self;
        if failed {
            for a in &mut agents {
                a.keep_log();
            }
        }
        // Agents first, so none of them sees the API go away or restarts an engine.
        drop(agents);
        let stopped = server.stop().await;
        db.drop_db().await?;
        stopped
    }
}

/// Whether `inst` is READY with `nodes` nodes, every one READY.
pub fn is_ready(inst: &Value, nodes: usize) -> bool {
    let all = inst["nodes"].as_array();
    inst["state"] == "READY"
        && all.map_or(0, Vec::len) == nodes
        && all.is_some_and(|n| n.iter().all(|n| n["state"] == "READY"))
}

/// The create body of the STANDARD_HA instance of the failover and throughput figures
/// (as create-latency's): 1 GB, 2 replicas, read endpoint on (a node in each zone).
pub fn ha_body() -> Value {
    json!({
        "tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 2,
        "readReplicasMode": "READ_REPLICAS_ENABLED"
    })
}

/// The node of `inst` with role `role` (`PRIMARY`, `REPLICA`), the first if several.
pub fn node_with_role<'a>(inst: &'a Value, role: &str) -> anyhow::Result<&'a Value> {
    inst["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["role"] == role))
        .with_context(|| format!("no {role} node in {inst}"))
}

/// The `name` of an operation.
fn op_name(op: &Value) -> anyhow::Result<String> {
    op["name"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no operation name in {op}"))
}

/// Polls `GET /v1/hosts` until `n` hosts are UP (30 s at most).
async fn wait_hosts_up(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    agents: &mut [Agent],
    n: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for a in agents.iter_mut() {
            if let Some(status) = a.child.try_wait()? {
                bail!(
                    "agent {} exited with {status}; its log: {}",
                    a.host,
                    a.log_path.display()
                );
            }
        }
        let body: Value = client
            .get(format!("{base}/v1/hosts"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let up = body["hosts"]
            .as_array()
            .map_or(0, |h| h.iter().filter(|h| h["state"] == "UP").count());
        if up >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{up} of {n} hosts UP after 30 s: {body}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A real node agent process; killed, with the engines it started, when dropped.
pub struct Agent {
    /// Host id.
    pub host: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    log_path: PathBuf,
    keep_log: bool,
    child: Child,
}

impl Agent {
    fn start(
        bin: &Path,
        api_url: &str,
        token: &str,
        host: &str,
        zone: &str,
    ) -> anyhow::Result<Agent> {
        let data_dir = std::env::temp_dir().join(format!(
            "cacheplane-bench-agent-{host}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let log_path = data_dir.with_extension("log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(bin)
            .args(["--api-url", api_url])
            .args(["--host-id", host])
            .args(["--zone", zone])
            .args(["--address", "127.0.0.1"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--memory-bytes", &AGENT_MEMORY_BYTES.to_string()])
            .env("CACHEPLANE_AGENT_TOKEN", token)
            // The agent's own default; the environment of the bench must not change it.
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Agent {
            host: host.to_string(),
            data_dir,
            log_path,
            keep_log: false,
            child,
        })
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Keeps the agent's log file after teardown (and says where it is).
    fn keep_log(&mut self) {
        self.keep_log = true;
    }

    /// The directory of node `node_id` in the agent's data directory.
    pub fn node_dir(&self, node_id: &str) -> PathBuf {
        self.data_dir.join("nodes").join(node_id)
    }

    /// The pid of node `node_id`'s running `redis-server`, from its pid file.
    pub fn engine_pid(&self, node_id: &str) -> Option<u32> {
        std::fs::read_to_string(self.node_dir(node_id).join("redis.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|pid| is_redis(*pid))
    }

    /// The pids of the running `redis-server`s this agent started (from the pid files).
    pub fn engine_pids(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(self.data_dir.join("nodes")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("redis.pid")).ok())
            .filter_map(|s| s.trim().parse().ok())
            .filter(|pid| is_redis(*pid))
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Engines outlive their agent by design; the benchmark leaves none behind: those
        // of the pid files, and any whose pid file is not written yet or was replaced
        // (an engine starts in its node's directory, under the data directory).
        let mut engines = self.engine_pids();
        for pid in redis_under(&self.data_dir) {
            if !engines.contains(&pid) {
                engines.push(pid);
            }
        }
        for pid in &engines {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        // Gone before the next stack binds the same addresses.
        let deadline = Instant::now() + Duration::from_secs(5);
        while engines.iter().any(|p| is_redis(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if self.keep_log {
            eprintln!(
                "[bench] agent {} log kept: {}",
                self.host,
                self.log_path.display()
            );
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

/// Whether `pid` is a live `redis-server` (not a zombie, not a reused pid).
fn is_redis(pid: u32) -> bool {
    let running = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(')')?.1.split_whitespace().next()?.to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false);
    running
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            c.split(|b| *b == 0 || *b == b' ')
                .next()
                .is_some_and(|prog| prog.ends_with(b"redis-server"))
        })
}

/// The running `redis-server`s whose working directory is under `dir`.
fn redis_under(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .filter(|pid| is_redis(*pid))
        .collect()
}

/// `VmRSS` of a process in bytes, from `/proc/PID/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_rss_is_read_and_this_is_no_redis() {
        let rss = rss_bytes(std::process::id()).expect("VmRSS of this process");
        assert!(rss > 1 << 20, "{rss}");
        assert!(!is_redis(std::process::id()));
        assert!(rss_bytes(u32::MAX).is_none());
    }

    #[test]
    fn ready_means_every_node_ready() {
        let inst = |state: &str, nodes: &[&str]| {
            let nodes: Vec<Value> = nodes.iter().map(|s| json!({ "state": s })).collect();
            json!({ "state": state, "nodes": nodes })
        };
        assert!(is_ready(&inst("READY", &["READY"; 3]), 3));
        assert!(!is_ready(&inst("READY", &["READY", "DOWN", "READY"]), 3));
        assert!(!is_ready(&inst("READY", &["READY"; 2]), 3));
        assert!(!is_ready(&inst("FAILING_OVER", &["READY"; 3]), 3));
        // No engine runs in a fresh directory.
        let dir = std::env::temp_dir().join(format!("cacheplane-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        assert!(redis_under(&dir).is_empty());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn agent_bin_is_next_to_the_api() {
        assert_eq!(
            default_agent_bin(Path::new("target/release/cacheplane-api")),
            Path::new("target/release/cacheplane-node-agent")
        );
    }
}
