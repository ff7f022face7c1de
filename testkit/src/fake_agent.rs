//! A fake node agent: plays the agent protocol over plain HTTP (register, pull the host
//! config, heartbeat with observed state) without running any engine, so tests can drive
//! instances through their lifecycle.
//!
//! ```ignore
//! let mut fleet = Fleet::three_zones(&api, 8 * GIB).await; // host-a/b/c in local-a/b/c
//! let op = create_ok(&api, "c1", basic(1)).await;
//! let done = fleet.converge(&api, &op).await; // agents apply and report until done
//! ```
//!
//! Each `FakeAgent::sync` fetches the host's current config, "applies" it (records its
//! generation as applied) and heartbeats: every node of the config is reported running in
//! its desired role with its replication link up, unless the test told the agent that the
//! node fails (`fail_node`) or lags (`set_lag`). Nodes that left the config are simply not
//! reported any more, which is how a real agent says it stopped them. A primary told to
//! hand over (`switchover` in its spec) is reported handed over at once (a replica of
//! the target, `switchover.state` DONE), as a real agent reports it once its engine's
//! `FAILOVER TO` is done, unless the test made the agent refuse (`refuse_handovers`:
//! ABORTED with the reason, still primary). Memcached nodes are reported running with
//! the parameters of their spec, unless told to fail (`fail_node`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cacheplane_types::{HostConfig, NodeRole, NodeSpec};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::api::{op_name, Api, Caller};
use crate::wait::{not_yet, wait_until};

/// The engine every fake host runs.
pub const ENGINE: &str = "REDIS_7_0";

/// The Memcached engine every fake host also offers.
pub const MEMCACHE_ENGINE: &str = "MEMCACHE_1_6";

/// How long `Fleet::converge` keeps syncing before it gives up.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

/// One fake node agent, bound to one host.
#[derive(Clone)]
pub struct FakeAgent {
    /// Host id (`hosts/{host}` on the wire).
    pub host: String,
    /// Its zone.
    pub zone: String,
    /// The last config it fetched.
    pub config: HostConfig,
    /// The generation it last reported applying (0 before the first sync).
    pub applied: i64,
    errors: HashMap<Uuid, String>,
    lags: HashMap<Uuid, i64>,
    refuse_handovers: Option<String>,
    caller: Caller,
}

impl FakeAgent {
    /// Registers `host` in `zone` offering `memory_bytes` to caches (`PUT /v1/hosts/{host}`)
    /// and fetches its config. Talks to `api`'s port with its admin token, so it keeps
    /// working across `api.restart()`.
    pub async fn register(api: &Api, host: &str, zone: &str, memory_bytes: i64) -> FakeAgent {
        let mut agent = FakeAgent::new(api.caller(), host, zone);
        agent.register_again(memory_bytes).await;
        agent.fetch_config().await;
        agent
    }

    /// The agent of `host`, which is registered already, talking through `caller`;
    /// fetches its config.
    pub async fn attach(caller: Caller, host: &str, zone: &str) -> FakeAgent {
        let mut agent = FakeAgent::new(caller, host, zone);
        agent.fetch_config().await;
        agent
    }

    fn new(caller: Caller, host: &str, zone: &str) -> FakeAgent {
        FakeAgent {
            host: host.to_string(),
            zone: zone.to_string(),
            config: HostConfig {
                host: format!("hosts/{host}"),
                generation: 0,
                nodes: Vec::new(),
                connectors: Vec::new(),
                memcache_nodes: Vec::new(),
                discovery_endpoints: Vec::new(),
            },
            applied: 0,
            errors: HashMap::new(),
            lags: HashMap::new(),
            refuse_handovers: None,
            caller,
        }
    }

    /// Re-registers the host with a new capacity (a real agent does this at start-up).
    pub async fn register_again(&mut self, memory_bytes: i64) -> Value {
        let body = json!({
            "zone": self.zone,
            "address": "127.0.0.1",
            "memoryBytes": memory_bytes,
            "engines": [ENGINE, MEMCACHE_ENGINE],
        });
        let path = format!("/v1/hosts/{}", self.host);
        let (status, host) = self.call(Method::PUT, &path, Some(body)).await;
        assert_eq!(status, 200, "PUT {path}: {host}");
        assert_eq!(host["name"], format!("hosts/{}", self.host), "{host}");
        assert_eq!(host["memoryBytes"], memory_bytes, "{host}");
        host
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.caller.req(method, path, body).await
    }

    fn parse_config(&self, what: &str, status: u16, body: Value) -> HostConfig {
        assert_eq!(status, 200, "agent {}: {what}: {body}", self.host);
        let config: HostConfig = serde_json::from_value(body.clone()).unwrap_or_else(|e| {
            panic!(
                "agent {}: {what}: not a HostConfig ({e}): {body}",
                self.host
            )
        });
        assert_eq!(config.host, format!("hosts/{}", self.host), "{body}");
        config
    }

    /// `GET /v1/hosts/{host}/config` (no waiting); remembers and returns it.
    pub async fn fetch_config(&mut self) -> &HostConfig {
        let path = format!("/v1/hosts/{}/config", self.host);
        let (status, body) = self.call(Method::GET, &path, None).await;
        self.config = self.parse_config(&path, status, body);
        &self.config
    }

    /// Long-polls `GET /v1/hosts/{host}/config?generation=N&timeout=T` with the
    /// generation of the config it holds: answers once a newer one exists, or with the
    /// current one after `timeout` (e.g. `"5s"`). Remembers and returns it.
    pub async fn long_poll(&mut self, timeout: &str) -> &HostConfig {
        let path = format!(
            "/v1/hosts/{}/config?generation={}&timeout={timeout}",
            self.host, self.config.generation
        );
        let (status, body) = self.call(Method::GET, &path, None).await;
        self.config = self.parse_config(&path, status, body);
        &self.config
    }

    /// From now on, reports `node` as unable to start, with `reason` as the engine's error.
    pub fn fail_node(&mut self, node: &str, reason: &str) {
        self.errors.insert(parse_node_id(node), reason.to_string());
    }

    /// From now on, reports every handover it is told to make as aborted for `reason`
    /// (the engine stays primary).
    pub fn refuse_handovers(&mut self, reason: &str) {
        self.refuse_handovers = Some(reason.to_string());
    }

    /// From now on, reports `node` as healthy again.
    pub fn recover_node(&mut self, node: &str) {
        self.errors.remove(&parse_node_id(node));
    }

    /// From now on, reports `node` (a replica) as `bytes` behind its primary.
    pub fn set_lag(&mut self, node: &str, bytes: i64) {
        self.lags.insert(parse_node_id(node), bytes);
    }

    /// The node of the held config with this id.
    pub fn node(&self, id: &str) -> Option<&NodeSpec> {
        self.config
            .nodes
            .iter()
            .find(|n| n.node_id.to_string() == id)
    }

    /// The heartbeat body for the held config applied at `self.applied`.
    pub fn report(&self) -> Value {
        let nodes: Vec<Value> = self
            .config
            .nodes
            .iter()
            .map(|n| {
                if let Some(reason) = self.errors.get(&n.node_id) {
                    return json!({ "nodeId": n.node_id, "processUp": false, "error": reason });
                }
                let mut r = json!({
                    "nodeId": n.node_id,
                    "processUp": true,
                    "role": n.role,
                    "replicationOffset": 1000,
                    "usedMemoryBytes": 1_048_576,
                    "connectedClients": 1,
                    "engineVersion": "7.0.15",
                });
                if n.role == NodeRole::Replica {
                    let lag = self.lags.get(&n.node_id).copied().unwrap_or(0);
                    r["masterLinkUp"] = json!(true);
                    r["lagBytes"] = json!(lag);
                    r["replicationOffset"] = json!(1000 - lag);
                }
                if let Some(s) = n
                    .switchover
                    .as_ref()
                    .filter(|_| n.role == NodeRole::Primary)
                {
                    r["switchover"] = match &self.refuse_handovers {
                        Some(why) => json!({ "id": s.id, "state": "ABORTED", "message": why }),
                        None => {
                            r["role"] = json!(NodeRole::Replica);
                            r["masterLinkUp"] = json!(true);
                            json!({ "id": s.id, "state": "DONE" })
                        }
                    };
                }
                r
            })
            .collect();
        let memcache: Vec<Value> = self
            .config
            .memcache_nodes
            .iter()
            .map(|n| match self.errors.get(&n.node_id) {
                Some(reason) => json!({ "nodeId": n.node_id, "processUp": false, "error": reason }),
                None => json!({
                    "nodeId": n.node_id,
                    "processUp": true,
                    "pid": 1,
                    "engineVersion": "1.6.18",
                    "parameters": n.parameters,
                }),
            })
            .collect();
        json!({ "appliedGeneration": self.applied, "nodes": nodes, "memcacheNodes": memcache })
    }

    /// `POST /v1/hosts/{host}/heartbeat` with `report()`; returns the answer
    /// (`{"configGeneration": N}`).
    pub async fn heartbeat(&self) -> Value {
        let path = format!("/v1/hosts/{}/heartbeat", self.host);
        let (status, body) = self.call(Method::POST, &path, Some(self.report())).await;
        assert_eq!(status, 200, "agent {}: POST {path}: {body}", self.host);
        assert!(body["configGeneration"].is_i64(), "{body}");
        body
    }

    /// Fetches the current config, applies it and reports it healthy (see the module doc).
    pub async fn sync(&mut self) {
        self.fetch_config().await;
        self.applied = self.config.generation;
        self.heartbeat().await;
    }
}

fn parse_node_id(node: &str) -> Uuid {
    node.parse()
        .unwrap_or_else(|e| panic!("node id {node:?} is not a UUID: {e}"))
}

/// Several fake agents.
pub struct Fleet {
    /// The agents, in registration order.
    pub agents: Vec<FakeAgent>,
}

impl Fleet {
    /// `host-a`, `host-b`, `host-c` in `local-a`, `local-b`, `local-c`, each offering
    /// `memory_bytes`.
    pub async fn three_zones(api: &Api, memory_bytes: i64) -> Fleet {
        let mut agents = Vec::new();
        for z in ["a", "b", "c"] {
            agents.push(
                FakeAgent::register(
                    api,
                    &format!("host-{z}"),
                    &format!("local-{z}"),
                    memory_bytes,
                )
                .await,
            );
        }
        Fleet { agents }
    }

    /// The agent of `host`.
    pub fn agent(&mut self, host: &str) -> &mut FakeAgent {
        self.agents
            .iter_mut()
            .find(|a| a.host == host)
            .unwrap_or_else(|| panic!("no fake agent for host {host}"))
    }

    /// Every agent fetches, applies and reports once.
    pub async fn sync(&mut self) {
        for agent in &mut self.agents {
            agent.sync().await;
        }
    }

    /// The agent holding node `id` in its config, with the node's spec.
    pub fn find_node(&self, id: &str) -> Option<(&FakeAgent, &NodeSpec)> {
        self.agents.iter().find_map(|a| a.node(id).map(|n| (a, n)))
    }

    /// The agent holding node `id` in its config, after a fresh fetch.
    async fn holder_of(&mut self, id: &str) -> &mut FakeAgent {
        for agent in &mut self.agents {
            agent.fetch_config().await;
            if agent.node(id).is_some() {
                return agent;
            }
        }
        panic!("node {id} is in no host config");
    }

    /// Makes the agent holding node `id` (after a fresh fetch) report it failing.
    pub async fn fail_node(&mut self, id: &str, reason: &str) {
        self.holder_of(id).await.fail_node(id, reason);
    }

    /// Makes every agent report node `id` healthy again.
    pub fn recover_node(&mut self, id: &str) {
        for agent in &mut self.agents {
            agent.recover_node(id);
        }
    }

    /// Makes the agent holding node `id` report it lagging by `bytes`.
    pub async fn set_lag(&mut self, id: &str, bytes: i64) {
        self.holder_of(id).await.set_lag(id, bytes);
    }

    /// Starts every agent fetching, applying and heartbeating in a loop, as real agents
    /// do, until `stop` is set. Each task returns the heartbeats the API refused
    /// (status, body).
    pub fn heartbeat_loops(&self, stop: &Arc<AtomicBool>) -> JoinSet<Vec<(u16, Value)>> {
        let mut loops = JoinSet::new();
        for mut agent in self.agents.clone() {
            let stop = stop.clone();
            loops.spawn(async move {
                let mut refused = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    agent.fetch_config().await;
                    agent.applied = agent.config.generation;
                    let path = format!("/v1/hosts/{}/heartbeat", agent.host);
                    let (status, body) =
                        agent.call(Method::POST, &path, Some(agent.report())).await;
                    if status != 200 {
                        refused.push((status, body));
                    }
                }
                refused
            });
        }
        loops
    }

    /// Syncs every agent until the operation `op` (an Operation JSON or its name) is done;
    /// returns it done. Panics after `CONVERGE_TIMEOUT`.
    pub async fn converge(&mut self, api: &Api, op: &Value) -> Value {
        self.converge_via(&api.caller(), op).await
    }

    /// [`Fleet::converge`], asking `caller` about the operation.
    pub async fn converge_via(&mut self, caller: &Caller, op: &Value) -> Value {
        let name = op_name(op);
        let what = format!("operation {name} is done (agents syncing)");
        let fleet = tokio::sync::Mutex::new(self);
        wait_until(&what, CONVERGE_TIMEOUT, Duration::ZERO, || async {
            fleet.lock().await.sync().await;
            let current = caller.wait_op(&name, "1s").await;
            if current["done"] == true {
                Ok(current)
            } else {
                not_yet::<_, String>(current)
            }
        })
        .await
    }

    /// Syncs every agent until `check` holds, or panics after `CONVERGE_TIMEOUT`.
    pub async fn sync_until<F, Fut>(&mut self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let fleet = tokio::sync::Mutex::new(self);
        wait_until(what, CONVERGE_TIMEOUT, Duration::from_millis(100), || {
            let checked = check();
            async {
                fleet.lock().await.sync().await;
                crate::wait::ready_if::<String, _>(checked.await, || "still false after a sync")
            }
        })
        .await
    }
}

/// Joins `requests` that ran while the agents heartbeat (`loops`, stopped through `stop`
/// once the requests are done). Asserts that no request and no heartbeat was refused
/// (a deadlock between them would show as a 409) and returns the operations answered.
pub async fn join_racing(
    what: &str,
    mut requests: JoinSet<(u16, Value)>,
    mut loops: JoinSet<Vec<(u16, Value)>>,
    stop: &AtomicBool,
) -> Vec<Value> {
    let mut ops = Vec::new();
    let mut refused = Vec::new();
    while let Some(r) = requests.join_next().await {
        match r.expect("request task panicked") {
            (200, op) => ops.push(op),
            other => refused.push(other),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut refused_beats = Vec::new();
    while let Some(r) = loops.join_next().await {
        refused_beats.extend(r.expect("heartbeat task panicked"));
    }
    assert!(
        refused.is_empty(),
        "{what} refused while agents heartbeat: {refused:?}"
    );
    assert!(
        refused_beats.is_empty(),
        "heartbeats refused during {what}: {refused_beats:?}"
    );
    ops
}
