//! From rows to the wire `Instance`, including each node's state as the control plane
//! sees it.

use std::time::Duration;

use cacheplane_types::{
    Instance, InstanceNodeMetrics, Node, NodeMetrics, NodeRole, ReadReplicasMode,
};
use chrono::{DateTime, Utc};

use crate::db::instances::InstanceRow;
use crate::db::nodes::NodeRow;
use crate::instances::node_state::node_state;

/// The etag of an instance version.
pub fn etag(version: i64) -> String {
    format!("v{version}")
}

/// The read replicas mode of an instance.
pub fn read_replicas_mode(inst: &InstanceRow) -> ReadReplicasMode {
    if inst.read_replicas_enabled {
        ReadReplicasMode::ReadReplicasEnabled
    } else {
        ReadReplicasMode::ReadReplicasDisabled
    }
}

/// The wire form of an instance with its (non-removed) nodes.
pub fn to_wire(
    inst: &InstanceRow,
    nodes: &[NodeRow],
    now: DateTime<Utc>,
    host_timeout: Duration,
) -> Instance {
    let port = u16::try_from(inst.port).unwrap_or(6379);
    Instance {
        name: inst.full_name(),
        display_name: inst.display_name.clone(),
        tier: inst.tier,
        memory_size_gb: inst.memory_size_gb,
        replica_count: inst.replica_count,
        read_replicas_mode: read_replicas_mode(inst),
        location_id: inst.location_id.clone(),
        alternative_location_id: inst.alternative_location_id.clone(),
        current_location_id: nodes
            .iter()
            .find(|n| n.instance_id == inst.id && n.role == NodeRole::Primary && !n.removing)
            .map_or_else(|| inst.location_id.clone(), |n| n.zone_id.clone()),
        redis_version: inst.redis_version.clone(),
        redis_configs: inst.redis_configs.0.clone(),
        authorized_network: format!(
            "projects/{}/networks/{}",
            inst.project_id, inst.network_name
        ),
        reserved_ip_range: inst.range().map(|r| r.to_string()).unwrap_or_default(),
        secondary_ip_range: inst.secondary_range.map(|r| r.to_string()),
        host: inst.endpoint().map(|a| a.to_string()).unwrap_or_default(),
        port,
        read_endpoint: inst.read_endpoint().map(|a| a.to_string()),
        read_endpoint_port: inst.read_endpoint().map(|_| port),
        auth_enabled: inst.auth_enabled,
        transit_encryption_mode: inst.transit_encryption_mode,
        server_ca_certs: inst.server_ca_certs.0.clone(),
        state: inst.state,
        status_message: inst.status_message.clone(),
        nodes: nodes
            .iter()
            .filter(|n| n.instance_id == inst.id)
            .map(|n| Node {
                id: n.id.to_string(),
                zone: n.zone_id.clone(),
                role: n.role,
                address: n.address.addr().to_string(),
                port,
                state: node_state(n, now, host_timeout),
            })
            .collect(),
        labels: inst.labels.0.clone(),
        create_time: inst.created_at,
        update_time: inst.updated_at,
        etag: etag(inst.version),
    }
}

/// The figures of an instance's (non-removed) nodes from their last reports, primary
/// first.
pub fn node_metrics(
    inst: &InstanceRow,
    nodes: &[NodeRow],
    now: DateTime<Utc>,
    host_timeout: Duration,
) -> InstanceNodeMetrics {
    let mut out: Vec<NodeMetrics> = nodes
        .iter()
        .filter(|n| n.instance_id == inst.id && !n.removing)
        .map(|n| {
            let r = n.observed.as_ref().map(|j| &j.0);
            let hits = r.and_then(|r| r.keyspace_hits);
            let misses = r.and_then(|r| r.keyspace_misses);
            NodeMetrics {
                id: n.id.to_string(),
                zone: n.zone_id.clone(),
                role: Some(n.role),
                state: Some(node_state(n, now, host_timeout)),
                up: r.is_some_and(|r| r.process_up),
                used_memory_bytes: r.and_then(|r| r.used_memory_bytes),
                maxmemory_bytes: r.and_then(|r| r.maxmemory_bytes),
                connected_clients: r.and_then(|r| r.connected_clients),
                commands_processed: r.and_then(|r| r.commands_processed),
                keyspace_hits: hits,
                keyspace_misses: misses,
                hit_ratio: NodeMetrics::ratio(hits, misses),
                evicted_keys: r.and_then(|r| r.evicted_keys),
                replication_offset: r.and_then(|r| r.replication_offset),
                lag_bytes: r.and_then(|r| r.lag_bytes),
                restarts: r.and_then(|r| r.restarts),
                report_time: r.and(n.host_last_heartbeat_at),
            }
        })
        .collect();
    out.sort_by_key(|m| m.role != Some(NodeRole::Primary));
    InstanceNodeMetrics {
        name: inst.full_name(),
        nodes: out,
    }
}
