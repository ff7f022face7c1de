//! A replica that starts before its primary listens links as soon as the primary does,
//! not on Redis's next once-a-second replication cron. Over real `redis-server`s; fails
//! when `redis-server` is not installed.

mod common;

use std::time::Duration;

use cacheplane_node_agent::redis::acl;
use cacheplane_node_agent::supervisor::Supervisor;
use cacheplane_types::NodeRole;
use common::{linked, spec, start, DataDir};
use tokio::time::Instant;

#[tokio::test]
async fn a_replica_started_first_links_once_its_primary_listens() {
    let bin = require_redis!();
    let data = DataDir::new("relink");
    let mut figures = Vec::new();
    for round in 0..3u8 {
        let primary = spec(60 + 2 * round, NodeRole::Primary, None);
        let replica = spec(61 + 2 * round, NodeRole::Replica, Some(&primary));
        // The agent starts the replica; its primary (another host's) is not up yet.
        let mut sup = Supervisor::new(data.path().to_path_buf(), bin.clone()).await;
        let pass = sup.reconcile(std::slice::from_ref(&replica)).await;
        assert!(pass.acted && pass.applied);
        assert!(!linked(&replica.address).await);
        // Let the replica's first attempts fail, at some phase of its cron.
        tokio::time::sleep(Duration::from_millis(700 + 150 * u64::from(round))).await;
        start(&bin, &data, &primary).await;
        let listening = Instant::now();
        let mut took = None;
        while listening.elapsed() < Duration::from_secs(10) {
            if linked(&replica.address).await {
                took = Some(listening.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = took.expect("the replica links up");
        figures.push(took);
        drop(sup);
    }
    // The link is the behaviour asserted; the figures are for the benchmark notes.
    tracing::info!(?figures, "primary listening → replica linked");
}

#[tokio::test]
async fn a_linked_replica_takes_a_getack_and_the_connection_stays_usable() {
    let bin = require_redis!();
    let data = DataDir::new("getack");
    let primary = spec(80, NodeRole::Primary, None);
    let replica = spec(81, NodeRole::Replica, Some(&primary));
    start(&bin, &data, &primary).await;
    start(&bin, &data, &replica).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !linked(&replica.address).await {
        assert!(Instant::now() < deadline, "the replica links up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Redis answers REPLCONF GETACK with nothing: the client must not wait for a reply.
    let mut c = acl::connect(&replica.address, replica.port, &acl::logins(&[&replica]))
        .await
        .expect("connects to the replica");
    c.replconf_getack().await.expect("GETACK is taken");
    c.ping().await.expect("the connection is still in step");
}
