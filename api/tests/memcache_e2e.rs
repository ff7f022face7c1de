//! Memcached end to end: the API as a process, three real agents running real
//! `memcached`, and a client that finds the nodes through the discovery endpoint
//! (`config get cluster`) and shards keys with a consistent hash, as an application
//! would. Create 3 nodes across three zones, write and read 10 000 keys, scale to 5
//! (the config version grows, at most about 2/5 of the keys move and the others stay
//! readable), kill a memcached (restarted, READY again, the node list unchanged), apply
//! parameters to one node (it restarts with them, the others keep their pids), delete
//! (no memcached left, the range free). Fails, never skips, without memcached.

use std::time::Duration;

use cacheplane_testkit::agent::Agent;
use cacheplane_testkit::api::op_name;
use cacheplane_testkit::json::{array_field, str_field};
use cacheplane_testkit::memcache::{discover, Cluster, Conn, Sharded};
use cacheplane_testkit::process::{memcached_pids, require_memcached};
use cacheplane_testkit::stack::{start_api, three_agents};
use cacheplane_testkit::wait::{not_yet, ready_if, wait_until};
use cacheplane_testkit::{Api, TestDb, GIB};
use serde_json::{json, Value};

const MEMCACHE: &str = "/v1/projects/mc-e2e/locations/local/memcacheInstances";
const KEYS: usize = 10_000;
const WAIT: Duration = Duration::from_secs(90);

/// Waits for operation `op` to end without error; returns it.
async fn done(api: &Api, what: &str, op: &Value) -> Value {
    let name = op_name(op);
    let caller = api.caller();
    let op = wait_until(what, WAIT, Duration::ZERO, || async {
        let op = caller.wait_op(&name, "10s").await;
        if op["done"] == true {
            Ok(op)
        } else {
            not_yet::<_, String>(op)
        }
    })
    .await;
    assert!(op["error"].is_null(), "{what}: {op}");
    op
}

async fn get(api: &Api, name: &str) -> Value {
    let (status, inst) = api.get(&format!("{MEMCACHE}/{name}")).await;
    assert_eq!(status, 200, "{inst}");
    inst
}

/// Every memcached the agents run: (node dir, pid, its `-l` address).
fn memcacheds(agents: &[Agent]) -> Vec<(String, u32, String)> {
    agents
        .iter()
        .flat_map(|a| memcached_pids(a.path()))
        .map(|(node, pid)| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).to_string())
                .collect();
            let addr = args
                .iter()
                .position(|a| a == "-l")
                .and_then(|i| args.get(i + 1).cloned())
                .unwrap_or_default();
            (node, pid, addr)
        })
        .collect()
}

fn pid_at(agents: &[Agent], address: &str) -> Option<u32> {
    memcacheds(agents)
        .into_iter()
        .find(|(_, _, a)| a == address)
        .map(|(_, pid, _)| pid)
}

fn node_hosts(inst: &Value) -> Vec<(String, String)> {
    array_field(inst, "memcacheNodes")
        .iter()
        .map(|n| {
            (
                str_field(n, "nodeId").to_string(),
                str_field(n, "host").to_string(),
            )
        })
        .collect()
}

async fn all_ready(api: &Api, name: &str) -> Value {
    wait_until(
        "every node READY",
        WAIT,
        Duration::from_millis(100),
        || async {
            let inst = get(api, name).await;
            let ready = array_field(&inst, "memcacheNodes")
                .iter()
                .all(|n| n["state"] == "READY");
            ready_if::<String, _>(ready, || inst.to_string()).map(|_| inst.clone())
        },
    )
    .await
}

#[tokio::test]
async fn memcached_instance_discovery_scaling_restarts_parameters_and_delete() {
    require_memcached();
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let agents = three_agents(&api, 8 * GIB).await;

    // Create: three nodes, one per zone.
    let body = json!({"nodeCount": 3, "nodeConfig": {"cpuCount": 1, "memorySizeMb": 1024}});
    let (status, op) = api
        .post(&format!("{MEMCACHE}?instanceId=cache"), body)
        .await;
    assert_eq!(status, 200, "{op}");
    let op = done(&api, "create", &op).await;
    let inst = &op["response"];
    assert_eq!(inst["state"], "READY", "{op}");
    let mut zones: Vec<&str> = array_field(inst, "memcacheNodes")
        .iter()
        .map(|n| str_field(n, "zone"))
        .collect();
    zones.sort_unstable();
    assert_eq!(zones, ["local-a", "local-b", "local-c"]);
    let endpoint = str_field(inst, "discoveryEndpoint").to_string();
    let range = str_field(inst, "reservedIpRange").to_string();

    // Discovery, then 10 000 keys sharded over the three nodes.
    let before: Cluster = discover(&endpoint).await.expect("config get cluster");
    assert_eq!(before.nodes.len(), 3, "{before:?}");
    let mut client = Sharded::connect(&before)
        .await
        .expect("connect to the nodes");
    let keys: Vec<String> = (0..KEYS).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        assert!(
            client.set(k, &format!("value-{k}")).await.expect("set"),
            "{k}"
        );
    }
    for k in &keys {
        let got = client.get(k).await.expect("get");
        assert_eq!(got.as_deref(), Some(format!("value-{k}").as_str()), "{k}");
    }

    // Scale to 5: a new version, five nodes; about 2/5 of the keys move.
    let (status, op) = api
        .patch(
            &format!("{MEMCACHE}/cache?updateMask=nodeCount"),
            json!({"nodeCount": 5}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    done(&api, "scale to 5", &op).await;
    let after = discover(&endpoint).await.expect("config get cluster");
    assert!(after.version > before.version, "{before:?} -> {after:?}");
    assert_eq!(after.nodes.len(), 5, "{after:?}");
    for n in &before.nodes {
        assert!(after.nodes.contains(n), "{n} stays in {after:?}");
    }
    let mut scaled = Sharded::connect(&after)
        .await
        .expect("connect to the nodes");
    let moved: Vec<&String> = keys
        .iter()
        .filter(|k| client.ring.server(k) != scaled.ring.server(k))
        .collect();
    println!(
        "{} of {KEYS} keys moved going from 3 to 5 nodes",
        moved.len()
    );
    assert!(
        moved.len() <= KEYS * 2 / 5 + KEYS / 10,
        "{} of {KEYS} keys moved: more than about 2/5",
        moved.len()
    );
    for k in keys.iter().filter(|k| !moved.contains(k)) {
        let got = scaled.get(k).await.expect("get");
        assert_eq!(
            got.as_deref(),
            Some(format!("value-{k}").as_str()),
            "unmoved {k}"
        );
    }

    // Kill one memcached: restarted, READY again, the node list unchanged.
    let inst = get(&api, "cache").await;
    let (_, victim_addr) = node_hosts(&inst)[0].clone();
    let victim = pid_at(&agents, &victim_addr).expect("the node's memcached runs");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .expect("kill memcached");
    assert!(killed.success(), "kill -KILL {victim}");
    wait_until(
        "the killed memcached is back",
        WAIT,
        Duration::from_millis(100),
        || async {
            let pid = pid_at(&agents, &victim_addr);
            ready_if::<String, _>(pid.is_some_and(|p| p != victim), || format!("{pid:?}"))
        },
    )
    .await;
    all_ready(&api, "cache").await;
    let still = discover(&endpoint).await.expect("config get cluster");
    assert_eq!(still, after, "a restart leaves the discovery answer alone");
    let mut conn = Conn::connect(&format!("{victim_addr}:11211"))
        .await
        .expect("connect");
    assert!(conn.set("after-restart", "x").await.expect("set"));

    // Parameters: staged, then applied to one node, which restarts with them.
    let path = format!("{MEMCACHE}/cache");
    let staged = json!({"updateMask": "params", "parameters": {"params": {"idle-timeout": "30"}}});
    let (status, op) = api.post(&format!("{path}:updateParameters"), staged).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["done"], true, "{op}");
    let nodes = node_hosts(&get(&api, "cache").await);
    let pids: Vec<(String, Option<u32>)> = nodes
        .iter()
        .map(|(id, addr)| (id.clone(), pid_at(&agents, addr)))
        .collect();
    let (target_id, target_addr) = nodes[1].clone();
    let apply = json!({"nodeIds": [target_id]});
    let (status, op) = api.post(&format!("{path}:applyParameters"), apply).await;
    assert_eq!(status, 200, "{op}");
    let op = done(&api, "applyParameters", &op).await;
    assert_eq!(op["response"]["state"], "READY", "{op}");
    for ((id, addr), (_, pid)) in nodes.iter().zip(&pids) {
        let now = pid_at(&agents, addr);
        if *id == target_id {
            assert_ne!(now, *pid, "{id} restarted to take the parameters");
        } else {
            assert_eq!(now, *pid, "{id} kept its memcached");
        }
    }
    let mut conn = Conn::connect(&format!("{target_addr}:11211"))
        .await
        .expect("connect");
    let settings = conn.stats_settings().await.expect("stats settings");
    assert_eq!(
        settings.get("idle_timeout").map(String::as_str),
        Some("30"),
        "{settings:?}"
    );
    let inst = get(&api, "cache").await;
    for n in array_field(&inst, "memcacheNodes") {
        let want = if n["nodeId"] == target_id.as_str() {
            json!({"idle-timeout": "30"})
        } else {
            json!({})
        };
        assert_eq!(n["parameters"]["params"], want, "{n}");
    }

    // Delete: no memcached left, and the range goes back to the pool.
    let (status, op) = api.delete(&path).await;
    assert_eq!(status, 200, "{op}");
    done(&api, "delete", &op).await;
    wait_until(
        "no memcached runs",
        WAIT,
        Duration::from_millis(100),
        || async {
            let left = memcacheds(&agents);
            ready_if::<String, _>(left.is_empty(), || format!("{left:?}"))
        },
    )
    .await;
    assert!(
        discover(&endpoint).await.is_err(),
        "the discovery endpoint is gone"
    );
    let body = json!({"nodeCount": 1, "nodeConfig": {"cpuCount": 1, "memorySizeMb": 1024}});
    let (status, op) = api.post(&format!("{MEMCACHE}?instanceId=next"), body).await;
    assert_eq!(status, 200, "{op}");
    let op = done(&api, "create after delete", &op).await;
    assert_eq!(
        op["response"]["reservedIpRange"], range,
        "the range was freed: {op}"
    );
    let (status, op) = api.delete(&format!("{MEMCACHE}/next")).await;
    assert_eq!(status, 200, "{op}");
    done(&api, "delete next", &op).await;
}
