//! `GET …/instances/{instance}/nodeMetrics` on the real stack: the figures real agents
//! report about real engines move with what a client does, and the shape tells a
//! primary from its replicas.

mod common;

use std::time::Duration;

use cacheplane_testkit::json::{port_field, str_field};
use cacheplane_testkit::stack::{redis_cli, start_api, three_agents};
use cacheplane_testkit::wait::{wait_until, Poll};
use cacheplane_testkit::TestDb;
use cacheplane_testkit::GIB;
use common::client::{instance_path, standard_ha};
use common::stack::create_ready;
use serde_json::Value;

/// The instance's node figures, primary first.
async fn metrics(api: &cacheplane_testkit::Api, name: &str) -> Value {
    let (status, body) = api
        .get(&format!("{}/nodeMetrics", instance_path(name)))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn int(v: &Value, field: &str) -> i64 {
    v[field].as_i64().unwrap_or(-1)
}

#[tokio::test]
async fn node_figures_follow_what_clients_do() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let _agents = three_agents(&api, 8 * GIB).await;
    let (inst, auth) = create_ready(&api, "figures", standard_ha(1, 1)).await;
    let (host, port) = (str_field(&inst, "host"), port_field(&inst, "port"));

    let before = metrics(&api, "figures").await;
    assert!(
        before["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("/instances/figures")),
        "{before}"
    );
    let nodes = before["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{before}");
    assert_eq!(nodes[0]["role"], "PRIMARY", "primary first: {before}");
    assert_eq!(nodes[1]["role"], "REPLICA", "{before}");
    let commands0 = int(&nodes[0], "commandsProcessed");

    // 3 hits and 2 misses, 50 writes.
    for i in 0..50 {
        redis_cli(host, port, Some(&auth), &["SET", &format!("k{i}"), "v"]);
    }
    for key in ["k1", "k2", "k3", "nope1", "nope2"] {
        redis_cli(host, port, Some(&auth), &["GET", key]);
    }

    let after = wait_until(
        "the primary's report counts the commands",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || async {
            let m = metrics(&api, "figures").await;
            let p = &m["nodes"][0];
            if int(p, "commandsProcessed") >= commands0 + 55 && int(p, "keyspaceMisses") >= 2 {
                Ok(m)
            } else {
                Err(Poll::<String>::NotYet(m.to_string()))
            }
        },
    )
    .await;
    let (p, r) = (&after["nodes"][0], &after["nodes"][1]);
    assert_eq!(p["up"], true, "{after}");
    assert_eq!(r["up"], true, "{after}");
    assert_eq!(int(p, "keyspaceHits"), 3, "{after}");
    assert_eq!(int(p, "keyspaceMisses"), 2, "{after}");
    assert_eq!(p["hitRatio"].as_f64(), Some(0.6), "{after}");
    assert_eq!(
        int(p, "maxmemoryBytes"),
        GIB,
        "the engine's maxmemory: {after}"
    );
    assert!(int(p, "usedMemoryBytes") > 0, "{after}");
    assert!(int(p, "connectedClients") >= 1, "the agent's own: {after}");
    assert_eq!(int(p, "evictedKeys"), 0, "{after}");
    assert_eq!(int(p, "restarts"), 0, "{after}");
    assert!(p["reportTime"].is_string(), "{after}");
    assert!(
        int(r, "replicationOffset") > 0 && int(r, "lagBytes") >= 0,
        "the replica follows: {after}"
    );

    // An unknown instance is 404.
    let (status, _) = api
        .get(&format!("{}/nodeMetrics", instance_path("no-such")))
        .await;
    assert_eq!(status, 404);
}
