//! Memcached nodes and discovery endpoints: a real agent against a stand-in API runs real
//! `memcached`s from the host config, restarts one killed with SIGKILL, restarts only
//! the node whose parameters change, adopts both after its own restart, stops a node
//! dropped from the config, and answers `config get cluster` byte for byte. Fails when
//! `memcached` or `redis-server` is not installed.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cacheplane_node_agent::agent;
use cacheplane_node_agent::memcache::client::McClient;
use cacheplane_node_agent::net::dial::Dialer;
use cacheplane_testkit::process::{is_memcached, require_memcached};
use cacheplane_types::{
    DiscoveryEndpointSpec, DiscoveryNode, HostConfig, MemcacheNodeReport, MemcacheNodeSpec,
};
use common::fake_api::{Beat, FakeApi};
use common::{address, agent_config, wait_until, DataDir};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PORT: u16 = 11211;

fn node(n: u8, memory_mb: u32, threads: u32) -> MemcacheNodeSpec {
    MemcacheNodeSpec {
        node_id: Uuid::new_v4(),
        instance: "projects/p/locations/local/memcacheInstances/it".into(),
        memcache_version: "MEMCACHE_1_6".into(),
        address: address(n),
        port: PORT,
        memory_mb,
        threads,
        max_connections: 256,
        parameters: BTreeMap::new(),
        network: None,
    }
}

fn endpoint(n: u8, version: i64, nodes: &[&MemcacheNodeSpec]) -> DiscoveryEndpointSpec {
    DiscoveryEndpointSpec {
        instance: "projects/p/locations/local/memcacheInstances/it".into(),
        address: address(n),
        port: PORT,
        config_version: version,
        nodes: nodes
            .iter()
            .map(|s| DiscoveryNode {
                host: s.address.clone(),
                ip: s.address.clone(),
                port: s.port,
            })
            .collect(),
        network: None,
    }
}

fn config(
    generation: i64,
    nodes: &[&MemcacheNodeSpec],
    endpoints: Vec<DiscoveryEndpointSpec>,
) -> HostConfig {
    HostConfig {
        host: "hosts/mc".into(),
        generation,
        nodes: Vec::new(),
        connectors: Vec::new(),
        memcache_nodes: nodes.iter().map(|s| (*s).clone()).collect(),
        discovery_endpoints: endpoints,
    }
}

fn report_of(beat: &Beat, id: Uuid) -> Option<&MemcacheNodeReport> {
    beat.body.memcache_nodes.iter().find(|r| r.node_id == id)
}

/// Waits until a heartbeat after the `from`-th satisfies `check`; answers it.
async fn wait_beat(
    api: &FakeApi,
    secs: u64,
    what: &str,
    from: usize,
    check: impl Fn(&Beat) -> bool,
) -> Beat {
    let mut found = None;
    wait_until(secs, what, || {
        let beats = api.beats();
        let hit = beats[from.min(beats.len())..]
            .iter()
            .find(|b| check(b))
            .cloned();
        let done = hit.is_some();
        found = hit;
        async move { done }
    })
    .await;
    found.expect("found")
}

/// Whether `beat` reports node `id` up and answering.
fn up(beat: &Beat, id: Uuid) -> bool {
    report_of(beat, id).is_some_and(|r| r.process_up && r.pid.is_some())
}

fn pid(beat: &Beat, id: Uuid) -> i64 {
    report_of(beat, id).and_then(|r| r.pid).expect("a pid")
}

async fn client(s: &MemcacheNodeSpec) -> McClient {
    McClient::connect(&Dialer::here(), &s.address, s.port)
        .await
        .unwrap_or_else(|e| panic!("connects to {}: {e}", s.address))
}

/// `stats settings` of the memcached of `s`.
async fn settings(s: &MemcacheNodeSpec) -> BTreeMap<String, String> {
    client(s)
        .await
        .stats(Some("settings"))
        .await
        .expect("stats settings")
}

/// Everything the discovery endpoint at `ep` answers to `config get cluster`.
async fn config_get_cluster(ep: &DiscoveryEndpointSpec) -> Vec<u8> {
    let mut c = TcpStream::connect((ep.address.as_str(), ep.port))
        .await
        .expect("connects to the discovery endpoint");
    c.write_all(b"config get cluster\r\nquit\r\n")
        .await
        .expect("writes");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out))
        .await
        .expect("the endpoint closes after quit")
        .expect("reads");
    out
}

fn start_agent(
    api: &FakeApi,
    data: &DataDir,
    bin: &std::path::Path,
) -> (CancellationToken, JoinHandle<anyhow::Result<()>>) {
    let redis = require_redis!();
    let mut cfg = agent_config(&api.url, "mc", data, &redis, "200ms");
    cfg.memcached = bin.to_path_buf();
    let cancel = CancellationToken::new();
    let agent = tokio::spawn(agent::run(cfg, cancel.clone()));
    (cancel, agent)
}

#[tokio::test]
async fn memcached_nodes_run_restart_change_adopt_stop_and_are_discovered() {
    let bin = require_memcached();
    let data = DataDir::new("memcached");
    let a = node(60, 64, 2);
    let b = node(61, 32, 1);
    let ep = endpoint(62, 1, &[&a, &b]);
    let api = FakeApi::start(config(1, &[&a, &b], vec![ep.clone()])).await;
    let (cancel, agent) = start_agent(&api, &data, &bin);

    // Both run, answer set/get on their own addresses with their memory and threads,
    // and are reported up with their pid and version.
    let beat = wait_beat(&api, 30, "both memcached nodes are up", 0, |b_| {
        up(b_, a.node_id) && up(b_, b.node_id)
    })
    .await;
    let reg = api.registrations();
    assert!(
        reg[0].engines.iter().any(|e| e == "MEMCACHE_1_6"),
        "the agent offers Memcached: {:?}",
        reg[0].engines
    );
    for (s, bytes, threads) in [(&a, 64 << 20, "2"), (&b, 32 << 20, "1")] {
        let r = report_of(&beat, s.node_id).expect("a report");
        assert!(
            r.engine_version
                .as_deref()
                .is_some_and(|v| v.starts_with("1.6")),
            "{r:?}"
        );
        assert_eq!(r.restarts, Some(0), "{r:?}");
        assert_eq!(r.error, None, "{r:?}");
        let mut c = client(s).await;
        c.set("greeting", s.address.as_bytes(), 0)
            .await
            .expect("set");
        assert_eq!(
            c.get("greeting").await.expect("get").as_deref(),
            Some(s.address.as_bytes())
        );
        let set = settings(s).await;
        assert_eq!(
            set.get("maxbytes").map(String::as_str),
            Some(bytes.to_string().as_str())
        );
        assert_eq!(set.get("num_threads").map(String::as_str), Some(threads));
        assert_eq!(set.get("maxconns").map(String::as_str), Some("256"));
        assert_eq!(set.get("udpport").map(String::as_str), Some("0"));
    }
    let beat = wait_beat(&api, 10, "a's item is counted", 0, |b_| {
        report_of(b_, a.node_id).is_some_and(|r| r.items == Some(1))
    })
    .await;
    let r = report_of(&beat, a.node_id).expect("a");
    assert!(r.used_memory_bytes.is_some_and(|n| n > 0), "{r:?}");

    // The discovery endpoint answers byte for byte.
    let nodes = format!("{0}|{0}|11211 {1}|{1}|11211", a.address, b.address);
    let payload = format!("1\n{nodes}\n");
    let want = format!("CONFIG cluster 0 {}\r\n{payload}\r\nEND\r\n", payload.len());
    assert_eq!(
        String::from_utf8(config_get_cluster(&ep).await).expect("utf-8"),
        want
    );

    // SIGKILL a: restarted (empty), with a new pid and restarts=1; b untouched.
    let (pid_a, pid_b) = (pid(&beat, a.node_id), pid(&beat, b.node_id));
    kill(Pid::from_raw(pid_a as i32), Signal::SIGKILL).expect("SIGKILL");
    let from = api.beats().len();
    let beat = wait_beat(&api, 20, "a is restarted", from, |b_| {
        up(b_, a.node_id) && pid(b_, a.node_id) != pid_a
    })
    .await;
    let r = report_of(&beat, a.node_id).expect("a");
    assert_eq!(r.restarts, Some(1), "{r:?}");
    assert_eq!(pid(&beat, b.node_id), pid_b, "b was not restarted");
    assert_eq!(
        client(&a).await.get("greeting").await.expect("get"),
        None,
        "a restarts empty"
    );

    // New parameters for a only (and a new discovery version): a restarts with them, b
    // does not.
    let pid_a = pid(&beat, a.node_id);
    let mut a2 = a.clone();
    a2.parameters = BTreeMap::from([
        ("max-item-size".to_string(), "2097152".to_string()),
        ("idle-timeout".to_string(), "600".to_string()),
    ]);
    let ep2 = endpoint(62, 2, &[&a2]);
    api.set_config(config(2, &[&a2, &b], vec![ep2.clone()]));
    let from = api.beats().len();
    let beat = wait_beat(&api, 20, "a runs its new parameters", from, |b_| {
        up(b_, a.node_id)
            && pid(b_, a.node_id) != pid_a
            && report_of(b_, a.node_id).is_some_and(|r| r.parameters == a2.parameters)
            && b_.body.applied_generation == 2
    })
    .await;
    assert_eq!(pid(&beat, b.node_id), pid_b, "b was not restarted");
    let set = settings(&a2).await;
    assert_eq!(
        set.get("item_size_max").map(String::as_str),
        Some("2097152")
    );
    assert_eq!(set.get("idle_timeout").map(String::as_str), Some("600"));
    assert_eq!(
        report_of(&beat, a.node_id).expect("a").restarts,
        Some(1),
        "a change is no crash"
    );
    let payload = format!("2\n{0}|{0}|11211\n", a.address);
    let want = format!("CONFIG cluster 0 {}\r\n{payload}\r\nEND\r\n", payload.len());
    wait_until(10, "the endpoint answers version 2", || {
        let ep2 = ep2.clone();
        async move {
            let seen = config_get_cluster(&ep2).await;
            seen.windows(3).any(|w| w == b"\n2\n")
        }
    })
    .await;
    let seen = String::from_utf8(config_get_cluster(&ep2).await).expect("utf-8");
    assert_eq!(seen, want);

    // The agent restarts: both memcached processes are adopted, not restarted.
    let (pid_a, pid_b) = (pid(&beat, a.node_id), pid(&beat, b.node_id));
    cancel.cancel();
    agent
        .await
        .expect("joins")
        .expect("the agent stops cleanly");
    assert!(
        is_memcached(pid_a as u32) && is_memcached(pid_b as u32),
        "the engines outlive the agent"
    );
    // b's record of its process is lost (as if the agent died between its start and
    // the record): its pid file and arguments are enough.
    let record = data
        .path()
        .join("memcache")
        .join(b.node_id.to_string())
        .join("engine");
    std::fs::remove_file(&record).expect("b's record exists");
    let from = api.beats().len();
    let (cancel, agent) = start_agent(&api, &data, &bin);
    let beat = wait_beat(&api, 30, "the new agent reports both", from, |b_| {
        up(b_, a.node_id) && up(b_, b.node_id)
    })
    .await;
    assert_eq!(pid(&beat, a.node_id), pid_a, "a adopted");
    assert_eq!(pid(&beat, b.node_id), pid_b, "b adopted");
    assert_eq!(
        report_of(&beat, a.node_id).expect("a").parameters,
        a2.parameters
    );

    // b leaves the config, and so does the discovery endpoint: b's memcached stops, the
    // endpoint stops listening.
    api.set_config(config(3, &[&a2], Vec::new()));
    let from = api.beats().len();
    let beat = wait_beat(&api, 20, "b is gone", from, |b_| {
        b_.body.applied_generation == 3 && report_of(b_, b.node_id).is_none()
    })
    .await;
    assert!(up(&beat, a.node_id));
    assert_eq!(pid(&beat, a.node_id), pid_a);
    wait_until(10, "b's memcached exits", || async move {
        !is_memcached(pid_b as u32)
    })
    .await;
    let ep_addr = ep.address.clone();
    wait_until(10, "the discovery endpoint stops listening", || {
        let ep_addr = ep_addr.clone();
        async move { TcpStream::connect((ep_addr.as_str(), PORT)).await.is_err() }
    })
    .await;
    cancel.cancel();
    agent
        .await
        .expect("joins")
        .expect("the agent stops cleanly");
}

#[tokio::test]
async fn a_node_that_cannot_start_reports_why_and_starts_once_it_can() {
    let bin = require_memcached();
    let data = DataDir::new("memcached-busy");
    let a = node(63, 64, 1);
    // Someone else holds the node's address and port.
    let squatter = std::net::TcpListener::bind((a.address.as_str(), PORT)).expect("binds");
    let api = FakeApi::start(config(1, &[&a], Vec::new())).await;
    let (cancel, agent) = start_agent(&api, &data, &bin);
    let beat = wait_beat(&api, 30, "a's failed start is reported", 0, |b_| {
        report_of(b_, a.node_id).is_some_and(|r| r.error.is_some())
    })
    .await;
    let r = report_of(&beat, a.node_id).expect("a");
    assert!(!r.process_up, "{r:?}");
    let error = r.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("Address already in use"),
        "memcached's own words: {error}"
    );
    drop(squatter);
    let from = api.beats().len();
    let beat = wait_beat(&api, 30, "a starts once the port is free", from, |b_| {
        up(b_, a.node_id)
    })
    .await;
    assert_eq!(report_of(&beat, a.node_id).expect("a").error, None);
    cancel.cancel();
    agent
        .await
        .expect("joins")
        .expect("the agent stops cleanly");
}
