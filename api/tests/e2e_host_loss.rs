//! Losing a host (its agent and its engines) on the real stack. With one host per zone
//! this is also losing a whole zone: the instance recovers in the other zones, and when
//! the host comes back its old primary rejoins as a replica. Manual failover, both data
//! protection modes.

mod common;

use std::time::Duration;

use common::client::{instance, op_name, wait_op, PARENT};
use common::stack::{create_ready, eventually, redis_cli, start_api, three_agents, GIB};
use common::{Api, TestDb};
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
        let addr = n["address"].as_str().unwrap_or_default().to_string();
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
        .map(|n| n["role"].as_str().unwrap_or_default().to_string())
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
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let i = instance(api, name).await;
        if i["state"] == want {
            return i;
        }
        assert!(tokio::time::Instant::now() < deadline, "not {want}: {i}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn losing_the_primarys_host_and_zone_fails_over_and_the_host_rejoins() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &["--host-timeout", "2s", "--worker-interval", "250ms"]).await;
    let mut agents = three_agents(&api, 8 * GIB).await;
    let (inst, auth) = ha_ready(&api, "zonal").await;
    let host = inst["host"].as_str().unwrap_or_default().to_string();
    let port = inst["port"].as_u64().unwrap_or(0) as u16;
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["SET", "k", "v"]),
        "OK"
    );
    replicated(&inst, port, &auth, "k", "v").await;
    let old = primary(&inst);
    assert_eq!(old["zone"], "local-a");
    let old_id = old["id"].as_str().unwrap_or_default().to_string();

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
        repairing["statusMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("local-a"),
        "{repairing}"
    );

    // The host comes back: its old primary rejoins as a replica of the new one.
    agents[0].restart();
    let back = until_state(&api, "zonal", "READY", Duration::from_secs(60)).await;
    assert_eq!(role_of(&back, &old_id), "REPLICA", "{back}");
    let old_addr = old["address"].as_str().unwrap_or_default().to_string();
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
    let host = inst["host"].as_str().unwrap_or_default().to_string();
    let port = inst["port"].as_u64().unwrap_or(0) as u16;
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["SET", "k", "v"]),
        "OK"
    );
    replicated(&inst, port, &auth, "k", "v").await;

    let mut previous = primary(&inst)["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for mode in ["LIMITED_DATA_LOSS", "FORCE_DATA_LOSS"] {
        // Replicas report their link a moment after a previous failover.
        let op: Value;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = api
                .post(
                    &format!("{PARENT}/instances/manual/failover"),
                    json!({"dataProtectionMode": mode}),
                )
                .await;
            if status == 200 {
                op = body;
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{mode}: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let done = wait_op(&api, &op_name(&op), "60s").await;
        assert!(
            done["done"] == true && done["error"].is_null(),
            "{mode}: {done}"
        );
        let now = instance(&api, "manual").await;
        let current = primary(&now)["id"].as_str().unwrap_or_default().to_string();
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
