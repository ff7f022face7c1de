//! Memcached instances against the in-process API and fake agents: bad input gets a 400
//! naming the field (404 for an unknown instance), and the lifecycle moves the nodes,
//! the discovery endpoint and the host configs as docs/memcached.md says: create across
//! three zones, scale up and down (nodes that stay keep their addresses, the config
//! version grows), stage and apply parameters to one node, delete freeing the range.
//! The same with real agents and memcached: `memcache_e2e.rs`.

mod common;

use std::collections::BTreeMap;

use cacheplane_testkit::json::{array_field, str_field};
use cacheplane_testkit::{Api, Fleet, TestDb, GIB};
use cacheplane_types::{DiscoveryEndpointSpec, MemcacheNodeSpec};
use common::checks::{expect_error, expect_invalid, expect_ok, merge};
use serde_json::{json, Value};

const MEMCACHE: &str = "/v1/projects/proj-m/locations/local/memcacheInstances";

async fn start() -> (TestDb, Api, Fleet) {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let fleet = Fleet::three_zones(&api, 64 * GIB).await;
    (db, api, fleet)
}

fn three_nodes() -> Value {
    json!({"nodeCount": 3, "nodeConfig": {"cpuCount": 1, "memorySizeMb": 1024}})
}

async fn create(api: &Api, id: &str, body: Value) -> Value {
    let got = api.post(&format!("{MEMCACHE}?instanceId={id}"), body).await;
    let op = expect_ok(&format!("create {id}"), &got);
    assert!(op["error"].is_null(), "create {id}: {op}");
    op
}

/// Every memcached node spec and discovery endpoint the fleet's hosts hold now.
async fn configs(fleet: &mut Fleet) -> (Vec<MemcacheNodeSpec>, Vec<DiscoveryEndpointSpec>) {
    let (mut nodes, mut endpoints) = (Vec::new(), Vec::new());
    for agent in &mut fleet.agents {
        let c = agent.fetch_config().await;
        nodes.extend(c.memcache_nodes.iter().cloned());
        endpoints.extend(c.discovery_endpoints.iter().cloned());
    }
    (nodes, endpoints)
}

/// The node addresses of an instance, by node id.
fn addresses(inst: &Value) -> BTreeMap<String, String> {
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

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let (_db, api, _fleet) = start().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("no nodes", json!({"nodeCount": 0}), "nodeCount"),
        (
            "more than a /28 holds",
            json!({"nodeCount": 14}),
            "nodeCount",
        ),
        ("no node count", json!({"nodeCount": null}), "nodeCount"),
        ("no node config", json!({"nodeConfig": null}), "nodeConfig"),
        (
            "too little memory",
            json!({"nodeConfig": {"cpuCount": 1, "memorySizeMb": 1023}}),
            "nodeConfig.memorySizeMb",
        ),
        (
            "no cpu",
            json!({"nodeConfig": {"cpuCount": 0, "memorySizeMb": 1024}}),
            "nodeConfig.cpuCount",
        ),
        (
            "too many cpus",
            json!({"nodeConfig": {"cpuCount": 33, "memorySizeMb": 1024}}),
            "nodeConfig.cpuCount",
        ),
        (
            "unknown parameter",
            json!({"parameters": {"params": {"maxmemory-policy": "lru"}}}),
            "parameters.params.maxmemory-policy",
        ),
        (
            "bad parameter value",
            json!({"parameters": {"params": {"max-item-size": "1000"}}}),
            "parameters.params.max-item-size",
        ),
        (
            "item larger than half a node",
            json!({"parameters": {"params": {"max-item-size": "1073741824"}}}),
            "parameters.params.max-item-size",
        ),
        ("zone of no region", json!({"zones": ["mars-a"]}), "zones"),
        (
            "version",
            json!({"memcacheVersion": "MEMCACHE_1_5"}),
            "memcacheVersion",
        ),
        ("labels", json!({"labels": {"Bad": "x"}}), "labels.Bad"),
    ];
    for (case, over, field) in cases {
        let body = merge(three_nodes(), over);
        let got = api.post(&format!("{MEMCACHE}?instanceId=m1"), body).await;
        expect_invalid(case, &got, field);
    }
    // A network the project does not have: NOT_FOUND naming the field.
    let body = merge(three_nodes(), json!({"authorizedNetwork": "nope"}));
    let got = api.post(&format!("{MEMCACHE}?instanceId=m1"), body).await;
    expect_error("network", &got, 404, "NOT_FOUND", None);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("authorizedNetwork: ")),
        "{}",
        got.1
    );
    let got = api
        .post(&format!("{MEMCACHE}?instanceId=Bad_Id"), three_nodes())
        .await;
    expect_invalid("instance id", &got, "instanceId");
    let (status, list) = api.get(MEMCACHE).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["instances"], json!([]), "nothing was created: {list}");

    let missing = format!("{MEMCACHE}/nope");
    expect_error("get", &api.get(&missing).await, 404, "NOT_FOUND", None);
    expect_error(
        "delete",
        &api.delete(&missing).await,
        404,
        "NOT_FOUND",
        None,
    );
    let patch = api
        .patch(
            &format!("{missing}?updateMask=nodeCount"),
            json!({"nodeCount": 2}),
        )
        .await;
    expect_error("patch", &patch, 404, "NOT_FOUND", None);
    let apply = api
        .post(
            &format!("{missing}:applyParameters"),
            json!({"applyAll": true}),
        )
        .await;
    expect_error("applyParameters", &apply, 404, "NOT_FOUND", None);
    let verb = api.post(&format!("{missing}:explode"), json!({})).await;
    expect_error("unknown custom method", &verb, 404, "NOT_FOUND", None);
}

#[tokio::test]
async fn create_scale_parameters_and_delete_move_nodes_and_discovery() {
    let (_db, api, mut fleet) = start().await;
    let op = create(&api, "cache", three_nodes()).await;
    let done = fleet.converge(&api, &op).await;
    let inst = &done["response"];
    assert_eq!(inst["state"], "READY", "{done}");
    assert_eq!(
        inst["@type"],
        "type.googleapis.com/google.cloud.memcache.v1.Instance"
    );
    assert_eq!(
        done["metadata"]["@type"],
        "type.googleapis.com/google.cloud.memcache.v1.OperationMetadata"
    );
    let nodes = array_field(inst, "memcacheNodes");
    let mut zones: Vec<&str> = nodes.iter().map(|n| str_field(n, "zone")).collect();
    zones.sort_unstable();
    assert_eq!(
        zones,
        ["local-a", "local-b", "local-c"],
        "spread over the zones: {inst}"
    );
    assert!(
        nodes
            .iter()
            .all(|n| n["state"] == "READY" && n["port"] == 11211),
        "{inst}"
    );
    let range: ipnet::Ipv4Net = str_field(inst, "reservedIpRange").parse().unwrap();
    let at = |o: u32| std::net::Ipv4Addr::from(u32::from(range.network()) + o).to_string();
    assert_eq!(
        inst["discoveryEndpoint"],
        format!("{}:11211", at(1)),
        "{inst}"
    );
    let mut hosts: Vec<String> = addresses(inst).into_values().collect();
    hosts.sort();
    assert_eq!(
        hosts,
        [at(2), at(3), at(4)],
        "offsets 2.. are the nodes: {inst}"
    );
    assert_eq!(inst["memcacheFullVersion"], "memcached-1.6.18", "{inst}");

    let (specs, endpoints) = configs(&mut fleet).await;
    assert_eq!(specs.len(), 3, "{specs:?}");
    assert!(specs
        .iter()
        .all(|s| s.memory_mb == 1024 && s.threads == 1 && s.port == 11211));
    assert_eq!(
        endpoints.len(),
        1,
        "one host serves the endpoint: {endpoints:?}"
    );
    let v1 = endpoints[0].config_version;
    assert_eq!(endpoints[0].address, at(1));
    assert_eq!(endpoints[0].nodes.len(), 3);

    // Scale up: the three nodes stay where they are; two more, spread.
    let before = addresses(inst);
    let path = format!("{MEMCACHE}/cache");
    let got = api
        .patch(
            &format!("{path}?updateMask=nodeCount"),
            json!({"nodeCount": 5}),
        )
        .await;
    let done = fleet.converge(&api, &expect_ok("scale up", &got)).await;
    let inst = &done["response"];
    assert_eq!(inst["state"], "READY", "{done}");
    assert_eq!(inst["nodeCount"], 5);
    let after = addresses(inst);
    assert_eq!(after.len(), 5, "{inst}");
    for (id, addr) in &before {
        assert_eq!(after.get(id), Some(addr), "{id} kept its address");
    }
    let (_, endpoints) = configs(&mut fleet).await;
    assert_eq!(endpoints[0].nodes.len(), 5);
    let v2 = endpoints[0].config_version;
    assert!(v2 > v1, "the config version grows: {v1} -> {v2}");

    // Scale down to 2: the nodes that stay keep their addresses.
    let got = api
        .patch(
            &format!("{path}?updateMask=nodeCount"),
            json!({"nodeCount": 2}),
        )
        .await;
    let done = fleet.converge(&api, &expect_ok("scale down", &got)).await;
    let inst = &done["response"];
    assert_eq!(inst["state"], "READY", "{done}");
    let down = addresses(inst);
    assert_eq!(down.len(), 2, "{inst}");
    for (id, addr) in &down {
        assert_eq!(after.get(id), Some(addr), "{id} kept its address");
    }
    let (specs, endpoints) = configs(&mut fleet).await;
    assert_eq!(specs.len(), 2, "{specs:?}");
    assert!(endpoints[0].config_version > v2);
    assert_eq!(endpoints[0].nodes.len(), 2);

    // Fields set at create only, and masks that name nothing updatable, are refused.
    for (mask, field) in [
        ("zones", "zones"),
        ("node_config", "nodeConfig"),
        ("state", "updateMask"),
        ("", "updateMask"),
    ] {
        let got = api
            .patch(&format!("{path}?updateMask={mask}"), json!({}))
            .await;
        expect_invalid(&format!("updateMask={mask}"), &got, field);
    }
    let both = api
        .post(
            &format!("{path}:applyParameters"),
            json!({"nodeIds": ["node-1"], "applyAll": true}),
        )
        .await;
    expect_invalid("nodeIds and applyAll", &both, "nodeIds");
    let mask = api
        .post(
            &format!("{path}:updateParameters"),
            json!({"updateMask": "labels", "parameters": {"params": {}}}),
        )
        .await;
    expect_invalid("updateParameters mask", &mask, "updateMask");

    // A stale etag is refused.
    let got = api
        .patch(
            &format!("{path}?updateMask=displayName"),
            json!({"displayName": "x", "etag": "v1"}),
        )
        .await;
    expect_error("stale etag", &got, 409, "ABORTED", None);

    // Parameters: staged, then applied to one node only.
    let bad = api
        .post(
            &format!("{path}:updateParameters"),
            json!({"updateMask": "params", "parameters": {"params": {"idle-timeout": "-1"}}}),
        )
        .await;
    expect_invalid("bad value", &bad, "parameters.params.idle-timeout");
    let staged = api
        .post(
            &format!("{path}:updateParameters"),
            json!({"updateMask": "params", "parameters": {"params": {"idle-timeout": "30"}}}),
        )
        .await;
    let staged = expect_ok("updateParameters", &staged);
    assert_eq!(staged["done"], true, "staging is done at once: {staged}");
    assert_eq!(
        staged["response"]["parameters"]["params"]["idle-timeout"],
        "30"
    );
    let first = down.keys().next().unwrap().clone();
    let bad = api
        .post(
            &format!("{path}:applyParameters"),
            json!({"nodeIds": ["node-99"]}),
        )
        .await;
    expect_invalid("unknown node", &bad, "nodeIds");
    let got = api
        .post(
            &format!("{path}:applyParameters"),
            json!({"nodeIds": [first]}),
        )
        .await;
    let done = fleet
        .converge(&api, &expect_ok("applyParameters", &got))
        .await;
    let inst = &done["response"];
    assert_eq!(inst["state"], "READY", "{done}");
    for n in array_field(inst, "memcacheNodes") {
        let want = if n["nodeId"] == first.as_str() {
            json!({"idle-timeout": "30"})
        } else {
            json!({})
        };
        assert_eq!(n["parameters"]["params"], want, "{n}");
    }

    // Delete: nothing left in any host's config, the range free for the next instance.
    let (status, op) = api.delete(&path).await;
    assert_eq!(status, 200, "{op}");
    let done = fleet.converge(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    let (specs, endpoints) = configs(&mut fleet).await;
    assert!(
        specs.is_empty() && endpoints.is_empty(),
        "{specs:?} {endpoints:?}"
    );
    expect_error("gone", &api.get(&path).await, 404, "NOT_FOUND", None);
    let op = create(
        &api,
        "again",
        json!({"nodeCount": 1, "nodeConfig": {"cpuCount": 2, "memorySizeMb": 2048}}),
    )
    .await;
    let done = fleet.converge(&api, &op).await;
    assert_eq!(
        done["response"]["reservedIpRange"],
        range.to_string(),
        "the range was freed: {done}"
    );
}

#[tokio::test]
async fn a_node_that_cannot_start_fails_the_create_and_nothing_stays() {
    let (_db, api, mut fleet) = start().await;
    let op = create(
        &api,
        "doomed",
        json!({"nodeCount": 1, "nodeConfig": {"cpuCount": 1, "memorySizeMb": 1024}}),
    )
    .await;
    // The agents fetch their configs but report nothing yet.
    let (specs, _) = configs(&mut fleet).await;
    let node = specs[0].node_id.to_string();
    let holder = fleet
        .agents
        .iter()
        .position(|a| {
            a.config
                .memcache_nodes
                .iter()
                .any(|n| n.node_id == specs[0].node_id)
        })
        .expect("a host runs the node");
    let reason = "failed to listen on TCP port 11211: Address already in use";
    fleet.agents[holder].fail_node(&node, reason);
    let done = fleet.converge(&api, &op).await;
    assert_eq!(done["error"]["status"], "UNAVAILABLE", "{done}");
    assert!(
        str_field(&done, "error.message").contains("Address already in use"),
        "{done}"
    );
    fleet.agents[holder].recover_node(&node);
    fleet
        .sync_until("the failed create is cleaned up", || async {
            api.get(&format!("{MEMCACHE}/doomed")).await.0 == 404
        })
        .await;
}

#[tokio::test]
async fn the_discovery_endpoint_moves_off_a_silent_host() {
    let db = TestDb::new().await;
    let api = Api::in_process_with_args(&db, &["--host-timeout", "2s"]).await;
    let mut fleet = Fleet::three_zones(&api, 64 * GIB).await;
    let op = create(&api, "moving", three_nodes()).await;
    fleet.converge(&api, &op).await;
    let serving = |fleet: &Fleet| {
        fleet
            .agents
            .iter()
            .position(|a| !a.config.discovery_endpoints.is_empty())
    };
    configs(&mut fleet).await;
    let lost = serving(&fleet).expect("a host serves the endpoint");
    let before = fleet.agents[lost].config.discovery_endpoints[0].clone();
    // The serving host goes silent; the others keep heartbeating until one serves it.
    let what = "another host serves the discovery endpoint";
    let moved = cacheplane_testkit::wait_until(
        what,
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(200),
        || {
            let agents: Vec<_> = fleet
                .agents
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != lost)
                .map(|(_, a)| a.clone())
                .collect();
            async move {
                let mut agents = agents;
                for a in &mut agents {
                    a.sync().await;
                }
                match agents
                    .iter()
                    .find(|a| !a.config.discovery_endpoints.is_empty())
                {
                    Some(a) => Ok(a.config.discovery_endpoints[0].clone()),
                    None => {
                        cacheplane_testkit::wait::not_yet::<_, String>("still on the silent host")
                    }
                }
            }
        },
    )
    .await;
    assert_eq!(
        moved.address, before.address,
        "the endpoint keeps its address"
    );
    assert_eq!(moved.nodes, before.nodes, "and its node list");
    let lost_host = fleet.agents[lost].fetch_config().await;
    assert!(
        lost_host.discovery_endpoints.is_empty(),
        "the silent host's config drops it"
    );
}

#[tokio::test]
async fn memcached_memory_counts_against_the_project_quota() {
    let db = TestDb::new().await;
    let api = Api::in_process_with_args(&db, &["--quota-memory-gb", "4"]).await;
    let mut fleet = Fleet::three_zones(&api, 64 * GIB).await;
    let op = create(&api, "quota", three_nodes()).await;
    fleet.converge(&api, &op).await;
    // 3 nodes of 1 GB are 3 GB: 2 more nodes would be 5 GB, over the 4 GB quota.
    let got = api
        .patch(
            &format!("{MEMCACHE}/quota?updateMask=nodeCount"),
            json!({"nodeCount": 5}),
        )
        .await;
    expect_error(
        "scale over the quota",
        &got,
        429,
        "RESOURCE_EXHAUSTED",
        None,
    );
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("--quota-memory-gb"),
        "{}",
        got.1
    );
    let got = api
        .post(
            &format!("{MEMCACHE}?instanceId=second"),
            merge(three_nodes(), json!({"nodeCount": 2})),
        )
        .await;
    expect_error(
        "a second instance over the quota",
        &got,
        429,
        "RESOURCE_EXHAUSTED",
        None,
    );
    // A Redis instance counts against the same quota: 1 GB fits, 2 do not.
    let redis = "/v1/projects/proj-m/locations/local/instances";
    let got = api
        .post(
            &format!("{redis}?instanceId=r2"),
            json!({"tier": "BASIC", "memorySizeGb": 2}),
        )
        .await;
    expect_error(
        "a Redis instance over the quota",
        &got,
        429,
        "RESOURCE_EXHAUSTED",
        None,
    );
    let got = api
        .patch(
            &format!("{MEMCACHE}/quota?updateMask=nodeCount"),
            json!({"nodeCount": 4}),
        )
        .await;
    let done = fleet
        .converge(&api, &expect_ok("scale to the quota", &got))
        .await;
    assert_eq!(done["response"]["nodeCount"], 4, "{done}");
}

#[tokio::test]
async fn a_node_on_a_silent_host_is_placed_again_past_the_deadline() {
    let db = TestDb::new().await;
    let args = ["--host-timeout", "1s", "--operation-deadline", "2s"];
    let api = Api::in_process_with_args(&db, &args).await;
    let mut fleet = Fleet::three_zones(&api, 64 * GIB).await;
    let op = create(&api, "resilient", three_nodes()).await;
    // host-c never applies its config: its node is placed again elsewhere.
    let name = cacheplane_testkit::api::op_name(&op);
    let caller = api.caller();
    let live: Vec<_> = fleet.agents[..2].to_vec();
    let done = cacheplane_testkit::wait_until(
        "the create is done without host-c",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(200),
        || {
            let mut agents = live.clone();
            let caller = caller.clone();
            let name = name.clone();
            async move {
                for a in &mut agents {
                    a.sync().await;
                }
                let op = caller.wait_op(&name, "0s").await;
                if op["done"] == true {
                    Ok(op)
                } else {
                    cacheplane_testkit::wait::not_yet::<_, String>(op)
                }
            }
        },
    )
    .await;
    let inst = &done["response"];
    assert_eq!(inst["state"], "READY", "{done}");
    // The node left on host-c is listed DELETING (holding its address) until host-c
    // returns and stops it; three others serve.
    let nodes = array_field(inst, "memcacheNodes");
    let serving: Vec<&Value> = nodes.iter().filter(|n| n["state"] == "READY").collect();
    assert_eq!(serving.len(), 3, "{inst}");
    assert!(serving.iter().all(|n| n["zone"] != "local-c"), "{inst}");
    assert!(
        serving.iter().any(|n| n["nodeId"] == "node-4"),
        "the new node: {inst}"
    );
    let left = nodes
        .iter()
        .find(|n| n["zone"] == "local-c")
        .expect("the old node");
    assert_eq!(left["state"], "DELETING", "{inst}");
    let silent = fleet.agents[2].fetch_config().await;
    assert!(
        silent.memcache_nodes.is_empty(),
        "host-c's config lost the node: {silent:?}"
    );
    // host-c returns and applies that config: the old node is forgotten.
    fleet
        .sync_until(
            "the old node is gone once host-c applied its removal",
            || async {
                let inst = api.get(&format!("{MEMCACHE}/resilient")).await.1;
                array_field(&inst, "memcacheNodes").len() == 3
            },
        )
        .await;
}

#[tokio::test]
async fn a_network_with_a_memcached_instance_cannot_be_deleted() {
    let (_db, api, mut fleet) = start().await;
    let (status, net) = api
        .post(
            "/v1/projects/proj-m/networks?networkId=backend",
            json!({"ipRange": "10.31.0.0/16"}),
        )
        .await;
    assert_eq!(status, 200, "{net}");
    let body = merge(
        three_nodes(),
        json!({"nodeCount": 1, "authorizedNetwork": "backend"}),
    );
    let op = create(&api, "on-backend", body).await;
    let done = fleet.converge(&api, &op).await;
    let inst = &done["response"];
    assert_eq!(
        inst["authorizedNetwork"], "projects/proj-m/networks/backend",
        "{inst}"
    );
    assert!(
        str_field(inst, "reservedIpRange").starts_with("10.31."),
        "{inst}"
    );
    let got = api.delete("/v1/projects/proj-m/networks/backend").await;
    expect_error("network in use", &got, 409, "FAILED_PRECONDITION", None);
    let message = got.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("memcacheInstances/on-backend"),
        "{message}"
    );
}

#[tokio::test]
async fn list_filters_pages_and_request_ids_replay() {
    let (_db, api, mut fleet) = start().await;
    let one = |env: &str| {
        merge(
            three_nodes(),
            json!({"nodeCount": 1, "labels": {"env": env}}),
        )
    };
    let rid = "7d3f8a52-2c1b-4a57-9a86-0b8f5f2f5a11";
    let path = format!("{MEMCACHE}?instanceId=alpha&requestId={rid}");
    let first = expect_ok("create alpha", &api.post(&path, one("prod")).await);
    let again = expect_ok("the same create again", &api.post(&path, one("prod")).await);
    assert_eq!(
        first["name"], again["name"],
        "one operation for one requestId"
    );
    let other = api.post(&path, one("dev")).await;
    expect_error(
        "another request, same requestId",
        &other,
        409,
        "ALREADY_EXISTS",
        None,
    );
    fleet.converge(&api, &first).await;
    create(&api, "beta", one("dev")).await;

    let ids = |list: &Value| -> Vec<String> {
        array_field(list, "instances")
            .iter()
            .map(|i| cacheplane_testkit::json::name_id(i, "name"))
            .collect()
    };
    let cases: [(&str, &[&str]); 4] = [
        ("state%3DREADY", &["alpha"]),
        ("state%3DCREATING", &["beta"]),
        ("labels.env%3Ddev", &["beta"]),
        ("labels.env%3A%2A", &["alpha", "beta"]),
    ];
    for (filter, want) in cases {
        let list = expect_ok(
            filter,
            &api.get(&format!("{MEMCACHE}?filter={filter}")).await,
        );
        assert_eq!(ids(&list), want, "{filter}: {list}");
    }
    let bad = api.get(&format!("{MEMCACHE}?filter=tier%3DBASIC")).await;
    expect_invalid("tier is for Redis instances", &bad, "filter");
    let page = expect_ok("page 1", &api.get(&format!("{MEMCACHE}?pageSize=1")).await);
    assert_eq!(ids(&page), ["alpha"], "{page}");
    let token = str_field(&page, "nextPageToken");
    let page = expect_ok(
        "page 2",
        &api.get(&format!("{MEMCACHE}?pageSize=1&pageToken={token}"))
            .await,
    );
    assert_eq!(ids(&page), ["beta"], "{page}");
    assert!(page["nextPageToken"].is_null(), "{page}");
    let all_regions = expect_ok(
        "locations/-",
        &api.get("/v1/projects/proj-m/locations/-/memcacheInstances")
            .await,
    );
    assert_eq!(ids(&all_regions), ["alpha", "beta"]);
}
