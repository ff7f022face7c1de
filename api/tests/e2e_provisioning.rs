//! End to end with real parts: the API, Postgres, three `cacheplane-node-agent`
//! processes in local-a/b/c (loopback mode) and the `redis-server`s they run. Checked as
//! a user would, with `redis-cli` against the addresses the API hands out.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cacheplane_testkit::agent::Agent;
use cacheplane_testkit::json::{array_field, port_field, str_field, string_field};
use cacheplane_testkit::process::alive;
use cacheplane_testkit::stack::{eventually, redis_cli, start_api, three_agents};
use cacheplane_testkit::TestDb;
use cacheplane_testkit::GIB;
use common::client::{instance, op_name, wait_op, PARENT};
use serde_json::{json, Value};

const READY_LIMIT: &str = "60s";

async fn create_and_wait(api: &cacheplane_testkit::Api, name: &str, body: Value) -> Value {
    let (status, op) = api
        .post(&format!("{PARENT}/instances?instanceId={name}"), body)
        .await;
    assert_eq!(status, 200, "create {name}: {op}");
    let done = wait_op(api, &op_name(&op), READY_LIMIT).await;
    assert_eq!(done["done"], true, "create {name} not done: {done}");
    done
}

async fn patch_and_wait(
    api: &cacheplane_testkit::Api,
    name: &str,
    mask: &str,
    body: Value,
) -> Value {
    let (status, op) = api
        .patch(
            &format!("{PARENT}/instances/{name}?updateMask={mask}"),
            body,
        )
        .await;
    assert_eq!(status, 200, "patch {name} {mask}: {op}");
    let done = wait_op(api, &op_name(&op), READY_LIMIT).await;
    assert_eq!(done["done"], true, "patch {name} not done: {done}");
    assert!(done["error"].is_null(), "patch {name} failed: {done}");
    done
}

async fn auth_string(api: &cacheplane_testkit::Api, name: &str) -> String {
    let (status, body) = api
        .get(&format!("{PARENT}/instances/{name}/authString"))
        .await;
    assert_eq!(status, 200, "{body}");
    string_field(&body, "authString")
}

fn nodes(inst: &Value) -> Vec<Value> {
    array_field(inst, "nodes").clone()
}

fn info_field(info: &str, key: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
}

/// node id → engine pid, over every agent.
/// The `maxmemory` an engine reports to the tenant (`INFO memory`).
fn maxmemory(addr: &str, port: u16, auth: &str) -> String {
    let info = redis_cli(addr, port, Some(auth), &["INFO", "memory"]);
    info_field(&info, "maxmemory").unwrap_or_else(|| panic!("no maxmemory in {info}"))
}

/// Commands the tenant's AUTH string must not run: each would reconfigure, stop, move,
/// persist, replicate or unlock the engine.
const REFUSED: &[&[&str]] = &[
    &["CONFIG", "SET", "maxmemory", "0"],
    &["CONFIG", "SET", "port", "6390"],
    &["CONFIG", "SET", "save", "1 1"],
    &["SHUTDOWN"],
    &["REPLICAOF", "NO", "ONE"],
    &["CLIENT", "PAUSE", "1000"],
    &["ACL", "SETUSER", "default", "+@all"],
    &["BGSAVE"],
    &["MODULE", "LIST"],
    &["FAILOVER"],
];

fn pids(agents: &[Agent]) -> BTreeMap<String, u32> {
    agents.iter().flat_map(|a| a.engine_pids()).collect()
}

#[tokio::test]
async fn standard_ha_lifecycle_on_real_redis() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let mut agents = three_agents(&api, 8 * GIB).await;

    let done = create_and_wait(
        &api,
        "cache",
        json!({
            "tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 2,
            "readReplicasMode": "READ_REPLICAS_ENABLED",
            "locationId": "local-a", "alternativeLocationId": "local-b"
        }),
    )
    .await;
    assert!(done["error"].is_null(), "{done}");
    let inst = instance(&api, "cache").await;
    assert_eq!(inst["state"], "READY", "{inst}");
    let mut zones: Vec<String> = nodes(&inst)
        .iter()
        .map(|n| string_field(n, "zone"))
        .collect();
    zones.sort();
    assert_eq!(zones, ["local-a", "local-b", "local-c"], "{inst}");

    let host = string_field(&inst, "host");
    let port = port_field(&inst, "port");
    let auth = auth_string(&api, "cache").await;
    assert!(!auth.is_empty());

    // maxmemory is the instance size on every node.
    for n in nodes(&inst) {
        let addr = str_field(&n, "address");
        assert_eq!(maxmemory(addr, port, &auth), "1073741824", "node {addr}");
    }

    // Through the primary endpoint with AUTH; replicas catch up.
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["SET", "greeting", "hello"]),
        "OK"
    );
    for n in nodes(&inst).iter().filter(|n| n["role"] == "REPLICA") {
        let addr = string_field(n, "address");
        let auth = auth.clone();
        eventually("replica has the key", Duration::from_secs(10), || {
            redis_cli(&addr, port, Some(&auth), &["GET", "greeting"]) == "hello"
        })
        .await;
    }
    let info = redis_cli(&host, port, Some(&auth), &["INFO", "replication"]);
    assert_eq!(
        info_field(&info, "role").as_deref(),
        Some("master"),
        "{info}"
    );
    assert_eq!(
        info_field(&info, "connected_slaves").as_deref(),
        Some("2"),
        "{info}"
    );

    // Without the auth string: refused.
    let refused = redis_cli(&host, port, None, &["GET", "greeting"]);
    assert!(refused.contains("NOAUTH"), "{refused}");

    // With it: data commands, not control (docs/architecture.md#locked-down-engine).
    for args in [
        &["KEYS", "*"][..],
        &["CLIENT", "SETNAME", "app"],
        &["DBSIZE"],
    ] {
        let out = redis_cli(&host, port, Some(&auth), args);
        assert!(
            !out.contains("ERR") && !out.contains("NOPERM"),
            "{args:?}: {out}"
        );
    }
    for args in REFUSED {
        let out = redis_cli(&host, port, Some(&auth), args);
        assert!(out.contains("NOPERM"), "{args:?} must be refused: {out}");
    }
    // DEBUG is refused before ACLs are even looked at.
    let out = redis_cli(&host, port, Some(&auth), &["DEBUG", "SLEEP", "0"]);
    assert!(
        out.contains("not allowed") || out.contains("NOPERM"),
        "{out}"
    );

    // Scale to 2 GB online: same processes, same keys, new maxmemory.
    let before = pids(&agents);
    assert_eq!(before.len(), 3, "{before:?}");
    patch_and_wait(&api, "cache", "memorySizeGb", json!({"memorySizeGb": 2})).await;
    assert_eq!(pids(&agents), before, "scaling restarted an engine");
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["GET", "greeting"]),
        "hello"
    );
    for n in nodes(&instance(&api, "cache").await) {
        let addr = str_field(&n, "address");
        assert_eq!(maxmemory(addr, port, &auth), "2147483648", "node {addr}");
    }

    // redisConfigs go through the API: maxmemory-gb reaches every node online.
    patch_and_wait(
        &api,
        "cache",
        "redisConfigs",
        json!({"redisConfigs": {"maxmemory-gb": "1.5", "maxmemory-policy": "allkeys-lru"}}),
    )
    .await;
    for n in nodes(&instance(&api, "cache").await) {
        let addr = str_field(&n, "address");
        assert_eq!(maxmemory(addr, port, &auth), "1610612736", "node {addr}");
    }
    assert_eq!(pids(&agents), before, "a config change restarted an engine");

    // Replicas 2 → 3 → 1.
    patch_and_wait(&api, "cache", "replicaCount", json!({"replicaCount": 3})).await;
    let inst = instance(&api, "cache").await;
    assert_eq!(nodes(&inst).len(), 4, "{inst}");
    let info = redis_cli(&host, port, Some(&auth), &["INFO", "replication"]);
    assert_eq!(
        info_field(&info, "connected_slaves").as_deref(),
        Some("3"),
        "{info}"
    );
    patch_and_wait(&api, "cache", "replicaCount", json!({"replicaCount": 1})).await;
    let inst = instance(&api, "cache").await;
    assert_eq!(nodes(&inst).len(), 2, "{inst}");
    let survivors = pids(&agents);
    assert_eq!(
        survivors.len(),
        2,
        "stopped replicas leave no engine behind: {survivors:?}"
    );
    let auth2 = auth.clone();
    let host2 = host.clone();
    eventually("primary sees one replica", Duration::from_secs(10), || {
        let info = redis_cli(&host2, port, Some(&auth2), &["INFO", "replication"]);
        info_field(&info, "connected_slaves").as_deref() == Some("1")
    })
    .await;

    // An agent killed and started again adopts its engines: same pids, same keys.
    let before = pids(&agents);
    for a in agents.iter_mut() {
        a.restart();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pids(&agents),
        before,
        "an agent restart restarted an engine"
    );
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["GET", "greeting"]),
        "hello"
    );
    assert_eq!(instance(&api, "cache").await["state"], "READY");

    // Delete: no process, no data dir, the range can be used again.
    let range = string_field(&instance(&api, "cache").await, "reservedIpRange");
    let (status, op) = api.delete(&format!("{PARENT}/instances/cache")).await;
    assert_eq!(status, 200, "{op}");
    let done = wait_op(&api, &op_name(&op), READY_LIMIT).await;
    assert_eq!(done["done"], true, "{done}");
    assert!(done["error"].is_null(), "{done}");
    for (node, pid) in &before {
        assert!(!alive(*pid), "engine of node {node} still runs");
    }
    for a in &agents {
        assert!(a.engine_pids().is_empty(), "{} still has node dirs", a.host);
    }
    let again = create_and_wait(
        &api,
        "again",
        json!({"tier": "BASIC", "memorySizeGb": 1, "reservedIpRange": range}),
    )
    .await;
    assert!(again["error"].is_null(), "range reusable: {again}");
}

#[tokio::test]
async fn basic_instance_serves_and_a_create_that_cannot_fit_leaves_nothing() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let agents = three_agents(&api, 4 * GIB).await;

    let done = create_and_wait(&api, "small", json!({"tier": "BASIC", "memorySizeGb": 1})).await;
    assert!(done["error"].is_null(), "{done}");
    let inst = instance(&api, "small").await;
    let host = str_field(&inst, "host");
    let port = port_field(&inst, "port");
    let auth = auth_string(&api, "small").await;
    for cmd in [
        vec!["SET", "k", "1"],
        vec!["INCRBY", "k", "41"],
        vec!["MSET", "a", "1", "b", "2"],
        vec!["DEL", "a"],
    ] {
        let out = redis_cli(host, port, Some(&auth), &cmd);
        assert!(!out.contains("ERR"), "{cmd:?}: {out}");
    }
    assert_eq!(redis_cli(host, port, Some(&auth), &["GET", "k"]), "42");
    let memory = redis_cli(host, port, Some(&auth), &["INFO", "memory"]);
    assert_eq!(
        info_field(&memory, "maxmemory_policy").as_deref(),
        Some("volatile-lru"),
        "{memory}"
    );

    // 5 GB fits on no 4 GiB host: the operation fails naming the zone, nothing stays.
    let (status, op) = api
        .post(
            &format!("{PARENT}/instances?instanceId=huge"),
            json!({"tier": "BASIC", "memorySizeGb": 5, "locationId": "local-b"}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["done"], true, "{op}");
    assert_eq!(op["error"]["status"], "RESOURCE_EXHAUSTED", "{op}");
    assert!(str_field(&op, "error.message").contains("local-b"), "{op}");
    let (status, _) = api.get(&format!("{PARENT}/instances/huge")).await;
    assert_eq!(status, 404);
    let engines: usize = agents.iter().map(|a| a.engine_pids().len()).sum();
    assert_eq!(engines, 1, "only the BASIC instance's engine runs");
}
