//! From rows to the wire `Instance`, including each node's state as the control plane
//! sees it.

use std::time::Duration;

use cacheplane_types::{
    Instance, InstanceState, Node, NodeRole, NodeState, ReadReplicasMode, Tier,
};
use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::instances::store::{InstanceRow, NodeRow};

/// The etag of an instance version.
pub fn etag(version: i64) -> String {
    format!("v{version}")
}

/// Whether the node's host has heartbeated within `timeout` of `now`.
pub fn host_up(node: &NodeRow, now: DateTime<Utc>, timeout: Duration) -> bool {
    node.host_last_heartbeat_at.is_some_and(|t| {
        now.signed_duration_since(t)
            .to_std()
            .map_or(true, |age| age <= timeout)
    })
}

/// The role stored for a node.
pub fn role(node: &NodeRow) -> NodeRole {
    NodeRole::parse(&node.role).unwrap_or(NodeRole::Replica)
}

/// A node's state from its desired state, its agent's last report and its host's
/// heartbeat. READY means: its host applied the node's current configuration, the engine
/// runs in the wanted role and, for a replica, its link to the primary is up.
pub fn node_state(node: &NodeRow, now: DateTime<Utc>, host_timeout: Duration) -> NodeState {
    if node.removing {
        return NodeState::Deleting;
    }
    if !host_up(node, now, host_timeout) && node.host_last_heartbeat_at.is_some() {
        return NodeState::Down;
    }
    let Some(report) = node.observed.as_ref().map(|j| &j.0) else {
        return NodeState::Creating;
    };
    let current = node.host_applied_generation >= node.desired_generation
        && node.observed_generation.unwrap_or(0) >= node.desired_generation;
    if report.error.is_some() && current {
        return NodeState::Failed;
    }
    if !report.process_up {
        return if current {
            NodeState::Down
        } else {
            NodeState::Creating
        };
    }
    let linked = match role(node) {
        NodeRole::Primary => report.role == Some(NodeRole::Primary),
        NodeRole::Replica => {
            report.role == Some(NodeRole::Replica) && report.master_link_up == Some(true)
        }
    };
    if current && linked {
        NodeState::Ready
    } else {
        NodeState::Creating
    }
}

fn addr(ip: &IpNet) -> String {
    ip.addr().to_string()
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
        tier: Tier::parse(&inst.tier_id).unwrap_or(Tier::Basic),
        memory_size_gb: inst.memory_size_gb,
        replica_count: inst.replica_count,
        read_replicas_mode: if inst.read_replicas_enabled {
            ReadReplicasMode::ReadReplicasEnabled
        } else {
            ReadReplicasMode::ReadReplicasDisabled
        },
        location_id: inst.location_id.clone(),
        alternative_location_id: inst.alternative_location_id.clone(),
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
        state: InstanceState::parse(&inst.state).unwrap_or(InstanceState::Failed),
        status_message: inst.status_message.clone(),
        nodes: nodes
            .iter()
            .filter(|n| n.instance_id == inst.id)
            .map(|n| Node {
                id: n.id.to_string(),
                zone: n.zone_id.clone(),
                role: role(n),
                address: addr(&n.address),
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
