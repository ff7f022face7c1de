//! Drives a real `redis-server` through the agent's process, client and supervisor
//! modules on 127.77.x.y addresses. Fails when `redis-server` is not installed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use cacheplane_node_agent::plan::Change;
use cacheplane_node_agent::redis::client::{Client, Reply};
use cacheplane_node_agent::redis::{acl, local, process, reconfigure, NodeDir};
use cacheplane_node_agent::supervisor::Supervisor;
use cacheplane_node_agent::{adopt, redis::version};
use cacheplane_types::{NodeRole, NodeSpec};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

mod common;

use common::DataDir;

/// An address in 127.77.0.0/16 that concurrent test runs are unlikely to share.
fn address(n: u8) -> String {
    format!("127.77.{}.{n}", std::process::id() % 250 + 1)
}

/// A node at `address(n)` (this file's own range), otherwise as `common::spec`.
fn spec(n: u8, role: NodeRole, restart_in_place: bool) -> NodeSpec {
    NodeSpec {
        address: address(n),
        restart_in_place,
        ..common::spec(n, role, None)
    }
}

async fn config_get(c: &mut Client, key: &str) -> String {
    match c.call(&["CONFIG", "GET", key]).await.expect("CONFIG GET") {
        Reply::Array(Some(items)) => match items.get(1) {
            Some(Reply::Bulk(Some(v))) => String::from_utf8_lossy(v).into_owned(),
            other => panic!("unexpected CONFIG GET item {other:?}"),
        },
        other => panic!("unexpected CONFIG GET reply {other:?}"),
    }
}

#[tokio::test]
async fn the_agent_reaches_its_engine_over_the_socket_from_a_deep_data_dir() {
    let bin = require_redis!();
    let data = DataDir::new("socket");
    // Deeper than a Unix socket path may be (108 bytes).
    let deep = data.path().join("d".repeat(60)).join("e".repeat(60));
    let s = spec(9, NodeRole::Primary, true);
    let dir = NodeDir::new(&deep, s.node_id);
    assert!(dir.socket().as_os_str().len() > 108);

    process::start(&bin, &s, &dir).await.expect("starts");
    // A wrong TCP port: only the socket can answer.
    let elsewhere = NodeSpec {
        port: 1,
        ..s.clone()
    };
    let mut c = local::connect(&dir, &elsewhere, &acl::logins(&[&s]))
        .await
        .expect("connects over the socket");
    c.ping().await.expect("PONG over the socket");
    process::stop(&dir, Some(&s)).await.expect("stops");
}

#[tokio::test]
async fn start_resize_online_and_stop() {
    let bin = require_redis!();
    let data = DataDir::new("engine");
    let s = spec(1, NodeRole::Primary, true);
    let dir = NodeDir::new(data.path(), s.node_id);

    let pid = process::start(&bin, &s, &dir).await.expect("starts");
    assert!(process::is_engine_of(pid, &s.address, s.port));
    let conf_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.conf())
            .expect("conf exists")
            .permissions(),
    );
    assert_eq!(conf_mode & 0o777, 0o600, "redis.conf holds the password");
    // The agent's own way in: the engine's Unix socket, for the agent's user only.
    let sock_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.socket())
            .expect("the engine listens on its Unix socket")
            .permissions(),
    );
    assert_eq!(
        sock_mode & 0o777,
        0o700,
        "only the agent's user opens the socket"
    );
    Client::connect_unix(&dir.socket(), acl::logins(&[&s]).first())
        .await
        .expect("connects over the socket")
        .ping()
        .await
        .expect("PONG over the socket");

    // AUTH is required.
    assert!(Client::connect(&s.address, s.port, None)
        .await
        .expect("connects")
        .ping()
        .await
        .is_err());
    let mut c = Client::connect(&s.address, s.port, Some(&common::admin_login()))
        .await
        .expect("connects with AUTH");
    c.call(&["SET", "k", "v"]).await.expect("SET");
    assert_eq!(
        config_get(&mut c, "maxmemory").await,
        (64u64 << 20).to_string()
    );
    assert_eq!(config_get(&mut c, "maxmemory-policy").await, "allkeys-lru");

    // Resize online: same process, data kept.
    let bigger = NodeSpec {
        maxmemory_bytes: 128 << 20,
        ..s.clone()
    };
    reconfigure::apply(
        &mut c,
        &bigger,
        Some(&s),
        &BTreeSet::from([Change::Maxmemory]),
    )
    .await
    .expect("CONFIG SET maxmemory");
    assert_eq!(
        config_get(&mut c, "maxmemory").await,
        (128u64 << 20).to_string()
    );
    assert_eq!(process::read_pid(&dir), Some(pid), "no restart");
    assert_eq!(
        c.call(&["GET", "k"]).await.expect("GET"),
        Reply::Bulk(Some(b"v".to_vec()))
    );

    // The agent's version check agrees with the engine.
    let engine = version::engine_of(&bin).await.expect("version");
    assert!(engine.starts_with("REDIS_"), "{engine}");

    process::stop(&dir, Some(&bigger)).await.expect("stops");
    assert!(!process::is_running(pid));
    assert!(!dir.dir.exists(), "node dir removed");
}

#[tokio::test]
async fn a_start_that_fails_reports_the_engines_reason() {
    let bin = require_redis!();
    let data = DataDir::new("clash");
    let first = spec(2, NodeRole::Primary, true);
    let second = spec(2, NodeRole::Primary, true);
    let d1 = NodeDir::new(data.path(), first.node_id);
    let d2 = NodeDir::new(data.path(), second.node_id);
    process::start(&bin, &first, &d1)
        .await
        .expect("first starts");
    let reason = process::start(&bin, &second, &d2)
        .await
        .expect_err("the address is taken");
    assert!(
        reason.contains("Could not create server TCP listening socket"),
        "{reason}"
    );
    assert!(!reason.contains("it-secret-pw"));

    // A setting the engine refuses (an address this host does not have): its reason,
    // from its own log.
    let mut bad = spec(3, NodeRole::Primary, true);
    bad.address = "198.51.100.7".into();
    let reason = process::start(&bin, &bad, &NodeDir::new(data.path(), bad.node_id))
        .await
        .expect_err("bad config");
    assert!(reason.contains("198.51.100.7"), "{reason}");
    process::stop(&d1, Some(&first)).await.expect("stops");
}

#[tokio::test]
async fn supervisor_starts_adopts_restarts_and_stops() {
    let _bin = require_redis!();
    let data = DataDir::new("supervisor");
    let basic = spec(4, NodeRole::Primary, true);
    let ha_primary = spec(5, NodeRole::Primary, false);
    let mut replica = spec(6, NodeRole::Replica, false);
    replica.primary_address = Some(ha_primary.address.clone());
    let desired = vec![basic.clone(), ha_primary.clone(), replica.clone()];

    let mut sup = Supervisor::new(data.path().to_path_buf(), PathBuf::from("redis-server")).await;
    let pass = sup.reconcile(&desired).await;
    assert!(pass.applied && pass.acted);
    assert_eq!(pass.reports.len(), 3);
    assert!(pass
        .reports
        .iter()
        .all(|r| r.process_up && r.error.is_none()));

    // The replica links up; its report says so.
    let mut linked = false;
    for _ in 0..100 {
        let pass = sup.reconcile(&desired).await;
        let r = pass
            .reports
            .iter()
            .find(|r| r.node_id == replica.node_id)
            .expect("replica reported");
        if r.master_link_up == Some(true) {
            assert_eq!(r.role, Some(NodeRole::Replica));
            assert_eq!(r.lag_bytes.map(|l| l >= 0), Some(true));
            linked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(linked, "replica never linked");

    // A new agent over the same data dir adopts every engine without restarting it.
    let pids: Vec<Option<u32>> = desired
        .iter()
        .map(|s| process::read_pid(&NodeDir::new(data.path(), s.node_id)))
        .collect();
    drop(sup);
    let found = adopt::scan(data.path()).await;
    assert_eq!(found.len(), 3);
    assert!(found
        .iter()
        .all(|f| matches!(f.verdict, adopt::Verdict::Adopted { .. })));
    let mut sup = Supervisor::new(data.path().to_path_buf(), PathBuf::from("redis-server")).await;
    let pass = sup.reconcile(&desired).await;
    assert!(!pass.acted, "adopted engines need no work");
    let after: Vec<Option<u32>> = desired
        .iter()
        .map(|s| process::read_pid(&NodeDir::new(data.path(), s.node_id)))
        .collect();
    assert_eq!(pids, after);

    // Crashes: the BASIC node comes back (after its backoff); the HA primary does not.
    for s in [&basic, &ha_primary] {
        let pid = process::read_pid(&NodeDir::new(data.path(), s.node_id)).expect("pid");
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut basic_back = false;
    for _ in 0..40 {
        let pass = sup.reconcile(&desired).await;
        let by_id = |id| {
            pass.reports
                .iter()
                .find(|r| r.node_id == id)
                .expect("reported")
        };
        assert!(
            !by_id(ha_primary.node_id).process_up,
            "HA primary restarted in place"
        );
        // A primary left down for failover is never restarted, so never counted.
        assert_eq!(by_id(ha_primary.node_id).restarts, Some(0));
        if by_id(basic.node_id).process_up {
            assert_eq!(
                by_id(basic.node_id).restarts,
                Some(1),
                "the restart is counted"
            );
            basic_back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(basic_back, "BASIC node not restarted");

    // Nodes no longer desired are stopped and no longer reported.
    let pass = sup.reconcile(&[]).await;
    assert!(pass.applied);
    assert!(pass.reports.is_empty());
    assert!(sup.node_ids().is_empty());
}
