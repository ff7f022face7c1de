//! What happens when an engine crashes, on the real stack: a replica is restarted and
//! resyncs; a BASIC node is restarted in place (empty). A STANDARD_HA primary is never
//! restarted as a primary: `e2e_failover.rs`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cacheplane_testkit::agent::Agent;
use cacheplane_testkit::json::{port_field, string_field};
use cacheplane_testkit::process::alive;
use cacheplane_testkit::stack::{eventually, redis_cli, start_api, three_agents};
use cacheplane_testkit::TestDb;
use cacheplane_testkit::GIB;
use common::client::{op_name, wait_op, PARENT};
use common::stack::{create_ready, until_instance};
use serde_json::{json, Value};

fn pids(agents: &[Agent]) -> BTreeMap<String, u32> {
    agents.iter().flat_map(|a| a.engine_pids()).collect()
}

fn node<'a>(inst: &'a Value, role: &str) -> &'a Value {
    inst["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["role"] == role))
        .unwrap_or_else(|| panic!("no {role} in {inst}"))
}

fn kill9(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -9 {pid}");
}

#[tokio::test]
async fn a_crashed_replica_restarts_and_resyncs() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let agents = three_agents(&api, 8 * GIB).await;
    let (inst, auth) = create_ready(
        &api,
        "ha",
        json!({"tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 2,
               "readReplicasMode": "READ_REPLICAS_ENABLED"}),
    )
    .await;
    let host = string_field(&inst, "host");
    let port = port_field(&inst, "port");
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["SET", "k", "v"]),
        "OK"
    );

    // A replica crashes: its agent starts it again and it copies the data back.
    let replica = node(&inst, "REPLICA");
    let replica_id = string_field(replica, "id");
    let replica_addr = string_field(replica, "address");
    let old = pids(&agents)[&replica_id];
    kill9(old);
    let agents_ref = &agents;
    eventually("the replica runs again", Duration::from_secs(30), || {
        pids(agents_ref)
            .get(&replica_id)
            .is_some_and(|p| *p != old && alive(*p))
    })
    .await;
    eventually(
        "the restarted replica has the data",
        Duration::from_secs(30),
        || redis_cli(&replica_addr, port, Some(&auth), &["GET", "k"]) == "v",
    )
    .await;

    // It can still be deleted, leaving nothing running.
    let (status, op) = api.delete(&format!("{PARENT}/instances/ha")).await;
    assert_eq!(status, 200, "{op}");
    let done = wait_op(&api, &op_name(&op), "60s").await;
    assert!(done["done"] == true && done["error"].is_null(), "{done}");
    assert!(pids(&agents).is_empty(), "{:?}", pids(&agents));
}

#[tokio::test]
async fn a_crashed_basic_node_restarts_in_place() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let agents = three_agents(&api, 8 * GIB).await;
    let (inst, auth) =
        create_ready(&api, "solo", json!({"tier": "BASIC", "memorySizeGb": 1})).await;
    let host = string_field(&inst, "host");
    let port = port_field(&inst, "port");
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["SET", "k", "v"]),
        "OK"
    );
    let (id, old) = pids(&agents).into_iter().next().expect("one engine");
    kill9(old);
    let agents_ref = &agents;
    eventually("the node runs again", Duration::from_secs(30), || {
        pids(agents_ref)
            .get(&id)
            .is_some_and(|p| *p != old && alive(*p))
    })
    .await;
    eventually(
        "it answers at the same host:port",
        Duration::from_secs(30),
        || redis_cli(&host, port, Some(&auth), &["PING"]) == "PONG",
    )
    .await;
    // Restarted empty: BASIC has no replica to keep the data (as in Memorystore).
    assert_eq!(redis_cli(&host, port, Some(&auth), &["EXISTS", "k"]), "0");
    until_instance(&api, "solo", "READY again", |i| i["state"] == "READY").await;
}
