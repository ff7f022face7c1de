//! A node's state as the control plane sees it, from its desired state, its agent's last
//! report and its host's heartbeat. Pure: the API, the operation driver and the health
//! monitor all decide from it.

use std::time::Duration;

use cacheplane_types::{NodeReport, NodeRole, NodeState};
use chrono::{DateTime, Utc};

use crate::db::nodes::NodeRow;

#[cfg(test)]
mod tests;

/// Whether a host whose last heartbeat was at `last` counts as up at `now`: it
/// heartbeated within `timeout` (a heartbeat stamped later than `now`, by clock skew,
/// counts).
pub fn heartbeat_fresh(last: Option<DateTime<Utc>>, now: DateTime<Utc>, timeout: Duration) -> bool {
    last.is_some_and(|t| {
        now.signed_duration_since(t)
            .to_std()
            .map_or(true, |age| age <= timeout)
    })
}

/// Whether the node's host has heartbeated within `timeout` of `now`.
pub fn host_up(node: &NodeRow, now: DateTime<Utc>, timeout: Duration) -> bool {
    heartbeat_fresh(node.host_last_heartbeat_at, now, timeout)
}

/// The replicas that could take over as primary: not being removed, on a heartbeating
/// host, their engine running and answering with no error; each with its report.
pub fn running_replicas(
    nodes: &[NodeRow],
    now: DateTime<Utc>,
    host_timeout: Duration,
) -> impl Iterator<Item = (&NodeRow, &NodeReport)> {
    nodes
        .iter()
        .filter(|n| !n.removing && n.role == NodeRole::Replica)
        .filter(move |n| host_up(n, now, host_timeout))
        .filter_map(|n| Some((n, &n.observed.as_ref()?.0)))
        .filter(|(_, r)| r.process_up && r.error.is_none() && r.unresponsive_seconds.is_none())
}

/// A node's state. READY means: its host applied the node's current configuration, the
/// engine runs in the wanted role and, for a replica, its link to the primary is up and
/// its initial sync done.
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
    let linked = match node.role {
        NodeRole::Primary => report.role == Some(NodeRole::Primary),
        NodeRole::Replica => {
            report.role == Some(NodeRole::Replica)
                && report.master_link_up == Some(true)
                && !report.full_sync_in_progress
        }
    };
    if current && linked {
        NodeState::Ready
    } else {
        NodeState::Creating
    }
}
