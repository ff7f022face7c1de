//! Rows for the table tests of the pure decisions (node state, driver, health monitor).

use std::time::Duration;

use cacheplane_types::{InstanceState, NodeReport, NodeRole, OperationVerb, Tier};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::instances::InstanceRow;
use crate::db::nodes::NodeRow;
use crate::db::operations::OperationRow;

/// The host timeout of every test.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The "now" of every test.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

/// `secs` seconds before [`now`].
pub fn ago(secs: i64) -> DateTime<Utc> {
    now() - chrono::Duration::seconds(secs)
}

/// The instance every test node belongs to.
pub fn instance_id() -> Uuid {
    Uuid::from_u128(1)
}

/// A healthy node: its host heartbeated a second ago and applied generation 1, and its
/// engine runs in `role` (linked, for a replica), in zone `zone`.
pub fn node(ordinal: i32, role: NodeRole, zone: &str) -> NodeRow {
    NodeRow {
        id: Uuid::from_u128(100 + ordinal as u128),
        instance_id: instance_id(),
        ordinal,
        host_id: format!("host-{ordinal}"),
        zone_id: zone.to_string(),
        role,
        address: format!("10.0.0.{}/32", 3 + ordinal).parse().unwrap(),
        memory_bytes: 1 << 30,
        desired_generation: 1,
        removing: false,
        observed: Some(Json(report(Uuid::from_u128(100 + ordinal as u128), role))),
        observed_generation: Some(1),
        host_applied_generation: 1,
        host_last_heartbeat_at: Some(ago(1)),
        switchover_id: None,
    }
}

/// What an agent reports of a healthy node in `role`.
pub fn report(node: Uuid, role: NodeRole) -> NodeReport {
    NodeReport {
        node_id: node,
        process_up: true,
        role: Some(role),
        master_link_up: (role == NodeRole::Replica).then_some(true),
        master_link_down_since_seconds: None,
        replication_offset: Some(1000),
        lag_bytes: Some(0),
        full_sync_in_progress: false,
        ..NodeReport::default()
    }
}

/// Changes the report of a node.
pub fn reported(mut node: NodeRow, change: impl FnOnce(&mut NodeReport)) -> NodeRow {
    if let Some(r) = node.observed.as_mut() {
        change(&mut r.0);
    }
    node
}

/// A node whose host has been silent for a minute.
pub fn host_silent(mut node: NodeRow) -> NodeRow {
    node.host_last_heartbeat_at = Some(ago(60));
    node
}

/// A READY instance of `tier`.
pub fn instance(tier: Tier) -> InstanceRow {
    InstanceRow {
        id: instance_id(),
        project_id: "p".into(),
        region_id: "r".into(),
        name: "cache".into(),
        display_name: String::new(),
        tier,
        memory_size_gb: 1,
        replica_count: if tier == Tier::Basic { 0 } else { 2 },
        read_replicas_enabled: false,
        location_id: "a".into(),
        alternative_location_id: None,
        redis_version: "REDIS_7_0".into(),
        redis_configs: Json(Default::default()),
        network_id: Uuid::from_u128(2),
        network_name: "default".into(),
        port: 6379,
        auth_enabled: false,
        auth_string: String::new(),
        state: InstanceState::Ready,
        status_message: String::new(),
        labels: Json(Default::default()),
        version: 1,
        created_at: ago(3600),
        updated_at: ago(3600),
        primary_range: Some("10.0.0.0/28".parse().unwrap()),
        secondary_range: None,
        transit_encryption_mode: Default::default(),
        server_ca_certs: Json(Vec::new()),
    }
}

/// A running operation on the test instance.
pub fn operation(verb: OperationVerb, params: serde_json::Value) -> OperationRow {
    OperationRow {
        id: Uuid::from_u128(3),
        project_id: "p".into(),
        region_id: "r".into(),
        verb,
        target: "projects/p/locations/r/instances/cache".into(),
        instance_id: Some(instance_id()),
        connector_id: None,
        memcache_instance_id: None,
        done: false,
        error: None,
        response: None,
        progress: 0,
        status_detail: String::new(),
        params: Json(params),
        created_at: ago(10),
        ended_at: None,
    }
}
