//! The old primary's side of a coordinated switchover, over real `redis-server`s: the
//! agent has the primary hand over to its replica (`FAILOVER TO`), gives up the primary
//! endpoint and the write fence once the engine is a replica, reports DONE, and leaves
//! both new roles alone while the specs still say the old ones; a handover the engine
//! refuses is reported ABORTED with the reason and the primary keeps taking writes.
//! Fails when `redis-server` is not installed.

mod common;

use std::time::Duration;

use cacheplane_node_agent::supervisor::{Pass, Supervisor};
use cacheplane_types::{
    NodeRole, NodeSpec, SwitchoverReport, SwitchoverSpec, SwitchoverState, WriteFence,
};
use common::{config_get, connect, info, linked, spec, try_write, wait_until, DataDir};
use tokio::time::Instant;
use uuid::Uuid;

/// A fenced primary at `address(n)` binding the endpoint `address(n + 2)`, and its
/// replica at `address(n + 1)`, both running and linked.
async fn pair(sup: &mut Supervisor, n: u8) -> (NodeSpec, NodeSpec) {
    let primary = NodeSpec {
        endpoint_address: Some(common::address(n + 2)),
        write_fence: Some(WriteFence {
            min_replicas: 1,
            max_lag_seconds: 3,
        }),
        ..spec(n, NodeRole::Primary, None)
    };
    let replica = spec(n + 1, NodeRole::Replica, Some(&primary));
    sup.reconcile(&[primary.clone(), replica.clone()]).await;
    let addr = replica.address.clone();
    wait_until(10, "the replica links", || linked(&addr)).await;
    // The fence counts a replica once the engine's cron has seen it acknowledge.
    let endpoint = primary.endpoint_address.clone().unwrap_or_default();
    wait_until(5, "the fenced primary takes writes", || async {
        try_write(&endpoint).await.is_ok()
    })
    .await;
    (primary, replica)
}

fn switching(s: &NodeSpec, id: Uuid, target: &NodeSpec) -> NodeSpec {
    NodeSpec {
        switchover: Some(SwitchoverSpec {
            id,
            target_address: target.address.clone(),
            timeout_ms: 5000,
        }),
        ..s.clone()
    }
}

/// Reconciles `desired` until the report of `node` carries a finished switchover.
async fn outcome(sup: &mut Supervisor, desired: &[NodeSpec], node: Uuid) -> SwitchoverReport {
    let started = Instant::now();
    loop {
        let pass: Pass = sup.reconcile(desired).await;
        let report = pass.reports.iter().find(|r| r.node_id == node);
        if let Some(s) = report.and_then(|r| r.switchover.clone()) {
            if s.state != SwitchoverState::HandingOver {
                return s;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no outcome: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_primary_hands_over_without_losing_a_write_and_gives_up_the_endpoint() {
    let bin = require_redis!();
    let data = DataDir::new("switchover");
    let mut sup = Supervisor::new(data.path().to_path_buf(), bin.clone()).await;
    let (primary, replica) = pair(&mut sup, 90).await;
    let endpoint = primary.endpoint_address.clone().unwrap();
    let mut c = connect(&endpoint).await;
    for i in 0..500 {
        c.call(&["SET", &format!("k{i}"), &i.to_string()])
            .await
            .expect("the primary takes writes");
    }

    let id = Uuid::new_v4();
    let desired = [
        switching(&primary, id, &replica),
        switching(&replica, id, &replica),
    ];
    let done = outcome(&mut sup, &desired, primary.node_id).await;
    assert_eq!(done.state, SwitchoverState::Done, "{done:?}");
    assert_eq!(done.id, id);

    let mut new = connect(&replica.address).await;
    let r = info(&mut new, "replication").await.expect("INFO");
    assert_eq!(r.role(), Some(NodeRole::Primary), "the target is primary");
    for i in [0, 250, 499] {
        let got = new.call(&["GET", &format!("k{i}")]).await.expect("GET");
        assert_eq!(
            got,
            cacheplane_node_agent::redis::client::Reply::Bulk(Some(i.to_string().into_bytes()))
        );
    }
    let mut old = connect(&primary.address).await;
    let o = info(&mut old, "replication").await.expect("INFO");
    assert_eq!(
        o.master(),
        Some((replica.address.clone(), 6379)),
        "the old primary follows it"
    );
    assert_eq!(config_get(&mut old, "min-replicas-to-write").await, "0");
    assert!(
        cacheplane_node_agent::redis::client::Client::connect(&endpoint, 6379, None)
            .await
            .is_err(),
        "the endpoint address is free for the new primary"
    );
    assert!(
        try_write(&replica.address).await.is_ok(),
        "the new primary takes writes"
    );

    // Until the API records the new roles, passes leave both engines as they are.
    sup.reconcile(&desired).await;
    let r = info(&mut new, "replication").await.expect("INFO");
    assert_eq!(r.role(), Some(NodeRole::Primary));
    let o = info(&mut old, "replication").await.expect("INFO");
    assert_eq!(o.role(), Some(NodeRole::Replica));
}

#[tokio::test]
async fn a_refused_handover_is_reported_aborted_and_the_primary_keeps_writing() {
    let bin = require_redis!();
    let data = DataDir::new("switchover-refused");
    let mut sup = Supervisor::new(data.path().to_path_buf(), bin.clone()).await;
    let (primary, replica) = pair(&mut sup, 94).await;
    // A target that is no replica of this primary: the engine refuses FAILOVER TO.
    let stranger = spec(99, NodeRole::Replica, None);
    let id = Uuid::new_v4();
    let desired = [switching(&primary, id, &stranger), replica.clone()];
    let aborted = outcome(&mut sup, &desired, primary.node_id).await;
    assert_eq!(aborted.state, SwitchoverState::Aborted, "{aborted:?}");
    let why = aborted.message.unwrap_or_default();
    assert!(why.contains("not a replica"), "{why}");
    let endpoint = primary.endpoint_address.clone().unwrap();
    let wrote = try_write(&endpoint).await;
    assert!(wrote.is_ok(), "the primary still takes writes: {wrote:?}");
}
