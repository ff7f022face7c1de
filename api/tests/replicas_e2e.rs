//! Two API replicas on one database, on the real stack (two `cacheplane-api` processes,
//! three agents given both addresses, real `redis-server`s): what one replica starts the
//! other sees and finishes, and a lost primary is failed over once, not once per replica.
//! See "Several API replicas" in docs/architecture.md.

use std::time::Duration;

use cacheplane_testkit::api::{op_name, wait_op};
use cacheplane_testkit::chaos::{create_ha, failover_ops, instance, primary_node, PARENT};
use cacheplane_testkit::json::string_field;
use cacheplane_testkit::process::is_redis;
use cacheplane_testkit::stack::{
    eventually, redis_cli, start_api_replicas, three_agents_on_replicas,
};
use cacheplane_testkit::{TestDb, GIB};

#[tokio::test]
async fn an_instance_created_through_one_replica_serves_and_is_deleted_through_the_other() {
    let db = TestDb::new().await;
    let (apis, _net) = start_api_replicas(&db, 2, &[]).await;
    let agents = three_agents_on_replicas(&apis, 8 * GIB).await;

    let ha = create_ha(&apis[0], "both").await;
    let seen = instance(&apis[1], "both").await;
    assert_eq!(seen["state"], "READY", "the other replica sees it: {seen}");
    let (host, port, auth) = (&ha.host, ha.port, Some(ha.auth.as_str()));
    assert_eq!(redis_cli(host, port, auth, &["SET", "k", "v"]), "OK");
    assert_eq!(redis_cli(host, port, auth, &["GET", "k"]), "v");
    assert_eq!(
        redis_cli(host, port, auth, &["WAIT", "2", "5000"]),
        "2",
        "both replicas acknowledge the write"
    );

    let (status, op) = apis[1].delete(&format!("{PARENT}/instances/both")).await;
    assert_eq!(status, 200, "delete through replica 2: {op}");
    // Waited for through the first replica: the wake-up crosses replicas (NOTIFY).
    let done = wait_op(&apis[0], &op_name(&op), "60s").await;
    assert!(
        done["done"] == true && done["error"].is_null(),
        "the delete succeeds: {done}"
    );
    for api in &apis {
        let (status, body) = api.get(&format!("{PARENT}/instances/both")).await;
        assert_eq!(status, 404, "gone on {}: {body}", api.base);
    }
    eventually(
        "every engine of the instance stopped",
        Duration::from_secs(30),
        || {
            agents
                .iter()
                .flat_map(|a| a.engine_pids())
                .all(|(_, pid)| !is_redis(pid))
        },
    )
    .await;
}

#[tokio::test]
async fn losing_the_primarys_host_fails_over_exactly_once_with_two_replicas() {
    let db = TestDb::new().await;
    let fast = ["--host-timeout", "2s", "--worker-interval", "250ms"];
    let (apis, _net) = start_api_replicas(&db, 2, &fast).await;
    let mut agents = three_agents_on_replicas(&apis, 8 * GIB).await;
    let ha = create_ha(&apis[0], "zonal").await;
    assert_eq!(ha.primary_zone, "local-a");
    let (host, port, auth) = (ha.host.clone(), ha.port, ha.auth.clone());
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["SET", "k", "v"]),
        "OK"
    );
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["WAIT", "2", "5000"]),
        "2"
    );

    // local-a's only host goes away, agent and engines; both replicas' health monitors
    // (and the heartbeats of the other hosts) see the primary lost.
    agents[0].kill_host();
    eventually(
        "writes work again at the same endpoint",
        Duration::from_secs(30),
        || redis_cli(&host, port, Some(&auth), &["SET", "after", "1"]) == "OK",
    )
    .await;
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["GET", "k"]),
        "v",
        "no data lost"
    );
    // Long enough for a second failover to show, were one started.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ops = failover_ops(&apis[1]).await;
    assert_eq!(ops.len(), 1, "exactly one failover: {ops:#?}");
    assert_eq!(
        failover_ops(&apis[0]).await.len(),
        1,
        "both replicas list the same one"
    );
    let done = wait_op(&apis[0], &op_name(&ops[0]), "60s").await;
    assert!(
        done["done"] == true && done["error"].is_null(),
        "the failover succeeds: {done}"
    );
    let now = instance(&apis[1], "zonal").await;
    let primary = primary_node(&now);
    assert_ne!(string_field(&primary, "zone"), "local-a", "{now}");
}
