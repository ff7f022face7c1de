//! A frozen agent on the real stack (tracker issue 10): the primary's agent is
//! SIGSTOPped for several host timeouts while its engine keeps serving its replicas. The
//! control plane sees the host silent but the replicas still linked, so it must not fail
//! over: the primary keeps its role and keeps taking writes, and once the agent thaws the
//! instance is READY again with the same primary.

mod common;

use std::process::Command;
use std::time::Duration;

use cacheplane_testkit::json::{port_field, string_field};
use cacheplane_testkit::stack::{redis_cli, start_api, three_agents};
use cacheplane_testkit::wait::ready_if;
use cacheplane_testkit::GIB;
use cacheplane_testkit::{wait_until, Api, TestDb};
use common::client::{instance, PARENT};
use common::stack::create_ready;
use serde_json::{json, Value};

fn primary_id(inst: &Value) -> String {
    inst["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["role"] == "PRIMARY"))
        .map(|n| string_field(n, "id"))
        .unwrap_or_else(|| panic!("no primary in {inst}"))
}

async fn failovers(api: &Api) -> usize {
    let (_, ops) = api.get(&format!("{PARENT}/operations")).await;
    ops["operations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["metadata"]["verb"] == "failover")
        .count()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test]
async fn a_frozen_agent_whose_engine_keeps_serving_is_not_failed_over() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &["--host-timeout", "2s", "--worker-interval", "250ms"]).await;
    let mut agents = three_agents(&api, 8 * GIB).await;
    let body = json!({"tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 1,
                      "locationId": "local-a", "alternativeLocationId": "local-b"});
    let (inst, auth) = create_ready(&api, "frozen", body).await;
    let host = string_field(&inst, "host");
    let port = port_field(&inst, "port");
    let old = primary_id(&inst);
    let pid = agents[0].pid().expect("host-a's agent runs");

    signal(pid, "-STOP");
    // Several host timeouts with the agent frozen: writes keep going to the same primary.
    for i in 0..8 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let key = format!("k{i}");
        assert_eq!(
            redis_cli(&host, port, Some(&auth), &["SET", &key, "v"]),
            "OK",
            "write {i} while the agent is frozen"
        );
    }
    let during = instance(&api, "frozen").await;
    signal(pid, "-CONT");
    assert_eq!(primary_id(&during), old, "{during}");
    assert_eq!(failovers(&api).await, 0, "no failover for a silent agent");

    let back = wait_until(
        "READY again once the agent thaws",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            let i = instance(&api, "frozen").await;
            ready_if::<String, _>(i["state"] == "READY", || format!("{i}")).map(|()| i)
        },
    )
    .await;
    assert_eq!(primary_id(&back), old, "{back}");
    assert_eq!(redis_cli(&host, port, Some(&auth), &["GET", "k7"]), "v");
    let _ = &mut agents;
}
