//! The read endpoint on the real stack: connections spread over the healthy replicas and
//! never reach the primary; read replicas enabled on a running instance keep its primary
//! endpoint and get a read endpoint from the original range.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cacheplane_testkit::json::{port_field, str_field, string_field};
use cacheplane_testkit::resp::{self, call_text};
use cacheplane_testkit::stack::{eventually, redis_cli, start_api, three_agents};
use cacheplane_testkit::TestDb;
use cacheplane_testkit::GIB;
use common::client::{instance, op_name, wait_op, PARENT};
use common::stack::create_ready;
use serde_json::{json, Value};

fn field(info: &str, key: &str) -> String {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// run_id → (role, address) of every node.
fn run_ids(inst: &Value, port: u16, auth: &str) -> BTreeMap<String, (String, String)> {
    inst["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let addr = string_field(n, "address");
            let info = redis_cli(&addr, port, Some(auth), &["INFO", "server"]);
            (field(&info, "run_id"), (string_field(n, "role"), addr))
        })
        .collect()
}

#[tokio::test]
async fn connections_spread_over_the_replicas_and_never_reach_the_primary() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let _agents = three_agents(&api, 8 * GIB).await;
    let (inst, auth) = create_ready(
        &api,
        "reads",
        json!({"tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 2,
               "readReplicasMode": "READ_REPLICAS_ENABLED"}),
    )
    .await;
    let read_host = string_field(&inst, "readEndpoint");
    let port = port_field(&inst, "readEndpointPort");
    assert!(!read_host.is_empty() && read_host != inst["host"], "{inst}");
    let nodes = run_ids(&inst, port, &auth);
    assert_eq!(
        redis_cli(
            str_field(&inst, "host"),
            port,
            Some(&auth),
            &["SET", "k", "v"]
        ),
        "OK"
    );

    // Replication is asynchronous: wait until both replicas have the write.
    for (role, addr) in nodes.values().filter(|(r, _)| r == "REPLICA") {
        let (addr, a) = (addr.clone(), auth.clone());
        eventually(
            &format!("{role} {addr} has k"),
            Duration::from_secs(10),
            || redis_cli(&addr, port, Some(&a), &["GET", "k"]) == "v",
        )
        .await;
    }

    // The proxy starts once the replicas report healthy: wait for a first connection.
    let (h, a) = (read_host.clone(), auth.clone());
    eventually("the read endpoint answers", Duration::from_secs(30), || {
        redis_cli(&h, port, Some(&a), &["PING"]) == "PONG"
    })
    .await;

    let mut conns = Vec::new();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..30 {
        let mut c = resp::connect(&read_host, port, Some(&auth))
            .await
            .expect("connect to the read endpoint");
        let info = call_text(&mut c, &["INFO", "server"]).await.expect("INFO");
        let id = field(&info, "run_id");
        let (role, addr) = nodes
            .get(&id)
            .cloned()
            .unwrap_or_else(|| panic!("unknown run_id {id}"));
        assert_eq!(role, "REPLICA", "a read connection reached {addr} ({role})");
        *per_node.entry(addr).or_default() += 1;
        conns.push((c, id));
    }
    assert_eq!(
        per_node.len(),
        2,
        "both replicas get connections: {per_node:?}"
    );
    assert!(per_node.values().all(|n| *n >= 5), "spread: {per_node:?}");
    // A connection stays on its replica, and reads see the primary's writes.
    for (c, id) in conns.iter_mut() {
        let info = call_text(c, &["INFO", "server"]).await.expect("INFO");
        assert_eq!(field(&info, "run_id"), *id);
        let got = call_text(c, &["GET", "k"]).await.expect("GET");
        assert_eq!(got, "v");
        let write = call_text(c, &["SET", "x", "1"]).await;
        assert!(
            write.is_err_and(|e| e.to_string().contains("READONLY")),
            "replicas refuse writes"
        );
    }
}

#[tokio::test]
async fn enabling_read_replicas_later_keeps_the_primary_endpoint() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let _agents = three_agents(&api, 8 * GIB).await;
    let (inst, auth) = create_ready(
        &api,
        "later",
        json!({"tier": "STANDARD_HA", "memorySizeGb": 1}),
    )
    .await;
    assert!(inst["readEndpoint"].is_null(), "{inst}");
    let host = string_field(&inst, "host");
    let port = port_field(&inst, "port");
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["SET", "k", "v"]),
        "OK"
    );

    // Not together with another field.
    let (status, err) = api
        .patch(
            &format!("{PARENT}/instances/later?updateMask=readReplicasMode,memorySizeGb"),
            json!({"readReplicasMode": "READ_REPLICAS_ENABLED", "memorySizeGb": 2, "secondaryIpRange": "auto"}),
        )
        .await;
    assert_eq!(status, 400, "{err}");

    let (status, op) = api
        .patch(
            &format!("{PARENT}/instances/later?updateMask=readReplicasMode,secondaryIpRange"),
            json!({"readReplicasMode": "READ_REPLICAS_ENABLED", "secondaryIpRange": "auto"}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    let done = wait_op(&api, &op_name(&op), "60s").await;
    assert!(done["done"] == true && done["error"].is_null(), "{done}");
    let after = instance(&api, "later").await;
    assert_eq!(after["readReplicasMode"], "READ_REPLICAS_ENABLED");
    assert_eq!(after["host"], inst["host"], "the primary endpoint stays");
    assert!(after["secondaryIpRange"].is_string(), "{after}");
    let read_host = string_field(&after, "readEndpoint");
    let range: ipnet::Ipv4Net = str_field(&inst, "reservedIpRange").parse().expect("range");
    let read_ip: std::net::Ipv4Addr = read_host.parse().expect("read endpoint address");
    assert!(
        range.contains(&read_ip),
        "read endpoint {read_ip} in the original range {range}"
    );
    let (h, a) = (read_host.clone(), auth.clone());
    eventually(
        "reads through the new read endpoint",
        Duration::from_secs(30),
        || redis_cli(&h, port, Some(&a), &["GET", "k"]) == "v",
    )
    .await;

    // And it cannot be undone.
    let (status, err) = api
        .patch(
            &format!("{PARENT}/instances/later?updateMask=readReplicasMode"),
            json!({"readReplicasMode": "READ_REPLICAS_DISABLED"}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["details"][0]["field"], "readReplicasMode");
}
