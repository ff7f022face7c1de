//! From rows to the wire `MemcacheInstance`, with each node's state as the control plane
//! sees it.

use std::time::Duration;

use cacheplane_types::{
    MemcacheInstance, MemcacheNode, MemcacheNodeConfig, MemcacheNodeState, MemcacheParameters,
    MEMCACHE_PORT,
};
use chrono::{DateTime, Utc};

use crate::instances::node_state::heartbeat_fresh;
use crate::instances::render::etag;
use crate::memcache::{MemcacheNodeRow, MemcacheRow};

/// Whether the node's host applied the node's current desired state and its agent
/// reported the node at that generation or later.
pub fn current(n: &MemcacheNodeRow) -> bool {
    n.host_applied_generation >= n.desired_generation
        && n.observed_generation.unwrap_or(0) >= n.desired_generation
}

/// A node's state: READY once its host applied its current desired state and its
/// memcached runs with the node's parameters.
pub fn node_state(n: &MemcacheNodeRow, now: DateTime<Utc>, timeout: Duration) -> MemcacheNodeState {
    if n.removing {
        return MemcacheNodeState::Deleting;
    }
    if n.host_last_heartbeat_at.is_some()
        && !heartbeat_fresh(n.host_last_heartbeat_at, now, timeout)
    {
        return MemcacheNodeState::Down;
    }
    let Some(report) = n.observed.as_ref().map(|o| &o.0) else {
        return MemcacheNodeState::Creating;
    };
    let current = current(n);
    if !report.process_up {
        return if current {
            MemcacheNodeState::Down
        } else {
            MemcacheNodeState::Creating
        };
    }
    if report.parameters != n.parameters.0 {
        return MemcacheNodeState::Updating;
    }
    if current {
        MemcacheNodeState::Ready
    } else {
        MemcacheNodeState::Creating
    }
}

/// Why a node could not start, when its agent says so for its current desired state.
pub fn start_error(n: &MemcacheNodeRow) -> Option<&str> {
    let report = &n.observed.as_ref()?.0;
    (!n.removing && current(n) && !report.process_up)
        .then_some(report.error.as_deref())
        .flatten()
}

/// The wire form of an instance with its nodes (rows of other instances are skipped;
/// nodes being removed are shown DELETING).
pub fn to_wire(
    m: &MemcacheRow,
    nodes: &[MemcacheNodeRow],
    now: DateTime<Utc>,
    timeout: Duration,
) -> MemcacheInstance {
    let mine: Vec<&MemcacheNodeRow> = nodes.iter().filter(|n| n.instance_id == m.id).collect();
    let full_version = mine
        .iter()
        .filter_map(|n| n.observed.as_ref()?.0.engine_version.clone())
        .next()
        .map(|v| format!("memcached-{v}"))
        .unwrap_or_default();
    MemcacheInstance {
        name: m.full_name(),
        display_name: m.display_name.clone(),
        labels: m.labels.0.clone(),
        authorized_network: m.network_name.clone(),
        zones: m.zones.clone(),
        node_count: m.node_count,
        node_config: MemcacheNodeConfig {
            cpu_count: i64::from(m.cpu_count),
            memory_size_mb: i64::from(m.memory_size_mb),
        },
        memcache_version: m.memcache_version.clone(),
        parameters: MemcacheParameters {
            id: m.parameters_id.clone(),
            params: m.parameters.0.clone(),
        },
        memcache_nodes: mine
            .iter()
            .map(|n| MemcacheNode {
                node_id: n.node_id(),
                zone: n.zone_id.clone(),
                state: node_state(n, now, timeout),
                host: n.address.addr().to_string(),
                port: MEMCACHE_PORT,
                parameters: MemcacheParameters {
                    id: n.parameters_id.clone(),
                    params: n.parameters.0.clone(),
                },
            })
            .collect(),
        discovery_endpoint: m
            .discovery_address()
            .map(|a| format!("{a}:{MEMCACHE_PORT}"))
            .unwrap_or_default(),
        reserved_ip_range: m.range().map(|r| r.to_string()).unwrap_or_default(),
        state: m.state,
        status_message: m.status_message.clone(),
        memcache_full_version: full_version,
        create_time: m.created_at,
        update_time: m.updated_at,
        etag: etag(m.version),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cacheplane_types::MemcacheNodeReport;
    use sqlx::types::Json;
    use uuid::Uuid;

    use super::*;

    /// A report: the generation it was made at, whether memcached runs, its parameters.
    type Seen<'a> = (i64, bool, &'a [(&'a str, &'a str)]);

    fn node(applied: i64, observed: Option<Seen>) -> MemcacheNodeRow {
        let params: BTreeMap<String, String> =
            [("idle-timeout".to_string(), "5".to_string())].into();
        MemcacheNodeRow {
            id: Uuid::nil(),
            instance_id: Uuid::nil(),
            ordinal: 1,
            host_id: "h".into(),
            zone_id: "z".into(),
            address: "10.0.0.2/32".parse().unwrap(),
            memory_bytes: 1 << 30,
            parameters: Json(params),
            parameters_id: String::new(),
            desired_generation: 5,
            removing: false,
            observed: observed.map(|(_, up, p)| {
                Json(MemcacheNodeReport {
                    process_up: up,
                    parameters: p
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                })
            }),
            observed_generation: observed.map(|o| o.0),
            host_applied_generation: applied,
            host_last_heartbeat_at: Some(Utc::now()),
        }
    }

    #[test]
    fn a_node_is_ready_once_it_runs_its_parameters_at_its_generation() {
        let t = Duration::from_secs(10);
        let now = Utc::now();
        let p: &[(&str, &str)] = &[("idle-timeout", "5")];
        let cases: Vec<(&str, MemcacheNodeRow, MemcacheNodeState)> = vec![
            ("never reported", node(5, None), MemcacheNodeState::Creating),
            (
                "older generation",
                node(4, Some((4, true, p))),
                MemcacheNodeState::Creating,
            ),
            (
                "runs, current",
                node(5, Some((5, true, p))),
                MemcacheNodeState::Ready,
            ),
            (
                "old parameters",
                node(5, Some((5, true, &[]))),
                MemcacheNodeState::Updating,
            ),
            (
                "down at its generation",
                node(5, Some((5, false, p))),
                MemcacheNodeState::Down,
            ),
        ];
        for (case, n, want) in cases {
            assert_eq!(node_state(&n, now, t), want, "{case}");
        }
        let mut silent = node(5, Some((5, true, p)));
        silent.host_last_heartbeat_at = Some(now - chrono::Duration::seconds(60));
        assert_eq!(node_state(&silent, now, t), MemcacheNodeState::Down);
    }
}
