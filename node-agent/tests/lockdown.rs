//! The locked-down engine, on real `redis-server`s driven by the agent's supervisor on
//! 127.79.x.y addresses: the tenant's AUTH string runs data commands and nothing that
//! controls the engine, while the agent still reconfigures it and replicas still
//! replicate; an engine started before the lockdown is adopted and locked down online.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cacheplane_node_agent::redis::client::{Client, ClientError, Reply};
use cacheplane_node_agent::redis::observe::Info;
use cacheplane_node_agent::redis::{process, NodeDir};
use cacheplane_node_agent::supervisor::Supervisor;
use cacheplane_types::{NodeRole, NodeSpec};

mod common;

use common::{admin_login, tenant_login, wait_until, DataDir};

/// An address in 127.79.0.0/16 that concurrent test runs are unlikely to share.
fn address(n: u8) -> String {
    format!("127.79.{}.{n}", std::process::id() % 250 + 1)
}

/// A primary at `address(n)` and its replica at `address(n + 1)`, locked down.
fn pair(n: u8) -> (NodeSpec, NodeSpec) {
    let primary = NodeSpec {
        address: address(n),
        ..common::spec(n, NodeRole::Primary, None)
    };
    let replica = NodeSpec {
        address: address(n + 1),
        primary_address: Some(primary.address.clone()),
        ..common::spec(n + 1, NodeRole::Replica, None)
    };
    (primary, replica)
}

async fn tenant(host: &str) -> Client {
    Client::connect(host, 6379, Some(&tenant_login()))
        .await
        .unwrap_or_else(|e| panic!("the tenant connects to {host}: {e}"))
}

async fn info(c: &mut Client) -> Info {
    match c.call(&["INFO"]).await.expect("INFO") {
        Reply::Bulk(Some(b)) => Info::parse(&String::from_utf8_lossy(&b)),
        other => panic!("INFO answered {other:?}"),
    }
}

fn text(r: &Reply) -> String {
    match r {
        Reply::Simple(s) => s.clone(),
        Reply::Int(i) => i.to_string(),
        Reply::Bulk(b) => String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into(),
        Reply::Array(a) => a.iter().flatten().map(text).collect::<Vec<_>>().join(","),
    }
}

/// Runs passes until the replica of `primary` reports its link up.
async fn until_linked(sup: &mut Supervisor, desired: &[NodeSpec], replica: &NodeSpec) {
    for _ in 0..100 {
        let pass = sup.reconcile(desired).await;
        if pass
            .reports
            .iter()
            .any(|r| r.node_id == replica.node_id && r.master_link_up == Some(true))
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the replica {} never linked", replica.address);
}

/// Commands the tenant must never run: each would reconfigure, stop, move, persist,
/// replicate or unlock the engine.
const REFUSED: &[&[&str]] = &[
    &["CONFIG", "SET", "maxmemory", "0"],
    &["CONFIG", "SET", "port", "6390"],
    &["CONFIG", "SET", "save", "1 1"],
    &["CONFIG", "GET", "masterauth"],
    &["CONFIG", "REWRITE"],
    &["SHUTDOWN", "NOSAVE"],
    &["DEBUG", "SLEEP", "0"],
    &["REPLICAOF", "NO", "ONE"],
    &["SLAVEOF", "NO", "ONE"],
    &["CLIENT", "PAUSE", "1000"],
    &["CLIENT", "KILL", "TYPE", "replica"],
    &["CLIENT", "NO-EVICT", "on"],
    &["ACL", "SETUSER", "default", "+@all"],
    &["ACL", "LIST"],
    &["SAVE"],
    &["BGSAVE"],
    &["BGREWRITEAOF"],
    &["MODULE", "LIST"],
    &["FAILOVER"],
    &["SYNC"],
    &["PSYNC", "?", "-1"],
    &["REPLCONF", "ACK", "1"],
    &["MIGRATE", "127.0.0.1", "1", "k", "0", "1000"],
    &["MONITOR"],
];

#[tokio::test]
async fn the_tenant_runs_data_commands_but_cannot_control_the_engine() {
    let _bin = require_redis!();
    let data = DataDir::new("lockdown");
    let (primary, replica) = pair(1);
    let desired = vec![primary.clone(), replica.clone()];
    let mut sup = Supervisor::new(data.path().to_path_buf(), PathBuf::from("redis-server")).await;
    until_linked(&mut sup, &desired, &replica).await;
    let pid = process::read_pid(&NodeDir::new(data.path(), primary.node_id)).expect("pid");

    let mut c = tenant(&primary.address).await;
    for args in [
        &["SET", "k", "v"][..],
        &["GET", "k"],
        &["INFO"],
        &["KEYS", "*"],
        &["SORT", "nothing"],
        &["CLIENT", "SETNAME", "redis-server-imposter"],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "ID"],
        &["CLIENT", "INFO"],
        &["CLIENT", "LIST"],
        &["ACL", "WHOAMI"],
        &["SLOWLOG", "GET"],
        &["DBSIZE"],
        &["FLUSHDB"],
        &["FLUSHALL"],
        &["SET", "after-flush", "1"],
    ] {
        c.call(args)
            .await
            .unwrap_or_else(|e| panic!("the tenant may run {args:?}: {e}"));
    }
    for args in REFUSED {
        match c.call(args).await {
            Err(ClientError::Server(m)) if m.starts_with("NOPERM") => {}
            // Redis 7 refuses DEBUG and MODULE before it looks at ACLs unless
            // `enable-debug-command`/`enable-module-command` allow them (they never do).
            Err(ClientError::Server(m))
                if ["DEBUG", "MODULE"].contains(&args[0])
                    && m.starts_with(&format!("ERR {} command not allowed", args[0])) => {}
            other => panic!("{args:?} must be refused with NOPERM, got {other:?}"),
        }
    }

    // The engine is as the agent set it: same process, same limit, replica linked, and
    // the tenant's writes replicate.
    assert_eq!(info(&mut c).await.get("maxmemory"), Some("67108864"));
    let pass = sup.reconcile(&desired).await;
    assert!(!pass.acted, "nothing to repair: {:?}", pass.reports);
    assert!(pass.reports.iter().all(|r| r.process_up));
    assert_eq!(
        process::engine_pid(&NodeDir::new(data.path(), primary.node_id), None),
        Some(pid),
        "the agent still knows its engine, whatever its client name"
    );
    let replica_host = replica.address.clone();
    wait_until(5, "the write replicates", || {
        let host = replica_host.clone();
        async move {
            let mut r = tenant(&host).await;
            r.call(&["GET", "after-flush"])
                .await
                .is_ok_and(|v| v == Reply::Bulk(Some(b"1".to_vec())))
        }
    })
    .await;

    // The agent still reconfigures it online: a new size.
    let bigger: Vec<NodeSpec> = desired
        .iter()
        .map(|s| NodeSpec {
            maxmemory_bytes: 128 << 20,
            ..s.clone()
        })
        .collect();
    let pass = sup.reconcile(&bigger).await;
    assert!(pass.applied && pass.reports.iter().all(|r| r.error.is_none()));
    assert_eq!(info(&mut c).await.get("maxmemory"), Some("134217728"));
    assert_eq!(
        text(&c.call(&["GET", "after-flush"]).await.expect("GET")),
        "1"
    );
}

/// A spec from before the lockdown: no admin secret.
fn legacy(s: &NodeSpec) -> NodeSpec {
    NodeSpec {
        admin_secret: None,
        ..s.clone()
    }
}

fn remove_engine_record(data: &Path, s: &NodeSpec) {
    let dir = NodeDir::new(data, s.node_id);
    std::fs::remove_file(dir.engine()).expect("the engine record exists");
}

#[tokio::test]
async fn an_engine_from_before_the_lockdown_is_adopted_and_locked_down_online() {
    let _bin = require_redis!();
    let data = DataDir::new("lockdown-upgrade");
    let (primary, replica) = pair(3);
    let old = vec![legacy(&primary), legacy(&replica)];
    let mut sup = Supervisor::new(data.path().to_path_buf(), PathBuf::from("redis-server")).await;
    until_linked(&mut sup, &old, &replica).await;
    let mut c = tenant(&primary.address).await;
    c.call(&["SET", "kept", "1"]).await.expect("SET");
    // Before: the AUTH string could do anything.
    c.call(&["CONFIG", "GET", "maxmemory"])
        .await
        .expect("an unlocked engine");
    assert!(
        Client::connect(&primary.address, 6379, Some(&admin_login()))
            .await
            .is_err(),
        "no agent user yet"
    );
    let pids: Vec<u32> = [&primary, &replica]
        .iter()
        .map(|s| process::read_pid(&NodeDir::new(data.path(), s.node_id)).expect("pid"))
        .collect();
    // An older agent recorded no start time: the new one recognises its engines by their
    // pid files and titles once.
    remove_engine_record(data.path(), &primary);
    remove_engine_record(data.path(), &replica);
    drop(sup);

    // The new agent, with specs that carry the admin secret.
    let new = vec![primary.clone(), replica.clone()];
    let mut sup = Supervisor::new(data.path().to_path_buf(), PathBuf::from("redis-server")).await;
    let pass = sup.reconcile(&new).await;
    assert!(
        pass.acted && pass.reports.iter().all(|r| r.error.is_none()),
        "{:?}",
        pass.reports
    );
    until_linked(&mut sup, &new, &replica).await;

    let after: Vec<u32> = [&primary, &replica]
        .iter()
        .map(|s| {
            process::engine_pid(&NodeDir::new(data.path(), s.node_id), Some(s)).expect("adopted")
        })
        .collect();
    assert_eq!(pids, after, "locked down without a restart");
    match c.call(&["CONFIG", "SET", "maxmemory", "0"]).await {
        Err(ClientError::Server(m)) if m.starts_with("NOPERM") => {}
        other => panic!("the tenant's open connection is locked down too: {other:?}"),
    }
    let mut fresh = tenant(&primary.address).await;
    assert_eq!(text(&fresh.call(&["GET", "kept"]).await.expect("GET")), "1");
    let mut a = Client::connect(&replica.address, 6379, Some(&admin_login()))
        .await
        .expect("the agent's user exists on the replica");
    let repl = match a.call(&["INFO", "replication"]).await.expect("INFO") {
        Reply::Bulk(Some(b)) => Info::parse(&String::from_utf8_lossy(&b)),
        other => panic!("{other:?}"),
    };
    assert_eq!(repl.get("master_link_status"), Some("up"));

    // And it keeps being reconfigured.
    let policy: Vec<NodeSpec> = new
        .iter()
        .map(|s| NodeSpec {
            redis_configs: BTreeMap::from([("maxmemory-policy".into(), "allkeys-lfu".into())]),
            ..s.clone()
        })
        .collect();
    let pass = sup.reconcile(&policy).await;
    assert!(pass.applied && pass.reports.iter().all(|r| r.error.is_none()));
    assert_eq!(
        info(&mut fresh).await.get("maxmemory_policy"),
        Some("allkeys-lfu")
    );
}
