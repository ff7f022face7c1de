//! The read endpoint proxy over real `redis-server`s: one primary, two linked replicas
//! and one whose link is down (it follows a primary that does not exist, as a replica
//! stuck before or in a full sync would report). Skipped only when `redis-server` is not
//! installed.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use cacheplane_node_agent::config::NetworkMode;
use cacheplane_node_agent::net::{nft, Net};
use cacheplane_node_agent::proxy::{Limits, ReadEndpoints};
use cacheplane_node_agent::redis::client::{Client, Reply};
use cacheplane_node_agent::supervisor::Supervisor;
use cacheplane_types::{NodeRole, NodeSpec, ReadEndpointSpec};
use common::{address, connect, linked, run_id, spec, start, wait_until, DataDir};
use tokio::io::AsyncReadExt;

/// The primary's spec with a read endpoint at `address(10)` over `replicas`.
fn with_endpoint(primary: &NodeSpec, replicas: &[&NodeSpec]) -> NodeSpec {
    NodeSpec {
        read_endpoint: Some(ReadEndpointSpec {
            address: address(10),
            port: 6379,
            replicas: replicas.iter().map(|r| r.address.clone()).collect(),
        }),
        ..primary.clone()
    }
}

/// Whether `c`'s connection is closed by the proxy within a second.
async fn closes(c: &mut Client) -> bool {
    for _ in 0..40 {
        if c.ping().await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// The replicas `endpoints`' only endpoint finds healthy.
fn healthy(endpoints: &ReadEndpoints) -> Vec<String> {
    endpoints.status()[0]
        .backends
        .iter()
        .filter(|b| b.healthy)
        .map(|b| b.address.clone())
        .collect()
}

/// Waits until exactly `want` are healthy.
async fn wait_healthy(endpoints: &ReadEndpoints, want: &[&NodeSpec]) {
    let want: Vec<String> = want.iter().map(|s| s.address.clone()).collect();
    wait_until(5, "the replicas' health is seen", || {
        let ok = healthy(endpoints) == want;
        async move { ok }
    })
    .await;
}

/// A primary with two linked replicas (`r1`, `r2`) and one whose link is down (`down`,
/// following `nowhere`, which does not run), at `address(base)` on; and which engine
/// answers with which run id.
struct Replicas {
    primary: NodeSpec,
    r1: NodeSpec,
    r2: NodeSpec,
    down: NodeSpec,
    nowhere: NodeSpec,
    ids: HashMap<String, String>,
}

/// The address of the engine with run id `id` in `ids`.
fn name_of(ids: &HashMap<String, String>, id: &str) -> String {
    ids.get(id)
        .cloned()
        .unwrap_or_else(|| format!("unknown {id}"))
}

/// Opens `n` connections to the endpoint at `ep`: each of `replicas` (and nothing else)
/// must answer some of them. Each connection with the address of the engine behind it.
async fn spread(
    ep: &str,
    n: usize,
    ids: &HashMap<String, String>,
    replicas: &[&NodeSpec],
) -> Vec<(Client, String)> {
    let mut conns = Vec::new();
    let mut per: HashMap<String, usize> = HashMap::new();
    for _ in 0..n {
        let mut c = connect(ep).await;
        let at = name_of(ids, &run_id(&mut c).await);
        *per.entry(at.clone()).or_default() += 1;
        conns.push((c, at));
    }
    for r in replicas {
        assert!(per.get(&r.address).is_some_and(|n| *n > 0), "{per:?}");
    }
    let to_replicas: usize = replicas.iter().filter_map(|r| per.get(&r.address)).sum();
    assert_eq!(to_replicas, n, "only the healthy replicas answer: {per:?}");
    conns
}

impl Replicas {
    async fn start(bin: &std::path::Path, data: &DataDir, base: u8) -> Replicas {
        let primary = spec(base, NodeRole::Primary, None);
        let r1 = spec(base + 1, NodeRole::Replica, Some(&primary));
        let r2 = spec(base + 2, NodeRole::Replica, Some(&primary));
        let nowhere = spec(base + 8, NodeRole::Primary, None);
        let down = spec(base + 3, NodeRole::Replica, Some(&nowhere));
        for s in [&primary, &r1, &r2, &down] {
            start(bin, data, s).await;
        }
        for r in [&r1, &r2] {
            wait_until(10, "the replica links up", || linked(&r.address)).await;
        }
        let mut ids = HashMap::new();
        for s in [&primary, &r1, &r2, &down] {
            ids.insert(
                run_id(&mut connect(&s.address).await).await,
                s.address.clone(),
            );
        }
        Replicas {
            primary,
            r1,
            r2,
            down,
            nowhere,
            ids,
        }
    }
}

#[tokio::test]
async fn connections_spread_over_healthy_replicas_and_follow_the_config() {
    let bin = require_redis!();
    let data = DataDir::new("read-endpoint");
    let Replicas {
        primary,
        r1,
        r2,
        down,
        nowhere,
        ids,
    } = Replicas::start(&bin, &data, 1).await;
    let name = |id: &str| name_of(&ids, id);

    let mut endpoints = ReadEndpoints::new();
    endpoints.update(&[with_endpoint(&primary, &[&r1, &r2, &down])]);
    wait_healthy(&endpoints, &[&r1, &r2]).await;
    assert!(endpoints.status()[0].listening);

    // 30 connections: each healthy replica gets some, the primary and the unlinked
    // replica none.
    let ep = address(10);
    let mut conns = spread(&ep, 30, &ids, &[&r1, &r2]).await;
    let counted: usize = endpoints.status()[0]
        .backends
        .iter()
        .map(|b| b.connections)
        .sum();
    assert_eq!(counted, 30);

    // A connection stays on its replica.
    for (c, at) in conns.iter_mut() {
        for _ in 0..3 {
            assert_eq!(&name(&run_id(c).await), at);
        }
    }

    // r1 loses its link: it takes no new connections, its current ones go on.
    let mut admin = connect(&r1.address).await;
    admin
        .replicaof(Some((&nowhere.address, 6379)))
        .await
        .expect("REPLICAOF");
    wait_healthy(&endpoints, &[&r2]).await;
    for _ in 0..10 {
        let mut c = connect(&ep).await;
        assert_eq!(name(&run_id(&mut c).await), r2.address);
    }
    for (c, at) in conns.iter_mut() {
        assert_eq!(&name(&run_id(c).await), at, "existing connections stay");
    }

    // r1 leaves the config: its connections are closed, r2's are not.
    endpoints.update(&[with_endpoint(&primary, &[&r2, &down])]);
    for (c, at) in conns.iter_mut() {
        if *at == r1.address {
            assert!(
                closes(c).await,
                "a connection to a removed replica stays open"
            );
        } else {
            c.ping().await.expect("r2's connections stay");
        }
    }

    // No healthy replica: new connections are closed at once.
    endpoints.update(&[with_endpoint(&primary, &[&down])]);
    let mut raw = tokio::net::TcpStream::connect((ep.as_str(), 6379))
        .await
        .expect("the endpoint accepts");
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(2), raw.read(&mut buf))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "refused: closed without a byte");

    // The read endpoint leaves this host: every connection closes, nothing listens.
    endpoints.update(&[with_endpoint(&primary, &[&r2])]);
    wait_healthy(&endpoints, &[&r2]).await;
    let mut last = connect(&ep).await;
    assert_eq!(name(&run_id(&mut last).await), r2.address);
    endpoints.update(std::slice::from_ref(&primary));
    assert!(endpoints.status().is_empty());
    assert!(
        closes(&mut last).await,
        "the endpoint's connections are closed"
    );
    wait_until(2, "nothing listens", || async {
        tokio::net::TcpStream::connect((ep.as_str(), 6379))
            .await
            .is_err()
    })
    .await;
}

/// Right after an HA create turned READY (every replica reported linked), a read through
/// the read endpoint must see a write made on the primary 50 ms earlier. It used to miss
/// it 70 times in 100: after a diskless full sync the primary streams to a replica only
/// from an ACK received after it reaped its fork, which the replica's first ACK
/// usually precedes, so the stream started up to a second after the replica reported
/// its link up. Several rounds, each a fresh instance run by the supervisor as on a
/// create, read through a fresh endpoint.
#[tokio::test]
async fn a_replica_reported_linked_has_the_writes_made_since() {
    let bin = require_redis!();
    let data = DataDir::new("read-fresh");
    let mut misses = Vec::new();
    for round in 0..5u8 {
        let primary = spec(20 + 2 * round, NodeRole::Primary, None);
        let replica = spec(21 + 2 * round, NodeRole::Replica, Some(&primary));
        let ep = address(40 + round);
        let primary = NodeSpec {
            read_endpoint: Some(ReadEndpointSpec {
                address: ep.clone(),
                port: 6379,
                replicas: vec![replica.address.clone()],
            }),
            ..primary
        };
        let desired = vec![primary.clone(), replica.clone()];
        let mut sup = Supervisor::new(data.path().to_path_buf(), bin.clone()).await;
        let mut endpoints = ReadEndpoints::new();
        // Passes until the replica reports its link up, as the API waits for READY.
        let mut ready = false;
        for _ in 0..200 {
            let pass = sup.reconcile(&desired).await;
            endpoints.update(&desired);
            ready = pass
                .reports
                .iter()
                .any(|r| r.node_id == replica.node_id && r.master_link_up == Some(true));
            if ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ready, "round {round}: the replica never reported linked");
        let value = format!("v{round}");
        connect(&primary.address)
            .await
            .call(&["SET", "k", &value])
            .await
            .expect("SET on the primary");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = match Client::connect(&ep, 6379, Some(&common::tenant_login())).await {
            Ok(mut c) => match c.call(&["GET", "k"]).await {
                Ok(Reply::Bulk(Some(v))) => String::from_utf8_lossy(&v).into_owned(),
                other => format!("{other:?}"),
            },
            Err(e) => format!("no connection: {e}"),
        };
        if got != value {
            misses.push(format!("round {round}: {got}"));
        }
    }
    assert!(misses.is_empty(), "reads missed a write: {misses:?}");
}

/// Whether the peer closes `c` within `within` without sending a byte.
async fn closed_within(c: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(within, c.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn the_proxy_caps_connections_and_closes_idle_ones() {
    let bin = require_redis!();
    let data = DataDir::new("read-limits");
    let primary = spec(50, NodeRole::Primary, None);
    let replica = spec(51, NodeRole::Replica, Some(&primary));
    for s in [&primary, &replica] {
        start(&bin, &data, s).await;
    }
    wait_until(10, "the replica links up", || linked(&replica.address)).await;
    let ep = address(52);
    let spec = NodeSpec {
        read_endpoint: Some(ReadEndpointSpec {
            address: ep.clone(),
            port: 6379,
            replicas: vec![replica.address.clone()],
        }),
        ..primary.clone()
    };
    let idle = Duration::from_millis(800);
    let mut endpoints = ReadEndpoints::new().with_limits(Limits {
        max_connections: 2,
        idle_timeout: idle,
    });
    endpoints.update(std::slice::from_ref(&spec));
    wait_healthy(&endpoints, &[&replica]).await;

    // Two connections at the cap serve; a third is closed at once and counted.
    let mut a = connect(&ep).await;
    let mut b = connect(&ep).await;
    a.ping().await.expect("first connection serves");
    b.ping().await.expect("second connection serves");
    assert_eq!(endpoints.status()[0].connections, 2);
    let mut over = tokio::net::TcpStream::connect((ep.as_str(), 6379))
        .await
        .expect("the kernel accepts");
    assert!(
        closed_within(&mut over, Duration::from_secs(1)).await,
        "a connection over the cap is closed at once"
    );
    assert_eq!(endpoints.status()[0].refused, 1);

    // A closed connection frees its place.
    drop(b);
    wait_until(5, "the closed connection's place is freed", || {
        let n = endpoints.status()[0].connections;
        async move { n == 1 }
    })
    .await;
    let mut c = connect(&ep).await;
    c.ping()
        .await
        .expect("a connection under the cap again serves");

    // `a` stays busy past the idle timeout and stays open; `c` goes silent and is
    // closed once the timeout passed (between 1 and 1.25 timeouts).
    let started = std::time::Instant::now();
    while started.elapsed() < idle * 2 {
        a.ping().await.expect("a busy connection is never idle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closes(&mut c).await, "the silent connection was closed");
    a.ping().await.expect("the busy one still serves");
    wait_until(5, "the idle connection's place is freed", || {
        let n = endpoints.status()[0].connections;
        async move { n == 1 }
    })
    .await;
}

/// The `ip` tables of the root namespace whose names start with `prefix`.
fn nft_tables(prefix: &str) -> Vec<String> {
    let out = std::process::Command::new("nft")
        .args(["list", "tables", "ip"])
        .output()
        .expect("nft runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table ip "))
        .filter(|t| t.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// `--read-endpoint kernel` in loopback mode (root): no listener, nftables DNAT in the
/// root namespace spreads new connections over the healthy replicas only, follows their
/// health, leaves established connections where they are, and is removed with the
/// endpoint; a table a killed run left behind is removed at start.
#[tokio::test]
async fn the_kernel_serves_the_endpoint_in_loopback_mode() {
    let bin = require_redis!();
    if !cacheplane_testkit::netns::can_run() {
        return;
    }
    let data = DataDir::new("read-kernel");
    let Replicas {
        primary,
        r1,
        r2,
        down,
        nowhere,
        ids,
    } = Replicas::start(&bin, &data, 60).await;
    let name = |id: &str| name_of(&ids, id);
    let net = Net::new(
        NetworkMode::Loopback,
        &format!("k{}", std::process::id() % 100_000),
        "kernel-test",
        None,
    );
    let tag = net.names().tag();
    let prefix = nft::read_endpoint_tables_of(&tag);
    // What a killed run left: a table of this agent for an endpoint it no longer serves.
    let stale = nft::read_endpoint_table(&tag, &address(99), 6379);
    nft::apply_read_endpoint(
        None,
        &stale,
        &address(99),
        6379,
        &[(r1.address.clone(), 6379)],
    )
    .await
    .expect("a stale table is made");
    assert_eq!(nft_tables(&prefix), vec![stale.clone()]);

    let ep = address(64);
    let spec = NodeSpec {
        read_endpoint: Some(ReadEndpointSpec {
            address: ep.clone(),
            port: 6379,
            replicas: vec![r1.address.clone(), r2.address.clone(), down.address.clone()],
        }),
        ..primary.clone()
    };
    let mut endpoints = ReadEndpoints::with_net(net).with_kernel(true);
    endpoints.update(std::slice::from_ref(&spec));
    wait_healthy(&endpoints, &[&r1, &r2]).await;
    let table = nft::read_endpoint_table(&tag, &ep, 6379);
    wait_until(5, "the stale table goes and the endpoint's comes", || {
        let t = nft_tables(&prefix);
        let want = vec![table.clone()];
        async move { t == want }
    })
    .await;

    // 20 connections: both healthy replicas get some, the unlinked one and the primary
    // none; nothing in the agent holds them.
    let mut conns = spread(&ep, 20, &ids, &[&r1, &r2]).await;
    assert_eq!(
        endpoints.status()[0].connections,
        0,
        "the kernel relays them"
    );

    // r1 loses its link: new connections go to r2 only; established ones stay.
    let mut admin = connect(&r1.address).await;
    admin
        .replicaof(Some((&nowhere.address, 6379)))
        .await
        .expect("REPLICAOF");
    wait_healthy(&endpoints, &[&r2]).await;
    // The table follows within a check period (50 ms).
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..10 {
        let mut c = connect(&ep).await;
        assert_eq!(name(&run_id(&mut c).await), r2.address);
    }
    for (c, at) in conns.iter_mut() {
        assert_eq!(&name(&run_id(c).await), at, "existing connections stay");
    }

    // The endpoint leaves this host: its table goes, and nothing answers there.
    endpoints.update(std::slice::from_ref(&primary));
    wait_until(5, "the endpoint's table is removed", || {
        let t = nft_tables(&prefix);
        async move { t.is_empty() }
    })
    .await;
    assert!(
        tokio::net::TcpStream::connect((ep.as_str(), 6379))
            .await
            .is_err(),
        "nothing answers at the endpoint"
    );
}
