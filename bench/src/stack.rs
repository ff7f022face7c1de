//! The real local stack for the provisioning figures: a fresh database, the release API
//! binary and three real `cacheplane-node-agent` processes (loopback mode) in local-a/b/c,
//! which run real `redis-server`s. Torn down completely afterwards: agents, the engines
//! they started (which outlive an agent by design), data directories and the database.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use cacheplane_testkit::agent::Agent;
use cacheplane_testkit::agent::AgentOptions;
use cacheplane_testkit::net::{hold_supernet, supernet_guard_port};
use cacheplane_testkit::stack::wait_hosts_up;
use cacheplane_testkit::wait::{try_wait_until, Poll};
use cacheplane_testkit::Caller;

use anyhow::{bail, ensure, Context};
use serde_json::{json, Value};

use crate::db::FreshDb;
use crate::server::ApiServer;

/// Instance addresses come from here (`--default-network-supernet`), away from anything
/// else on the machine's loopback.
pub const SUPERNET: &str = "127.200.0.0/16";

/// The X of [`SUPERNET`]: tests mark a 127.X.0.0/16 as theirs by binding port 41000 + X
/// (`cacheplane_testkit::net`); holding it keeps them off while the stack runs.
const SUPERNET_X: u8 = 200;

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
    /// More arguments for every agent (e.g. `--read-endpoint kernel`).
    pub agent_args: Vec<String>,
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
        let guard = hold_supernet(SUPERNET_X).with_context(|| {
            format!(
                "port {} is taken: another process (an e2e test?) uses \
                 {SUPERNET}, which the benchmark's instances need",
                supernet_guard_port(SUPERNET_X)
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
            agents.push(Agent::spawn(AgentOptions {
                bin: cfg.agent_bin.clone(),
                api_url: server.base_url().to_string(),
                token: token.clone(),
                host: format!("host-{z}"),
                zone: format!("local-{z}"),
                memory_bytes: AGENT_MEMORY_BYTES,
                heartbeat_interval: None,
                // The agent's own default; the environment of the bench must not change it.
                rust_log: None,
                extra_args: cfg.agent_args.clone(),
            })?);
        }
        let api = Caller::http(server.base_url(), &token);
        let up = wait_hosts_up(&api, &mut agents, 3).await;
        if let Err(e) = up {
            for a in &mut agents {
                a.keep_log();
            }
            drop(agents);
            server.stop().await.ok();
            return Err(e.into());
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
        body["operations"]
            .as_array()
            .cloned()
            .with_context(|| format!("no operations array in {body}"))
    }

    /// Polls instance `id` every 50 ms until it is READY with `nodes` nodes, all READY;
    /// answers it. Fails after `limit`.
    pub async fn wait_ready(
        &self,
        id: &str,
        nodes: usize,
        limit: Duration,
    ) -> anyhow::Result<Value> {
        let what = format!("{id} is READY with {nodes} READY nodes");
        let inst = try_wait_until(&what, limit, Duration::from_millis(50), || async {
            match self.instance(id).await {
                Ok(inst) if is_ready(&inst, nodes) => Ok(inst),
                Ok(inst) => Err(Poll::NotYet(inst.to_string())),
                Err(e) => Err(Poll::Permanent(format!("{e:#}"))),
            }
        })
        .await?;
        Ok(inst)
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
        assert!(!cacheplane_testkit::process::is_redis(std::process::id()));
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
        assert!(cacheplane_testkit::process::redis_under(&dir).is_empty());
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
