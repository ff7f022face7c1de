//! The recent history of an instance's figures (`GET …/instances/{instance}/metrics`):
//! per node, one point per 10-second sample kept by the sampler
//! (`background::sampler`), with the rates (commands per second, hit ratio) computed
//! between consecutive samples, and the instance's failovers as markers.

use std::time::Duration;

use cacheplane_types::NodeRole;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::db::samples::{self, FailoverRow, SampleRow};
use crate::error::{ApiError, ApiResult};
use crate::instances::InstanceRef;
use crate::state::AppState;

/// The longest window served: the samples are kept a little longer (see the sampler).
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// The shortest window served.
pub const MIN_WINDOW: Duration = Duration::from_secs(60);

/// The figures of an instance's nodes over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceMetricsHistory {
    /// The instance's full name.
    pub name: String,
    /// The window, in seconds (as asked, e.g. 3600 for `1h`).
    pub window_seconds: u64,
    /// The spacing of the samples, in seconds (10).
    pub step_seconds: u64,
    /// One series per node that has samples in the window, the current primary first.
    pub nodes: Vec<NodeSeries>,
    /// The instance's failovers that started in the window, oldest first.
    pub failovers: Vec<FailoverMarker>,
}

/// One node's samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSeries {
    /// The node's id.
    pub id: String,
    /// Its zone.
    pub zone: String,
    /// Its samples, oldest first.
    pub points: Vec<MetricPoint>,
}

/// One node's figures at one sample. A figure its agent did not report, or a rate that
/// needs a previous sample (or spans an engine restart), is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricPoint {
    /// The sample's time (the start of its 10-second bucket).
    pub time: DateTime<Utc>,
    /// The node's role then, as the control plane recorded it.
    pub role: NodeRole,
    /// Whether its engine ran and answered.
    pub up: bool,
    /// Memory used, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_memory_bytes: Option<i64>,
    /// `maxmemory`, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxmemory_bytes: Option<i64>,
    /// Connected clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_clients: Option<i64>,
    /// Commands per second since the previous sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands_per_second: Option<f64>,
    /// Keyspace hits / lookups since the previous sample, when there was a lookup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hit_ratio: Option<f64>,
    /// For a linked replica: bytes behind its primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<i64>,
}

/// A failover of the instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverMarker {
    /// When it started.
    pub time: DateTime<Utc>,
    /// When it ended; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// Its operation's full name.
    pub operation: String,
    /// Whether it ended with an error.
    pub failed: bool,
}

/// Reads the `window` parameter (`5m`, `1h`, `900s`, as `timeout` is written; absent or
/// empty: an hour), naming it when it is not a duration. As the API lowers a `timeout`
/// past its longest wait, a window past [`MAX_WINDOW`] is an hour and one under
/// [`MIN_WINDOW`] a minute; `windowSeconds` in the answer says which.
pub fn parse_window(window: Option<&str>) -> ApiResult<Duration> {
    let d = crate::http::contract::duration_param("window", window, MAX_WINDOW)?;
    Ok(d.clamp(MIN_WINDOW, MAX_WINDOW))
}

/// The history of instance `target` over the last `window`.
pub async fn read(
    state: &AppState,
    principal: &Principal,
    target: &InstanceRef,
    window: Duration,
) -> ApiResult<InstanceMetricsHistory> {
    principal.check_project(&target.project)?;
    let inst =
        crate::db::instances::get(&state.pool, &target.project, &target.region, &target.name)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("instance '{}' not found", target.name)))?;
    let since = Utc::now()
        - chrono::Duration::from_std(window).map_err(|e| ApiError::Internal(e.into()))?;
    let rows = samples::of_instance(&state.pool, inst.id, since).await?;
    let failovers = samples::failovers(&state.pool, inst.id, since).await?;
    let parent = format!("projects/{}/locations/{}", inst.project_id, inst.region_id);
    Ok(InstanceMetricsHistory {
        name: inst.full_name(),
        window_seconds: window.as_secs(),
        step_seconds: samples::STEP_SECS as u64,
        nodes: series(&rows),
        failovers: failovers.iter().map(|f| marker(&parent, f)).collect(),
    })
}

fn marker(parent: &str, f: &FailoverRow) -> FailoverMarker {
    FailoverMarker {
        time: f.created_at,
        end_time: f.ended_at,
        operation: format!("{parent}/operations/{}", f.id),
        failed: f.failed,
    }
}

/// Groups `rows` (ordered by node, then time) into one series per node, with rates
/// between consecutive samples; the node that is primary at its last sample comes first.
pub fn series(rows: &[SampleRow]) -> Vec<NodeSeries> {
    let mut out: Vec<NodeSeries> = Vec::new();
    let mut prev: Option<&SampleRow> = None;
    for row in rows {
        let same_node = prev.is_some_and(|p| p.node_id == row.node_id);
        if !same_node {
            out.push(NodeSeries {
                id: row.node_id.to_string(),
                zone: row.zone_id.clone(),
                points: Vec::new(),
            });
        }
        let before = prev.filter(|_| same_node);
        if let Some(s) = out.last_mut() {
            s.points.push(point(before, row));
        }
        prev = Some(row);
    }
    out.sort_by_key(|s| s.points.last().map(|p| p.role) != Some(NodeRole::Primary));
    out
}

/// One point: the gauges of `row`, and the rates since `before` (none across a restart,
/// where the engine's counters went back).
fn point(before: Option<&SampleRow>, row: &SampleRow) -> MetricPoint {
    let delta = |f: fn(&SampleRow) -> Option<i64>| -> Option<i64> {
        let d = f(row)? - f(before?)?;
        (d >= 0).then_some(d)
    };
    let secs = before.map(|b| (row.at - b.at).num_milliseconds() as f64 / 1000.0);
    let commands_per_second = match (delta(|r| r.commands_processed), secs) {
        (Some(d), Some(s)) if s > 0.0 => Some(d as f64 / s),
        _ => None,
    };
    let hit_ratio = match (delta(|r| r.keyspace_hits), delta(|r| r.keyspace_misses)) {
        (Some(h), Some(m)) if h + m > 0 => Some(h as f64 / (h + m) as f64),
        _ => None,
    };
    MetricPoint {
        time: row.at,
        role: row.role,
        up: row.up,
        used_memory_bytes: row.used_memory_bytes,
        maxmemory_bytes: row.maxmemory_bytes,
        connected_clients: row.connected_clients,
        commands_per_second,
        hit_ratio,
        lag_bytes: row.lag_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn row(
        node: Uuid,
        secs: i64,
        role: NodeRole,
        commands: i64,
        hits: i64,
        misses: i64,
    ) -> SampleRow {
        SampleRow {
            node_id: node,
            at: DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("a time"),
            zone_id: "local-a".into(),
            role,
            up: true,
            used_memory_bytes: Some(1000),
            maxmemory_bytes: Some(2000),
            connected_clients: Some(3),
            commands_processed: Some(commands),
            keyspace_hits: Some(hits),
            keyspace_misses: Some(misses),
            lag_bytes: None,
        }
    }

    #[test]
    fn rates_come_from_consecutive_samples_of_one_node() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let rows = [
            row(a, 0, NodeRole::Replica, 100, 0, 0),
            row(a, 10, NodeRole::Replica, 300, 6, 2),
            row(a, 20, NodeRole::Replica, 50, 1, 0), // the engine restarted
            row(b, 0, NodeRole::Primary, 10, 0, 0),
            row(b, 10, NodeRole::Primary, 10, 0, 0),
        ];
        let s = series(&rows);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].id, b.to_string(), "the primary comes first");
        assert_eq!(s[0].points[1].commands_per_second, Some(0.0));
        assert_eq!(s[0].points[1].hit_ratio, None, "no lookup, no ratio");
        let a_points = &s[1].points;
        assert_eq!(
            a_points[0].commands_per_second, None,
            "the first sample has no rate"
        );
        assert_eq!(a_points[1].commands_per_second, Some(20.0));
        assert_eq!(a_points[1].hit_ratio, Some(0.75));
        assert_eq!(
            a_points[2].commands_per_second, None,
            "no rate across a restart"
        );
    }

    #[test]
    fn windows_are_checked_and_name_the_parameter() {
        assert_eq!(parse_window(None).ok(), Some(MAX_WINDOW));
        assert_eq!(parse_window(Some("")).ok(), Some(MAX_WINDOW));
        assert_eq!(
            parse_window(Some("5m")).ok(),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_window(Some("2h")).ok(), Some(MAX_WINDOW), "lowered");
        assert_eq!(parse_window(Some("10s")).ok(), Some(MIN_WINDOW), "raised");
        for bad in ["soon", "-1m", "5 m", "1d"] {
            let err = parse_window(Some(bad)).expect_err(bad);
            assert!(format!("{err:?}").contains("window"), "{bad}: {err:?}");
        }
    }
}
