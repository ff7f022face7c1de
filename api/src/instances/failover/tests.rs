use cacheplane_types::NodeRole;

use super::*;
use crate::fixtures::{host_silent, node, now, reported, TIMEOUT};

/// A name, the replicas, and the choice expected (its ordinal and lag).
type Case = (&'static str, Vec<NodeRow>, Option<(i32, i64)>);

#[test]
fn best_replica_choice() {
    let primary = node(0, NodeRole::Primary, "a");
    // (case, replicas, the expected choice by ordinal and its lag)
    let cases: Vec<Case> = vec![
        (
            "least lag wins",
            vec![
                reported(node(1, NodeRole::Replica, "a"), |r| r.lag_bytes = Some(500)),
                reported(node(2, NodeRole::Replica, "b"), |r| r.lag_bytes = Some(10)),
            ],
            Some((2, 10)),
        ),
        (
            "equal lag: the old primary's zone",
            vec![
                node(1, NodeRole::Replica, "b"),
                node(2, NodeRole::Replica, "a"),
            ],
            Some((2, 0)),
        ),
        (
            "equal lag and zone: the oldest",
            vec![
                node(2, NodeRole::Replica, "b"),
                node(1, NodeRole::Replica, "b"),
            ],
            Some((1, 0)),
        ),
        (
            "unlinked, syncing, stopped and removing replicas do not qualify",
            vec![
                reported(node(1, NodeRole::Replica, "a"), |r| {
                    r.master_link_up = Some(false)
                }),
                reported(node(2, NodeRole::Replica, "a"), |r| {
                    r.full_sync_in_progress = true
                }),
                reported(node(3, NodeRole::Replica, "a"), |r| r.process_up = false),
                NodeRow {
                    removing: true,
                    ..node(4, NodeRole::Replica, "a")
                },
            ],
            None,
        ),
        (
            "unknown lag counts as none",
            vec![reported(node(1, NodeRole::Replica, "b"), |r| {
                r.lag_bytes = None
            })],
            Some((1, 0)),
        ),
    ];
    for (name, replicas, want) in cases {
        let mut nodes = vec![primary.clone()];
        nodes.extend(replicas);
        let got = best_replica(&nodes, &primary.zone_id).map(|(n, lag)| (n.ordinal, lag));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn the_primary_is_the_one_not_being_removed() {
    let old = NodeRow {
        removing: true,
        ..node(0, NodeRole::Primary, "a")
    };
    let new = node(1, NodeRole::Primary, "b");
    assert_eq!(primary(&[old, new.clone()]).map(|n| n.id), Some(new.id));
    assert!(primary(&[node(2, NodeRole::Replica, "a")]).is_none());
}

#[test]
fn running_replica_choice() {
    let primary = node(0, NodeRole::Primary, "a");
    let replica = |o, z| node(o, NodeRole::Replica, z);
    let unlinked = |n| reported(n, |r| r.master_link_up = Some(false));
    // (case, replicas, the expected choice by ordinal)
    let cases: Vec<(&str, Vec<NodeRow>, Option<i32>)> = vec![
        (
            "a replica whose link is down is taken",
            vec![unlinked(replica(1, "b"))],
            Some(1),
        ),
        (
            "most data wins",
            vec![
                reported(unlinked(replica(1, "a")), |r| r.replication_offset = Some(5)),
                reported(unlinked(replica(2, "b")), |r| r.replication_offset = Some(9)),
            ],
            Some(2),
        ),
        (
            "equal data: the old primary's zone",
            vec![unlinked(replica(1, "b")), unlinked(replica(2, "a"))],
            Some(2),
        ),
        (
            "one in a full sync is taken when it is the only one running",
            vec![
                reported(replica(1, "a"), |r| r.full_sync_in_progress = true),
                reported(replica(2, "a"), |r| r.process_up = false),
            ],
            Some(1),
        ),
        (
            "one not syncing before one in a full sync with more data",
            vec![
                reported(replica(1, "a"), |r| {
                    r.full_sync_in_progress = true;
                    r.replication_offset = Some(99_999);
                }),
                unlinked(replica(2, "b")),
            ],
            Some(2),
        ),
        (
            "stopped, failing, unresponsive, silent, unreported and removing replicas do not qualify",
            vec![
                reported(replica(1, "a"), |r| r.process_up = false),
                reported(replica(2, "a"), |r| r.error = Some("oom".into())),
                host_silent(replica(3, "a")),
                reported(replica(4, "a"), |r| r.unresponsive_seconds = Some(30)),
                NodeRow {
                    removing: true,
                    ..replica(5, "a")
                },
                NodeRow {
                    observed: None,
                    ..replica(6, "a")
                },
            ],
            None,
        ),
    ];
    for (name, replicas, want) in cases {
        let mut nodes = vec![primary.clone()];
        nodes.extend(replicas);
        let got = running_replica(&nodes, "a", now(), TIMEOUT).map(|n| n.ordinal);
        assert_eq!(got, want, "{name}");
    }
}
