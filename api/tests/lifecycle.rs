//! Instance lifecycle against fake node agents: create (BASIC and STANDARD_HA), placement
//! and exhaustion, a node that cannot start, delete in READY and CREATING, and an API
//! restart with an operation in flight (docs/architecture.md#instance-states).

mod common;

use cacheplane_testkit::fake_agent::*;
use cacheplane_testkit::json::{str_field, string_field};
use cacheplane_testkit::GIB;
use cacheplane_testkit::{Api, TestDb};
use common::client::*;
use ipnet::Ipv4Net;
use serde_json::{json, Value};

fn range_of(inst: &Value) -> Ipv4Net {
    inst["reservedIpRange"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no reservedIpRange in {inst}"))
}

fn ip(v: &Value) -> std::net::Ipv4Addr {
    v.as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{v} is not an IPv4 address"))
}

/// Checks the addresses of an instance: a /28 holding the endpoints and every node, all
/// distinct. Returns the range.
fn check_addresses(inst: &Value) -> Ipv4Net {
    let range = range_of(inst);
    assert_eq!(range.prefix_len(), 28, "{inst}");
    let mut seen = vec![ip(&inst["host"])];
    if !inst["readEndpoint"].is_null() {
        seen.push(ip(&inst["readEndpoint"]));
    }
    for node in inst["nodes"].as_array().expect("nodes") {
        seen.push(ip(&node["address"]));
    }
    for a in &seen {
        assert!(range.contains(a), "{a} outside {range}: {inst}");
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "addresses repeat: {inst}");
    range
}

/// (zone, role, state) of each node, in order.
fn node_summary(inst: &Value) -> Vec<(String, String, String)> {
    inst["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {inst}"))
        .iter()
        .map(|n| {
            let s = |k: &str| string_field(n, k);
            (s("zone"), s("role"), s("state"))
        })
        .collect()
}

fn all_nodes_ready(inst: &Value) -> bool {
    node_summary(inst).iter().all(|(_, _, s)| s == "READY")
}

#[tokio::test]
async fn basic_and_standard_ha_become_ready_once_agents_report() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;

    // An agent long-polling with its current generation wakes up when a node lands on it.
    let mut watcher = fleet.agents[0].clone();
    let known = watcher.config.generation;
    let poll = tokio::spawn(async move { watcher.long_poll("5s").await.clone() });

    let op = create_ok(&api, "basic-1", basic(1)).await;
    assert_eq!(op["done"], false, "{op}");
    let inst = instance(&api, "basic-1").await;
    assert_eq!(inst["state"], "CREATING", "{inst}");
    assert_eq!(inst["tier"], "BASIC", "{inst}");
    let nodes = node_summary(&inst);
    assert_eq!(nodes.len(), 1, "{inst}");
    assert_eq!(
        (nodes[0].0.as_str(), nodes[0].1.as_str()),
        ("local-a", "PRIMARY")
    );
    let basic_range = check_addresses(&inst);

    let woke = poll.await.expect("long-poll task");
    assert!(woke.generation > known, "{woke:?}");
    let spec = woke
        .nodes
        .iter()
        .find(|n| n.node_id.to_string() == inst["nodes"][0]["id"])
        .unwrap_or_else(|| panic!("node missing from host-a's config {woke:?}"));
    assert_eq!(spec.maxmemory_bytes, GIB);
    assert_eq!(spec.endpoint_address.as_deref(), inst["host"].as_str());
    assert_eq!(
        Some(spec.address.as_str()),
        inst["nodes"][0]["address"].as_str()
    );
    assert!(spec.auth_string.as_deref().is_some_and(|s| !s.is_empty()));
    // Nothing new: the long-poll answers with the same generation when it times out.
    let mut idle = fleet.agents[1].clone();
    let before = idle.config.generation;
    assert_eq!(idle.long_poll("200ms").await.generation, before);

    fleet.sync().await;
    let done = wait_done(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(done["response"]["name"], inst["name"], "{done}");
    assert_eq!(done["response"]["state"], "READY", "{done}");
    let inst = instance(&api, "basic-1").await;
    assert_eq!(inst["state"], "READY", "{inst}");
    assert!(all_nodes_ready(&inst), "{inst}");

    let op = create_ok(&api, "ha-1", standard_ha(1, 2)).await;
    assert_eq!(op["done"], false, "{op}");
    let inst = instance(&api, "ha-1").await;
    assert_eq!(inst["state"], "CREATING", "{inst}");
    let zones_roles: Vec<(String, String)> = node_summary(&inst)
        .into_iter()
        .map(|(z, r, _)| (z, r))
        .collect();
    let want = [
        ("local-a", "PRIMARY"),
        ("local-b", "REPLICA"),
        ("local-c", "REPLICA"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(z, r)| (z.to_string(), r.to_string()))
        .collect();
    assert_eq!(zones_roles, want, "{inst}");
    let ha_range = check_addresses(&inst);
    assert!(!inst["readEndpoint"].is_null(), "{inst}");
    assert!(
        !ha_range.contains(&basic_range.network()) && !basic_range.contains(&ha_range.network()),
        "{ha_range} overlaps {basic_range}"
    );
    // The host configs say who follows whom.
    for agent in &mut fleet.agents {
        agent.fetch_config().await;
    }
    let primary_addr = inst["nodes"][0]["address"].as_str().unwrap().to_string();
    for node in inst["nodes"].as_array().unwrap() {
        let (agent, spec) = fleet
            .find_node(node["id"].as_str().unwrap())
            .expect("node placed");
        assert_eq!(agent.zone, node["zone"], "{node}");
        assert_eq!(spec.maxmemory_bytes, GIB);
        if node["role"] == "PRIMARY" {
            assert_eq!(spec.endpoint_address.as_deref(), inst["host"].as_str());
        } else {
            assert_eq!(spec.primary_address.as_deref(), Some(primary_addr.as_str()));
            assert!(spec.endpoint_address.is_none(), "{spec:?}");
        }
    }

    fleet.sync().await;
    let done = wait_done(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(done["response"]["state"], "READY", "{done}");
    assert!(all_nodes_ready(&done["response"]), "{done}");
    let inst = instance(&api, "ha-1").await;
    assert_eq!(inst["state"], "READY", "{inst}");
    assert!(all_nodes_ready(&inst), "{inst}");

    let alloc = allocations(&api).await;
    assert_eq!(alloc["host-a"], 2 * GIB, "{alloc:?}");
    assert_eq!(alloc["host-b"], GIB, "{alloc:?}");
    assert_eq!(alloc["host-c"], GIB, "{alloc:?}");

    // A report older than the one already received is ignored.
    let primary = inst["nodes"][0]["id"].as_str().unwrap().to_string();
    let mut late = fleet.agent("host-a").clone();
    late.applied -= 1;
    late.fail_node(&primary, "stale news");
    late.heartbeat().await;
    let inst = instance(&api, "ha-1").await;
    assert_eq!(inst["state"], "READY", "{inst}");
    assert!(all_nodes_ready(&inst), "a stale report counted: {inst}");
}

#[tokio::test]
async fn placement_prefers_free_memory_and_exhaustion_leaves_nothing() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let big = FakeAgent::register(&api, "big-a", "local-a", 16 * GIB).await;
    let small = FakeAgent::register(&api, "small-a", "local-a", 8 * GIB).await;
    let mut fleet = Fleet {
        agents: vec![big, small],
    };

    // Most free memory wins, not most capacity: 16 > 8 free, 14 > 8 free, then 7 < 8 free.
    for (name, gb, host, alloc_big, alloc_small) in [
        ("p1", 2, "big-a", 2, 0),
        ("p2", 7, "big-a", 9, 0),
        ("p3", 4, "small-a", 9, 4),
    ] {
        let op = create_ok(&api, name, basic(gb)).await;
        assert_eq!(op["done"], false, "{op}");
        let inst = instance(&api, name).await;
        let node = inst["nodes"][0]["id"].as_str().unwrap().to_string();
        fleet.agent(host).fetch_config().await;
        assert!(
            fleet.agent(host).node(&node).is_some(),
            "{name} not on {host}"
        );
        let alloc = allocations(&api).await;
        assert_eq!(alloc["big-a"], alloc_big * GIB, "{name}: {alloc:?}");
        assert_eq!(alloc["small-a"], alloc_small * GIB, "{name}: {alloc:?}");
    }
    let before = allocations(&api).await;

    // No host in local-a has 10 GiB free.
    let op = create_ok(&api, "too-big", basic(10)).await;
    assert_eq!(op["done"], true, "{op}");
    assert_eq!(op["error"]["status"], "RESOURCE_EXHAUSTED", "{op}");
    let message = str_field(&op, "error.message");
    assert!(
        message.contains("local-a"),
        "message does not name the zone: {op}"
    );
    let (status, body) = get_instance(&api, "too-big").await;
    assert_eq!(status, 404, "{body}");
    let (status, again) = api.get(&format!("/v1/{}", op_name(&op))).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["error"]["status"], "RESOURCE_EXHAUSTED", "{again}");
    assert_eq!(allocations(&api).await, before);

    // STANDARD_HA: the primary fits in local-a, but local-b has no host at all. The
    // primary's placement must not stick.
    let op = create_ok(&api, "ha-nowhere", standard_ha(1, 1)).await;
    assert_eq!(op["error"]["status"], "RESOURCE_EXHAUSTED", "{op}");
    assert!(str_field(&op, "error.message").contains("local-b"), "{op}");
    assert_eq!(get_instance(&api, "ha-nowhere").await.0, 404);
    assert_eq!(allocations(&api).await, before);

    // Once a host has room, the same name can be created.
    fleet.agent("small-a").register_again(32 * GIB).await;
    let op = create_ok(&api, "too-big", basic(10)).await;
    assert!(op["error"].is_null(), "{op}");
    let done = fleet.converge(&api, &op).await;
    assert_eq!(done["response"]["state"], "READY", "{done}");
    assert_eq!(allocations(&api).await["small-a"], 14 * GIB);
}

#[tokio::test]
async fn node_that_cannot_start_fails_create_and_frees_everything() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;

    let op = create_ok(&api, "doomed", standard_ha(1, 2)).await;
    let inst = instance(&api, "doomed").await;
    let range = range_of(&inst);
    let replica = inst["nodes"][2]["id"].as_str().unwrap().to_string();
    let reason = "Can't open the append-only file: Permission denied";
    fleet.fail_node(&replica, reason).await;

    let done = fleet.converge(&api, &op).await;
    assert!(done["response"].is_null(), "{done}");
    let message = str_field(&done, "error.message");
    assert!(
        message.contains(reason),
        "error lacks the engine's reason: {done}"
    );

    let (status, inst) = get_instance(&api, "doomed").await;
    assert!(
        status == 404 || inst["state"] == "DELETING",
        "after a failed create: {status} {inst}"
    );
    sync_until_gone(&api, &mut fleet, "doomed").await;
    for agent in &mut fleet.agents {
        agent.fetch_config().await;
        assert!(agent.config.nodes.is_empty(), "{:?}", agent.config);
    }
    let alloc = allocations(&api).await;
    assert!(alloc.values().all(|&b| b == 0), "{alloc:?}");

    // The range is free again.
    let mut body = standard_ha(1, 2);
    body["reservedIpRange"] = json!(range.to_string());
    let op = create_ok(&api, "doomed", body).await;
    assert!(op["error"].is_null(), "{op}");
    let done = fleet.converge(&api, &op).await;
    assert_eq!(done["response"]["state"], "READY", "{done}");
    assert_eq!(
        done["response"]["reservedIpRange"],
        range.to_string(),
        "{done}"
    );
}

async fn delete(api: &Api, name: &str) -> (u16, Value) {
    api.delete(&instance_path(name)).await
}

#[tokio::test]
async fn delete_ready_instance_frees_its_range() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;

    let op = create_ok(&api, "gone-soon", standard_ha(1, 2)).await;
    fleet.converge(&api, &op).await;
    let inst = instance(&api, "gone-soon").await;
    assert_eq!(inst["state"], "READY", "{inst}");
    let range = range_of(&inst);

    let (status, del) = delete(&api, "gone-soon").await;
    assert_eq!(status, 200, "{del}");
    assert_eq!(del["metadata"]["verb"], "delete", "{del}");
    assert_eq!(del["done"], false, "{del}");
    assert_eq!(instance(&api, "gone-soon").await["state"], "DELETING");
    let (status, again) = delete(&api, "gone-soon").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["name"], del["name"],
        "a second delete started another operation"
    );
    // The nodes have left the host configs; the range is held until they stop.
    for agent in &mut fleet.agents {
        assert!(
            agent.fetch_config().await.nodes.is_empty(),
            "{:?}",
            agent.config
        );
    }
    let mut body = basic(1);
    body["reservedIpRange"] = json!(range.to_string());
    let (status, early) = create(&api, "reuse", body.clone()).await;
    assert_eq!(status, 409, "range reused while the old nodes run: {early}");
    assert_eq!(early["error"]["status"], "FAILED_PRECONDITION", "{early}");
    assert!(
        early["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("reservedIpRange: ")),
        "{early}"
    );

    let done = fleet.converge(&api, &del).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(
        done["response"],
        json!({"@type": "type.googleapis.com/google.protobuf.Empty"}),
        "a delete leaves nothing: {done}"
    );
    assert_eq!(get_instance(&api, "gone-soon").await.0, 404);
    assert_eq!(delete(&api, "gone-soon").await.0, 404);
    assert!(allocations(&api).await.values().all(|&b| b == 0));

    let op = create_ok(&api, "reuse", body).await;
    assert!(op["error"].is_null(), "{op}");
    let done = fleet.converge(&api, &op).await;
    assert_eq!(
        done["response"]["reservedIpRange"],
        range.to_string(),
        "{done}"
    );
}

#[tokio::test]
async fn delete_while_creating_aborts_the_create() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;

    let create_op = create_ok(&api, "hasty", standard_ha(2, 2)).await;
    let range = range_of(&instance(&api, "hasty").await);
    // One agent has already applied the create; the others have not.
    fleet.agents[0].sync().await;

    let (status, del) = delete(&api, "hasty").await;
    assert_eq!(status, 200, "{del}");
    let aborted = wait_done(&api, &create_op).await;
    assert_eq!(aborted["error"]["status"], "ABORTED", "{aborted}");
    assert_eq!(aborted["error"]["code"], 409, "{aborted}");
    assert_eq!(instance(&api, "hasty").await["state"], "DELETING");

    let done = fleet.converge(&api, &del).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(get_instance(&api, "hasty").await.0, 404);
    assert!(allocations(&api).await.values().all(|&b| b == 0));
    let mut body = basic(1);
    body["reservedIpRange"] = json!(range.to_string());
    let op = create_ok(&api, "hasty", body).await;
    assert!(op["error"].is_null(), "{op}");
}

#[tokio::test]
async fn operation_survives_an_api_crash() {
    let db = TestDb::new().await;
    let mut api = Api::start(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;

    let op = create_ok(&api, "durable", standard_ha(1, 2)).await;
    assert_eq!(op["done"], false, "{op}");
    api.kill();
    api.restart().await;

    let (status, after) = api.get(&format!("/v1/{}", op_name(&op))).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["done"], false, "{after}");
    assert_eq!(instance(&api, "durable").await["state"], "CREATING");

    fleet.sync().await;
    let done = wait_done(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(done["response"]["state"], "READY", "{done}");
    let inst = instance(&api, "durable").await;
    assert_eq!(inst["state"], "READY", "{inst}");
    assert!(all_nodes_ready(&inst), "{inst}");
    let (status, list) = api.get(&format!("{PARENT}/operations")).await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list["operations"].as_array().is_some_and(|ops| ops
            .iter()
            .any(|o| o["name"] == op["name"] && o["done"] == true)),
        "{list}"
    );
}
