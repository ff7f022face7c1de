//! The primary lease over real `redis-server`s: an agent that cannot reach the API
//! demotes its STANDARD_HA primary (writes answer READONLY, reads and data stay) and
//! does not undo it; once the lease holds again the reconcile restores what the API
//! wants, a primary again or a replica of a primary promoted meanwhile. Skipped only
//! when `redis-server` is not installed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cacheplane_node_agent::agent;
use cacheplane_node_agent::config::Config;
use cacheplane_node_agent::lease::{self, Lease};
use cacheplane_node_agent::redis::client::{Client, ClientError, Reply};
use cacheplane_node_agent::store::ConfigStore;
use cacheplane_node_agent::supervisor::Supervisor;
use cacheplane_types::{HostConfig, NodeRole, NodeSpec};
use clap::Parser;
use common::{connect, info, linked, spec, start, wait_until, DataDir};
use tokio_util::sync::CancellationToken;

/// Whether a write on `host` is refused with READONLY.
async fn read_only(host: &str) -> bool {
    let mut c = connect(host).await;
    matches!(c.call(&["SET", "probe", "1"]).await, Err(ClientError::Server(m)) if m.starts_with("READONLY"))
}

async fn get(c: &mut Client, key: &str) -> Option<Vec<u8>> {
    match c.call(&["GET", key]).await.expect("GET") {
        Reply::Bulk(v) => v,
        other => panic!("GET answered {other:?}"),
    }
}

#[tokio::test]
async fn a_primary_cut_off_from_the_api_stops_taking_writes_until_the_lease_holds() {
    let bin = require_redis!();
    let data = DataDir::new("lease");
    let primary = spec(20, NodeRole::Primary, None);
    let replica = spec(21, NodeRole::Replica, Some(&primary));
    let desired = vec![primary.clone(), replica.clone()];
    for s in &desired {
        start(&bin, &data, s).await;
    }
    wait_until(10, "the replica links up", || linked(&replica.address)).await;
    let mut c = connect(&primary.address).await;
    c.call(&["SET", "k", "before"])
        .await
        .expect("the primary takes writes");

    // An agent whose API refuses connections: it adopts the engines, never heartbeats.
    ConfigStore::new(data.path())
        .save(&HostConfig {
            host: "hosts/lease-it".into(),
            generation: 1,
            nodes: desired.clone(),
        })
        .expect("saves the config");
    let data_dir = data.path().to_string_lossy().into_owned();
    let bin_path = bin.to_string_lossy().into_owned();
    let cfg = Config::try_parse_from([
        "agent",
        "--api-url",
        "http://127.0.0.1:1",
        "--token",
        "t",
        "--zone",
        "z",
        "--host-id",
        "lease-it",
        "--data-dir",
        &data_dir,
        "--redis-server",
        &bin_path,
        "--memory-bytes",
        "1073741824",
        "--heartbeat-interval",
        "200ms",
        "--primary-lease",
        "1s",
    ])
    .expect("flags parse");
    let cancel = CancellationToken::new();
    let agent = tokio::spawn(agent::run(cfg, cancel.clone()));

    wait_until(5, "the primary is demoted", || read_only(&primary.address)).await;
    let mut c = connect(&primary.address).await;
    assert_eq!(
        get(&mut c, "k").await.as_deref(),
        Some(&b"before"[..]),
        "reads and data stay"
    );
    let i = info(&mut c, "replication").await.expect("INFO");
    assert_eq!(i.get("master_host"), Some(lease::DEMOTE_TO.0));
    assert_eq!(i.get("master_port"), Some("1"));
    // Several passes later the reconcile has not undone it; the replica is untouched.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        read_only(&primary.address).await,
        "the reconcile undid the demotion"
    );
    let mut r = connect(&replica.address).await;
    let ri = info(&mut r, "replication").await.expect("INFO");
    assert_eq!(ri.get("master_host"), Some(primary.address.as_str()));
    cancel.cancel();
    agent
        .await
        .expect("joins")
        .expect("the agent stops cleanly");

    // Heartbeats succeed again and the API still wants it primary: writes come back.
    let mut sup = Supervisor::new(data.path().to_path_buf(), bin.clone()).await;
    sup.set_lease(Arc::new(Lease::new(Duration::from_secs(30))));
    let pass = sup.reconcile(&desired).await;
    assert!(pass.acted && pass.applied);
    let mut c = connect(&primary.address).await;
    c.call(&["SET", "k2", "after"]).await.expect("writes again");
    assert_eq!(
        get(&mut c, "k").await.as_deref(),
        Some(&b"before"[..]),
        "data intact"
    );

    // A failover happened meanwhile: the API now wants the old primary to follow the
    // promoted replica, whose data replaces its own.
    lease::demote(&primary).await.expect("demoted again");
    let promoted = NodeSpec {
        role: NodeRole::Primary,
        primary_address: None,
        ..replica.clone()
    };
    let follower = NodeSpec {
        role: NodeRole::Replica,
        primary_address: Some(replica.address.clone()),
        ..primary.clone()
    };
    let after = vec![follower.clone(), promoted.clone()];
    sup.reconcile(&after).await;
    let mut p = connect(&promoted.address).await;
    p.call(&["SET", "k3", "new-primary"])
        .await
        .expect("the new primary takes writes");
    wait_until(10, "the old primary follows the new one", || {
        linked(&follower.address)
    })
    .await;
    let follower_at = follower.address.clone();
    wait_until(5, "the write arrives", || {
        let at = follower_at.clone();
        async move { get(&mut connect(&at).await, "k3").await.is_some() }
    })
    .await;
    let mut f = connect(&follower.address).await;
    assert!(read_only(&follower.address).await);
    assert_eq!(
        get(&mut f, "k3").await.as_deref(),
        Some(&b"new-primary"[..])
    );
    let fi = info(&mut f, "replication").await.expect("INFO");
    assert_eq!(fi.get("master_host"), Some(promoted.address.as_str()));
}
