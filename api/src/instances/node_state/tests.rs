use cacheplane_types::{NodeRole, NodeState};

use super::*;
use crate::fixtures::{ago, host_silent, node, now, reported, TIMEOUT};

#[test]
fn node_states() {
    let primary = || node(0, NodeRole::Primary, "a");
    let replica = || node(1, NodeRole::Replica, "b");
    let cases: Vec<(&str, NodeRow, NodeState)> = vec![
        ("healthy primary", primary(), NodeState::Ready),
        ("healthy linked replica", replica(), NodeState::Ready),
        (
            "removing wins over everything",
            NodeRow {
                removing: true,
                ..host_silent(primary())
            },
            NodeState::Deleting,
        ),
        ("silent host", host_silent(replica()), NodeState::Down),
        (
            "host never heartbeated, nothing reported",
            NodeRow {
                host_last_heartbeat_at: None,
                observed: None,
                ..primary()
            },
            NodeState::Creating,
        ),
        (
            "no report yet",
            NodeRow {
                observed: None,
                ..primary()
            },
            NodeState::Creating,
        ),
        (
            "error on the current config",
            reported(primary(), |r| r.error = Some("boom".into())),
            NodeState::Failed,
        ),
        (
            "error on an older config is not final",
            NodeRow {
                desired_generation: 2,
                ..reported(primary(), |r| r.error = Some("boom".into()))
            },
            NodeState::Creating,
        ),
        (
            "engine stopped on the current config",
            reported(primary(), |r| r.process_up = false),
            NodeState::Down,
        ),
        (
            "engine not started yet on a new config",
            NodeRow {
                host_applied_generation: 0,
                ..reported(primary(), |r| r.process_up = false)
            },
            NodeState::Creating,
        ),
        (
            "replica whose link is down",
            reported(replica(), |r| r.master_link_up = Some(false)),
            NodeState::Creating,
        ),
        (
            "replica linked but still in its initial full sync",
            reported(replica(), |r| r.full_sync_in_progress = true),
            NodeState::Creating,
        ),
        (
            "engine slow to answer still serves",
            reported(replica(), |r| r.unresponsive_seconds = Some(4)),
            NodeState::Ready,
        ),
        (
            "engine still in the old role",
            reported(primary(), |r| r.role = Some(NodeRole::Replica)),
            NodeState::Creating,
        ),
        (
            "host applied, agent report older",
            NodeRow {
                desired_generation: 2,
                host_applied_generation: 2,
                ..primary()
            },
            NodeState::Creating,
        ),
    ];
    for (name, n, want) in cases {
        assert_eq!(node_state(&n, now(), TIMEOUT), want, "{name}");
    }
}

#[test]
fn host_up_within_the_timeout() {
    let mut n = node(0, NodeRole::Primary, "a");
    for (last, want) in [(Some(ago(15)), true), (Some(ago(16)), false), (None, false)] {
        n.host_last_heartbeat_at = last;
        assert_eq!(host_up(&n, now(), TIMEOUT), want, "{last:?}");
    }
    // A heartbeat stamped after "now" (clock skew) counts as up.
    n.host_last_heartbeat_at = Some(now() + chrono::Duration::seconds(5));
    assert!(host_up(&n, now(), TIMEOUT));
}
