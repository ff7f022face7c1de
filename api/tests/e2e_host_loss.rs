//! Losing a host (its agent and its engines) on the real stack. With one host per zone
//! this is also losing a whole zone: the instance recovers in the other zones, and when
//! the host comes back its old primary rejoins as a replica. Manual failover, both data
//! protection modes.

mod common;

use std::time::Duration;

use cacheplane_testkit::json::{port_field, str_field, string_field};
use cacheplane_testkit::stack::{eventually, redis_cli, start_api, three_agents};
use cacheplane_testkit::wait::not_yet;
use cacheplane_testkit::GIB;
use cacheplane_testkit::{wait_until, Api, TestDb};
use common::client::{instance, op_name, wait_op, PARENT};
use common::stack::create_ready;
use serde_json::{json, Value};

async fn ha_ready(api: &Api, name: &str) -> (Value, String) {
    let body = json!({"tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 2,
                      "readReplicasMode": "READ_REPLICAS_ENABLED",
                      "locationId": "local-a", "alternativeLocationId": "local-b"});
    create_ready(api, name, body).await
}

/// Replication is asynchronous: waits until every node has `key` = `value`, so a
/// failover right after cannot lose it.
async fn replicated(inst: &Value, port: u16, auth: &str, key: &str, value: &str) {
    for n in inst["nodes"].as_array().into_iter().flatten() {
        let addr = string_field(n, "address");
        let a = auth.to_string();
        eventually(
            &format!("{addr} has {key}"),
            Duration::from_secs(10),
            || redis_cli(&addr, port, Some(&a), &["GET", key]) == value,
        )
        .await;
    }
}

fn role_of(inst: &Value, id: &str) -> String {
    inst["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == id))
        .map(|n| string_field(n, "role"))
        .unwrap_or_default()
}

fn primary(inst: &Value) -> Value {
    inst["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["role"] == "PRIMARY"))
        .cloned()
        .unwrap_or_else(|| panic!("no primary in {inst}"))
}

async fn until_state(api: &Api, name: &str, want: &str, limit: Duration) -> Value {
    let what = format!("{name} is {want}");
    wait_until(&what, limit, Duration::from_millis(100), || async {
        let i = instance(api, name).await;
        if i["state"] == want {
            Ok(i)
        } else {
            not_yet::<_, String>(format!("not {want}: {i}"))
        }
    })
    .await
}

#[tokio::test]
async fn losing_the_primarys_host_and_zone_fails_over_and_the_host_rejoins() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &["--host-timeout", "2s", "--worker-interval", "250ms"]).await;
    let mut agents = three_agents(&api, 8 * GIB).await;
    let (inst, auth) = ha_ready(&api, "zonal").await;
    let host = string_field(&inst, "host");
    let port = port_field(&inst, "port");
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["SET", "k", "v"]),
        "OK"
    );
    replicated(&inst, port, &auth, "k", "v").await;
    let old = primary(&inst);
    assert_eq!(old["zone"], "local-a");
    let old_id = string_field(&old, "id");

    // local-a's only host goes away: agent and engines.
    agents[0].kill_host();
    let (h, a) = (host.clone(), auth.clone());
    eventually(
        "writes work again at the same endpoint",
        Duration::from_secs(30),
        || redis_cli(&h, port, Some(&a), &["SET", "after", "1"]) == "OK",
    )
    .await;
    let now = instance(&api, "zonal").await;
    let new = primary(&now);
    assert_ne!(new["zone"], "local-a", "{now}");
    assert_eq!(now["host"], inst["host"]);
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["GET", "k"]),
        "v",
        "no data lost"
    );
    // With a node on a lost host the instance is REPAIRING, not READY.
    let repairing = until_state(&api, "zonal", "REPAIRING", Duration::from_secs(30)).await;
    assert!(
        str_field(&repairing, "statusMessage").contains("local-a"),
        "{repairing}"
    );

    // The host comes back: its old primary rejoins as a replica of the new one.
    agents[0].restart();
    let back = until_state(&api, "zonal", "READY", Duration::from_secs(60)).await;
    assert_eq!(role_of(&back, &old_id), "REPLICA", "{back}");
    let old_addr = string_field(&old, "address");
    let a = auth.clone();
    eventually(
        "the old primary has the new writes",
        Duration::from_secs(30),
        || redis_cli(&old_addr, port, Some(&a), &["GET", "after"]) == "1",
    )
    .await;
    let role = redis_cli(&old_addr, port, Some(&auth), &["ROLE"]);
    assert!(role.starts_with("slave"), "{role}");
}

#[tokio::test]
async fn manual_failover_in_both_modes_keeps_the_endpoint() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let _agents = three_agents(&api, 8 * GIB).await;
    let (inst, auth) = ha_ready(&api, "manual").await;
    let host = string_field(&inst, "host");
    let port = port_field(&inst, "port");
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["SET", "k", "v"]),
        "OK"
    );
    replicated(&inst, port, &auth, "k", "v").await;

    let mut previous = string_field(&primary(&inst), "id");
    for mode in ["LIMITED_DATA_LOSS", "FORCE_DATA_LOSS"] {
        // Replicas report their link a moment after a previous failover.
        let what = format!("a {mode} failover is accepted");
        let op = wait_until(
            &what,
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                let body = json!({"dataProtectionMode": mode});
                let api = &api;
                async move {
                    match api
                        .post(&format!("{PARENT}/instances/manual/failover"), body)
                        .await
                    {
                        (200, op) => Ok(op),
                        (status, body) => not_yet::<_, String>(format!("{mode}: {status} {body}")),
                    }
                }
            },
        )
        .await;
        let done = wait_op(&api, &op_name(&op), "60s").await;
        assert!(
            done["done"] == true && done["error"].is_null(),
            "{mode}: {done}"
        );
        let now = instance(&api, "manual").await;
        let current = string_field(&primary(&now), "id");
        assert_ne!(current, previous, "{mode}: the primary changed");
        assert_eq!(now["host"], inst["host"]);
        let key = format!("after-{mode}");
        let (h, a) = (host.clone(), auth.clone());
        eventually("writes at the endpoint", Duration::from_secs(10), || {
            redis_cli(&h, port, Some(&a), &["SET", &key, "1"]) == "OK"
        })
        .await;
        assert_eq!(redis_cli(&host, port, Some(&auth), &["GET", "k"]), "v");
        previous = current;
    }
}
