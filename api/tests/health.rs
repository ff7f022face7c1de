//! Instance health between operations: a READY instance whose node goes down, or whose
//! host goes silent, turns REPAIRING with a message naming the node, and READY again
//! once the node is back. Also: a redisVersion that no host runs is refused.

mod common;

use std::time::Duration;

use cacheplane_testkit::json::{str_field, string_field};
use cacheplane_testkit::wait::ready_if;
use cacheplane_testkit::{wait_until, Fleet, GIB};
use cacheplane_testkit::{Api, TestDb};
use common::client::{create, instance, node_id, ready_ha, standard_ha, PARENT};

#[tokio::test]
async fn a_replica_that_goes_down_makes_the_instance_repairing_until_it_is_back() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 16 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "sick", 2).await;
    let replica = node_id(&inst, "REPLICA");

    fleet.fail_node(&replica, "the process exited").await;
    fleet
        .sync_until("instance REPAIRING", || async {
            instance(&api, "sick").await["state"] == "REPAIRING"
        })
        .await;
    let seen = instance(&api, "sick").await;
    let message = str_field(&seen, "statusMessage");
    assert!(message.contains(&replica), "status names the node: {seen}");

    fleet.recover_node(&replica);
    fleet
        .sync_until("instance READY again", || async {
            let i = instance(&api, "sick").await;
            i["state"] == "READY" && i["statusMessage"] == ""
        })
        .await;
}

#[tokio::test]
async fn a_primary_that_goes_down_is_replaced_by_the_replica_with_the_most_data() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 16 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "lost", 2).await;
    let primary = node_id(&inst, "PRIMARY");
    // Two replicas: the one in local-c is further behind (lower offset).
    let behind = inst["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["zone"] == "local-c"))
        .map(|n| string_field(n, "id"))
        .unwrap_or_else(|| panic!("no node in local-c: {inst}"));
    fleet.set_lag(&behind, 5_000).await;
    fleet.fail_node(&primary, "the process exited").await;
    fleet
        .sync_until("a failover completed", || async {
            let (_, ops) = api.get(&format!("{PARENT}/operations")).await;
            ops["operations"].as_array().is_some_and(|o| {
                o.iter()
                    .any(|o| o["metadata"]["verb"] == "failover" && o["done"] == true)
            })
        })
        .await;
    let after = instance(&api, "lost").await;
    let new_primary = node_id(&after, "PRIMARY");
    assert_ne!(new_primary, primary, "{after}");
    assert_ne!(
        new_primary, behind,
        "the lagging replica was promoted: {after}"
    );
    assert_eq!(after["host"], inst["host"], "the endpoint stays");
    assert!(
        str_field(&after, "statusMessage").contains("automatic failover")
            || after["state"] == "READY",
        "{after}"
    );
}

#[tokio::test]
async fn a_silent_host_makes_its_instances_repairing() {
    let db = TestDb::new().await;
    let api =
        Api::in_process_with_args(&db, &["--host-timeout", "1s", "--worker-interval", "200ms"])
            .await;
    let mut fleet = Fleet::three_zones(&api, 16 * GIB).await;
    ready_ha(&api, &mut fleet, "quiet", 2).await;

    // host-a (the primary's) stops heartbeating; the others go on.
    let shared = tokio::sync::Mutex::new(&mut fleet);
    let repairing = || async {
        for a in shared
            .lock()
            .await
            .agents
            .iter_mut()
            .filter(|a| a.host != "host-a")
        {
            a.sync().await;
        }
        let i = instance(&api, "quiet").await;
        ready_if::<String, _>(i["state"] == "REPAIRING", || format!("still {i}")).map(|()| i)
    };
    let i = wait_until(
        "quiet is REPAIRING",
        Duration::from_secs(30),
        Duration::from_millis(200),
        repairing,
    )
    .await;
    assert!(str_field(&i, "statusMessage").contains("local-a"), "{i}");
    fleet
        .sync_until("instance READY once host-a is back", || async {
            instance(&api, "quiet").await["state"] == "READY"
        })
        .await;
}

#[tokio::test]
async fn a_redis_version_no_host_runs_is_refused() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let _fleet = Fleet::three_zones(&api, 16 * GIB).await;
    let mut body = standard_ha(1, 2);
    body["redisVersion"] = "REDIS_7_2".into();
    let (status, err) = create(&api, "newer", body).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["details"][0]["field"], "redisVersion", "{err}");
    assert!(
        str_field(&err, "error.message").contains("REDIS_7_0"),
        "{err}"
    );
}
