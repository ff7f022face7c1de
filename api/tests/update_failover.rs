//! Patch (size, replicas, etag) and manual failover against fake node agents (docs/architecture.md#patch-rules,
//! §4 "Scaling", "Read replicas").

mod common;

use cacheplane_testkit::api::op_name;
use cacheplane_testkit::fake_agent::*;
use cacheplane_testkit::json::{str_field, string_field};
use cacheplane_testkit::GIB;
use cacheplane_testkit::{Api, TestDb};
use cacheplane_types::NodeRole;
use common::client::*;
use serde_json::{json, Value};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::task::JoinSet;

/// `PATCH …/instances/{name}?updateMask=MASK` with `body`.
async fn patch(api: &Api, name: &str, mask: &str, body: Value) -> (u16, Value) {
    api.patch(&format!("{}?updateMask={mask}", instance_path(name)), body)
        .await
}

/// `POST …/instances/{name}/failover`.
async fn failover(api: &Api, name: &str, body: Value) -> (u16, Value) {
    api.post(&format!("{}/failover", instance_path(name)), body)
        .await
}

fn node_ids(inst: &Value) -> Vec<String> {
    inst["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {inst}"))
        .iter()
        .map(|n| string_field(n, "id"))
        .collect()
}

fn node<'a>(inst: &'a Value, id: &str) -> &'a Value {
    inst["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["id"] == id))
        .unwrap_or_else(|| panic!("node {id} not in {inst}"))
}

/// A READY STANDARD_HA instance (1 GB, read replicas, 2 replicas) on a three-zone fleet.
async fn ready_ha(api: &Api, fleet: &mut Fleet, name: &str) -> Value {
    let op = create_ok(api, name, standard_ha(1, 2)).await;
    let done = fleet.converge(api, &op).await;
    assert_eq!(done["response"]["state"], "READY", "{done}");
    instance(api, name).await
}

#[tokio::test]
async fn patch_memory_size_applies_online_or_is_refused_whole() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "grow").await;

    let (status, op) = patch(&api, "grow", "memorySizeGb", json!({"memorySizeGb": 2})).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["metadata"]["verb"], "update", "{op}");
    assert_eq!(op["done"], false, "{op}");
    let updating = instance(&api, "grow").await;
    assert_eq!(updating["state"], "UPDATING", "{updating}");
    assert_eq!(updating["memorySizeGb"], 2, "{updating}");
    for agent in &mut fleet.agents {
        agent.fetch_config().await;
    }
    for id in node_ids(&inst) {
        let (_, spec) = fleet.find_node(&id).expect("node in a host config");
        assert_eq!(spec.maxmemory_bytes, 2 * GIB, "{spec:?}");
    }
    fleet.sync().await;
    let done = wait_done(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(done["response"]["state"], "READY", "{done}");
    assert_eq!(done["response"]["memorySizeGb"], 2, "{done}");
    let alloc = allocations(&api).await;
    assert!(alloc.values().all(|&b| b == 2 * GIB), "{alloc:?}");

    // 64 GB fits no host: refused at once, nothing changes.
    let before = instance(&api, "grow").await;
    let got = patch(&api, "grow", "memorySizeGb", json!({"memorySizeGb": 64})).await;
    assert_error("patch to 64 GB", (got.0, &got.1), 429, "RESOURCE_EXHAUSTED");
    let after = instance(&api, "grow").await;
    assert_eq!(after["memorySizeGb"], 2, "{after}");
    assert_eq!(after["state"], "READY", "{after}");
    assert_eq!(after["etag"], before["etag"], "{after}");
    assert_eq!(allocations(&api).await, alloc);
    for agent in &mut fleet.agents {
        let config = agent.fetch_config().await;
        assert!(
            config.nodes.iter().all(|n| n.maxmemory_bytes == 2 * GIB),
            "{config:?}"
        );
    }
}

#[tokio::test]
async fn patch_replica_count_adds_and_removes_the_newest() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "scale").await;
    let original = node_ids(&inst);

    let (status, op) = patch(&api, "scale", "replicaCount", json!({"replicaCount": 3})).await;
    assert_eq!(status, 200, "{op}");
    let updating = instance(&api, "scale").await;
    assert_eq!(updating["state"], "UPDATING", "{updating}");
    assert_eq!(updating["replicaCount"], 3, "{updating}");
    let ids = node_ids(&updating);
    assert_eq!(ids.len(), 4, "{updating}");
    assert_eq!(ids[..3], original[..], "existing nodes changed: {updating}");
    let added = node(&updating, &ids[3]);
    assert_eq!(added["role"], "REPLICA", "{updating}");
    let range: ipnet::Ipv4Net = updating["reservedIpRange"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let addr: std::net::Ipv4Addr = added["address"].as_str().unwrap().parse().unwrap();
    assert!(range.contains(&addr), "{updating}");
    fleet.sync().await;
    let done = wait_done(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(done["response"]["state"], "READY", "{done}");
    let grown = instance(&api, "scale").await;
    assert_eq!(grown["state"], "READY", "{grown}");
    assert!(
        grown["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "READY"),
        "{grown}"
    );
    let total: i64 = allocations(&api).await.values().sum();
    assert_eq!(total, 4 * GIB);

    let (status, op) = patch(&api, "scale", "replicaCount", json!({"replicaCount": 1})).await;
    assert_eq!(status, 200, "{op}");
    let shrinking = instance(&api, "scale").await;
    assert_eq!(shrinking["state"], "UPDATING", "{shrinking}");
    assert_eq!(shrinking["replicaCount"], 1, "{shrinking}");
    let done = fleet.converge(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    let shrunk = instance(&api, "scale").await;
    assert_eq!(shrunk["state"], "READY", "{shrunk}");
    // The two newest replicas went; the primary and the first replica stay.
    assert_eq!(node_ids(&shrunk), original[..2].to_vec(), "{shrunk}");
    assert_eq!(shrunk["nodes"][0]["role"], "PRIMARY", "{shrunk}");
    let total: i64 = allocations(&api).await.values().sum();
    assert_eq!(total, 2 * GIB);
    for id in &ids[2..] {
        assert!(
            fleet.find_node(id).is_none(),
            "removed node {id} still in a config"
        );
    }
}

#[tokio::test]
async fn patch_with_etag_is_optimistic() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;
    let op = create_ok(&api, "tagged", basic(1)).await;
    fleet.converge(&api, &op).await;

    let inst = instance(&api, "tagged").await;
    let etag = inst["etag"].as_str().expect("etag").to_string();
    let body = json!({"displayName": "first", "etag": etag});
    let (status, op) = patch(&api, "tagged", "displayName", body).await;
    assert_eq!(status, 200, "{op}");
    let done = wait_done(&api, &op).await;
    assert_eq!(done["response"]["displayName"], "first", "{done}");
    let now = instance(&api, "tagged").await;
    assert_ne!(now["etag"], etag, "the etag did not change: {now}");

    let stale = json!({"displayName": "second", "etag": etag});
    let got = patch(&api, "tagged", "displayName", stale).await;
    assert_error("patch with a stale etag", (got.0, &got.1), 409, "ABORTED");
    assert_eq!(instance(&api, "tagged").await["displayName"], "first");
}

#[tokio::test]
async fn failover_checks_lag_and_moves_the_primary() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;

    let op = create_ok(&api, "solo", basic(1)).await;
    fleet.converge(&api, &op).await;
    let got = failover(
        &api,
        "solo",
        json!({"dataProtectionMode": "FORCE_DATA_LOSS"}),
    )
    .await;
    assert_error(
        "failover of BASIC",
        (got.0, &got.1),
        409,
        "FAILED_PRECONDITION",
    );

    let inst = ready_ha(&api, &mut fleet, "ha").await;
    let ids = node_ids(&inst);
    let (old_primary, first_replica, second_replica) = (&ids[0], &ids[1], &ids[2]);
    let endpoint = inst["host"].as_str().unwrap().to_string();

    // Both replicas 30 MiB behind: LIMITED_DATA_LOSS (also the default) refuses.
    fleet.set_lag(first_replica, 31_457_280).await;
    fleet.set_lag(second_replica, 31_457_280).await;
    fleet.sync().await;
    for body in [
        json!({"dataProtectionMode": "LIMITED_DATA_LOSS"}),
        json!({}),
    ] {
        let got = failover(&api, "ha", body).await;
        let msg = assert_error(
            "lagging failover",
            (got.0, &got.1),
            409,
            "FAILED_PRECONDITION",
        );
        assert!(msg.contains("lag"), "{msg}");
    }
    assert_eq!(instance(&api, "ha").await["state"], "READY");

    // FORCE_DATA_LOSS goes ahead; the replica in the alternative zone takes over.
    let (status, op) = failover(&api, "ha", json!({"dataProtectionMode": "FORCE_DATA_LOSS"})).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["metadata"]["verb"], "failover", "{op}");
    let moving = instance(&api, "ha").await;
    assert_eq!(moving["state"], "FAILING_OVER", "{moving}");
    for agent in &mut fleet.agents {
        agent.fetch_config().await;
    }
    let (agent, spec) = fleet.find_node(first_replica).expect("new primary placed");
    assert_eq!(agent.zone, "local-b");
    assert_eq!(spec.role, NodeRole::Primary, "{spec:?}");
    assert_eq!(
        spec.endpoint_address.as_deref(),
        Some(endpoint.as_str()),
        "{spec:?}"
    );
    let new_primary_addr = spec.address.clone();
    for id in [old_primary, second_replica] {
        let (_, spec) = fleet.find_node(id).expect("node placed");
        assert_eq!(spec.role, NodeRole::Replica, "{spec:?}");
        assert!(spec.endpoint_address.is_none(), "{spec:?}");
        assert_eq!(
            spec.primary_address.as_deref(),
            Some(new_primary_addr.as_str()),
            "{spec:?}"
        );
    }

    fleet.sync().await;
    let done = wait_done(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(done["response"]["state"], "READY", "{done}");
    let after = instance(&api, "ha").await;
    assert_eq!(after["state"], "READY", "{after}");
    assert_eq!(
        after["host"], endpoint,
        "the primary endpoint moved: {after}"
    );
    assert_eq!(node(&after, first_replica)["role"], "PRIMARY", "{after}");
    assert_eq!(node(&after, old_primary)["role"], "REPLICA", "{after}");
    assert!(
        after["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "READY"),
        "{after}"
    );

    // The old primary, now an in-sync replica, is the best one: LIMITED_DATA_LOSS goes
    // back to it, as a coordinated switchover (the primary hands over by itself).
    let (status, op) = failover(&api, "ha", json!({})).await;
    assert_eq!(status, 200, "{op}");
    let done = fleet.converge(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    let back = instance(&api, "ha").await;
    assert_eq!(node(&back, old_primary)["role"], "PRIMARY", "{back}");
    assert_eq!(node(&back, first_replica)["role"], "REPLICA", "{back}");
    assert_eq!(back["host"], endpoint, "{back}");
}

/// A LIMITED_DATA_LOSS failover from a healthy primary is a coordinated switchover: the
/// target replica's agent is told first, then the primary's; the roles change only once
/// the primary reports the handover done. A handover the primary's agent reports aborted
/// fails the operation with ABORTED and its reason, and changes nothing: same primary,
/// READY, no node marked any more.
#[tokio::test]
async fn a_switchover_changes_roles_only_once_handed_over() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "ha").await;
    let ids = node_ids(&inst);
    let (primary, replica) = (&ids[0], &ids[1]);

    let (status, op) = failover(&api, "ha", json!({})).await;
    assert_eq!(status, 200, "{op}");
    for agent in &mut fleet.agents {
        agent.fetch_config().await;
    }
    let (_, target) = fleet.find_node(replica).expect("replica placed");
    let told = target.switchover.clone().expect("the target is told first");
    assert_eq!(told.target_address, target.address, "{told:?}");
    assert_eq!(
        told.id.to_string(),
        op_name(&op).rsplit('/').next().unwrap()
    );
    let (_, old) = fleet.find_node(primary).expect("primary placed");
    assert!(
        old.switchover.is_none(),
        "not before the target applied: {old:?}"
    );
    assert_eq!(old.role, NodeRole::Primary);

    // The primary's agent refuses: the operation fails, nothing changed.
    let host = fleet.find_node(primary).unwrap().0.host.clone();
    let why = "Replica never caught up before timeout";
    fleet.agent(&host).refuse_handovers(why);
    let done = fleet.converge(&api, &op).await;
    assert_eq!(str_field(&done, "error.status"), "ABORTED", "{done}");
    let message = str_field(&done, "error.message");
    assert!(message.contains(why), "{done}");
    assert!(message.contains("still the primary"), "{done}");
    fleet.sync().await;
    let after = instance(&api, "ha").await;
    assert_eq!(after["state"], "READY", "{after}");
    assert_eq!(node(&after, primary)["role"], "PRIMARY", "{after}");
    for agent in &mut fleet.agents {
        agent.fetch_config().await;
    }
    for agent in &fleet.agents {
        assert!(
            agent.config.nodes.iter().all(|n| n.switchover.is_none()),
            "no node is marked any more: {:?}",
            agent.config
        );
    }
}

#[tokio::test]
async fn failed_update_leaves_a_deletable_failed_instance() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;
    ready_ha(&api, &mut fleet, "brittle").await;

    let (status, op) = patch(&api, "brittle", "replicaCount", json!({"replicaCount": 3})).await;
    assert_eq!(status, 200, "{op}");
    let updating = instance(&api, "brittle").await;
    let added = node_ids(&updating)[3].clone();
    let reason = "Fatal error loading the DB: Cannot allocate memory";
    fleet.fail_node(&added, reason).await;
    let done = fleet.converge(&api, &op).await;
    let message = str_field(&done, "error.message");
    assert!(message.contains(reason), "{done}");
    let failed = instance(&api, "brittle").await;
    assert_eq!(failed["state"], "FAILED", "{failed}");

    let (status, del) = api.delete(&instance_path("brittle")).await;
    assert_eq!(status, 200, "{del}");
    let done = fleet.converge(&api, &del).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(get_instance(&api, "brittle").await.0, 404);
    assert!(allocations(&api).await.values().all(|&b| b == 0));
}

/// Failovers and scale-downs of 10 instances at once while every agent heartbeats in a
/// loop: all are accepted (no deadlock between node and host row locks) and complete.
#[tokio::test]
async fn node_changes_racing_heartbeats() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 64 * GIB).await;
    let names: Vec<String> = (0..10).map(|i| format!("busy{i}")).collect();
    let mut creates = Vec::new();
    for name in &names {
        creates.push(create_ok(&api, name, standard_ha(1, 2)).await);
    }
    fleet.sync().await;
    for op in &creates {
        wait_done(&api, op).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let loops = fleet.heartbeat_loops(&stop);
    let mut changes = JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        let caller = api.caller();
        let path = instance_path(name);
        changes.spawn(async move {
            if i % 2 == 0 {
                let body = json!({"dataProtectionMode": "FORCE_DATA_LOSS"});
                caller
                    .req(
                        reqwest::Method::POST,
                        &format!("{path}/failover"),
                        Some(body),
                    )
                    .await
            } else {
                let path = format!("{path}?updateMask=replicaCount");
                caller
                    .req(
                        reqwest::Method::PATCH,
                        &path,
                        Some(json!({"replicaCount": 1})),
                    )
                    .await
            }
        });
    }
    let ops = join_racing("changes", changes, loops, &stop).await;
    for op in &ops {
        let done = fleet.converge(&api, op).await;
        assert_eq!(done["response"]["state"], "READY", "{done}");
    }
}
