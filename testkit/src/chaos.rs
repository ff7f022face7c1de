//! What the chaos tests share: freezing processes (SIGSTOP) with a guard that always
//! resumes them (SIGCONT), even when the test panics, and the instance-level questions
//! they ask the API (failover operations, the primary, READY with every node).
//!
//! ```ignore
//! let frozen = Frozen::host(&agents[0]); // the agent and its engines
//! tokio::time::sleep(Duration::from_secs(30)).await;
//! frozen.thaw();
//! ```

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::agent::Agent;
use crate::api::{create_ready, Api};
use crate::json::{port_field, string_field};
use crate::process::is_redis;
use crate::wait::{not_yet, wait_until};

/// The project the chaos tests use.
pub const PROJECT: &str = "chaos";
/// `/v1/projects/chaos/locations/local`.
pub const PARENT: &str = "/v1/projects/chaos/locations/local";

/// Processes stopped with SIGSTOP; resumed (SIGCONT) by [`Frozen::thaw`] or when
/// dropped, so that none stays stopped after a failing test.
pub struct Frozen {
    what: String,
    pids: Vec<u32>,
}

impl Frozen {
    /// SIGSTOPs `pids` together (one `kill`); `what` names them in messages.
    pub fn pids(what: &str, pids: Vec<u32>) -> Frozen {
        assert!(!pids.is_empty(), "nothing to freeze for {what}");
        signal("-STOP", &pids).unwrap_or_else(|e| panic!("freezing {what} ({pids:?}): {e}"));
        Frozen {
            what: what.to_string(),
            pids,
        }
    }

    /// Freezes an agent process (its engines keep running).
    pub fn agent(agent: &Agent) -> Frozen {
        let pid = agent
            .pid()
            .unwrap_or_else(|| panic!("agent {} does not run", agent.host));
        Frozen::pids(&format!("agent {}", agent.host), vec![pid])
    }

    /// Freezes a whole host: the agent and every engine it runs, together.
    pub fn host(agent: &Agent) -> Frozen {
        let mut pids: Vec<u32> = agent.pid().into_iter().collect();
        pids.extend(
            agent
                .engine_pids()
                .into_iter()
                .map(|(_, pid)| pid)
                .filter(|pid| is_redis(*pid)),
        );
        Frozen::pids(&format!("host {} (agent and engines)", agent.host), pids)
    }

    /// The frozen pids.
    pub fn frozen_pids(&self) -> &[u32] {
        &self.pids
    }

    /// Resumes them all (one `kill -CONT`).
    pub fn thaw(mut self) {
        self.resume();
    }

    fn resume(&mut self) {
        if self.pids.is_empty() {
            return;
        }
        if let Err(e) = signal("-CONT", &self.pids) {
            eprintln!("resuming {} ({:?}): {e}", self.what, self.pids);
        }
        self.pids.clear();
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.resume();
    }
}

fn signal(sig: &str, pids: &[u32]) -> Result<(), String> {
    let status = Command::new("kill")
        .arg(sig)
        .args(pids.iter().map(u32::to_string))
        .status()
        .map_err(|e| format!("running kill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill {sig} exited with {status}"))
    }
}

/// A STANDARD_HA instance as a client sees it.
#[derive(Debug, Clone)]
pub struct HaInstance {
    /// Its id.
    pub name: String,
    /// The primary endpoint's address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The AUTH string.
    pub auth: String,
    /// The primary node's id at creation.
    pub primary: String,
    /// The primary node's zone at creation.
    pub primary_zone: String,
}

/// Creates STANDARD_HA instance `name` (1 GiB, 2 replicas with read replicas, primary in
/// local-a, first replica in local-b) in [`PROJECT`] and waits (60 s at most) until it is
/// READY.
pub async fn create_ha(api: &Api, name: &str) -> HaInstance {
    let body = json!({"tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 2,
                      "readReplicasMode": "READ_REPLICAS_ENABLED",
                      "locationId": "local-a", "alternativeLocationId": "local-b"});
    let (inst, auth) = create_ready(api, PARENT, name, body).await;
    let primary = primary_node(&inst);
    HaInstance {
        name: name.to_string(),
        host: string_field(&inst, "host"),
        port: port_field(&inst, "port"),
        auth,
        primary: string_field(&primary, "id"),
        primary_zone: string_field(&primary, "zone"),
    }
}

/// `GET …/instances/{name}`, which must answer 200.
pub async fn instance(api: &Api, name: &str) -> Value {
    let (status, body) = api.get(&format!("{PARENT}/instances/{name}")).await;
    assert_eq!(status, 200, "GET instance {name}: {body}");
    body
}

/// The node whose stored role is PRIMARY.
pub fn primary_node(inst: &Value) -> Value {
    inst["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["role"] == "PRIMARY"))
        .cloned()
        .unwrap_or_else(|| panic!("no primary in {inst}"))
}

/// The node with id `id`.
pub fn node(inst: &Value, id: &str) -> Value {
    inst["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("no node {id} in {inst}"))
}

/// Every operation of the project (at most 1000, newest first).
pub async fn operations(api: &Api) -> Vec<Value> {
    let (status, ops) = api.get(&format!("{PARENT}/operations?pageSize=1000")).await;
    assert_eq!(status, 200, "listing operations: {ops}");
    ops["operations"].as_array().cloned().unwrap_or_default()
}

/// Every failover operation of the project (automatic or manual).
pub async fn failover_ops(api: &Api) -> Vec<Value> {
    operations(api)
        .await
        .into_iter()
        .filter(|o| o["metadata"]["verb"] == "failover")
        .collect()
}

/// Whether the instance is READY with every node READY.
pub fn all_ready(inst: &Value) -> bool {
    inst["state"] == "READY"
        && inst["nodes"]
            .as_array()
            .is_some_and(|n| !n.is_empty() && n.iter().all(|n| n["state"] == "READY"))
}

/// Waits until instance `name` is READY with every node READY; answers it.
pub async fn until_all_ready(api: &Api, name: &str, limit: Duration) -> Value {
    let what = format!("{name} is READY with every node READY");
    wait_until(&what, limit, Duration::from_millis(200), || async {
        let i = instance(api, name).await;
        if all_ready(&i) {
            Ok(i)
        } else {
            not_yet::<_, String>(format!("not yet: {i}"))
        }
    })
    .await
}
