//! Renders a [`Snapshot`] as metric families at scrape time: one series per node (or
//! per read endpoint and replica) present in the snapshot, so a node that went leaves
//! no stale series behind. The names, labels and meanings are listed in
//! docs/metrics.md#node-agent; keep the two in step.

use std::fmt;
use std::sync::{Arc, Mutex};

use cacheplane_types::{MemcacheNodeReport, NodeReport, NodeRole};
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::{McSample, NodeSample, Owner, Snapshot};
use crate::proxy::EndpointStatus;

/// The labels of one series, in order.
type Labels = Vec<(&'static str, String)>;

/// Gauge or counter. Counters are named without `_total`: the encoder adds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

/// A per-node metric read straight off its report (`R`: a Redis or memcached node's).
struct Metric<R> {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    value: fn(&R) -> Option<i64>,
}

/// A metric of a Redis node.
type NodeMetric = Metric<NodeReport>;

/// The metrics of a memcached node.
const MEMCACHE_METRICS: &[Metric<MemcacheNodeReport>] = &[
    Metric {
        name: "cacheplane_memcache_node_up",
        help: "1 when the memcached node runs and answered the agent's last version/stats, else 0",
        kind: Kind::Gauge,
        value: |r| Some(i64::from(r.process_up)),
    },
    Metric {
        name: "cacheplane_memcache_node_memory_used_bytes",
        help: "Bytes the memcached node's items use (stats bytes)",
        kind: Kind::Gauge,
        value: |r| r.used_memory_bytes,
    },
    Metric {
        name: "cacheplane_memcache_node_connected_clients",
        help: "Client connections to the memcached node, the agent's own left out",
        kind: Kind::Gauge,
        value: |r| r.connected_clients,
    },
    Metric {
        name: "cacheplane_memcache_node_items",
        help: "Items the memcached node holds (stats curr_items)",
        kind: Kind::Gauge,
        value: |r| r.items,
    },
    Metric {
        name: "cacheplane_memcache_node_restarts",
        help: "Times the agent restarted the memcached node after it died, since the agent started",
        kind: Kind::Counter,
        value: |r| r.restarts,
    },
];

/// The per-node metrics other than the role (which has a label of its own).
const NODE_METRICS: &[NodeMetric] = &[
    Metric {
        name: "cacheplane_node_up",
        help: "1 when the node's engine runs and answered the agent's last INFO, else 0",
        kind: Kind::Gauge,
        value: |r| Some(i64::from(r.process_up && r.unresponsive_seconds.is_none())),
    },
    Metric {
        name: "cacheplane_node_unresponsive_seconds",
        help: "For an engine that runs but does not answer: seconds since it last answered",
        kind: Kind::Gauge,
        value: |r| r.unresponsive_seconds,
    },
    Metric {
        name: "cacheplane_node_memory_used_bytes",
        help: "Memory used by the engine (INFO used_memory)",
        kind: Kind::Gauge,
        value: |r| r.used_memory_bytes,
    },
    Metric {
        name: "cacheplane_node_memory_max_bytes",
        help: "The engine's maxmemory (0: no limit)",
        kind: Kind::Gauge,
        value: |r| r.maxmemory_bytes,
    },
    Metric {
        name: "cacheplane_node_connected_clients",
        help: "Client connections to the engine, the agent's own included",
        kind: Kind::Gauge,
        value: |r| r.connected_clients,
    },
    Metric {
        name: "cacheplane_node_commands_processed",
        help: "Commands the engine processed since it started",
        kind: Kind::Counter,
        value: |r| r.commands_processed,
    },
    Metric {
        name: "cacheplane_node_keyspace_hits",
        help: "Key lookups that found their key, since the engine started",
        kind: Kind::Counter,
        value: |r| r.keyspace_hits,
    },
    Metric {
        name: "cacheplane_node_keyspace_misses",
        help: "Key lookups that found no key, since the engine started",
        kind: Kind::Counter,
        value: |r| r.keyspace_misses,
    },
    Metric {
        name: "cacheplane_node_evicted_keys",
        help: "Keys evicted to stay within maxmemory, since the engine started",
        kind: Kind::Counter,
        value: |r| r.evicted_keys,
    },
    Metric {
        name: "cacheplane_node_replication_offset_bytes",
        help: "The node's replication offset: a primary's own, or what a replica processed",
        kind: Kind::Gauge,
        value: |r| r.replication_offset,
    },
    Metric {
        name: "cacheplane_node_replication_lag_bytes",
        help: "For a linked replica: bytes behind its primary (0 for a primary)",
        kind: Kind::Gauge,
        value: |r| r.lag_bytes,
    },
    Metric {
        name: "cacheplane_node_replica_link_up",
        help: "For a replica: 1 when its link to the primary is up, else 0",
        kind: Kind::Gauge,
        value: |r| r.master_link_up.map(i64::from),
    },
    Metric {
        name: "cacheplane_node_restarts",
        help: "Times the agent restarted the node's engine after it died, since the agent started",
        kind: Kind::Counter,
        value: |r| r.restarts,
    },
];

/// Renders the latest snapshot on each scrape.
#[derive(Debug)]
pub(super) struct Collector {
    latest: Arc<Mutex<Snapshot>>,
}

impl Collector {
    pub(super) fn new(latest: Arc<Mutex<Snapshot>>) -> Self {
        Collector { latest }
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        // Encoding is a few string writes: the lock is held for microseconds.
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        encode_nodes(&mut encoder, &latest.nodes)?;
        encode_memcache(&mut encoder, &latest.memcache)?;
        encode_endpoints(&mut encoder, &latest.endpoints)
    }
}

fn owner_labels(o: &Owner) -> Labels {
    vec![
        ("project", o.project.clone()),
        ("location", o.location.clone()),
        ("instance_id", o.instance_id.clone()),
    ]
}

fn node_labels(n: &NodeSample) -> Labels {
    let mut l = owner_labels(&n.owner);
    l.push(("node", n.report.node_id.to_string()));
    l
}

fn encode_nodes(encoder: &mut DescriptorEncoder, nodes: &[NodeSample]) -> fmt::Result {
    for m in NODE_METRICS {
        let samples = nodes
            .iter()
            .filter_map(|n| Some((node_labels(n), (m.value)(&n.report)?)))
            .collect();
        family(encoder, m.name, m.help, m.kind, samples)?;
    }
    // One series per possible role, 1 for the one the engine reports (none while it
    // does not answer): a role change moves the 1 without ending either series.
    let roles = nodes
        .iter()
        .filter_map(|n| Some((n, n.report.role?)))
        .flat_map(|(n, role)| {
            [NodeRole::Primary, NodeRole::Replica].map(|r| {
                let mut l = node_labels(n);
                l.push(("role", r.as_str().to_string()));
                (l, i64::from(r == role))
            })
        })
        .collect();
    family(
        encoder,
        "cacheplane_node_role",
        "1 for the role the node's engine reports (PRIMARY or REPLICA), 0 for the other",
        Kind::Gauge,
        roles,
    )
}

fn encode_memcache(encoder: &mut DescriptorEncoder, nodes: &[McSample]) -> fmt::Result {
    for m in MEMCACHE_METRICS {
        let samples = nodes
            .iter()
            .filter_map(|n| {
                let mut l = owner_labels(&n.owner);
                l.push(("node", n.report.node_id.to_string()));
                Some((l, (m.value)(&n.report)?))
            })
            .collect();
        family(encoder, m.name, m.help, m.kind, samples)?;
    }
    Ok(())
}

fn encode_endpoints(
    encoder: &mut DescriptorEncoder,
    endpoints: &[(Owner, EndpointStatus)],
) -> fmt::Result {
    let endpoint_labels = |o: &Owner, e: &EndpointStatus| {
        let mut l = owner_labels(o);
        l.push(("endpoint", format!("{}:{}", e.address, e.port)));
        l
    };
    let per_replica = |value: fn(&crate::proxy::BackendStatus) -> i64, userspace_only: bool| {
        endpoints
            .iter()
            .filter(|(_, e)| !(userspace_only && e.kernel))
            .flat_map(|(o, e)| {
                e.backends.iter().map(move |b| {
                    let mut l = endpoint_labels(o, e);
                    l.push(("replica", format!("{}:{}", b.address, b.port)));
                    (l, value(b))
                })
            })
            .collect::<Vec<_>>()
    };
    family(
        encoder,
        "cacheplane_read_endpoint_listening",
        "1 when the read endpoint listens, 0 while its address cannot be bound",
        Kind::Gauge,
        endpoints
            .iter()
            .map(|(o, e)| (endpoint_labels(o, e), i64::from(e.listening)))
            .collect(),
    )?;
    family(
        encoder,
        "cacheplane_read_endpoint_replica_healthy",
        "1 when the replica takes new read endpoint connections (linked, not in a full sync)",
        Kind::Gauge,
        per_replica(|b| i64::from(b.healthy), false),
    )?;
    family(
        encoder,
        "cacheplane_read_endpoint_connections",
        "Client connections the read endpoint relays to the replica now (loopback mode; \
         the kernel path of netns mode counts none)",
        Kind::Gauge,
        per_replica(|b| i64::try_from(b.connections).unwrap_or(i64::MAX), true),
    )?;
    family(
        encoder,
        "cacheplane_read_endpoint_refused_connections",
        "Client connections refused at the read endpoint's connection cap",
        Kind::Counter,
        endpoints
            .iter()
            .filter(|(_, e)| !e.kernel)
            .map(|(o, e)| {
                let n = i64::try_from(e.refused).unwrap_or(i64::MAX);
                (endpoint_labels(o, e), n)
            })
            .collect(),
    )
}

/// One metric family; none at all when it has no series.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: Kind,
    samples: Vec<(Labels, i64)>,
) -> fmt::Result {
    if samples.is_empty() {
        return Ok(());
    }
    let metric_type = match kind {
        Kind::Gauge => MetricType::Gauge,
        Kind::Counter => MetricType::Counter,
    };
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in &samples {
        let mut series = metric.encode_family(labels)?;
        match kind {
            Kind::Gauge => series.encode_gauge(value)?,
            // Engine counters are never negative; a nonsense reading shows as 0.
            Kind::Counter => series
                .encode_counter::<NoLabelSet, _, u64>(&u64::try_from(*value).unwrap_or(0), None)?,
        }
    }
    Ok(())
}
