use std::collections::HashMap;

use cacheplane_types::{NodeReport, NodeRole};
use prometheus_parse::{Sample, Scrape, Value};
use uuid::Uuid;

use super::*;
use crate::proxy::{BackendStatus, EndpointStatus};

const INSTANCE: &str = "projects/acme/locations/local/instances/cache-1";

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text parses")
}

fn value(s: &Sample) -> f64 {
    match s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{}: not a plain value: {other:?}", s.metric),
    }
}

/// The value of `metric` for the series whose labels include `labels`; exactly one.
fn one(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let hits: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(hits.len(), 1, "{metric} {labels:?}: {hits:?}");
    value(hits[0])
}

fn spec(id: Uuid) -> (Uuid, &'static str) {
    (id, INSTANCE)
}

fn primary(id: Uuid) -> NodeReport {
    NodeReport {
        node_id: id,
        process_up: true,
        role: Some(NodeRole::Primary),
        replication_offset: Some(1234),
        lag_bytes: Some(0),
        used_memory_bytes: Some(1 << 20),
        maxmemory_bytes: Some(64 << 20),
        connected_clients: Some(3),
        commands_processed: Some(77),
        keyspace_hits: Some(5),
        keyspace_misses: Some(6),
        evicted_keys: Some(2),
        restarts: Some(1),
        ..NodeReport::default()
    }
}

#[test]
fn a_snapshot_renders_as_prometheus_text_with_its_labels_and_types() {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let down = NodeReport {
        node_id: b,
        restarts: Some(0),
        ..NodeReport::default()
    };
    let endpoint = EndpointStatus {
        instance: INSTANCE.into(),
        address: "127.0.0.9".into(),
        port: 6379,
        listening: true,
        kernel: false,
        connections: 2,
        refused: 4,
        backends: vec![BackendStatus {
            address: "127.0.0.10".into(),
            port: 6379,
            healthy: true,
            connections: 2,
        }],
    };
    let metrics = Metrics::new();
    metrics.publish(Snapshot::labelled(
        [spec(a), spec(b)],
        &[primary(a), down],
        vec![endpoint],
    ));
    let text = metrics.render();
    let scrape = parse(&text);
    let node = a.to_string();
    let of_a = [
        ("project", "acme"),
        ("location", "local"),
        ("instance_id", "cache-1"),
        ("node", node.as_str()),
    ];
    assert_eq!(one(&scrape, "cacheplane_node_up", &of_a), 1.0);
    assert_eq!(
        one(&scrape, "cacheplane_node_memory_used_bytes", &of_a),
        1_048_576.0
    );
    assert_eq!(
        one(&scrape, "cacheplane_node_memory_max_bytes", &of_a),
        67_108_864.0
    );
    assert_eq!(
        one(&scrape, "cacheplane_node_connected_clients", &of_a),
        3.0
    );
    assert_eq!(
        one(&scrape, "cacheplane_node_commands_processed_total", &of_a),
        77.0
    );
    assert_eq!(
        one(&scrape, "cacheplane_node_keyspace_hits_total", &of_a),
        5.0
    );
    assert_eq!(
        one(&scrape, "cacheplane_node_keyspace_misses_total", &of_a),
        6.0
    );
    assert_eq!(
        one(&scrape, "cacheplane_node_evicted_keys_total", &of_a),
        2.0
    );
    assert_eq!(
        one(&scrape, "cacheplane_node_replication_offset_bytes", &of_a),
        1234.0
    );
    assert_eq!(
        one(&scrape, "cacheplane_node_replication_lag_bytes", &of_a),
        0.0
    );
    assert_eq!(one(&scrape, "cacheplane_node_restarts_total", &of_a), 1.0);
    let with_role = |r| {
        let mut l = of_a.to_vec();
        l.push(("role", r));
        one(&scrape, "cacheplane_node_role", &l)
    };
    assert_eq!((with_role("PRIMARY"), with_role("REPLICA")), (1.0, 0.0));
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == "cacheplane_node_commands_processed_total")
        .expect("a sample");
    assert!(matches!(sample.value, Value::Counter(_)), "{sample:?}");
    assert_eq!(
        scrape.docs.get("cacheplane_node_up").map(String::as_str),
        Some("1 when the node's engine runs and answered the agent's last INFO, else 0")
    );

    // A node that is down: up 0 and its restarts, nothing it cannot know.
    let node_b = b.to_string();
    let of_b = [("node", node_b.as_str())];
    assert_eq!(one(&scrape, "cacheplane_node_up", &of_b), 0.0);
    assert_eq!(one(&scrape, "cacheplane_node_restarts_total", &of_b), 0.0);
    let b_series: Vec<&str> = scrape
        .samples
        .iter()
        .filter(|s| s.labels.get("node") == Some(&node_b))
        .map(|s| s.metric.as_str())
        .collect();
    assert_eq!(
        b_series,
        ["cacheplane_node_up", "cacheplane_node_restarts_total"],
        "{text}"
    );

    let of_replica = [
        ("instance_id", "cache-1"),
        ("endpoint", "127.0.0.9:6379"),
        ("replica", "127.0.0.10:6379"),
    ];
    assert_eq!(
        one(&scrape, "cacheplane_read_endpoint_connections", &of_replica),
        2.0
    );
    assert_eq!(
        one(
            &scrape,
            "cacheplane_read_endpoint_replica_healthy",
            &of_replica
        ),
        1.0
    );
    let of_endpoint = [("endpoint", "127.0.0.9:6379")];
    assert_eq!(
        one(&scrape, "cacheplane_read_endpoint_listening", &of_endpoint),
        1.0
    );
    assert_eq!(
        one(
            &scrape,
            "cacheplane_read_endpoint_refused_connections_total",
            &of_endpoint
        ),
        4.0
    );
    assert!(
        !text.contains("exported_instance") && !text.contains("instance=\""),
        "{text}"
    );
}

#[test]
fn a_node_that_went_leaves_no_series_and_nothing_renders_before_a_pass() {
    let metrics = Metrics::new();
    assert!(parse(&metrics.render()).samples.is_empty());
    let a = Uuid::new_v4();
    metrics.publish(Snapshot::labelled([spec(a)], &[primary(a)], Vec::new()));
    assert!(!parse(&metrics.render()).samples.is_empty());
    metrics.publish(Snapshot::labelled([], &[], Vec::new()));
    assert!(parse(&metrics.render()).samples.is_empty());
}

#[test]
fn the_kernel_path_counts_no_connections_so_shows_none() {
    let endpoint = EndpointStatus {
        instance: INSTANCE.into(),
        address: "10.0.0.9".into(),
        port: 6379,
        listening: true,
        kernel: true,
        connections: 0,
        refused: 0,
        backends: vec![BackendStatus {
            address: "10.0.0.10".into(),
            port: 6379,
            healthy: false,
            connections: 0,
        }],
    };
    let metrics = Metrics::new();
    metrics.publish(Snapshot::labelled([], &[], vec![endpoint]));
    let scrape = parse(&metrics.render());
    let names: HashMap<&str, f64> = scrape
        .samples
        .iter()
        .map(|s| (s.metric.as_str(), value(s)))
        .collect();
    assert_eq!(
        names.get("cacheplane_read_endpoint_replica_healthy"),
        Some(&0.0)
    );
    assert_eq!(names.get("cacheplane_read_endpoint_listening"), Some(&1.0));
    assert!(
        !names.contains_key("cacheplane_read_endpoint_connections"),
        "{names:?}"
    );
}

#[test]
fn owners_come_from_the_instance_name() {
    assert_eq!(
        Owner::of(INSTANCE),
        Owner {
            project: "acme".into(),
            location: "local".into(),
            instance_id: "cache-1".into(),
        }
    );
    assert_eq!(Owner::of("odd").instance_id, "odd");
}

#[test]
fn memcached_nodes_render_with_their_instance() {
    let id = Uuid::new_v4();
    let spec = cacheplane_types::MemcacheNodeSpec {
        node_id: id,
        instance: "projects/acme/locations/local/memcacheInstances/mc-1".into(),
        memcache_version: "MEMCACHE_1_6".into(),
        address: "127.0.0.20".into(),
        port: 11211,
        memory_mb: 1024,
        threads: 1,
        max_connections: 1024,
        parameters: Default::default(),
        network: None,
    };
    let report = cacheplane_types::MemcacheNodeReport {
        node_id: id,
        process_up: true,
        used_memory_bytes: Some(4096),
        connected_clients: Some(2),
        items: Some(9),
        restarts: Some(1),
        ..Default::default()
    };
    let m = Metrics::new();
    m.publish(Snapshot::default().with_memcache([&spec], &[report]));
    let scrape = parse(&m.render());
    let labels = [
        ("instance_id", "mc-1"),
        ("project", "acme"),
        ("node", &*id.to_string()),
    ];
    assert_eq!(one(&scrape, "cacheplane_memcache_node_up", &labels), 1.0);
    assert_eq!(
        one(
            &scrape,
            "cacheplane_memcache_node_memory_used_bytes",
            &labels
        ),
        4096.0
    );
    assert_eq!(
        one(
            &scrape,
            "cacheplane_memcache_node_connected_clients",
            &labels
        ),
        2.0
    );
    assert_eq!(one(&scrape, "cacheplane_memcache_node_items", &labels), 9.0);
    assert_eq!(
        one(&scrape, "cacheplane_memcache_node_restarts_total", &labels),
        1.0
    );
}
