//! `/metrics` of a real agent (`--metrics-address 127.0.0.1:0`) over real
//! `redis-server`s, against a stand-in API: what it serves parses as Prometheus text
//! (with a Prometheus text parser), and the figures move when they should: commands and
//! keyspace hits and misses with a client's commands, evictions past maxmemory, restarts
//! and `up` with a SIGKILLed engine, a read endpoint's connections per replica with its
//! clients. The heartbeat carries the same counters. Fails when `redis-server` is not
//! installed.

mod common;

use std::path::Path;
use std::time::Duration;

use cacheplane_node_agent::agent;
use cacheplane_node_agent::metrics::serve::ADDRESS_FILE;
use cacheplane_node_agent::redis::client::Client;
use cacheplane_testkit::wait::not_yet;
use cacheplane_types::{HostConfig, NodeReport, NodeRole, NodeSpec, ReadEndpointSpec};
use common::fake_api::FakeApi;
use common::{address, agent_config, linked, spec, tenant_login, wait_until, DataDir};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use prometheus_parse::{Sample, Scrape, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// An agent of host `host` over `nodes` with its metrics on a free port; answers the
/// stand-in API, the agent's task, its cancellation and the metrics URL.
async fn start_agent(
    host: &str,
    data: &DataDir,
    bin: &Path,
    nodes: Vec<NodeSpec>,
) -> (
    FakeApi,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    CancellationToken,
    String,
) {
    let api = FakeApi::start(HostConfig {
        connectors: Vec::new(),
        host: format!("hosts/{host}"),
        generation: 1,
        nodes,
        memcache_nodes: Vec::new(),
        discovery_endpoints: Vec::new(),
    })
    .await;
    let cancel = CancellationToken::new();
    let cfg = cacheplane_node_agent::config::Config {
        metrics_address: Some("127.0.0.1:0".parse().expect("an address")),
        ..agent_config(&api.url, host, data, bin, "200ms")
    };
    let task = tokio::spawn(agent::run(cfg, cancel.clone()));
    let file = data.path().join(ADDRESS_FILE);
    wait_until(10, "the agent writes its metrics address", || {
        let there = file.exists();
        async move { there }
    })
    .await;
    let bound = std::fs::read_to_string(&file).expect("reads the metrics address");
    (
        api,
        task,
        cancel,
        format!("http://{}/metrics", bound.trim()),
    )
}

/// `GET url`, parsed by a Prometheus text parser.
async fn scrape(url: &str) -> Scrape {
    let resp = reqwest::get(url).await.expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.expect("a body");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"))
}

/// The value of `metric` in the series of node `node` (and `more` labels), if any.
fn of_node(s: &Scrape, metric: &str, node: Uuid, more: &[(&str, &str)]) -> Option<f64> {
    let node = node.to_string();
    let hits: Vec<&Sample> = s
        .samples
        .iter()
        .filter(|x| x.metric == metric && x.labels.get("node") == Some(node.as_str()))
        .filter(|x| more.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .collect();
    assert!(hits.len() <= 1, "{metric} of {node}: {hits:?}");
    hits.first().map(|x| value(x))
}

fn value(s: &Sample) -> f64 {
    match s.value {
        Value::Counter(v) | Value::Gauge(v) => v,
        ref other => panic!("{}: not a counter or gauge: {other:?}", s.metric),
    }
}

/// Scrapes until `check` holds for a whole scrape; answers that scrape.
async fn wait_scrape(url: &str, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let check = &check;
    cacheplane_testkit::wait_until(
        what,
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async move {
            let s = scrape(url).await;
            match check(&s) {
                true => Ok(s),
                false => not_yet::<Scrape, String>(format!("{:?}", s.samples)),
            }
        },
    )
    .await
}

/// Scrapes until `check` holds for node `node`'s `metric`; answers its value.
async fn wait_metric(
    url: &str,
    metric: &str,
    node: Uuid,
    what: &str,
    check: impl Fn(f64) -> bool,
) -> f64 {
    let check = &check;
    cacheplane_testkit::wait_until(
        what,
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async move {
            match of_node(&scrape(url).await, metric, node, &[]) {
                Some(v) if check(v) => Ok(v),
                v => not_yet::<f64, String>(format!("{metric} is {v:?}")),
            }
        },
    )
    .await
}

/// A connection to `node` as a tenant would make it (the AUTH string).
async fn tenant(node: &NodeSpec) -> Client {
    Client::connect(&node.address, node.port, Some(&tenant_login()))
        .await
        .unwrap_or_else(|e| panic!("connects to {}: {e}", node.address))
}

/// The latest heartbeat's report of `node`.
fn reported(api: &FakeApi, node: Uuid) -> Option<NodeReport> {
    api.beats()
        .iter()
        .rev()
        .find_map(|b| b.body.nodes.iter().find(|r| r.node_id == node).cloned())
}

#[tokio::test]
async fn a_nodes_figures_move_with_its_commands_evictions_and_restarts() {
    let bin = require_redis!();
    let data = DataDir::new("metrics-basic");
    let node = NodeSpec {
        restart_in_place: true,
        maxmemory_bytes: 16 << 20,
        ..spec(110, NodeRole::Primary, None)
    };
    let id = node.node_id;
    let (api, task, cancel, url) = start_agent("metrics", &data, &bin, vec![node.clone()]).await;

    // Up, a primary, within its maxmemory: the spec's, as the engine runs it.
    wait_metric(&url, "cacheplane_node_up", id, "the node is up", |v| {
        v == 1.0
    })
    .await;
    let s = scrape(&url).await;
    assert_eq!(
        of_node(&s, "cacheplane_node_memory_max_bytes", id, &[]),
        Some(16_777_216.0)
    );
    let used = of_node(&s, "cacheplane_node_memory_used_bytes", id, &[]).expect("used memory");
    assert!(used > 0.0 && used < 16_777_216.0, "{used}");
    assert_eq!(
        of_node(&s, "cacheplane_node_role", id, &[("role", "PRIMARY")]),
        Some(1.0)
    );
    assert_eq!(
        of_node(&s, "cacheplane_node_role", id, &[("role", "REPLICA")]),
        Some(0.0)
    );
    assert_eq!(
        of_node(&s, "cacheplane_node_restarts_total", id, &[]),
        Some(0.0)
    );
    let sample = s
        .samples
        .iter()
        .find(|x| x.metric == "cacheplane_node_up")
        .expect("up");
    for (k, v) in [
        ("project", "p"),
        ("location", "local"),
        ("instance_id", "it"),
    ] {
        assert_eq!(sample.labels.get(k), Some(v), "{sample:?}");
    }

    // 200 SETs, 5 hits and 3 misses from a tenant's client.
    let commands =
        of_node(&s, "cacheplane_node_commands_processed_total", id, &[]).expect("commands");
    let hits = of_node(&s, "cacheplane_node_keyspace_hits_total", id, &[]).expect("hits");
    let misses = of_node(&s, "cacheplane_node_keyspace_misses_total", id, &[]).expect("misses");
    let mut c = tenant(&node).await;
    for i in 0..200 {
        c.call(&["SET", &format!("k{i}"), "v"]).await.expect("SET");
    }
    for _ in 0..5 {
        c.call(&["GET", "k1"]).await.expect("GET");
    }
    for _ in 0..3 {
        c.call(&["GET", "absent"]).await.expect("GET");
    }
    wait_metric(
        &url,
        "cacheplane_node_commands_processed_total",
        id,
        "the SETs are counted",
        |v| v >= commands + 208.0,
    )
    .await;
    let s = scrape(&url).await;
    assert_eq!(
        of_node(&s, "cacheplane_node_keyspace_hits_total", id, &[]),
        Some(hits + 5.0)
    );
    assert_eq!(
        of_node(&s, "cacheplane_node_keyspace_misses_total", id, &[]),
        Some(misses + 3.0)
    );
    assert_eq!(
        of_node(&s, "cacheplane_node_evicted_keys_total", id, &[]),
        Some(0.0)
    );

    // 24 MiB into 16 MiB under allkeys-lru: keys are evicted, memory stays near maxmemory.
    let big = "x".repeat(128 << 10);
    for i in 0..192 {
        c.call(&["SET", &format!("big{i}"), &big])
            .await
            .expect("SET big");
    }
    let evicted = wait_metric(
        &url,
        "cacheplane_node_evicted_keys_total",
        id,
        "evictions are counted",
        |v| v > 0.0,
    )
    .await;
    let s = scrape(&url).await;
    let used = of_node(&s, "cacheplane_node_memory_used_bytes", id, &[]).expect("used");
    assert!(
        used > 8_000_000.0 && used < 1.2 * 16_777_216.0,
        "used {used} of 16 MiB"
    );
    drop(c);

    // The heartbeat carries the same counters.
    wait_until(10, "a heartbeat carries the evictions", || {
        let r = reported(&api, id);
        async move { r.is_some_and(|r| r.evicted_keys.is_some_and(|e| e as f64 >= evicted)) }
    })
    .await;
    let r = reported(&api, id).expect("a report");
    assert_eq!(r.maxmemory_bytes, Some(16 << 20), "{r:?}");
    assert!(
        r.commands_processed
            .is_some_and(|n| n as f64 > commands + 200.0),
        "{r:?}"
    );
    assert!(
        r.keyspace_hits.is_some() && r.keyspace_misses.is_some(),
        "{r:?}"
    );
    assert_eq!(r.restarts, Some(0), "{r:?}");

    // SIGKILL: the agent restarts the engine (a BASIC node comes back empty) and counts it.
    let pid = r.pid.expect("a pid");
    kill(
        Pid::from_raw(i32::try_from(pid).expect("pid")),
        Signal::SIGKILL,
    )
    .expect("SIGKILL");
    wait_metric(
        &url,
        "cacheplane_node_restarts_total",
        id,
        "the restart is counted",
        |v| v == 1.0,
    )
    .await;
    wait_metric(
        &url,
        "cacheplane_node_up",
        id,
        "the node is up again",
        |v| v == 1.0,
    )
    .await;
    let s = scrape(&url).await;
    // A new engine: its own counters start again.
    let again = of_node(&s, "cacheplane_node_commands_processed_total", id, &[]).expect("commands");
    assert!(again < commands + 200.0, "{again}");
    wait_until(10, "a heartbeat carries the restart", || {
        let r = reported(&api, id);
        async move { r.is_some_and(|r| r.restarts == Some(1) && r.process_up) }
    })
    .await;

    // Only /metrics is served.
    let base = url.trim_end_matches("/metrics");
    let r = reqwest::get(format!("{base}/")).await.expect("GET /");
    assert_eq!(r.status(), 404);
    let r = reqwest::Client::new()
        .post(&url)
        .send()
        .await
        .expect("POST /metrics");
    assert_eq!(r.status(), 405);

    cancel.cancel();
    task.await.expect("joins").expect("the agent stops cleanly");
}

#[tokio::test]
async fn a_read_endpoint_counts_its_connections_per_replica() {
    let bin = require_redis!();
    let data = DataDir::new("metrics-endpoint");
    let primary = spec(111, NodeRole::Primary, None);
    let replica = spec(112, NodeRole::Replica, Some(&primary));
    let endpoint = address(113);
    let primary = NodeSpec {
        read_endpoint: Some(ReadEndpointSpec {
            address: endpoint.clone(),
            port: 6379,
            replicas: vec![replica.address.clone()],
        }),
        ..primary
    };
    let (_api, task, cancel, url) = start_agent(
        "metrics-ep",
        &data,
        &bin,
        vec![primary.clone(), replica.clone()],
    )
    .await;
    wait_until(20, "the replica links up", || linked(&replica.address)).await;
    let labels = [
        ("endpoint", format!("{endpoint}:6379")),
        ("replica", format!("{}:6379", replica.address)),
    ];
    let per_replica = |s: &Scrape, metric: &str| -> Option<f64> {
        let hits: Vec<&Sample> = s
            .samples
            .iter()
            .filter(|x| x.metric == metric)
            .filter(|x| {
                labels
                    .iter()
                    .all(|(k, v)| x.labels.get(k) == Some(v.as_str()))
            })
            .collect();
        assert!(hits.len() <= 1, "{hits:?}");
        hits.first().map(|x| value(x))
    };
    let connections_are = |want: f64| {
        move |s: &Scrape| {
            per_replica(s, "cacheplane_read_endpoint_replica_healthy") == Some(1.0)
                && per_replica(s, "cacheplane_read_endpoint_connections") == Some(want)
        }
    };
    // The replica linked, healthy behind the endpoint, with no connection yet; both roles
    // as the engines report them.
    let s = wait_scrape(&url, "the replica is linked and healthy", |s| {
        connections_are(0.0)(s)
            && of_node(s, "cacheplane_node_replica_link_up", replica.node_id, &[]) == Some(1.0)
    })
    .await;
    let role = |node: &NodeSpec, role| {
        of_node(&s, "cacheplane_node_role", node.node_id, &[("role", role)])
    };
    assert_eq!(role(&replica, "REPLICA"), Some(1.0));
    assert_eq!(role(&replica, "PRIMARY"), Some(0.0));
    assert_eq!(role(&primary, "PRIMARY"), Some(1.0));
    assert!(of_node(
        &s,
        "cacheplane_node_replication_lag_bytes",
        replica.node_id,
        &[]
    )
    .is_some());

    // Three clients through the endpoint: three connections on the replica.
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(&endpoint, 6379, Some(&tenant_login()))
            .await
            .expect("connects through the read endpoint");
        c.ping().await.expect("PING");
        clients.push(c);
    }
    wait_scrape(
        &url,
        "the endpoint's three connections are counted",
        connections_are(3.0),
    )
    .await;
    drop(clients);
    wait_scrape(
        &url,
        "closed connections are no longer counted",
        connections_are(0.0),
    )
    .await;

    cancel.cancel();
    task.await.expect("joins").expect("the agent stops cleanly");
}

#[tokio::test]
async fn an_address_that_cannot_be_bound_fails_the_start() {
    let bin = require_redis!();
    let data = DataDir::new("metrics-taken");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let api = FakeApi::start(HostConfig {
        connectors: Vec::new(),
        host: "hosts/metrics-taken".into(),
        generation: 1,
        nodes: Vec::new(),
        memcache_nodes: Vec::new(),
        discovery_endpoints: Vec::new(),
    })
    .await;
    let cfg = cacheplane_node_agent::config::Config {
        metrics_address: Some(taken.local_addr().expect("an address")),
        ..agent_config(&api.url, "metrics-taken", &data, &bin, "200ms")
    };
    let run = tokio::time::timeout(
        Duration::from_secs(10),
        agent::run(cfg, CancellationToken::new()),
    )
    .await
    .expect("fails at once");
    let err = format!("{:#}", run.expect_err("the start fails"));
    assert!(err.contains("--metrics-address"), "{err}");
}

#[tokio::test]
async fn the_agent_program_serves_metrics_with_the_flag_and_says_where() {
    let _bin = require_redis!();
    let node = NodeSpec {
        restart_in_place: true,
        ..spec(120, NodeRole::Primary, None)
    };
    let api = FakeApi::start(HostConfig {
        connectors: Vec::new(),
        host: "hosts/metrics-bin".into(),
        generation: 1,
        nodes: vec![node.clone()],
        memcache_nodes: Vec::new(),
        discovery_endpoints: Vec::new(),
    })
    .await;
    // The real `cacheplane-node-agent` program, `--metrics-address 127.0.0.1:0`.
    let agent = cacheplane_testkit::agent::Agent::spawn(
        cacheplane_testkit::agent::AgentOptions::for_tests(
            &api.url,
            "t",
            "metrics-bin",
            "z",
            1 << 30,
        )
        .with_metrics(),
    )
    .expect("starts the agent");
    let url = cacheplane_testkit::wait_until(
        "the agent says where its metrics are",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let url = agent.metrics_url();
            async move {
                url.ok_or(cacheplane_testkit::Poll::<String>::NotYet(
                    "no file yet".into(),
                ))
            }
        },
    )
    .await;
    let log = std::fs::read_to_string(&agent.log_path).expect("reads the log");
    let port = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/metrics");
    assert!(
        log.lines()
            .any(|l| l.contains("metrics listening") && l.contains(&format!("127.0.0.1:{port}"))),
        "{log}"
    );
    wait_metric(
        &url,
        "cacheplane_node_up",
        node.node_id,
        "the node is up",
        |v| v == 1.0,
    )
    .await;
}
