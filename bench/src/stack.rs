//! The real local stack for the provisioning figures: a fresh database, the release API
//! binary and three real `cacheplane-node-agent` processes (loopback mode) in local-a/b/c,
//! which run real `redis-server`s. Torn down completely afterwards: agents, the engines
//! they started (which outlive an agent by design), data directories and the database.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use cacheplane_testkit::agent::Agent;
use cacheplane_testkit::agent::AgentOptions;
use cacheplane_testkit::net::{hold_supernet, supernet_guard_port};
use cacheplane_testkit::stack::wait_hosts_up;
use cacheplane_testkit::Caller;

use anyhow::{ensure, Context};
use serde_json::{json, Value};

use crate::admin::AdminClient;
use crate::db::FreshDb;
use crate::server::ApiServer;

/// Instance addresses come from here (`--default-network-supernet`), away from anything
/// else on the machine's loopback.
pub const SUPERNET: &str = "127.200.0.0/16";

/// The X of [`SUPERNET`]: tests mark a 127.X.0.0/16 as theirs by binding port 41000 + X
/// (`cacheplane_testkit::net`); holding it keeps them off while the stack runs.
const SUPERNET_X: u8 = 200;

/// Memory each agent offers (16 GiB).
pub const AGENT_MEMORY_BYTES: i64 = 16 << 30;

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
    api: AdminClient,
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
            Ok((server, agents, api)) => Ok(Stack {
                db,
                server,
                agents,
                api,
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
    ) -> anyhow::Result<(ApiServer, Vec<Agent>, AdminClient)> {
        let token = cacheplane_api::auth::generate_secret();
        let server = ApiServer::start_with_args(
            &cfg.api_bin,
            db.url(),
            &token,
            &["--default-network-supernet", SUPERNET],
        )
        .await?;
        let client = AdminClient::new(server.base_url(), &token)?;
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
        Ok((server, agents, client))
    }

    /// The API server.
    pub fn server(&self) -> &ApiServer {
        &self.server
    }

    /// The API with the admin token.
    pub fn api(&self) -> &AdminClient {
        &self.api
    }

    /// The agents.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// The database's name.
    pub fn db_name(&self) -> &str {
        self.db.name()
    }

    /// The agent that runs node `node_id` (whose data directory has the node's).
    pub fn agent_of(&self, node_id: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.node_dir(node_id).is_dir())
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
    use crate::admin::is_ready;

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
