//! Chaos on a control plane of two API replicas, on the real stack (two `cacheplane-api`
//! processes on one database, three agents given both addresses and talking to the
//! first, real `redis-server`s): with a manual failover, two creates and a delete in
//! flight, the replica that started them (and that every agent talks to) is killed with
//! SIGKILL. The survivor must finish every operation exactly once (each done, without
//! error, none listed twice, none stuck), start no second failover, lose no write
//! acknowledged through the instance failed over, and the agents' config long-polls
//! must move to it: an instance created after the kill on all three hosts gets READY.
//! See "Several API replicas" in docs/architecture.md.
//!
//! The test prints its figures (`CHAOS …` lines). Run with `--no-capture` (or nextest's
//! `--success-output final`) to see them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cacheplane_testkit::api::{create_ready, op_name, wait_op};
use cacheplane_testkit::chaos::{
    create_ha, failover_ops, operations, primary_node, until_all_ready, Frozen, PARENT,
};
use cacheplane_testkit::json::string_field;
use cacheplane_testkit::stack::{start_api_replicas, three_agents_on_replicas};
use cacheplane_testkit::wait::not_yet;
use cacheplane_testkit::writer::Writer;
use cacheplane_testkit::{wait_until, TestDb, GIB};
use serde_json::{json, Value};

/// Under `chaos` so that `cargo nextest run chaos` selects the suite.
mod chaos {
    use super::*;

    /// A STANDARD_HA instance on all three hosts.
    fn ha_body() -> Value {
        json!({"tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 2,
               "readReplicasMode": "READ_REPLICAS_ENABLED",
               "locationId": "local-a", "alternativeLocationId": "local-b"})
    }

    #[tokio::test]
    async fn killing_an_api_replica_mid_operations_finishes_each_exactly_once() {
        let db = TestDb::new().await;
        let (mut apis, _net) = start_api_replicas(&db, 2, &["--worker-interval", "250ms"]).await;
        let agents = three_agents_on_replicas(&apis, 8 * GIB).await;
        let survivor = &apis[1];
        let (victim, _doomed) =
            tokio::join!(create_ha(survivor, "victim"), create_ha(survivor, "doomed"));
        let writer = Writer::start(&victim.host, victim.port, &victim.auth, "w");
        writer.wait_acked(100, Duration::from_secs(10)).await;

        // host-c's agent stands still (its engines serve on) while replica 1 takes the
        // requests, so that none of them can finish before replica 1 is killed.
        let frozen = Frozen::agent(&agents[2]);
        let first = &apis[0];
        let failover = wait_until(
            "a LIMITED_DATA_LOSS failover is accepted by replica 1",
            Duration::from_secs(30),
            Duration::from_millis(200),
            || async {
                match first
                    .post(
                        &format!("{PARENT}/instances/victim/failover"),
                        json!({"dataProtectionMode": "LIMITED_DATA_LOSS"}),
                    )
                    .await
                {
                    (200, op) => Ok(op),
                    (status, body) => not_yet::<_, String>(format!("{status} {body}")),
                }
            },
        )
        .await;
        let (create1, create2, doomed) = (
            format!("{PARENT}/instances?instanceId=fresh-1"),
            format!("{PARENT}/instances?instanceId=fresh-2"),
            format!("{PARENT}/instances/doomed"),
        );
        let (fresh1, fresh2, delete) = tokio::join!(
            first.post(&create1, ha_body()),
            first.post(&create2, ha_body()),
            first.delete(&doomed),
        );
        let mut in_flight = vec![op_name(&failover)];
        for (what, (status, op)) in [
            ("create fresh-1", fresh1),
            ("create fresh-2", fresh2),
            ("delete doomed", delete),
        ] {
            assert_eq!(status, 200, "{what} through replica 1: {op}");
            in_flight.push(op_name(&op));
        }
        // Replica 1 works on them with the two other hosts for a moment, then dies.
        tokio::time::sleep(Duration::from_millis(500)).await;
        apis[0].kill();
        let killed_at = Instant::now();
        frozen.thaw();
        let survivor = &apis[1];

        let mut running_at_kill = 0;
        for name in &in_flight {
            let (status, op) = survivor.get(&format!("/v1/{name}")).await;
            assert_eq!(status, 200, "{name} on the survivor: {op}");
            running_at_kill += usize::from(op["done"] != true);
        }
        eprintln!(
            "CHAOS API replica killed: {running_at_kill} of {} operations were running",
            in_flight.len()
        );
        assert!(
            running_at_kill > 0,
            "the kill came too late to test anything: every operation was done"
        );

        for name in &in_flight {
            let done = wait_op(survivor, name, "90s").await;
            assert!(
                done["done"] == true && done["error"].is_null(),
                "{name} finishes on the survivor: {done}"
            );
        }
        eprintln!(
            "CHAOS API replica killed: every operation done {:?} after the kill",
            killed_at.elapsed()
        );

        // A config made after the kill reaches all three agents: their long-polls moved.
        let moved_at = Instant::now();
        create_ready(survivor, PARENT, "after-kill", ha_body()).await;
        eprintln!(
            "CHAOS API replica killed: an instance on all three hosts READY {:?} after its \
             create",
            moved_at.elapsed()
        );
        for agent in &agents {
            let log = std::fs::read_to_string(&agent.log_path).unwrap_or_default();
            assert!(
                log.contains("API replica unavailable; trying the next one"),
                "agent {} says it moved to the surviving replica",
                agent.host
            );
        }

        let after = until_all_ready(survivor, "victim", Duration::from_secs(60)).await;
        assert_ne!(
            string_field(&primary_node(&after), "id"),
            victim.primary,
            "the failover took place: {after}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let log = writer.stop();
        let lost = log
            .lost(&victim.host, victim.port, &victim.auth)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("CHAOS API replica killed: victim: {}", log.summary());
        eprintln!(
            "CHAOS API replica killed: victim: {} acknowledged writes lost",
            lost.len()
        );
        assert!(
            lost.is_empty(),
            "no acknowledged write is lost: {} lost, first {:?}",
            lost.len(),
            &lost[..lost.len().min(20)]
        );

        // Each operation once, each done without error; no failover started twice.
        let ops = operations(survivor).await;
        let mut by_what: BTreeMap<(String, String), usize> = BTreeMap::new();
        for op in &ops {
            assert!(
                op["done"] == true && op["error"].is_null(),
                "every operation done without error: {op}"
            );
            let verb = string_field(&op["metadata"], "verb");
            let target = string_field(&op["metadata"], "target");
            let id = target.rsplit('/').next().unwrap_or_default().to_string();
            *by_what.entry((verb, id)).or_default() += 1;
        }
        let names: std::collections::BTreeSet<String> = ops.iter().map(op_name).collect();
        assert_eq!(
            names.len(),
            ops.len(),
            "no operation listed twice: {ops:#?}"
        );
        let want: BTreeMap<(String, String), usize> = [
            ("create", "victim"),
            ("create", "doomed"),
            ("failover", "victim"),
            ("create", "fresh-1"),
            ("create", "fresh-2"),
            ("delete", "doomed"),
            ("create", "after-kill"),
        ]
        .into_iter()
        .map(|(v, i)| ((v.to_string(), i.to_string()), 1))
        .collect();
        assert_eq!(by_what, want, "each operation exactly once");
        assert_eq!(failover_ops(survivor).await.len(), 1, "one failover");
    }
}
