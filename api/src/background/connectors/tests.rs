//! [`decide`] on connector operations, as a table.

use std::time::Duration;

use cacheplane_types::{ConnectorState, OperationVerb};
use ipnet::IpNet;
use uuid::Uuid;

use super::{decide, Step};
use crate::connectors::ConnectorRow;
use crate::db::hosts::HostRow;
use crate::fixtures::{ago, now, operation};

const TIMEOUT: Duration = Duration::from_secs(10);
const DEADLINE: Duration = Duration::from_secs(120);

fn connector(desired: Option<i64>) -> ConnectorRow {
    ConnectorRow {
        id: Uuid::from_u128(7),
        project_id: "p".into(),
        region_id: "r".into(),
        name: "app".into(),
        network_id: Uuid::from_u128(8),
        network_name: "projects/p/networks/default".into(),
        network_ip_range: "10.0.0.0/16".parse::<IpNet>().unwrap(),
        state: ConnectorState::Creating,
        host_id: desired.map(|_| "h".into()),
        namespace: desired.map(|_| "cpc-000000000000".into()),
        desired_generation: desired,
        ip_cidr_range: Some("10.0.0.16/28".parse().unwrap()),
        created_at: ago(5),
    }
}

fn host(applied: i64, silent_for: i64) -> HostRow {
    HostRow {
        id: "h".into(),
        zone_id: "z".into(),
        address: "127.0.0.1/32".parse().unwrap(),
        memory_bytes: 1,
        allocated: 0,
        engines: Vec::new(),
        generation: 5,
        applied_generation: applied,
        last_heartbeat_at: Some(ago(silent_for)),
        created_at: ago(1000),
    }
}

#[test]
fn connector_operations_follow_their_host() {
    let create = operation(OperationVerb::Create, serde_json::json!({}));
    let mut old_create = create.clone();
    old_create.created_at = ago(600);
    let delete = operation(OperationVerb::Delete, serde_json::json!({}));
    let placed = connector(Some(5));
    let loopback = connector(None);
    let cases: Vec<(&str, _, Option<&ConnectorRow>, Option<HostRow>, Step)> = vec![
        ("gone", &create, None, None, Step::Gone),
        (
            "loopback create",
            &create,
            Some(&loopback),
            None,
            Step::Ready,
        ),
        (
            "not applied yet",
            &create,
            Some(&placed),
            Some(host(4, 1)),
            Step::Wait,
        ),
        (
            "applied",
            &create,
            Some(&placed),
            Some(host(5, 1)),
            Step::Ready,
        ),
        (
            "silent, young",
            &create,
            Some(&placed),
            Some(host(4, 60)),
            Step::Wait,
        ),
        (
            "delete waits",
            &delete,
            Some(&placed),
            Some(host(4, 1)),
            Step::Wait,
        ),
        (
            "delete applied",
            &delete,
            Some(&placed),
            Some(host(5, 1)),
            Step::Remove,
        ),
        (
            "delete, silent host",
            &delete,
            Some(&placed),
            Some(host(4, 60)),
            Step::RemoveHeld,
        ),
        (
            "loopback delete",
            &delete,
            Some(&loopback),
            None,
            Step::Remove,
        ),
    ];
    for (what, op, c, h, want) in cases {
        let got = decide(op, c, h.as_ref(), now(), ago(1000), TIMEOUT, DEADLINE);
        assert_eq!(got, want, "{what}");
    }
    let got = decide(
        &old_create,
        Some(&placed),
        Some(&host(4, 60)),
        now(),
        ago(1000),
        TIMEOUT,
        DEADLINE,
    );
    assert!(
        matches!(got, Step::Fail { ref message } if message.contains("host h")),
        "{got:?}"
    );
    // Silence counts only after the grace period's start.
    let got = decide(
        &delete,
        Some(&placed),
        Some(&host(4, 60)),
        now(),
        ago(1),
        TIMEOUT,
        DEADLINE,
    );
    assert_eq!(got, Step::Wait);
}
