//! Automatic failover on the real stack: a client writes every 10 ms through the primary
//! endpoint while the primary's redis-server is SIGKILLed. The instance fails over to a
//! replica, writes succeed again at the same host:port (never READONLY once the
//! failover operation is done), and the old primary rejoins as a replica.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cacheplane_testkit::agent::Agent;
use cacheplane_testkit::json::{port_field, str_field, string_field};
use cacheplane_testkit::process::alive;
use cacheplane_testkit::resp::{self, call_text, Client};
use cacheplane_testkit::stack::{eventually, redis_cli, start_api, three_agents};
use cacheplane_testkit::GIB;
use cacheplane_testkit::{wait_until, Api, Poll, TestDb};
use common::client::{instance, op_name, wait_op, PARENT};
use common::stack::until_instance;
use serde_json::{json, Value};

fn node_by<'a>(inst: &'a Value, key: &str, value: &str) -> &'a Value {
    inst["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n[key] == value))
        .unwrap_or_else(|| panic!("no node with {key}={value} in {inst}"))
}

fn info_field(info: &str, key: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
}

/// What the writer saw, with times relative to its start.
#[derive(Default)]
struct Writes {
    ok: Vec<Instant>,
    errors: Vec<(Instant, String)>,
}

/// Writes `SET w:N N` every 10 ms through host:port until `stop`, reconnecting after
/// any failure.
fn writer(
    host: String,
    port: u16,
    auth: String,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Writes>>, tokio::task::JoinHandle<()>) {
    let log = Arc::new(Mutex::new(Writes::default()));
    let out = log.clone();
    let handle = tokio::spawn(async move {
        let mut conn: Option<Client> = None;
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            if conn.is_none() {
                conn = resp::connect(&host, port, Some(&auth)).await.ok();
            }
            let result = match conn.as_mut() {
                Some(c) => call_text(c, &["SET", &format!("w:{i}"), &i.to_string()])
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("cannot connect".into()),
            };
            let now = Instant::now();
            match result {
                Ok(_) => log.lock().unwrap_or_else(|e| e.into_inner()).ok.push(now),
                Err(e) => {
                    log.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .errors
                        .push((now, e));
                    conn = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    (out, handle)
}

async fn engine_pid(agents: &[Agent], node: &str) -> u32 {
    agents
        .iter()
        .flat_map(|a| a.engine_pids())
        .find(|(id, _)| id == node)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no engine for node {node}"))
}

async fn failover_op(api: &Api) -> Option<Value> {
    let (_, ops) = api.get(&format!("{PARENT}/operations")).await;
    ops["operations"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["metadata"]["verb"] == "failover"))
        .cloned()
}

#[tokio::test]
async fn a_killed_primary_fails_over_and_writes_resume_at_the_same_endpoint() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let agents = three_agents(&api, 8 * GIB).await;
    let (status, op) = api
        .post(
            &format!("{PARENT}/instances?instanceId=ha"),
            json!({"tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 2,
                   "readReplicasMode": "READ_REPLICAS_ENABLED",
                   "locationId": "local-a", "alternativeLocationId": "local-b"}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    let done = wait_op(&api, &op_name(&op), "60s").await;
    assert!(done["done"] == true && done["error"].is_null(), "{done}");
    let inst = instance(&api, "ha").await;
    let host = string_field(&inst, "host");
    let port = port_field(&inst, "port");
    let (_, auth) = api.get(&format!("{PARENT}/instances/ha/authString")).await;
    let auth = string_field(&auth, "authString");
    let old_primary = string_field(node_by(&inst, "role", "PRIMARY"), "id");

    let stop = Arc::new(AtomicBool::new(false));
    let (writes, handle) = writer(host.clone(), port, auth.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The replicas' offsets just before the kill: the new primary must hold the most.
    let offsets: Vec<(String, i64)> = inst["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["role"] == "REPLICA")
        .map(|n| {
            let addr = str_field(n, "address");
            let info = redis_cli(addr, port, Some(&auth), &["INFO", "replication"]);
            let off = info_field(&info, "slave_repl_offset")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            (string_field(n, "id"), off)
        })
        .collect();

    let pid = engine_pid(&agents, &old_primary).await;
    let killed_at = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false));

    // The failover operation appears and completes.
    let op = wait_until(
        "a failover operation appears",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            failover_op(&api)
                .await
                .ok_or_else(|| Poll::<String>::NotYet("none".into()))
        },
    )
    .await;
    let done = wait_op(&api, &op_name(&op), "60s").await;
    assert!(done["done"] == true && done["error"].is_null(), "{done}");
    let completed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = handle.await;

    let after = instance(&api, "ha").await;
    assert_eq!(after["host"], inst["host"], "the endpoint address stays");
    let new_primary = string_field(node_by(&after, "role", "PRIMARY"), "id");
    assert_ne!(new_primary, old_primary);
    let best = offsets.iter().map(|(_, o)| *o).max().unwrap_or(0);
    let chosen = offsets
        .iter()
        .find(|(id, _)| *id == new_primary)
        .map(|(_, o)| *o);
    assert_eq!(
        chosen,
        Some(best),
        "the least-lagged replica was promoted: {offsets:?}"
    );

    let (first_ok_after, readonly_after) = {
        let w = writes.lock().unwrap_or_else(|e| e.into_inner());
        let first = w.ok.iter().find(|t| **t > killed_at).copied();
        let readonly: Vec<(Instant, String)> = w
            .errors
            .iter()
            .filter(|(t, e)| *t > completed_at && e.contains("READONLY"))
            .cloned()
            .collect();
        (first, readonly)
    };
    assert!(first_ok_after.is_some(), "writes resumed at {host}:{port}");
    assert!(
        readonly_after.is_empty(),
        "READONLY after the failover completed: {readonly_after:?}"
    );
    eprintln!(
        "failover window (kill → first write ok): {:?}; operation done after {:?}",
        first_ok_after.map(|t| t.duration_since(killed_at)),
        completed_at.duration_since(killed_at)
    );

    // The old primary rejoins as a replica of the new one, with the data.
    let old_addr = string_field(node_by(&after, "id", &old_primary), "address");
    let (a, p) = (old_addr.clone(), auth.clone());
    eventually(
        "the old primary runs as a replica",
        Duration::from_secs(30),
        || {
            let info = redis_cli(&a, port, Some(&p), &["INFO", "replication"]);
            info_field(&info, "role").as_deref() == Some("slave")
                && info_field(&info, "master_link_status").as_deref() == Some("up")
        },
    )
    .await;
    assert!(alive(engine_pid(&agents, &old_primary).await));
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["SET", "after", "1"]),
        "OK"
    );
    until_instance(&api, "ha", "READY with every node", |i| {
        let all_ready = i["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().all(|n| n["state"] == "READY"));
        i["state"] == "READY" && all_ready
    })
    .await;
}
