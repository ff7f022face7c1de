//! Failover and repair decided by the data plane (tracker issue 10): a primary whose host
//! is merely silent is not failed over while its replicas still see it; an engine slow
//! for a moment is not down; hosts get a grace period after the API starts; the write
//! fence follows the replicas' liveness; a create whose node sits on a silent host fails
//! after the deadline; a replica lost with its host is re-created elsewhere; a REPAIRING
//! instance with no qualified replica can be forced over. Fake agents throughout, with
//! hand-made heartbeats where a report must say more than "healthy".

mod common;

use std::time::Duration;

use cacheplane_testkit::json::{str_field, string_field};
use cacheplane_testkit::wait::{not_yet, ready_if};
use cacheplane_testkit::{wait_until, Api, FakeAgent, Fleet, TestDb, GIB};
use common::client::{
    create_ok, get_instance, instance, instance_path, node_id, ready_ha, standard_ha, PARENT,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// Fetches and applies the host's config, then heartbeats its report with `change`
/// made to each node's entry.
async fn beat(api: &Api, agent: &mut FakeAgent, change: impl Fn(&mut Value)) {
    agent.fetch_config().await;
    agent.applied = agent.config.generation;
    let mut body = agent.report();
    for n in body["nodes"].as_array_mut().into_iter().flatten() {
        change(n);
    }
    let (status, answer) = api
        .post(&format!("/v1/hosts/{}/heartbeat", agent.host), body)
        .await;
    assert_eq!(status, 200, "heartbeat of {}: {answer}", agent.host);
}

/// Every operation of the project.
async fn operations(api: &Api) -> Vec<Value> {
    let (_, ops) = api.get(&format!("{PARENT}/operations")).await;
    ops["operations"].as_array().cloned().unwrap_or_default()
}

async fn failovers(api: &Api) -> usize {
    operations(api)
        .await
        .iter()
        .filter(|o| o["metadata"]["verb"] == "failover")
        .count()
}

/// Whether the primary `node`'s spec (in its host's current config) carries the fence.
async fn fenced(agent: &mut FakeAgent, node: &str) -> bool {
    agent.fetch_config().await;
    agent
        .node(node)
        .unwrap_or_else(|| panic!("node {node} not on {}", agent.host))
        .write_fence
        .is_some()
}

#[tokio::test]
async fn a_silent_primary_host_fails_over_only_once_every_replica_lost_its_link() {
    let db = TestDb::new().await;
    let api =
        Api::in_process_with_args(&db, &["--host-timeout", "1s", "--worker-interval", "100ms"])
            .await;
    let mut fleet = Fleet::three_zones(&api, 16 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "quiet", 2).await;
    let primary = node_id(&inst, "PRIMARY");
    assert!(fleet.agent("host-a").node(&primary).is_some(), "{inst}");

    // host-a's agent goes silent; its engine keeps serving: the replicas stay linked.
    let repairing = wait_until("quiet is REPAIRING", WAIT, POLL, || {
        let mut others: Vec<FakeAgent> = fleet.agents[1..].to_vec();
        let api = &api;
        async move {
            for a in &mut others {
                a.sync().await;
            }
            let i = instance(api, "quiet").await;
            ready_if::<String, _>(i["state"] == "REPAIRING", || format!("{i}")).map(|()| i)
        }
    })
    .await;
    assert!(
        str_field(&repairing, "statusMessage").contains(&primary),
        "{repairing}"
    );
    // Several host timeouts more of linked replicas: still no failover.
    for _ in 0..30 {
        for a in &mut fleet.agents[1..] {
            a.sync().await;
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(failovers(&api).await, 0, "{:?}", operations(&api).await);
    assert_eq!(node_id(&instance(&api, "quiet").await, "PRIMARY"), primary);

    // The replicas lose their link to it: now it is lost.
    let agents = tokio::sync::Mutex::new(fleet.agents[1..].to_vec());
    wait_until("an automatic failover", WAIT, POLL, || async {
        for a in agents.lock().await.iter_mut() {
            beat(&api, a, |n| {
                if n["role"] == "REPLICA" {
                    n["masterLinkUp"] = json!(false);
                }
            })
            .await;
        }
        let n = failovers(&api).await;
        ready_if::<String, _>(n == 1, || format!("{n} failovers"))
    })
    .await;
    let after = instance(&api, "quiet").await;
    assert_ne!(node_id(&after, "PRIMARY"), primary, "{after}");
}

#[tokio::test]
async fn a_slow_primary_engine_is_failed_over_only_past_the_unresponsive_bound() {
    let db = TestDb::new().await;
    let api = Api::in_process_with_args(
        &db,
        &["--unresponsive-timeout", "5s", "--worker-interval", "100ms"],
    )
    .await;
    let mut fleet = Fleet::three_zones(&api, 16 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "slow", 1).await;
    let primary = node_id(&inst, "PRIMARY");
    let slow = |secs: i64| {
        let primary = primary.clone();
        move |n: &mut Value| {
            if n["nodeId"] == primary.as_str() {
                n["unresponsiveSeconds"] = json!(secs);
            }
        }
    };
    for _ in 0..10 {
        beat(&api, fleet.agent("host-a"), slow(3)).await;
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(failovers(&api).await, 0, "one slow INFO is not down");
    assert_eq!(instance(&api, "slow").await["state"], "READY");

    beat(&api, fleet.agent("host-a"), slow(6)).await;
    let agents = tokio::sync::Mutex::new(&mut fleet);
    wait_until("an automatic failover", WAIT, POLL, || async {
        let mut fleet = agents.lock().await;
        beat(&api, fleet.agent("host-a"), slow(7)).await;
        for a in &mut fleet.agents[1..] {
            a.sync().await;
        }
        let n = failovers(&api).await;
        ready_if::<String, _>(n == 1, || format!("{n} failovers"))
    })
    .await;
    let ops = operations(&api).await;
    let op = ops
        .iter()
        .find(|o| o["metadata"]["verb"] == "failover")
        .unwrap();
    assert_ne!(
        node_id(&instance(&api, "slow").await, "PRIMARY"),
        primary,
        "{op}"
    );
}

#[tokio::test]
async fn the_write_fence_is_lifted_while_no_replica_can_acknowledge() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 16 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "fence", 1).await;
    let primary = node_id(&inst, "PRIMARY");
    let replica = node_id(&inst, "REPLICA");
    assert!(
        fenced(fleet.agent("host-a"), &primary).await,
        "fenced while replicated"
    );

    fleet.fail_node(&replica, "the process exited").await;
    let shared = tokio::sync::Mutex::new(&mut fleet);
    wait_until("the fence is lifted", WAIT, POLL, || async {
        let mut fleet = shared.lock().await;
        fleet.sync().await;
        let on = fenced(fleet.agent("host-a"), &primary).await;
        ready_if::<String, _>(!on, || "still fenced")
    })
    .await;
    assert_eq!(instance(&api, "fence").await["state"], "REPAIRING");

    fleet.recover_node(&replica);
    fleet
        .sync_until("READY again", || async {
            instance(&api, "fence").await["state"] == "READY"
        })
        .await;
    assert!(
        fenced(fleet.agent("host-a"), &primary).await,
        "fenced again"
    );
}

#[tokio::test]
async fn after_an_api_restart_silent_hosts_get_a_grace_period() {
    let db = TestDb::new().await;
    let args = ["--host-timeout", "3s", "--worker-interval", "100ms"];
    let api = Api::in_process_with_args(&db, &args).await;
    let mut fleet = Fleet::three_zones(&api, 16 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "calm", 1).await;
    let primary = node_id(&inst, "PRIMARY");
    let generation = fleet.agent("host-a").config.generation;

    // The control plane is away longer than the host timeout: no heartbeat is recorded.
    drop(api);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let api = Api::in_process_with_args(&db, &args).await;
    // A few sweeps run before the agents get through again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let i = instance(&api, "calm").await;
    assert_eq!(i["state"], "READY", "no host counts as silent yet: {i}");
    assert_eq!(failovers(&api).await, 0);
    let mut agent = FakeAgent::attach(api.caller(), "host-a", "local-a").await;
    assert_eq!(agent.config.generation, generation, "no config change");
    assert!(fenced(&mut agent, &primary).await);
}

/// An API with a 1 s host timeout and a 2 s operation deadline.
async fn deadline_api(db: &TestDb) -> Api {
    Api::in_process_with_args(
        db,
        &[
            "--host-timeout",
            "1s",
            "--operation-deadline",
            "2s",
            "--worker-interval",
            "100ms",
        ],
    )
    .await
}

/// Starts creating `name` (HA, one replica); returns the operation's name, the replica's
/// id and the host it was placed on (whose agent then never answers again).
async fn create_with_silent_replica(
    api: &Api,
    agents: &mut [FakeAgent],
    name: &str,
) -> (String, String, String) {
    let op = create_ok(api, name, standard_ha(1, 1)).await;
    for a in agents.iter_mut() {
        a.fetch_config().await;
    }
    let replica = node_id(&instance(api, name).await, "REPLICA");
    let holder = agents
        .iter()
        .find(|a| a.node(&replica).is_some())
        .expect("the replica is placed");
    (string_field(&op, "name"), replica, holder.host.clone())
}

/// Syncs every agent but `silent`'s until the operation `name` is done; returns it.
async fn done_without(api: &Api, agents: &[FakeAgent], silent: &str, name: &str) -> Value {
    let others = tokio::sync::Mutex::new(
        agents
            .iter()
            .filter(|a| a.host != silent)
            .cloned()
            .collect::<Vec<_>>(),
    );
    wait_until(
        "the operation ends",
        Duration::from_secs(60),
        POLL,
        || async {
            for a in others.lock().await.iter_mut() {
                a.sync().await;
            }
            let (_, o) = api.get(&format!("/v1/{name}")).await;
            if o["done"] == true {
                Ok(o)
            } else {
                not_yet::<_, String>(o)
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_create_whose_node_sits_on_a_silent_host_is_placed_again_after_the_deadline() {
    let db = TestDb::new().await;
    let api = deadline_api(&db).await;
    let mut fleet = Fleet::three_zones(&api, 16 * GIB).await;
    let (op, replica, silent) = create_with_silent_replica(&api, &mut fleet.agents, "moved").await;
    let done = done_without(&api, &fleet.agents, &silent, &op).await;
    assert!(done["error"].is_null(), "{done}");
    let i = instance(&api, "moved").await;
    assert_eq!(i["state"], "READY", "{i}");
    let now = node_id(&i, "REPLICA");
    assert_ne!(now, replica, "a new node: {i}");
    for a in &mut fleet.agents {
        a.fetch_config().await;
    }
    let (holder, _) = fleet.find_node(&now).expect("placed on a live host");
    assert_ne!(holder.host, silent);
    assert_ne!(
        holder.host, "host-a",
        "not beside its primary while a host is free"
    );
}

#[tokio::test]
async fn a_create_whose_node_cannot_be_placed_again_fails_naming_the_node_and_host() {
    let db = TestDb::new().await;
    let api = deadline_api(&db).await;
    // host-a has room for the primary only; the replica goes to host-b.
    let mut agents = vec![
        FakeAgent::register(&api, "host-a", "local-a", GIB).await,
        FakeAgent::register(&api, "host-b", "local-b", 16 * GIB).await,
    ];
    let (op, replica, silent) = create_with_silent_replica(&api, &mut agents, "stuck").await;
    assert_eq!(silent, "host-b");
    let done = done_without(&api, &agents, &silent, &op).await;
    let message = str_field(&done, "error.message");
    assert!(message.contains(&replica), "names the node: {done}");
    assert!(message.contains(&silent), "names the host: {done}");
    // Rolled back as a failed create is.
    let others = tokio::sync::Mutex::new(agents[..1].to_vec());
    wait_until("the instance is gone", WAIT, POLL, || async {
        for a in others.lock().await.iter_mut() {
            a.sync().await;
        }
        let (status, body) = get_instance(&api, "stuck").await;
        ready_if::<String, _>(status == 404, || format!("{status} {body}"))
    })
    .await;
}

#[tokio::test]
async fn a_replica_lost_with_its_host_is_recreated_in_its_zone() {
    let db = TestDb::new().await;
    let api = Api::in_process_with_args(
        &db,
        &[
            "--host-timeout",
            "1s",
            "--repair-after",
            "2s",
            "--worker-interval",
            "100ms",
        ],
    )
    .await;
    let mut fleet = Fleet::three_zones(&api, 16 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "mend", 1).await;
    let old = inst["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "REPLICA")
        .cloned()
        .unwrap();
    assert_eq!(old["zone"], "local-b", "{inst}");
    // A spare host in local-b; then host-b is lost.
    let spare = FakeAgent::register(&api, "host-b2", "local-b", 16 * GIB).await;
    fleet.agents.retain(|a| a.host != "host-b");
    fleet.agents.push(spare);
    let old_id = string_field(&old, "id");
    fleet
        .sync_until("the replica is re-created and READY", || async {
            let i = instance(&api, "mend").await;
            i["state"] == "READY"
                && i["nodes"]
                    .as_array()
                    .is_some_and(|n| n.len() == 2 && n.iter().all(|n| n["id"] != old_id.as_str()))
        })
        .await;
    let i = instance(&api, "mend").await;
    let new = i["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "REPLICA")
        .cloned()
        .unwrap();
    assert_eq!(new["zone"], "local-b", "{i}");
    assert_ne!(new["address"], old["address"], "a new address: {i}");
    let new_id = string_field(&new, "id");
    assert!(
        fleet.agent("host-b2").node(&new_id).is_some(),
        "on the spare host"
    );
    assert_eq!(failovers(&api).await, 0);
}

#[tokio::test]
async fn a_repairing_instance_with_no_qualified_replica_can_be_forced_over() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 16 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "stuck", 1).await;
    let primary = node_id(&inst, "PRIMARY");
    let replica = node_id(&inst, "REPLICA");
    let (holder, _) = fleet.find_node(&replica).unwrap();
    let holder = holder.host.clone();
    // The primary's engine is down; the only replica is in a full sync: it does not
    // qualify for an automatic failover.
    fleet
        .agent("host-a")
        .fail_node(&primary, "the process exited");
    let shared = tokio::sync::Mutex::new(&mut fleet);
    let syncing = |n: &mut Value| {
        n["fullSyncInProgress"] = json!(true);
        n["masterLinkUp"] = json!(false);
    };
    wait_until("REPAIRING", WAIT, POLL, || async {
        let mut fleet = shared.lock().await;
        beat(&api, fleet.agent(&holder), syncing).await;
        fleet.agent("host-a").sync().await;
        let i = instance(&api, "stuck").await;
        ready_if::<String, _>(i["state"] == "REPAIRING", || format!("{i}"))
    })
    .await;
    assert_eq!(failovers(&api).await, 0);

    let path = format!("{}/failover", instance_path("stuck"));
    let (status, body) = api
        .post(&path, json!({ "dataProtectionMode": "LIMITED_DATA_LOSS" }))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["status"], "FAILED_PRECONDITION", "{body}");
    let (status, op) = api
        .post(&path, json!({ "dataProtectionMode": "FORCE_DATA_LOSS" }))
        .await;
    assert_eq!(status, 200, "{op}");
    let done = fleet.converge(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    let after = instance(&api, "stuck").await;
    assert_eq!(node_id(&after, "PRIMARY"), replica, "{after}");
    // The old primary is still failed: REPAIRING, not READY.
    assert_eq!(after["state"], "REPAIRING", "{after}");
}

#[tokio::test]
async fn a_range_freed_while_its_host_is_silent_waits_for_that_host() {
    let db = TestDb::new().await;
    let api =
        Api::in_process_with_args(&db, &["--host-timeout", "1s", "--worker-interval", "100ms"])
            .await;
    let mut fleet = Fleet::three_zones(&api, 16 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "gone", 1).await;
    let old_range = string_field(&inst, "reservedIpRange");
    let replica = node_id(&inst, "REPLICA");
    let (holder, _) = fleet.find_node(&replica).unwrap();
    let silent = holder.host.clone();
    let others = tokio::sync::Mutex::new(
        fleet
            .agents
            .iter()
            .filter(|a| a.host != silent)
            .cloned()
            .collect::<Vec<_>>(),
    );
    // The replica's host goes silent; the instance is deleted meanwhile.
    wait_until("the replica's host is down", WAIT, POLL, || async {
        for a in others.lock().await.iter_mut() {
            a.sync().await;
        }
        let i = instance(&api, "gone").await;
        ready_if::<String, _>(i["state"] == "REPAIRING", || format!("{i}"))
    })
    .await;
    let (status, body) = api.delete(&instance_path("gone")).await;
    assert_eq!(status, 200, "{body}");
    wait_until("the instance is gone", WAIT, POLL, || async {
        for a in others.lock().await.iter_mut() {
            a.sync().await;
        }
        let (status, body) = get_instance(&api, "gone").await;
        ready_if::<String, _>(status == 404, || format!("{status} {body}"))
    })
    .await;

    // Its range is not handed out while the silent host may still run the engine.
    let basic = json!({ "tier": "BASIC", "memorySizeGb": 1, "locationId": "local-a" });
    create_ok(&api, "next", basic.clone()).await;
    let next = instance(&api, "next").await;
    assert_ne!(string_field(&next, "reservedIpRange"), old_range, "{next}");

    // The host returns and applies a config without the node: the range is free again.
    fleet.sync().await;
    create_ok(&api, "third", basic).await;
    let third = instance(&api, "third").await;
    assert_eq!(
        string_field(&third, "reservedIpRange"),
        old_range,
        "{third}"
    );
    let (status, body) = api
        .post(&format!("/v1/hosts/{silent}/releaseRanges"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["releasedRanges"], json!([]), "nothing held any more");
}

#[tokio::test]
async fn a_repairing_instance_with_no_running_replica_can_restart_its_primary_empty() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 16 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "empty", 1).await;
    let primary = node_id(&inst, "PRIMARY");
    let replica = node_id(&inst, "REPLICA");
    // The replica fails first (no automatic failover to it), then the primary.
    fleet.fail_node(&replica, "the process exited").await;
    fleet
        .sync_until("REPAIRING", || async {
            instance(&api, "empty").await["state"] == "REPAIRING"
        })
        .await;
    fleet.fail_node(&primary, "the process exited").await;
    fleet
        .sync_until("the primary reported failed", || async {
            let i = instance(&api, "empty").await;
            i["state"] == "REPAIRING" && str_field(&i, "statusMessage").contains(&primary)
        })
        .await;
    assert_eq!(failovers(&api).await, 0);

    let path = format!("{}/failover", instance_path("empty"));
    let (status, op) = api
        .post(&path, json!({ "dataProtectionMode": "FORCE_DATA_LOSS" }))
        .await;
    assert_eq!(status, 200, "{op}");
    let done = fleet.converge(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    let after = instance(&api, "empty").await;
    let new = node_id(&after, "PRIMARY");
    assert_ne!(new, primary, "a new primary node: {after}");
    assert_ne!(new, replica, "{after}");
    assert!(
        after["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["id"] != primary.as_str()),
        "the old primary is gone: {after}"
    );
    assert_eq!(after["host"], inst["host"], "the endpoint stays");

    fleet.recover_node(&replica);
    fleet
        .sync_until("READY once the replica follows the new primary", || async {
            instance(&api, "empty").await["state"] == "READY"
        })
        .await;
}
