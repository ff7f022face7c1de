//! The current figures of an instance's nodes, as their agents last reported them
//! (`GET …/instances/{instance}/nodeMetrics`, `cachectl instances describe --metrics`).
//! The same figures, as time series, are on each agent's Prometheus endpoint
//! (docs/metrics.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{NodeRole, NodeState};

/// The figures of every node of an instance.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceNodeMetrics {
    /// The instance's full name.
    pub name: String,
    /// Its nodes, primary first.
    pub nodes: Vec<NodeMetrics>,
}

/// One node's figures. Counters (commands, hits, misses, evictions) count since the
/// engine started; `restarts` since its agent started. A figure the agent has not
/// reported (an older agent, an engine that never answered) is absent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMetrics {
    /// The node's id.
    pub id: String,
    /// Its zone.
    pub zone: String,
    /// Its role, as the control plane records it.
    pub role: Option<NodeRole>,
    /// Its state, as on the instance.
    pub state: Option<NodeState>,
    /// Whether its engine ran and answered at the last report.
    pub up: bool,
    /// Memory the engine uses, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_memory_bytes: Option<i64>,
    /// Its `maxmemory`, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxmemory_bytes: Option<i64>,
    /// Connected clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_clients: Option<i64>,
    /// Commands processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands_processed: Option<i64>,
    /// Successful key lookups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspace_hits: Option<i64>,
    /// Failed key lookups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspace_misses: Option<i64>,
    /// hits / (hits + misses), when there was a lookup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hit_ratio: Option<f64>,
    /// Keys evicted for `maxmemory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted_keys: Option<i64>,
    /// Replication offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_offset: Option<i64>,
    /// For a replica: bytes behind its primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<i64>,
    /// Restarts of its engine by the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<i64>,
    /// When its host last reported (the figures are that old at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_time: Option<DateTime<Utc>>,
}

impl NodeMetrics {
    /// hits / (hits + misses), or `None` before the first lookup.
    pub fn ratio(hits: Option<i64>, misses: Option<i64>) -> Option<f64> {
        let (h, m) = (hits?, misses?);
        let all = h.checked_add(m)?;
        (all > 0).then(|| h as f64 / all as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hit_ratio_needs_a_lookup() {
        assert_eq!(NodeMetrics::ratio(Some(3), Some(1)), Some(0.75));
        assert_eq!(NodeMetrics::ratio(Some(0), Some(0)), None);
        assert_eq!(NodeMetrics::ratio(None, Some(2)), None);
    }
}
