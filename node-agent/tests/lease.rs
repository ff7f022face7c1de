//! No primary lease any more: an agent cut off from the API (or PostgreSQL) leaves its
//! STANDARD_HA primary taking writes, however long the outage; what stops a primary cut
//! off from the rest of the instance is its write fence, applied by the agent and held
//! by the engine itself: once no replica has acknowledged within `maxLagSeconds`, writes
//! answer NOREPLICAS, agent or no agent. Over real `redis-server`s; fails when
//! `redis-server` is not installed.

mod common;

use std::time::Duration;

use cacheplane_node_agent::agent;
use cacheplane_node_agent::redis::client::{ClientError, Reply};
use cacheplane_node_agent::store::ConfigStore;
use cacheplane_types::{HostConfig, NodeRole, NodeSpec, WriteFence};
use common::{
    agent_config, config_get, connect, linked, listed_online, spec, start, try_write, wait_until,
    DataDir,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const FENCE: WriteFence = WriteFence {
    min_replicas: 1,
    max_lag_seconds: 2,
};

fn pid_of(data: &DataDir, s: &NodeSpec) -> Pid {
    let dir = cacheplane_node_agent::redis::NodeDir::new(data.path(), s.node_id);
    let pid = cacheplane_node_agent::redis::process::read_pid(&dir).expect("a pid file");
    Pid::from_raw(i32::try_from(pid).expect("pid"))
}

#[tokio::test]
async fn an_agent_cut_off_from_the_api_keeps_its_primary_taking_writes() {
    let bin = require_redis!();
    let data = DataDir::new("no-lease");
    // The engines run without a fence; the config the agent holds asks for one.
    let primary = spec(20, NodeRole::Primary, None);
    let replica = spec(21, NodeRole::Replica, Some(&primary));
    for s in [&primary, &replica] {
        start(&bin, &data, s).await;
    }
    wait_until(10, "the replica links up", || linked(&replica.address)).await;
    wait_until(10, "the primary counts the replica", || {
        listed_online(&primary, &replica)
    })
    .await;
    let fenced = NodeSpec {
        write_fence: Some(FENCE),
        ..primary.clone()
    };
    ConfigStore::new(data.path())
        .save(&HostConfig {
            connectors: Vec::new(),
            host: "hosts/lease-it".into(),
            generation: 1,
            nodes: vec![fenced.clone(), replica.clone()],
            memcache_nodes: Vec::new(),
            discovery_endpoints: Vec::new(),
        })
        .expect("saves the config");

    // An agent whose API refuses connections: it adopts the engines, never heartbeats.
    let cfg = agent_config("http://127.0.0.1:1", "lease-it", &data, &bin, "200ms");
    let cancel = CancellationToken::new();
    let agent = tokio::spawn(agent::run(cfg, cancel.clone()));

    // The agent applies the fence online, from the saved config.
    let p = primary.address.clone();
    wait_until(10, "the fence is set on the engine", || {
        let p = p.clone();
        async move { config_get(&mut connect(&p).await, "min-replicas-to-write").await == "1" }
    })
    .await;
    assert_eq!(
        config_get(&mut connect(&primary.address).await, "min-replicas-max-lag").await,
        "2"
    );

    // Far longer than the old lease (and the API's host timeout's worth of passes):
    // every write is taken.
    let until = Instant::now() + Duration::from_secs(6);
    let mut writes = 0;
    while Instant::now() < until {
        let mut c = connect(&primary.address).await;
        match c.call(&["INCR", "n"]).await {
            Ok(_) => writes += 1,
            Err(e) => panic!("write {writes} refused with the API away: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = connect(&primary.address).await;
    let i = common::info(&mut c, "replication").await.expect("INFO");
    assert_eq!(i.get("role"), Some("master"), "still the primary");
    assert_eq!(
        c.call(&["GET", "n"]).await.expect("GET"),
        Reply::Bulk(Some(writes.to_string().into_bytes()))
    );

    cancel.cancel();
    agent
        .await
        .expect("joins")
        .expect("the agent stops cleanly");
}

#[tokio::test]
async fn a_fenced_primary_whose_replica_is_gone_refuses_writes_by_itself() {
    let bin = require_redis!();
    let data = DataDir::new("fence");
    let primary = NodeSpec {
        write_fence: Some(FENCE),
        ..spec(22, NodeRole::Primary, None)
    };
    let replica = spec(23, NodeRole::Replica, Some(&primary));
    for s in [&primary, &replica] {
        start(&bin, &data, s).await;
    }
    wait_until(10, "the replica links up", || linked(&replica.address)).await;
    wait_until(10, "the primary counts the replica", || {
        listed_online(&primary, &replica)
    })
    .await;
    // The fence is in the generated redis.conf: no agent runs in this test.
    let mut c = connect(&primary.address).await;
    assert_eq!(config_get(&mut c, "min-replicas-to-write").await, "1");
    // Linked is not yet online for the primary (it puts a replica online once it has
    // reaped the fork of the full sync): wait for that.
    let p = primary.address.clone();
    wait_until(10, "a primary with a live replica takes writes", || {
        let p = p.clone();
        async move { try_write(&p).await.is_ok() }
    })
    .await;

    // The replica freezes (its host is cut off, or hangs): within max lag, writes stop.
    let frozen = pid_of(&data, &replica);
    kill(frozen, Signal::SIGSTOP).expect("SIGSTOP");
    let stopped_at = Instant::now();
    wait_until(15, "writes answer NOREPLICAS", || {
        let p = p.clone();
        async move {
            try_write(&p)
                .await
                .is_err_and(|e| e.starts_with("NOREPLICAS"))
        }
    })
    .await;
    tracing::info!(after = ?stopped_at.elapsed(), bound = FENCE.max_lag_seconds, "the primary stopped taking writes");
    let mut c = connect(&primary.address).await;
    assert!(
        matches!(c.call(&["GET", "n"]).await, Ok(Reply::Bulk(_))),
        "reads keep working"
    );
    assert!(
        matches!(c.call(&["SET", "x", "1"]).await, Err(ClientError::Server(m)) if m.starts_with("NOREPLICAS"))
    );

    // It thaws: writes come back without anyone's help.
    kill(frozen, Signal::SIGCONT).expect("SIGCONT");
    wait_until(15, "writes are taken again", || {
        let p = p.clone();
        async move { try_write(&p).await.is_ok() }
    })
    .await;

    // It dies: the same.
    kill(pid_of(&data, &replica), Signal::SIGKILL).expect("SIGKILL");
    wait_until(
        15,
        "writes answer NOREPLICAS once the replica is gone",
        || {
            let p = p.clone();
            async move {
                try_write(&p)
                    .await
                    .is_err_and(|e| e.starts_with("NOREPLICAS"))
            }
        },
    )
    .await;
}
