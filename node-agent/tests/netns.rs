//! The netns network mode with real namespaces, bridges, nftables and `redis-server`s:
//! agents (the library, against a fake API) put each network's engines in a namespace
//! of their own joined to the network's bridge, realise connectors, keep networks with
//! overlapping pools apart, and move the primary endpoint with a promotion; memcached
//! nodes and Memcached discovery endpoints get their addresses the same way. Needs root,
//! `ip`, `nft` and `redis-cli`: fails under CI when it cannot run, skips elsewhere.
//! Every namespace, bridge and veth carries the test's prefix and is deleted when the
//! test ends, pass or fail.

mod common;

use std::process::Command;
use std::time::Duration;

use cacheplane_node_agent::agent;
use cacheplane_node_agent::config::NetworkMode;
use cacheplane_node_agent::net::dial::{netns_path, Dialer};
use cacheplane_node_agent::net::Names;
use cacheplane_node_agent::redis::acl::Login;
use cacheplane_testkit::netns::{self, can_run, NetGuard};
use cacheplane_types::{
    ConnectorSpec, HostConfig, NetworkSpec, NodeRole, NodeSpec, ReadEndpointSpec,
};
use common::fake_api::FakeApi;
use common::{agent_config, wait_until, DataDir, AUTH};
use tokio_util::sync::CancellationToken;

/// The longest any one test may take.
const TEST_LIMIT: Duration = Duration::from_secs(90);

fn network(project: &str) -> NetworkSpec {
    NetworkSpec {
        name: format!("projects/{project}/networks/default"),
        // Both projects use the same pool, as two unrelated tenants may.
        ip_range: "10.200.0.0/16".into(),
    }
}

/// A node of `net` at `10.200.0.{n}`; a primary holds endpoint `.{n-2}` (its range's
/// offset 1), a replica follows `of`.
fn node(net: &NetworkSpec, n: u8, role: NodeRole, of: Option<u8>, auth: &str) -> NodeSpec {
    NodeSpec {
        network: Some(net.clone()),
        node_id: uuid::Uuid::new_v4(),
        instance: format!("{}/instances/i{n}", net.name),
        engine_version: "REDIS_7_0".into(),
        role,
        address: format!("10.200.0.{n}"),
        port: 6379,
        endpoint_address: None,
        primary_address: of.map(|o| format!("10.200.0.{o}")),
        maxmemory_bytes: 64 << 20,
        redis_configs: Default::default(),
        read_endpoint: None,
        restart_in_place: false,
        auth_string: Some(auth.into()),
        write_fence: None,
        admin_secret: None,
        switchover: None,
        tls: None,
    }
}

fn with_endpoint(mut s: NodeSpec, endpoint: &str) -> NodeSpec {
    s.endpoint_address = Some(endpoint.into());
    s
}

fn connector(net: &NetworkSpec, namespace: &str) -> ConnectorSpec {
    ConnectorSpec {
        name: "projects/a/locations/r/connectors/c1".into(),
        network: net.clone(),
        ip_cidr_range: "10.200.1.0/28".into(),
        address: "10.200.1.1".into(),
        namespace: namespace.into(),
    }
}

fn config(host: &str, generation: i64, nodes: Vec<NodeSpec>, c: Vec<ConnectorSpec>) -> HostConfig {
    HostConfig {
        host: format!("hosts/{host}"),
        generation,
        nodes,
        connectors: c,
        memcache_nodes: Vec::new(),
        discovery_endpoints: Vec::new(),
    }
}

/// An agent of host `host` in netns mode with `prefix`, against `api`.
fn run_agent(
    api: &FakeApi,
    host: &str,
    data: &DataDir,
    prefix: &str,
    cancel: &CancellationToken,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let bin = cacheplane_testkit::process::require_redis_server();
    let mut cfg = agent_config(&api.url, host, data, &bin, "200ms");
    cfg.network_mode = NetworkMode::Netns;
    cfg.netns_prefix = prefix.to_string();
    // The tests end by removing every node of the host.
    cfg.accept_config_drops = true;
    tokio::spawn(agent::run(cfg, cancel.child_token()))
}

/// `redis-cli ARGS` against `host` inside namespace `ns`, authenticated with `auth`:
/// its output, or why it failed.
fn cli_in(ns: &str, host: &str, auth: &str, args: &[&str]) -> Result<String, String> {
    netns::cli_in(Some(ns), host, 6379, auth, args)
}

/// Whether a TCP connection to `host:6379` opens from `dialer` within a second.
async fn opens(dialer: &Dialer, host: &str) -> bool {
    tokio::time::timeout(Duration::from_secs(1), dialer.tcp(host, 6379))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// Whether a Redis engine answers PING (with `auth`) at `host:6379` from `dialer`
/// within two seconds. The root namespace is checked with this rather than a bare
/// connect: a sandbox's default gateway may accept any TCP connection itself.
async fn answers(dialer: &Dialer, host: &str, auth: &str) -> bool {
    let ping = async {
        let mut c = dialer
            .client(host, 6379, &[Login::tenant_auth(auth)], None)
            .await
            .ok()?;
        c.ping().await.ok()
    };
    tokio::time::timeout(Duration::from_secs(2), ping)
        .await
        .is_ok_and(|r| r.is_some())
}

async fn wait_reachable(ns: &str, host: &str, auth: &str) {
    let (ns, host, auth) = (ns.to_string(), host.to_string(), auth.to_string());
    wait_until(30, &format!("{host} answers from {ns}"), || {
        let r = cli_in(&ns, &host, &auth, &["PING"]);
        async move { r.is_ok_and(|t| t == "PONG") }
    })
    .await;
}

/// `role` and `run_id` of the engine answering at `host` from `ns`.
fn who(ns: &str, host: &str, auth: &str) -> Option<(String, String)> {
    let text = cli_in(ns, host, auth, &["INFO"]).ok()?;
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .map(|v| v.trim().to_string())
    };
    Some((get("role")?, get("run_id")?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_reaches_its_network_only_and_loses_it_when_removed() {
    let _ = require_redis!();
    if !can_run() {
        return;
    }
    let guard = NetGuard::new(1);
    let data = DataDir::new("netns-isolation");
    tokio::time::timeout(TEST_LIMIT, async {
        let (a, b) = (network("a"), network("b"));
        let a_node = with_endpoint(node(&a, 19, NodeRole::Primary, None, AUTH), "10.200.0.17");
        let b_node = with_endpoint(
            node(&b, 35, NodeRole::Primary, None, "b-secret"),
            "10.200.0.33",
        );
        // Another instance of B at the very addresses of A's, on the same agent.
        let b_twin = with_endpoint(
            node(&b, 19, NodeRole::Primary, None, "b-secret"),
            "10.200.0.17",
        );
        let conn_ns = format!("{}-conn-a", guard.prefix);
        let host = "netns-h1";
        let api = FakeApi::start(config(
            host,
            1,
            vec![a_node.clone(), b_node.clone(), b_twin.clone()],
            vec![connector(&a, &conn_ns)],
        ))
        .await;
        let cancel = CancellationToken::new();
        let _agent = run_agent(&api, host, &data, &guard.prefix, &cancel);

        // From A's connector, a real client reaches A's instance with its AUTH string,
        // at its node address and at its primary endpoint.
        wait_reachable(&conn_ns, "10.200.0.17", AUTH).await;
        assert_eq!(
            cli_in(
                &conn_ns,
                "10.200.0.17",
                AUTH,
                &["SET", "k", "from-connector"]
            )
            .as_deref(),
            Ok("OK")
        );
        assert_eq!(
            cli_in(&conn_ns, "10.200.0.19", AUTH, &["GET", "k"]).as_deref(),
            Ok("from-connector")
        );
        // Without the AUTH string, nothing.
        let denied = cli_in(&conn_ns, "10.200.0.19", "wrong", &["GET", "k"]);
        assert!(
            denied.as_ref().is_err_and(|e| e.contains("NOAUTH")),
            "{denied:?}"
        );

        // B's node (same pool, another network) is not reachable from A's connector.
        let from_conn = Dialer::in_netns(conn_ns.clone());
        assert!(opens(&from_conn, "10.200.0.19").await, "A's node opens");
        assert!(
            !opens(&from_conn, "10.200.0.35").await,
            "B's node must not open"
        );
        assert!(
            !opens(&from_conn, "10.200.0.33").await,
            "B's endpoint must not open"
        );
        // Yet B's node runs and serves its own network.
        let names = Names::new(&guard.prefix, host);
        let b_ns = names.node_ns(&b.name);
        assert_eq!(
            cli_in(&b_ns, "10.200.0.35", "b-secret", &["PING"]).as_deref(),
            Ok("PONG")
        );
        // The same address is A's instance from A's connector and B's twin inside B.
        assert_eq!(
            cli_in(&b_ns, "10.200.0.17", "b-secret", &["GET", "k"]).as_deref(),
            Ok(""),
            "B's twin has none of A's keys"
        );
        let wrong = cli_in(&conn_ns, "10.200.0.17", "b-secret", &["GET", "k"]);
        assert!(
            wrong.is_err(),
            "B's secret opens nothing from A's connector: {wrong:?}"
        );
        // The root namespace reaches neither.
        for addr in ["10.200.0.19", "10.200.0.17", "10.200.0.35"] {
            assert!(
                !answers(&Dialer::here(), addr, AUTH).await,
                "root reaches {addr}"
            );
        }
        // The firewall of A's namespace admits A's pool only: an address of another
        // pool, put on A's bridge by hand, cannot open a connection.
        let a_ns = names.node_ns(&a.name);
        let rules = Command::new("ip")
            .args([
                "netns",
                "exec",
                &a_ns,
                "nft",
                "list",
                "table",
                "inet",
                "cacheplane",
            ])
            .output()
            .expect("nft runs");
        let rules = String::from_utf8_lossy(&rules.stdout);
        assert!(
            rules.contains("policy drop") && rules.contains("ip saddr 10.200.0.0/16 accept"),
            "{rules}"
        );
        let stranger = format!("{}-x", guard.prefix);
        let veth = format!("{}x", guard.prefix);
        for args in [
            vec!["netns", "add", &stranger],
            vec![
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &stranger,
            ],
            vec!["link", "set", &veth, "master", &names.bridge(&a.name), "up"],
            vec!["-n", &stranger, "link", "set", "eth0", "up"],
            vec![
                "-n",
                &stranger,
                "addr",
                "add",
                "10.201.0.5/8",
                "dev",
                "eth0",
            ],
            // A route back, as a mistake might add: only the firewall stands between.
            vec!["-n", &a_ns, "route", "add", "10.201.0.0/16", "dev", "eth0"],
        ] {
            let st = Command::new("ip").args(&args).status().expect("ip runs");
            assert!(st.success(), "ip {args:?}");
        }
        assert!(
            !opens(&Dialer::in_netns(stranger.clone()), "10.200.0.19").await,
            "an address outside the pool must be dropped"
        );

        // The connector leaves the config: its namespace goes, and an open connection
        // from it is cut.
        let mut held = from_conn
            .client("10.200.0.19", 6379, &[Login::tenant_auth(AUTH)], None)
            .await
            .expect("connects from the connector");
        assert!(held.ping().await.is_ok());
        api.set_config(config(
            host,
            2,
            vec![a_node.clone(), b_node.clone(), b_twin.clone()],
            Vec::new(),
        ));
        let path = netns_path(&conn_ns);
        wait_until(20, "the connector's namespace is gone", || {
            let gone = !path.exists();
            async move { gone }
        })
        .await;
        assert!(held.ping().await.is_err(), "the held connection is cut");
        assert!(cli_in(&conn_ns, "10.200.0.19", AUTH, &["PING"]).is_err());
        assert!(!answers(&Dialer::here(), "10.200.0.19", AUTH).await);

        // The nodes leave: their namespaces, veths and bridges go.
        api.set_config(config(host, 3, Vec::new(), Vec::new()));
        let (pa, pb) = (netns_path(&a_ns), netns_path(&b_ns));
        wait_until(20, "the node namespaces are gone", || {
            let gone = !pa.exists() && !pb.exists();
            async move { gone }
        })
        .await;
        let _ = Command::new("ip")
            .args(["netns", "del", &stranger])
            .status();
        let bridge = names.bridge(&b.name);
        wait_until(10, "B's bridge is gone", || {
            let gone = !Command::new("ip")
                .args(["link", "show", "dev", &bridge])
                .output()
                .is_ok_and(|o| o.status.success());
            async move { gone }
        })
        .await;
        cancel.cancel();
    })
    .await
    .expect("the test finishes in time");
    drop(data);
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_endpoint_moves_to_the_promoted_replica_on_another_agent() {
    let _ = require_redis!();
    if !can_run() {
        return;
    }
    let guard = NetGuard::new(2);
    let (d1, d2) = (DataDir::new("netns-h1"), DataDir::new("netns-h2"));
    tokio::time::timeout(TEST_LIMIT, async {
        let a = network("a");
        let ep = "10.200.0.17";
        let mut primary = with_endpoint(node(&a, 19, NodeRole::Primary, None, AUTH), ep);
        // Its agent serves the read endpoint inside its namespace, over the replica.
        primary.read_endpoint = Some(ReadEndpointSpec {
            address: "10.200.0.18".into(),
            port: 6379,
            replicas: vec!["10.200.0.20".into()],
        });
        let replica = node(&a, 20, NodeRole::Replica, Some(19), AUTH);
        let conn_ns = format!("{}-conn-a", guard.prefix);
        let api1 = FakeApi::start(config("netns-h1", 1, vec![primary.clone()], Vec::new())).await;
        let api2 = FakeApi::start(config(
            "netns-h2",
            1,
            vec![replica.clone()],
            vec![connector(&a, &conn_ns)],
        ))
        .await;
        let cancel = CancellationToken::new();
        let first = CancellationToken::new();
        let a1 = run_agent(&api1, "netns-h1", &d1, &guard.prefix, &first);
        let _a2 = run_agent(&api2, "netns-h2", &d2, &guard.prefix, &cancel);

        // One network across both agents: the replica (agent 2) links to the primary
        // (agent 1) over the network's bridge.
        wait_reachable(&conn_ns, ep, AUTH).await;
        wait_until(30, "the replica links over the bridge", || {
            let r = cli_in(&conn_ns, "10.200.0.20", AUTH, &["INFO", "replication"]);
            async move { r.is_ok_and(|t| t.contains("master_link_status:up")) }
        })
        .await;
        let (role, old_id) = who(&conn_ns, ep, AUTH).expect("the endpoint answers");
        assert_eq!(role, "master");
        let (_, primary_id) = who(&conn_ns, "10.200.0.19", AUTH).expect("node 19 answers");
        assert_eq!(old_id, primary_id, "the endpoint is the primary's");
        assert_eq!(
            cli_in(&conn_ns, ep, AUTH, &["SET", "k", "v1"]).as_deref(),
            Ok("OK")
        );
        let (_, replica_id) = who(&conn_ns, "10.200.0.20", AUTH).expect("node 20 answers");
        wait_until(30, "the read endpoint relays to the replica", || {
            let now = who(&conn_ns, "10.200.0.18", AUTH);
            let want = replica_id.clone();
            async move { now.is_some_and(|(r, id)| r == "slave" && id == want) }
        })
        .await;

        // The kernel serves it (nftables DNAT in the primary's namespace): no process
        // listens on its address.
        let ns1 = Names::new(&guard.prefix, "netns-h1").node_ns(&a.name);
        let listening = Command::new("ip")
            .args(["netns", "exec", &ns1, "ss", "-ltn"])
            .output()
            .expect("ss runs");
        let listening = String::from_utf8_lossy(&listening.stdout);
        assert!(!listening.contains("10.200.0.18:6379"), "{listening}");
        assert!(listening.contains("10.200.0.19:6379"), "{listening}");

        // Agent 1 restarts: it adopts its namespace, addresses and engine as they are.
        first.cancel();
        let _ = a1.await;
        let _a1 = run_agent(&api1, "netns-h1", &d1, &guard.prefix, &cancel);
        assert_eq!(
            who(&conn_ns, ep, AUTH).map(|w| w.1),
            Some(primary_id.clone())
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            who(&conn_ns, ep, AUTH).map(|w| w.1),
            Some(primary_id.clone()),
            "the same engine serves after the restart"
        );
        let mine = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip runs");
        let mine = String::from_utf8_lossy(&mine.stdout);
        assert_eq!(
            mine.lines().filter(|l| l.starts_with(&ns1)).count(),
            1,
            "{mine}"
        );

        // Failover: the replica is promoted and takes the endpoint; the old primary
        // follows it.
        let promoted = with_endpoint(
            NodeSpec {
                role: NodeRole::Primary,
                primary_address: None,
                ..replica.clone()
            },
            ep,
        );
        let demoted = NodeSpec {
            role: NodeRole::Replica,
            endpoint_address: None,
            read_endpoint: None,
            primary_address: Some("10.200.0.20".into()),
            ..primary.clone()
        };
        api1.set_config(config("netns-h1", 2, vec![demoted], Vec::new()));
        api2.set_config(config(
            "netns-h2",
            2,
            vec![promoted],
            vec![connector(&a, &conn_ns)],
        ));
        wait_until(30, "the endpoint answers from the promoted node", || {
            let now = who(&conn_ns, ep, AUTH);
            let want = replica_id.clone();
            async move { now.is_some_and(|(r, id)| r == "master" && id == want) }
        })
        .await;
        assert_eq!(
            cli_in(&conn_ns, ep, AUTH, &["GET", "k"]).as_deref(),
            Ok("v1")
        );
        assert_eq!(
            cli_in(&conn_ns, ep, AUTH, &["SET", "k", "v2"]).as_deref(),
            Ok("OK")
        );
        // The address leaves agent 1's namespace once it has demoted its node.
        let addrs_of_ns1 = || {
            let out = Command::new("ip")
                .args(["-n", &ns1, "-o", "-4", "addr", "show"])
                .output()
                .expect("ip runs");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let gone = format!("{ep}/");
        wait_until(10, "the endpoint address leaves agent 1", || {
            let a = addrs_of_ns1();
            let done = !a.contains(&gone);
            async move { done }
        })
        .await;
        let addrs = addrs_of_ns1();
        assert!(addrs.contains("10.200.0.19/16"), "{addrs}");
        cancel.cancel();
    })
    .await
    .expect("the test finishes in time");
    drop((d1, d2));
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_mode_puts_node_addresses_on_the_interface_and_removes_them() {
    use cacheplane_node_agent::memcache::client::McClient;
    use cacheplane_types::{DiscoveryEndpointSpec, DiscoveryNode, MemcacheNodeSpec};

    let bin = require_redis!();
    let memcached = cacheplane_testkit::process::require_memcached();
    if !can_run() {
        return;
    }
    let guard = NetGuard::new(3);
    let data = DataDir::new("netns-host-mode");
    // The test's "host": a namespace with a veth pair (this kernel may have no dummy
    // interfaces), in which the agent runs; `host0` plays the host's interface.
    let ns = format!("{}-host", guard.prefix);
    for args in [
        vec!["netns", "add", &ns],
        vec!["-n", &ns, "link", "set", "lo", "up"],
        vec![
            "-n", &ns, "link", "add", "host0", "type", "veth", "peer", "name", "host1",
        ],
        vec!["-n", &ns, "link", "set", "host1", "up"],
        vec!["-n", &ns, "link", "set", "host0", "up"],
    ] {
        let st = Command::new("ip").args(&args).status().expect("ip runs");
        assert!(st.success(), "ip {args:?}");
    }
    let mut s = common::spec(19, NodeRole::Primary, None);
    s.address = "10.210.0.19".into();
    s.endpoint_address = Some("10.210.0.17".into());
    // A memcached node and a Memcached discovery endpoint get their addresses the same way.
    let mc = MemcacheNodeSpec {
        node_id: uuid::Uuid::new_v4(),
        instance: "projects/p/locations/r/memcacheInstances/m".into(),
        memcache_version: "MEMCACHE_1_6".into(),
        address: "10.210.0.20".into(),
        port: 11211,
        memory_mb: 64,
        threads: 1,
        max_connections: 64,
        parameters: Default::default(),
        network: None,
    };
    let ep = DiscoveryEndpointSpec {
        instance: mc.instance.clone(),
        address: "10.210.0.21".into(),
        port: 11211,
        config_version: 1,
        nodes: vec![DiscoveryNode {
            host: "10.210.0.20".into(),
            ip: "10.210.0.20".into(),
            port: 11211,
        }],
        network: None,
    };
    let host = "netns-host";
    let cancel = CancellationToken::new();
    let (api_tx, api_rx) = std::sync::mpsc::channel();
    let agent = {
        let (ns, cancel, data_path) = (ns.clone(), cancel.clone(), data.path().to_path_buf());
        let mut first = config(host, 1, vec![s.clone()], Vec::new());
        first.memcache_nodes = vec![mc.clone()];
        first.discovery_endpoints = vec![ep.clone()];
        // A thread in the namespace: the runtime's threads, the fake API's listener and
        // the engines the agent starts all live there.
        std::thread::spawn(move || -> anyhow::Result<()> {
            let f = std::fs::File::open(netns_path(&ns))?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let api = FakeApi::start(first).await;
                let mut cfg = common::agent_config_at(&api.url, host, &data_path, &bin, "200ms");
                cfg.network_mode = NetworkMode::Host;
                cfg.host_interface = Some("host0".into());
                cfg.accept_config_drops = true;
                cfg.memcached = memcached;
                let _ = api_tx.send(api);
                agent::run(cfg, cancel).await
            })
        })
    };
    let api = api_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the fake API starts");
    let addrs = || {
        let out = Command::new("ip")
            .args(["-n", &ns, "-o", "-4", "addr", "show", "dev", "host0"])
            .output()
            .expect("ip runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    tokio::time::timeout(TEST_LIMIT, async {
        wait_until(30, "the addresses are on host0", || {
            let a = addrs();
            let done = ["19", "17", "20", "21"]
                .iter()
                .all(|n| a.contains(&format!("10.210.0.{n}/32")));
            async move { done }
        })
        .await;
        let here = Dialer::in_netns(ns.clone());
        wait_until(30, "the engine answers at its endpoint", || {
            let here = here.clone();
            async move { answers(&here, "10.210.0.17", AUTH).await }
        })
        .await;
        for addr in ["10.210.0.20", "10.210.0.21"] {
            wait_until(30, "memcached and the discovery endpoint answer", || {
                let here = here.clone();
                async move {
                    match McClient::connect(&here, addr, 11211).await {
                        Ok(mut c) => c.version().await.is_ok(),
                        Err(_) => false,
                    }
                }
            })
            .await;
        }
        api.set_config(config(host, 2, Vec::new(), Vec::new()));
        wait_until(30, "the addresses are removed", || {
            let a = addrs();
            let done = ["19", "17", "20", "21"]
                .iter()
                .all(|n| !a.contains(&format!("10.210.0.{n}/")));
            async move { done }
        })
        .await;
        assert!(!answers(&here, "10.210.0.17", AUTH).await);
    })
    .await
    .expect("the test finishes in time");
    cancel.cancel();
    let ended = tokio::task::spawn_blocking(move || agent.join()).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "the agent ends cleanly");
    drop(api);
    drop(data);
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_nodes_and_discovery_endpoints_live_in_their_networks_namespace() {
    use cacheplane_node_agent::memcache::client::McClient;
    use cacheplane_types::{DiscoveryEndpointSpec, DiscoveryNode, MemcacheNodeSpec};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let _ = require_redis!();
    let memcached = cacheplane_testkit::process::require_memcached();
    if !can_run() {
        return;
    }
    let guard = NetGuard::new(4);
    let data = DataDir::new("netns-memcached");
    tokio::time::timeout(TEST_LIMIT, async {
        let a = network("a");
        let mc = MemcacheNodeSpec {
            node_id: uuid::Uuid::new_v4(),
            instance: "projects/a/locations/r/memcacheInstances/m".into(),
            memcache_version: "MEMCACHE_1_6".into(),
            address: "10.200.0.50".into(),
            port: 11211,
            memory_mb: 64,
            threads: 1,
            max_connections: 128,
            parameters: Default::default(),
            network: Some(a.clone()),
        };
        let ep = DiscoveryEndpointSpec {
            instance: mc.instance.clone(),
            address: "10.200.0.49".into(),
            port: 11211,
            config_version: 1,
            nodes: vec![DiscoveryNode {
                host: "10.200.0.50".into(),
                ip: "10.200.0.50".into(),
                port: 11211,
            }],
            network: Some(a.clone()),
        };
        let conn_ns = format!("{}-conn-m", guard.prefix);
        let host = "netns-mc";
        let mut cfg = config(host, 1, Vec::new(), vec![connector(&a, &conn_ns)]);
        cfg.memcache_nodes = vec![mc.clone()];
        cfg.discovery_endpoints = vec![ep.clone()];
        let api = FakeApi::start(cfg).await;
        let cancel = CancellationToken::new();
        let bin = cacheplane_testkit::process::require_redis_server();
        let mut agent_cfg = agent_config(&api.url, host, &data, &bin, "200ms");
        agent_cfg.network_mode = NetworkMode::Netns;
        agent_cfg.netns_prefix = guard.prefix.clone();
        agent_cfg.memcached = memcached;
        let _agent = tokio::spawn(agent::run(agent_cfg, cancel.child_token()));

        // From the network's connector: the node stores and serves, the discovery
        // endpoint lists it.
        let from_conn = Dialer::in_netns(conn_ns.clone());
        wait_until(30, "the memcached node answers from the connector", || {
            let d = from_conn.clone();
            async move { McClient::connect(&d, "10.200.0.50", 11211).await.is_ok() }
        })
        .await;
        let mut c = McClient::connect(&from_conn, "10.200.0.50", 11211)
            .await
            .expect("connects from the connector");
        c.set("k", b"in-the-network", 0).await.expect("set");
        assert_eq!(
            c.get("k").await.expect("get").as_deref(),
            Some(&b"in-the-network"[..])
        );
        wait_until(10, "the discovery endpoint listens", || {
            let d = from_conn.clone();
            async move { d.tcp("10.200.0.49", 11211).await.is_ok() }
        })
        .await;
        let mut s = from_conn
            .tcp("10.200.0.49", 11211)
            .await
            .expect("the discovery endpoint opens from the connector");
        s.write_all(b"config get cluster\r\nquit\r\n")
            .await
            .expect("writes");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("reads");
        // "1\n" (2) + "10.200.0.50|10.200.0.50|11211" (29) + "\n" (1) = 32.
        assert_eq!(
            String::from_utf8_lossy(&got),
            "CONFIG cluster 0 32\r\n1\n10.200.0.50|10.200.0.50|11211\n\r\nEND\r\n"
        );
        // The root namespace reaches neither (asked for an answer, not a bare connect:
        // a sandbox's default gateway may accept any TCP connection itself).
        for addr in ["10.200.0.50", "10.200.0.49"] {
            let answered = tokio::time::timeout(Duration::from_secs(2), async {
                let mut c = McClient::connect(&Dialer::here(), addr, 11211).await.ok()?;
                c.version().await.ok()
            })
            .await
            .is_ok_and(|v| v.is_some());
            assert!(!answered, "{addr} must not answer from the root namespace");
        }

        // Both leave: memcached stops, the namespace goes.
        api.set_config(config(host, 2, Vec::new(), Vec::new()));
        let ns = netns_path(&Names::new(&guard.prefix, host).node_ns(&a.name));
        wait_until(20, "the network's namespace is gone", || {
            let gone = !ns.exists();
            async move { gone }
        })
        .await;
        wait_until(10, "memcached is gone", || {
            let gone = cacheplane_testkit::process::memcached_pids(data.path()).is_empty();
            async move { gone }
        })
        .await;
        cancel.cancel();
    })
    .await
    .expect("the test finishes in time");
    drop(data);
    drop(guard);
}
